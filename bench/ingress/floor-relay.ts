// The floor of a Node.js proxy on this machine, for `npm run bench:ingress -- --only ...,floor`: a TCP relay
// that does no HTTP work at all. Each client connection gets its own upstream connection to the backend; bytes
// go across as they come. Both sides read in place (node's `onread` mode into one buffer, as the ingress fast
// front does) and write latin1 strings (copies, so nothing points into the buffer after the callback).
// Not a proxy: no routing, no headers added, no 404 for other hosts.
//   node bench/ingress/floor-relay.ts LISTEN_PORT BACKEND_PORT
import { connect, createServer, Socket } from 'node:net';
import type { Socket as NetSocket } from 'node:net';

const [listenPort, backendPort] = process.argv.slice(2).map(Number);
if (!listenPort || !backendPort) throw new Error('usage: floor-relay.ts LISTEN_PORT BACKEND_PORT');
const BUF = Buffer.allocUnsafe(64 * 1024);
// an accepted socket is already built: its onread slots are set directly (see ingress/fast-front.ts)
const syms = Object.getOwnPropertySymbols(new Socket());
const kBuffer = syms.find((s) => s.description === 'kBuffer');
const kBufferCb = syms.find((s) => s.description === 'kBufferCb');
if (!kBuffer || !kBufferCb) throw new Error('this node has no onread slots on net.Socket');

createServer({ noDelay: true }, (client: NetSocket) => {
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
  const c = client as unknown as { _handle: { useUserBuffer(b: Buffer): void }; [k: symbol]: unknown };
  c._handle.useUserBuffer(BUF);
  c[kBuffer] = BUF;
  c[kBufferCb] = (n: number, b: Buffer) => void upstream.write(b.toString('latin1', 0, n), 'latin1');
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  client.on('error', () => client.destroy());
  upstream.on('error', () => upstream.destroy());
}).listen(listenPort, '127.0.0.1');
