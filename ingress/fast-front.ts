// The plain-HTTP front: a fast path for the common request, everything else handed to node:http.
//
// Each connection on the HTTP port starts here. A request is served on the fast path when it is a strictly
// well-formed HTTP/1.1 GET or HEAD without a body (no Content-Length, no Transfer-Encoding, no Expect, no
// Upgrade, exactly one valid Host, only CRLF line ends, no obs-fold, only token header names and printable
// values) whose route simply proxies (HTTP backend, no affinity, canary, CORS, redirects, allow-list or app-root)
// to a Service with endpoints. It is parsed here, proxied over raw keep-alive sockets to the endpoint, and the
// upstream response is relayed with its framing kept (Content-Length, chunked, or until close) and only the
// hop-by-hop headers removed: no request/response objects, no header maps, one write per direction.
//
// Anything else (a body, an upgrade, a malformed or unusual head, an answer the front does not give itself such
// as 404/403/308/503) hands the connection, with the bytes not yet consumed, to the node:http server (llhttp),
// which owns it from then on. So every odd or hostile input is judged by llhttp, exactly as before.
//
// The HTTP/2 lane (FastFront.lane): a stream of an HTTP/2 session whose request the same rule takes (bodiless
// GET/HEAD, fastDecision()) goes over the same Exchange and RawPool; its head is built from the pseudo-headers,
// the body de-chunked. node:http2's streams (FastFront.stream) answer through the core API (respond()), the
// others going to node:http2's compat layer; the addon's sessions (ingress/h2-session.ts) answer through the
// addon, the others relayed to the same general path.
import { performance } from 'node:perf_hooks';
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { connect as netConnect, Socket as NetSocket } from 'node:net';
import type { Socket } from 'node:net';
import type { Logger } from '../src/common/log.ts';
import type { RouteOptions } from './annotations.ts';
import { decide, forwardedAround, PROXY_SET_HEADERS } from './decide.ts';
import type { Decision, GatewayForward, RequestFacts } from './decide.ts';
import { validHost } from './match.ts';
import { readClientHello } from './client-hello.ts';
import type { ClientHello } from './client-hello.ts';
import {
  adopt,
  adoptPeek,
  chooseTcpIo,
  endWrites,
  GATHER_COLON,
  GATHER_CRLF,
  gatherSpec,
  gatherString,
  gatherText,
  headTable,
  ioError,
  nodeSocket,
  pauseReads,
  plainStream,
  readsPaused,
  release,
  resumeReads,
  scannedHead,
  scannedText,
  startTls,
  stopPeek,
  tcpIoUnavailable,
  writeBytes,
  writeGather,
  writeLatin1,
} from './tcp-io.ts';
import type { TcpIo } from './tcp-io.ts';
import {
  GOOD_REQUEST,
  GOOD_RESPONSE,
  HeadScanner,
  NAME_ID,
  PLAIN,
  SCAN_COUNT,
  SCAN_END,
  SCAN_FIRST_EOL,
  SCAN_FLAGS,
  SCAN_LINE,
  SCAN_LINES,
} from './head-scan.ts';
import type { PathRoute, RouteTable, Upstream } from './types.ts';

/** What ClientConn needs of the addon's HTTP/2 session of its connection (ingress/h2-session.ts). */
export interface H2Connection {
  /** a record of the addon's session (`block`: a header block record's block as latin1, when the addon gave it) */
  record(rec: Buffer, block?: string): void;
  /** streams in progress */
  readonly busy: boolean;
  /** the front's clock at the last record */
  readonly last: number;
  /** GOAWAY: the streams open finish, then the session ends */
  close(): void;
  /** the connection is gone */
  gone(): void;
}

/** What the front reports per request (metrics and the access log). */
export interface FrontRecord {
  readonly start: number;
  /** '1.1', or '2.0' for a request of the HTTP/2 lane */
  readonly httpVersion: string;
  readonly ip: string;
  readonly method: string;
  readonly url: string;
  readonly referer: string | undefined;
  readonly userAgent: string | undefined;
  readonly requestLength: number;
  readonly hostHeader: string;
  readonly reqId: string;
  readonly route: PathRoute | undefined;
  readonly ingress: string;
  readonly upstream: Upstream;
  status: number;
  bytes: number;
  upstreamAddr: string;
  upstreamStatus: string;
  /** from the upstream request to its response head (-1: no response); the access log formats it */
  upstreamSeconds: number;
  /** the response's Content-Length (-1: none, or no response) */
  upstreamLength: number;
}

export interface FrontHooks {
  readonly log: Logger;
  table(): RouteTable;
  /** the connection (with `rest` unread) goes to node:http for good (a TLS one: to the HTTPS server's) */
  handOff(socket: Socket, rest: Buffer): void;
  /**
   * The HTTPS port's TLS in the addon: the context (tcp-io tlsContext) for a ClientHello the front terminates
   * itself, undefined for one node:tls takes (ALPN h2, a name whose certificate the addon lacks).
   */
  tlsContextFor?(hello: ClientHello): object | undefined;
  /** A connection on the HTTPS port node:tls takes, nothing read from it yet. */
  tlsHandOff?(socket: Socket): void;
  /** A connection on the HTTPS port whose TLS the addon terminates (counted). */
  tlsInAddon?(): void;
  /**
   * The HTTP/2 session of a connection whose TLS the addon holds and whose ALPN chose h2 (ingress/h2-session.ts's
   * H2Session, which relays the streams the front does not serve to the server's node:http2 handler); `end` ends
   * the connection. Without it, the HTTPS port's h2 connections are node:tls's.
   */
  h2Session?(front: FastFront, sock: Socket, ip: string, port: number, end: () => void): H2Connection;
  nextEndpoint(u: Upstream): string;
  requestId(incoming: string | undefined): string;
  record(r: FrontRecord): void;
  readonly maxAttempts: number;
  /** the Server response header */
  readonly serverHeader: string;
  /** a head with a longer line (CRLF included), or longer in all, is handed to node:http, which answers 414/400 */
  readonly maxHeaderLine: number;
  readonly maxHeaderSize: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxIdlePerEndpoint: number;
  /** plain TCP sockets: read in batches by the native addon (ingress/tcp-io.ts) or by node; default auto */
  readonly tcpIo?: TcpIo;
}

const CLIENT_IDLE_MS = 75_000;
/**
 * The timeouts of the front (client idle, upstream read, idle pooled connections) are checked by one sweep every
 * TICK_MS against a coarse clock (`FastFront.tick`) stamped on each read: no timer is armed, refreshed or removed
 * per request. A timeout fires between its value and its value + TICK_MS.
 */
const TICK_MS = 250;
const CRLF2 = Buffer.from('\r\n\r\n');
/** node's Buffer method under toString('latin1'), without toString's argument checks (not in node's types) */
interface Latin1Slice {
  latin1Slice(start: number, end: number): string;
}
const HAS_LATIN1_SLICE = typeof (Buffer.prototype as unknown as Partial<Latin1Slice>).latin1Slice === 'function';
/**
 * A small read (a head, with a short body at most) as one latin1 string, searched for the end of the head as a
 * string: one call into node instead of two (Buffer#indexOf, then toString); undefined for a larger one.
 */
function headText(buf: Buffer): string | undefined {
  if (buf.length > 2048) return undefined;
  return HAS_LATIN1_SLICE ? (buf as unknown as Latin1Slice).latin1Slice(0, buf.length) : buf.toString('latin1');
}
/** Where the head of a read ends (its empty line's CRLF CRLF), searched in `text` when there is one; -1: not yet. */
function headEnd(buf: Buffer, text: string | undefined): number {
  return text !== undefined ? text.indexOf('\r\n\r\n') : buf.indexOf(CRLF2);
}
/** The head that ends at `end`, up to the CRLF of its last line, as a latin1 string. */
function headOf(buf: Buffer, text: string | undefined, end: number): string {
  return text !== undefined ? text.slice(0, end + 2) : buf.toString('latin1', 0, end + 2);
}
/** status codes as strings, by number (no string built per response) */
const STATUS_CODES = Array.from({ length: 1000 }, (_, i) => String(i));

const isOws = (c: number) => c === 32 || c === 9;
/** `s[from, to)` without optional whitespace (SP, HTAB) at either end: a header value. */
function owsValue(s: string, from: number, to: number): string {
  while (from < to && isOws(s.charCodeAt(from))) from++;
  while (to > from && isOws(s.charCodeAt(to - 1))) to--;
  return s.slice(from, to);
}
/** `b[from, to)` as a decimal of 1 to 15 digits, optional whitespace around it; -1 when it is not one. */
function decimalValue(b: Buffer, from: number, to: number): number {
  while (from < to && isOws(b[from]!)) from++;
  while (to > from && isOws(b[to - 1]!)) to--;
  if (to === from || to - from > 15) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = b[i]! - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
/** `word` (lower case) is in `b[from, to)`, letters compared without case (as the value's includes(word)). */
function hasWord(b: Buffer, from: number, to: number, word: string): boolean {
  for (let i = from; i + word.length <= to; i++) {
    let j = 0;
    for (; j < word.length; j++) {
      const c = b[i + j]!;
      if ((c >= 65 && c <= 90 ? c + 32 : c) !== word.charCodeAt(j)) break;
    }
    if (j === word.length) return true;
  }
  return false;
}
// request headers never forwarded as they came: hop-by-hop, and the ones the proxy sets itself (decide.ts)
const DROP_REQUEST = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'http2-settings',
  'proxy',
  ...PROXY_SET_HEADERS,
]);
// hop-by-hop, and Server: the ingress sends its own (nginx does not pass the upstream's either)
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'trailer', 'upgrade', 'server']);
// and the connection-specific headers HTTP/2 forbids (RFC 9113 8.2.2), for the HTTP/2 lane
const DROP_RESPONSE_H2 = new Set([...DROP_RESPONSE, 'transfer-encoding', 'http2-settings', 'te']);
// the request headers the front looks at
const REQUEST_ACTED = new Set([
  ...DROP_REQUEST,
  'host',
  'content-length',
  'transfer-encoding',
  'expect',
  'x-forwarded-for',
  'referer',
  'user-agent',
]);
/** by length, 1 for the length of a request header the front looks at (a name of another length is none of them) */
const REQUEST_NAMES = new Uint8Array(64);
for (const n of REQUEST_ACTED) REQUEST_NAMES[n.length] = 1;
// the response headers the front looks at
const RESPONSE_ACTED = new Set([...DROP_RESPONSE_H2, 'content-length']);
/**
 * The names a head's lines are known by (ingress/head-scan.ts: a line's code is an index here): only these are
 * lower-cased, most headers are copied as they are.
 */
export const HEAD_NAMES: readonly string[] = ['', ...new Set([...REQUEST_ACTED, ...RESPONSE_ACTED])];
/** by a line's name code: 1 when the set has the name (a Set lookup per line cost ~100 instructions) */
const byCode = (set: ReadonlySet<string>) => Uint8Array.from(HEAD_NAMES, (n) => (set.has(n) ? 1 : 0));
const DROP_REQUEST_CODE = byCode(DROP_REQUEST);
const DROP_RESPONSE_CODE = byCode(DROP_RESPONSE);
const DROP_RESPONSE_H2_CODE = byCode(DROP_RESPONSE_H2);
const SCANNER = new HeadScanner(HEAD_NAMES);
const RETRYABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ETIMEDOUT_CONNECT',
  'UPSTREAM_CLOSED',
]);

const fastRoutes = new WeakMap<object, boolean>();
/** Whether a route (or the default route) only proxies: nothing the slow path would answer or add itself. */
function simpleRoute(route: PathRoute | undefined, o: RouteOptions): boolean {
  const key = route ?? o;
  let ok = fastRoutes.get(key);
  if (ok === undefined) {
    ok =
      o.backendProtocol === 'HTTP' &&
      !o.affinity &&
      !o.cors &&
      !o.allowSources &&
      o.appRoot === undefined &&
      o.permanentRedirect === undefined &&
      o.responseHeaders.length === 0 &&
      (route === undefined || (!route.sslRedirect && route.canary === undefined));
    fastRoutes.set(key, ok);
  }
  return ok;
}

/** A Gateway API decision the front can carry out: nothing to do besides forwarding the request. */
function plainForward(g: GatewayForward, route: PathRoute | undefined): boolean {
  return (
    route?.gateway?.kind !== 'GRPCRoute' &&
    g.requestHeaders.length === 0 &&
    g.responseHeaders.length === 0 &&
    g.host === undefined &&
    g.mirrors.length === 0 &&
    !g.requestTimeoutMs &&
    !g.backendRequestTimeoutMs
  );
}

type ProxyDecision = Extract<Decision, { kind: 'proxy' }>;

/**
 * The front's rule, for both lanes (HTTP/1.1 and HTTP/2): the decision when it only forwards, so the front can
 * carry it out; undefined when node:http / node:http2 must (every answer the ingress gives itself: 404, 403,
 * 503, redirects, preflight; a route with options the front does not implement; a Gateway API route that does
 * more than forward; a rewritten target with bytes that are not printable ASCII).
 */
function fastDecision(table: RouteTable, facts: RequestFacts): ProxyDecision | undefined {
  const d = decide(table, facts);
  if (d.kind !== 'proxy' || !simpleRoute(d.route, d.options)) return undefined;
  // Gateway API: only a route that just forwards (no header filter, host rewrite, mirror, timeout; not gRPC)
  if (d.gateway !== undefined && !plainForward(d.gateway, d.route)) return undefined;
  if (d.target !== facts.url && /[^\x21-\x7e]/.test(d.target)) return undefined;
  return d;
}

function errorResponse(status: number, text: string, body: string, server: string): string {
  return `HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\nserver: ${server}\r\n\r\n${body}`;
}

// ---------------------------------------------------------------------------------------------- upstream side

interface Conn {
  readonly sock: Socket;
  readonly endpoint: string;
  ex: Exchange | undefined;
  /** served at least one response (a failure before any byte on a reused connection is retryable) */
  reused: boolean;
  connected: boolean;
  /** the front's clock (`FastFront.tick`) when the connection last read a byte, was given a request or went idle */
  last: number;
}

// ------------------------------------------------------------------------------------------- reads in place

/**
 * One buffer every socket of the front reads into (node's `onread` mode): a read then costs no
 * allocation and skips the Readable stream layer (`push`, the `data` event). Bytes in it live only until the read
 * callback returns: whatever is kept or written on (a partial head, a large body) is copied first (`own`).
 */
const READ_BUF = Buffer.allocUnsafe(1024 * 1024);

/** `b` itself, or a copy when it is a view of READ_BUF (which the next read overwrites). */
function own(b: Buffer): Buffer {
  return b.buffer === READ_BUF.buffer ? Buffer.from(b) : b;
}

/**
 * The two slots node keeps the `onread` option of a net.Socket in. net.connect() takes the option; a socket the
 * server accepted is already built, so its slots are set directly (with the handle told to read into the buffer).
 * Found by their description on a probe socket; when a node release renames them, accepted sockets keep the
 * stream layer (`data` events) and nothing else changes.
 */
const ONREAD_SLOTS = ((): { buffer: symbol; callback: symbol } | undefined => {
  const syms = Object.getOwnPropertySymbols(new NetSocket());
  const buffer = syms.find((x) => x.description === 'kBuffer');
  const callback = syms.find((x) => x.description === 'kBufferCb');
  const gen = syms.find((x) => x.description === 'kBufferGen');
  return buffer && callback && gen ? { buffer, callback } : undefined;
})();

type ReadCallback = (n: number, buf: Buffer) => boolean | void;
interface InPlace {
  _handle?: { useUserBuffer?: (b: Buffer) => void } | null;
  [k: symbol]: unknown;
}

/**
 * Switches an accepted socket (TCP, or TLS: its TLS wrap takes a user buffer as a TCP handle does, decrypted bytes
 * land in it) to reads in place; false when it cannot (unknown node internals).
 */
export function readInPlace(sock: Socket, cb: ReadCallback): boolean {
  const s = sock as unknown as InPlace;
  const handle = s._handle;
  if (!ONREAD_SLOTS || typeof handle?.useUserBuffer !== 'function' || s[ONREAD_SLOTS.buffer] !== null) return false;
  // bytes node already read and holds for a `data` listener would never come out in place: that socket keeps events
  if (sock.readableLength > 0) return false;
  handle.useUserBuffer(READ_BUF);
  s[ONREAD_SLOTS.buffer] = READ_BUF;
  s[ONREAD_SLOTS.callback] = cb;
  return true;
}

/**
 * A socket reading in place goes back to `data` events (a hand-off to node:http or the h2c server): the handle
 * keeps reading into READ_BUF, each read is copied and pushed into the socket's Readable side as node would.
 */
function readAsStream(sock: Socket): void {
  if (!ONREAD_SLOTS) return;
  const s = sock as unknown as InPlace;
  if (s[ONREAD_SLOTS.buffer] !== READ_BUF) return;
  s[ONREAD_SLOTS.callback] = ((n: number, buf: Buffer) => sock.push(Buffer.from(buf.subarray(0, n)))) as ReadCallback;
}

/** Raw keep-alive connections per endpoint (`ip:port`). */
class RawPool {
  readonly #idle = new Map<string, Conn[]>();
  readonly #all = new Set<Conn>();
  readonly #keepAliveMs: number;
  readonly #maxIdle: number;
  readonly #clock: { readonly tick: number };
  /** upstream sockets are read in batches (ingress/tcp-io.ts) */
  readonly #batched: boolean;

  constructor(keepAliveMs: number, maxIdle: number, clock: { readonly tick: number }, batched: boolean) {
    this.#batched = batched;
    this.#keepAliveMs = keepAliveMs;
    this.#maxIdle = maxIdle;
    this.#clock = clock;
  }

  acquire(endpoint: string, connectTimeoutMs: number): Conn {
    const idle = this.#idle.get(endpoint);
    while (idle && idle.length > 0) {
      const c = idle.pop()!;
      if (!c.sock.destroyed) {
        c.last = this.#clock.tick; // the read timeout counts from the request
        return c;
      }
    }
    const colon = endpoint.lastIndexOf(':');
    let host = endpoint.slice(0, colon);
    if (host.startsWith('[')) host = host.slice(1, -1);
    const onRead = (n: number, buf: Uint8Array): boolean => {
      if (!c.ex) {
        sock.destroy();
        return false;
      }
      c.last = this.#clock.tick;
      c.ex.onData(n === buf.length ? (buf as Buffer) : (buf as Buffer).subarray(0, n));
      return true;
    };
    const sock = netConnect({
      host,
      port: Number(endpoint.slice(colon + 1)),
      noDelay: true,
      ...(this.#batched ? {} : { onread: { buffer: READ_BUF, callback: onRead } }),
    });
    const c: Conn = { sock, endpoint, ex: undefined, reused: false, connected: false, last: this.#clock.tick };
    this.#all.add(c);
    // the connect timeout is the only socket timer (new connections only); reads are timed by sweep()
    sock.setTimeout(connectTimeoutMs);
    sock.once('connect', () => {
      // the end of the stream or a read error: as node reports them (close, or error then close); a socket the
      // addon cannot watch is read through data events
      if (
        this.#batched &&
        !adopt(sock, onRead, (errno) => (errno === 0 ? sock.destroy() : sock.destroy(ioError(errno, 'read'))))
      )
        sock.on('data', (b: Buffer) => onRead(b.length, b));
      c.connected = true;
      c.last = this.#clock.tick;
      sock.setTimeout(0);
    });
    sock.on('timeout', () => (c.ex ? c.ex.onTimeout() : sock.destroy()));
    sock.on('error', (err: NodeJS.ErrnoException) => c.ex?.onError(err.code ?? 'ECONNRESET'));
    sock.on('close', () => {
      this.#all.delete(c);
      const list = this.#idle.get(endpoint);
      const i = list ? list.indexOf(c) : -1;
      if (i >= 0) list!.splice(i, 1);
      c.ex?.onError('UPSTREAM_CLOSED');
    });
    return c;
  }

  release(c: Conn, reusable: boolean): void {
    c.ex = undefined;
    if (!reusable || c.sock.destroyed) {
      c.sock.destroy();
      return;
    }
    c.reused = true;
    // a response that completed while the client's writes were backed up left the socket paused; the client's
    // 'drain' would resume it, but a client gone before draining never does: an idle socket is always read
    if (readsPaused(c.sock)) resumeReads(c.sock);
    let list = this.#idle.get(c.endpoint);
    if (!list) this.#idle.set(c.endpoint, (list = []));
    if (list.length >= this.#maxIdle) {
      c.sock.destroy();
      return;
    }
    c.last = this.#clock.tick;
    list.push(c);
  }

  /** Upstream read timeouts of the connections in use, keep-alive timeouts of the idle ones. */
  sweep(now: number): void {
    for (const c of this.#all) {
      const ex = c.ex;
      if (ex) {
        if (c.connected && now - c.last >= ex.readTimeoutMs) ex.onTimeout();
      } else if (now - c.last >= this.#keepAliveMs) c.sock.destroy();
    }
  }

  /** Closes the idle connections of endpoints not in `live`; busy ones close after their response. */
  retain(live: ReadonlySet<string>): void {
    for (const [ep, list] of this.#idle) {
      if (live.has(ep)) continue;
      this.#idle.delete(ep);
      for (const c of list) c.sock.destroy();
    }
  }

  close(): void {
    this.#idle.clear();
    for (const c of this.#all) c.sock.destroy();
  }
}

// ------------------------------------------------------------------------------------------------ one exchange

const enum_ = { HEAD: 0, LENGTH: 1, CHUNKED: 2, CLOSE: 3, DONE: 4 } as const;
type State = (typeof enum_)[keyof typeof enum_];

/**
 * The client side of an exchange: an HTTP/1.1 connection (ClientConn: the response goes out as it came, framing
 * kept) or an HTTP/2 stream (H2Client: status and headers through `respond`, the body de-chunked).
 */
export interface ClientSide {
  readonly hooks: FrontHooks;
  readonly pool: RawPool;
  readonly texts: FrontTexts;
  /** the HTTP/2 stream's side, undefined for HTTP/1.1 */
  readonly h2:
    | {
        /**
         * The response head: the status ("200") and the header lines to send (`Name: value\r\n` ..., HTTP/1.1's
         * hop-by-hop and framing headers dropped), and the whole body when it came with the head (`endStream`
         * then true); false, nothing sent, when HTTP/2 cannot carry them.
         */
        respond(status: string, lines: string, endStream: boolean, body?: Buffer): boolean;
      }
    | undefined;
  /** the stream's exchange begins (HTTP/2 only) */
  start?(ex: Exchange, rec: FrontRecord, endpoint: string): void;
  /** `last`: the response ends with `s` and the connection closes after it (done follows in the same tick) */
  writeRaw(s: string, last?: boolean): void;
  /**
   * writeRaw of the response head gathered over `src` (HTTP/1.1 only; tcp-io's writeGather, its n pieces in
   * gatherSpec's array; s0 the status line made here, s1 `connection: close`, s2 the server line)
   */
  writeGather(src: Buffer, n: number, statusLine: string, last?: boolean): void;
  writeBody(b: Buffer, from: Socket): void;
  cork(): void;
  uncork(): void;
  /** the 502 (or 504) the front answers itself when the upstream failed before its response started */
  fail(timeout: boolean): void;
  done(rec: FrontRecord, close: boolean): void;
  abort(): void;
}

/** the pieces of a gathered response head after the status line: the proxy's lines (tcp-io's writeGather) */
const CLOSE_PIECE = gatherString(1);
const SERVER_PIECE = gatherString(2);
const CONNECTION_CLOSE = 'connection: close\r\n';
/** body bytes that go in one write with a gathered head, at most */
const GATHER_BODY = 8192;

/** What writes an exchange's upstream request when its text is not made: its client connection. */
export interface RequestWriter {
  /** `src`: the read the request came in, during the call that took it (else gone: a retry); `head`: its text */
  writeRequest(sock: Socket, src: Buffer | undefined, head: string, id: string): void;
}

/** One request relayed to one endpoint (retried on another when the connection fails before any byte). */
export class Exchange {
  readonly #front: ClientSide;
  readonly #rec: FrontRecord;
  /** the upstream request's text, or (with #writer) the client's request head it is made of */
  readonly #reqHead: string;
  readonly #writer: RequestWriter | undefined;
  readonly #isHead: boolean;
  readonly #o: RouteOptions;
  #attempt = 0;
  #conn: Conn | undefined;
  #state: State = enum_.HEAD;
  #buf: Buffer | undefined;
  #remaining = 0;
  // chunked parser: 0 size line, 1 data, 2 CRLF after data, 3 trailers
  #cstate = 0;
  #line = '';
  #t0 = 0;
  #keepUpstream = true;
  #closeClient = false;
  #gotBytes = false;

  /**
   * `reqHead`: the upstream request, or with `writer` the client's head `writer` makes it of; `closeClient`: the
   * client sent `Connection: close`, its connection ends after this response
   */
  constructor(
    front: ClientSide,
    rec: FrontRecord,
    reqHead: string,
    writer: RequestWriter | undefined,
    isHead: boolean,
    o: RouteOptions,
    closeClient: boolean,
  ) {
    this.#front = front;
    this.#rec = rec;
    this.#reqHead = reqHead;
    this.#writer = writer;
    this.#isHead = isHead;
    this.#o = o;
    this.#closeClient = closeClient;
  }

  get readTimeoutMs(): number {
    return this.#o.readTimeoutMs;
  }

  /** `src`: the read the request came in (RequestWriter), during the call that took it */
  start(endpoint: string, src?: Buffer): void {
    const r = this.#rec;
    this.#t0 = this.#attempt === 0 ? r.start : performance.now();
    r.upstreamAddr = r.upstreamAddr === '-' ? endpoint : `${r.upstreamAddr}, ${endpoint}`;
    const c = this.#front.pool.acquire(endpoint, this.#o.connectTimeoutMs);
    this.#conn = c;
    this.#gotBytes = false;
    c.ex = this;
    const w = this.#writer;
    if (w === undefined) writeLatin1(c.sock, this.#reqHead);
    else w.writeRequest(c.sock, src, this.#reqHead, r.reqId);
  }

  onTimeout(): void {
    const code = this.#conn?.connected ? 'ETIMEDOUT' : 'ETIMEDOUT_CONNECT';
    this.#conn?.sock.destroy();
    this.onError(code);
  }

  onError(code: string): void {
    const c = this.#conn;
    if (!c || c.ex !== this || this.#state === enum_.DONE) return;
    c.ex = undefined;
    c.sock.destroy();
    if (this.#state === enum_.CLOSE && code === 'UPSTREAM_CLOSED') {
      this.#finish(); // the body ended with the connection (no length given)
      return;
    }
    if (this.#state !== enum_.HEAD || this.#gotBytes) {
      // the response had started: nothing to do but cut the client connection
      this.#state = enum_.DONE;
      this.#front.abort();
      return;
    }
    const retryable = RETRYABLE.has(code) || (code === 'UPSTREAM_CLOSED' && c.reused);
    const eps = this.#rec.upstream.endpoints;
    if (retryable && this.#attempt + 1 < Math.min(this.#front.hooks.maxAttempts, eps.length)) {
      this.#attempt++;
      const i = eps.indexOf(c.endpoint);
      this.start(eps[(i + 1) % eps.length]!);
      return;
    }
    if (retryable && c.reused && this.#attempt === 0 && code !== 'ETIMEDOUT_CONNECT') {
      // a kept-alive connection the endpoint had closed: one fresh connection to the same endpoint
      this.#attempt++;
      this.start(c.endpoint);
      return;
    }
    this.#state = enum_.DONE;
    const timeout = code === 'ETIMEDOUT' || code === 'ETIMEDOUT_CONNECT';
    this.#rec.status = timeout ? 504 : 502;
    if (this.#rec.upstreamStatus === '-') this.#rec.upstreamStatus = String(this.#rec.status);
    this.#rec.bytes = timeout ? 16 : 12;
    this.#front.fail(timeout);
    this.#front.done(this.#rec, this.#closeClient);
  }

  onData(b: Buffer): void {
    this.#gotBytes = true;
    if (this.#state === enum_.HEAD) {
      // the addon's entry for the head, when this read starts with it (else the head's text is made and scanned
      // here); the head is parsed from the read's bytes
      const at = this.#buf === undefined ? scannedHead(b) : 0;
      const buf = this.#buf ? Buffer.concat([this.#buf, b]) : b;
      let end: number;
      let table: Int32Array;
      if (at !== 0) {
        table = headTable()!;
        end = table[at + SCAN_END]!;
      } else {
        const text = headText(buf);
        end = headEnd(buf, text);
        if (end < 0) {
          if (buf.length > 64 * 1024) return this.#fail();
          this.#buf = own(buf);
          return;
        }
        table = SCANNER.scan(headOf(buf, text, end));
      }
      this.#buf = undefined;
      if (!this.#head(table, at, buf, end + 4)) this.#fail();
      return;
    }
    this.#body(b);
  }

  #fail(): void {
    // a malformed upstream response: 502 (nothing was sent to the client yet while parsing the head)
    this.#gotBytes = false;
    this.onError('EPROTO');
  }

  /**
   * Parses the response head at the start of `read` (its lines in the entry `table[e...]` of ingress/head-scan.ts;
   * the body from `from` on), writes it and any body bytes that came with it to the client.
   */
  #head(table: Int32Array, e: number, read: Buffer, from: number): boolean {
    const more = read.length - from; // body bytes in the read
    const headLen = from - 2; // (up to the CRLF of the last header line)
    if ((table[e + SCAN_FLAGS]! & GOOD_RESPONSE) === 0) return false;
    let eol = table[e + SCAN_FIRST_EOL]!;
    // 'HTTP/1.x DDD'
    const status = (read[9]! - 48) * 100 + (read[10]! - 48) * 10 + read[11]! - 48;
    const code = STATUS_CODES[status]!;
    if (status >= 100 && status < 200) {
      if (status === 101) return false;
      // an interim response (103 Early Hints, ...): dropped, the final one follows
      if (more > 0) this.onData(read.subarray(from));
      return true;
    }
    const http10 = read[7] === 48;
    // runs of the head as it came, cut where a line is dropped. HTTP/1.1: the status line as it came from an
    // HTTP/1.1 server that gave a reason phrase. HTTP/2: the header lines only (the status goes as :status); the
    // addon makes them HTTP/2's header list and refuses one HTTP/2 cannot carry (a single-value header twice:
    // nothing is sent, the answer is a 502), as node:http2's respond() does
    const h2 = this.#front.h2;
    // the head to send, gathered from the read (tcp-io's writeGather): runs of its bytes, the status line when
    // made here, the proxy's lines
    const spec = gatherSpec(table[e + SCAN_COUNT]! + 8);
    let n = 0;
    let statusLine = '';
    let run = 0;
    if (h2 !== undefined) run = eol + 2;
    else if (http10 || eol === 12) {
      statusLine = `HTTP/1.1 ${code} ${eol > 12 ? read.toString('latin1', 13, eol) : ''}\r\n`;
      spec[0] = gatherString(0);
      n = 1;
      run = eol + 2;
    }
    let length = -1;
    let chunked = false;
    let te = false;
    let upstreamClose = http10;
    const past = e + SCAN_LINES + table[e + SCAN_COUNT]! * SCAN_LINE;
    for (let l = e + SCAN_LINES; l < past; l += SCAN_LINE) {
      const pos = table[l]!;
      const colon = table[l + 1]!;
      eol = table[l + 2]!;
      if (colon <= pos) return false;
      const id = table[l + 3]! & NAME_ID;
      if (id === 0) continue;
      const name = HEAD_NAMES[id]!;
      let drop = false;
      if (name === 'connection') {
        if (hasWord(read, colon + 1, eol, 'close')) upstreamClose = true;
        else if (http10 && hasWord(read, colon + 1, eol, 'keep-alive')) upstreamClose = false;
        drop = true;
      } else if (DROP_RESPONSE_CODE[id] === 1) drop = true;
      else if (name === 'content-length') {
        const n = decimalValue(read, colon + 1, eol);
        if (n < 0) return false;
        if (length >= 0 && n !== length) return false;
        if (length >= 0) drop = true; // the same value twice: sent once
        length = n;
      } else if (name === 'transfer-encoding') {
        te = true;
        chunked = /(?:^|,)\s*chunked\s*$/i.test(read.toString('latin1', colon + 1, eol));
        if (h2) drop = true; // HTTP/2 has its own framing: the body goes out de-chunked
      } else if (h2 && DROP_RESPONSE_H2_CODE[id] === 1) drop = true;
      if (drop) {
        if (run < pos) {
          spec[2 * n] = run;
          spec[2 * n++ + 1] = pos;
        }
        run = eol + 2;
      }
    }
    if (run < headLen) {
      spec[2 * n] = run;
      spec[2 * n++ + 1] = headLen;
    }
    const r = this.#rec;
    r.status = status;
    r.upstreamStatus = code;
    r.upstreamSeconds = (performance.now() - this.#t0) / 1000;
    r.upstreamLength = length;
    this.#keepUpstream = !upstreamClose;
    let state: State;
    if (this.#isHead || status === 204 || status === 304) state = enum_.DONE;
    else if (te) {
      if (chunked) state = enum_.CHUNKED;
      else state = enum_.CLOSE;
    } else if (length >= 0) state = length === 0 ? enum_.DONE : enum_.LENGTH;
    else state = enum_.CLOSE;
    if (te && length >= 0) return false; // both framings: refused as nginx does
    if (state === enum_.CLOSE) {
      this.#keepUpstream = false;
      this.#closeClient = true;
    }
    if (h2 !== undefined) {
      const lines = gatherText(read, spec, n) + this.#front.texts.serverLine;
      if (state === enum_.LENGTH && more > 0 && more >= length) {
        // the whole body came with the head: head, body and end in one go
        if (!h2.respond(code, lines, true, read.subarray(from, from + length))) return false;
        if (more > length) this.#keepUpstream = false; // more than announced: out of step
        this.#rec.bytes += length;
        this.#finish();
        return true;
      }
      if (!h2.respond(code, lines, state === enum_.DONE)) return false;
      this.#state = state;
      this.#remaining = length;
      this.#cstate = 0;
      this.#line = '';
      if (state === enum_.DONE) this.#finish();
      else if (more > 0) this.#body(read.subarray(from));
      return true;
    }
    if (this.#closeClient) spec[2 * n++] = CLOSE_PIECE;
    spec[2 * n++] = SERVER_PIECE;
    spec[2 * n++] = GATHER_CRLF;
    this.#state = state;
    this.#remaining = length;
    this.#cstate = 0;
    this.#line = '';
    const front = this.#front;
    if (state === enum_.DONE) {
      front.writeGather(read, n, statusLine, this.#closeClient);
      this.#finish();
      return true;
    }
    if (more === 0) {
      front.writeGather(read, n, statusLine);
      return true;
    }
    if (state === enum_.LENGTH && more <= length && more <= GATHER_BODY) {
      // what came of the body with the head (often all of it), as #body would send it: one write
      // (kept beside #body's twin: #body taking a subarray of the read costs a Buffer more a request)
      this.#remaining = length - more;
      this.#rec.bytes += more;
      spec[2 * n] = from;
      spec[2 * n++ + 1] = from + more;
      front.writeGather(read, n, statusLine, this.#remaining === 0 && this.#closeClient);
      if (this.#remaining === 0) this.#finish();
      return true;
    }
    this.#body(read.subarray(from), read, n, statusLine);
    return true;
  }

  /**
   * Body bytes to the client, after the head when given: `head` the read both are in, the head's n pieces in
   * gatherSpec's array (#head). One write when small (no writev).
   */
  #emit(b: Buffer, head: Buffer | undefined, n: number, statusLine: string): void {
    const front = this.#front;
    if (head === undefined) front.writeBody(b, this.#conn!.sock);
    else if (b.length <= GATHER_BODY) {
      const spec = gatherSpec(n + 1);
      spec[2 * n] = b.byteOffset - head.byteOffset;
      spec[2 * n + 1] = spec[2 * n]! + b.length;
      front.writeGather(head, n + 1, statusLine);
    } else {
      front.cork();
      front.writeGather(head, n, statusLine);
      front.writeBody(b, this.#conn!.sock);
      front.uncork();
    }
  }

  /** `head`: the read `b` is part of, whose head goes first (its `n` pieces in gatherSpec's array) */
  #body(b: Buffer, head?: Buffer, n = 0, statusLine = ''): void {
    const front = this.#front;
    switch (this.#state) {
      case enum_.LENGTH: {
        if (b.length > this.#remaining) {
          // more than announced: the connection is out of step; relay what was announced only
          b = b.subarray(0, this.#remaining);
          this.#keepUpstream = false;
        }
        this.#remaining -= b.length;
        this.#rec.bytes += b.length;
        this.#emit(b, head, n, statusLine);
        if (this.#remaining === 0) this.#finish();
        return;
      }
      case enum_.CLOSE:
        this.#rec.bytes += b.length;
        this.#emit(b, head, n, statusLine);
        return;
      case enum_.CHUNKED: {
        const end = this.#scanChunked(b);
        if (end === -2) {
          this.#state = enum_.DONE;
          this.#conn!.ex = undefined;
          this.#conn!.sock.destroy();
          front.abort();
          return;
        }
        // HTTP/1.1: the chunks as they came; HTTP/2: #scanChunked wrote their data
        if (front.h2 === undefined) this.#emit(end >= 0 ? b.subarray(0, end) : b, head, n, statusLine);
        if (end >= 0) {
          if (end < b.length) this.#keepUpstream = false;
          this.#finish();
        }
        return;
      }
      default:
        // bytes after the end of the response: the connection cannot be reused
        this.#conn?.sock.destroy();
    }
  }

  /** Walks chunked framing; returns the offset just past the terminating CRLF, -1 if not there yet, -2 if malformed. */
  #scanChunked(b: Buffer): number {
    let i = 0;
    const n = b.length;
    while (i < n) {
      switch (this.#cstate) {
        case 0:
        case 3: {
          const lf = b.indexOf(10, i);
          const stop = lf < 0 ? n : lf + 1;
          this.#line += b.toString('latin1', i, stop);
          i = stop;
          if (this.#line.length > 4096) return -2;
          if (lf < 0) return -1;
          const line = this.#line.endsWith('\r\n') ? this.#line.slice(0, -2) : undefined;
          this.#line = '';
          if (line === undefined) return -2;
          if (this.#cstate === 3) {
            if (line === '') return i; // end of trailers: the response is complete
            continue;
          }
          const semi = line.indexOf(';');
          const hex = (semi >= 0 ? line.slice(0, semi) : line).trim();
          if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) return -2;
          const size = parseInt(hex, 16);
          if (size === 0) this.#cstate = 3;
          else {
            this.#remaining = size;
            this.#cstate = 1;
          }
          break;
        }
        case 1: {
          const take = Math.min(this.#remaining, n - i);
          if (this.#front.h2 !== undefined && take > 0)
            this.#front.writeBody(b.subarray(i, i + take), this.#conn!.sock);
          this.#remaining -= take;
          this.#rec.bytes += take;
          i += take;
          if (this.#remaining === 0) {
            this.#cstate = 2;
            this.#line = '';
          }
          break;
        }
        case 2: {
          this.#line += String.fromCharCode(b[i]!);
          i++;
          if (this.#line.length === 2) {
            if (this.#line !== '\r\n') return -2;
            this.#line = '';
            this.#cstate = 0;
          }
          break;
        }
      }
    }
    return -1;
  }

  #finish(): void {
    this.#state = enum_.DONE;
    const c = this.#conn;
    if (c && c.ex === this) this.#front.pool.release(c, this.#keepUpstream);
    this.#front.done(this.#rec, this.#closeClient);
  }

  /** The client went away: the upstream connection is mid-response and cannot be reused. */
  abandon(): void {
    if (this.#state === enum_.DONE) return;
    this.#state = enum_.DONE;
    const c = this.#conn;
    if (c && c.ex === this) {
      c.ex = undefined;
      c.sock.destroy();
    }
  }
}

// --------------------------------------------------------------------------------------------- client side

/**
 * The client went away before its response was complete: the exchange is dropped and the request recorded with
 * the status sent (nginx: 499 when the client left before the response head).
 */
export function clientGone(front: FastFront, ex: Exchange, rec: FrontRecord): void {
  ex.abandon();
  if (rec.status === 0) rec.status = 499;
  recorded(front, rec);
}

/** The FrontRecord of a request the front took, before its upstream answered (positional: no argument object). */
function newRecord(
  httpVersion: string,
  ip: string,
  method: string,
  url: string,
  referer: string | undefined,
  userAgent: string | undefined,
  requestLength: number,
  hostHeader: string,
  reqId: string,
  d: ProxyDecision,
): FrontRecord {
  return {
    start: performance.now(),
    httpVersion,
    ip,
    method,
    url,
    referer,
    userAgent,
    requestLength,
    hostHeader,
    reqId,
    route: d.route,
    ingress: d.ingress,
    upstream: d.upstream,
    status: 0,
    bytes: 0,
    upstreamAddr: '-',
    upstreamStatus: '-',
    upstreamSeconds: -1,
    upstreamLength: -1,
  };
}

/** A request of the front is over: no longer in flight, and recorded (metrics, access log). */
export function recorded(front: FastFront, rec: FrontRecord): void {
  front.inflight--;
  front.hooks.record(rec);
}

/** Fixed response texts of one front (built once: nothing per request). */
export interface FrontTexts {
  readonly serverLine: string;
  readonly badGateway: string;
  readonly gatewayTimeout: string;
}

/**
 * The proxy's own header lines (forwardedAround) of a connection's last request, kept for its next request with the
 * same Host and no X-Forwarded-For of the client's: one per client connection (HTTP/1.1) or HTTP/2 session.
 */
export class ForwardedLines {
  #around: readonly [string, string] | undefined;
  #host = '';

  get(
    scheme: 'http' | 'https',
    host: string,
    ip: string,
    port: number | string,
    xff: string | undefined,
  ): readonly [string, string] {
    let around = this.#around;
    if (around === undefined || host !== this.#host || xff !== undefined) {
      around = forwardedAround(scheme, host, ip, port, xff);
      this.#around = xff === undefined ? around : undefined;
      this.#host = host;
    }
    return around;
  }
}

/**
 * One client connection. It is also the RequestFacts of its current request (set in #request before
 * decide() and read only during that call): no facts object per request.
 */
class ClientConn implements RequestFacts, ClientSide {
  readonly h2 = undefined;
  readonly sock: Socket;
  readonly hooks: FrontHooks;
  readonly pool: RawPool;
  readonly texts: FrontTexts;
  readonly #front: FastFront;
  readonly scheme: 'http' | 'https';
  host = '';
  url = '';
  method = '';
  ip: string;
  readonly #forwarded = new ForwardedLines();
  /** the head of the request being decided (`header()`), else '' */
  #headText = '';
  /**
   * The pieces of the current exchange's upstream request (a copy, for a retry: the read is gone by then; tcp-io's
   * writeGather), its request line when rewritten (else ''), the proxy's lines around its request id
   */
  #upSpec: Int32Array | undefined;
  #upN = 0;
  #upLine = '';
  #upAround: readonly [string, string] = ['', ''];
  #buf: Buffer | undefined;
  #ex: Exchange | undefined;
  #rec: FrontRecord | undefined;
  #gone = false;
  #held: Socket | undefined;
  /** the front's clock when the client last sent bytes or its last response was complete (idle timeout) */
  last: number;
  readonly #port: string;
  readonly #onData = (b: Buffer) => this.#data(b);
  readonly #onRead = (n: number, buf: Buffer): void => {
    this.#data(n === buf.length ? buf : buf.subarray(0, n));
    // what is left unparsed (a partial head, pipelined requests) outlives the read buffer
    if (this.#buf !== undefined) this.#buf = own(this.#buf);
  };

  /** the addon holds the connection's TLS: writes go through tcp-io's writeBytes and endWrites */
  #tls = false;
  /** HTTP/2 in the addon (ALPN h2) */
  #h2: H2Connection | undefined;
  readonly #onH2 = (rec: Buffer, block: string | undefined): void =>
    (this.#h2 ??= this.hooks.h2Session!(this.#front, this.sock, this.ip, Number(this.#port), () =>
      this.#onEnd(0),
    )).record(rec, block);
  readonly #onPeek = (n: number, buf: Buffer): void => {
    const hello = readClientHello(n === buf.length ? buf : buf.subarray(0, n));
    const ctx = typeof hello === 'object' ? this.hooks.tlsContextFor?.(hello) : undefined;
    const h2 = typeof hello === 'object' && this.hooks.h2Session !== undefined && hello.alpn.includes('h2');
    if (ctx !== undefined && startTls(this.sock, ctx, this.#onRead, h2 ? this.#onH2 : undefined)) {
      this.#tls = true;
      this.hooks.tlsInAddon?.();
    } else this.#toNodeTls(); // (a partial hello too: node:tls waits for the rest itself)
  };

  constructor(front: FastFront, sock: Socket, scheme: 'http' | 'https', tlsPort = false) {
    this.#front = front;
    this.scheme = scheme;
    this.hooks = front.hooks;
    this.pool = front.pool;
    this.texts = front.texts;
    this.sock = sock;
    const a = sock.remoteAddress ?? '';
    this.ip = a.startsWith('::ffff:') ? a.slice(7) : a;
    this.#port = String(sock.localPort ?? 80);
    this.last = front.tick;
    sock.setNoDelay(true);
    sock.on('error', this.#onError);
    sock.on('close', this.#onClose);
    // the HTTPS port with TLS in the addon: the ClientHello is peeked first (#onPeek)
    if (tlsPort) {
      if (!adoptPeek(sock, this.#onPeek, this.#onEnd)) this.#toNodeTls();
      return;
    }
    // plain TCP: read in batches by the addon (the end of the stream ends our side too, as node's allowHalfOpen
    // false does); TLS terminated by node:tls, or without the addon: node's reads in place; else data events
    if (
      !(scheme === 'http' && front.batched && adopt(sock, this.#onRead, this.#onEnd)) &&
      !readInPlace(sock, this.#onRead)
    )
      sock.on('data', this.#onData);
  }

  /** The connection leaves the front (a hand-off): its listeners off the socket, out of the front's set. */
  #leave(): void {
    this.#gone = true;
    const s = this.sock;
    s.removeListener('data', this.#onData);
    s.removeListener('error', this.#onError);
    s.removeListener('close', this.#onClose);
    this.#front.conns.delete(this);
  }

  /** A connection of the HTTPS port goes to node:tls as it came (nothing read from it). */
  #toNodeTls(): void {
    const s = stopPeek(this.sock);
    this.#leave();
    this.hooks.tlsHandOff!(s);
  }

  /** The idle timeout (from FastFront's sweep): a connection between requests for CLIENT_IDLE_MS is closed. */
  idleCheck(now: number): void {
    const h2 = this.#h2;
    if (h2 !== undefined) {
      // an HTTP/2 session without streams for as long: GOAWAY, then it ends
      if (!h2.busy && now - h2.last >= CLIENT_IDLE_MS) h2.close();
      return;
    }
    if (!this.#ex && now - this.last >= CLIENT_IDLE_MS) this.sock.destroy();
  }
  readonly #onError = () => this.sock.destroy();
  // the client ended its side (read in batches): as node's allowHalfOpen false, ours ends after what is queued,
  // and the socket is closed then (node's Readable never saw the end, so it would not close by itself)
  readonly #onEnd = (errno: number): void => {
    const s = this.sock;
    if (errno !== 0 || s.writableFinished) {
      s.destroy();
      return;
    }
    s.once('finish', () => s.destroy());
    endWrites(s);
  };
  readonly #onClose = () => {
    this.#gone = true;
    this.#front.conns.delete(this);
    this.#h2?.gone();
    if (this.#ex && this.#rec) clientGone(this.#front, this.#ex, this.#rec);
    this.#ex = undefined;
    this.#rec = undefined;
  };

  /** the connection left the front (handed off) */
  get gone(): boolean {
    return this.#gone;
  }

  get busy(): boolean {
    return this.#ex !== undefined || (this.#h2?.busy ?? false);
  }

  #data(b: Buffer): void {
    this.last = this.#front.tick;
    this.#buf = this.#buf ? Buffer.concat([this.#buf, b]) : b;
    if (this.#ex) {
      // pipelined: wait for the response in progress; stop reading if the client sends a lot ahead
      if (this.#buf.length > 64 * 1024) pauseReads(this.sock);
      return;
    }
    this.#next();
  }

  /** Takes the next request from the buffer: fast path, or hand the connection to node:http. */
  #next(): void {
    const buf = this.#buf;
    if (!buf || this.#gone) return;
    if (this.#front.closing) {
      this.sock.destroy();
      return;
    }
    // the addon's entry for the head, when the read it came in starts with it (else its text is scanned here)
    const at = scannedHead(buf);
    const text = at !== 0 ? scannedText(buf) : headText(buf);
    const end = at !== 0 ? headTable()![at + SCAN_END]! : headEnd(buf, text);
    const max = this.hooks.maxHeaderSize;
    if (end < 0) {
      if (buf.length > max) this.#handOff();
      return;
    }
    if (end + 4 > max) return this.#handOff();
    const head = headOf(buf, text, end);
    const ok = this.#request(head, end + 4, at !== 0 ? headTable()! : SCANNER.scan(head), at);
    if (!ok) this.#handOff();
  }

  #handOff(): void {
    const rest = this.#buf ? own(this.#buf) : Buffer.alloc(0);
    this.#buf = undefined;
    const s = this.sock;
    this.#leave();
    // TLS in the addon: node:http reads and writes the plaintext through a stream over the addon's TLS
    if (this.#tls) return this.hooks.handOff(plainStream(nodeSocket(s)) as unknown as Socket, rest);
    readAsStream(s);
    release(s);
    s.pause();
    this.hooks.handOff(s, rest);
  }

  /** RequestFacts: a header of the current request (first value), by lower-case name. */
  header(name: string): string | undefined {
    const h = this.#headText;
    for (let pos = h.indexOf('\r\n') + 2; pos > 1 && pos < h.length;) {
      const eol = h.indexOf('\r\n', pos);
      const colon = h.indexOf(':', pos);
      if (colon - pos === name.length && h.slice(pos, colon).toLowerCase() === name) return owsValue(h, colon + 1, eol);
      pos = eol + 2;
    }
    return undefined;
  }

  /**
   * Serves one request on the fast path; false (nothing done) when it is not one for the fast path. `head`: from
   * the first byte to the CRLF that ends the last header line; its lines in the entry `table[e...]`
   * (ingress/head-scan.ts).
   */
  #request(head: string, consumed: number, table: Int32Array, e: number): boolean {
    if ((table[e + SCAN_FLAGS]! & GOOD_REQUEST) === 0) return false;
    const maxLine = this.hooks.maxHeaderLine - 2; // CRLF included in the limit
    const lineEnd = table[e + SCAN_FIRST_EOL]!;
    let eol = lineEnd;
    if (eol > maxLine) return false; // node:http answers 414
    const get = head.charCodeAt(0) === 71; // G
    const method = get ? 'GET' : 'HEAD';
    const url = head.slice(get ? 4 : 5, eol - 9); // before ' HTTP/1.1'
    let host: string | undefined;
    let reqId: string | undefined;
    let xff: string | undefined;
    let referer: string | undefined;
    let ua: string | undefined;
    let connList: string[] | undefined;
    // the upstream request, gathered from the read (tcp-io's writeGather): pieces 0-3 the request line and the
    // proxy's own lines (set once decided), then the headers forwarded: runs of lines as they came, cut where a line
    // is dropped or rewritten
    const count = table[e + SCAN_COUNT]!;
    const spec = gatherSpec(4 * count + 6);
    let n = 4;
    let run = eol + 2;
    const past = e + SCAN_LINES + count * SCAN_LINE;
    for (let l = e + SCAN_LINES; l < past; l += SCAN_LINE) {
      const pos = table[l]!;
      eol = table[l + 2]!;
      if (eol - pos > maxLine) return false; // node:http answers 400
      const colon = table[l + 1]!; // the end of the name (a good request head's line: token ":" value)
      const code = table[l + 3]!;
      const id = code & NAME_ID;
      if (id !== 0) {
        const name = HEAD_NAMES[id]!;
        // (host, x-request-id and x-forwarded-for are among them: the proxy sets its own)
        const drop = DROP_REQUEST_CODE[id] === 1;
        switch (name) {
          case 'host': {
            const value = owsValue(head, colon + 1, eol);
            if (host !== undefined || !validHost(value)) return false;
            host = value;
            break;
          }
          case 'content-length':
          case 'transfer-encoding':
          case 'expect':
          case 'upgrade':
            return false;
          case 'connection': {
            const tokens = owsValue(head, colon + 1, eol)
              .toLowerCase()
              .split(',')
              .map((s) => s.trim());
            if (tokens.includes('upgrade')) return false;
            connList = [...(connList ?? []), ...tokens];
            break;
          }
          case 'x-request-id':
            if (reqId !== undefined) return false;
            reqId = owsValue(head, colon + 1, eol);
            break;
          case 'x-forwarded-for': {
            const value = owsValue(head, colon + 1, eol);
            xff = xff === undefined ? value : `${xff}, ${value}`;
            break;
          }
          case 'referer':
            referer = owsValue(head, colon + 1, eol);
            break;
          case 'user-agent':
            ua = owsValue(head, colon + 1, eol);
            break;
        }
        if (drop) {
          if (run < pos) {
            spec[2 * n] = run;
            spec[2 * n++ + 1] = pos;
          }
          run = eol + 2;
          continue;
        }
      }
      if ((code & PLAIN) === 0) {
        // `name: value` (the value without optional whitespace at either end)
        if (run < pos) {
          spec[2 * n] = run;
          spec[2 * n++ + 1] = pos;
        }
        let from = colon + 1;
        let to = eol;
        while (from < to && isOws(head.charCodeAt(from))) from++;
        while (to > from && isOws(head.charCodeAt(to - 1))) to--;
        spec[2 * n] = pos;
        spec[2 * n++ + 1] = colon;
        spec[2 * n++] = GATHER_COLON;
        if (from < to) {
          spec[2 * n] = from;
          spec[2 * n++ + 1] = to;
        }
        spec[2 * n++] = GATHER_CRLF;
        run = eol + 2;
      }
    }
    if (run < head.length) {
      spec[2 * n] = run;
      spec[2 * n++ + 1] = head.length;
    }
    if (host === undefined) return false;
    // headers the client lists in Connection are hop-by-hop too: rare, left to the general path
    if (connList && connList.some((tok) => tok !== 'keep-alive' && tok !== 'close' && tok !== '')) return false;
    // Connection: close (a client opening a connection per request): served, then the connection ends
    const close = connList !== undefined && connList.includes('close');
    this.host = host;
    this.url = url;
    this.method = method;
    this.#headText = head;
    const d = fastDecision(this.hooks.table(), this);
    this.#headText = '';
    if (d === undefined) return false;
    const target = d.target;
    const upstream = d.upstream;

    // committed: this request is ours
    const src = this.#buf!;
    this.#buf = consumed < src.length ? src.subarray(consumed) : undefined;
    const id = this.hooks.requestId(reqId);
    const ip = this.ip;
    const around = this.#forwarded.get(this.scheme, host, ip, this.#port, xff);
    // the request line as it came when the target is the client's (else made: s0), the proxy's lines around the
    // request id (s1, s3; the id s2), the end of the head
    if (target === url) {
      spec[0] = 0;
      spec[1] = lineEnd + 2;
      if (this.#upLine !== '') this.#upLine = '';
    } else {
      spec[0] = gatherString(0);
      this.#upLine = `${method} ${target} HTTP/1.1\r\n`;
    }
    spec[2] = gatherString(1);
    spec[4] = gatherString(2);
    spec[6] = gatherString(3);
    spec[2 * n++] = GATHER_CRLF;
    if (this.#upAround !== around) this.#upAround = around;
    // a copy of the pieces for a retry
    let keep = this.#upSpec;
    if (keep === undefined || keep.length < 2 * n) keep = this.#upSpec = new Int32Array(Math.max(64, 4 * n));
    for (let i = 0; i < 2 * n; i++) keep[i] = spec[i]!;
    this.#upN = n;
    const rec = newRecord('1.1', ip, method, url, referer, ua, consumed, host, id, d);
    const ex = new Exchange(this, rec, head, this, method === 'HEAD', d.options, close);
    this.#ex = ex;
    this.#rec = rec;
    this.#front.inflight++;
    ex.start(this.hooks.nextEndpoint(upstream), src);
    return true;
  }

  /** RequestWriter: the current exchange's upstream request (#request kept its pieces). */
  writeRequest(sock: Socket, src: Buffer | undefined, head: string, id: string): void {
    const around = this.#upAround;
    if (src !== undefined) writeGather(sock, src, this.#upN, this.#upLine, around[0], id, around[1]);
    else writeLatin1(sock, gatherText(head, this.#upSpec!, this.#upN, this.#upLine, around[0], id, around[1]));
  }

  cork(): void {
    this.sock.cork();
  }
  uncork(): void {
    this.sock.uncork();
  }

  writeRaw(s: string, last = false): void {
    // (last: through TLS, the response and the close_notify done's endWrites sends go out in one write)
    if (!this.#gone) writeLatin1(this.sock, s, last);
  }

  writeGather(src: Buffer, n: number, statusLine: string, last = false): void {
    if (!this.#gone) writeGather(this.sock, src, n, statusLine, CONNECTION_CLOSE, this.texts.serverLine, '', last);
  }

  fail(timeout: boolean): void {
    this.writeRaw(timeout ? this.texts.gatewayTimeout : this.texts.badGateway);
  }

  /** Body bytes to the client, with backpressure on the upstream socket. */
  writeBody(b: Buffer, from: Socket): void {
    if (this.#gone) return;
    if (!(this.#tls ? writeBytes(this.sock, b) : this.sock.write(own(b))) && !this.#held) {
      this.#held = from;
      pauseReads(from);
      this.sock.once('drain', () => {
        this.#held = undefined;
        resumeReads(from);
      });
    }
  }

  /** The exchange is over (response complete, or an error answer written). */
  done(rec: FrontRecord, close: boolean): void {
    if (this.#rec !== rec) return;
    this.#ex = this.#rec = undefined;
    recorded(this.#front, rec);
    if (this.#gone) return;
    this.last = this.#front.tick;
    if (close) {
      this.#gone = true;
      endWrites(this.sock);
      return;
    }
    if (readsPaused(this.sock)) resumeReads(this.sock);
    if (this.#buf) this.#next();
  }

  /** The upstream failed mid-response: the client connection is cut (as nginx does). */
  abort(): void {
    const rec = this.#rec;
    if (rec) {
      this.#ex = this.#rec = undefined;
      recorded(this.#front, rec);
    }
    this.sock.destroy();
  }

  /** Idle (between requests): closed at once when the server stops (an HTTP/2 session: GOAWAY, streams finish). */
  closeIfIdle(): void {
    if (this.#h2) this.#h2.close();
    else if (!this.#ex) this.sock.destroy();
  }
}

// ------------------------------------------------------------------------------------------- the HTTP/2 lane

/** request targets the HTTP/2 lane takes: the HTTP/1.1 front's (origin form, printable ASCII) */
const H2_PATH = /^\/[\x21-\x7e]*$/;
// a request header value that cannot go into an HTTP/1.1 head (nghttp2 refuses these already: a second guard)
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const H2_BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
/** what the addon knows of an HTTP/2 request's header list (native/tcp/kdp_tcp.c, the H2_HEADERS record) */
export const H2_UNIQUE_NAMES = 1;
export const H2_CLEAN_VALUES = 2;

/**
 * An HTTP/2 request's header list as the lane reads it: the fields it acts on, every field in node:http2's header
 * object order, and that object itself (built only when asked for, when the list had no name twice).
 */
export class H2Head {
  method: string | undefined;
  path: string | undefined;
  authority: string | undefined;
  protocol: string | undefined;
  host: string | undefined;
  userAgent: string | undefined;
  referer: string | undefined;
  /** the fields as a flat list (name, value or values, ...), in the header object's order */
  readonly fields: readonly (string | string[])[];
  /** the fields as received (name, value, ...) */
  readonly raw: readonly string[];
  #object: IncomingHttpHeaders | undefined;

  /**
   * `object`: node:http2's header object of the list; without it, `raw` has no name twice (the addon said so)
   * and stands for it.
   */
  constructor(raw: readonly string[], object: IncomingHttpHeaders | undefined) {
    this.raw = raw;
    this.#object = object;
    if (object !== undefined) {
      const fields: (string | string[])[] = [];
      for (const name in object) {
        const v = object[name];
        if (v !== undefined) fields.push(name, v);
      }
      this.fields = fields;
      const one = (v: string | string[] | undefined) => (typeof v === 'string' ? v : undefined);
      this.method = one(object[':method']);
      this.path = one(object[':path']);
      this.authority = one(object[':authority']);
      this.protocol = one(object[':protocol']);
      this.host = one(object.host);
      this.userAgent = one(object['user-agent']);
      this.referer = one(object.referer);
      // (a field that is not a string is there twice: the lane then takes the stream only if it need not read it)
      if (object[':protocol'] !== undefined) this.protocol ??= '';
      return;
    }
    this.fields = raw;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      const v = raw[i + 1]!;
      switch (name.length) {
        case 4:
          if (name === 'host') this.host = v;
          break;
        case 5:
          if (name === ':path') this.path = v;
          break;
        case 7:
          if (name === ':method') this.method = v;
          else if (name === 'referer') this.referer = v;
          break;
        case 9:
          if (name === ':protocol') this.protocol = v;
          break;
        case 10:
          if (name === ':authority') this.authority = v;
          else if (name === 'user-agent') this.userAgent = v;
          break;
      }
    }
  }

  /** node:http2's header object of the list (no prototype: a field named __proto__ is a field) */
  object(): IncomingHttpHeaders {
    if (this.#object !== undefined) return this.#object;
    const o = Object.create(null) as IncomingHttpHeaders;
    const raw = this.raw;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      o[name] = name === 'set-cookie' ? [raw[i + 1]!] : raw[i + 1]!;
    }
    return (this.#object = o);
  }

  /** a field's value (set-cookie: the first) */
  header(name: string): string | undefined {
    if (this.#object === undefined) {
      const raw = this.raw;
      for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i] === name) return raw[i + 1];
      return undefined;
    }
    const v = this.#object[name];
    return typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined;
  }
}
const NO_HEAD = new H2Head([], Object.freeze({}));
const ignore = (): void => {};
const UPSTREAM_FAILED = new Error('the upstream failed after the response started');

/** The decision's view of an HTTP/2 request (one object per front, filled before decide() and read only there). */
class H2Facts implements RequestFacts {
  scheme: 'http' | 'https' = 'https';
  host = '';
  url = '';
  method = '';
  ip = '';
  head: H2Head = NO_HEAD;
  header(name: string): string | undefined {
    return this.head.header(name);
  }
}

/**
 * The client side of one HTTP/2 stream the lane serves (node:http2's stream: H2Client; the addon's:
 * ingress/h2-session.ts): the exchange's start and end, and the upstream socket held while the stream's
 * response body is backed up.
 */
export abstract class H2Side implements ClientSide {
  readonly hooks: FrontHooks;
  readonly pool: RawPool;
  readonly texts: FrontTexts;
  protected readonly front: FastFront;
  #ex: Exchange | undefined;
  #rec: FrontRecord | undefined;
  #held: Socket | undefined;

  constructor(front: FastFront) {
    this.front = front;
    this.hooks = front.hooks;
    this.pool = front.pool;
    this.texts = front.texts;
  }

  get h2(): H2Side {
    return this;
  }

  start(ex: Exchange, rec: FrontRecord, endpoint: string): void {
    this.#ex = ex;
    this.#rec = rec;
    this.front.inflight++;
    ex.start(endpoint);
  }

  abstract respond(status: string, lines: string, endStream: boolean, body?: Buffer): boolean;
  abstract writeBody(b: Buffer, from: Socket): void;
  abstract fail(timeout: boolean): void;
  abstract done(rec: FrontRecord): void;
  abstract abort(): void;

  // HTTP/1.1 text is never written to a stream: the exchange asks for it only when `h2` is undefined
  writeRaw(): void {}
  writeGather(): void {}
  cork(): void {}
  uncork(): void {}

  /** The stream's body is backed up: `from` (the upstream socket) is not read until release(). */
  protected hold(from: Socket): boolean {
    if (this.#held) return false;
    this.#held = from;
    pauseReads(from);
    return true;
  }

  protected readonly release = (): void => {
    const held = this.#held;
    this.#held = undefined;
    if (held) resumeReads(held);
  };

  /** The exchange `rec` is over (recorded, its upstream socket no longer held); false when it is not this one. */
  protected over(rec: FrontRecord): boolean {
    if (this.#rec !== rec) return false;
    this.#ex = this.#rec = undefined;
    recorded(this.front, rec);
    this.release();
    return true;
  }

  /** The upstream failed mid-response: the exchange is recorded as it stands. */
  protected cut(): void {
    const rec = this.#rec;
    if (rec) {
      this.#ex = this.#rec = undefined;
      recorded(this.front, rec);
    }
    this.release();
  }

  /** The client reset the stream (or the session went): the exchange in progress is dropped (499). */
  protected gone(): void {
    this.release(); // an upstream socket paused for this stream's flow control is read again
    if (this.#ex && this.#rec) clientGone(this.front, this.#ex, this.#rec);
    this.#ex = undefined;
    this.#rec = undefined;
  }
}

/** a status and HTTP/1 header lines as node:http2's flat header list (`:status` first, values without OWS) */
function headerList(status: string, lines: string): string[] {
  const out = [':status', status];
  for (let pos = 0; pos < lines.length;) {
    const eol = lines.indexOf('\r\n', pos);
    const colon = lines.indexOf(':', pos);
    out.push(lines.slice(pos, colon), owsValue(lines, colon + 1, eol));
    pos = eol + 2;
  }
  return out;
}

/**
 * One stream of a node:http2 session the lane serves. The response head goes out through `respond` (core API, no
 * compat objects), the body through `write` with the stream's flow control pausing the upstream socket, the end
 * through `end`; an upstream failure after the head resets the stream.
 */
class H2Client extends H2Side {
  readonly #stream: ServerHttp2Stream;

  constructor(front: FastFront, stream: ServerHttp2Stream) {
    super(front);
    this.#stream = stream;
    stream.on('error', ignore); // a reset by the client: 'close' follows
    stream.once('close', () => this.gone());
  }

  /** The response head; false when node:http2 refuses the header list (nothing was sent). */
  respond(status: string, lines: string, endStream: boolean, body?: Buffer): boolean {
    if (body === undefined) return this.#respond(headerList(status, lines), endStream);
    if (!this.#respond(headerList(status, lines), false)) return false;
    if (!this.#stream.destroyed) this.#stream.end(Buffer.from(body)); // (a copy: `body` is a view of a read)
    return true;
  }

  #respond(headers: OutgoingHttpHeaders | readonly string[], endStream: boolean): boolean {
    const s = this.#stream;
    if (s.destroyed) return true; // the client reset the stream: its 'close' ends the exchange (499)
    try {
      s.respond(headers, { endStream });
      return true;
    } catch {
      return false;
    }
  }

  writeBody(b: Buffer, from: Socket): void {
    const s = this.#stream;
    if (s.destroyed) return;
    if (!s.write(own(b)) && this.hold(from)) s.once('drain', this.release);
  }

  fail(timeout: boolean): void {
    const body = timeout ? 'gateway timeout\n' : 'bad gateway\n';
    const headers = {
      ':status': timeout ? 504 : 502,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(body.length),
      server: this.hooks.serverHeader,
    };
    if (this.#respond(headers, false) && !this.#stream.destroyed) this.#stream.end(body);
  }

  done(rec: FrontRecord): void {
    if (!this.over(rec)) return;
    const s = this.#stream;
    // the upstream socket went back to the pool: it is not this stream's to hold any longer (an ending stream
    // emits no 'drain')
    s.off('drain', this.release);
    if (!s.destroyed && !s.writableEnded) s.end();
  }

  /** The upstream failed mid-response: the stream is reset (the session and its other streams go on). */
  abort(): void {
    this.cut();
    // destroy with an error: RST_STREAM INTERNAL_ERROR and nothing else (close() would first end the writable side,
    // an END_STREAM that makes a chunked or until-close body look complete)
    if (!this.#stream.destroyed) this.#stream.destroy(UPSTREAM_FAILED);
  }
}

/** the log has said once that the addon does not load (auto) */
let warnedNoBatch = false;

/** The HTTP port's connection handler: `server.on('connection', (s) => front.accept(s))`. */
export class FastFront {
  readonly hooks: FrontHooks;
  readonly pool: RawPool;
  readonly conns = new Set<ClientConn>();
  inflight = 0;
  closing = false;
  /** coarse clock for the timeouts: milliseconds, advanced by the sweep (TICK_MS) */
  tick = 0;
  /** plain TCP sockets are read in batches by the native addon (hooks.tcpIo) */
  readonly batched: boolean;
  #sweeper: NodeJS.Timeout | undefined;

  readonly texts: FrontTexts;

  constructor(hooks: FrontHooks) {
    this.hooks = hooks;
    const sv = hooks.serverHeader;
    this.texts = {
      serverLine: `server: ${sv}\r\n`,
      badGateway: errorResponse(502, 'Bad Gateway', 'bad gateway\n', sv),
      gatewayTimeout: errorResponse(504, 'Gateway Timeout', 'gateway timeout\n', sv),
    };
    this.batched = chooseTcpIo(READ_BUF, hooks.tcpIo ?? 'auto', HEAD_NAMES);
    if (!this.batched && (hooks.tcpIo ?? 'auto') === 'auto' && !warnedNoBatch) {
      warnedNoBatch = true;
      hooks.log.warn({ why: tcpIoUnavailable() }, 'ingress: batched TCP reads unavailable, using node:net');
    }
    this.pool = new RawPool(hooks.keepAliveTimeoutMs, hooks.maxIdlePerEndpoint, this, this.batched);
  }

  /** A new client connection: plain TCP, or TLS once its handshake is done (ALPN http/1.1 or none). */
  accept(sock: Socket, scheme: 'http' | 'https' = 'http'): void {
    this.#startSweeper();
    this.conns.add(new ClientConn(this, sock, scheme));
  }

  /**
   * A new TCP connection on the HTTPS port, TLS in the addon (hooks.tlsContextFor, hooks.tlsHandOff): its
   * ClientHello is peeked; the front terminates it or node:tls takes it untouched. Only with batched I/O.
   */
  acceptTls(sock: Socket): void {
    this.#startSweeper();
    const c = new ClientConn(this, sock, 'https', true);
    if (!c.gone) this.conns.add(c);
  }

  #startSweeper(): void {
    if (this.#sweeper) return;
    this.tick = performance.now();
    this.#sweeper = setInterval(() => this.#sweep(), TICK_MS).unref();
  }

  readonly #h2Facts = new H2Facts();

  /**
   * A stream of an HTTP/2 session (TLS with ALPN h2, or h2c; `sock` is the connection under the session): served
   * on this front's raw upstream exchange and pool when the front would serve the same request over HTTP/1.1
   * (a GET or HEAD without a body, the same head limits, a route fastDecision() takes). false, nothing done,
   * otherwise: the caller gives the stream to node:http2's compat layer (the general path).
   */
  stream(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    rawHeaders: readonly string[],
    sock: Socket | undefined,
    scheme: 'http' | 'https',
  ): boolean {
    if (sock === undefined) return false;
    const a = sock.remoteAddress ?? '';
    const ip = a.startsWith('::ffff:') ? a.slice(7) : a;
    const port = sock.localPort ?? (scheme === 'https' ? 443 : 80);
    const head = new H2Head(rawHeaders, headers);
    return this.lane(stream.endAfterHeaders, head, 0, ip, port, scheme, new ForwardedLines(), () => {
      return new H2Client(this, stream);
    });
  }

  /**
   * The lane's decision for an HTTP/2 request (node:http2's stream, or the addon's: ingress/h2-session.ts): when
   * the front takes it, `client()` makes the stream's ClientSide and the exchange starts; false, nothing done,
   * otherwise. `checks`: what the caller knows of the header list (H2_CLEAN_VALUES: no value with a control byte
   * but HTAB); `forwarded`: the session's memo of the proxy's own header lines.
   */
  lane(
    endAfterHeaders: boolean,
    head: H2Head,
    checks: number,
    ip: string,
    port: number,
    scheme: 'http' | 'https',
    forwarded: ForwardedLines,
    client: () => ClientSide,
  ): boolean {
    if (this.closing || !endAfterHeaders) return false;
    const method = head.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    if (head.protocol !== undefined) return false;
    const url = head.path;
    if (url === undefined || !H2_PATH.test(url)) return false;
    // the general path's Host: the host header, else :authority
    const host = head.host ?? head.authority;
    if (host === undefined || !validHost(host)) return false;
    const rawHeaders = head.raw;
    const hooks = this.hooks;
    // the general path's per-line limits (HTTP/2 has no lines: name + ': ' + value), and nginx's
    // $request_length as it counts it
    const maxLine = hooks.maxHeaderLine;
    let requestLength = method.length + url.length + 12;
    if (requestLength > maxLine) return false;
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const n = rawHeaders[i]!.length + rawHeaders[i + 1]!.length + 4;
      if (n > maxLine) return false;
      requestLength += n;
    }
    let reqId: string | undefined;
    let xff: string | undefined;
    let fwd = '';
    const fields = head.fields;
    const clean = (checks & H2_CLEAN_VALUES) !== 0;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = fields[i] as string;
      if (name.charCodeAt(0) === 58) continue; // a pseudo-header
      const v = fields[i + 1]!;
      if (name.length < 64 && REQUEST_NAMES[name.length] === 1)
        switch (name) {
          case 'content-length':
          case 'transfer-encoding':
          case 'expect':
          case 'upgrade':
            return false;
          case 'x-request-id':
            if (typeof v !== 'string') return false;
            reqId = v;
            continue;
          case 'x-forwarded-for':
            xff = typeof v === 'string' ? v : v.join(', ');
            continue;
          default:
            if (DROP_REQUEST.has(name)) continue;
        }
      if (typeof v === 'string') {
        if (!clean && H2_BAD_VALUE.test(v)) return false;
        fwd += `${name}: ${v}\r\n`;
      } else
        for (const one of v) {
          if (!clean && H2_BAD_VALUE.test(one)) return false;
          fwd += `${name}: ${one}\r\n`;
        }
    }
    const f = this.#h2Facts;
    f.scheme = scheme;
    f.host = host;
    f.url = url;
    f.method = method;
    f.ip = ip;
    f.head = head;
    const d = fastDecision(hooks.table(), f);
    f.head = NO_HEAD;
    if (d === undefined) return false;

    // committed: this stream is ours
    this.#startSweeper();
    const id = hooks.requestId(reqId);
    const around = forwarded.get(scheme, host, ip, port, xff);
    const up = `${method} ${d.target} HTTP/1.1\r\n${around[0]}${id}${around[1]}${fwd}\r\n`;
    const rec = newRecord('2.0', ip, method, url, head.referer, head.userAgent, requestLength, host, id, d);
    const c = client();
    c.start!(
      new Exchange(c, rec, up, undefined, method === 'HEAD', d.options, false),
      rec,
      hooks.nextEndpoint(d.upstream),
    );
    return true;
  }

  #sweep(): void {
    const now = (this.tick = performance.now());
    for (const c of this.conns) c.idleCheck(now);
    this.pool.sweep(now);
  }

  /** Stops serving new requests; idle connections are closed at once. */
  startClosing(): void {
    this.closing = true;
    for (const c of this.conns) c.closeIfIdle();
  }

  destroyAll(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const c of this.conns) c.sock.destroy();
    this.conns.clear();
    this.pool.close();
  }
}
