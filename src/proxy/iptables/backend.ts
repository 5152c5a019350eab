// iptables mode, side effects: one `iptables-restore --noflush` per family and sync (KDP-* chains only),
// then the jumps from the built-in chains ensured rule by rule (-C, else -I). The names of the chains in
// the kernel are mirrored so partial syncs can skip unchanged services and delete stale chains without
// listing the kernel; a full sync (startup, after a failure, periodic) lists them with iptables-save.
import { KdpError, errorMessage } from '../../common/errors.ts';
import type { Exec } from '../../common/exec-adapter.ts';
import type { Logger } from '../../common/log.ts';
import type { IPFamily } from '../../model/types.ts';
import type { ProxyBackend, SyncResult } from '../backend.ts';
import type { ServicePortInfo } from '../model.ts';
import { jumpRules, parseSaveChains, renderIptables, restoreText } from './render.ts';
import type { IptConfig, IptFamily } from './render.ts';

const BIN: Record<IptFamily, { save: string; restore: string; cmd: string }> = {
  ipv4: { save: 'iptables-save', restore: 'iptables-restore', cmd: 'iptables' },
  ipv6: { save: 'ip6tables-save', restore: 'ip6tables-restore', cmd: 'ip6tables' },
};

const famOf = (f: IPFamily): IptFamily => (f === 'IPv4' ? 'ipv4' : 'ipv6');

export class IptablesBackend implements ProxyBackend {
  readonly mode = 'iptables';
  readonly #exec: Exec;
  readonly #cfg: IptConfig;
  readonly #log: Logger;
  readonly #families: readonly IPFamily[];
  /** family -> table -> KDP chains believed to be in the kernel */
  readonly #mirror = new Map<IptFamily, Map<string, Set<string>>>();

  constructor(opts: { exec: Exec; config: IptConfig; log: Logger; families: readonly IPFamily[] }) {
    this.#exec = opts.exec;
    this.#cfg = opts.config;
    this.#log = opts.log;
    this.#families = opts.families;
  }

  async #listChains(f: IptFamily): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    for (const table of ['filter', 'nat']) {
      const res = await this.#exec.run([BIN[f].save, '-t', table], { allowFailure: true });
      out.set(table, parseSaveChains(res.stdout).get(table) ?? new Set());
    }
    return out;
  }

  async #ensureJumps(f: IptFamily): Promise<void> {
    for (const [table, chain, spec] of jumpRules(f)) {
      const check = await this.#exec.run([BIN[f].cmd, '-w', '5', '-t', table, '-C', chain, ...spec], {
        allowFailure: true,
      });
      if (check.code !== 0) await this.#exec.run([BIN[f].cmd, '-w', '5', '-t', table, '-I', chain, '1', ...spec]);
    }
  }

  async sync(
    models: ReadonlyMap<IPFamily, readonly ServicePortInfo[]>,
    full: boolean,
    changed: ReadonlySet<string>,
  ): Promise<SyncResult> {
    let lines = 0;
    for (const [fam, ports] of models) {
      const f = famOf(fam);
      const state = renderIptables(ports, f, this.#cfg);
      const mirror = this.#mirror.get(f);
      const isFull = full || !mirror;
      const existing = isFull ? await this.#listChains(f) : mirror;
      const text = restoreText(state, { full: isFull, changed, existing });
      lines += text.split('\n').length;
      try {
        await this.#exec.run([BIN[f].restore, '-w', '5', '--noflush', '--counters'], {
          input: text,
          timeoutMs: 120_000,
        });
      } catch (err) {
        this.#mirror.delete(f);
        const m = /line:?\s*(\d+)/i.exec(errorMessage(err));
        const all = text.split('\n');
        const context = m ? all.slice(Math.max(0, Number(m[1]) - 2), Number(m[1]) + 1) : [];
        this.#log.debug({ context }, 'iptables-restore failed');
        throw new KdpError('KDP_PROXY_SYNC_FAILED', `${BIN[f].restore} failed: ${errorMessage(err)}`, {
          cause: err,
          details: { context },
        });
      }
      this.#mirror.set(f, new Map([...state.tables].map(([t, chains]) => [t, new Set(chains.keys())])));
      if (isFull) await this.#ensureJumps(f);
    }
    return { lines };
  }

  async cleanup(): Promise<void> {
    this.#mirror.clear();
    for (const fam of this.#families) {
      const f = famOf(fam);
      for (const [table, chain, spec] of jumpRules(f)) {
        for (let i = 0; i < 10; i++) {
          const res = await this.#exec.run([BIN[f].cmd, '-w', '5', '-t', table, '-D', chain, ...spec], {
            allowFailure: true,
          });
          if (res.code !== 0) break;
        }
      }
      const existing = await this.#listChains(f);
      const out: string[] = [];
      for (const [table, chains] of existing) {
        if (chains.size === 0) continue;
        out.push(
          `*${table}`,
          ...[...chains].map((c) => `:${c} - [0:0]`),
          ...[...chains].map((c) => `-X ${c}`),
          'COMMIT',
        );
      }
      if (out.length > 0)
        await this.#exec.run([BIN[f].restore, '-w', '5', '--noflush'], { input: out.join('\n') + '\n' });
    }
  }
}
