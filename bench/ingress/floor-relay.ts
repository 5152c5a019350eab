// The floor of a Node.js proxy on this machine, for `npm run bench:ingress -- --only ...,floor`: a TCP relay
// that does no HTTP work at all. Each client connection gets its own upstream connection to the backend; bytes
// go across as they come. Both sides read in place (node's `onread` mode into one buffer, as the ingress fast
// front does) and write latin1 strings (copies, so nothing points into the buffer after the callback).
// Not a proxy: no routing, no headers added, no 404 for other hosts. With TLS_PORT CRT KEY the same relay also
// listens with TLS (node:tls, the certificate given): the floor of the HTTPS rows, handshake included. With
// H2_PORT too, a node:http2 server (same certificate) answers every stream itself, 200 with the backend's
// 100-byte body and no upstream at all: what node:http2 alone costs per request, below any HTTP/2 proxy.
//   node bench/ingress/floor-relay.ts LISTEN_PORT BACKEND_PORT [TLS_PORT CRT KEY [H2_PORT]]
import { readFileSync } from 'node:fs';
import { createSecureServer } from 'node:http2';
import { connect, createServer } from 'node:net';
import type { Socket as NetSocket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { readInPlace } from '../../ingress/fast-front.ts';

const [listenPort, backendPort, tlsPort] = process.argv.slice(2, 5).map(Number);
const [crt, key] = process.argv.slice(5, 7);
const h2Port = Number(process.argv[7] ?? 0);
if (!listenPort || !backendPort || (tlsPort && (!crt || !key)) || (h2Port && !tlsPort))
  throw new Error('usage: floor-relay.ts LISTEN_PORT BACKEND_PORT [TLS_PORT CRT KEY [H2_PORT]]');
const BUF = Buffer.allocUnsafe(64 * 1024);

const relay = (client: NetSocket) => {
  const upstream = connect({
    host: '127.0.0.1',
    port: backendPort,
    noDelay: true,
    onread: {
      buffer: BUF,
      callback: (n: number, b: Uint8Array) => {
        client.write(Buffer.from(b.buffer, b.byteOffset, n).toString('latin1'), 'latin1');
        return true;
      },
    },
  });
  // an accepted socket reads in place by the fast front's own mechanism
  if (!readInPlace(client, (n, b) => void upstream.write(b.toString('latin1', 0, n), 'latin1')))
    throw new Error('this node cannot read accepted sockets in place');
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  client.on('error', () => client.destroy());
  upstream.on('error', () => upstream.destroy());
};
createServer({ noDelay: true }, relay).listen(listenPort, '127.0.0.1');
if (tlsPort)
  createTlsServer({ cert: readFileSync(crt!), key: readFileSync(key!), noDelay: true }, relay)
    .on('tlsClientError', () => {})
    .listen(tlsPort, '127.0.0.1');
if (h2Port) {
  const body = `${'x'.repeat(99)}\n`;
  // no request listener: node:http2's compat objects are never built, each stream is answered on its own
  createSecureServer({ cert: readFileSync(crt!), key: readFileSync(key!) })
    .on('stream', (s) => {
      s.on('error', () => {});
      s.respond({ ':status': 200, 'content-length': String(body.length) });
      s.end(body);
    })
    .on('sessionError', () => {})
    .listen(h2Port, '127.0.0.1');
}
