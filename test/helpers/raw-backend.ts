// A backend speaking raw HTTP/1.1 for the ingress front's tests (ingress-front, ingress-h2): the path picks the
// response, in every framing a pod may use (Content-Length, chunked with a trailer, until close, interim 1xx,
// 204, malformed heads, big bodies). Loopback only.
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';

/** A backend speaking raw HTTP/1.1: the path picks the response. Counts connections. */
export async function rawBackend(): Promise<{ server: Server; port: number; conns: () => number; heads: string[] }> {
  let conns = 0;
  const heads: string[] = [];
  const server = createServer((sock: Socket) => {
    conns++;
    let buf = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end);
        const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
        const need = end + 4 + (cl ? Number(cl[1]) : 0);
        if (buf.length < need) return;
        const body = buf.subarray(end + 4, need).toString();
        buf = buf.subarray(need);
        heads.push(head);
        const [method, url] = head.split(' ');
        answer(sock, method!, url!, body);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, conns: () => conns, heads };
}

/** The body of `/big` and `/big-chunked`: 2 MiB + 7 bytes of a pattern (past any flow-control window). */
export const BIG = Buffer.from(Array.from({ length: 2 * 1024 * 1024 + 7 }, (_, i) => (i * 7 + (i >> 12)) & 0xff));
export const BIG_SHA256 = createHash('sha256').update(BIG).digest('hex');
/** The body of `/huge` and `/huge-chunked`: BIG six times (12 MiB: more than loopback's socket buffers take). */
export const HUGE = Buffer.concat(Array.from({ length: 6 }, () => BIG));

/** `data` in 64 KiB chunks, each chunk's framing next to its data, then the last chunk. */
export function chunked(data: Buffer): Buffer {
  const framed: Buffer[] = [];
  for (let i = 0; i < data.length; i += 65536) {
    const part = data.subarray(i, i + 65536);
    framed.push(Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n'));
  }
  framed.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(framed);
}

function answer(sock: Socket, method: string, url: string, body: string): void {
  const text = (s: string) =>
    `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${s.length}\r\n\r\n${method === 'HEAD' ? '' : s}`;
  switch (url) {
    case '/chunked':
      // chunk framing split across writes, a chunk extension and a trailer
      sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n5\r\nhel');
      setTimeout(() => sock.write('lo\r\n6;ext=1\r\n world\r\n'), 20);
      setTimeout(() => sock.write('0\r\nx-sum: 11\r\n\r\n'), 40);
      return;
    case '/until-close':
      sock.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it until close');
      return;
    case '/early':
      sock.write('HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n');
      sock.write(text('after hints'));
      return;
    case '/nocontent':
      sock.write('HTTP/1.1 204 No Content\r\nx-empty: yes\r\n\r\n');
      return;
    case '/malformed':
      sock.write('HTTP/1.1 abc nonsense\r\n\r\n');
      return;
    case '/split-header':
      sock.write('HTTP/1.1 200 OK\r\nx-a: b\nset-cookie: injected=1\r\ncontent-length: 2\r\n\r\nok');
      return;
    case '/both-framings':
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
      return;
    case '/server-pod':
      sock.write('HTTP/1.1 200 OK\r\nserver: pod/1.0\r\ncontent-length: 2\r\n\r\nok');
      return;
    case '/big':
    case '/huge': {
      const data = url === '/big' ? BIG : HUGE;
      sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${data.length}\r\n\r\n`);
      if (method !== 'HEAD') sock.write(data);
      return;
    }
    case '/big-chunked':
    case '/huge-chunked':
      sock.write('HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n');
      sock.write(chunked(url === '/big-chunked' ? BIG : HUGE));
      return;
    case '/cut':
      // 10 of the 100 bytes announced, then the connection ends: a failure after the response started
      sock.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789');
      return;
    case '/cut-chunked':
      sock.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\n0123456789\r\n');
      return;
    case '/dup-type':
      // a single-value header twice: HTTP/2 cannot carry it (node:http2 refuses the header list)
      sock.write('HTTP/1.1 200 OK\r\ncontent-type: a/b\r\nContent-Type: c/d\r\ncontent-length: 2\r\n\r\nok');
      return;
    case '/overlong':
      // more bytes than Content-Length announced, in the same write: only the announced ones are the response
      sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello world');
      return;
    case '/slow':
      // the answer 300 ms later (a request in flight while the ingress closes)
      setTimeout(() => sock.writable && sock.write(text(`${method} ${url} body=${body}`)), 300);
      return;
    case '/conn-close':
      sock.write(`HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 4\r\n\r\nbye\n`);
      sock.end();
      return;
    default:
      sock.write(text(`${method} ${url} body=${body}`));
  }
}
