// HTTP/2 over the addon's TLS (native/tcp/kdp_tcp.c, `--tls-io auto`): the HTTPS port's connections whose
// ClientHello offers h2 get ALPN h2 in the addon, which runs their nghttp2 session (framing, HPACK, flow control,
// SETTINGS, PING, GOAWAY) and reports each request as records (tcp-io's H2Wire). One H2Session per connection:
// - a stream the fast front would serve (FastFront.lane: a bodiless GET/HEAD whose route only forwards) goes over
//   the front's raw upstream exchange, its response back through the addon (NativeStream);
// - any other stream is relayed (RelayStream) to the server's own node:http2 handler through one in-process h2c
//   session per connection (the server's `relay`), so that everything the general path does (annotations, bodies,
//   trailers, gRPC) behaves as it does for node:http2's own connections.
// The server makes the sessions (FrontHooks.h2Session): this module depends on the fast front, not the reverse.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { connect as h2connect } from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { duplexPair } from 'node:stream';
import type { Duplex } from 'node:stream';
import { H2_CANCEL, H2_INTERNAL_ERROR, H2_UNCARRIED, H2Wire } from './tcp-io.ts';
import type { FastFront, FrontRecord, H2Connection } from './fast-front.ts';
import { ForwardedLines, H2_UNIQUE_NAMES, H2Head, H2Side } from './fast-front.ts';

const H2_HEADERS = 1;
const H2_DATA = 2;
const H2_CLOSE = 3;
const FLAG_END_STREAM = 1;
/** the end of a relayed response's body (RelayStream's events) */
const END = Symbol('end');
/** a stream's response body queued in the addon beyond this pauses its source (the upstream socket, the relay) */
const HIGH_WATER = 64 * 1024;

/** what a response header is to HTTP/2: once at most (node:http2's list), or connection-specific (RFC 9113 8.2.2) */
const ONCE = 1;
const CONNECTION_SPECIFIC = 2;
const KIND = new Map<string, number>([
  ...[
    ':status',
    'access-control-allow-credentials',
    'access-control-max-age',
    'access-control-request-method',
    'age',
    'authorization',
    'content-encoding',
    'content-language',
    'content-length',
    'content-location',
    'content-md5',
    'content-range',
    'content-type',
    'date',
    'dnt',
    'etag',
    'expires',
    'from',
    'host',
    'if-match',
    'if-modified-since',
    'if-none-match',
    'if-range',
    'if-unmodified-since',
    'last-modified',
    'location',
    'max-forwards',
    'proxy-authorization',
    'range',
    'referer',
    'retry-after',
    'tk',
    'upgrade-insecure-requests',
    'user-agent',
    'x-content-type-options',
  ].map((n) => [n, ONCE] as const),
  ...['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'].map(
    (n) => [n, CONNECTION_SPECIFIC] as const,
  ),
]);
const BAD_VALUE = /[\0\r\n]/;

/** The Date header node:http2 adds to a response that has none (one string per second). */
let dateSecond = 0;
let dateText = '';
function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/**
 * A flat response header list (name, value, ...; `:status` first) as the addon takes it: lower-case names, a Date
 * when there is none (not for trailers: `date` false); undefined when HTTP/2 cannot carry it (a single-value header
 * twice, a connection-specific header, a value with NUL, CR or LF), which node:http2's respond() refuses too.
 */
export function headerBlock(list: readonly string[], date = true): string | undefined {
  const out: string[] = [];
  let seen: string[] | undefined;
  let dated = !date;
  for (let i = 0; i + 1 < list.length; i += 2) {
    const name = list[i]!.toLowerCase();
    const value = list[i + 1]!;
    if (name.length === 0 || BAD_VALUE.test(value)) return undefined;
    const kind = KIND.get(name);
    if (kind === CONNECTION_SPECIFIC) return undefined;
    if (kind === ONCE) {
      seen ??= [];
      if (seen.includes(name)) return undefined;
      seen.push(name);
      if (name === 'date') dated = true;
    }
    out.push(name, value);
  }
  if (!dated) out.push('date', httpDate());
  // joined, not concatenated: one flat string for the addon to read
  out.push('');
  return out.join('\0');
}

/** node:http2's header object (from the relay's response) as a flat list, `:status` first */
function flatten(h: IncomingHttpHeaders | OutgoingHttpHeaders): string[] {
  const out: string[] = [':status', String(h[':status'] ?? 200)];
  for (const name in h) {
    if (name === ':status') continue;
    const v = h[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const one of v) out.push(name, String(one));
    else out.push(name, String(v));
  }
  return out;
}

/** node:http2's header object of a raw list: repeated fields joined (cookie with '; '), set-cookie a list */
function headerObject(raw: readonly string[]): IncomingHttpHeaders {
  // (no prototype, as node:http2's header objects: a field named __proto__ is a field)
  const headers = Object.create(null) as IncomingHttpHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const have = headers[name];
    if (have === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(have)) have.push(value);
    else headers[name] = `${have}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return headers;
}

interface StreamState {
  /** a record for the stream: body bytes (`end`: the last), or the stream closed (`code`) */
  data(b: Buffer, end: boolean): void;
  closed(code: number): void;
}

/** The HTTP/2 session of one connection, its TLS and framing in the addon. */
export class H2Session implements H2Connection {
  readonly wire: H2Wire;
  readonly #front: FastFront;
  readonly #ip: string;
  readonly #port: number;
  readonly #streams = new Map<number, StreamState>();
  /** streams waiting for their queued body to go below HIGH_WATER */
  readonly #waiting = new Map<number, () => void>();
  readonly #end: () => void;
  /** hands the server end of a relay to the server's node:http2 handler */
  readonly #relayTo: (relay: Duplex) => void;
  #relay: ClientHttp2Session | undefined;
  /** the server side of the relay's stream pair (destroyed with the connection) */
  #relayEnd: Duplex | undefined;
  /** the proxy's own header lines of the session's last lane stream */
  readonly #forwarded = new ForwardedLines();
  #closing = false;
  #ended = false;
  /** the front's clock at the last record (idle timeout) */
  last: number;

  /**
   * `end`: the session is done (both sides said so, or GOAWAY and no stream left): the connection ends;
   * `relayTo`: where the relay's server end goes (the server's h2c handler)
   */
  constructor(
    front: FastFront,
    sock: Socket,
    ip: string,
    port: number,
    end: () => void,
    relayTo: (relay: Duplex) => void,
  ) {
    this.#front = front;
    this.#relayTo = relayTo;
    this.#ip = ip;
    this.#port = port;
    this.#end = end;
    this.last = front.tick;
    this.wire = new H2Wire(sock, () => this.#flushed());
  }

  /** streams in progress */
  get busy(): boolean {
    return this.#streams.size > 0;
  }

  /** A record of the addon's session (tcp-io batch); `block`: a header block's text, when the addon gave it. */
  record(rec: Buffer, block?: string): void {
    this.last = this.#front.tick;
    const kind = rec[0];
    const flags = rec[1]!;
    const id = rec.readInt32LE(4); // (the addon writes it in host order: little-endian on x86-64 and arm64)
    if (kind === H2_HEADERS)
      this.#headers(id, block ?? rec.toString('latin1', 8), (flags & FLAG_END_STREAM) !== 0, rec[2]!);
    else if (kind === H2_DATA) {
      const s = this.#streams.get(id);
      const end = (flags & FLAG_END_STREAM) !== 0;
      if (s) s.data(rec.subarray(8), end);
      else this.wire.consume(id, rec.length - 8); // a stream already answered: its bytes still count in the window
    } else if (kind === H2_CLOSE) {
      const s = this.#streams.get(id);
      this.#streams.delete(id);
      this.#waiting.delete(id);
      s?.closed(rec.readUInt32LE(8));
    }
  }

  /**
   * `text`: the block, `name NUL value NUL ...` as latin1; `checks`: what the addon knows of it (H2_UNIQUE_NAMES,
   * H2_CLEAN_VALUES)
   */
  #headers(id: number, text: string, endStream: boolean, checks: number): void {
    // (a search per NUL: one split of the block took 3.9k instructions a stream under callgrind, in V8's runtime)
    const raw: string[] = [];
    for (let i = 0; i < text.length;) {
      const a = text.indexOf('\0', i);
      const b = text.indexOf('\0', a + 1);
      if (a < 0 || b < 0) break;
      raw.push(text.slice(i, a), text.slice(a + 1, b));
      i = b + 1;
    }
    // no name twice: the raw list stands for node:http2's header object (made only if a relay needs it)
    const head = new H2Head(raw, (checks & H2_UNIQUE_NAMES) !== 0 ? undefined : headerObject(raw));
    if (this.#closing) {
      this.wire.reset(id, 7); // REFUSED_STREAM: the client may retry it elsewhere
      return;
    }
    const front = this.#front;
    const lane = front.lane(endStream, head, checks, this.#ip, this.#port, 'https', this.#forwarded, () => {
      const s = new NativeStream(front, this, id);
      this.#streams.set(id, s);
      return s;
    });
    if (!lane) this.#relayStream(id, head.object(), endStream);
  }

  #relayStream(id: number, headers: IncomingHttpHeaders, endStream: boolean): void {
    const s = new RelayStream(this, id, this.#relaySession(), headers, endStream);
    this.#streams.set(id, s);
  }

  /** the in-process h2c session to the server's node:http2 handler (made on the first stream it gets) */
  #relaySession(): ClientHttp2Session {
    if (this.#relay && !this.#relay.destroyed && !this.#relay.closed) return this.#relay;
    this.#relayEnd?.destroy(); // a relay that failed: its server side goes with it
    const [mine, theirs] = duplexPair();
    const sess = h2connect('http://kdp.relay', { createConnection: () => mine as unknown as Socket });
    sess.on('error', () => {});
    this.#relayTo(theirs);
    this.#relay = sess;
    this.#relayEnd = theirs;
    return sess;
  }

  /** a stream's body is over HIGH_WATER in the addon: `resume` runs when it is below again */
  waitDrain(id: number, resume: () => void): void {
    this.#waiting.set(id, resume);
  }

  #flushed(): void {
    for (const [id, resume] of this.#waiting) {
      const q = this.wire.queued(id);
      if (q < HIGH_WATER) {
        this.#waiting.delete(id);
        resume();
      }
    }
    if (!this.#ended && this.wire.done) {
      this.#ended = true;
      this.#end();
    }
  }

  /** GOAWAY: streams already open finish; new ones are refused; the session then ends */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.wire.goaway();
  }

  forget(id: number): void {
    this.#streams.delete(id);
    this.#waiting.delete(id);
  }

  /** The connection is gone: every stream in progress with it. */
  gone(): void {
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.#waiting.clear();
    for (const s of streams) s.closed(H2_CANCEL);
    // both ends of the relay: the server's session over it goes too
    this.#relay?.destroy();
    this.#relayEnd?.destroy();
    this.#relay = undefined;
    this.#relayEnd = undefined;
  }
}

/** One stream the fast front serves: its response goes out through the addon. */
class NativeStream extends H2Side implements StreamState {
  readonly #sess: H2Session;
  readonly #id: number;
  /** the response head went out (endStream or not) */
  #responded = false;
  #ended = false;
  #closed = false;

  constructor(front: FastFront, sess: H2Session, id: number) {
    super(front);
    this.#sess = sess;
    this.#id = id;
  }

  /** The response head; false when HTTP/2 cannot carry the header list (nothing sent: the exchange answers 502). */
  respond(status: string, lines: string, endStream: boolean, body?: Buffer): boolean {
    if (this.#closed) return true; // the client reset the stream: its close ends the exchange (499)
    const r = this.#sess.wire.respondLines(this.#id, status, lines, body ?? null, endStream);
    if (r === H2_UNCARRIED) return false;
    this.#responded = true;
    this.#ended = endStream;
    return true;
  }

  writeBody(b: Buffer, from: Socket): void {
    if (this.#closed || this.#ended) return;
    const q = this.#sess.wire.data(this.#id, b, false);
    if (q >= HIGH_WATER && this.hold(from)) this.#sess.waitDrain(this.#id, this.release);
  }

  fail(timeout: boolean): void {
    if (this.#closed || this.#responded) return;
    const body = timeout ? 'gateway timeout\n' : 'bad gateway\n';
    const block = headerBlock([
      ':status',
      timeout ? '504' : '502',
      'content-type',
      'text/plain; charset=utf-8',
      'content-length',
      String(body.length),
      'server',
      this.hooks.serverHeader,
    ])!;
    this.#responded = this.#ended = true;
    this.#sess.wire.respond(this.#id, block, body, true);
  }

  data(b: Buffer): void {
    // a request body on a lane stream cannot come (the lane takes streams that ended with their headers)
    this.#sess.wire.consume(this.#id, b.length);
  }

  done(rec: FrontRecord): void {
    if (!this.over(rec)) return;
    if (!this.#closed && !this.#ended) {
      this.#ended = true;
      this.#sess.wire.data(this.#id, null, true);
    }
    this.#sess.forget(this.#id);
  }

  /** The upstream failed mid-response: RST_STREAM INTERNAL_ERROR (the session and its other streams go on). */
  abort(): void {
    this.cut();
    if (!this.#closed) this.#sess.wire.reset(this.#id, H2_INTERNAL_ERROR);
    this.#sess.forget(this.#id);
  }

  closed(): void {
    this.#closed = true;
    this.gone();
  }
}

/** A stream relayed to the server's node:http2 handler (the general path) over the connection's h2c relay. */
class RelayStream implements StreamState {
  readonly #sess: H2Session;
  readonly #id: number;
  readonly #up: ClientHttp2Stream;
  #responded = false;
  #done = false;
  /** what the relay gave before its response head (replayed after it) */
  #early: (Buffer | typeof END | { trailers: IncomingHttpHeaders })[] = [];
  /** request body bytes received and not yet taken by the relay (given back to the window when the stream ends) */
  #unconsumed = 0;

  constructor(
    sess: H2Session,
    id: number,
    relay: ClientHttp2Session,
    headers: IncomingHttpHeaders,
    endStream: boolean,
  ) {
    this.#sess = sess;
    this.#id = id;
    const h: OutgoingHttpHeaders = { ...headers };
    const up = relay.request(h, { endStream });
    this.#up = up;
    up.on('error', () => {});
    // node:http2 emits 'response' on the next tick, while the DATA of the same read may already flow: what comes
    // before the response is held, then replayed after it
    up.on('response', (rh, flags) => {
      const block = headerBlock(flatten(rh));
      if (block === undefined) {
        this.#reset(H2_INTERNAL_ERROR);
        return;
      }
      this.#responded = true;
      const end = (flags & FLAG_END_STREAM) !== 0;
      if (end) this.#done = true;
      sess.wire.respond(id, block, null, end);
      const early = this.#early;
      this.#early = [];
      for (const e of early) this.#event(e);
    });
    up.on('data', (chunk: Buffer) => this.#event(chunk));
    up.on('trailers', (th: IncomingHttpHeaders) => this.#event({ trailers: th }));
    up.on('end', () => this.#event(END));
    up.on('close', () => {
      if (!this.#done) this.#reset(up.rstCode && up.rstCode !== 0 ? up.rstCode : H2_INTERNAL_ERROR);
      sess.forget(id);
    });
  }

  /** the relayed response's body, trailers and end, in their order, once its head went out */
  #event(e: Buffer | typeof END | { trailers: IncomingHttpHeaders }): void {
    if (this.#done) return;
    if (!this.#responded) {
      this.#early.push(e);
      return;
    }
    const sess = this.#sess;
    const id = this.#id;
    if (e === END) {
      this.#done = true;
      sess.wire.data(id, null, true);
    } else if (Buffer.isBuffer(e)) {
      const q = sess.wire.data(id, e, false);
      if (q >= HIGH_WATER) {
        const up = this.#up;
        up.pause();
        sess.waitDrain(id, () => up.resume());
      }
    } else {
      this.#done = true;
      const block = headerBlock(flatten(e.trailers).slice(2), false);
      if (block === undefined) sess.wire.data(id, null, true);
      else sess.wire.trailers(id, block);
    }
  }

  #reset(code: number): void {
    if (this.#done) return;
    this.#done = true;
    this.#sess.wire.reset(this.#id, code);
  }

  /** request body bytes: the window opens once the relay took them */
  data(b: Buffer, end: boolean): void {
    const up = this.#up;
    if (up.destroyed || up.writableEnded) {
      this.#sess.wire.consume(this.#id, b.length);
      return;
    }
    if (b.length > 0) {
      const n = b.length;
      this.#unconsumed += n;
      up.write(Buffer.from(b), () => {
        if (this.#unconsumed < n) return; // given back when the stream ended
        this.#unconsumed -= n;
        this.#sess.wire.consume(this.#id, n);
      });
    }
    if (end) up.end();
  }

  /** the client reset the stream (or the connection went): the relayed request is cancelled */
  closed(code: number): void {
    const cut = !this.#done;
    this.#done = true;
    // what the relay did not take still counts against the connection's window: given back
    if (this.#unconsumed > 0) this.#sess.wire.consume(this.#id, this.#unconsumed);
    this.#unconsumed = 0;
    if ((code !== 0 || cut) && !this.#up.destroyed) this.#up.close(H2_CANCEL);
  }
}
