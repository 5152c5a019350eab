// The controller kernel: the one reconcile loop every consumer of cluster state runs on (the List-Watch
// controller pattern: client-go's informer + lister + work queue, ingress-nginx's Storer, CoreDNS's
// dnsController). A consumer is a Reconciler: it declares the kinds it reads (and the secondary indexes it
// looks objects up by) and a reconcile(view, changes, full). The kernel
//   - reads nothing itself: the source's store is the one copy of every object, handed to reconcile as a
//     read-only view (a consumer keeps no mirror of its own);
//   - gates on exactly the declared kinds: no reconcile before each of them has listed once;
//   - merges repeated changes of one key into one (previous = what the last successful reconcile was told,
//     current = now) and drops those that end where they started;
//   - runs one reconcile at a time, coalesced and at most once per minIntervalMs (src/common/runner.ts);
//   - retries a reconcile that threw with exponential backoff, as a full reconcile that again carries the
//     changes it failed on;
//   - reconciles in full on the first run, after a failure, on requestFull() and every resyncMs;
//   - exports per-consumer metrics under controller-runtime's names (reconcile count by result, errors,
//     time, work-queue depth and retries) and a status for health endpoints and `kdp status`.
import type { Registry } from 'prom-client';
import { Counter, Gauge, Histogram } from 'prom-client';
import { errorMessage, isKdpError } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { BoundedRunner, realClock } from '../common/runner.ts';
import type { RunnerClock } from '../common/runner.ts';
import type { ClusterObject, Kind, ObjectOf } from '../model/types.ts';
import type { ClusterSource } from './source.ts';
import { sameObject } from './store.ts';
import type { IndexFn, StoreView } from './store.ts';

/** One object's change since the last successful reconcile. */
export interface Change<K extends Kind = Kind> {
  readonly kind: K;
  readonly key: string;
  /** what the consumer was last told (undefined: the object is new to it) */
  readonly previous: ObjectOf<K> | undefined;
  /** the object now (undefined: deleted) */
  readonly current: ObjectOf<K> | undefined;
}

/** A secondary index a reconciler reads through view.byIndex. */
export interface IndexSpec<K extends Kind = Kind> {
  readonly kind: K;
  readonly name: string;
  readonly fn: IndexFn<K>;
}

/** An IndexSpec with the object type inferred from the kind. */
export function indexOn<K extends Kind>(kind: K, name: string, fn: IndexFn<K>): IndexSpec {
  return { kind, name, fn } as unknown as IndexSpec;
}

export interface Reconciler {
  /** the consumer's name in logs, metrics (label `controller`) and status */
  readonly name: string;
  /** the kinds it reads: the source watches them and the kernel waits for each to have synced */
  readonly kinds: readonly Kind[];
  readonly indexes?: readonly IndexSpec[];
  /**
   * Brings the consumer's output in line with the view. `changes` lists every object that changed since the
   * last successful reconcile (merged per key); `full` says the output must be rebuilt from the whole view
   * (first run, after a failure, requestFull(), periodic resync). Throwing leaves the changes queued and
   * schedules a retry with backoff.
   */
  reconcile(view: StoreView, changes: readonly Change[], full: boolean): Promise<void> | void;
  /** told synchronously when a change is queued (after no-op changes are dropped): for queue-time metrics */
  queued?(change: Change): void;
}

export interface ControllerOptions {
  readonly log: Logger;
  /** minimum time between the starts of two reconciles (default 0: coalesce what arrives in one tick) */
  readonly minIntervalMs?: number;
  /** first retry delay after a failure (default 1000 ms), doubling up to retryMaxMs (default 30 s) */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /** reconcile in full at least this often (default: never on its own) */
  readonly resyncMs?: number;
  readonly clock?: RunnerClock;
  /** wall clock (ms since the epoch) for the status's times (default Date.now) */
  readonly wallClock?: () => number;
  /** where the per-consumer metrics are registered (default: not exported) */
  readonly registry?: Registry;
}

export interface ControllerStatus {
  readonly name: string;
  readonly kinds: readonly Kind[];
  /** every declared kind has listed once */
  readonly synced: boolean;
  /** successful reconciles so far */
  readonly syncs: number;
  /** consecutive failed reconciles (0 after a success) */
  readonly failures: number;
  readonly failuresTotal: number;
  /** keys queued for the next reconcile */
  readonly pending: number;
  /** wall-clock ms of the last successful reconcile */
  readonly lastSuccess?: number;
  /** wall-clock ms when the oldest change still queued arrived */
  readonly lastQueued?: number;
  readonly lastDurationMs?: number;
  readonly lastError?: string;
}

interface KernelMetrics {
  readonly total: Counter<'controller' | 'result'>;
  readonly errors: Counter<'controller'>;
  readonly time: Histogram<'controller'>;
  readonly depth: Gauge<'name'>;
  readonly retries: Counter<'name'>;
  readonly lastSuccess: Gauge<'controller'>;
}

// one set per registry: several controllers in one process share the metric families, told apart by label
const metricsByRegistry = new WeakMap<Registry, KernelMetrics>();

function kernelMetrics(registry: Registry): KernelMetrics {
  let m = metricsByRegistry.get(registry);
  if (m) return m;
  const registers = [registry];
  m = {
    total: new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller',
      labelNames: ['controller', 'result'],
      registers,
    }),
    errors: new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
    }),
    time: new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames: ['controller'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    depth: new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of workqueue (keys queued for the next reconcile)',
      labelNames: ['name'],
      registers,
    }),
    retries: new Counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by workqueue',
      labelNames: ['name'],
      registers,
    }),
    lastSuccess: new Gauge({
      name: 'kdp_controller_last_success_timestamp_seconds',
      help: 'Unix time of the last successful reconcile per controller',
      labelNames: ['controller'],
      registers,
    }),
  };
  metricsByRegistry.set(registry, m);
  return m;
}

interface Pending {
  kind: Kind;
  key: string;
  previous: ClusterObject | undefined;
  current: ClusterObject | undefined;
}

export class Controller {
  readonly #r: Reconciler;
  readonly #view: StoreView;
  readonly #log: Logger;
  readonly #runner: BoundedRunner;
  readonly #clock: RunnerClock;
  readonly #wall: () => number;
  readonly #resyncMs: number | undefined;
  readonly #metrics: KernelMetrics | undefined;
  readonly #unwatch: () => void;
  readonly #syncedKinds = new Set<Kind>();
  #pending = new Map<string, Pending>();
  #needFull = true;
  #lastFull = -Infinity;
  #syncs = 0;
  #failuresTotal = 0;
  #lastSuccess: number | undefined;
  #lastQueued: number | undefined;
  #lastDurationMs: number | undefined;
  #lastError: string | undefined;
  #syncedWaiters: (() => void)[] = [];

  /** Registers with `source` at once: build controllers before source.start(). */
  constructor(source: Pick<ClusterSource, 'watch' | 'view'>, reconciler: Reconciler, opts: ControllerOptions) {
    this.#r = reconciler;
    this.#view = source.view;
    this.#log = opts.log.child({ controller: reconciler.name });
    this.#clock = opts.clock ?? realClock;
    this.#wall = opts.wallClock ?? Date.now;
    this.#resyncMs = opts.resyncMs;
    this.#metrics = opts.registry ? kernelMetrics(opts.registry) : undefined;
    for (const idx of reconciler.indexes ?? []) source.view.addIndex(idx.kind, idx.name, idx.fn);
    this.#runner = new BoundedRunner(() => this.#run(), {
      minIntervalMs: opts.minIntervalMs ?? 0,
      retryMinMs: opts.retryMinMs ?? 1000,
      retryMaxMs: opts.retryMaxMs ?? 30_000,
      ...(opts.resyncMs ? { maxIntervalMs: opts.resyncMs } : {}),
      clock: this.#clock,
      onError: (err, n) => {
        this.#metrics?.retries.inc({ name: this.#r.name });
        this.#log.error(
          { err: isKdpError(err) ? err.toJSON() : { message: errorMessage(err) }, failures: n },
          'reconcile failed; retrying in full with backoff',
        );
      },
    });
    for (const k of reconciler.kinds) if (this.#view.isSynced(k)) this.#syncedKinds.add(k);
    // a consumer that joins a running source reads what is already there
    if (this.synced) this.#runner.run();
    this.#unwatch = source.watch({
      kinds: reconciler.kinds,
      changed: (kind, key, previous, current) => this.#queue(kind, key, previous, current),
      synced: (kind) => {
        this.#syncedKinds.add(kind);
        if (this.synced) {
          for (const w of this.#syncedWaiters.splice(0)) w();
          this.#runner.run();
        }
      },
    });
  }

  get name(): string {
    return this.#r.name;
  }

  /** Every declared kind has listed once. */
  get synced(): boolean {
    return this.#r.kinds.every((k) => this.#syncedKinds.has(k));
  }

  /** Asks for a full reconcile (a configuration changed, the kernel state may have drifted). */
  requestFull(): void {
    this.#needFull = true;
    if (this.synced) this.#runner.run();
  }

  /** Resolves once every declared kind has synced and no reconcile is pending or running. */
  async settled(): Promise<void> {
    if (!this.synced) await new Promise<void>((r) => this.#syncedWaiters.push(r));
    await this.#runner.idle();
  }

  status(): ControllerStatus {
    return {
      name: this.#r.name,
      kinds: this.#r.kinds,
      synced: this.synced,
      syncs: this.#syncs,
      failures: this.#runner.failures,
      failuresTotal: this.#failuresTotal,
      pending: this.#pending.size,
      ...(this.#lastSuccess !== undefined ? { lastSuccess: this.#lastSuccess } : {}),
      ...(this.#lastQueued !== undefined ? { lastQueued: this.#lastQueued } : {}),
      ...(this.#lastDurationMs !== undefined ? { lastDurationMs: this.#lastDurationMs } : {}),
      ...(this.#lastError !== undefined ? { lastError: this.#lastError } : {}),
    };
  }

  /** No reconcile after this; waits for the one in flight. */
  async stop(): Promise<void> {
    this.#unwatch();
    await this.#runner.stop();
    for (const w of this.#syncedWaiters.splice(0)) w();
  }

  #queue(kind: Kind, key: string, previous: ClusterObject | undefined, current: ClusterObject | undefined): void {
    const id = `${kind}\0${key}`;
    const held = this.#pending.get(id);
    if (held) held.current = current;
    else this.#pending.set(id, { kind, key, previous, current });
    this.#lastQueued ??= this.#wall();
    this.#metrics?.depth.set({ name: this.#r.name }, this.#pending.size);
    if (this.#r.queued) {
      try {
        this.#r.queued({ kind, key, previous, current } as Change);
      } catch (err) {
        this.#log.error({ err: errorMessage(err) }, 'queued hook threw; continuing');
      }
    }
    if (this.synced) this.#runner.run();
  }

  /** Merges changes a failed reconcile took back under those that arrived meanwhile. */
  #requeue(taken: Map<string, Pending>): void {
    for (const [id, p] of this.#pending) {
      const old = taken.get(id);
      if (old) old.current = p.current;
      else taken.set(id, p);
    }
    this.#pending = taken;
  }

  async #run(): Promise<void> {
    if (!this.synced) return;
    const started = this.#clock.now();
    const periodic = this.#resyncMs !== undefined && started - this.#lastFull >= this.#resyncMs;
    const full = this.#needFull || periodic;
    const taken = this.#pending;
    const queuedAt = this.#lastQueued;
    this.#pending = new Map();
    this.#lastQueued = undefined;
    const changes: Change[] = [];
    for (const p of taken.values()) {
      if (p.previous === p.current) continue;
      if (p.previous && p.current && sameObject(p.previous, p.current)) continue;
      changes.push(p as Change);
    }
    if (!full && changes.length === 0) return;
    this.#needFull = false;
    const name = this.#r.name;
    try {
      await this.#r.reconcile(this.#view, changes, full);
    } catch (err) {
      this.#needFull = true;
      this.#requeue(taken);
      this.#lastQueued = queuedAt ?? this.#lastQueued;
      this.#failuresTotal++;
      this.#lastError = errorMessage(err);
      this.#metrics?.total.inc({ controller: name, result: 'error' });
      this.#metrics?.errors.inc({ controller: name });
      this.#metrics?.depth.set({ name }, this.#pending.size);
      throw err;
    }
    const ms = this.#clock.now() - started;
    if (full) this.#lastFull = started;
    this.#syncs++;
    this.#lastSuccess = this.#wall();
    this.#lastDurationMs = ms;
    this.#lastError = undefined;
    const m = this.#metrics;
    if (m) {
      m.total.inc({ controller: name, result: 'success' });
      m.time.observe({ controller: name }, ms / 1000);
      m.lastSuccess.set({ controller: name }, this.#lastSuccess / 1000);
      m.depth.set({ name }, this.#pending.size);
    }
  }
}
