// The proxier: receives Service and EndpointSlice events (handler ports), tracks changes, and syncs the
// backend through a bounded-frequency single-flight runner. Nothing is programmed before both kinds have
// synced (a half-listed cluster would reject live services). After each successful sync it deletes stale
// UDP conntrack entries and publishes health state (local endpoints per healthCheckNodePort).
import { BoundedRunner } from '../common/runner.ts';
import type { RunnerClock } from '../common/runner.ts';
import { errorMessage, isKdpError } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { EndpointSliceHandler, ServiceHandler } from '../k8s/handlers.ts';
import type { EndpointSlice, IPFamily, Service } from '../model/types.ts';
import type { ProxyBackend } from './backend.ts';
import type { Conntrack } from './conntrack.ts';
import { staleUdpEntries } from './conntrack.ts';
import type { ProxyMetrics } from './metrics.ts';
import { buildServicePorts } from './model.ts';
import type { ServicePortInfo } from './model.ts';
import { ChangeTracker } from './tracker.ts';

export interface ProxierOptions {
  readonly backend: ProxyBackend;
  readonly nodeName: string;
  readonly families: readonly IPFamily[];
  readonly proxyName?: string;
  /** minimum time between two syncs (kube-proxy: minSyncPeriod, default 1 s) */
  readonly minSyncIntervalMs: number;
  /** full resync at least this often (kube-proxy: syncPeriod, default 30 s); 0: never */
  readonly syncPeriodMs?: number;
  readonly conntrack?: Conntrack;
  readonly metrics?: ProxyMetrics;
  readonly log: Logger;
  readonly clock?: RunnerClock;
  /** wall clock in ms since the epoch (trigger-time annotations are wall-clock times); default Date.now */
  readonly wallClock?: () => number;
  /** called after every successful sync (health-check servers follow the new state) */
  readonly onSynced?: () => void;
}

export interface HealthCheckState {
  readonly service: string;
  readonly healthCheckNodePort: number;
  readonly localEndpoints: number;
}

export class Proxier implements ServiceHandler, EndpointSliceHandler {
  // effectively const
  readonly #opts: ProxierOptions;
  readonly #runner: BoundedRunner;
  readonly #log: Logger;
  // owned by the sync loop (runs never overlap)
  readonly #tracker: ChangeTracker;
  #servicesSynced = false;
  #slicesSynced = false;
  #needFull = true;
  #prev = new Map<IPFamily, ServicePortInfo[]>();
  /** service ports per service key and family, as last built */
  readonly #ports = new Map<IPFamily, Map<string, ServicePortInfo[]>>();
  #health: HealthCheckState[] = [];
  #lastSyncOk: number | undefined;
  #lastQueued: number | undefined;
  #syncs = 0;
  #lastFull = 0;

  constructor(opts: ProxierOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#tracker = new ChangeTracker(undefined, opts.wallClock);
    this.#runner = new BoundedRunner(() => this.#sync(), {
      minIntervalMs: opts.minSyncIntervalMs,
      retryMinMs: 1000,
      retryMaxMs: 30_000,
      ...(opts.syncPeriodMs ? { maxIntervalMs: opts.syncPeriodMs } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
      onError: (err, n) =>
        this.#log.error(
          { err: isKdpError(err) ? err.toJSON() : { message: errorMessage(err) }, failures: n },
          'proxy sync failed; retrying with a full sync',
        ),
    });
  }

  get initialized(): boolean {
    return this.#servicesSynced && this.#slicesSynced;
  }

  #changed(did: boolean): void {
    if (!did) return;
    this.#opts.metrics?.serviceChangesTotal.inc();
    this.#opts.metrics?.serviceChangesPending.set(this.#tracker.pending);
    if (!this.initialized) return;
    this.#lastQueued = Date.now();
    this.#opts.metrics?.lastQueued.set(this.#lastQueued / 1000);
    this.#runner.run();
  }

  onServiceAdd(svc: Service): void {
    this.#changed(this.#tracker.updateService(undefined, svc));
  }
  onServiceUpdate(old: Service, cur: Service): void {
    this.#changed(this.#tracker.updateService(old, cur));
  }
  onServiceDelete(svc: Service): void {
    this.#changed(this.#tracker.updateService(svc, undefined));
  }
  onServicesSynced(): void {
    this.#servicesSynced = true;
    if (this.initialized) this.#runner.run();
  }
  onEndpointSliceAdd(slice: EndpointSlice): void {
    this.#changed(this.#tracker.updateSlice(undefined, slice));
  }
  onEndpointSliceUpdate(old: EndpointSlice, cur: EndpointSlice): void {
    this.#changed(this.#tracker.updateSlice(old, cur));
  }
  onEndpointSliceDelete(slice: EndpointSlice): void {
    this.#changed(this.#tracker.updateSlice(slice, undefined));
  }
  onEndpointSlicesSynced(): void {
    this.#slicesSynced = true;
    if (this.initialized) this.#runner.run();
  }

  /** Forces the next sync to be a full one and requests it. */
  requestFullSync(): void {
    this.#needFull = true;
    if (this.initialized) this.#runner.run();
  }

  async #sync(): Promise<void> {
    if (!this.initialized) return;
    const started = performance.now();
    const { changed, oldestMs, times } = this.#tracker.take();
    const periodicFull = this.#opts.syncPeriodMs ? started - this.#lastFull >= this.#opts.syncPeriodMs : false;
    const full = this.#needFull || periodicFull;
    // only changed services are rebuilt; the others keep their objects (backends skip them by identity)
    const models = new Map<IPFamily, ServicePortInfo[]>();
    const keys = full ? [...this.#tracker.services.keys()] : [...changed];
    for (const family of this.#opts.families) {
      const byKey = full
        ? new Map<string, ServicePortInfo[]>()
        : (this.#ports.get(family) ?? new Map<string, ServicePortInfo[]>());
      const opts = {
        nodeName: this.#opts.nodeName,
        family,
        ...(this.#opts.proxyName ? { proxyName: this.#opts.proxyName } : {}),
      };
      for (const key of keys) {
        const svc = this.#tracker.services.get(key);
        const ports = svc ? buildServicePorts([svc], new Map([[key, this.#tracker.slicesFor(key)]]), opts) : [];
        if (ports.length > 0) byKey.set(key, ports);
        else byKey.delete(key);
      }
      this.#ports.set(family, byKey);
      models.set(family, [...byKey.values()].flat());
    }
    let lines: number;
    try {
      ({ lines } = await this.#opts.backend.sync(models, full, changed, this.#ports));
    } catch (err) {
      this.#tracker.restore(changed, oldestMs, times);
      this.#needFull = true;
      if (this.#opts.backend.mode === 'iptables') this.#opts.metrics?.restoreFailures.inc();
      if (this.#opts.backend.mode === 'nftables') this.#opts.metrics?.nftSyncFailures.inc();
      throw err;
    }
    this.#needFull = false;
    if (full) this.#lastFull = started;
    if (this.#opts.conntrack) {
      const deletions = [...models].flatMap(([fam, ports]) => staleUdpEntries(this.#prev.get(fam) ?? [], ports));
      if (deletions.length > 0) await this.#opts.conntrack.delete(deletions);
    }
    this.#prev = models;
    this.#health = [...models.values()]
      .flat()
      .flatMap((sp) =>
        sp.healthCheckNodePort !== undefined
          ? [
              {
                service: `${sp.namespace}/${sp.name}`,
                healthCheckNodePort: sp.healthCheckNodePort,
                localEndpoints: sp.localEndpoints.length,
              },
            ]
          : [],
      );
    this.#syncs++;
    this.#lastSyncOk = Date.now();
    const secs = (performance.now() - started) / 1000;
    const m = this.#opts.metrics;
    if (m) {
      m.syncDuration.observe(secs);
      (full ? m.syncFullDuration : m.syncPartialDuration).observe(secs);
      // kube-proxy: from the EndpointSlice's last-change-trigger-time (the API change itself) to now; changes
      // without one count from when the first of them was queued here
      const wall = (this.#opts.wallClock ?? Date.now)();
      for (const t of times.triggers) m.networkProgramming.observe(Math.max(0, wall - t) / 1000);
      if (times.untriggeredMs !== undefined)
        m.networkProgramming.observe((performance.now() - times.untriggeredMs) / 1000);
      m.lastSync.set(this.#lastSyncOk / 1000);
      m.serviceChangesPending.set(this.#tracker.pending);
      m.rulesLast.set(lines);
    }
    this.#log.debug({ full, changed: changed.size, lines, ms: Math.round(secs * 1000) }, 'proxy rules synced');
    this.#opts.onSynced?.();
  }

  /** Resolves when no sync is pending or running. */
  settled(): Promise<void> {
    return this.#runner.idle();
  }

  /** Health facts for /healthz: when the last sync succeeded, when one was last queued. */
  status(): {
    initialized: boolean;
    syncs: number;
    pending: number;
    lastSyncOk?: number;
    lastQueued?: number;
    failures: number;
  } {
    return {
      initialized: this.initialized,
      pending: this.#tracker.pending,
      syncs: this.#syncs,
      ...(this.#lastSyncOk !== undefined ? { lastSyncOk: this.#lastSyncOk } : {}),
      ...(this.#lastQueued !== undefined ? { lastQueued: this.#lastQueued } : {}),
      failures: this.#runner.failures,
    };
  }

  healthChecks(): readonly HealthCheckState[] {
    return this.#health;
  }

  /** The model of the last successful sync (userspace mode and tests read it). */
  lastModel(): ReadonlyMap<IPFamily, readonly ServicePortInfo[]> {
    return this.#prev;
  }

  async stop(): Promise<void> {
    await this.#runner.stop();
  }
}
