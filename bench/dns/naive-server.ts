// Reference responders for the wire-library comparison: the same Map of names answered with a full
// decode and encode per query by dns-packet or by dns2 (the library the user named). UDP only.
// `floor`: no DNS work at all, each datagram sent back with QR set (an empty answer): what node:dgram
// alone costs per query, the floor under any Node.js DNS server.
// Usage: node bench/dns/naive-server.ts dns-packet|dns2|floor PORT NAMES_FILE   (NAMES_FILE: "name ip" lines)
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import dnsPacket from 'dns-packet';
import dns2 from 'dns2';

const [lib, portArg, file] = process.argv.slice(2);
const names = new Map<string, string>();
for (const line of readFileSync(file as string, 'utf8').split('\n')) {
  const [n, ip] = line.trim().split(/\s+/);
  if (n && ip) names.set(n.toLowerCase(), ip);
}
const port = Number(portArg);

if (lib === 'floor') {
  const sock = createSocket({
    type: 'udp4',
    lookup: ((a: string, _o: unknown, cb: (e: null, a: string, f: number) => void) => cb(null, a, 4)) as never,
  });
  sock.on('message', (msg, rinfo) => {
    msg[2] = (msg[2] as number) | 0x80;
    sock.send(msg, rinfo.port, rinfo.address);
  });
  sock.bind(port, '127.0.0.1', () => console.log('ready'));
} else if (lib === 'dns-packet') {
  const sock = createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    try {
      const q = dnsPacket.decode(msg);
      const question = q.questions?.[0];
      if (!question) return;
      const ip = question.type === 'A' ? names.get(question.name.toLowerCase()) : undefined;
      const res = dnsPacket.encode({
        type: 'response',
        id: q.id,
        flags: dnsPacket.AUTHORITATIVE_ANSWER | ((q.flags ?? 0) & dnsPacket.RECURSION_DESIRED),
        questions: [question],
        answers: ip ? [{ type: 'A', name: question.name, ttl: 30, data: ip }] : [],
        ...(ip || names.has(question.name.toLowerCase()) ? {} : { rcode: 'NXDOMAIN' }),
      } as dnsPacket.Packet);
      sock.send(res, rinfo.port, rinfo.address);
    } catch {
      /* drop */
    }
  });
  sock.bind(port, '127.0.0.1', () => console.log('ready'));
} else if (lib === 'dns2') {
  const { Packet } = dns2 as unknown as {
    Packet: {
      createResponseFromRequest(r: unknown): { answers: unknown[]; header: { rcode: number; aa: number } };
      TYPE: { A: number };
      CLASS: { IN: number };
    };
  };
  const server = (
    dns2 as unknown as {
      createServer(o: object): { listen(o: object): Promise<void>; on(e: string, f: () => void): void };
    }
  ).createServer({
    udp: true,
    handle: (request: { questions: { name: string; type: number }[] }, send: (r: unknown) => void) => {
      const res = Packet.createResponseFromRequest(request);
      const q = request.questions[0];
      const ip = q && q.type === Packet.TYPE.A ? names.get(q.name.toLowerCase()) : undefined;
      res.header.aa = 1;
      if (ip && q)
        res.answers.push({ name: q.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 30, address: ip });
      else res.header.rcode = 3;
      send(res);
    },
  });
  server.on('listening', () => console.log('ready'));
  await server.listen({ udp: { port, address: '127.0.0.1' } });
} else {
  console.error('usage: naive-server.ts dns-packet|dns2|floor PORT NAMES_FILE');
  process.exit(2);
}
