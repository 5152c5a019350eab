// The data path: HTTP on one port, HTTPS (HTTP/1.1 and HTTP/2, certificate by SNI) on another. Each request
// reads the current RouteTable once (an atomic reference swap installs a new one; connections, WebSockets
// included, are never cut by a change) and is proxied straight to an endpoint pod IP over keep-alive pools.
import { performance } from 'node:perf_hooks';
import { STATUS_CODES, createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import {
  connect as h2Connect,
  constants as h2c,
  createServer as createH2cServer,
  createSecureServer,
} from 'node:http2';
import type {
  ClientHttp2Session,
  Http2SecureServer,
  Http2Server,
  Http2ServerRequest,
  Http2ServerResponse,
  IncomingHttpHeaders,
  OutgoingHttpHeaders,
  ServerHttp2Stream,
  ServerHttp2Session,
} from 'node:http2';
import { connect as netConnect, createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, DEFAULT_CIPHERS } from 'node:tls';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { ClientHello } from './client-hello.ts';
import { randomFillSync } from 'node:crypto';
import { Duplex as DuplexStream, PassThrough, Transform } from 'node:stream';
import type { Duplex, Writable } from 'node:stream';
import type { Logger } from '../src/common/log.ts';
import { silentLogger } from '../src/common/log.ts';
import type { AccessLog } from './access-log.ts';
import { decide, forwardedInto, PROXY_SET_HEADERS } from './decide.ts';
import type { GatewayForward, RequestFacts } from './decide.ts';
import { findCert, normalizeHost, validHost } from './match.ts';
import type { IngressMetrics } from './metrics.ts';
import {
  DEFAULT_POOL_SETTINGS,
  PoolCache,
  RoundRobin,
  affinityValue,
  cookieValue,
  endpointForCookie,
} from './upstream.ts';
import { KdpError } from '../src/common/errors.ts';
import { FastFront } from './fast-front.ts';
import { H2Session } from './h2-session.ts';
import type { FrontRecord } from './fast-front.ts';
import { acceptNative, h2InAddon, tlsContext } from './tcp-io.ts';
import type { NativeListener, TcpIo } from './tcp-io.ts';
import type { PoolSettings } from './upstream.ts';
import type { RouteOptions } from './annotations.ts';
import type { HeaderModifier, PathRoute, RouteTable, Upstream } from './types.ts';

/** Who terminates HTTP/1.1 over TLS (kdp ingress --tls-io). */
export type TlsIo = 'auto' | 'node';
/** a server name the addon's path takes (any other goes to node:tls, which answers as it does) */
const SNI_NAME = /^[a-z0-9_.-]*$/;

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

const EMPTY_TABLE: RouteTable = Object.freeze({
  hosts: new Map(),
  wildcards: new Map(),
  certs: new Map(),
  version: 0,
});

interface ServerOptions {
  readonly log?: Logger;
  readonly metrics?: IngressMetrics;
  readonly accessLog?: AccessLog;
  /** PEM of the certificate for names no Ingress TLS section covers */
  readonly defaultCert: { readonly certPem: string; readonly keyPem: string };
  readonly pool?: PoolSettings;
  /** attempts per request on connect errors (idempotent requests without body); ingress-nginx tries 3 upstreams */
  readonly maxAttempts?: number;
  /** the Server response header on every answer (nginx: `nginx`, with server_tokens `nginx/1.x`); default `kdp` */
  readonly serverHeader?: string;
  /**
   * request head limits, nginx's large_client_header_buffers (ingress-nginx: 4 8k): one line (request line or
   * header line, CRLF included) at most `maxHeaderLine` bytes (else 414 for the request line, 400 for a
   * header), the whole head at most `maxHeaderSize` (else 400)
   */
  readonly maxHeaderLine?: number;
  readonly maxHeaderSize?: number;
  /** plain TCP reads: the native addon's batches or node's (FrontHooks.tcpIo); default auto */
  readonly tcpIo?: TcpIo;
  /**
   * HTTP/1.1 over TLS: auto terminates it in the addon (its OpenSSL is node's) when plain reads are batched;
   * node leaves every TLS connection to node:tls
   */
  readonly tlsIo?: TlsIo;
  /**
   * TLS session ticket keys shared by the processes of one ingress (TICKET_KEYS_BYTES: the addon's 80, then
   * node:tls's 48), so that a client resumes on any worker; undefined: each process its own
   */
  readonly ticketKeys?: Buffer;
  /** a Gateway listener: the Gateway's `namespace/name` (metric label `gateway`) */
  readonly gateway?: string;
}

export const DEFAULT_SERVER_HEADER = 'kdp';
/** the length of ServerOptions.ticketKeys */
export const TICKET_KEYS_BYTES = 128;
export const DEFAULT_MAX_HEADER_LINE = 8 * 1024;
export const DEFAULT_MAX_HEADER_SIZE = 32 * 1024;

/** The decision's view of a node:http / HTTP/2 request. */
function nodeFacts(req: Req, scheme: 'http' | 'https', host: string, ip: string): RequestFacts {
  return {
    scheme,
    host,
    url: req.url ?? '/',
    method: req.method ?? 'GET',
    ip,
    header(name: string): string | undefined {
      const v = req.headers[name];
      return typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined;
    },
  };
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'http2-settings',
  'proxy',
]);
const RESPONSE_DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'trailer',
  'upgrade',
]);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const RETRYABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);
const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

class BodyTooLarge extends Error {}

/** nginx $request_length: request line, headers and body */
function requestLength(req: Req): number {
  let n = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i++) n += raw[i]!.length + 2;
  return n + (Number(req.headers['content-length'] ?? 0) || 0);
}

/** Counts the body bytes written to `res` (for $body_bytes_sent and the response-size metric). */
function countBytes(res: Res, ctx: { bytes: number }): void {
  const w = res as unknown as { write: (c: unknown, ...a: unknown[]) => boolean };
  const orig = w.write;
  w.write = function (this: unknown, chunk: unknown, ...rest: unknown[]): boolean {
    if (chunk && typeof (chunk as { length?: unknown }).length === 'number')
      ctx.bytes += (chunk as { length: number }).length;
    return orig.call(this, chunk, ...rest);
  };
}

// request ids: 16 random bytes as 32 hex digits (nginx $request_id), cut from a refilled pool of 4 KiB of random
// bytes as hex (one substring per request; encoding each id on its own cost ~1k instructions under callgrind)
const ID_POOL = Buffer.alloc(4096);
let idHex = '';
let idOffset = 0;
function newRequestId(): string {
  if (idOffset === idHex.length) {
    randomFillSync(ID_POOL);
    idHex = ID_POOL.toString('hex');
    idOffset = 0;
  }
  idOffset += 32;
  return idHex.slice(idOffset - 32, idOffset);
}

function requestId(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && incoming !== '' && incoming.length <= 200 && /^[\x21-\x7e]+$/.test(incoming)
    ? incoming
    : newRequestId();
}

/** h2c sessions run over a stream wrapper (see #h2cConnection): their real socket, for addresses and ports */
const h2cSockets = new WeakMap<object, Socket>();

/** The TCP socket of a request (h2c: the one under the stream wrapper). */
function socketOf(req: Req): Socket | undefined {
  const sess = (req as Http2ServerRequest).stream?.session;
  return (sess && h2cSockets.get(sess)) ?? (req.socket as Socket | undefined);
}

function clientIp(req: Req): string {
  const a = socketOf(req)?.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** The HTTP/2 connection preface a prior-knowledge h2c client starts with (RFC 9113 3.4). */
const H2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

/** The metric children of one label set. */
interface Series {
  requests: { inc(): void };
  duration: { observe(v: number): void };
  size: { observe(v: number): void };
}

/** A Gateway API header filter on a header record (lower-case keys): set, then add (comma-joined), then remove. */
export function modifyHeaders(h: Record<string, string | string[]>, m: HeaderModifier | undefined): void {
  if (!m) return;
  for (const [name, value] of m.set) h[name.toLowerCase()] = value;
  for (const [name, value] of m.add) {
    const k = name.toLowerCase();
    const prev = h[k];
    h[k] =
      prev === undefined
        ? value
        : k === 'set-cookie'
          ? [...[prev].flat(), value]
          : `${[prev].flat().join(',')},${value}`;
  }
  for (const name of m.remove) delete h[name.toLowerCase()];
}

interface Ctx {
  readonly start: number;
  readonly scheme: 'http' | 'https';
  readonly ip: string;
  readonly reqId: string;
  readonly hostHeader: string;
  upstreamName: string;
  altUpstreamName: string;
  upstreamAddr: string;
  upstreamStatus: string;
  upstreamTime: string;
  upstreamLength: string;
  bytes: number;
  route?: PathRoute;
  canary: boolean;
  ingress: string;
  service: string;
}

/** One Host header, a DNS name or an address with an optional port (HTTP/1.0 may omit it). */
function validHostHeader(rawHeaders: readonly string[], host: string, minor: number): boolean {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2)
    if (rawHeaders[i]!.length === 4 && rawHeaders[i]!.toLowerCase() === 'host') n++;
  if (n === 0) return minor === 0;
  return n === 1 && validHost(host);
}

/**
 * A head llhttp refuses (smuggling shapes, bad Host, oversized head, bare LF, NUL) is answered like nginx does,
 * 400 (nginx's "Request Header Or Cookie Too Large" for a head over the size limit, 414 when it is the request
 * line alone that does not end within it, 408 for a head not finished in time) with `Connection: close`, and
 * never forwarded; a connection that already started a response, or is gone, is just closed.
 */
function clientErrorAnswer(
  err: Error & { code?: string; rawPacket?: Buffer },
  socket: Duplex,
  server: string,
  maxLine: number,
): void {
  const sent = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (!socket.writable || sent || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  let status = '400 Bad Request';
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    const raw = err.rawPacket;
    const lf = raw ? raw.indexOf(10) : -1;
    const requestLineOnly =
      raw !== undefined && /^[A-Z]+ /.test(raw.toString('latin1', 0, 16)) && (lf < 0 || lf >= maxLine);
    status = requestLineOnly ? '414 Request-URI Too Large' : '400 Request Header Or Cookie Too Large';
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') status = '408 Request Timeout';
  socket.end(`HTTP/1.1 ${status}\r\nServer: ${server}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  setTimeout(() => socket.destroy(), 1000).unref();
}

/**
 * nginx's per-line limit on a head llhttp accepted: 414 when the request line (CRLF included) is longer than
 * `maxLine`, 400 when a header line is; 0 when every line fits. (HTTP/2 has no lines: name + ': ' + value.)
 */
export function headLineLimit(
  req: { method?: string | undefined; url?: string | undefined; rawHeaders: readonly string[] },
  maxLine: number,
): 0 | 400 | 414 {
  if ((req.method?.length ?? 0) + (req.url?.length ?? 0) + 12 > maxLine) return 414; // 'GET ' + url + ' HTTP/1.1\r\n'
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.length + raw[i + 1]!.length + 4 > maxLine) return 400;
  return 0;
}

export class IngressServer {
  #table: RouteTable = EMPTY_TABLE;
  readonly #log: Logger;
  readonly #ticketKeys: Buffer | undefined;
  readonly #metrics: IngressMetrics | undefined;
  readonly #access: AccessLog | undefined;
  readonly #pools: PoolCache;
  readonly #rr = new RoundRobin();
  readonly #maxAttempts: number;
  readonly #serverHeader: string;
  readonly #maxLine: number;
  readonly #contexts = new Map<string, SecureContext>();
  readonly #defaultContext: SecureContext;
  /** the addon's SSL_CTX for each of #contexts it could make (the HTTPS port's TLS in the addon) */
  readonly #nativeContexts = new Map<string, object>();
  #nativeDefault: object | undefined;
  /** the HTTPS port when the addon terminates TLS: ClientHellos are peeked, the rest go to `https` */
  #tlsFront: NetServer | undefined;
  /** the HTTPS port's accepts, taken by the addon from #tlsFront */
  #tlsAccept: NativeListener | undefined;
  /** plain HTTP requests the fast front does not take (connections are handed over; it never listens itself) */
  readonly http: HttpServer;
  /** the plain HTTP port: every connection starts in the fast front */
  readonly front: NetServer;
  readonly #fast: FastFront;
  readonly #handedOff = new Set<Socket>();
  /** node:http2's connection listener of the HTTPS server: where the front hands TLS connections over */
  #tlsFallback: ((sock: Socket) => void) | undefined;
  /** requests in progress per handed-over connection (node:http does not track connections it did not accept) */
  readonly #busy = new WeakMap<Socket, number>();
  readonly https: Http2SecureServer;
  readonly #upgraded = new Set<Duplex>();
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #tlsSockets = new Set<Socket>();
  /** HTTP/2 without TLS (prior knowledge) on the plain port: gRPC clients */
  readonly #h2c: Http2Server;
  /** the streams of the addon's HTTP/2 sessions the front does not serve (ingress/h2-session.ts), over h2c */
  readonly #h2Relay: Http2Server;
  /** HTTP/2 client sessions to h2c backends (GRPCRoute), by endpoint */
  readonly #h2Upstreams = new Map<string, ClientHttp2Session>();
  readonly #gateway: string;
  #inflight = 0;
  /** what this server added to the upstream-pools gauge */
  #poolsCounted = 0;
  #closing: Promise<void> | undefined;
  readonly #series = new Map<string, Series>();
  #lastSeries:
    | {
        route: PathRoute | undefined;
        status: number;
        hostHeader: string;
        method: string;
        owner: string;
        service: string;
        canary: string;
        m: Series;
      }
    | undefined;

  constructor(opts: ServerOptions) {
    this.#log = opts.log ?? silentLogger;
    if (opts.ticketKeys !== undefined && opts.ticketKeys.length !== TICKET_KEYS_BYTES)
      throw new KdpError(
        'KDP_INGRESS_CONFIG',
        `ticket keys: ${TICKET_KEYS_BYTES} bytes, not ${opts.ticketKeys.length}`,
      );
    this.#ticketKeys = opts.ticketKeys;
    this.#metrics = opts.metrics;
    this.#access = opts.accessLog;
    this.#pools = new PoolCache(opts.pool);
    this.#maxAttempts = opts.maxAttempts ?? 3;
    this.#defaultContext = createSecureContext({ cert: opts.defaultCert.certPem, key: opts.defaultCert.keyPem });
    this.#serverHeader = opts.serverHeader ?? DEFAULT_SERVER_HEADER;
    this.#maxLine = opts.maxHeaderLine ?? DEFAULT_MAX_HEADER_LINE;
    this.#gateway = opts.gateway ?? '';
    const maxHead = opts.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE;
    this.http = createHttpServer(
      { keepAliveTimeout: 75_000, requestTimeout: 0, headersTimeout: 60_000, maxHeaderSize: maxHead },
      (req, res) => this.#handle(req, res, 'http'),
    );
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#upgrade(req, socket, head, 'http'),
    );
    const answerClientError = (err: Error, socket: Duplex) =>
      clientErrorAnswer(err, socket, this.#serverHeader, this.#maxLine);
    this.http.on('clientError', answerClientError);
    const pool = opts.pool ?? DEFAULT_POOL_SETTINGS;
    this.#fast = new FastFront({
      log: this.#log,
      table: () => this.#table,
      handOff: (socket, rest) => this.#handOff(socket, rest),
      tlsContextFor: (hello) => this.#nativeContextFor(hello),
      tlsHandOff: (socket) => {
        this.#metrics?.tlsConnections.inc({ terminated_by: 'node' });
        this.https.emit('connection', socket);
      },
      tlsInAddon: () => this.#metrics?.tlsConnections.inc({ terminated_by: 'addon' }),
      // the streams the front does not serve: over `relay` (plain h2c) to the same handler as node:http2's, the
      // client's socket standing for the relay's (addresses, ports)
      h2Session: (front, sock, ip, port, end) =>
        new H2Session(front, sock, ip, port, end, (relay) => {
          this.#h2Relay.once('session', (sess: ServerHttp2Session) => h2cSockets.set(sess, sock));
          this.#h2Relay.emit('connection', relay);
        }),
      nextEndpoint: (u) => this.#rr.next(u),
      requestId: (incoming) => requestId(incoming),
      record: (r) => this.#recordFront(r),
      maxAttempts: this.#maxAttempts,
      serverHeader: this.#serverHeader,
      maxHeaderLine: this.#maxLine,
      maxHeaderSize: maxHead,
      keepAliveTimeoutMs: pool.keepAliveTimeoutMs,
      maxIdlePerEndpoint: pool.connections,
      ...(opts.tcpIo ? { tcpIo: opts.tcpIo } : {}),
    });
    this.front = createNetServer({ noDelay: true }, (sock) => this.#fast.accept(sock));
    if ((opts.tlsIo ?? 'auto') === 'auto' && this.#fast.batched) {
      this.#nativeDefault = this.#nativeContext(opts.defaultCert.certPem, opts.defaultCert.keyPem, 'default');
      if (this.#nativeDefault)
        this.#tlsFront = createNetServer({ noDelay: true }, (sock) => this.#fast.acceptTls(sock));
    }
    this.https = createSecureServer(
      {
        allowHTTP1: true,
        SNICallback: (name, cb) => cb(null, this.#contextFor(name)),
        key: opts.defaultCert.keyPem,
        cert: opts.defaultCert.certPem,
        ...(opts.ticketKeys ? { ticketKeys: opts.ticketKeys.subarray(80, TICKET_KEYS_BYTES) } : {}),
      },
      (req, res) => this.#handle(req, res, 'https'),
    );
    // HTTP/1.1 over TLS is parsed by node:http's connection listener, which reads the head limit from the
    // server's `maxHeaderSize` property (createSecureServer has no option for it)
    (this.https as unknown as { maxHeaderSize: number }).maxHeaderSize = maxHead;
    this.https.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#upgrade(req, socket, head, 'https'),
    );
    this.https.on('clientError', answerClientError); // HTTP/1.1 over TLS: the same answers as the plain port
    this.https.on('sessionError', () => {});
    this.https.on('session', (sess: ServerHttp2Session) => {
      this.#sessions.add(sess);
      sess.once('close', () => this.#sessions.delete(sess));
    });
    this.#h2c = createH2cServer({ maxSessionMemory: 10 }, (req, res) => this.#handle(req, res, 'http'));
    // no lane on the relay: its streams are the ones the lane did not take
    this.#h2Relay = createH2cServer({ maxSessionMemory: 10 }, (req, res) => this.#handle(req, res, 'https'));
    this.#h2Relay.on('sessionError', () => {});
    this.#h2Relay.on('session', (sess: ServerHttp2Session) => {
      this.#sessions.add(sess);
      sess.once('close', () => this.#sessions.delete(sess));
    });
    this.#h2Lane(this.https, 'https');
    this.#h2Lane(this.#h2c, 'http');
    this.#h2c.on('sessionError', () => {});
    this.#h2c.on('session', (sess: ServerHttp2Session) => {
      this.#sessions.add(sess);
      sess.once('close', () => this.#sessions.delete(sess));
    });
    // HTTP/1.1 over TLS starts in the fast front too. node:http2's own connection listener (ALPN h2 -> an HTTP/2
    // session, anything else -> node:http) takes the h2 connections and the ones the front hands over; should
    // a Node version name it otherwise, it stays in place and every TLS connection goes its way as before.
    const h2Listener = this.https
      .listeners('secureConnection')
      .find((f) => (f as { name?: string }).name === 'connectionListener') as ((s: Socket) => void) | undefined;
    if (h2Listener) {
      this.https.removeListener('secureConnection', h2Listener);
      this.#tlsFallback = (sock) => h2Listener.call(this.https, sock);
      this.https.on('secureConnection', (sock: TLSSocket) =>
        sock.alpnProtocol === 'h2' ? h2Listener.call(this.https, sock) : this.#fast.accept(sock, 'https'),
      );
    }
    this.https.on('secureConnection', (sock: Socket) => {
      this.#tlsSockets.add(sock);
      sock.once('close', () => this.#tlsSockets.delete(sock));
    });
  }

  /**
   * The HTTP/2 lane: each stream of `srv` is offered to the fast front first (FastFront.stream: a bodiless
   * GET/HEAD whose route only forwards, over the front's raw upstream pool); the ones it does not take go to
   * node:http2's compat listener (Http2ServerRequest/Response, #handle) as before. Should a Node version name
   * that listener otherwise, it stays in place and every stream goes its way.
   */
  #h2Lane(srv: Http2SecureServer | Http2Server, scheme: 'http' | 'https'): void {
    type OnStream = (s: ServerHttp2Stream, h: IncomingHttpHeaders, flags: number, raw: string[]) => void;
    const compat = srv.listeners('stream').find((f) => (f as { name?: string }).name === 'bound onServerStream') as
      OnStream | undefined;
    if (!compat) return;
    srv.removeListener('stream', compat);
    srv.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]) => {
      const sess = stream.session;
      const sock = sess ? (h2cSockets.get(sess) ?? (sess.socket as Socket)) : undefined;
      if (!this.#fast.stream(stream, headers, raw ?? [], sock, scheme)) compat.call(srv, stream, headers, flags, raw);
    });
  }

  /** Installs a new route table atomically; in-flight requests keep the table they started with. */
  setTable(table: RouteTable): void {
    const certKeys = new Set<string>();
    for (const c of [...table.certs.values(), ...(table.fallbackCert ? [table.fallbackCert] : [])]) {
      const k = `${c.secret}\n${c.certPem}`;
      certKeys.add(k);
      if (!this.#contexts.has(k)) {
        try {
          this.#contexts.set(k, createSecureContext({ cert: c.certPem, key: c.keyPem }));
        } catch (err) {
          this.#log.warn(
            { secret: c.secret, err: (err as Error).message },
            'TLS secret unusable; the default certificate is served instead',
          );
          continue;
        }
        const n = this.#tlsFront ? this.#nativeContext(c.certPem, c.keyPem, c.secret) : undefined;
        if (n) this.#nativeContexts.set(k, n);
      }
    }
    for (const k of this.#contexts.keys()) if (!certKeys.has(k)) this.#contexts.delete(k);
    for (const k of this.#nativeContexts.keys()) if (!certKeys.has(k)) this.#nativeContexts.delete(k);
    this.#table = table;
    const live = new Set<string>();
    const add = (u: Upstream | undefined) => u?.endpoints.forEach((e) => live.add(e));
    const routes = [...table.hosts.values(), ...table.wildcards.values(), ...(table.any ? [table.any] : [])];
    for (const hr of routes)
      for (const r of hr.paths) {
        add(r.upstream);
        add(r.fallback);
        add(r.canary?.upstream);
        for (const b of r.gateway?.backends ?? []) add(b.upstream);
        for (const m of r.gateway?.mirrors ?? []) add(m.upstream);
      }
    add(table.defaultRoute?.upstream);
    this.#pools.retain(live);
    this.#fast.pool.retain(live);
    // several servers (the Ingress ports, every Gateway listener) share the gauge: each adds its own change
    this.#metrics?.upstreamPools.inc(this.#pools.size - this.#poolsCounted);
    this.#poolsCounted = this.#pools.size;
  }

  /** The addon's context for a certificate node:tls took; undefined (node:tls serves it) when OpenSSL refuses. */
  #nativeContext(certPem: string, keyPem: string, secret: string): object | undefined {
    try {
      return tlsContext(certPem, keyPem, DEFAULT_CIPHERS, this.#ticketKeys?.subarray(0, 80));
    } catch (err) {
      this.#log.debug({ secret, err: (err as Error).message }, 'TLS in the addon: context refused, node:tls serves it');
      return undefined;
    }
  }

  /**
   * The addon's context for a ClientHello, as #contextFor picks node:tls's (no SNI: the default certificate);
   * undefined leaves the connection to node:tls: ALPN h2 when the addon has no HTTP/2, an odd name, a certificate
   * the addon has no context for.
   */
  #nativeContextFor(hello: ClientHello): object | undefined {
    if (this.#closing || (hello.alpn.includes('h2') && !h2InAddon()) || !SNI_NAME.test(hello.serverName))
      return undefined;
    if (hello.serverName === '') return this.#nativeDefault;
    const c = findCert(this.#table, hello.serverName);
    if (!c) return this.#nativeDefault;
    const k = `${c.secret}\n${c.certPem}`;
    if (!this.#contexts.has(k)) return this.#nativeDefault;
    return this.#nativeContexts.get(k);
  }

  #contextFor(servername: string): SecureContext {
    const c = findCert(this.#table, servername);
    if (!c) return this.#defaultContext;
    return this.#contexts.get(`${c.secret}\n${c.certPem}`) ?? this.#defaultContext;
  }

  async listen(opts: {
    httpPort: number;
    httpsPort: number;
    host?: string;
    reusePort?: boolean;
  }): Promise<{ http: number; https: number }> {
    const http = await this.listenOne('http', opts);
    const https = await this.listenOne('https', opts);
    return { http, https };
  }

  /**
   * Opens one of the two ports: the plain HTTP one (fast front, node:http, h2c with prior knowledge) or the
   * HTTPS one (HTTP/1.1 and HTTP/2 by ALPN, certificate by SNI). A Gateway listener is one of them.
   */
  async listenOne(
    which: 'http' | 'https',
    opts: { httpPort?: number; httpsPort?: number; host?: string; reusePort?: boolean },
  ): Promise<number> {
    const host = opts.host ?? '::';
    // reusePort: with several worker processes each has its own listening socket and the kernel spreads the
    // connections (no accept through the cluster primary); a Gateway listener on its own address and the
    // Ingress port on every address can share a port number only when both sockets have it
    const srv = which === 'http' ? this.front : (this.#tlsFront ?? this.https);
    const port = which === 'http' ? opts.httpPort : opts.httpsPort;
    await new Promise<void>((r, j) =>
      srv.once('error', j).listen({ port, host, reusePort: opts.reusePort ?? false }, () => {
        srv.off('error', j);
        r();
      }),
    );
    const bound = (srv.address() as AddressInfo).port;
    // TLS in the addon: the addon accepts the HTTPS port's connections itself (no node socket for those it serves)
    if (srv === this.#tlsFront)
      this.#tlsAccept = acceptNative(
        srv,
        (sock) => this.#fast.acceptTls(sock),
        (err) => this.#log.warn({ err: err.message, port: bound }, 'ingress: accept failed, retrying'),
      );
    return bound;
  }

  /**
   * Stops accepting, lets requests in flight finish for up to `graceMs` (HTTP/2 sessions get GOAWAY, idle
   * keep-alive connections are closed at once), then closes everything left, upgraded sockets included.
   * Idempotent.
   */
  close(graceMs = 0): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    const closed = Promise.all([
      new Promise((r) => this.front.close(r)),
      new Promise((r) => (this.#tlsFront ?? this.https).close(r)),
    ]);
    this.#tlsAccept?.close();
    this.#fast.startClosing();
    for (const s of this.#handedOff) if (!this.#busy.get(s)) s.destroy();
    for (const s of this.#sessions) s.close();
    const end = Date.now() + graceMs;
    while ((this.#inflight > 0 || this.#fast.inflight > 0) && Date.now() < end)
      await new Promise((r) => setTimeout(r, 25));
    for (const s of this.#upgraded) s.destroy();
    this.http.closeAllConnections();
    for (const s of this.#handedOff) s.destroy();
    this.#fast.destroyAll();
    for (const s of this.#sessions) s.destroy();
    for (const s of this.#tlsSockets) s.destroy();
    for (const s of this.#h2Upstreams.values()) s.destroy();
    this.#h2Upstreams.clear();
    await closed;
    await this.#pools.close();
    this.#metrics?.upstreamPools.dec(this.#poolsCounted);
    this.#poolsCounted = 0;
  }

  #handOff(socket: Socket, rest: Buffer): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const tls = (socket as TLSSocket).encrypted === true;
    if (!tls && rest.toString('latin1', 0, 16) === H2_PREFACE.slice(0, 16)) return this.#h2cConnection(socket, rest);
    this.#handedOff.add(socket);
    socket.once('close', () => this.#handedOff.delete(socket));
    if (rest.length > 0) socket.unshift(rest);
    if (tls) this.#tlsFallback!(socket);
    else this.http.emit('connection', socket);
    socket.resume();
  }

  /**
   * A connection that opened with the HTTP/2 preface (h2c, prior knowledge: gRPC clients) goes to the h2c
   * server. node:http2 reads a net.Socket through its native handle, past the bytes the front already read,
   * so the session gets a stream wrapper that replays them first.
   */
  #h2cConnection(socket: Socket, rest: Buffer): void {
    // tracked through its session (#sessions: GOAWAY on close, streams in flight finish)
    const wrapped = new DuplexStream({
      read: () => void socket.resume(),
      write: (chunk: Buffer, _enc, cb) => void socket.write(chunk, cb),
      final: (cb) => {
        socket.end();
        cb();
      },
      destroy: (err, cb) => {
        socket.destroy();
        cb(err);
      },
    });
    wrapped.push(rest);
    socket.on('data', (c: Buffer) => {
      if (!wrapped.push(c)) socket.pause();
    });
    socket.on('end', () => wrapped.push(null));
    socket.on('close', () => wrapped.destroy());
    socket.on('error', (e) => wrapped.destroy(e));
    this.#h2c.once('session', (sess: ServerHttp2Session) => h2cSockets.set(sess, socket));
    this.#h2c.emit('connection', wrapped);
    socket.resume();
  }

  // ------------------------------------------------------------------ request path
  #handle(req: Req, res: Res, scheme: 'http' | 'https'): void {
    const hostHeader = (req.headers.host ?? (req.headers[':authority'] as string | undefined) ?? '') as string;
    const ctx: Ctx = {
      start: performance.now(),
      scheme,
      ip: clientIp(req),
      reqId: requestId(req.headers['x-request-id']),
      hostHeader,
      upstreamName: '',
      altUpstreamName: '',
      upstreamAddr: '-',
      upstreamStatus: '-',
      upstreamTime: '-',
      upstreamLength: '-',
      bytes: 0,
      canary: false,
      ingress: '',
      service: '',
    };
    this.#inflight++;
    const sock = req.socket as Socket | undefined;
    const handed = sock !== undefined && this.#handedOff.has(sock);
    if (handed) this.#busy.set(sock, (this.#busy.get(sock) ?? 0) + 1);
    res.once('close', () => {
      this.#inflight--;
      if (handed) {
        const n = (this.#busy.get(sock) ?? 1) - 1;
        this.#busy.set(sock, n);
        if (n === 0 && this.#closing) sock.destroy();
      }
      if (this.#metrics || this.#access) this.#record(req, res, ctx);
    });
    // nginx: "client sent too long URI" -> 414, "client sent too long header line" -> 400
    const tooLong = headLineLimit(req, this.#maxLine);
    if (tooLong !== 0)
      return this.#reply(
        res,
        tooLong,
        tooLong === 414 ? 'request-uri too large\n' : 'request header or cookie too large\n',
        req.httpVersionMajor === 2 ? {} : { connection: 'close' },
      );
    // nginx: "client sent duplicate host header" / "invalid host header" -> 400, never routed
    if (req.httpVersionMajor === 1 && !validHostHeader(req.rawHeaders, hostHeader, req.httpVersionMinor))
      return this.#reply(res, 400, 'bad request - invalid Host header\n');
    const d = decide(this.#table, nodeFacts(req, scheme, hostHeader, ctx.ip));
    ctx.ingress = d.ingress;
    ctx.route = d.route;
    if (d.kind === 'reply') {
      if (d.upstream) {
        ctx.upstreamName = d.upstream.name;
        ctx.service = d.upstream.service;
      }
      return this.#reply(res, d.status, d.body, d.location === undefined ? {} : { location: d.location });
    }
    if (d.kind === 'preflight') {
      const o = d.options;
      (res as ServerResponse).writeHead(204, {
        ...this.#corsHeaders(o, req),
        'access-control-allow-methods': o.cors!.allowMethods,
        'access-control-allow-headers': o.cors!.allowHeaders,
        'access-control-max-age': String(o.cors!.maxAge),
        'content-length': '0',
        server: this.#serverHeader,
      });
      res.end();
      return;
    }
    if (d.alternative !== '') {
      ctx.altUpstreamName = d.alternative;
      ctx.canary = true;
    }
    const g = d.gateway;
    let abort: AbortController | undefined;
    if (g?.requestTimeoutMs) {
      // HTTPRoute timeouts.request: the whole exchange, from the request in to the response out
      const ac = (abort = new AbortController());
      const timer = setTimeout(() => {
        ac.abort();
        if (res.headersSent) res.destroy();
        else {
          ctx.upstreamStatus = ctx.upstreamStatus === '-' ? '504' : ctx.upstreamStatus;
          this.#reply(res, 504, 'gateway timeout\n');
        }
      }, g.requestTimeoutMs);
      res.once('close', () => clearTimeout(timer));
    }
    this.#proxy(req, res, ctx, d.upstream, d.options, d.target, d.route, g, abort?.signal);
  }

  #corsHeaders(o: RouteOptions, req: Req): Record<string, string> {
    const cors = o.cors!;
    const origin = req.headers.origin;
    let allow = '*';
    if (!cors.allowOrigin.includes('*')) {
      const ok =
        typeof origin === 'string' &&
        cors.allowOrigin.some(
          (a) =>
            a === origin ||
            (a.includes('://*.') &&
              origin.endsWith(a.slice(a.indexOf('*') + 1)) &&
              origin.startsWith(a.slice(0, a.indexOf('*')))),
        );
      allow = ok ? (origin as string) : cors.allowOrigin[0]!;
    }
    const h: Record<string, string> = { 'access-control-allow-origin': allow };
    if (cors.allowCredentials) h['access-control-allow-credentials'] = 'true';
    if (cors.exposeHeaders) h['access-control-expose-headers'] = cors.exposeHeaders;
    return h;
  }

  #reply(res: Res, status: number, body: string, extra: Record<string, string> = {}): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    (res as ServerResponse).writeHead(status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      server: this.#serverHeader,
      ...extra,
    });
    (res as unknown as { kdpBytes: number }).kdpBytes = Buffer.byteLength(body);
    res.end(body);
  }

  #forwardHeaders(req: Req, ctx: Ctx): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    const h = req.headers;
    const conn =
      typeof h.connection === 'string'
        ? h.connection
            .toLowerCase()
            .split(',')
            .map((s) => s.trim())
        : [];
    for (const k in h) {
      if (
        k.charCodeAt(0) === 58 /* ':' pseudo-header */ ||
        HOP_BY_HOP.has(k) ||
        PROXY_SET_HEADERS.has(k) ||
        (conn.length > 0 && conn.includes(k))
      )
        continue;
      const v = h[k];
      if (v !== undefined) out[k] = v;
    }
    const xff = h['x-forwarded-for'];
    forwardedInto(
      out,
      ctx.scheme,
      ctx.hostHeader,
      ctx.ip,
      socketOf(req)?.localPort ?? (ctx.scheme === 'https' ? 443 : 80),
      ctx.reqId,
      Array.isArray(xff) ? xff.join(', ') : xff,
    );
    return out;
  }

  #pick(upstream: Upstream, o: RouteOptions, req: Req): { endpoint: string; setCookie?: string } {
    if (o.affinity) {
      const v = cookieValue(req.headers.cookie, o.affinity.cookieName);
      const sticky = v === undefined ? undefined : endpointForCookie(upstream, v);
      if (sticky) return { endpoint: sticky };
      const endpoint = this.#rr.next(upstream);
      const a = o.affinity;
      const attrs = [`${a.cookieName}=${affinityValue(endpoint)}`, `Path=${a.path ?? '/'}`, 'HttpOnly'];
      if (a.maxAge !== undefined) attrs.push(`Max-Age=${a.maxAge}`);
      if (a.sameSite) attrs.push(`SameSite=${a.sameSite}`);
      return { endpoint, setCookie: attrs.join('; ') };
    }
    return { endpoint: this.#rr.next(upstream) };
  }

  #proxy(
    req: Req,
    res: Res,
    ctx: Ctx,
    upstream: Upstream,
    o: RouteOptions,
    target: string,
    route: PathRoute | undefined,
    g?: GatewayForward,
    signal?: AbortSignal,
  ): void {
    ctx.upstreamName = upstream.name;
    ctx.service = upstream.service;
    if (upstream.endpoints.length === 0) return this.#reply(res, 503, 'service unavailable: no endpoints\n');
    const method = req.method ?? 'GET';
    const cl = req.headers['content-length'];
    if (o.bodyLimit > 0 && cl !== undefined && Number(cl) > o.bodyLimit)
      return this.#reply(
        res,
        413,
        'request entity too large\n',
        req.httpVersionMajor === 2 ? {} : { connection: 'close' },
      );
    const hasBody =
      (cl !== undefined && cl !== '0') ||
      req.headers['transfer-encoding'] !== undefined ||
      (req.httpVersionMajor === 2 && !(req as Http2ServerRequest).stream?.endAfterHeaders);
    let body: NodeJS.ReadableStream | undefined;
    let tooLarge = false;
    let sendTimedOut = false;
    if (hasBody) {
      // the body streams through: counted against the limit when its length is not declared, and cut when
      // the client pauses longer than proxy-send-timeout between two chunks (no buffering in between)
      let n = 0;
      const limit = cl === undefined ? o.bodyLimit : 0;
      const t = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          idle.refresh();
          n += chunk.length;
          if (limit > 0 && n > limit) {
            tooLarge = true;
            cb(new BodyTooLarge('body too large'));
          } else cb(null, chunk);
        },
        flush(cb) {
          clearTimeout(idle);
          cb();
        },
      });
      const idle = setTimeout(() => {
        sendTimedOut = true;
        t.destroy(new Error('client body idle longer than proxy-send-timeout'));
      }, o.sendTimeoutMs);
      t.once('close', () => clearTimeout(idle));
      req.once('close', () => {
        if (!req.complete) t.destroy(new Error('client went away during the request body'));
      });
      body = req.pipe(t);
    }
    const headers = this.#forwardHeaders(req, ctx);
    if (g) {
      for (const m of g.requestHeaders) modifyHeaders(headers, m);
      if (g.host !== undefined) headers.host = g.host;
      for (const m of g.mirrors) this.#mirror(m.upstream, method, target, headers, body);
      if (route?.gateway?.kind === 'GRPCRoute') return this.#proxyH2(req, res, ctx, upstream, headers, target, g, body);
    }
    const retryable = IDEMPOTENT.has(method) && !hasBody;
    const attempts = retryable ? Math.min(this.#maxAttempts, upstream.endpoints.length) : 1;
    const pick = this.#pick(upstream, o, req);
    const extra: (readonly [string, string])[] = [...o.responseHeaders];
    if (o.cors) for (const kv of Object.entries(this.#corsHeaders(o, req))) extra.push(kv);
    if (pick.setCookie) extra.push(['set-cookie', pick.setCookie]);
    const https = o.backendProtocol === 'HTTPS';
    let backendTimedOut = false;
    const attempt = (endpoint: string, n: number): void => {
      const t0 = performance.now();
      ctx.upstreamAddr = ctx.upstreamAddr === '-' ? endpoint : `${ctx.upstreamAddr}, ${endpoint}`;
      const pool = this.#pools.get(endpoint, https, o.connectTimeoutMs);
      // HTTPRoute timeouts.backendRequest: one call to a backend, from sending the request to the full response
      let attemptSignal = signal;
      let backendTimer: NodeJS.Timeout | undefined;
      if (g?.backendRequestTimeoutMs) {
        const ac = new AbortController();
        backendTimer = setTimeout(() => {
          backendTimedOut = true;
          ac.abort();
        }, g.backendRequestTimeoutMs);
        attemptSignal = signal ? AbortSignal.any([signal, ac.signal]) : ac.signal;
      }
      pool
        .stream(
          {
            path: target,
            method: method as 'GET',
            headers,
            body: body as never,
            headersTimeout: o.readTimeoutMs,
            bodyTimeout: o.readTimeoutMs,
            opaque: null,
            ...(attemptSignal ? { signal: attemptSignal } : {}),
          },
          ({ statusCode, headers: uh }): Writable => {
            ctx.upstreamStatus = String(statusCode);
            ctx.upstreamTime = ((performance.now() - t0) / 1000).toFixed(3);
            const out: Record<string, string | string[]> = {};
            for (const k in uh) {
              if (RESPONSE_DROP.has(k)) continue;
              const v = uh[k];
              if (v !== undefined) out[k] = v;
            }
            ctx.upstreamLength = typeof uh['content-length'] === 'string' ? uh['content-length'] : '-';
            for (const [k, v] of extra) {
              const lk = k.toLowerCase();
              const prev = out[lk];
              out[lk] = lk === 'set-cookie' && prev !== undefined ? [...(Array.isArray(prev) ? prev : [prev]), v] : v;
            }
            out.server = this.#serverHeader; // nginx does not pass the upstream's Server either
            if (g) for (const m of g.responseHeaders) modifyHeaders(out, m);
            (res as ServerResponse).writeHead(statusCode, out);
            // exact byte counting (a wrapper per write) only for the access log; metrics use Content-Length
            if (this.#access) countBytes(res, ctx);
            else if (typeof uh['content-length'] === 'string') ctx.bytes = Number(uh['content-length']) || 0;
            return res as unknown as Writable;
          },
        )
        .finally(() => clearTimeout(backendTimer))
        .catch((err: NodeJS.ErrnoException) => {
          const code = err.code ?? '';
          if (signal?.aborted) return; // timeouts.request: answered (504) or cut where it fired
          if (
            !backendTimedOut &&
            ctx.upstreamStatus === '-' &&
            n + 1 < attempts &&
            RETRYABLE.has(code) &&
            !res.headersSent &&
            !res.destroyed
          ) {
            this.#log.debug({ endpoint, code, upstream: upstream.name }, 'retrying on the next endpoint');
            // the next endpoint after the one that failed (not the shared cursor: it may point back at it)
            const i = upstream.endpoints.indexOf(endpoint);
            return attempt(upstream.endpoints[(i + 1) % upstream.endpoints.length]!, n + 1);
          }
          if (res.headersSent || res.destroyed) {
            res.destroy();
            return;
          }
          if (sendTimedOut)
            return this.#reply(
              res,
              408,
              'request timeout\n',
              req.httpVersionMajor === 2 ? {} : { connection: 'close' },
            );
          if (tooLarge || err instanceof BodyTooLarge)
            return this.#reply(
              res,
              413,
              'request entity too large\n',
              req.httpVersionMajor === 2 ? {} : { connection: 'close' },
            );
          const status = TIMEOUTS.has(code) || backendTimedOut ? 504 : 502;
          ctx.upstreamStatus = ctx.upstreamStatus === '-' ? String(status) : ctx.upstreamStatus;
          this.#log.debug({ endpoint, code, upstream: upstream.name, route: route?.path }, 'upstream error');
          this.#reply(res, status, status === 504 ? 'gateway timeout\n' : 'bad gateway\n');
        });
    };
    attempt(pick.endpoint, 0);
  }

  /**
   * RequestMirror: a copy of the request to one endpoint of the mirror Service, fire and forget: its response
   * is read and dropped, its failure only logged (debug), and it never holds up the real request (a body is
   * copied while it streams; a mirror that falls more than 1 MiB behind loses its copy).
   */
  #mirror(
    upstream: Upstream,
    method: string,
    target: string,
    headers: Record<string, string | string[]>,
    body: NodeJS.ReadableStream | undefined,
  ): void {
    // decide() drew the mirror's fraction already: every mirror here gets its copy
    if (upstream.endpoints.length === 0) return;
    const endpoint = this.#rr.next(upstream);
    let copy: PassThrough | undefined;
    if (body) {
      const c = (copy = new PassThrough());
      const onData = (chunk: Buffer) => {
        if (c.writableLength > 1024 * 1024) {
          body.off('data', onData);
          c.destroy(new Error('mirror too far behind'));
        } else c.write(chunk);
      };
      body.on('data', onData);
      body.once('end', () => c.end());
      body.once('error', () => c.destroy());
    }
    this.#pools
      .get(endpoint, false, 5_000)
      .request({
        path: target,
        method: method as 'GET',
        headers: { ...headers },
        body: copy as never,
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      })
      .then(
        (r) => r.body.dump(),
        (err: Error) => this.#log.debug({ endpoint, upstream: upstream.name, err: err.message }, 'mirror failed'),
      )
      .catch(() => {});
  }

  /** An HTTP/2 session to an h2c endpoint (GRPCRoute backends), opened on first use, kept while it lives. */
  #h2Upstream(endpoint: string): ClientHttp2Session {
    const have = this.#h2Upstreams.get(endpoint);
    if (have && !have.closed && !have.destroyed) return have;
    const sess = h2Connect(`http://${endpoint}`);
    sess.on('error', (err) => this.#log.debug({ endpoint, err: err.message }, 'h2c upstream session error'));
    sess.once('close', () => {
      if (this.#h2Upstreams.get(endpoint) === sess) this.#h2Upstreams.delete(endpoint);
    });
    // idle sessions go away after the keep-alive timeout
    sess.setTimeout(60_000, () => sess.close());
    this.#h2Upstreams.set(endpoint, sess);
    return sess;
  }

  /**
   * GRPCRoute: the request over HTTP/2 (h2c) to the backend, streamed both ways, trailers (grpc-status)
   * passed back. A failure before the response starts is a 502 (504 on a timeout); after, the stream is reset.
   */
  #proxyH2(
    req: Req,
    res: Res,
    ctx: Ctx,
    upstream: Upstream,
    headers: Record<string, string | string[]>,
    target: string,
    g: GatewayForward,
    body: NodeJS.ReadableStream | undefined,
  ): void {
    const endpoint = this.#rr.next(upstream);
    ctx.upstreamAddr = endpoint;
    const t0 = performance.now();
    const h: OutgoingHttpHeaders = {
      ':method': req.method ?? 'POST',
      ':path': target,
      ':scheme': 'http',
      ':authority': (headers.host as string | undefined) ?? ctx.hostHeader,
    };
    for (const k in headers) if (k !== 'host') h[k] = headers[k];
    if (req.headers.te === 'trailers') h.te = 'trailers'; // gRPC requires it (hop-by-hop otherwise)
    let up: ReturnType<ClientHttp2Session['request']>;
    try {
      up = this.#h2Upstream(endpoint).request(h, { endStream: body === undefined });
    } catch (err) {
      this.#log.debug({ endpoint, err: (err as Error).message }, 'h2c upstream request failed');
      return this.#reply(res, 502, 'bad gateway\n');
    }
    let timer: NodeJS.Timeout | undefined;
    if (g.backendRequestTimeoutMs)
      timer = setTimeout(() => {
        if (!res.headersSent) this.#reply(res, 504, 'gateway timeout\n');
        up.close(h2c.NGHTTP2_CANCEL);
      }, g.backendRequestTimeoutMs);
    if (body) body.pipe(up);
    up.on('response', (rh) => {
      clearTimeout(timer);
      if (res.headersSent || res.destroyed) return void up.close(h2c.NGHTTP2_CANCEL);
      const status = Number(rh[':status']) || 502;
      ctx.upstreamStatus = String(status);
      ctx.upstreamTime = ((performance.now() - t0) / 1000).toFixed(3);
      const out: Record<string, string | string[]> = {};
      for (const k in rh) {
        if (k.charCodeAt(0) === 58 || RESPONSE_DROP.has(k)) continue;
        const v = rh[k];
        if (v !== undefined) out[k] = Array.isArray(v) ? v : String(v);
      }
      out.server = this.#serverHeader;
      for (const m of g.responseHeaders) modifyHeaders(out, m);
      (res as ServerResponse).writeHead(status, out);
      up.on('trailers', (t) => {
        const tr: Record<string, string> = {};
        for (const k in t) if (k.charCodeAt(0) !== 58 && t[k] !== undefined) tr[k] = String(t[k]);
        (res as ServerResponse).addTrailers(tr);
      });
      up.pipe(res as unknown as Writable);
    });
    up.on('error', (err: Error) => {
      clearTimeout(timer);
      if (res.headersSent || res.destroyed) return void res.destroy();
      this.#log.debug({ endpoint, upstream: upstream.name, err: err.message }, 'h2c upstream error');
      ctx.upstreamStatus = '502';
      this.#reply(res, 502, 'bad gateway\n');
    });
    res.once('close', () => {
      clearTimeout(timer);
      if (!up.closed) up.close(h2c.NGHTTP2_CANCEL);
    });
  }

  #record(req: Req, res: Res, ctx: Ctx): void {
    const seconds = (performance.now() - ctx.start) / 1000;
    const status = res.statusCode;
    const len = ctx.bytes || (res as unknown as { kdpBytes?: number }).kdpBytes || 0;
    this.#observe(
      ctx.hostHeader,
      status,
      req.method ?? '',
      ctx.route,
      ctx.ingress,
      ctx.service,
      ctx.canary ? ctx.upstreamName : '',
      seconds,
      len,
    );
    this.#access?.write({
      remoteAddr: ctx.ip,
      method: req.method ?? '',
      url: req.url ?? '',
      httpVersion: req.httpVersion,
      status,
      bodyBytesSent: len,
      referer: req.headers.referer,
      userAgent: req.headers['user-agent'],
      requestLength: requestLength(req),
      requestTime: seconds,
      upstreamName: ctx.upstreamName,
      alternativeUpstreamName: ctx.altUpstreamName,
      upstreamAddr: ctx.upstreamAddr,
      upstreamResponseLength:
        ctx.upstreamLength === '-' && ctx.upstreamTime !== '-' ? String(ctx.bytes) : ctx.upstreamLength,
      upstreamResponseTime: ctx.upstreamTime,
      upstreamStatus: ctx.upstreamStatus,
      requestId: ctx.reqId,
    });
  }

  /** A request the fast front served (HTTP/1.1, or a stream of its HTTP/2 lane). */
  #recordFront(r: FrontRecord): void {
    const seconds = (performance.now() - r.start) / 1000;
    this.#observe(r.hostHeader, r.status, r.method, r.route, r.ingress, r.upstream.service, '', seconds, r.bytes);
    this.#access?.write({
      remoteAddr: r.ip,
      method: r.method,
      url: r.url,
      httpVersion: r.httpVersion,
      status: r.status,
      bodyBytesSent: r.bytes,
      referer: r.referer,
      userAgent: r.userAgent,
      requestLength: r.requestLength,
      requestTime: seconds,
      upstreamName: r.upstream.name,
      alternativeUpstreamName: '',
      upstreamAddr: r.upstreamAddr,
      upstreamResponseLength:
        r.upstreamLength >= 0 ? String(r.upstreamLength) : r.upstreamSeconds >= 0 ? String(r.bytes) : '-',
      upstreamResponseTime: r.upstreamSeconds >= 0 ? r.upstreamSeconds.toFixed(3) : '-',
      upstreamStatus: r.upstreamStatus,
      requestId: r.reqId,
    });
  }

  #observe(
    hostHeader: string,
    status: number,
    method: string,
    route: PathRoute | undefined,
    owner: string,
    service: string,
    canary: string,
    seconds: number,
    len: number,
  ): void {
    if (!this.#metrics) return;
    // the series of the previous request, when this one has the same labels (keep-alive clients mostly repeat
    // theirs): no key string, no map lookup
    const last = this.#lastSeries;
    if (
      last !== undefined &&
      last.route === route &&
      last.status === status &&
      last.hostHeader === hostHeader &&
      last.method === method &&
      last.owner === owner &&
      last.service === service &&
      last.canary === canary
    ) {
      last.m.requests.inc();
      last.m.duration.observe(seconds);
      last.m.size.observe(len);
      return;
    }
    const path = route?.path ?? '';
    // Gateway API routes: `ingress` and `namespace` name the HTTPRoute/GRPCRoute, `route_kind` says which, and
    // `gateway` the Gateway whose listener took the request (both absent on Ingress series)
    const ingress = route?.gateway?.route ?? owner;
    // label children are cached: prom-client hashes the label set on every call otherwise
    const key = `${hostHeader}\n${status}\n${method}\n${path}\n${ingress}\n${service}\n${canary}\n${route?.gateway?.kind ?? ''}`;
    let m = this.#series.get(key);
    if (!m) {
      const labels = {
        gateway: this.#gateway,
        route_kind: route?.gateway?.kind ?? '',
        host: normalizeHost(hostHeader),
        status: String(status),
        method,
        path,
        ingress: ingress.slice(ingress.indexOf('/') + 1),
        namespace: ingress.slice(0, Math.max(0, ingress.indexOf('/'))),
        service,
        canary,
      };
      if (this.#series.size > 10_000) this.#series.clear();
      m = {
        requests: this.#metrics.requests.labels(labels),
        duration: this.#metrics.duration.labels(labels),
        size: this.#metrics.responseSize.labels(labels),
      };
      this.#series.set(key, m);
    }
    this.#lastSeries = { route, status, hostHeader, method, owner, service, canary, m };
    m.requests.inc();
    m.duration.observe(seconds);
    m.size.observe(len);
  }

  // ------------------------------------------------------------------ upgrades (WebSocket and others)
  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, scheme: 'http' | 'https'): void {
    const fail = (status: number, location?: string) => {
      const loc = location === undefined ? '' : `location: ${location}\r\n`;
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${loc}server: ${this.#serverHeader}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
      );
    };
    socket.on('error', () => socket.destroy());
    const tooLong = headLineLimit(req, this.#maxLine);
    if (tooLong !== 0) return fail(tooLong);
    const hostHeader = req.headers.host ?? '';
    const ctx = { ip: clientIp(req), reqId: requestId(req.headers['x-request-id']), hostHeader, scheme } as Ctx;
    const d = decide(this.#table, nodeFacts(req, scheme, hostHeader, ctx.ip));
    if (d.kind === 'reply') return fail(d.status, d.location);
    if (d.kind === 'preflight') return fail(400); // an OPTIONS upgrade: not a preflight
    const { upstream, options: o, target } = d;
    const { endpoint } = this.#pick(upstream, o, req);
    const headers = this.#forwardHeaders(req, ctx);
    // Gateway API: the request header filters and the Host rewrite apply to an upgrade too
    for (const m of d.gateway?.requestHeaders ?? []) modifyHeaders(headers, m);
    if (d.gateway?.host !== undefined) headers.host = d.gateway.host;
    headers.connection = 'upgrade';
    if (req.headers.upgrade) headers.upgrade = req.headers.upgrade;
    const colon = endpoint.lastIndexOf(':');
    const host = endpoint.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(endpoint.slice(colon + 1));
    const up: Socket =
      o.backendProtocol === 'HTTPS'
        ? tlsConnect({ host, port, rejectUnauthorized: false })
        : netConnect({ host, port });
    let connected = false;
    up.setTimeout(o.connectTimeoutMs);
    up.once(o.backendProtocol === 'HTTPS' ? 'secureConnect' : 'connect', () => {
      connected = true;
      up.setTimeout(o.readTimeoutMs);
      let text = `${req.method ?? 'GET'} ${target} HTTP/1.1\r\n`;
      for (const [k, v] of Object.entries(headers))
        for (const one of Array.isArray(v) ? v : [v]) text += `${k}: ${one}\r\n`;
      up.write(text + '\r\n');
      if (head.length > 0) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    this.#upgraded.add(socket);
    const done = () => {
      this.#upgraded.delete(socket);
      up.destroy();
      socket.destroy();
    };
    up.on('timeout', () => {
      if (!connected) fail(504);
      done();
    });
    up.on('error', () => {
      if (!connected) fail(502);
      done();
    });
    up.on('close', done);
    socket.on('close', done);
  }
}
