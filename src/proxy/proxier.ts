// The proxier: a reconciler on the controller kernel reading Services and EndpointSlices from the source's
// store. The kernel gates it on both kinds' initial sync (a half-listed cluster would reject live
// services), coalesces changes, keeps minSyncPeriod between syncs, resyncs every syncPeriod and retries a
// failed sync in full with backoff. Each sync rebuilds the changed services (all of them when full) and
// hands the backend the result; afterwards it deletes stale UDP conntrack entries and publishes health
// state (local endpoints per healthCheckNodePort). It also reads its own Node: the zone label
// (topology.kubernetes.io/zone) is what topology hints are matched against, and a change of it is a full sync
// (kube-proxy's OnTopologyChange).
import type { RunnerClock } from '../common/runner.ts';
import type { Logger } from '../common/log.ts';
import { Controller } from '../k8s/controller.ts';
import type { Change, Reconciler } from '../k8s/controller.ts';
import type { ClusterSource } from '../k8s/source.ts';
import type { StoreView } from '../k8s/store.ts';
import type { EndpointSlice, IPFamily, Service } from '../model/types.ts';
import type { ProxyBackend } from './backend.ts';
import type { Conntrack } from './conntrack.ts';
import { staleUdpEntries } from './conntrack.ts';
import type { ProxyMetrics } from './metrics.ts';
import { buildServicePorts } from './model.ts';
import type { PendingTimes } from './tracker.ts';
import { keyOf, LABEL_TOPOLOGY_ZONE } from '../model/types.ts';
import type { ServicePortInfo } from './model.ts';
import { ChangeTimes, SLICES_BY_SERVICE, changedServices, slicesFor } from './tracker.ts';

interface ProxierOptions {
  /** where Services and EndpointSlices come from (the proxier registers with it; start the source after) */
  readonly source: Pick<ClusterSource, 'watch' | 'view'>;
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

/**
 * One entry per Service with a healthCheckNodePort, as kube-proxy counts them: the distinct node-local endpoint
 * addresses that are ready (a terminating endpoint, even a serving one, does not count: the load balancer must
 * steer away from a node whose pods are all going away), over all the Service's ports. With two IP families
 * the larger count of the two is reported (a dual-stack pod is one endpoint, with one address per family).
 */
export function healthChecksOf(models: ReadonlyMap<IPFamily, readonly ServicePortInfo[]>): HealthCheckState[] {
  const byService = new Map<string, { port: number; perFamily: Map<IPFamily, Set<string>> }>();
  for (const [family, ports] of models) {
    for (const sp of ports) {
      if (sp.healthCheckNodePort === undefined) continue;
      const key = `${sp.namespace}/${sp.name}`;
      let e = byService.get(key);
      if (!e) byService.set(key, (e = { port: sp.healthCheckNodePort, perFamily: new Map() }));
      let ips = e.perFamily.get(family);
      if (!ips) e.perFamily.set(family, (ips = new Set()));
      for (const ep of sp.endpoints) if (ep.local && ep.ready) ips.add(ep.ip);
    }
  }
  return [...byService].map(([service, e]) => ({
    service,
    healthCheckNodePort: e.port,
    localEndpoints: Math.max(0, ...[...e.perFamily.values()].map((s) => s.size)),
  }));
}

/**
 * The model a backend gets: per family, every service port, flattened on first read (flattening 50k services
 * costs ~6 ms, most of a one-service change; a partial nftables sync reads only the changed services).
 */
class FlatModels implements ReadonlyMap<IPFamily, readonly ServicePortInfo[]> {
  readonly #by: ReadonlyMap<IPFamily, ReadonlyMap<string, readonly ServicePortInfo[]>>;
  readonly #flat = new Map<IPFamily, readonly ServicePortInfo[]>();

  constructor(by: ReadonlyMap<IPFamily, ReadonlyMap<string, readonly ServicePortInfo[]>>) {
    this.#by = by;
  }

  get size(): number {
    return this.#by.size;
  }

  has(f: IPFamily): boolean {
    return this.#by.has(f);
  }

  get(f: IPFamily): readonly ServicePortInfo[] | undefined {
    let v = this.#flat.get(f);
    const by = this.#by.get(f);
    if (v === undefined && by) this.#flat.set(f, (v = [...by.values()].flat()));
    return v;
  }

  keys(): MapIterator<IPFamily> {
    return this.#by.keys();
  }

  *values(): MapIterator<readonly ServicePortInfo[]> {
    for (const f of this.#by.keys()) yield this.get(f)!;
  }

  *entries(): MapIterator<[IPFamily, readonly ServicePortInfo[]]> {
    for (const f of this.#by.keys()) yield [f, this.get(f)!];
  }

  [Symbol.iterator](): MapIterator<[IPFamily, readonly ServicePortInfo[]]> {
    return this.entries();
  }

  forEach(
    fn: (v: readonly ServicePortInfo[], k: IPFamily, m: ReadonlyMap<IPFamily, readonly ServicePortInfo[]>) => void,
  ): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
}

const isUdp = (sp: ServicePortInfo): boolean => sp.protocol === 'UDP';

/** What a service's ports were built from: the store's objects (it replaces an object only when it changes). */
interface BuiltFrom {
  readonly svc: Service;
  readonly slices: readonly EndpointSlice[];
  readonly zone: string;
}

function sameInputs(a: BuiltFrom | undefined, b: BuiltFrom): boolean {
  return (
    !!a &&
    a.svc === b.svc &&
    a.zone === b.zone &&
    a.slices.length === b.slices.length &&
    a.slices.every((s, i) => s === b.slices[i])
  );
}

export class Proxier implements Reconciler {
  readonly name = 'proxy';
  readonly kinds = ['Service', 'EndpointSlice', 'Node'] as const;
  readonly indexes = [SLICES_BY_SERVICE];
  // effectively const
  readonly #opts: ProxierOptions;
  readonly #controller: Controller;
  readonly #log: Logger;
  // owned by the sync loop (reconciles never overlap)
  readonly #times: ChangeTimes;
  /** service ports per service key and family, as last built */
  readonly #ports = new Map<IPFamily, Map<string, ServicePortInfo[]>>();
  /** per service key: what its entries in #ports were built from (a full sync rebuilds only what differs) */
  readonly #builtFrom = new Map<string, BuiltFrom>();
  #health: HealthCheckState[] = [];
  /** per family: the ports of services rebuilt since the last successful sync, as that sync left them */
  readonly #before = new Map<IPFamily, Map<string, ServicePortInfo[]>>();
  /** the entries of #health by service key */
  readonly #healthBy = new Map<string, HealthCheckState>();
  /** this node's zone label as the last successful sync used it (undefined: no sync yet) */
  #zone: string | undefined;
  #lastSyncOk: number | undefined;
  #lastQueued: number | undefined;
  #syncs = 0;

  constructor(opts: ProxierOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#times = new ChangeTimes(undefined, opts.wallClock);
    this.#controller = new Controller(opts.source, this, {
      log: opts.log,
      minIntervalMs: opts.minSyncIntervalMs,
      retryMinMs: 1000,
      retryMaxMs: 30_000,
      ...(opts.syncPeriodMs ? { resyncMs: opts.syncPeriodMs } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.metrics ? { registry: opts.metrics.registry } : {}),
    });
  }

  get initialized(): boolean {
    return this.#controller.synced;
  }

  /** The kernel's queued hook: kube-proxy's queue-time metrics, for every change as it arrives. */
  queued(change: Change): void {
    if (change.kind === 'Node') {
      // only this node's zone matters (a change of it means a full sync); it is no service change for the metrics
      const zone = (n: Change['previous']) => (n?.kind === 'Node' ? (n.meta.labels[LABEL_TOPOLOGY_ZONE] ?? '') : '');
      if (change.key === this.#opts.nodeName && this.initialized && zone(change.previous) !== zone(change.current)) {
        this.#lastQueued = Date.now();
        this.#opts.metrics?.lastQueued.set(this.#lastQueued / 1000);
      }
      return;
    }
    this.#times.queued(change);
    this.#opts.metrics?.serviceChangesTotal.inc();
    this.#opts.metrics?.serviceChangesPending.set(this.#times.pending);
    if (!this.initialized) return;
    this.#lastQueued = Date.now();
    this.#opts.metrics?.lastQueued.set(this.#lastQueued / 1000);
  }

  /** Forces the next sync to be a full one and requests it. */
  requestFullSync(): void {
    this.#controller.requestFull();
  }

  /** This node's topology.kubernetes.io/zone label ('' when the Node or the label is missing). */
  #zoneOf(view: StoreView): string {
    return view.get('Node', this.#opts.nodeName)?.meta.labels[LABEL_TOPOLOGY_ZONE] ?? '';
  }

  async reconcile(view: StoreView, changes: readonly Change[], full: boolean): Promise<void> {
    const zone = this.#zoneOf(view);
    const services = changedServices(changes);
    if (zone !== this.#zone && this.#zone !== undefined) {
      this.#log.info({ from: this.#zone, to: zone }, 'node zone changed; full sync');
      full = true;
    }
    // Node changes that leave the zone as it was (other nodes, other labels): nothing to program
    if (!full && services.size === 0 && changes.every((c) => c.kind === 'Node')) return;
    const taken = this.#times.take();
    try {
      await this.#sync(view, services, full, taken.times, zone);
    } catch (err) {
      this.#times.restore(taken);
      if (this.#opts.backend.mode === 'iptables') this.#opts.metrics?.restoreFailures.inc();
      if (this.#opts.backend.mode === 'nftables') this.#opts.metrics?.nftSyncFailures.inc();
      throw err;
    }
  }

  async #sync(view: StoreView, changed: Set<string>, full: boolean, times: PendingTimes, zone: string): Promise<void> {
    const started = performance.now();
    // only changed services are rebuilt; the others keep their objects (backends skip them by identity)
    const keys = full ? view.list('Service').map((s) => keyOf(s.meta)) : [...changed];
    // the inputs of each service, once for all families; a full sync (periodic, after a failure) keeps the ports
    // of services whose inputs are the same objects as last time: the model is a pure function of them, and
    // 50k services' ports are ~80 MB that would otherwise exist twice at the sync's peak
    const inputs = new Map<string, BuiltFrom | undefined>();
    for (const key of keys) {
      const svc = view.get('Service', key);
      inputs.set(key, svc ? { svc, slices: slicesFor(view, key), zone } : undefined);
    }
    for (const family of this.#opts.families) {
      const old = this.#ports.get(family) ?? new Map<string, ServicePortInfo[]>();
      const byKey = full ? new Map<string, ServicePortInfo[]>() : old;
      const opts = {
        nodeName: this.#opts.nodeName,
        family,
        ...(this.#opts.proxyName ? { proxyName: this.#opts.proxyName } : {}),
        zone,
      };
      // what the rebuilt services were as last programmed (kept across failed syncs until one succeeds)
      let before = this.#before.get(family);
      if (!before) this.#before.set(family, (before = new Map()));
      // (only services with a UDP port: the conntrack cleanup looks at nothing else, and on a full sync the rest of
      // the old model can be freed while the new one is built and rendered)
      if (full) for (const [k, v] of old) if (!before.has(k) && v.some(isUdp)) before.set(k, v);
      for (const key of keys) {
        if (!full && !before.has(key)) before.set(key, old.get(key) ?? []);
        const from = inputs.get(key);
        const ports = !from
          ? []
          : full && sameInputs(this.#builtFrom.get(key), from)
            ? (old.get(key) ?? [])
            : buildServicePorts([from.svc], new Map([[key, from.slices]]), opts);
        if (ports.length > 0) byKey.set(key, ports);
        else byKey.delete(key);
      }
      this.#ports.set(family, byKey);
    }
    if (full) this.#builtFrom.clear();
    for (const [key, from] of inputs) {
      if (from) this.#builtFrom.set(key, from);
      else this.#builtFrom.delete(key);
    }
    // flattened only if the backend reads it: a partial nftables sync reads the changed services only
    const models = new FlatModels(new Map(this.#opts.families.map((f) => [f, this.#ports.get(f)!])));
    const { lines } = await this.#opts.backend.sync(models, full, changed, this.#ports);
    if (this.#opts.conntrack) {
      const deletions = this.#opts.families.flatMap((f) => {
        const before = this.#before.get(f)!;
        const now = this.#ports.get(f)!;
        const after = full ? models.get(f)! : [...before.keys()].flatMap((k) => now.get(k) ?? []);
        return staleUdpEntries([...before.values()].flat(), after);
      });
      if (deletions.length > 0) await this.#opts.conntrack.delete(deletions);
    }
    for (const b of this.#before.values()) b.clear();
    // health state: of the rebuilt services only (all of them when full)
    if (full) {
      this.#healthBy.clear();
      for (const hc of healthChecksOf(models)) this.#healthBy.set(hc.service, hc);
    } else
      for (const key of keys) {
        const mine = new Map(this.#opts.families.map((f) => [f, this.#ports.get(f)!.get(key) ?? []]));
        const hc = healthChecksOf(mine)[0];
        if (hc) this.#healthBy.set(key, hc);
        else this.#healthBy.delete(key);
      }
    this.#health = [...this.#healthBy.values()];
    this.#zone = zone;
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
      m.serviceChangesPending.set(this.#times.pending);
      m.rulesLast.set(lines);
    }
    this.#log.debug({ full, changed: changed.size, lines, ms: Math.round(secs * 1000) }, 'proxy rules synced');
    this.#opts.onSynced?.();
  }

  /** Resolves once both kinds have synced and no sync is pending or running. */
  settled(): Promise<void> {
    return this.#controller.settled();
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
      pending: this.#times.pending,
      syncs: this.#syncs,
      ...(this.#lastSyncOk !== undefined ? { lastSyncOk: this.#lastSyncOk } : {}),
      ...(this.#lastQueued !== undefined ? { lastQueued: this.#lastQueued } : {}),
      failures: this.#controller.status().failures,
    };
  }

  healthChecks(): readonly HealthCheckState[] {
    return this.#health;
  }

  /** The kernel's view of this consumer (kdp status, metrics). */
  controllerStatus(): ReturnType<Controller['status']> {
    return this.#controller.status();
  }

  async stop(): Promise<void> {
    await this.#controller.stop();
  }
}
