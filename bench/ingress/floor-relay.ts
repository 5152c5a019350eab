// The floor of a Node.js proxy on this machine, for `npm run bench:ingress -- --only ...,floor`: a TCP relay
// that does no HTTP work at all. Each client connection gets its own upstream connection to the backend; bytes
// go across as they come. Both sides read in place (node's `onread` mode into one buffer, as the ingress fast
// front does) and write latin1 strings (copies, so nothing points into the buffer after the callback).
// Not a proxy: no routing, no headers added, no 404 for other hosts.
//   node bench/ingress/floor-relay.ts LISTEN_PORT BACKEND_PORT
import { connect, createServer } from 'node:net';
import type { Socket as NetSocket } from 'node:net';
import { readInPlace } from '../../ingress/fast-front.ts';

const [listenPort, backendPort] = process.argv.slice(2).map(Number);
if (!listenPort || !backendPort) throw new Error('usage: floor-relay.ts LISTEN_PORT BACKEND_PORT');
const BUF = Buffer.allocUnsafe(64 * 1024);

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
  // an accepted socket reads in place by the fast front's own mechanism
  if (!readInPlace(client, (n, b) => void upstream.write(b.toString('latin1', 0, n), 'latin1')))
    throw new Error('this node cannot read accepted sockets in place');
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  client.on('error', () => client.destroy());
  upstream.on('error', () => upstream.destroy());
}).listen(listenPort, '127.0.0.1');
