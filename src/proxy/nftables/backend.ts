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
  fullScript,
  mergeFragments,
  nftFamily,
  renderFragment,
  setElementLines,
} from './render.ts';
import { SlotAllocator } from './slots.ts';
import type { ExistingObjects, NftConfig, NftFamily, NftState } from './render.ts';
import type { IPFamily } from '../../model/types.ts';
import type { NftRunner } from '../../netlink/nft-session.ts';

interface Entry {
  readonly ports: readonly ServicePortInfo[];
  readonly frag: NftState;
  /** the slot keys the fragment was rendered with */
  readonly slots: readonly string[];
}

function countElements(into: Map<string, Map<string, number>>, frag: NftState, by: number): void {
  for (const [set, keys] of frag.setElements) {
    let m = into.get(set);
    if (!m) into.set(set, (m = new Map()));
    for (const k of keys) m.set(k, (m.get(k) ?? 0) + by);
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
    const script: string[] = [];
    /** per family: the mirror to keep once the transaction went through */
    const next = new Map<NftFamily, () => Map<string, Entry>>();
    const after: (() => void)[] = [];
    for (const [fam, ports] of models) {
      const f = nftFamily(fam);
      const prev = full ? undefined : this.#mirror.get(f);
      // a full sync rewrites every map: slots start afresh
      let slots = prev ? this.#slots.get(f) : undefined;
      if (!slots) this.#slots.set(f, (slots = new SlotAllocator()));
      const alloc = slots;
      const render = (sps: readonly ServicePortInfo[]): Entry => {
        const keys: string[] = [];
        const frag = renderFragment(sps, f, this.#cfg, (key) => {
          keys.push(key);
          return alloc.slotOf(key);
        });
        return { ports: sps, frag, slots: keys };
      };
      const same = (old: Entry | undefined, sps: readonly ServicePortInfo[]): old is Entry =>
        !!old && old.ports.length === sps.length && old.ports.every((p, i) => p === sps[i]);
      const grouped = byService?.get(fam);
      let cur: Pick<Map<string, Entry>, 'get' | 'has' | 'keys' | 'values'>;
      if (prev && grouped) {
        // partial sync: only the services the proxier says changed (O(changes), not O(services)); the
        // mirror is updated in place once the transaction went through
        const updates = new Map<string, Entry | undefined>();
        for (const k of changed) {
          const sps = grouped.get(k);
          if (!sps || sps.length === 0) updates.set(k, undefined);
          else if (!same(prev.get(k), sps)) updates.set(k, render(sps));
        }
        const get = (k: string) => (updates.has(k) ? updates.get(k) : prev.get(k));
        cur = { get, has: (k: string) => get(k) !== undefined, keys: () => prev.keys(), values: () => prev.values() };
        next.set(f, () => {
          for (const [k, e] of updates) {
            if (e) prev.set(k, e);
            else prev.delete(k);
          }
          return prev;
        });
      } else {
        const bySvc = new Map<string, ServicePortInfo[]>();
        for (const sp of ports) {
          const k = `${sp.namespace}/${sp.name}`;
          const list = bySvc.get(k);
          if (list) list.push(sp);
          else bySvc.set(k, [sp]);
        }
        const all = new Map<string, Entry>();
        for (const [k, sps] of bySvc) {
          const old = prev?.get(k);
          // the proxier hands over the same objects for services that did not change: nothing to render
          all.set(k, same(old, sps) ? old : render(sps));
        }
        cur = all;
        next.set(f, () => all);
      }
      if (!prev) {
        const state = mergeFragments(
          f,
          this.#cfg,
          [...cur.values()].map((e) => e.frag),
        );
        script.push(...fullScript(state, await this.#listExisting(f)));
        const refs = new Map<string, Map<string, number>>();
        for (const e of cur.values()) countElements(refs, e.frag, 1);
        after.push(() => this.#refs.set(f, refs));
        continue;
      }
      // per changed service: its chains and map elements; shared set elements by reference count
      const delta = new Map<string, Map<string, number>>();
      const touched = grouped ? [...changed].filter((k) => cur.has(k)) : [...cur.keys()];
      for (const k of touched) {
        const e = cur.get(k)!;
        const old = prev.get(k);
        if (old === e) continue;
        script.push(...diffScript(old?.frag ?? EMPTY_FRAGMENT(f), e.frag, { fragment: true }));
        if (old) {
          countElements(delta, old.frag, -1);
          const keep = new Set(e.slots);
          for (const key of old.slots) if (!keep.has(key)) alloc.release(key);
        }
        countElements(delta, e.frag, 1);
      }
      const gone = grouped
        ? [...changed].filter((k) => prev.has(k) && !cur.has(k))
        : [...prev.keys()].filter((k) => !cur.has(k));
      for (const k of gone) {
        const old = prev.get(k)!;
        script.push(...diffScript(old.frag, EMPTY_FRAGMENT(f), { fragment: true }));
        countElements(delta, old.frag, -1);
        for (const key of old.slots) alloc.release(key);
      }
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
    if (script.length > 0) {
      try {
        // big transactions (full syncs) parse faster from a file; small diffs skip nft's cache rebuild in the session
        // (by size: a full sync is a few hundred long lines, and `nft -i` reads one huge line far slower)
        const text = script.join('\n') + '\n';
        if (this.#runner && text.length < 64 * 1024) await this.#runner.apply(script);
        else await this.#exec.run(['nft', '-f', '-'], { input: text, timeoutMs: 120_000 });
      } catch (err) {
        // the kernel may not be what we think: the retry is a full sync (with fresh slots and counts)
        this.#mirror.clear();
        this.#slots.clear();
        this.#refs.clear();
        this.#log.debug({ lines: script.length, head: script.slice(0, 20) }, 'nft transaction failed');
        throw new KdpError('KDP_PROXY_SYNC_FAILED', `nftables transaction failed: ${errorMessage(err)}`, {
          cause: err,
          details: { lines: script.length, head: script.slice(0, 5) },
        });
      }
    }
    for (const [f, s] of next) this.#mirror.set(f, s());
    for (const fn of after) fn();
    return { lines: script.length };
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
