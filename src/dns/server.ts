// The DNS server: UDP and TCP on one port, EDNS0 buffer sizes, truncation with TC, TCP pipelining
// (answers are written as they complete, RFC 7766 6.2.1.1), FORMERR or drop on malformed input. Every
// request runs through the plugin chain of the server block whose zone matches; nothing a client sends
// can throw out of handle(). Two fast paths answer straight from the datagram: the encoded bytes of
// cluster answers (kept per cluster-state generation) and the cache plugin's encoded entries.
import { createSocket } from 'node:dgram';
import type { Socket as UdpSocket, RemoteInfo } from 'node:dgram';
import { createServer } from 'node:net';
import type { Server as TcpServer, Socket } from 'node:net';
import { randomInt } from 'node:crypto';
import { errorMessage } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { DnsReply, DnsRequest, Plugin } from './chain.ts';
import { runChain } from './chain.ts';
import type { DnsMetrics } from './metrics.ts';
import type { CachePlugin } from './plugins/cache.ts';
import {
  CLASS_IN,
  FLAG,
  MAX_UDP_NO_EDNS,
  OUR_UDP_SIZE,
  RCODE,
  TYPE,
  addressRun,
  decode,
  encodeResponse,
  rcodeName,
  shuffleRun,
  typeName,
} from './wire.ts';
import type { RR } from './wire.ts';

export interface ServerBlock {
  /** lower-case zones this block serves ('' = the root, '.') */
  readonly zones: readonly string[];
  readonly plugins: readonly Plugin[];
  /** loadbalance: shuffle A/AAAA answers */
  readonly loadbalance: boolean;
  /** log: one line per query */
  readonly queryLog: boolean;
  /**
   * the block's cache when it is the first plugin that answers (only loop before it): its hits are served
   * straight from the query's bytes (CachePlugin.answerWire)
   */
  readonly cache?: CachePlugin;
  /** the loop plugin runs before the cache: its HINFO probes take the full path */
  readonly loop?: boolean;
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
  readonly tcpIdleMs?: number;
  readonly maxTcpConnections?: number;
}

interface FastEntry {
  readonly wire: Buffer;
  readonly zone: string;
  readonly rcode: string;
}

/** The question of a plain query, read without building objects. */
interface QuickQuestion {
  /** lower-case name without the trailing dot ('' = the root) */
  readonly name: string;
  readonly qtype: number;
  /** end of the question section */
  readonly qend: number;
  /** the OPT record (no options), or undefined without EDNS */
  readonly edns: { readonly do: boolean; readonly udpSize: number } | undefined;
  /** the cluster fast path's key: name, type, EDNS state */
  readonly key: string;
}

const scratch = Buffer.allocUnsafe(256);

/** The question of a plain query (one question, class IN, at most a bare OPT); undefined when it is anything else. */
function quickQuestion(buf: Buffer): QuickQuestion | undefined {
  if (buf.length < 17 || buf.readUInt16BE(4) !== 1 || buf.readUInt16BE(6) !== 0 || buf.readUInt16BE(8) !== 0)
    return undefined;
  const ar = buf.readUInt16BE(10);
  if (ar > 1 || (buf[2] as number) & 0xf8) return undefined; // QR or opcode set
  let pos = 12;
  let n = 0;
  for (;;) {
    if (pos >= buf.length) return undefined;
    const len = buf[pos] as number;
    if (len === 0) break;
    if (len > 63 || pos + 1 + len > buf.length || n + len + 1 > 255) return undefined;
    if (n > 0) scratch[n++] = 0x2e;
    for (let i = pos + 1; i <= pos + len; i++) {
      let c = buf[i] as number;
      if (c === 0x2e || c === 0x5c || c <= 0x20 || c >= 0x7f) return undefined;
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      scratch[n++] = c;
    }
    pos += 1 + len;
  }
  const qend = pos + 5;
  if (qend > buf.length) return undefined;
  const qtype = buf.readUInt16BE(pos + 1);
  if (buf.readUInt16BE(pos + 3) !== CLASS_IN) return undefined;
  let edns: QuickQuestion['edns'];
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
  const name = scratch.toString('latin1', 0, n);
  return { name, qtype, qend, edns, key: `${name}|${qtype}|${edns ? (edns.do ? 'D' : 'E') : '-'}` };
}

function familyOf(addr: string): 4 | 6 {
  return addr.includes(':') && !addr.startsWith('::ffff:') ? 6 : 4;
}

function shuffleAddresses(rrs: readonly RR[]): RR[] {
  const addr = rrs.filter((r) => r.type === 'A' || r.type === 'AAAA');
  if (addr.length < 2) return [...rrs];
  for (let i = addr.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [addr[i], addr[j]] = [addr[j] as RR, addr[i] as RR];
  }
  return [...rrs.filter((r) => r.type !== 'A' && r.type !== 'AAAA'), ...addr];
}

export class DnsServer {
  readonly #opts: DnsServerOptions;
  readonly #log: Logger;
  readonly #fast = new Map<string, FastEntry>();
  readonly #fastCap: number;
  #udp: UdpSocket | undefined;
  #tcp: TcpServer | undefined;
  readonly #conns = new Set<Socket>();
  #unsub: (() => void) | undefined;
  #port = 0;
  #fastHits = 0;
  #cacheHits = 0;
  #anyCache: boolean;
  #blocks: readonly ServerBlock[];
  /** the only block, when it serves the root alone (no zone to pick) */
  #rootOnly: { block: ServerBlock; zone: string } | undefined;

  constructor(opts: DnsServerOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#fastCap = opts.fastPathCapacity ?? 10000;
    this.#blocks = opts.blocks;
    this.#anyCache = opts.blocks.some((b) => b.cache);
    this.#rootOnly = DnsServer.#soleRoot(opts.blocks);
    if (opts.answers) this.#unsub = opts.answers.onChange(() => this.#fast.clear());
  }

  static #soleRoot(blocks: readonly ServerBlock[]): { block: ServerBlock; zone: string } | undefined {
    const b = blocks[0];
    return blocks.length === 1 && b && b.zones.length === 1 && b.zones[0] === '' ? { block: b, zone: '' } : undefined;
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
    this.#blocks = blocks;
    this.#anyCache = blocks.some((b) => b.cache);
    this.#rootOnly = DnsServer.#soleRoot(blocks);
    this.#fast.clear();
  }

  /** how many cache hits were served straight from the query's bytes (tests, benchmarks) */
  get cacheFastHits(): number {
    return this.#cacheHits;
  }

  /** The answer to one message: from the fast path when it has it, else through handle(). */
  respond(msg: Buffer, proto: 'udp' | 'tcp', client: string): Promise<Buffer | undefined> {
    const fast = this.#fastAnswer(msg, proto, client);
    return fast ? Promise.resolve(fast) : this.handle(msg, proto, client);
  }

  /** Binds UDP and TCP on the same port (port 0: the kernel picks one that is free for both). */
  async start(): Promise<number> {
    let host = this.#opts.host;
    for (let attempt = 0; ; attempt++) {
      const any = host === '';
      // answers go to the address a query came from, always an IP literal: resolve it in place (the
      // default lookup defers every send by a tick)
      const lookup = (
        address: string,
        _opts: unknown,
        cb: (err: Error | null, address: string, family: number) => void,
      ) => cb(null, address, address.includes(':') ? 6 : 4);
      const udp = createSocket({
        type: any || host.includes(':') ? 'udp6' : 'udp4',
        reuseAddr: false,
        ipv6Only: false,
        lookup: lookup as never,
      });
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind(this.#opts.port, any ? '::' : host, () => {
            udp.removeListener('error', reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        const code = (err as NodeJS.ErrnoException).code;
        if (any && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
          host = '0.0.0.0';
          continue;
        }
        throw err;
      }
      if (any) host = '::';
      const port = udp.address().port;
      const tcp = createServer({ noDelay: true }, (s) => this.#onConnection(s));
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen({ port, host, backlog: 511 }, () => {
            tcp.removeListener('error', reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        if (this.#opts.port === 0 && attempt < 10) continue;
        throw err;
      }
      udp.on('message', (msg, rinfo) => this.#onDatagram(msg, rinfo));
      udp.on('error', (err) => this.#log.error({ err: errorMessage(err) }, 'udp socket error'));
      tcp.on('error', (err) => this.#log.error({ err: errorMessage(err) }, 'tcp server error'));
      this.#udp = udp;
      this.#tcp = tcp;
      this.#port = port;
      return port;
    }
  }

  async close(): Promise<void> {
    this.#unsub?.();
    for (const c of this.#conns) c.destroy();
    await Promise.all([
      new Promise<void>((r) => (this.#udp ? this.#udp.close(() => r()) : r())),
      new Promise<void>((r) => (this.#tcp ? this.#tcp.close(() => r()) : r())),
    ]);
    this.#udp = undefined;
    this.#tcp = undefined;
  }

  #onDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    const fast = this.#fastAnswer(msg, 'udp', rinfo.address);
    if (fast) {
      this.#send(fast, rinfo);
      return;
    }
    this.handle(msg, 'udp', rinfo.address).then(
      (res) => res && this.#send(res, rinfo),
      (err) => this.#log.error({ err: errorMessage(err) }, 'udp request failed'),
    );
  }

  #send(res: Buffer, rinfo: RemoteInfo): void {
    try {
      this.#udp?.send(res, rinfo.port, rinfo.address);
    } catch {
      // a source no answer can go to (port 0, closed socket): drop
    }
  }

  #onConnection(s: Socket): void {
    const max = this.#opts.maxTcpConnections ?? 1000;
    if (this.#conns.size >= max) {
      s.destroy();
      return;
    }
    this.#conns.add(s);
    s.setTimeout(this.#opts.tcpIdleMs ?? 10_000, () => s.destroy());
    s.on('close', () => this.#conns.delete(s));
    s.on('error', () => s.destroy());
    let buf = Buffer.alloc(0);
    let pending = 0;
    const client = s.remoteAddress ?? '';
    s.on('data', (d) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        if (pending >= 128) {
          s.destroy(); // a client pipelining without reading
          return;
        }
        pending++;
        const write = (res: Buffer | undefined) => {
          pending--;
          if (!res || s.destroyed) return;
          const frame = Buffer.allocUnsafe(2 + res.length);
          frame.writeUInt16BE(res.length, 0);
          res.copy(frame, 2);
          s.write(frame);
        };
        const fast = this.#fastAnswer(msg, 'tcp', client);
        if (fast) write(fast);
        else this.handle(Buffer.from(msg), 'tcp', client).then(write, () => write(undefined));
      }
    });
  }

  /** The answer to a plain query from the cluster answers or a block's cache, or undefined (take the full path). */
  #fastAnswer(msg: Buffer, proto: 'udp' | 'tcp', client: string): Buffer | undefined {
    if (this.#fast.size === 0 && !this.#anyCache) return undefined;
    const t0 = performance.now();
    const q = quickQuestion(msg);
    if (!q) return undefined;
    if (this.#fast.size > 0) {
      const e = this.#fast.get(q.key);
      if (e) {
        this.#fastHits++;
        const out = Buffer.allocUnsafe(e.wire.length);
        e.wire.copy(out);
        out.writeUInt16BE(msg.readUInt16BE(0), 0);
        out.writeUInt16BE(
          (out.readUInt16BE(2) & ~(FLAG.RD | FLAG.CD)) | (msg.readUInt16BE(2) & (FLAG.RD | FLAG.CD)),
          2,
        );
        msg.copy(out, 12, 12, q.qend); // the question as the client spelled it; answers point at it
        this.#opts.metrics?.observe(
          e.zone,
          proto,
          familyOf(client),
          typeName(q.qtype),
          e.rcode,
          'kubernetes',
          msg.length,
          out.length,
          (performance.now() - t0) / 1000,
        );
        return out;
      }
    }
    if (!this.#anyCache) return undefined;
    const target = this.#block(q.name);
    const cache = target?.block.cache;
    if (
      !cache ||
      (target.block.loop && q.qtype === TYPE.HINFO) ||
      q.qtype === TYPE.AXFR ||
      q.qtype === TYPE.IXFR ||
      !cache.covers(q.name)
    )
      return undefined;
    const maxSize =
      proto === 'tcp' ? 65535 : q.edns ? Math.min(Math.max(q.edns.udpSize, MAX_UDP_NO_EDNS), 65535) : MAX_UDP_NO_EDNS;
    // the quick key is the cache key unless the query has EDNS without DO
    const key = q.edns && !q.edns.do ? undefined : q.key;
    const out = cache.answerWire(q.name, q.qtype, msg, q.qend, q.edns, maxSize, target.block.loadbalance, key);
    if (!out) return undefined;
    this.#cacheHits++;
    const zone = target.zone === '' ? '.' : target.zone + '.';
    this.#opts.metrics?.observe(
      zone,
      proto,
      familyOf(client),
      typeName(q.qtype),
      rcodeName((out[3] as number) & 0xf),
      'cache',
      msg.length,
      out.length,
      (performance.now() - t0) / 1000,
    );
    return out;
  }

  #block(lname: string): { block: ServerBlock; zone: string } | undefined {
    if (this.#rootOnly) return this.#rootOnly;
    let best: { block: ServerBlock; zone: string } | undefined;
    for (const block of this.#blocks) {
      for (const z of block.zones) {
        if ((z === '' || lname === z || lname.endsWith('.' + z)) && (!best || z.length > best.zone.length))
          best = { block, zone: z };
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
        if (target?.block.loadbalance) {
          // a whole message (forward, cache): permute its address records in place
          try {
            const run = addressRun(decode(out), out);
            if (run) shuffleRun(out, run);
          } catch {
            // not parseable: sent as it is
          }
        }
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
        const answers = target?.block.loadbalance ? shuffleAddresses(r.answers) : r.answers;
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
        if (
          r.generation !== undefined &&
          !truncated &&
          this.#opts.answers &&
          r.generation === this.#opts.answers.generation &&
          out.length <= MAX_UDP_NO_EDNS
        ) {
          const multi = answers.filter((a) => a.type === 'A' || a.type === 'AAAA').length > 1;
          const key = quickQuestion(buf);
          if (key && !(target?.block.loadbalance && multi)) {
            if (this.#fast.size >= this.#fastCap) this.#fast.clear();
            this.#fast.set(key.key, { wire: out, zone: zone === '' ? '.' : zone + '.', rcode: rcodeName(r.rcode) });
            out = Buffer.from(out);
          }
        }
      }
    } catch (err) {
      this.#log.error({ err: errorMessage(err), qname: q.name, qtype }, 'encoding the answer failed');
      out = encodeResponse({ id, flags: base, rcode: RCODE.SERVFAIL, question: q }).wire;
    }
    const seconds = (performance.now() - t0) / 1000;
    const rcode = rcodeName(r.rcode);
    this.#opts.metrics?.observe(
      zone === '' ? '.' : zone + '.',
      proto,
      familyOf(client),
      qtype,
      rcode,
      r.plugin,
      buf.length,
      out.length,
      seconds,
    );
    if (target?.block.queryLog) {
      this.#log.info(
        {
          client,
          proto,
          id,
          qtype,
          qname: q.name,
          rcode,
          size: out.length,
          truncated,
          ms: Math.round(seconds * 1e6) / 1e3,
        },
        'query',
      );
    }
    return out;
  }
}
