// `kdp dns --workers N` (node:cluster): N worker processes, each a whole `kdp dns` with its own event loop,
// its own cluster source and record store, its own cache and its own Corefile watch (a reload reaches every
// worker because each one watches the file), bound with SO_REUSEPORT to the same DNS ports: the kernel
// spreads datagrams and connections over them. The primary answers no queries. It serves /health (200
// while a worker is listening), /ready (200 once every live worker has its initial cluster sync, so no
// worker can be the one that answers NXDOMAIN from an empty store) and /metrics: every worker's registry
// over the cluster IPC channel, summed per label set (prom-client's AggregatorRegistry), plus
// kdp_dns_worker_requests_total{worker} to see how the load spread. CoreDNS is one process with one set
// of counters; the sums are what it would show. A worker that dies after it listened is forked again.
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Registry } from 'prom-client';
import type { Logger } from '../common/log.ts';
import { WorkerSlots } from '../common/worker-slots.ts';

const STATE = 'kdp-dns:state';

/** What a worker tells the primary. */
export interface WorkerState {
  /** its DNS sockets are bound */
  readonly listening: boolean;
  /** its cluster source finished the initial sync (kubernetes zones answer from the full state) */
  readonly ready: boolean;
}

let joined = false;

/** Worker side: answer the primary's metric requests from `registry` and report `state`. No-op outside a cluster worker. */
export function reportToPrimary(state: WorkerState, registry?: Registry): void {
  if (!cluster.isWorker) return;
  if (registry) AggregatorRegistry.setRegistries([registry]);
  if (!joined) {
    joined = true;
    if (!registry) AggregatorRegistry.setRegistries([]);
    new AggregatorRegistry(); // installs the worker's IPC listener for the primary's requests
  }
  process.send?.({ type: STATE, ...state });
}

interface DnsWorkersOptions {
  readonly count: number;
  /** each worker's environment additions */
  readonly env: (index: number) => NodeJS.ProcessEnv;
  readonly log: Logger;
  /** min milliseconds between two forks of the same slot after it died (1000) */
  readonly restartDelayMs?: number;
}

export class DnsWorkers {
  readonly #slots: WorkerSlots;
  readonly #state = new WeakMap<Worker, WorkerState>();
  readonly #aggregator = new AggregatorRegistry();
  /** aborted when every worker failed before listening */
  readonly allFailed: AbortSignal;
  #listening: Promise<void>;
  #onListening: () => void = () => {};

  constructor(opts: DnsWorkersOptions) {
    this.#slots = new WorkerSlots({
      ...opts,
      what: 'dns worker',
      attach: (worker) =>
        worker.on('message', (m: { type?: string } & Partial<WorkerState>) => {
          if (m?.type !== STATE) return;
          const state = { listening: m.listening === true, ready: m.ready === true };
          this.#state.set(worker, state);
          if (state.listening) this.#slots.served(worker);
          if (this.#slots.slots.every((w) => w !== undefined && this.#slots.hasServed(w))) this.#onListening();
        }),
    });
    this.allFailed = this.#slots.allFailed;
    this.#listening = new Promise((resolve, reject) => {
      this.#onListening = resolve;
      this.allFailed.addEventListener('abort', () => reject(new Error('every dns worker failed before listening')));
    });
    this.#listening.catch(() => {});
  }

  /** Forks the workers; resolves when every one listens, rejects when all failed before that. */
  start(): Promise<void> {
    this.#slots.start();
    return this.#listening;
  }

  /** a worker failed before it listened (the primary exits 1) */
  get failed(): boolean {
    return this.#slots.failed;
  }

  /** forks after a worker died (tests, logs) */
  get restarts(): number {
    return this.#slots.restarts;
  }

  #stateOf(w: Worker): WorkerState {
    return this.#state.get(w) ?? { listening: false, ready: false };
  }

  /** some worker answers queries */
  get healthy(): boolean {
    return this.#slots.live().some((w) => this.#stateOf(w).listening);
  }

  /** every live worker has listened and synced */
  get ready(): boolean {
    const live = this.#slots.live();
    return (
      !this.#slots.stopping &&
      live.length > 0 &&
      live.every((w) => this.#stateOf(w).listening && this.#stateOf(w).ready)
    );
  }

  /** pids of the live workers, by slot */
  get pids(): (number | undefined)[] {
    return this.#slots.slots.map((w) => w?.process.pid);
  }

  /** The workers' metrics, summed (Prometheus text format). */
  metrics(): Promise<string> {
    return this.#aggregator.clusterMetrics();
  }

  get contentType(): string {
    return this.#aggregator.contentType;
  }

  /** SIGTERM to every worker (each runs its own lameduck and shutdown), then waits for them to exit. */
  stop(): Promise<void> {
    return this.#slots.stop();
  }
}
