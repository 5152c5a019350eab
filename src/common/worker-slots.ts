// The supervision both `kdp dns --workers N` and `kdp ingress --workers N` need (node:cluster): N slots, each
// holding one forked worker. A worker that dies after it said it serves is forked again (no sooner than
// restartDelayMs after its previous birth; never while stopping); one that dies before that failed in a way a new
// fork would repeat (bad flags, port taken), so its slot stays empty, and when every slot is empty allFailed is
// aborted. stop() sends SIGTERM itself, not cluster's Worker.kill(): that first waits for the worker's servers to
// close, which is the worker's own graceful shutdown, so it would never start.
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import type { Logger } from './log.ts';

export interface WorkerSlotsOptions {
  readonly count: number;
  /** each worker's environment additions */
  readonly env: (index: number) => NodeJS.ProcessEnv;
  readonly log: Logger;
  /** names the workers in logs: `<what> died; forking a new one` */
  readonly what: string;
  /** min milliseconds between two forks of the same slot after it died (default 1000) */
  readonly restartDelayMs?: number;
  /** wires a new worker (its messages); call served(worker) when it serves */
  readonly attach: (worker: Worker, index: number) => void;
  /** a worker exited (also while stopping), before the slot decides what to do */
  readonly exited?: (worker: Worker, code: number | null) => void;
}

export class WorkerSlots {
  readonly #opts: WorkerSlotsOptions;
  readonly #slots: (Worker | undefined)[];
  readonly #served = new WeakSet<Worker>();
  #stopping = false;
  readonly #gone = new AbortController();
  /** aborted when every worker failed before serving */
  readonly allFailed = this.#gone.signal;
  /** a worker failed before it served */
  failed = false;
  /** forks after a worker died (tests, logs) */
  restarts = 0;

  constructor(opts: WorkerSlotsOptions) {
    this.#opts = opts;
    this.#slots = Array.from({ length: opts.count }, () => undefined);
  }

  start(): void {
    for (let i = 0; i < this.#opts.count; i++) this.#fork(i);
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** The worker serves: a later death is a crash to recover from, not a start-up failure. */
  served(worker: Worker): void {
    this.#served.add(worker);
  }

  hasServed(worker: Worker): boolean {
    return this.#served.has(worker);
  }

  /** the live worker of each slot (undefined: none) */
  get slots(): readonly (Worker | undefined)[] {
    return this.#slots.map((w) => (w && !w.isDead() ? w : undefined));
  }

  live(): Worker[] {
    return this.#slots.filter((w): w is Worker => w !== undefined && !w.isDead());
  }

  #fork(i: number): void {
    const worker = cluster.fork(this.#opts.env(i));
    const born = Date.now();
    this.#slots[i] = worker;
    this.#opts.attach(worker, i);
    worker.on('exit', (code, signal) => {
      this.#opts.exited?.(worker, code);
      if (this.#stopping) return;
      const pid = worker.process.pid;
      if (!this.#served.has(worker)) {
        this.failed = true;
        this.#opts.log.error({ worker: i, pid, code, signal }, `${this.#opts.what} failed before serving`);
        this.#slots[i] = undefined;
        if (this.#slots.every((w) => w === undefined || w.isDead())) this.#gone.abort('all workers failed');
        return;
      }
      this.#opts.log.warn({ worker: i, pid, code, signal }, `${this.#opts.what} died; forking a new one`);
      this.restarts++;
      const wait = Math.max(0, (this.#opts.restartDelayMs ?? 1000) - (Date.now() - born));
      setTimeout(() => !this.#stopping && this.#fork(i), wait);
    });
  }

  /** SIGTERM to every live worker (each drains on its own), then waits for them to exit. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.live().map((w) => new Promise((r) => (w.once('exit', r), w.process.kill('SIGTERM')))));
  }
}
