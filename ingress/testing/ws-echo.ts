// A minimal WebSocket echo backend for ingress tests (RFC 6455 handshake, text frames answered with
// "<name> <text>"). In-process: `attachWsEcho(server, name)`; in a lab pod:
//   node ingress/testing/ws-echo.ts --name NAME --port 8081   (prints "ready")
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { parseArgs } from 'node:util';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function frame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([0x80 | opcode, len])
      : len < 65536
        ? Buffer.from([0x80 | opcode, 126, len >> 8, len & 255])
        : Buffer.concat([
            Buffer.from([0x80 | opcode, 127]),
            Buffer.from(new BigUint64Array([BigInt(len)]).buffer).reverse(),
          ]);
  return Buffer.concat([head, payload]);
}

function serve(socket: Duplex, name: string): void {
  let buf = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0]! & 0x0f;
      const masked = (buf[1]! & 0x80) !== 0;
      let len = buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (buf.length < off + len) return;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i]! ^= buf[maskOff + (i % 4)]!;
      buf = buf.subarray(off + len);
      if (opcode === 1) socket.write(frame(1, Buffer.from(`${name} ${payload.toString('utf8')}`)));
      else if (opcode === 9) socket.write(frame(10, payload));
      else if (opcode === 8) {
        socket.end(frame(8, payload));
        return;
      }
    }
  });
  socket.on('error', () => socket.destroy());
  socket.on('end', () => socket.end());
}

/** Answers WebSocket upgrades on `server`. */
export function attachWsEcho(server: Server, name: string): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const accept = createHash('sha1')
      .update(key + GUID)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nx-ws-path: ${encodeURI(req.url ?? '')}\r\n\r\n`,
    );
    serve(socket, name);
  });
}

function isMain(): boolean {
  return (
    process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\/ingress\//, '/ingress/'))
  );
}

if (isMain()) {
  const { values } = parseArgs({
    options: { name: { type: 'string', default: 'ws' }, port: { type: 'string', default: '8081' } },
    strict: true,
  });
  const srv = createServer((_req, res) => res.end(`${values.name}\n`));
  attachWsEcho(srv, values.name);
  srv.listen(Number(values.port), '::', () => process.stdout.write('ready\n'));
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
}
