// nftables mode, side effects: applies the renderer's scripts with `nft -f -` (one transaction per sync)
// and keeps a mirror of what it programmed, so a normal sync sends only the difference. A full sync
// (startup, after a failure) lists the names in the kernel's table and reconciles in one transaction.
import { KdpError, errorMessage } from '../../common/errors.ts';
import type { Exec } from '../../common/exec-adapter.ts';
import type { Logger } from '../../common/log.ts';
import type { ServicePortInfo } from '../model.ts';
import type { ProxyBackend, SyncResult } from '../backend.ts';
import { EMPTY_FRAGMENT, TABLE, diffScript, fullScript, mergeFragments, nftFamily, renderFragment } from './render.ts';
import type { ExistingObjects, NftConfig, NftFamily, NftState } from './render.ts';
import type { IPFamily } from '../../model/types.ts';
import type { NftRunner } from './session.ts';

export class NftablesBackend implements ProxyBackend {
  readonly mode = 'nftables';
  readonly #exec: Exec;
  readonly #cfg: NftConfig;
  readonly #log: Logger;
  /** what the kernel holds, per family: one rendered fragment per service (ns/name) and the ports it came from */
  readonly #mirror = new Map<NftFamily, Map<string, { ports: readonly ServicePortInfo[]; frag: NftState }>>();
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

  async sync(models: ReadonlyMap<IPFamily, readonly ServicePortInfo[]>, full: boolean): Promise<SyncResult> {
    const script: string[] = [];
    const next = new Map<NftFamily, Map<string, { ports: readonly ServicePortInfo[]; frag: NftState }>>();
    for (const [fam, ports] of models) {
      const f = nftFamily(fam);
      const bySvc = new Map<string, ServicePortInfo[]>();
      for (const sp of ports) {
        const k = `${sp.namespace}/${sp.name}`;
        const list = bySvc.get(k);
        if (list) list.push(sp);
        else bySvc.set(k, [sp]);
      }
      const prev = full ? undefined : this.#mirror.get(f);
      const cur = new Map<string, { ports: readonly ServicePortInfo[]; frag: NftState }>();
      for (const [k, sps] of bySvc) {
        const old = prev?.get(k);
        // the proxier hands over the same objects for services that did not change: nothing to render
        if (old && old.ports.length === sps.length && old.ports.every((p, i) => p === sps[i])) cur.set(k, old);
        else cur.set(k, { ports: sps, frag: renderFragment(sps, f, this.#cfg) });
      }
      next.set(f, cur);
      if (!prev) {
        const state = mergeFragments(f, this.#cfg, [...cur.values()].map((e) => e.frag));
        script.push(...fullScript(state, await this.#listExisting(f)));
        continue;
      }
      for (const [k, e] of cur) {
        const old = prev.get(k);
        if (old !== e) script.push(...diffScript(old?.frag ?? EMPTY_FRAGMENT(f), e.frag, { fragment: true }));
      }
      for (const [k, old] of prev) if (!cur.has(k)) script.push(...diffScript(old.frag, EMPTY_FRAGMENT(f), { fragment: true }));
    }
    if (script.length > 0) {
      try {
        // big transactions (full syncs) parse faster from a file; small diffs skip nft's cache rebuild in the session
        if (this.#runner && script.length < 2000) await this.#runner.apply(script);
        else await this.#exec.run(['nft', '-f', '-'], { input: script.join('\n') + '\n', timeoutMs: 120_000 });
      } catch (err) {
        this.#mirror.clear(); // the kernel may not be what we think: the retry is a full sync
        this.#log.debug({ lines: script.length, head: script.slice(0, 20) }, 'nft transaction failed');
        throw new KdpError('KDP_PROXY_SYNC_FAILED', `nftables transaction failed: ${errorMessage(err)}`, { cause: err, details: { lines: script.length, head: script.slice(0, 5) } });
      }
    }
    for (const [f, s] of next) this.#mirror.set(f, s);
    return { lines: script.length };
  }

  async close(): Promise<void> {
    this.#runner?.close();
  }

  async cleanup(): Promise<void> {
    this.#mirror.clear();
    for (const f of ['ip', 'ip6'] as const) {
      await this.#exec.run(['nft', 'delete', 'table', f, TABLE], { allowFailure: true });
    }
  }
}
