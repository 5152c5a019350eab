// The cache plugin: positive (success) and negative (denial: NXDOMAIN, NODATA) answers, each with a
// capacity bound (least recently used goes first) and TTL caps; hits age the TTLs. Zones can be
// excluded per kind (`disable success cluster.local`), as the kubeadm Corefile does.
import type { DnsReply, DnsRequest, Next, Plugin } from '../chain.ts';
import { decode } from '../wire.ts';
import type { RR } from '../wire.ts';

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
}

export const DEFAULT_CACHE: CacheConfig = {
  zones: [''], successCap: 9984, successMaxTtl: 3600, successMinTtl: 5, denialCap: 9984, denialMaxTtl: 1800, denialMinTtl: 5, disableSuccess: [], disableDenial: [],
};

interface Entry {
  readonly reply: DnsReply;
  readonly storedAt: number;
  readonly expiresAt: number;
  readonly ttlOffsets: readonly number[];
}

export interface CacheStats {
  onHit?(kind: 'success' | 'denial'): void;
  onMiss?(): void;
  onEntries?(kind: 'success' | 'denial', n: number): void;
}

const inZone = (lname: string, z: string) => z === '' || lname === z || lname.endsWith('.' + z);

function minTtl(rrs: readonly RR[]): number | undefined {
  let m: number | undefined;
  for (const r of rrs) if (m === undefined || r.ttl < m) m = r.ttl;
  return m;
}

export class CachePlugin implements Plugin {
  readonly name = 'cache';
  readonly config: CacheConfig;
  readonly #success = new Map<string, Entry>();
  readonly #denial = new Map<string, Entry>();
  readonly #now: () => number;
  readonly #stats: CacheStats;

  constructor(config: CacheConfig, deps: { now?: () => number; stats?: CacheStats } = {}) {
    this.config = config;
    this.#now = deps.now ?? Date.now;
    this.#stats = deps.stats ?? {};
  }

  get size(): { success: number; denial: number } {
    return { success: this.#success.size, denial: this.#denial.size };
  }

  async serve(req: DnsRequest, next: Next): Promise<DnsReply> {
    if (!this.config.zones.some((z) => inZone(req.lname, z))) return next();
    const key = `${req.lname}|${req.question.type}|${req.edns?.do ? 1 : 0}`;
    const now = this.#now();
    for (const [map, kind] of [[this.#success, 'success'], [this.#denial, 'denial']] as const) {
      const e = map.get(key);
      if (!e) continue;
      if (e.expiresAt <= now) {
        map.delete(key);
        continue;
      }
      map.delete(key); // LRU: re-insert as the newest
      map.set(key, e);
      this.#stats.onHit?.(kind);
      return this.#aged(e, req, now);
    }
    this.#stats.onMiss?.();
    const r = await next();
    this.#store(key, req.lname, r, now);
    return r;
  }

  #aged(e: Entry, req: DnsRequest, now: number): DnsReply {
    const elapsed = Math.floor((now - e.storedAt) / 1000);
    if (e.reply.raw) {
      const raw = Buffer.from(e.reply.raw);
      raw.writeUInt16BE(req.id, 0);
      for (const off of e.ttlOffsets) raw.writeUInt32BE(Math.max(0, raw.readUInt32BE(off) - elapsed), off);
      return { ...e.reply, raw, cacheHit: true, plugin: 'cache' };
    }
    const age = (rrs: readonly RR[]) => rrs.map((r) => ({ ...r, ttl: Math.max(0, r.ttl - elapsed) }) as RR);
    return { ...e.reply, answers: age(e.reply.answers), authority: age(e.reply.authority), additional: age(e.reply.additional), cacheHit: true, plugin: 'cache', generation: undefined };
  }

  #store(key: string, lname: string, r: DnsReply, now: number): void {
    if (r.rcode !== 0 && r.rcode !== 3) return; // SERVFAIL, REFUSED...: not cached
    let answers = r.answers;
    let authority = r.authority;
    let ttlOffsets: readonly number[] = [];
    if (r.raw) {
      try {
        const m = decode(r.raw);
        if (m.flags & 0x0200) return; // truncated: not cached
        answers = m.answers;
        authority = m.authority;
        ttlOffsets = m.ttlOffsets;
      } catch {
        return;
      }
    }
    const positive = r.rcode === 0 && answers.length > 0;
    const cfg = this.config;
    if (positive ? cfg.disableSuccess.some((z) => inZone(lname, z)) : cfg.disableDenial.some((z) => inZone(lname, z))) return;
    const soa = authority.find((x) => x.type === 'SOA');
    let ttl = positive ? minTtl(answers) : soa ? Math.min(soa.ttl, soa.type === 'SOA' ? soa.data.minimum : soa.ttl) : undefined;
    if (ttl === undefined) return;
    const [lo, hi] = positive ? [cfg.successMinTtl, cfg.successMaxTtl] : [cfg.denialMinTtl, cfg.denialMaxTtl];
    ttl = Math.min(Math.max(ttl, lo), hi);
    if (ttl <= 0) return;
    const map = positive ? this.#success : this.#denial;
    const cap = positive ? cfg.successCap : cfg.denialCap;
    map.delete(key);
    map.set(key, { reply: r, storedAt: now, expiresAt: now + ttl * 1000, ttlOffsets });
    while (map.size > cap) {
      const oldest = map.keys().next().value as string;
      map.delete(oldest);
    }
    this.#stats.onEntries?.(positive ? 'success' : 'denial', map.size);
  }
}
