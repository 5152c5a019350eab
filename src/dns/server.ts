// The DNS server: UDP and TCP on one port, EDNS0 buffer sizes, truncation with TC, TCP pipelining
// (answers are written as they complete, RFC 7766 6.2.1.1), FORMERR or drop on malformed input. Every
// request runs through the plugin chain of the server block whose zone matches; nothing a client sends
// can throw out of handle(). The fast path is an optimisation inside the chain's contract: where the
// chain's first answering plugin is the cache or the kubernetes plugin and only errors, log and
// loadbalance come before it, the answer is made from the query's bytes (the cache's encoded entries, the
// encoded cluster answers kept per cluster-state generation), with the same bytes the chain would give,
// loadbalance's shuffle and log's line. test/unit/dns/fast-path.test.ts compares the two.
import { performance } from 'node:perf_hooks';
import { createServer } from 'node:net';
import type { Server as TcpServer, Socket } from 'node:net';
import { errorMessage } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { loadNative, nativeUnavailable, openUdp } from './udp.ts';
import type { UdpEndpoint, UdpIo, UdpReply } from './udp.ts';
import type { DnsReply, DnsRequest, Plugin } from './chain.ts';
import { runChain } from './chain.ts';
import type { DnsMetrics, QuerySeries } from './metrics.ts';
import { AutopathPlugin } from './plugins/autopath.ts';
import { CachePlugin, cacheKey } from './plugins/cache.ts';
import { LogPlugin } from './plugins/log.ts';
import {
  CLASS_IN,
  FLAG,
  MAX_UDP_NO_EDNS,
  OUR_UDP_SIZE,
  RCODE,
  TYPE,
  decode,
  encodeResponse,
  rcodeName,
  readName,
  typeName,
} from './wire.ts';

export interface ServerBlock {
  /** lower-case zones this block serves ('' = the root, '.') */
  readonly zones: readonly string[];
  /** the chain, in PLUGIN_ORDER */
  readonly plugins: readonly Plugin[];
  /** false: every query of this block takes the chain */
  readonly fastPath?: boolean;
}

/** What the fast path may do for a block, read from its chain. */
interface FastPlan {
  /** the cache, when it is the first plugin that answers: its hits come from the query's bytes */
  readonly cache: CachePlugin | undefined;
  /**
   * encoded cluster answers may be reused: the kubernetes plugin is the first that answers, or comes right
   * after a cache (then only the answers that cache does not keep are reused)
   */
  readonly cluster: boolean;
  /** log plugins before the answering one: each writes its line for a fast answer too */
  readonly logs: readonly LogPlugin[];
  /** loadbalance before the answering one: fast answers are shuffled (or, when they cannot be, not reused) */
  readonly shuffle: boolean;
  /** autopath before the answering one: the queries it walks a search path for take the chain */
  readonly autopath: AutopathPlugin | undefined;
}

/**
 * plugins that only pass answers back (errors: fast answers never carry an error), whose effect the fast
 * path reproduces, or (autopath) that pass on every query the fast path answers
 */
const BEFORE_FAST = new Set(['errors', 'log', 'loadbalance', 'autopath']);

/** The block's fast path plan from its chain; the fast path does nothing the chain would not. */
export function fastPlan(block: ServerBlock): FastPlan {
  const logs: LogPlugin[] = [];
  let shuffle = false;
  let autopath: AutopathPlugin | undefined;
  const none = { cache: undefined, cluster: false, logs, shuffle, autopath };
  if (block.fastPath === false) return none;
  let i = 0;
  for (; i < block.plugins.length && BEFORE_FAST.has(block.plugins[i]!.name); i++) {
    const p = block.plugins[i]!;
    if (p instanceof LogPlugin) logs.push(p);
    else if (p.name === 'loadbalance') shuffle = true;
    else if (p instanceof AutopathPlugin) autopath = p;
    else if (p.name !== 'errors') return none;
  }
  const first = block.plugins[i];
  const cache = first instanceof CachePlugin ? first : undefined;
  const answering = cache ? block.plugins[i + 1] : first;
  return { cache, cluster: answering?.name === 'kubernetes', logs, shuffle, autopath };
}

/** Where cluster answers come from, for the fast path: a change counter and a change signal. */
export interface AnswerSource {
  readonly generation: number;
  onChange(fn: () => void): () => void;
}

interface DnsServerOptions {
  /** listen address; '' = every address, IPv6 and IPv4 ('::' dual-stack, '0.0.0.0' where IPv6 is off) */
  readonly host: string;
  readonly port: number;
  readonly blocks: readonly ServerBlock[];
  readonly log: Logger;
  readonly metrics?: DnsMetrics;
  /** enables reuse of encoded cluster answers while this source's generation stays the same */
  readonly answers?: AnswerSource;
  readonly fastPathCapacity?: number;
  /**
   * TCP timeouts (CoreDNS's server defaults): a connection's first message must arrive whole within
   * tcpReadTimeoutMs (3 s) of the connect, each later one within tcpIdleMs (10 s) of the previous answer;
   * bytes that trickle in do not extend either. An answer the client does not read within tcpWriteTimeoutMs
   * (5 s) closes the connection.
   */
  readonly tcpReadTimeoutMs?: number;
  readonly tcpIdleMs?: number;
  readonly tcpWriteTimeoutMs?: number;
  /** open TCP connections at most (1000); a new one beyond it replaces the longest-idle one, if any */
  readonly maxTcpConnections?: number;
  /**
   * SO_REUSEPORT on the UDP socket and the TCP listener (`kdp dns --workers N`): each worker process binds
   * its own pair on the same port and the kernel spreads datagrams and connections over them
   */
  readonly reusePort?: boolean;
  /**
   * the UDP socket's I/O (src/dns/udp.ts): 'mmsg' batches datagrams through the native addon (recvmmsg/sendmmsg),
   * 'dgram' is node:dgram; 'auto' (default) takes 'mmsg' when the addon is built, else 'dgram' with a warning
   */
  readonly udpIo?: 'auto' | UdpIo;
}

/** One TCP connection's state, for the timeouts and for choosing which one to close when full. */
interface TcpConn {
  readonly socket: Socket;
  /** queries read and not yet answered */
  pending: number;
  /** bytes of a message not yet complete */
  partial: number;
  /** when the last whole message arrived or the last answer was written (performance.now()) */
  lastActive: number;
  deadline: NodeJS.Timeout | undefined;
  deadlineAt: number;
}

interface FastEntry {
  readonly wire: Buffer;
  readonly zone: string;
  readonly rcode: number;
  readonly plan: FastPlan;
}

/**
 * Where a cache hit for one question spelling is looked up, worked out from its bytes once: the block, the
 * lower-case name and the cache key (a flat string whose hash V8 keeps, so each later lookup neither
 * decodes the name nor builds and hashes a new key). It depends only on the question bytes and the blocks.
 */
interface CacheRoute {
  readonly target: Target;
  readonly name: string;
  readonly key: string;
}

/** The shape of a plain query (one question of class IN, at most a bare OPT), read without building objects. */
interface QuickShape {
  readonly qtype: number;
  /** end of the question section */
  readonly qend: number;
  /** the OPT record (no options), or undefined without EDNS */
  readonly edns: { readonly do: boolean; readonly udpSize: number } | undefined;
  /**
   * the cluster fast path's key: the question's name bytes as sent (the spelling: a cluster answer carries
   * the query's spelling of the zone in names the question does not cover, an SRV target
   * `svc.ns.svc.cLuStEr.LoCaL.`, as CoreDNS writes it, so it is reused only for the same spelling), its
   * type and the EDNS state. Bytes that equal a stored key passed quickName when it was stored.
   */
  readonly fastKey: string;
}

const EDNS_STATE = ['-', 'E', 'D'] as const;

/** The shape of a plain query; undefined when it is anything else. Labels are walked by their lengths only. */
function quickShape(buf: Buffer): QuickShape | undefined {
  if (buf.length < 17 || buf.readUInt16BE(4) !== 1 || buf.readUInt16BE(6) !== 0 || buf.readUInt16BE(8) !== 0)
    return undefined;
  const ar = buf.readUInt16BE(10);
  if (ar > 1 || (buf[2] as number) & 0xf8) return undefined; // QR or opcode set
  let pos = 12;
  let n = 0; // length of the name as text
  for (;;) {
    if (pos >= buf.length) return undefined;
    const len = buf[pos] as number;
    if (len === 0) break;
    n += n > 0 ? len + 1 : len;
    if (len > 63 || pos + 1 + len > buf.length || n > 255) return undefined;
    pos += 1 + len;
  }
  const qend = pos + 5;
  if (qend > buf.length || buf.readUInt16BE(pos + 3) !== CLASS_IN) return undefined;
  let edns: QuickShape['edns'];
  if (ar === 1) {
    // exactly one OPT with no options: root, type 41, size, ext-rcode 0, version 0, flags, rdlen 0
    if (
      buf.length !== qend + 11 ||
      buf[qend] !== 0 ||
      buf.readUInt16BE(qend + 1) !== TYPE.OPT ||
      buf.readUInt16BE(qend + 5) !== 0 ||
      buf.readUInt16BE(qend + 9) !== 0
    )
      return undefined;
    edns = { do: ((buf[qend + 7] as number) & 0x80) !== 0, udpSize: buf.readUInt16BE(qend + 3) };
  } else if (buf.length !== qend) {
    return undefined;
  }
  const state = edns ? (edns.do ? 2 : 1) : 0;
  return {
    qtype: buf.readUInt16BE(pos + 1),
    qend,
    edns,
    fastKey: buf.toString('latin1', 12, qend - 2) + EDNS_STATE[state],
  };
}

const scratch = Buffer.allocUnsafe(256);

/**
 * The lower-case name (without the trailing dot, '' = the root) of a query quickShape accepted; undefined
 * when a label holds a dot, a backslash or a byte outside printable ASCII (the full path handles those).
 */
function quickName(buf: Buffer): string | undefined {
  let pos = 12;
  let n = 0;
  for (;;) {
    const len = buf[pos] as number;
    if (len === 0) break;
    if (n > 0) scratch[n++] = 0x2e;
    for (let i = pos + 1; i <= pos + len; i++) {
      const c = buf[i] as number;
      if (c === 0x2e || c === 0x5c || c <= 0x20 || c >= 0x7f) return undefined;
      scratch[n++] = c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
    }
    pos += 1 + len;
  }
  return scratch.toString('latin1', 0, n);
}

function familyOf(addr: string): 4 | 6 {
  return addr.includes(':') && !addr.startsWith('::ffff:') ? 6 : 4;
}

/** A block with its fast path plan and, once matched, the zone that matched. */
interface Target {
  readonly block: ServerBlock;
  readonly plan: FastPlan;
  readonly zone: string;
  /** the zone as the metrics name it ('.', 'cluster.local.') */
  readonly zoneLabel: string;
}

const zoneLabel = (zone: string) => (zone === '' ? '.' : zone + '.');

function target(block: ServerBlock): Target {
  const zone = block.zones.length === 1 ? (block.zones[0] as string) : '';
  return { block, plan: fastPlan(block), zone, zoneLabel: zoneLabel(zone) };
}

export class DnsServer {
  readonly #opts: DnsServerOptions;
  readonly #log: Logger;
  readonly #fast = new Map<string, FastEntry>();
  /** cache routes by the fast key of a query the cache answered from its bytes (kept until setBlocks) */
  readonly #routes = new Map<string, CacheRoute>();
  readonly #fastCap: number;
  #udp: UdpEndpoint | undefined;
  #tcp: TcpServer | undefined;
  readonly #conns = new Map<Socket, TcpConn>();
  #unsub: (() => void) | undefined;
  #port = 0;
  #fastHits = 0;
  #cacheHits = 0;
  #routeHits = 0;
  /** the metric series of fast answers, by zone label and then by a number made of type, rcode, plugin, protocol and family */
  readonly #series = new Map<string, Map<number, QuerySeries>>();
  #anyCache: boolean;
  #blocks: readonly Target[];
  /** the only block, when it serves the root alone (no zone to pick) */
  #rootOnly: Target | undefined;

  constructor(opts: DnsServerOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#fastCap = opts.fastPathCapacity ?? 10000;
    this.#blocks = opts.blocks.map(target);
    this.#anyCache = this.#blocks.some((b) => b.plan.cache);
    this.#rootOnly = DnsServer.#soleRoot(this.#blocks);
    if (opts.answers) this.#unsub = opts.answers.onChange(() => this.#fast.clear());
  }

  static #soleRoot(blocks: readonly Target[]): Target | undefined {
    const b = blocks[0];
    return blocks.length === 1 && b && b.block.zones.length === 1 && b.block.zones[0] === '' ? b : undefined;
  }

  get port(): number {
    return this.#port;
  }

  /** how many answers the fast path served (tests, benchmarks) */
  get fastHits(): number {
    return this.#fastHits;
  }

  /**
   * Swaps in new server blocks (a Corefile reload): the sockets and open TCP connections stay; queries
   * already in a chain finish there, the next ones take the new blocks.
   */
  setBlocks(blocks: readonly ServerBlock[]): void {
    this.#blocks = blocks.map(target);
    this.#anyCache = this.#blocks.some((b) => b.plan.cache);
    this.#rootOnly = DnsServer.#soleRoot(this.#blocks);
    this.#fast.clear();
    this.#routes.clear();
  }

  /** how many cache hits were served straight from the query's bytes (tests, benchmarks) */
  get cacheFastHits(): number {
    return this.#cacheHits;
  }

  /** of those, how many found their block, name and cache key by the route kept for their question bytes */
  get cacheRouteHits(): number {
    return this.#routeHits;
  }

  /** The answer to one message: from the fast path when it has it, else through handle(). */
  respond(msg: Buffer, proto: 'udp' | 'tcp', client: string): Promise<Buffer | undefined> {
    const fast = this.#fastAnswer(msg, proto, client);
    return fast ? Promise.resolve(fast) : this.handle(msg, proto, client);
  }

  /** Binds UDP and TCP on the same port (port 0: the kernel picks one that is free for both). */
  async start(): Promise<number> {
    let host = this.#opts.host;
    const io = this.#udpIo();
    for (let attempt = 0; ; attempt++) {
      const any = host === '';
      let udp: UdpEndpoint;
      try {
        udp = await openUdp(io, {
          host: any ? '::' : host,
          port: this.#opts.port,
          reusePort: this.#opts.reusePort ?? false,
          onDatagram: this.#onDatagram,
          onError: (err) => this.#log.error({ err: errorMessage(err) }, 'udp socket error'),
        });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (any && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
          host = '0.0.0.0';
          continue;
        }
        throw err;
      }
      if (any) host = '::';
      const port = udp.port;
      const tcp = createServer({ noDelay: true }, (s) => this.#onConnection(s));
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen({ port, host, backlog: 511, reusePort: this.#opts.reusePort ?? false, exclusive: true }, () => {
            tcp.removeListener('error', reject);
            resolve();
          });
        });
      } catch (err) {
        await udp.close();
        if (this.#opts.port === 0 && attempt < 10) continue;
        throw err;
      }
      tcp.on('error', (err) => this.#log.error({ err: errorMessage(err) }, 'tcp server error'));
      this.#udp = udp;
      this.#tcp = tcp;
      this.#port = port;
      return port;
    }
  }

  /** the UDP I/O in use once started ('mmsg' or 'dgram') */
  get udpIo(): UdpIo | undefined {
    return this.#udp?.io;
  }

  #udpIo(): UdpIo {
    const want = this.#opts.udpIo ?? 'auto';
    if (want !== 'auto') return want;
    if (loadNative()) return 'mmsg';
    this.#log.warn({ reason: nativeUnavailable() }, 'udp: batched I/O (mmsg) unavailable, using node:dgram');
    return 'dgram';
  }

  async close(): Promise<void> {
    this.#unsub?.();
    for (const c of this.#conns.keys()) c.destroy();
    await Promise.all([this.#udp?.close(), new Promise<void>((r) => (this.#tcp ? this.#tcp.close(() => r()) : r()))]);
    this.#udp = undefined;
    this.#tcp = undefined;
  }

  /** one datagram (src/dns/udp.ts): the fast answer now, or the full path's answer later */
  #onDatagram = (msg: Buffer, client: string, later: () => UdpReply): Buffer | undefined => {
    const fast = this.#fastAnswer(msg, 'udp', client);
    if (fast) return fast;
    const reply = later();
    this.handle(Buffer.from(msg), 'udp', client).then(
      (res) => res && reply(res),
      (err) => this.#log.error({ err: errorMessage(err) }, 'udp request failed'),
    );
    return undefined;
  };

  /**
   * The connection to close so a new one fits: the longest-idle one with nothing in flight and nothing
   * half-read, else the one whose half-read message is oldest (a client trickling bytes); undefined when
   * every connection has queries in flight.
   */
  #evictable(): TcpConn | undefined {
    let idle: TcpConn | undefined;
    let partial: TcpConn | undefined;
    for (const c of this.#conns.values()) {
      if (c.pending > 0) continue;
      if (c.partial === 0) {
        if (!idle || c.lastActive < idle.lastActive) idle = c;
      } else if (!partial || c.lastActive < partial.lastActive) partial = c;
    }
    return idle ?? partial;
  }

  #onConnection(s: Socket): void {
    const max = this.#opts.maxTcpConnections ?? 1000;
    if (this.#conns.size >= max) {
      const victim = this.#evictable();
      if (!victim) {
        s.destroy();
        return;
      }
      this.#conns.delete(victim.socket);
      victim.socket.destroy();
    }
    const readMs = this.#opts.tcpReadTimeoutMs ?? 3_000;
    const idleMs = this.#opts.tcpIdleMs ?? 10_000;
    const writeMs = this.#opts.tcpWriteTimeoutMs ?? 5_000;
    const c: TcpConn = {
      socket: s,
      pending: 0,
      partial: 0,
      lastActive: performance.now(),
      deadline: undefined,
      deadlineAt: 0,
    };
    // the deadline for the next whole message; it moves only when a message completes or an answer is
    // written, so a client sending a byte now and then cannot hold the connection. One timer per
    // connection, re-armed lazily when it fires before the (moved) deadline.
    const fire = () => {
      c.deadline = undefined;
      const left = c.deadlineAt - performance.now();
      if (left > 1) schedule(left);
      else if (c.pending > 0)
        arm(idleMs); // answers still being worked on: their write moves it again
      else s.destroy();
    };
    const schedule = (ms: number) => {
      c.deadline = setTimeout(fire, ms);
      c.deadline.unref();
    };
    const arm = (ms: number) => {
      c.deadlineAt = performance.now() + ms;
      if (!c.deadline) schedule(ms);
    };
    this.#conns.set(s, c);
    arm(readMs);
    s.on('close', () => {
      if (c.deadline) clearTimeout(c.deadline);
      if (this.#conns.get(s) === c) this.#conns.delete(s);
    });
    s.on('error', () => s.destroy());
    let writeTimer: NodeJS.Timeout | undefined;
    s.on('drain', () => {
      if (writeTimer) clearTimeout(writeTimer);
      writeTimer = undefined;
    });
    s.on('close', () => writeTimer && clearTimeout(writeTimer));
    let buf = Buffer.alloc(0);
    const client = s.remoteAddress ?? '';
    s.on('data', (d) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        if (c.pending >= 128) {
          s.destroy(); // a client pipelining without reading
          return;
        }
        c.pending++;
        c.lastActive = performance.now();
        arm(idleMs);
        const write = (res: Buffer | undefined) => {
          c.pending--;
          if (!res || s.destroyed) return;
          c.lastActive = performance.now();
          arm(idleMs);
          const frame = Buffer.allocUnsafe(2 + res.length);
          frame.writeUInt16BE(res.length, 0);
          res.copy(frame, 2);
          if (!s.write(frame) && !writeTimer) {
            writeTimer = setTimeout(() => s.destroy(), writeMs);
            writeTimer.unref();
          }
        };
        const fast = this.#fastAnswer(msg, 'tcp', client);
        if (fast) write(fast);
        else this.handle(Buffer.from(msg), 'tcp', client).then(write, () => write(undefined));
      }
      c.partial = buf.length;
    });
  }

  /** The answer to a plain query from the cluster answers or a block's cache, or undefined (take the full path). */
  #fastAnswer(msg: Buffer, proto: 'udp' | 'tcp', client: string): Buffer | undefined {
    if (this.#fast.size === 0 && !this.#anyCache) return undefined;
    const t0 = performance.now();
    const q = quickShape(msg);
    if (!q) return undefined;
    if (this.#fast.size > 0) {
      const e = this.#fast.get(q.fastKey);
      // autopath: a query it walks takes the chain (the name is decoded only when autopath is configured; a stored
      // key passed quickName, so equal bytes do too)
      if (e && !(e.plan.autopath && e.plan.autopath.searchFor(quickName(msg) as string, client))) {
        this.#fastHits++;
        const out = Buffer.allocUnsafe(e.wire.length);
        e.wire.copy(out);
        out.writeUInt16BE(msg.readUInt16BE(0), 0);
        out.writeUInt16BE(
          (out.readUInt16BE(2) & ~(FLAG.RD | FLAG.CD)) | (msg.readUInt16BE(2) & (FLAG.RD | FLAG.CD)),
          2,
        );
        msg.copy(out, 12, 12, q.qend); // the question as the client spelled it; answers point at it
        this.#fastDone(e.plan, msg, q, out, e.zone, e.rcode, 'kubernetes', proto, client, t0);
        return out;
      }
    }
    if (!this.#anyCache) return undefined;
    // a spelling the cache answered before has its route; else the name is read and the block chosen here
    let route = this.#routes.get(q.fastKey);
    const known = route !== undefined;
    if (!route) {
      const name = quickName(msg);
      if (name === undefined) return undefined;
      const target = this.#block(name);
      const cache = target?.plan.cache;
      if (!cache || q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR || !cache.covers(name)) return undefined;
      route = { target, name, key: cacheKey(name, q.qtype, q.edns?.do ?? false) };
    }
    const { target, name } = route;
    if (target.plan.autopath?.searchFor(name, client)) return undefined;
    const maxSize =
      proto === 'tcp' ? 65535 : q.edns ? Math.min(Math.max(q.edns.udpSize, MAX_UDP_NO_EDNS), 65535) : MAX_UDP_NO_EDNS;
    const out = target.plan.cache!.answerWire(
      name,
      q.qtype,
      msg,
      q.qend,
      q.edns,
      maxSize,
      target.plan.shuffle,
      route.key,
    );
    if (!out) return undefined;
    if (known) this.#routeHits++;
    else {
      if (this.#routes.size >= this.#fastCap) this.#routes.clear();
      this.#routes.set(q.fastKey, route);
    }
    this.#cacheHits++;
    this.#fastDone(target.plan, msg, q, out, target.zoneLabel, (out[3] as number) & 0xf, 'cache', proto, client, t0);
    return out;
  }

  /** What the chain does around an answer, for a fast one: metrics and the log plugins' lines. */
  #fastDone(
    plan: FastPlan,
    msg: Buffer,
    q: QuickShape,
    out: Buffer,
    zone: string,
    rcode: number,
    plugin: 'kubernetes' | 'cache',
    proto: 'udp' | 'tcp',
    client: string,
    t0: number,
  ): void {
    const ms = performance.now() - t0;
    const metrics = this.#opts.metrics;
    if (metrics) {
      // the series looked up by numbers, not by a label key built per query
      const family = familyOf(client);
      const k =
        ((q.qtype * 16 + rcode) * 2 + (plugin === 'cache' ? 1 : 0)) * 4 +
        (proto === 'tcp' ? 2 : 0) +
        (family === 6 ? 1 : 0);
      let byZone = this.#series.get(zone);
      if (!byZone) this.#series.set(zone, (byZone = new Map()));
      let c = byZone.get(k);
      if (!c) byZone.set(k, (c = metrics.series(zone, proto, family, typeName(q.qtype), rcodeName(rcode), plugin)));
      metrics.observeSeries(c, msg.length, out.length, ms / 1000);
    }
    if (plan.logs.length === 0) return;
    const line = {
      client,
      proto,
      id: msg.readUInt16BE(0),
      qtype: typeName(q.qtype),
      qname: readName(msg, 12).name,
      rcode,
      size: out.length,
      truncated: false,
      ms,
    };
    for (const l of plan.logs) l.line(line);
  }

  #block(lname: string): Target | undefined {
    if (this.#rootOnly) return this.#rootOnly;
    let best: Target | undefined;
    for (const t of this.#blocks) {
      for (const z of t.block.zones) {
        if ((z === '' || lname === z || lname.endsWith('.' + z)) && (!best || z.length > best.zone.length))
          best = z === t.zone ? t : { ...t, zone: z, zoneLabel: zoneLabel(z) };
      }
    }
    return best;
  }

  /** Answers one message; undefined means drop it. Never throws. */
  async handle(buf: Buffer, proto: 'udp' | 'tcp', client: string): Promise<Buffer | undefined> {
    const t0 = performance.now();
    if (buf.length < 12) return undefined;
    const id = buf.readUInt16BE(0);
    const qflags = buf.readUInt16BE(2);
    if (qflags & FLAG.QR) return undefined; // never answer a response
    const base = (qflags & 0x7800) | (qflags & FLAG.RD);
    let msg;
    try {
      msg = decode(buf);
    } catch {
      return encodeResponse({ id, flags: base, rcode: RCODE.FORMERR }).wire;
    }
    const q = msg.questions[0];
    const ednsOut = msg.edns ? { udpSize: OUR_UDP_SIZE, do: msg.edns.do } : undefined;
    if (msg.opcode !== 0)
      return encodeResponse({
        id,
        flags: base,
        rcode: RCODE.NOTIMP,
        ...(q ? { question: q } : {}),
        ...(ednsOut ? { edns: ednsOut } : {}),
      }).wire;
    if (msg.questions.length !== 1 || !q)
      return encodeResponse({ id, flags: base, rcode: RCODE.FORMERR, ...(ednsOut ? { edns: ednsOut } : {}) }).wire;
    if (msg.edns && msg.edns.version > 0)
      return encodeResponse({
        id,
        flags: base,
        rcode: RCODE.BADVERS,
        question: q,
        edns: { udpSize: OUR_UDP_SIZE, do: msg.edns.do },
      }).wire;
    const maxSize =
      proto === 'tcp'
        ? 65535
        : msg.edns
          ? Math.min(Math.max(msg.edns.udpSize, MAX_UDP_NO_EDNS), 65535)
          : MAX_UDP_NO_EDNS;
    const lname = q.name.toLowerCase();
    const qtype = typeName(q.type);
    const target = this.#block(lname);
    let r: DnsReply;
    let zone = target?.zone ?? '';
    if (q.class !== CLASS_IN || q.type === TYPE.AXFR || q.type === TYPE.IXFR || !target) {
      r = { plugin: '', rcode: RCODE.REFUSED, aa: false, answers: [], authority: [], additional: [] };
      zone = target?.zone ?? 'dropped';
    } else {
      const req: DnsRequest = {
        id,
        flags: qflags,
        question: q,
        lname,
        qtype,
        ...(msg.edns ? { edns: msg.edns } : {}),
        proto,
        client,
      };
      try {
        r = await runChain(target.block.plugins, req);
      } catch (err) {
        this.#opts.metrics?.panic();
        this.#log.error({ err: errorMessage(err), qname: q.name, qtype }, 'plugin chain failed');
        r = { plugin: '', rcode: RCODE.SERVFAIL, aa: false, answers: [], authority: [], additional: [] };
      }
    }
    let out: Buffer;
    let truncated = false;
    try {
      if (r.raw) {
        out = r.raw;
        out.writeUInt16BE(id, 0);
        if (out.length > maxSize) {
          out = encodeResponse({
            id,
            flags: base | FLAG.RA,
            rcode: r.rcode,
            question: q,
            ...(ednsOut ? { edns: ednsOut } : {}),
          }).wire;
          out.writeUInt16BE(out.readUInt16BE(2) | FLAG.TC, 2);
          truncated = true;
        }
      } else {
        const answers = r.answers;
        const enc = encodeResponse(
          {
            id,
            flags: base | FLAG.RA | (r.aa ? FLAG.AA : 0),
            rcode: r.rcode,
            question: q,
            answers,
            authority: r.authority,
            additional: r.additional,
            ...(ednsOut ? { edns: ednsOut } : {}),
          },
          maxSize,
        );
        out = enc.wire;
        truncated = enc.truncated;
        // a cluster answer: keep its bytes for the fast path, where that gives what the chain would (not
        // shuffled answers, not names a cache in front keeps: the chain answers those from the cache)
        if (
          r.generation !== undefined &&
          !truncated &&
          target?.plan.cluster &&
          this.#opts.answers &&
          r.generation === this.#opts.answers.generation &&
          out.length <= MAX_UDP_NO_EDNS &&
          !(target.plan.shuffle && answers.filter((a) => a.type === 'A' || a.type === 'AAAA').length > 1) &&
          !target.plan.cache?.keeps(lname, r.rcode, answers.length > 0)
        ) {
          const key = quickShape(buf);
          if (key && quickName(buf) !== undefined) {
            if (this.#fast.size >= this.#fastCap) this.#fast.clear();
            this.#fast.set(key.fastKey, {
              wire: out,
              zone: zoneLabel(zone),
              rcode: r.rcode,
              plan: target.plan,
            });
            out = Buffer.from(out);
          }
        }
      }
    } catch (err) {
      this.#log.error({ err: errorMessage(err), qname: q.name, qtype }, 'encoding the answer failed');
      out = encodeResponse({ id, flags: base, rcode: RCODE.SERVFAIL, question: q }).wire;
    }
    const seconds = (performance.now() - t0) / 1000;
    this.#opts.metrics?.observe(
      zone === '' ? '.' : zone + '.',
      proto,
      familyOf(client),
      qtype,
      rcodeName(r.rcode),
      r.plugin,
      buf.length,
      out.length,
      seconds,
    );
    try {
      r.written?.({ rcode: (out[3] as number) & 0xf, size: out.length, truncated });
    } catch (err) {
      this.#log.error({ err: errorMessage(err), qname: q.name, qtype }, 'a plugin failed after the answer was written');
    }
    return out;
  }
}
