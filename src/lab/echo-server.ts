// A small echo server for lab pods: every answer names the pod, so tests see which backend served them.
//   node src/lab/echo-server.ts --name web-1 [--http 8080,8081] [--udp 5353] [--tcp 9000] [--udp-client]
// HTTP: any request -> 200 JSON {name, method, path, host, client, headers}; `/status/NNN` answers NNN.
// UDP: every datagram is answered with "<name> <payload>" (with --udp-client: "<name> <payload> <ip>:<port>",
// the sender as the server saw it). TCP: every line is answered with "<name> <line>".
// Prints "ready" on stdout once every listener is bound. Exits on SIGTERM/SIGINT.
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    http: { type: 'string' },
    udp: { type: 'string' },
    tcp: { type: 'string' },
    host: { type: 'string', default: '::' },
    'udp-client': { type: 'boolean', default: false },
  },
  strict: true,
});
const name = values.name ?? process.env.POD_NAME ?? 'echo';
const ports = (s?: string) => (s ? s.split(',').map((p) => Number(p)) : []);
const pending: Promise<void>[] = [];

for (const port of ports(values.http)) {
  const srv = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const m = /^\/status\/(\d{3})$/.exec(req.url ?? '');
      const body = JSON.stringify({
        name,
        method: req.method,
        path: req.url,
        host: req.headers.host,
        client: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
        headers: req.headers,
        bodyBytes: Buffer.concat(chunks).length,
      });
      res.writeHead(m ? Number(m[1]) : 200, { 'content-type': 'application/json', 'x-echo-name': name });
      res.end(body + '\n');
    });
  });
  srv.keepAliveTimeout = 65_000;
  pending.push(new Promise((r) => srv.listen({ port, host: values.host }, () => r())));
}
for (const port of ports(values.udp)) {
  const sock = createSocket({ type: 'udp6', ipv6Only: false });
  const from = (r: { address: string; port: number }) =>
    values['udp-client'] ? ` ${r.address.replace(/^::ffff:/, '')}:${r.port}` : '';
  sock.on('message', (msg, rinfo) =>
    sock.send(`${name} ${msg.toString('utf8')}${from(rinfo)}`, rinfo.port, rinfo.address),
  );
  pending.push(new Promise((r) => sock.bind({ port, address: values.host }, () => r())));
}
for (const port of ports(values.tcp)) {
  const srv = createTcpServer((conn) => {
    let buf = '';
    conn.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        conn.write(`${name} ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
    conn.on('error', () => {});
  });
  pending.push(new Promise((r) => srv.listen({ port, host: values.host }, () => r())));
}
await Promise.all(pending);
process.stdout.write('ready\n');
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
