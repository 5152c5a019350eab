// nftables mode, side effects: applies the renderer's scripts with `nft -f -` (one transaction per sync)
// and keeps a mirror of what it programmed, so a normal sync sends only the difference. A full sync
// (startup, after a failure) lists the names in the kernel's table and reconciles in one transaction.
import { KdpError, errorMessage } from '../../common/errors.ts';
import type { Exec } from '../../common/exec-adapter.ts';
import type { Logger } from '../../common/log.ts';
import type { ServicePortInfo } from '../model.ts';
import type { ProxyBackend, SyncResult } from '../backend.ts';
import {
  EMPTY_FRAGMENT,
  TABLE,
  diffScript,
  fullScriptLines,
  nftFamily,
  renderFragment,
  renderGroups,
  setElementLines,
} from './render.ts';
import { SlotAllocator } from './slots.ts';
import type { ExistingObjects, NftConfig, NftFamily, NftState, SlotOf } from './render.ts';
import type { IPFamily } from '../../model/types.ts';
import type { NftRunner } from '../../netlink/nft-session.ts';

/**
 * What the mirror keeps per service: the ports it was rendered from and the slot keys it was rendered with.
 * Not the rendered objects: rendering is pure, so when the service changes its old fragment is rendered
 * again from these (its slots are still allocated). At 50k services that is ~2 KB less per service.
 */
interface Entry {
  readonly ports: readonly ServicePortInfo[];
  readonly slots: readonly string[];
}

const NO_SLOTS: readonly string[] = Object.freeze([]);

function countElements(into: Map<string, Map<string, number>>, frag: NftState, by: number): void {
  for (const [set, keys] of frag.setElements) countSet(into, set, keys, by);
}

function countSet(into: Map<string, Map<string, number>>, set: string, keys: Iterable<string>, by: number): void {
  let m = into.get(set);
  if (!m) into.set(set, (m = new Map()));
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + by);
}

function groupByService(ports: readonly ServicePortInfo[]): Map<string, ServicePortInfo[]> {
  const bySvc = new Map<string, ServicePortInfo[]>();
  for (const sp of ports) {
    const k = `${sp.namespace}/${sp.name}`;
    const list = bySvc.get(k);
    if (list) list.push(sp);
    else bySvc.set(k, [sp]);
  }
  return bySvc;
}

/** A transaction up to this size goes through the `nft -i` session, when there is one. */
const SESSION_MAX_CHARS = 64 * 1024;

/**
 * The environment of `nft -f -`: glibc's malloc backs nft's heap with transparent huge pages (where THP is
 * `madvise` or `always`). nft allocates ~350 MB for a 50k-service script, and its CPU goes mostly to malloc and
 * page faults; measured on that script: user 1.55 -> 0.92 s. An operator's own GLIBC_TUNABLES come after and win.
 */
function nftEnv(): NodeJS.ProcessEnv {
  const own = process.env.GLIBC_TUNABLES;
  return { ...process.env, GLIBC_TUNABLES: own ? `glibc.malloc.hugetlb=1:${own}` : 'glibc.malloc.hugetlb=1' };
}

const NO_LINES: readonly string[] = Object.freeze([]);

/**
 * The lines of a transaction from its parts, read once: counted, the first ones kept for error reports.
 * (Exported for tests.)
 */
export class CountedLines {
  readonly head: string[] = [];
  count = 0;
  #it: Iterator<string>;
  /** lines read ahead (by empty() and takeUpTo()) and not handed out yet */
  #ahead: string[] = [];

  constructor(parts: Iterable<Iterable<string>>) {
    this.#it = (function* () {
      for (const p of parts) yield* p;
    })();
  }

  #next(): string | undefined {
    const r = this.#it.next();
    if (r.done) {
      // let go of the parts: a finished generator still holds its arguments (a full sync's whole rendered table,
      // ~23 MB at 50k services), and the exec's options, which hold text() and so this object, may outlive the sync
      this.#it = NO_LINES[Symbol.iterator]();
      return undefined;
    }
    if (this.head.length < 20) this.head.push(r.value);
    this.count++;
    return r.value;
  }

  empty(): boolean {
    if (this.#ahead.length > 0) return false;
    const l = this.#next();
    if (l === undefined) return true;
    this.#ahead.push(l);
    return false;
  }

  /** All the lines if they come to at most `max` characters; otherwise undefined (what was read stays ahead). */
  takeUpTo(max: number): string[] | undefined {
    let size = this.#ahead.reduce((n, l) => n + l.length + 1, 0);
    while (size <= max) {
      const l = this.#next();
      if (l === undefined) return this.#ahead.splice(0);
      this.#ahead.push(l);
      size += l.length + 1;
    }
    return undefined;
  }

  /** The rest as script text, one piece per line, produced as it is read. */
  *text(): Generator<string> {
    for (const l of this.#ahead.splice(0)) yield `${l}\n`;
    for (let l = this.#next(); l !== undefined; l = this.#next()) yield `${l}\n`;
  }
}

export class NftablesBackend implements ProxyBackend {
  readonly mode = 'nftables';
  readonly #exec: Exec;
  readonly #cfg: NftConfig;
  readonly #log: Logger;
  /** what the kernel holds, per family: one rendered fragment per service (ns/name) and the ports it came from */
  readonly #mirror = new Map<NftFamily, Map<string, Entry>>();
  /** per family: which slot of the endpoint maps each service port owns */
  readonly #slots = new Map<NftFamily, SlotAllocator>();
  /** per family and managed set: how many services contribute each element */
  readonly #refs = new Map<NftFamily, Map<string, Map<string, number>>>();
  readonly #runner: NftRunner | undefined;

  /** `runner`: a long-lived nft session for transactions (default: one `nft -f -` per sync through exec) */
  constructor(opts: { exec: Exec; config: NftConfig; log: Logger; runner?: NftRunner }) {
    this.#exec = opts.exec;
    this.#runner = opts.runner;
    this.#cfg = opts.config;
    this.#log = opts.log;
  }

  async #listExisting(family: NftFamily): Promise<ExistingObjects> {
    const names = async (what: 'chains' | 'sets' | 'maps'): Promise<Set<string>> => {
      const res = await this.#exec.run(['nft', '-j', '-t', 'list', what, family], { allowFailure: true });
      if (res.code !== 0) return new Set();
      const key = what.slice(0, -1);
      const doc = JSON.parse(res.stdout) as { nftables: Record<string, { table?: string; name?: string }>[] };
      const out = new Set<string>();
      for (const item of doc.nftables) {
        const o = item[key];
        if (o && o.table === TABLE && o.name) out.add(o.name);
      }
      return out;
    };
    const [chains, sets, maps] = await Promise.all([names('chains'), names('sets'), names('maps')]);
    return { chains, sets, maps };
  }

  async sync(
    models: ReadonlyMap<IPFamily, readonly ServicePortInfo[]>,
    full: boolean,
    changed: ReadonlySet<string> = new Set(),
    byService?: ReadonlyMap<IPFamily, ReadonlyMap<string, readonly ServicePortInfo[]>>,
  ): Promise<SyncResult> {
    /** the transaction, in parts: a partial sync's lines, or a full sync's lines produced as nft reads them */
    const parts: Iterable<string>[] = [];
    const script: string[] = [];
    parts.push(script);
    /** per family: the mirror to keep once the transaction went through */
    const next = new Map<NftFamily, () => Map<string, Entry>>();
    const after: (() => void)[] = [];
    // families from keys(): reading a family's model may flatten every service (a partial sync reads byService)
    for (const fam of models.keys()) {
      const ports = () => models.get(fam)!;
      const f = nftFamily(fam);
      const prev = full ? undefined : this.#mirror.get(f);
      // a full sync does not read the old mirror: dropped now, so the old model it holds can be freed while the new
      // table is rendered (a failed sync clears the mirror anyway, and a family without one gets a full sync)
      if (!prev) {
        this.#mirror.delete(f);
        this.#refs.delete(f); // (rebuilt by the render, like the mirror)
      }
      // a full sync rewrites every map: slots start afresh
      let slots = prev ? this.#slots.get(f) : undefined;
      if (!slots) this.#slots.set(f, (slots = new SlotAllocator()));
      const alloc = slots;
      /** a slot source that records the keys it hands out */
      const recording = (keys: string[]): SlotOf => {
        return (key) => {
          keys.push(key);
          return alloc.slotOf(key);
        };
      };
      const entry = (sps: readonly ServicePortInfo[], keys: string[]): Entry => ({
        ports: sps,
        slots: keys.length > 0 ? keys : NO_SLOTS,
      });

      if (!prev) {
        // full: the whole table in one pass, straight into one state
        const refs = new Map<string, Map<string, number>>();
        const all = new Map<string, Entry>();
        // grouped by service as the proxier keeps it, when it hands that over (no flattening, no regrouping)
        const bySvc = byService?.get(fam) ?? groupByService(ports());
        const groups = function* () {
          for (const [k, sps] of bySvc) {
            if (sps.length === 0) continue;
            const keys: string[] = [];
            yield { ports: sps, slots: recording(keys) };
            all.set(k, entry(sps, keys));
          }
        };
        // the kernel's names are listed by nft children while this thread renders (two cores: ~0.1-0.2 s at 50k)
        const listing = this.#listExisting(f);
        listing.catch(() => {}); // awaited below; a render that throws first must not leave it unhandled
        const state = renderGroups(groups(), f, this.#cfg, (set, keys) => countSet(refs, set, keys, 1));
        parts.push(fullScriptLines(state, await listing));
        next.set(f, () => all);
        after.push(() => this.#refs.set(f, refs));
        continue;
      }

      // partial: per changed service, its old objects (rendered again) against its new ones
      const same = (old: Entry | undefined, sps: readonly ServicePortInfo[]): boolean =>
        !!old && old.ports.length === sps.length && old.ports.every((p, i) => p === sps[i]);
      const updates = new Map<string, { entry: Entry; frag: NftState } | undefined>();
      const update = (k: string, sps: readonly ServicePortInfo[] | undefined) => {
        if (!sps || sps.length === 0) {
          if (prev.has(k)) updates.set(k, undefined);
        } else if (!same(prev.get(k), sps)) {
          const keys: string[] = [];
          const frag = renderFragment(sps, f, this.#cfg, recording(keys));
          updates.set(k, { entry: entry(sps, keys), frag });
        }
      };
      const grouped = byService?.get(fam);
      if (grouped) {
        // only the services the proxier says changed (O(changes), not O(services))
        for (const k of changed) update(k, grouped.get(k));
      } else {
        // the proxier hands over the same objects for services that did not change: nothing to render
        const bySvc = groupByService(ports());
        for (const [k, sps] of bySvc) update(k, sps);
        for (const k of prev.keys()) if (!bySvc.has(k)) update(k, undefined);
      }
      const delta = new Map<string, Map<string, number>>();
      for (const [k, u] of updates) {
        const old = prev.get(k);
        const oldFrag = old ? renderFragment(old.ports, f, this.#cfg, alloc.heldSlot) : EMPTY_FRAGMENT(f);
        script.push(...diffScript(oldFrag, u?.frag ?? EMPTY_FRAGMENT(f), { fragment: true }));
        if (old) {
          countElements(delta, oldFrag, -1);
          const keep = new Set(u?.entry.slots ?? []);
          for (const key of old.slots) if (!keep.has(key)) alloc.release(key);
        }
        if (u) countElements(delta, u.frag, 1);
      }
      next.set(f, () => {
        for (const [k, u] of updates) {
          if (u) prev.set(k, u.entry);
          else prev.delete(k);
        }
        return prev;
      });
      const refs = this.#refs.get(f) ?? new Map<string, Map<string, number>>();
      for (const [set, d] of delta) {
        const counts = refs.get(set) ?? new Map<string, number>();
        const add: string[] = [];
        const del: string[] = [];
        for (const [key, n] of d) {
          if (n === 0) continue;
          const before = counts.get(key) ?? 0;
          if (before === 0 && n > 0) add.push(key);
          else if (before > 0 && before + n <= 0) del.push(key);
        }
        script.push(...setElementLines('delete', f, set, del), ...setElementLines('add', f, set, add));
        after.push(() => {
          for (const [key, n] of d) {
            const v = (counts.get(key) ?? 0) + n;
            if (v > 0) counts.set(key, v);
            else counts.delete(key);
          }
          refs.set(set, counts);
          this.#refs.set(f, refs);
        });
      }
      after.push(() => alloc.commit());
    }
    const lines = new CountedLines(parts);
    if (!lines.empty()) {
      try {
        // small transactions go to the `nft -i` session (it skips nft's cache rebuild); a big one (a full sync)
        // is streamed into `nft -f -` as it is produced (a long line read by `nft -i` is far slower)
        const small = this.#runner ? lines.takeUpTo(SESSION_MAX_CHARS) : undefined;
        if (small) await this.#runner!.apply(small);
        else await this.#exec.run(['nft', '-f', '-'], { input: lines.text(), timeoutMs: 120_000, env: nftEnv() });
      } catch (err) {
        // the kernel may not be what we think: the retry is a full sync (with fresh slots and counts)
        this.#mirror.clear();
        this.#slots.clear();
        this.#refs.clear();
        this.#log.debug({ lines: lines.count, head: lines.head }, 'nft transaction failed');
        throw new KdpError('KDP_PROXY_SYNC_FAILED', `nftables transaction failed: ${errorMessage(err)}`, {
          cause: err,
          details: { lines: lines.count, head: lines.head.slice(0, 5) },
        });
      }
    }
    for (const [f, s] of next) this.#mirror.set(f, s());
    for (const fn of after) fn();
    return { lines: lines.count };
  }

  async close(): Promise<void> {
    this.#runner?.close();
  }

  async cleanup(): Promise<void> {
    this.#mirror.clear();
    this.#slots.clear();
    this.#refs.clear();
    for (const f of ['ip', 'ip6'] as const) {
      await this.#exec.run(['nft', 'delete', 'table', f, TABLE], { allowFailure: true });
    }
  }
}
