// The port every proxy backend (nftables, iptables, userspace) implements. The proxier owns the watch
// state, the runner and conntrack; a backend only turns the model into programmed state.
import type { IPFamily } from '../model/types.ts';
import type { ServicePortInfo } from './model.ts';

export interface SyncResult {
  /** size of what was sent to the kernel (lines of nft / iptables-restore input; 0 for userspace) */
  readonly lines: number;
}

export interface ProxyBackend {
  readonly mode: string;
  /**
   * Programs the model. `full`: do not trust any memory of the kernel (startup, after a failure).
   * `changed`: service keys ("ns/name") changed since the last successful sync (partial-sync hint).
   * `byService`: the same model grouped by service key, per family (lets a partial sync look at the
   * changed services only instead of walking every service).
   * Throws KdpError on failure; the proxier retries with a full sync.
   */
  sync(
    models: ReadonlyMap<IPFamily, readonly ServicePortInfo[]>,
    full: boolean,
    changed: ReadonlySet<string>,
    byService?: ReadonlyMap<IPFamily, ReadonlyMap<string, readonly ServicePortInfo[]>>,
  ): Promise<SyncResult>;
  /** Removes everything this backend ever programmed (and only that). */
  cleanup(): Promise<void>;
  /** Releases resources (userspace listeners); programmed rules stay. */
  close?(): Promise<void>;
}
