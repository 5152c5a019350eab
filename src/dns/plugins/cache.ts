// The cache plugin: positive (success) and negative (denial: NXDOMAIN, NODATA) answers, each with a
// capacity bound (least recently used goes first) and TTL caps. Zones can be excluded per kind
// (`disable success cluster.local`), as the kubeadm Corefile does.
//
// Every entry is kept as an encoded answer (a template: header, question, records, no OPT) plus the
// offsets of its TTL fields, so a hit is a copy and a few patches: the query's id and RD/CD bits, the
// question as the client spelled it (owner names are compression pointers to it, so answers keep the
// client's case), every TTL set to what is left of the entry's lifetime, and an OPT record when the client
// sent one. The server calls answerWire() straight from the datagram (no decode, no plugin chain, no
// encode); serve() is the same lookup inside the chain.
import type { DnsReply, DnsRequest, Next, Plugin } from '../chain.ts';
import { CLASS_IN, FLAG, OUR_UDP_SIZE, TYPE, Writer, addressRun, decode, encodeResponse, shuffleRun } from '../wire.ts';
import type { AddressRun, RR } from '../wire.ts';

export interface CacheConfig {
  /** zones cached ('' = all) */
  readonly zones: readonly string[];
  readonly successCap: number;
  readonly successMaxTtl: number;
  readonly successMinTtl: number;
  readonly denialCap: number;
  readonly denialMaxTtl: number;
  readonly denialMinTtl: number;
  readonly disableSuccess: readonly string[];
  readonly disableDenial: readonly string[];
  /**
   * `prefetch AMOUNT [DURATION [PERCENTAGE%]]`: an entry asked for AMOUNT times with no gap of DURATION
   * or more is fetched again in the background once its TTL falls to PERCENTAGE of the original (at the
   * latest 1 s before it expires)
   */
  readonly prefetch?: { readonly amount: number; readonly durationMs: number; readonly percentage: number };
  /**
   * `serve_stale [DURATION [immediate|verify]]`: expired entries are still answered (TTL 0) for DURATION;
   * `immediate` answers at once and refreshes in the background, `verify` asks the next plugin first and
   * answers stale only when that fails
   */
  readonly serveStale?: { readonly durationMs: number; readonly verify: boolean };
  /** `servfail DURATION`: SERVFAIL answers are cached this many seconds (CoreDNS default 5; 0: never) */
  readonly servfailTtl: number;
  /** `keepttl`: hits carry the TTLs as stored instead of the remaining lifetime */
  readonly keepTtl: boolean;
}

export const DEFAULT_CACHE: CacheConfig = {
  zones: [''],
  successCap: 9984,
  successMaxTtl: 3600,
  successMinTtl: 5,
  denialCap: 9984,
  denialMaxTtl: 1800,
  denialMinTtl: 5,
  disableSuccess: [],
  disableDenial: [],
  servfailTtl: 5,
  keepTtl: false,
};

type Kind = 'success' | 'denial';

interface Entry {
  readonly kind: Kind;
  readonly rcode: number;
  /** the answer without OPT; its question is the first asker's spelling */
  readonly wire: Buffer;
  /** end of the question section in `wire` */
  readonly qend: number;
  readonly ttlOffsets: Uint16Array;
  /** the TTLs as received, at ttlOffsets */
  readonly ttls: Uint32Array;
  /** the entry's lifetime in seconds (the answer's TTL within the configured bounds) */
  readonly ttl: number;
  readonly storedAt: number;
  readonly expiresAt: number;
  /** more than one A/AAAA record */
  readonly multiAddr: boolean;
  /** the address records loadbalance can permute in the encoded answer */
  readonly run: AddressRun | undefined;
  /** the records as objects, for answers that were built from objects (loadbalance shuffles them) */
  readonly reply?: DnsReply;
  /** prefetch popularity: queries seen with no gap of prefetch DURATION, and the last one */
  hits: number;
  lastHit: number;
  /** a background refresh (prefetch or serve_stale) is under way */
  refreshing: boolean;
  /** when the entry last moved to the LRU's newest end */
  touchedAt: number;
}

export interface CacheStats {
  onHit?(kind: Kind): void;
  onMiss?(): void;
  onEntries?(kind: Kind, n: number): void;
  onPrefetch?(): void;
  onServedStale?(): void;
}

/** The EDNS state of a query, as the wire fast path sees it. */
interface ClientEdns {
  readonly do: boolean;
}

const inZone = (lname: string, z: string) => z === '' || lname === z || lname.endsWith('.' + z);

function minTtl(rrs: readonly RR[]): number | undefined {
  let m: number | undefined;
  for (const r of rrs) if (m === undefined || r.ttl < m) m = r.ttl;
  return m;
}

/**
 * The cache key: lower-case name without the trailing dot, query type, DO bit. (The server keeps it per
 * question spelling the cache answered, so the wire path builds one only for a spelling's first hit.)
 */
export function cacheKey(lname: string, qtype: number, dnssecOk: boolean): string {
  return `${lname}|${qtype}|${dnssecOk ? 'D' : '-'}`;
}

/** The question section of `req` as bytes (for patching the client's spelling into a stored answer). */
function questionBytes(req: DnsRequest): Buffer | undefined {
  try {
    const w = new Writer(300);
    w.name(req.question.name, false);
    w.u16(req.question.type);
    w.u16(req.question.class);
    return w.result();
  } catch {
    return undefined;
  }
}

export class CachePlugin implements Plugin {
  readonly name = 'cache';
  readonly config: CacheConfig;
  readonly #success = new Map<string, Entry>();
  readonly #denial = new Map<string, Entry>();
  readonly #now: () => number;
  readonly #stats: CacheStats;
  readonly #everything: boolean;

  constructor(config: CacheConfig, deps: { now?: () => number; stats?: CacheStats } = {}) {
    this.config = config;
    this.#everything = config.zones.includes('');
    this.#now = deps.now ?? Date.now;
    this.#stats = deps.stats ?? {};
  }

  get size(): { success: number; denial: number } {
    return { success: this.#success.size, denial: this.#denial.size };
  }

  /** Whether this cache handles `lname` at all (its zones). */
  covers(lname: string): boolean {
    return this.#everything || this.config.zones.some((z) => inZone(lname, z));
  }

  /**
   * Whether an answer for `lname` with `rcode` (`positive`: NOERROR with answers) would be kept: then the
   * chain answers that name from this cache, and the server must not reuse the answer's bytes past it.
   */
  keeps(lname: string, rcode: number, positive: boolean): boolean {
    if (!this.covers(lname)) return false;
    const cfg = this.config;
    if (rcode === 2) return cfg.servfailTtl > 0;
    if (rcode !== 0 && rcode !== 3) return false;
    const success = rcode === 0 && positive;
    return !(success ? cfg.disableSuccess : cfg.disableDenial).some((z) => inZone(lname, z));
  }

  /**
   * The entry for `key` (LRU-touched), fresh or, with serve_stale, expired less than its DURATION ago;
   * older entries are dropped.
   */
  #lookup(key: string, now: number): Entry | undefined {
    return this.#lookupIn(this.#success, key, now) ?? this.#lookupIn(this.#denial, key, now);
  }

  #lookupIn(map: Map<string, Entry>, key: string, now: number): Entry | undefined {
    const e = map.get(key);
    if (!e) return undefined;
    if (e.expiresAt + (this.config.serveStale?.durationMs ?? 0) <= now) {
      map.delete(key);
      return undefined;
    }
    if (now - e.touchedAt >= 1000) {
      // LRU: re-insert as the newest (at most once a second per entry: a hit stays a lookup)
      e.touchedAt = now;
      map.delete(key);
      map.set(key, e);
    }
    return e;
  }

  /** Counts a hit for prefetch popularity; true when the entry should be fetched again now. */
  #touch(e: Entry, now: number): boolean {
    const p = this.config.prefetch;
    if (!p) return false;
    if (now - e.lastHit >= p.durationMs) e.hits = 0;
    e.hits++;
    e.lastHit = now;
    if (e.refreshing || e.hits < p.amount || e.rcode === 2) return false;
    const threshold = Math.max(1, Math.ceil((p.percentage / 100) * e.ttl));
    return (e.expiresAt - now) / 1000 <= threshold;
  }

  /** Fetches `req` again in the background and stores the answer (prefetch, serve_stale refresh). */
  #refresh(e: Entry, key: string, req: DnsRequest, next: Next, now: () => number): void {
    e.refreshing = true;
    next().then(
      (r) => {
        e.refreshing = false;
        this.#store(key, req, r, now(), e);
      },
      () => {
        e.refreshing = false;
      },
    );
  }

  /**
   * The cached answer to a query, straight from its bytes: `msg` is the query, `qend` the end of its
   * question, `edns` its OPT state (undefined: none). Returns undefined on a miss, when the answer does
   * not fit `maxSize` (the server's full path truncates it), for stale or prefetch-due entries (serve()
   * has the next plugin to refresh them from), or when `shuffled` (loadbalance) answers are asked for and
   * the entry's addresses cannot be permuted in place. With `shuffled`, the address run is permuted.
   */
  answerWire(
    lname: string,
    qtype: number,
    msg: Buffer,
    qend: number,
    edns: ClientEdns | undefined,
    maxSize: number,
    shuffled: boolean,
    key?: string,
  ): Buffer | undefined {
    const now = this.#now();
    const e = this.#lookup(key ?? cacheKey(lname, qtype, edns?.do ?? false), now);
    if (
      !e ||
      e.expiresAt <= now ||
      (shuffled && e.multiAddr && !e.run) ||
      e.wire.length + (edns ? 11 : 0) > maxSize ||
      qend - 12 !== e.qend - 12
    )
      return undefined;
    // an entry due for prefetch takes the chain once (serve() has the next plugin to fetch from)
    if (this.config.prefetch && this.#touch(e, now)) {
      e.hits--;
      return undefined;
    }
    this.#stats.onHit?.(e.kind);
    const out = this.#emit(e, msg.readUInt16BE(0), msg.readUInt16BE(2), msg, 12, edns, now);
    if (shuffled && e.run) shuffleRun(out, e.run);
    return out;
  }

  /**
   * The stored answer for one client: id, RD/CD, question spelling (the entry's question length of bytes
   * from `question` at `qstart`, when given), TTLs, OPT.
   */
  #emit(
    e: Entry,
    id: number,
    qflags: number,
    question: Buffer | undefined,
    qstart: number,
    edns: ClientEdns | undefined,
    now: number,
    stale = false,
  ): Buffer {
    const len = e.wire.length;
    const out = Buffer.allocUnsafe(len + (edns ? 11 : 0));
    e.wire.copy(out);
    out.writeUInt16BE(id, 0);
    out.writeUInt16BE((out.readUInt16BE(2) & ~(FLAG.RD | FLAG.CD)) | (qflags & (FLAG.RD | FLAG.CD)), 2);
    if (question) question.copy(out, 12, qstart, qstart + e.qend - 12);
    // keepttl: the TTLs as stored (within the entry's lifetime); stale answers: 0
    const elapsed = stale ? e.ttl : this.config.keepTtl ? 0 : Math.floor((now - e.storedAt) / 1000);
    const left = e.ttl - elapsed;
    const offs = e.ttlOffsets;
    const ttls = e.ttls;
    for (let i = 0; i < offs.length; i++) {
      const v = Math.min((ttls[i] as number) - elapsed, left);
      out.writeUInt32BE(v > 0 ? v : 0, offs[i] as number);
    }
    if (edns) {
      out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
      out[len] = 0;
      out.writeUInt16BE(TYPE.OPT, len + 1);
      out.writeUInt16BE(OUR_UDP_SIZE, len + 3);
      out.writeUInt32BE(edns.do ? 0x8000 : 0, len + 5);
      out.writeUInt16BE(0, len + 9);
    }
    return out;
  }

  async serve(req: DnsRequest, next: Next): Promise<DnsReply> {
    if (!this.covers(req.lname)) return next();
    const key = cacheKey(req.lname, req.question.type, req.edns?.do ?? false);
    const now = this.#now();
    const e = this.#lookup(key, now);
    if (e && e.expiresAt > now) {
      this.#stats.onHit?.(e.kind);
      if (this.#touch(e, now)) {
        this.#stats.onPrefetch?.();
        this.#refresh(e, key, req, next, this.#now);
      }
      return this.#hit(e, req, now, false);
    }
    if (e && this.config.serveStale) {
      // expired, within serve_stale's DURATION
      if (!this.config.serveStale.verify) {
        this.#stats.onServedStale?.();
        if (!e.refreshing) this.#refresh(e, key, req, next, this.#now);
        return this.#hit(e, req, now, true);
      }
      let r: DnsReply | undefined;
      try {
        r = await next();
      } catch {
        r = undefined;
      }
      if (r && (r.rcode === 0 || r.rcode === 3)) {
        this.#store(key, req, r, this.#now(), e);
        return r;
      }
      this.#stats.onServedStale?.();
      return this.#hit(e, req, now, true);
    }
    this.#stats.onMiss?.();
    const r = await next();
    this.#store(key, req, r, now);
    return r;
  }

  #hit(e: Entry, req: DnsRequest, now: number, stale: boolean): DnsReply {
    if (e.reply && e.multiAddr) {
      // built from objects with several addresses: hand back objects so loadbalance can shuffle them
      const elapsed = stale ? e.ttl : this.config.keepTtl ? 0 : Math.floor((now - e.storedAt) / 1000);
      const left = e.ttl - elapsed;
      const age = (rrs: readonly RR[]) =>
        rrs.map((r) => ({ ...r, ttl: Math.max(0, Math.min(r.ttl - elapsed, left)) }) as RR);
      return {
        ...e.reply,
        answers: age(e.reply.answers),
        authority: age(e.reply.authority),
        additional: age(e.reply.additional),
        cacheHit: true,
        plugin: 'cache',
        generation: undefined,
      };
    }
    const question = questionBytes(req);
    const raw = this.#emit(
      e,
      req.id,
      req.flags,
      question && question.length === e.qend - 12 ? question : undefined,
      0,
      req.edns ? { do: req.edns.do } : undefined,
      now,
      stale,
    );
    return {
      plugin: 'cache',
      rcode: e.rcode,
      aa: (raw.readUInt16BE(2) & FLAG.AA) !== 0,
      answers: [],
      authority: [],
      additional: [],
      raw,
      cacheHit: true,
    };
  }

  /** Stores an answer; `prev` is the entry it replaces (its popularity carries over). */
  #store(key: string, req: DnsRequest, r: DnsReply, now: number, prev?: Entry): void {
    const servfail = r.rcode === 2;
    if (!servfail && r.rcode !== 0 && r.rcode !== 3) return; // REFUSED, NOTIMP...: not cached
    if (
      servfail &&
      (this.config.servfailTtl <= 0 ||
        (prev && prev.rcode !== 2) ||
        this.#success.has(key) ||
        this.#denial.get(key)?.rcode === 3)
    )
      return; // a SERVFAIL never replaces an answer (serve_stale keeps it)
    let wire: Buffer;
    try {
      wire =
        r.raw ??
        encodeResponse({
          id: 0,
          flags: FLAG.RA | (r.aa ? FLAG.AA : 0),
          rcode: r.rcode,
          question: req.question,
          answers: r.answers,
          authority: r.authority,
          additional: r.additional,
        }).wire;
    } catch {
      return;
    }
    let m;
    try {
      m = decode(wire);
    } catch {
      return;
    }
    if (m.flags & FLAG.TC) return; // truncated: not cached
    const q = m.questions[0];
    if (
      m.questions.length !== 1 ||
      !q ||
      q.class !== CLASS_IN ||
      q.type !== req.question.type ||
      q.name.toLowerCase() !== req.question.name.toLowerCase()
    )
      return;
    const positive = r.rcode === 0 && m.answers.length > 0;
    const cfg = this.config;
    if (
      positive
        ? cfg.disableSuccess.some((z) => inZone(req.lname, z))
        : cfg.disableDenial.some((z) => inZone(req.lname, z))
    )
      return;
    let ttl: number | undefined;
    if (servfail) {
      ttl = cfg.servfailTtl; // SERVFAIL: a denial entry for `servfail DURATION`
    } else {
      const soa = m.authority.find((x) => x.type === 'SOA');
      ttl = positive
        ? minTtl(m.answers)
        : soa
          ? Math.min(soa.ttl, soa.type === 'SOA' ? soa.data.minimum : soa.ttl)
          : undefined;
      if (ttl === undefined) return;
      const [lo, hi] = positive ? [cfg.successMinTtl, cfg.successMaxTtl] : [cfg.denialMinTtl, cfg.denialMaxTtl];
      ttl = Math.min(Math.max(ttl, lo), hi);
    }
    if (ttl <= 0) return;
    // the template: the answer without its OPT record (added back per client)
    let offsets = [...m.ttlOffsets];
    if (m.optSpan) {
      const [a, b] = m.optSpan;
      const stripped = Buffer.allocUnsafe(wire.length - (b - a));
      wire.copy(stripped, 0, 0, a);
      wire.copy(stripped, a, b);
      stripped.writeUInt16BE(stripped.readUInt16BE(10) - 1, 10);
      wire = stripped;
      offsets = offsets.map((o) => (o > a ? o - (b - a) : o));
    } else {
      wire = Buffer.from(wire);
    }
    if (wire.length > 0xffff) return;
    wire.writeUInt16BE(wire.readUInt16BE(2) & ~(FLAG.TC | 0x000f), 2);
    wire.writeUInt16BE(wire.readUInt16BE(2) | (r.rcode & 0xf), 2);
    const ttlOffsets = Uint16Array.from(offsets);
    const ttls = Uint32Array.from(offsets, (o) => wire.readUInt32BE(o));
    const addrs = m.answers.filter((a) => a.type === 'A' || a.type === 'AAAA').length;
    // the run's offsets hold in the template too: the OPT record (removed) comes after the answers
    const run = addrs > 1 ? addressRun(m, wire) : undefined;
    const kind: Kind = positive ? 'success' : 'denial';
    const map = positive ? this.#success : this.#denial;
    const cap = positive ? cfg.successCap : cfg.denialCap;
    if (positive) this.#denial.delete(key);
    else this.#success.delete(key);
    map.delete(key);
    map.set(key, {
      kind,
      rcode: r.rcode,
      wire,
      qend: m.questionEnd,
      ttlOffsets,
      ttls,
      ttl,
      storedAt: now,
      expiresAt: now + ttl * 1000,
      multiAddr: addrs > 1,
      run,
      ...(r.raw ? {} : { reply: r }),
      hits: prev?.hits ?? 1,
      lastHit: prev?.lastHit ?? now,
      refreshing: false,
      touchedAt: now,
    });
    while (map.size > cap) {
      const oldest = map.keys().next().value as string;
      map.delete(oldest);
    }
    this.#stats.onEntries?.(kind, map.size);
  }
}
