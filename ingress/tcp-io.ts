// Batched TCP reads and direct writes for the fast front's sockets, and its TLS (native/tcp/kdp_tcp.c).
//
// A socket node built (accepted on the HTTP port, or connected to an endpoint) is adopted: its handle stops
// reading and its descriptor is watched by the addon's epoll set, which the libuv loop polls. When sockets are
// readable the addon reads every ready one once into one arena and calls JavaScript once for the batch; each
// read goes to the socket's `onRead(n, buf)` (the same shape as node's `onread` mode: the bytes live until the
// callback returns). Writes of latin1 strings go straight to write(2) while node's write queue for the socket is
// empty and it is not corked; what the kernel does not take (or anything written while node still queues) goes
// through `socket.write`, so order and backpressure stay node's. Close, errors and timers stay node's too: the
// descriptor is closed by node, which drops it from the epoll set with it (never removed by number after close).
// `kdp ingress --tcp-io auto|batch|node` chooses: auto takes the addon when it loads (no compiler at install time:
// node's reads), batch requires it, node never opens it.
//
// TLS (the HTTPS port, `--tls-io auto`): a socket adopted in peek mode (adoptPeek) reports its ClientHello without
// taking it from the kernel; startTls then gives it an SSL in the addon (node's OpenSSL), after which its reads are
// plaintext and writeLatin1, writeBytes and endWrites encrypt (ciphertext to write(2) while node queues nothing,
// else onto node's queue); stopPeek gives it back to node untouched, for node:tls. plainStream is the plaintext as
// a Duplex for node:http after a hand-off. With an onH2 callback startTls lets ALPN choose h2: the addon then runs
// the connection's HTTP/2 session (nghttp2), whose records go to onH2 and whose responses go back through H2Wire
// (ingress/h2-session.ts).
//
// Accept (acceptNative): the HTTPS port's listening socket can be handed to the addon, which accepts its
// connections and peeks their ClientHello itself. Such a connection has no node socket at first: a LightSock
// stands for it (the part of net.Socket the front uses), and the addon closes its descriptor. When it needs a
// node socket (node:tls takes it, a hand-off to node:http, a write the kernel did not take all of) node builds
// one over the same descriptor (nodeSocket) and the LightSock passes everything on to it from then on.
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import type { Server } from 'node:net';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';
import { KdpError } from '../src/common/errors.ts';
import { SCAN_LINE, SCAN_LINES, SCAN_TEXT } from './head-scan.ts';

/** auto: the addon when it loads; batch: the addon or an error; node: node's own reads */
export type TcpIo = 'auto' | 'batch' | 'node';

/**
 * A gathered write's source and pieces (native/tcp/kdp_tcp.c gather): `base` the source's place in the arena (-1:
 * `src` itself), the first n pairs of the spec, the strings they refer to.
 */
type GatherArgs = [base: number, n: number, s0: string, s1: string, s2: string, s3: string, src: Buffer];

interface Native {
  create(
    arena: Buffer,
    meta: Int32Array,
    onBatch: (count: number, ...texts: string[]) => void,
    heads?: Int32Array,
  ): object;
  /** the names a scanned head's line codes refer to (ingress/head-scan.ts): 0, or -EINVAL */
  headNames?(names: readonly string[]): number;
  /** the addon's entry for a head at the start of `buf` (ingress/head-scan.ts), null for none: for tests */
  headScan?(buf: Buffer): Int32Array | null;
  /** the strings a round makes, at most n (0..256; the limit before, or -EINVAL): for tests */
  textsMax?(n: number): number;
  watch(t: object, fd: number, id: number): number;
  unwatch(t: object, fd: number, id: number): number;
  forget(t: object, fd: number, id: number): void;
  writeLatin1(fd: number, s: string): number;
  /** the Int32Array gathered writes read their pieces from: 0 | -EINVAL */
  gatherSpec(t: object, spec: Int32Array): number;
  writeGather(t: object, fd: number, ...g: GatherArgs): number;
  writeBuffer(fd: number, b: Buffer): number;
  shutdownWrite(fd: number): number;
  listen(t: object, fd: number, lid: number): number;
  closeFd(t: object, fd: number, id: number): number;
  peek(t: object, fd: number, id: number, on: boolean): number;
  tlsContext(certPem: string, keyPem: string, cipherList: string, cipherSuites: string, ticketKeys?: Buffer): object;
  tlsAttach(t: object, fd: number, id: number, ctx: object, h2: boolean): number;
  tlsWrite(t: object, fd: number, id: number, data: string | Buffer, direct: boolean): number | Buffer;
  tlsHold(t: object, fd: number, id: number, data: string | Buffer): number;
  tlsGather(t: object, fd: number, id: number, hold: boolean, direct: boolean, ...g: GatherArgs): number | Buffer;
  tlsFlush(t: object, fd: number, id: number, direct: boolean): number | Buffer;
  tlsEnd(t: object, fd: number, id: number, direct: boolean): number | Buffer;
  // HTTP/2 over the addon's TLS (absent when the addon was built without nghttp2's header)
  h2Respond?(
    t: object,
    fd: number,
    id: number,
    stream: number,
    headers: string,
    body: Buffer | string | null,
    end: boolean,
  ): number;
  h2RespondLines?(
    t: object,
    fd: number,
    id: number,
    stream: number,
    status: string,
    lines: string,
    body: Buffer | string | null,
    end: boolean,
  ): number;
  /** h2RespondLines' header list alone (`name NUL value NUL ...`), or -errno: for tests */
  h2Lines?(status: string, lines: string): string | number;
  h2Data?(t: object, fd: number, id: number, stream: number, body: Buffer | string | null, end: boolean): number;
  h2Trailers?(t: object, fd: number, id: number, stream: number, headers: string): number;
  h2Reset?(t: object, fd: number, id: number, stream: number, code: number): number;
  h2Consume?(t: object, fd: number, id: number, stream: number, n: number): number;
  h2Goaway?(t: object, fd: number, id: number): number;
  h2Flush?(t: object, fd: number, id: number, direct: boolean): number | Buffer;
  h2State?(t: object, fd: number, id: number, stream: number): number;
  h2Done?(t: object, fd: number, id: number): boolean;
}

const NATIVE_PATH = fileURLToPath(new URL('../native/build/kdp_tcp.node', import.meta.url));
const EAGAIN = -11;
const E2BIG = -7;
/** the flags of a record of an HTTP/2 session (native/tcp/kdp_tcp.c) */
const H2_RECORD = 2;
/** the flags of a record of an accepted connection, or of a listener that failed to accept */
const ACCEPTED = 4;
/** the flags of a TLS record whose SSL has ciphertext to write (TLS_LATER: made after a TLS 1.3 handshake) */
const TLS_OUT = 1;
const TLS_LATER = 8;
/** ids from here up are the addon's (accepted connections) */
const ACCEPT_IDS = 0x40000000;

interface Adopted {
  readonly id: number;
  readonly fd: number;
  /** node's socket, or the LightSock of a connection the addon accepted (until node builds one for it) */
  sock: Socket;
  onRead: (n: number, buf: Buffer) => void;
  /** TLS in the addon (tlsAttach): reads are plaintext, writes go through tlsWrite */
  tls: boolean;
  /**
   * an HTTP/2 session in the addon: its records (H2Wire); `block`: a header block record's block (after its 8
   * bytes) as latin1, when the addon gave it
   */
  onH2: ((rec: Buffer, block: string | undefined) => void) | undefined;
  /** frames submitted since the last h2Flush (one flush per microtask checkpoint) */
  h2Dirty: boolean;
  /** after the session's frames went out (H2Wire's onFlushed) */
  h2Flushed: (() => void) | undefined;
  /** the SSL holds ciphertext not yet written (tlsHold, or tickets waiting for the next write): in `held` */
  held: boolean;
  onEnd: (errno: number) => void;
  /** in the epoll set */
  watched: boolean;
  paused: boolean;
  /** the end of the stream or a read error was reported: never watched again (it would be ready forever) */
  ended: boolean;
}

interface HandleView {
  _handle: { fd?: number; readStop?: () => number; readStart?: () => number; reading?: boolean } | null;
}

/** The process's batched I/O (one epoll set, one arena), once opened. */
interface Io {
  readonly n: Native;
  readonly t: object;
  readonly arena: Buffer;
  readonly meta: Int32Array;
  /** the round's HTTP/1 head entries (ingress/head-scan.ts), when the addon scans heads */
  readonly heads: Int32Array | undefined;
  readonly byId: Map<number, Adopted>;
  nextId: number;
}
let io: Io | undefined;
/** the read being delivered, its head entry's index in io.heads (0: none) and its text (when the addon gave it) */
let scanned: Buffer | undefined;
let scannedAt = 0;
let scannedString: string | undefined;
/** the read of this round last delivered, and where it is in the arena (writeGather's source without a lookup) */
let delivered: Buffer | undefined;
let deliveredAt = 0;
const ADOPTED = Symbol('kdp.adopted');
type Tagged = Socket & { [ADOPTED]?: Adopted | undefined };
/** the socket's Adopted (a property on the socket: a WeakMap lookup per write cost more) */
const adopted = {
  get: (sock: Socket): Adopted | undefined => (sock as Tagged)[ADOPTED],
  set: (sock: Socket, a: Adopted): void => void ((sock as Tagged)[ADOPTED] = a),
  delete: (sock: Socket): void => void ((sock as Tagged)[ADOPTED] = undefined),
};

let native: Native | string | undefined;
/** The addon, or why it does not load (loaded once per process). */
function load(): Native | string {
  if (native === undefined) {
    try {
      native = createRequire(import.meta.url)(NATIVE_PATH) as Native;
    } catch (err) {
      native = (err as Error).message;
    }
  }
  return native;
}

/** Why the addon does not load; undefined when it does. */
export function tcpIoUnavailable(): string | undefined {
  const n = load();
  return typeof n === 'string' ? n : undefined;
}

/** Throws KDP_INGRESS_CONFIG when `want` is batch and the addon does not load (the CLI checks before starting). */
export function assertTcpIo(want: TcpIo): void {
  const why = want === 'batch' ? tcpIoUnavailable() : undefined;
  if (why !== undefined)
    throw new KdpError('KDP_INGRESS_CONFIG', `--tcp-io batch: the native addon is unavailable: ${why}`, {
      details: { path: NATIVE_PATH },
    });
}

// a round reads at most 64 sockets; an HTTP/2 session may make hundreds of records from one read
const RECORDS = 2048;
/** a head entry's room in the addon: at most 64 lines (kdp_tcp.c SCAN_ENTRY) */
const HEAD_ENTRY = SCAN_LINES + SCAN_LINE * 64;

/**
 * Opens the batched I/O over `arena` (once per process); false when the addon does not load. With `headNames`
 * (ingress/head-scan.ts) the addon scans the HTTP/1 heads its reads start with: scannedHead.
 */
export function openTcpIo(arena: Buffer, headNames?: readonly string[]): boolean {
  if (io) return io.arena === arena;
  const n = load();
  if (typeof n === 'string') return false;
  const meta = new Int32Array(RECORDS * 4);
  const byId = new Map<number, Adopted>();
  const scan = headNames !== undefined && n.headNames?.(headNames) === 0;
  // the round's records' entry indexes, then at most one entry per socket read (64 a round)
  const heads = scan ? new Int32Array(RECORDS + 64 * HEAD_ENTRY) : undefined;
  const t = n.create(arena, meta, (count, ...texts) => batch(count, texts), heads);
  n.gatherSpec(t, spec);
  io = { n, t, arena, meta, heads, byId, nextId: 1 };
  return true;
}

/** The transport a front asked for: true when its plain sockets are read in batches. */
export function chooseTcpIo(arena: Buffer, want: TcpIo, headNames?: readonly string[]): boolean {
  if (want === 'node') return false;
  assertTcpIo(want);
  return openTcpIo(arena, headNames);
}

/**
 * The addon's entry for the HTTP/1 head `buf` starts with (ingress/head-scan.ts) while `buf` is the read being
 * delivered (its onRead runs): its index in headTable(); 0 when there is none (another buffer, no head scanned).
 */
export function scannedHead(buf: Uint8Array): number {
  return buf === scanned ? scannedAt : 0;
}

/** The text of the read scannedHead found a head in, as latin1, when the addon gave it (a read of at most 2 KiB). */
export function scannedText(buf: Uint8Array): string | undefined {
  return buf === scanned ? scannedString : undefined;
}

/** the table scannedHead's indexes are in */
export function headTable(): Int32Array | undefined {
  return io?.heads;
}

/**
 * The addon's entry for a head at the start of `buf`, for tests: null for none, undefined without the addon. The
 * names replace the process's (a test's process has no front).
 */
export function headScanOf(names: readonly string[], buf: Buffer): Int32Array | null | undefined {
  const n = load();
  if (typeof n === 'string' || n.headNames?.(names) !== 0) return undefined;
  return n.headScan!(buf);
}

/**
 * For tests: the addon makes at most `n` strings a round (256 by default; 0 sends every scanned read through
 * latin1Slice and every HTTP/2 header block through toString, the paths a round that has made 256 takes). Returns
 * the limit before; undefined without the addon.
 */
export function limitRoundTexts(n: number): number | undefined {
  const a = load();
  return typeof a === 'string' ? undefined : a.textsMax?.(n);
}

/** The descriptor is still the socket's (node nulls the handle when it closes it). */
function alive(sock: Socket): boolean {
  return (sock as unknown as HandleView)._handle !== null && !sock.destroyed;
}

function unwatch(a: Adopted): void {
  if (a.watched && alive(a.sock)) io!.n.unwatch(io!.t, a.fd, a.id);
  a.watched = false;
}

/**
 * `texts`: strings the addon made in the round: of scanned reads (a read's head entry says which) and HTTP/2
 * header blocks (heads[i] = -1 - k)
 */
function batch(count: number, texts: string[]): void {
  const { meta, byId, arena } = io!;
  delivered = undefined; // (a read's bytes stay in the arena during its round only)
  for (let i = 0; i < count; i++) {
    const r = meta[i * 4 + 2]!;
    if (meta[i * 4 + 3] === ACCEPTED) {
      const off = meta[i * 4 + 1]!;
      accepted(meta[i * 4]!, r, r > 0 ? arena.toString('latin1', off, off + r) : '');
      continue;
    }
    const a = byId.get(meta[i * 4]!);
    if (a === undefined || !alive(a.sock)) continue;
    if (meta[i * 4 + 3] === H2_RECORD) {
      const off = meta[i * 4 + 1]!;
      const k = io!.heads !== undefined ? io!.heads[i]! : 0;
      a.onH2?.(arena.subarray(off, off + r), k < 0 ? texts[-1 - k] : undefined);
      continue;
    }
    if (r > 0) {
      const off = meta[i * 4 + 1]!;
      const buf = arena.subarray(off, off + r);
      delivered = buf;
      deliveredAt = off;
      const heads = io!.heads;
      if (heads !== undefined && heads[i] !== 0) {
        scanned = buf;
        scannedAt = heads[i]!;
        const k = heads[scannedAt + SCAN_TEXT]!;
        scannedString = k >= 0 ? texts[k] : undefined;
        try {
          a.onRead(r, buf);
        } finally {
          scanned = scannedString = undefined;
        }
      } else a.onRead(r, buf);
    }
    // the SSL's handshake messages or alert (an HTTP/2 session's frames: then its onFlushed); what it made after
    // a TLS 1.3 handshake (session tickets) waits for the next write while the connection goes on: a request's
    // response then carries them (one write instead of two)
    const f = meta[i * 4 + 3];
    if (f === TLS_LATER && (r > 0 || r === EAGAIN) && alive(a.sock)) hold(a);
    else if ((f === TLS_OUT || f === TLS_LATER) && alive(a.sock)) {
      wrote(a, io!.n.tlsFlush(io!.t, a.fd, a.id, direct(a.sock)));
      if (r === EAGAIN) a.h2Flushed?.();
    }
    if (r <= 0 && r !== EAGAIN) {
      a.ended = true;
      byId.delete(a.id);
      a.onEnd(r);
      // out of the epoll set (it would be ready forever): a socket onEnd closed left it with its descriptor
      unwatch(a);
    }
  }
}

/** node queues nothing for the socket: bytes can go straight to write(2) */
function direct(sock: Socket): boolean {
  return sock.writableLength === 0 && sock.writableCorked === 0 && !sock.writableEnded && alive(sock);
}

/** What tlsWrite, tlsFlush or tlsEnd returned: 0 all written, a Buffer for node's queue, or -errno. */
function tlsOut(a: Adopted, r: number | Buffer): boolean {
  if (r === 0) return true;
  if (typeof r === 'number') {
    a.sock.destroy(ioError(r, 'write'));
    return false;
  }
  return a.sock.writableEnded ? false : a.sock.write(r);
}

/**
 * Takes over the socket's reads; false (nothing changed) without the batched I/O, without a descriptor, or when
 * node already holds bytes it read. `onEnd(0)`: the peer ended the stream; `onEnd(-errno)`: a read error; the
 * socket is no longer watched after either.
 */
export function adopt(sock: Socket, onRead: (n: number, buf: Buffer) => void, onEnd: (errno: number) => void): boolean {
  if (!io) return false;
  const h = (sock as unknown as HandleView)._handle;
  const fd = h?.fd;
  if (!h || typeof fd !== 'number' || fd < 0 || typeof h.readStop !== 'function' || sock.readableLength > 0)
    return false;
  const a: Adopted = {
    id: io.nextId,
    fd,
    sock,
    onRead,
    onEnd,
    tls: false,
    onH2: undefined,
    h2Dirty: false,
    h2Flushed: undefined,
    held: false,
    watched: false,
    paused: false,
    ended: false,
  };
  io.nextId = io.nextId >= ACCEPT_IDS - 1 ? 1 : io.nextId + 1;
  if (io.n.watch(io.t, fd, a.id) !== 0) return false;
  h.readStop();
  h.reading = false;
  sock.pause(); // node does not start reading again by itself (a resume() would)
  a.watched = true;
  adopted.set(sock, a);
  io.byId.set(a.id, a);
  // the descriptor is closed with the socket, which takes it out of the epoll set; the addon forgets the id it
  // had under that number (a socket that got the number since keeps its own)
  sock.once('close', () => {
    a.watched = false;
    io?.byId.delete(a.id);
    io?.n.forget(io.t, a.fd, a.id);
  });
  return true;
}

/** Gives the socket's reads back to node (a hand-off): node reads again once the socket is resumed. */
export function release(sock: Socket): void {
  const a = adopted.get(sock);
  if (!a) return;
  unwatch(a);
  io?.byId.delete(a.id);
  adopted.delete(sock);
  // node's Readable still counts the read it asked for when the socket was built (`reading`), so it never asks
  // again: the handle is started here, as net's tryReadStart does
  const h = (sock as unknown as HandleView)._handle;
  if (h && !h.reading && typeof h.readStart === 'function') {
    h.reading = true;
    h.readStart();
  }
}

/** An Error for a read's or write's -errno, with node's code (ECONNRESET, ...). */
export function ioError(errno: number, syscall: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(errno);
  return Object.assign(new Error(`${syscall} ${code}`), { code, errno, syscall });
}

/** socket.pause() for node's reads and adopted ones alike. */
export function pauseReads(sock: Socket): void {
  const a = adopted.get(sock);
  if (!a) {
    sock.pause();
    return;
  }
  a.paused = true;
  unwatch(a);
}

/** socket.resume() for node's reads and adopted ones alike. */
export function resumeReads(sock: Socket): void {
  const a = adopted.get(sock);
  if (!a) {
    sock.resume();
    return;
  }
  a.paused = false;
  if (!a.watched && !a.ended && alive(sock) && io!.n.watch(io!.t, a.fd, a.id) === 0) a.watched = true;
}

/** socket.isPaused() for node's reads and adopted ones alike. */
export function readsPaused(sock: Socket): boolean {
  const a = adopted.get(sock);
  return a ? a.paused : sock.isPaused();
}

/**
 * socket.write(s, 'latin1'), straight to the kernel while node queues nothing for an adopted socket. `last`: the
 * caller ends the stream (endWrites) right after, in the same tick: through the addon's TLS, these bytes then go
 * out with the close_notify in one write (else at the next microtask checkpoint).
 */
export function writeLatin1(sock: Socket, s: string, last = false): boolean {
  const a = adopted.get(sock);
  if (a !== undefined && a.tls) return last && direct(sock) ? tlsHold(a, s) : tlsWrite(a, s);
  if (a !== undefined && direct(sock)) {
    const r = io!.n.writeLatin1(a.fd, s);
    if (r === s.length) return true;
    if (r >= 0) return sock.write(s.slice(r), 'latin1');
    if (r !== EAGAIN) {
      sock.destroy(ioError(r, 'write'));
      return false;
    }
  }
  return sock.write(s, 'latin1');
}

// A gathered write: the bytes of a head the front forwards, as pieces of the read it came in and a few strings,
// copied by the addon into one write (native/tcp/kdp_tcp.c gather): no string is made of them. The pieces are
// n pairs in the array gatherSpec returns (the addon's, read in place): [from, to] bytes of the source;
// [gatherString(k), 0] the k-th string; [GATHER_CRLF, 0] and [GATHER_COLON, 0] CRLF and ": ". More than
// GATHER_ROOM bytes: the string is made and written as writeLatin1 writes it.
export const GATHER_CRLF = -16;
export const GATHER_COLON = -17;
export const GATHER_ROOM = 16384;
export const gatherString = (k: 0 | 1 | 2 | 3): number => -1 - k;
let spec = new Int32Array(512);

/** The array of a gathered write's pieces, with room for `pairs` (what it holds is kept when it grows). */
export function gatherSpec(pairs: number): Int32Array {
  if (2 * pairs > spec.length) {
    const more = new Int32Array(Math.max(2 * pairs, 2 * spec.length));
    more.set(spec);
    spec = more;
    if (io !== undefined) io.n.gatherSpec(io.t, spec);
  }
  return spec;
}

/**
 * The text a gathered write stands for (`src`: the bytes, or their latin1 text; `pieces`: its spec): what the
 * addon writes. Made when the addon cannot write it, for a retry (pieces kept), and for tests.
 */
export function gatherText(
  src: Buffer | string,
  pieces: Int32Array,
  n: number,
  s0 = '',
  s1 = '',
  s2 = '',
  s3 = '',
): string {
  let out = '';
  for (let i = 0; i < 2 * n; i += 2) {
    const a = pieces[i]!;
    if (a >= 0) out += typeof src === 'string' ? src.slice(a, pieces[i + 1]) : src.toString('latin1', a, pieces[i + 1]);
    else if (a === GATHER_CRLF) out += '\r\n';
    else if (a === GATHER_COLON) out += ': ';
    else out += a === -1 ? s0 : a === -2 ? s1 : a === -3 ? s2 : s3;
  }
  return out;
}

/**
 * writeLatin1(sock, gatherText(src, gatherSpec's array, n, ...), last), the addon copying the pieces itself while it
 * holds the socket.
 */
export function writeGather(
  sock: Socket,
  src: Buffer,
  n: number,
  s0: string,
  s1: string,
  s2: string,
  s3: string,
  last = false,
): boolean {
  const a = adopted.get(sock);
  if (a !== undefined) {
    const x = io!;
    // the source as an offset in the arena (the read being delivered), else the Buffer itself
    const base = src === delivered ? deliveredAt : -1;
    if (a.tls) {
      if (!alive(sock)) return false;
      const hold = last && direct(sock);
      const r = x.n.tlsGather(x.t, a.fd, a.id, hold, !hold && direct(sock), base, n, s0, s1, s2, s3, src);
      if (r !== E2BIG) return hold ? held(a, r as number) : wrote(a, r);
    } else if (direct(sock)) {
      const r = x.n.writeGather(x.t, a.fd, base, n, s0, s1, s2, s3, src);
      if (r === 0) return true;
      if (r > 0) {
        const s = gatherText(src, spec, n, s0, s1, s2, s3);
        return sock.write(s.slice(s.length - r), 'latin1');
      }
      if (r !== E2BIG) {
        sock.destroy(ioError(r, 'write'));
        return false;
      }
    }
  }
  return writeLatin1(sock, gatherText(src, spec, n, s0, s1, s2, s3), last);
}

/** socket.write(b): through the socket's TLS when the addon holds it. */
export function writeBytes(sock: Socket, b: Buffer): boolean {
  const a = adopted.get(sock);
  if (a !== undefined && a.tls) return tlsWrite(a, b);
  return sock.write(b);
}

/** Plaintext through the socket's SSL (nothing once node closed the socket). */
function tlsWrite(a: Adopted, data: string | Buffer): boolean {
  if (!alive(a.sock)) return false;
  return wrote(a, io!.n.tlsWrite(io!.t, a.fd, a.id, data, direct(a.sock)));
}

/** What a TLS write, flush or end returned (what the SSL held went first, in the same write). */
function wrote(a: Adopted, r: number | Buffer): boolean {
  a.held = false;
  return tlsOut(a, r);
}

/**
 * Plaintext into the socket's SSL, its ciphertext written with the next write or end, at the next microtask
 * checkpoint at the latest.
 */
function tlsHold(a: Adopted, data: string): boolean {
  if (!alive(a.sock)) return false;
  return held(a, io!.n.tlsHold(io!.t, a.fd, a.id, data));
}

/** What a held TLS write returned: its ciphertext goes out at the next microtask checkpoint at the latest. */
function held(a: Adopted, r: number): boolean {
  if (r < 0) {
    a.sock.destroy(ioError(r, 'write'));
    return false;
  }
  a.held = true;
  queueMicrotask(() => flushOne(a));
  return true;
}

/** Writes what the socket's SSL holds, unless a write or end since took it out. */
function flushOne(a: Adopted): void {
  if (!a.held) return;
  a.held = false;
  if (alive(a.sock)) tlsOut(a, io!.n.tlsFlush(io!.t, a.fd, a.id, direct(a.sock)));
}

/**
 * Sockets whose SSL holds session tickets (Adopted.held): `heldNew` since the timer last fired, `heldOld` before;
 * each firing writes what the old ones still hold, so tickets wait TICKET_WAIT_MS to twice that for a response
 * to go out with.
 */
let heldNew: Adopted[] = [];
let heldOld: Adopted[] = [];
let heldTimer: NodeJS.Timeout | undefined;
/** (ms) a response written in the same tick (tlsHold) waits for the microtask checkpoint only */
const TICKET_WAIT_MS = 25;

function hold(a: Adopted): void {
  if (a.held) return;
  a.held = true;
  heldNew.push(a);
  heldTimer ??= setTimeout(flushHeld, TICKET_WAIT_MS);
}

/** Writes what the old generation's SSLs still hold (a write since took it out: nothing for those). */
function flushHeld(): void {
  for (const a of heldOld) flushOne(a);
  heldOld = heldNew;
  heldNew = [];
  heldTimer = heldOld.length > 0 ? setTimeout(flushHeld, TICKET_WAIT_MS) : undefined;
}

/** socket.end(): after the TLS close_notify when the addon holds the socket's TLS. */
export function endWrites(sock: Socket): void {
  const a = adopted.get(sock);
  if (a !== undefined && a.tls && alive(sock) && !sock.writableEnded) {
    wrote(a, io!.n.tlsEnd(io!.t, a.fd, a.id, direct(sock)));
  }
  sock.end();
}

// ------------------------------------------------------------------------------------------------------- TLS

/**
 * An SSL_CTX of the addon for a certificate (PEM chain) and its key, with node:tls's default ciphers and, when
 * given, these session ticket keys (80 bytes); throws KDP_INGRESS_CONFIG when OpenSSL refuses them, undefined
 * without the addon.
 */
export function tlsContext(certPem: string, keyPem: string, ciphers: string, ticketKeys?: Buffer): object | undefined {
  const n = load();
  if (typeof n === 'string') return undefined;
  const list = ciphers.split(':');
  try {
    return n.tlsContext(
      certPem,
      keyPem,
      list.filter((c) => !c.startsWith('TLS_')).join(':'),
      list.filter((c) => c.startsWith('TLS_')).join(':'),
      ...(ticketKeys ? [ticketKeys] : []),
    );
  } catch (err) {
    throw new KdpError('KDP_INGRESS_CONFIG', `TLS context: ${(err as Error).message}`);
  }
}

/**
 * Takes over the reads of a socket on the HTTPS port in peek mode: `onPeek` gets its first bytes (the
 * ClientHello) while they stay in the kernel. In that callback the caller either calls startTls, or gives the
 * socket back with stopPeek (node:tls then reads the hello itself). false when the socket cannot be adopted.
 */
export function adoptPeek(
  sock: Socket,
  onPeek: (n: number, buf: Buffer) => void,
  onEnd: (errno: number) => void,
): boolean {
  const pre = adopted.get(sock);
  if (pre !== undefined && sock instanceof LightSock) {
    // accepted by the addon: in peek mode from the start
    pre.onRead = onPeek;
    pre.onEnd = onEnd;
    return true;
  }
  if (!adopt(sock, onPeek, onEnd)) return false;
  const a = adopted.get(sock)!;
  if (io!.n.peek(io!.t, a.fd, a.id, true) === 0) return true;
  release(sock);
  return false;
}

/**
 * The socket is TLS in the addon from now on (server side): `onRead` gets plaintext. With `onH2`, ALPN may choose
 * h2 (when the client offers it): the connection is then an HTTP/2 session in the addon and `onH2` gets its
 * records (H2Wire). false when it cannot be.
 */
export function startTls(
  sock: Socket,
  ctx: object,
  onRead: (n: number, buf: Buffer) => void,
  onH2?: (rec: Buffer, block: string | undefined) => void,
): boolean {
  const a = adopted.get(sock);
  if (a === undefined || !alive(sock)) return false;
  if (io!.n.tlsAttach(io!.t, a.fd, a.id, ctx, onH2 !== undefined && h2InAddon()) !== 0) return false;
  a.tls = true;
  a.onRead = onRead;
  a.onH2 = onH2;
  return true;
}

/** The addon can hold HTTP/2 sessions (it was built with nghttp2's header). */
export function h2InAddon(): boolean {
  return io !== undefined && typeof io.n.h2Respond === 'function';
}

/** HTTP/2 error codes (RFC 9113, 7) the front sends */
export const H2_INTERNAL_ERROR = 2;
export const H2_CANCEL = 8;
/** -EBADMSG from H2Wire.respondLines: a header list HTTP/2 cannot carry (nothing was sent) */
export const H2_UNCARRIED = -74;

/**
 * The addon's conversion of a response head to HTTP/2's header list (H2Wire.respondLines), for tests; undefined
 * when the addon does not load or has no HTTP/2.
 */
export function h2Lines(status: string, lines: string): string | number | undefined {
  const n = load();
  return typeof n === 'string' ? undefined : n.h2Lines?.(status, lines);
}

/**
 * The HTTP/2 session the addon holds for a socket (after startTls with onH2 and ALPN h2). Header lists are
 * `name NUL value NUL ...` strings (latin1); a write returns the bytes of the stream's body still queued in the
 * addon (its flow control), or -errno (-ENOENT: the stream is gone). What is submitted goes out in one flush per
 * microtask checkpoint; `onFlushed` runs after each flush (drained streams, the end of the session).
 */
export class H2Wire {
  readonly #a: Adopted;
  readonly #n: Required<Native>;

  constructor(sock: Socket, onFlushed: () => void) {
    this.#a = adopted.get(sock)!;
    this.#n = io!.n as Required<Native>;
    this.#a.h2Flushed = onFlushed;
  }

  respond(stream: number, headers: string, body: Buffer | string | null, end: boolean): number {
    const a = this.#submit();
    return a ? this.#n.h2Respond(io!.t, a.fd, a.id, stream, headers, body, end) : -9;
  }

  /**
   * The response head as a status ("200") and HTTP/1 header lines (`Name: value\r\n` ...), made into HTTP/2's
   * header list by the addon as headerBlock (h2-session.ts) would; H2_UNCARRIED, nothing sent, when HTTP/2
   * cannot carry it.
   */
  respondLines(stream: number, status: string, lines: string, body: Buffer | string | null, end: boolean): number {
    const a = this.#submit();
    return a ? this.#n.h2RespondLines(io!.t, a.fd, a.id, stream, status, lines, body, end) : -9;
  }

  data(stream: number, body: Buffer | string | null, end: boolean): number {
    const a = this.#submit();
    return a ? this.#n.h2Data(io!.t, a.fd, a.id, stream, body, end) : -9;
  }

  trailers(stream: number, headers: string): number {
    const a = this.#submit();
    return a ? this.#n.h2Trailers(io!.t, a.fd, a.id, stream, headers) : -9;
  }

  reset(stream: number, code: number): void {
    const a = this.#submit();
    if (a) this.#n.h2Reset(io!.t, a.fd, a.id, stream, code);
  }

  /** `n` bytes of the stream's request body were taken: the peer may send as much again */
  consume(stream: number, n: number): void {
    const a = n > 0 ? this.#submit() : undefined;
    if (a) this.#n.h2Consume(io!.t, a.fd, a.id, stream, n);
  }

  /** GOAWAY: no new streams; the session ends when the open ones are done */
  goaway(): void {
    const a = this.#submit();
    if (a) this.#n.h2Goaway(io!.t, a.fd, a.id);
  }

  /** the stream's body bytes still queued in the addon; -2 (ENOENT) when the stream is gone */
  queued(stream: number): number {
    const a = this.#a;
    return alive(a.sock) ? this.#n.h2State(io!.t, a.fd, a.id, stream) : -2;
  }

  /** the session wants neither to read nor to write any more: the connection can close */
  get done(): boolean {
    const a = this.#a;
    return !alive(a.sock) || this.#n.h2Done(io!.t, a.fd, a.id);
  }

  /** the socket, for a call that submits frames (flushed once at the next microtask checkpoint); undefined: gone */
  #submit(): Adopted | undefined {
    const a = this.#a;
    if (!alive(a.sock)) return undefined;
    if (!a.h2Dirty) {
      a.h2Dirty = true;
      queueMicrotask(this.#flush);
    }
    return a;
  }

  readonly #flush = (): void => {
    const a = this.#a;
    a.h2Dirty = false;
    if (!alive(a.sock)) return;
    tlsOut(a, this.#n.h2Flush(io!.t, a.fd, a.id, direct(a.sock)));
    if (alive(a.sock)) a.h2Flushed?.();
  };
}

/**
 * A socket in peek mode goes back to node's reads, its bytes unread: the socket to hand to node:tls (node's
 * own, built now for a connection the addon accepted).
 */
export function stopPeek(sock: Socket): Socket {
  const a = adopted.get(sock);
  if (a === undefined) return sock;
  if (alive(sock)) io!.n.peek(io!.t, a.fd, a.id, false);
  const s = nodeSocket(sock);
  release(s);
  return s;
}

/**
 * A stream of the plaintext of a socket whose TLS the addon holds, for node:http after a hand-off: it reads
 * through the adopted reads (paused while the stream's buffer is full) and writes through writeBytes and
 * endWrites. It answers what node:http and the server ask of a TLS socket (addresses, `encrypted`,
 * `alpnProtocol`, timeouts); destroying either side destroys both.
 */
export function plainStream(sock: Socket): Duplex {
  const a = adopted.get(sock)!;
  const d = new Duplex({
    read: () => resumeReads(sock),
    write: (chunk: Buffer, _enc, cb) => {
      if (writeBytes(sock, chunk) || sock.destroyed) cb();
      else sock.once('drain', () => cb());
    },
    final: (cb) => {
      endWrites(sock);
      cb();
    },
    destroy: (err, cb) => {
      sock.destroy();
      cb(err);
    },
  });
  a.onRead = (n, buf) => {
    if (!d.push(Buffer.from(buf.subarray(0, n)))) pauseReads(sock);
  };
  a.onEnd = (errno) => {
    if (errno === 0) d.push(null);
    else d.destroy(ioError(errno, 'read'));
  };
  pauseReads(sock); // until node:http reads
  sock.on('error', (err) => d.destroy(err));
  sock.on('close', () => d.destroy());
  sock.on('timeout', () => d.emit('timeout'));
  const view = d as unknown as Record<string, unknown>;
  for (const k of ['remoteAddress', 'remotePort', 'remoteFamily', 'localAddress', 'localPort'] as const)
    Object.defineProperty(d, k, { get: () => sock[k] });
  view.encrypted = true;
  view.alpnProtocol = false;
  view.setTimeout = (ms: number, cb?: () => void) => {
    sock.setTimeout(ms);
    if (cb) d.once('timeout', cb);
    return d;
  };
  view.setNoDelay = () => d;
  view.setKeepAlive = () => d;
  return d;
}

// ------------------------------------------------------------------------------------------------------ accept

interface Listener {
  readonly lid: number;
  /** the addon's descriptor of the listening socket */
  readonly fd: number;
  readonly port: number;
  readonly onAccept: (sock: Socket) => void;
  readonly onError: (err: NodeJS.ErrnoException) => void;
  /** watched again after an accept failed (out of descriptors) */
  retry: NodeJS.Timeout | undefined;
  /** keeps the process alive while the port is open, as node's listening handle did */
  readonly ref: NodeJS.Timeout;
  closed: boolean;
}
const listeners = new Map<number, Listener>();
let nextLid = 1;
/** how long a listener rests after an accept failed (EMFILE, ENOMEM) */
const ACCEPT_RETRY_MS = 100;

/** The accept side of a listening socket the addon took (acceptNative). */
export interface NativeListener {
  /** stops accepting and closes the listening socket (connections accepted stay open) */
  close(): void;
}

/**
 * Takes over the accepts of a listening server (after its 'listening'): the addon accepts its connections and
 * gives each to `onAccept` as a LightSock in peek mode (`adoptPeek` takes it as it is); node's server is closed
 * (its socket stays open in the addon). undefined, the server untouched, without the batched I/O or when the
 * server has no descriptor of its own (a cluster worker's round-robin handle).
 */
export function acceptNative(
  server: Server,
  onAccept: (sock: Socket) => void,
  onError: (err: NodeJS.ErrnoException) => void,
): NativeListener | undefined {
  if (!io) return undefined;
  const fd = (server as unknown as HandleView)._handle?.fd;
  const addr = server.address();
  if (typeof fd !== 'number' || fd < 0 || addr === null || typeof addr === 'string') return undefined;
  const lid = -nextLid;
  nextLid = nextLid >= 0x7ffffff ? 1 : nextLid + 1;
  const own = io.n.listen(io.t, fd, lid);
  if (own < 0) return undefined;
  server.close();
  const l: Listener = {
    lid,
    fd: own,
    port: addr.port,
    onAccept,
    onError,
    retry: undefined,
    ref: setInterval(() => undefined, 0x7fffffff),
    closed: false,
  };
  listeners.set(lid, l);
  return {
    close: () => {
      if (l.closed) return;
      l.closed = true;
      clearTimeout(l.retry);
      clearInterval(l.ref);
      listeners.delete(lid);
      io?.n.closeFd(io.t, l.fd, lid);
    },
  };
}

/** A record of an accepted connection ("listener fd port address"), or a listener's failed accept (r < 0). */
function accepted(id: number, r: number, text: string): void {
  const { n, t, byId } = io!;
  if (r < 0) {
    const l = listeners.get(id);
    if (l === undefined) return;
    l.onError(ioError(r, 'accept'));
    l.retry = setTimeout(() => {
      l.retry = undefined;
      if (!l.closed) n.watch(t, l.fd, l.lid);
    }, ACCEPT_RETRY_MS);
    return;
  }
  const sp1 = text.indexOf(' ');
  const sp2 = text.indexOf(' ', sp1 + 1);
  const sp3 = text.indexOf(' ', sp2 + 1);
  const l = listeners.get(Number(text.slice(0, sp1)));
  const fd = Number(text.slice(sp1 + 1, sp2));
  if (l === undefined) {
    n.closeFd(t, fd, id);
    return;
  }
  const sock = new LightSock(fd, id, text.slice(sp3 + 1), Number(text.slice(sp2 + 1, sp3)), l.port);
  const a: Adopted = {
    id,
    fd,
    sock: sock as unknown as Socket,
    onRead: () => undefined,
    onEnd: () => undefined,
    tls: false,
    onH2: undefined,
    h2Dirty: false,
    h2Flushed: undefined,
    held: false,
    watched: true,
    paused: false,
    ended: false,
  };
  byId.set(id, a);
  adopted.set(a.sock, a);
  l.onAccept(a.sock);
}

/** The node socket of a connection: `sock` itself, or the one node builds now for a connection the addon accepted. */
export function nodeSocket(sock: Socket): Socket {
  return sock instanceof LightSock ? sock.real() : sock;
}

/** the events of the node socket built under a LightSock that it passes on */
const PASSED_ON = ['drain', 'finish', 'end', 'timeout', 'close'] as const;

/**
 * A connection the addon accepted, while node has no socket for it: the part of net.Socket the front and the
 * plaintext stream use. Writes go straight to write(2) (cork gathers them into one); end is shutdown(2) and
 * destroy is close(2), by the addon. Anything else it cannot do alone (a write the kernel did not take all of,
 * a timeout) builds node's socket over the descriptor (real()), to which it passes everything on from then on.
 */
class LightSock extends EventEmitter {
  readonly fd: number;
  readonly id: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly remoteFamily: string;
  readonly localPort: number;
  #real: Socket | undefined;
  #handle: { fd: number } | null;
  #ended = false;
  #finished = false;
  #corked = 0;
  #held: Buffer[] = [];
  #heldBytes = 0;

  constructor(fd: number, id: number, ip: string, port: number, localPort: number) {
    super();
    this.fd = fd;
    this.id = id;
    this.remoteAddress = ip;
    this.remotePort = port;
    this.remoteFamily = ip.includes(':') ? 'IPv6' : 'IPv4';
    this.localPort = localPort;
    this.#handle = { fd };
  }

  /** node's socket over the descriptor, built the first time (the addon then no longer closes it) */
  real(): Socket {
    if (this.#real) return this.#real;
    if (this.#handle === null) {
      // closed by the addon: its descriptor number may be another file's now, never to be wrapped
      const gone = new Socket();
      gone.destroy();
      return gone;
    }
    const real = new Socket({
      fd: this.fd,
      readable: true,
      writable: true,
      pauseOnCreate: true,
    } as ConstructorParameters<typeof Socket>[0]);
    this.#real = real;
    this.#handle = null;
    const a = adopted.get(this as unknown as Socket);
    if (a !== undefined && io !== undefined) {
      const { n, t, byId } = io;
      a.sock = real;
      adopted.set(real, a);
      real.once('close', () => {
        a.watched = false;
        byId.delete(a.id);
        n.forget(t, a.fd, a.id);
      });
    }
    for (const ev of PASSED_ON) real.on(ev, (...args: unknown[]) => this.emit(ev, ...args));
    real.on('error', (err) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    for (let i = 0; i < this.#corked; i++) real.cork();
    if (this.#held.length > 0) real.write(this.#takeHeld());
    if (this.#ended) real.end();
    return real;
  }

  get _handle(): HandleView['_handle'] {
    return this.#real ? (this.#real as unknown as HandleView)._handle : this.#handle;
  }
  get destroyed(): boolean {
    return this.#real ? this.#real.destroyed : this.#handle === null;
  }
  get writableLength(): number {
    return this.#real ? this.#real.writableLength : this.#heldBytes;
  }
  get writableCorked(): number {
    return this.#real ? this.#real.writableCorked : this.#corked;
  }
  get writableEnded(): boolean {
    return this.#real ? this.#real.writableEnded : this.#ended;
  }
  get writableFinished(): boolean {
    return this.#real ? this.#real.writableFinished : this.#finished;
  }
  get readableLength(): number {
    return this.#real ? this.#real.readableLength : 0;
  }

  write(data: Buffer | string, encoding?: BufferEncoding): boolean {
    if (this.#real) return this.#real.write(data, encoding ?? 'utf8');
    if (this.#ended || this.#handle === null) return false;
    const b = typeof data === 'string' ? Buffer.from(data, encoding ?? 'utf8') : data;
    if (this.#corked > 0) {
      this.#held.push(b); // (not copied: as node's write, the caller does not reuse it)
      this.#heldBytes += b.length;
      return true;
    }
    return this.#send(b);
  }

  /** bytes to write(2); what the kernel does not take goes to node's socket (built now) */
  #send(b: Buffer): boolean {
    const r = io!.n.writeBuffer(this.fd, b);
    if (r === b.length) return true;
    if (r >= 0 || r === EAGAIN) return this.real().write(r > 0 ? b.subarray(r) : b);
    this.destroy(ioError(r, 'write'));
    return false;
  }

  #takeHeld(): Buffer {
    const b = this.#held.length === 1 ? this.#held[0]! : Buffer.concat(this.#held, this.#heldBytes);
    this.#held = [];
    this.#heldBytes = 0;
    return b;
  }

  cork(): void {
    if (this.#real) this.#real.cork();
    else this.#corked++;
  }

  uncork(): void {
    if (this.#real) return this.#real.uncork();
    if (this.#corked === 0 || --this.#corked > 0 || this.#held.length === 0 || this.#handle === null) return;
    this.#send(this.#takeHeld());
  }

  end(): this {
    if (this.#real) {
      this.#real.end();
      return this;
    }
    if (this.#ended || this.#handle === null) return this;
    this.#corked = 0;
    if (this.#held.length > 0) this.#send(this.#takeHeld()); // a partial write builds node's socket
    const real = this.#node();
    if (real !== undefined) {
      real.end(); // after what is queued on it
      return this;
    }
    if (this.#handle === null) return this; // the write failed: destroyed
    this.#ended = true;
    const r = io!.n.shutdownWrite(this.fd);
    process.nextTick(() => {
      if (r < 0 && r !== -107) return void this.destroy(ioError(r, 'shutdown')); // -ENOTCONN: the peer reset
      this.#finished = true;
      this.emit('finish');
    });
    return this;
  }

  #node(): Socket | undefined {
    return this.#real;
  }

  destroy(err?: Error): this {
    if (this.#real) {
      this.#real.destroy(err);
      return this;
    }
    if (this.#handle === null) return this;
    this.#handle = null;
    this.#held = [];
    this.#heldBytes = 0;
    const a = adopted.get(this as unknown as Socket);
    if (a !== undefined) {
      a.watched = false;
      io?.byId.delete(a.id);
    }
    io?.n.closeFd(io.t, this.fd, this.id);
    process.nextTick(() => {
      if (err && this.listenerCount('error') > 0) this.emit('error', err);
      this.emit('close', err !== undefined);
    });
    return this;
  }

  setNoDelay(): this {
    return this; // the addon set TCP_NODELAY when it accepted
  }

  setTimeout(ms: number, cb?: () => void): this {
    this.real().setTimeout(ms, cb);
    return this;
  }

  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
}
