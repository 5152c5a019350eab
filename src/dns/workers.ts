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

interface Slot {
  worker: Worker;
  state: WorkerState;
  /** it listened once: a death is a crash to recover from, not a start-up failure */
  served: boolean;
}

export class DnsWorkers {
  readonly #opts: DnsWorkersOptions;
  readonly #slots: (Slot | undefined)[];
  readonly #aggregator = new AggregatorRegistry();
  #stopping = false;
  readonly #gone = new AbortController();
  /** aborted when every worker failed before listening */
  readonly allFailed = this.#gone.signal;
  #listening: Promise<void>;
  #onListening: () => void = () => {};
  /** a worker failed before it listened (the primary exits 1) */
  failed = false;
  /** forks after a worker died (tests, logs) */
  restarts = 0;

  constructor(opts: DnsWorkersOptions) {
    this.#opts = opts;
    this.#slots = Array.from({ length: opts.count }, () => undefined);
    this.#listening = new Promise((resolve, reject) => {
      this.#onListening = resolve;
      this.allFailed.addEventListener('abort', () => reject(new Error('every dns worker failed before listening')));
    });
    this.#listening.catch(() => {});
  }

  /** Forks the workers; resolves when every one listens, rejects when all failed before that. */
  start(): Promise<void> {
    for (let i = 0; i < this.#opts.count; i++) this.#fork(i);
    return this.#listening;
  }

  #live(): Slot[] {
    return this.#slots.filter((s): s is Slot => s !== undefined && !s.worker.isDead());
  }

  /** some worker answers queries */
  get healthy(): boolean {
    return this.#live().some((s) => s.state.listening);
  }

  /** every live worker has listened and synced */
  get ready(): boolean {
    const live = this.#live();
    return !this.#stopping && live.length > 0 && live.every((s) => s.state.listening && s.state.ready);
  }

  /** pids of the live workers, by slot */
  get pids(): (number | undefined)[] {
    return this.#slots.map((s) => (s && !s.worker.isDead() ? s.worker.process.pid : undefined));
  }

  /** The workers' metrics, summed (Prometheus text format). */
  metrics(): Promise<string> {
    return this.#aggregator.clusterMetrics();
  }

  get contentType(): string {
    return this.#aggregator.contentType;
  }

  #fork(i: number): void {
    const worker = cluster.fork(this.#opts.env(i));
    const born = Date.now();
    const slot: Slot = { worker, state: { listening: false, ready: false }, served: false };
    this.#slots[i] = slot;
    worker.on('message', (m: { type?: string } & Partial<WorkerState>) => {
      if (m?.type !== STATE) return;
      slot.state = { listening: m.listening === true, ready: m.ready === true };
      slot.served ||= slot.state.listening;
      if (this.#slots.every((s) => s?.served)) this.#onListening();
    });
    worker.on('exit', (code, signal) => {
      if (this.#stopping) return;
      const pid = worker.process.pid;
      if (!slot.served) {
        this.failed = true;
        // it never listened (port taken, bad configuration): forking again would fail the same way
        this.#opts.log.error({ worker: i, pid, code, signal }, 'dns worker failed before listening');
        this.#slots[i] = undefined;
        if (this.#slots.every((s) => s === undefined || s.worker.isDead())) this.#gone.abort('all workers failed');
        return;
      }
      this.#opts.log.warn({ worker: i, pid, code, signal }, 'dns worker died; forking a new one');
      this.restarts++;
      const wait = Math.max(0, (this.#opts.restartDelayMs ?? 1000) - (Date.now() - born));
      setTimeout(() => !this.#stopping && this.#fork(i), wait);
    });
  }

  /** SIGTERM to every worker (each runs its own lameduck and shutdown), then waits for them to exit. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(
      this.#live().map((s) => new Promise((r) => (s.worker.once('exit', r), s.worker.process.kill('SIGTERM')))),
    );
  }
}
