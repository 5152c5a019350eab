// nftables mode, side effects: applies the renderer's scripts with `nft -f -` (one transaction per sync)
// and keeps a mirror of what it programmed, so a normal sync sends only the difference. A full sync
// (startup, after a failure) lists the names in the kernel's table and reconciles in one transaction.
import { KdpError, errorMessage } from '../../common/errors.ts';
import type { Exec } from '../../common/exec-adapter.ts';
import type { Logger } from '../../common/log.ts';
import type { ServicePortInfo } from '../model.ts';
import type { ProxyBackend, SyncResult } from '../backend.ts';
import { TABLE, diffScript, fullScript, nftFamily, renderNft } from './render.ts';
import type { ExistingObjects, NftConfig, NftFamily, NftState } from './render.ts';
import type { IPFamily } from '../../model/types.ts';

export class NftablesBackend implements ProxyBackend {
  readonly mode = 'nftables';
  readonly #exec: Exec;
  readonly #cfg: NftConfig;
  readonly #log: Logger;
  readonly #mirror = new Map<NftFamily, NftState>();

  constructor(opts: { exec: Exec; config: NftConfig; log: Logger }) {
    this.#exec = opts.exec;
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
    const next = new Map<NftFamily, NftState>();
    for (const [fam, ports] of models) {
      const f = nftFamily(fam);
      const state = renderNft(ports, f, this.#cfg);
      next.set(f, state);
      const prev = this.#mirror.get(f);
      if (full || !prev) script.push(...fullScript(state, await this.#listExisting(f)));
      else script.push(...diffScript(prev, state));
    }
    if (script.length > 0) {
      const text = script.join('\n') + '\n';
      try {
        await this.#exec.run(['nft', '-f', '-'], { input: text, timeoutMs: 120_000 });
      } catch (err) {
        this.#mirror.clear(); // the kernel may not be what we think: the retry is a full sync
        const line = /-:(\d+):/.exec(errorMessage(err))?.[1];
        const context = line ? script.slice(Math.max(0, Number(line) - 3), Number(line) + 2) : [];
        this.#log.debug({ context }, 'nft transaction failed');
        throw new KdpError('KDP_PROXY_SYNC_FAILED', `nftables transaction failed: ${errorMessage(err)}`, { cause: err, details: { context } });
      }
    }
    for (const [f, s] of next) this.#mirror.set(f, s);
    return { lines: script.length };
  }

  async cleanup(): Promise<void> {
    this.#mirror.clear();
    for (const f of ['ip', 'ip6'] as const) {
      await this.#exec.run(['nft', 'delete', 'table', f, TABLE], { allowFailure: true });
    }
  }
}
