// A bounded-frequency, single-flight runner (after kube-proxy's BoundedFrequencyRunner):
//   - run() never blocks; requests that arrive while a run is pending or in flight coalesce into one;
//   - two runs start at least minIntervalMs apart; runs never overlap;
//   - a failed run is retried with exponential backoff (retryMinMs doubling up to retryMaxMs);
//   - with maxIntervalMs, a run happens at least that often even without requests (periodic resync);
//   - the clock is injected so tests drive time by hand.
// Imports nothing of ours (src/common rule).

export interface RunnerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: RunnerClock = {
  now: () => performance.now(),
  // not unref'd: a requested run keeps the process alive until it has happened (stop() clears timers)
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

interface RunnerOptions {
  readonly minIntervalMs: number;
  /** first retry delay after a failure (default 1000) */
  readonly retryMinMs?: number;
  /** cap of the retry delay (default 30000) */
  readonly retryMaxMs?: number;
  /** run at least this often (default: never on its own) */
  readonly maxIntervalMs?: number;
  readonly clock?: RunnerClock;
  /** told about every failed run (the runner itself never throws) */
  readonly onError?: (err: unknown, consecutiveFailures: number) => void;
}

export class BoundedRunner {
  readonly #fn: () => Promise<void>;
  readonly #min: number;
  readonly #retryMin: number;
  readonly #retryMax: number;
  readonly #maxInterval: number | undefined;
  readonly #clock: RunnerClock;
  readonly #onError: ((err: unknown, n: number) => void) | undefined;
  #pending = false;
  #running: Promise<void> | undefined;
  #timer: unknown;
  #timerAt = Infinity;
  #lastStart = -Infinity;
  #failures = 0;
  #stopped = false;
  #periodic: unknown;
  #idleWaiters: (() => void)[] = [];

  constructor(fn: () => Promise<void>, opts: RunnerOptions) {
    this.#fn = fn;
    this.#min = opts.minIntervalMs;
    this.#retryMin = opts.retryMinMs ?? 1000;
    this.#retryMax = opts.retryMaxMs ?? 30_000;
    this.#maxInterval = opts.maxIntervalMs;
    this.#clock = opts.clock ?? realClock;
    this.#onError = opts.onError;
  }

  /** Requests a run (coalesced with any other pending request). */
  run(): void {
    if (this.#stopped) return;
    this.#pending = true;
    this.#schedule(0);
  }

  /** Consecutive failures so far (0 after a success). */
  get failures(): number {
    return this.#failures;
  }

  /** Resolves when nothing is pending, scheduled or running. */
  idle(): Promise<void> {
    if (!this.#pending && !this.#running) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  /** No more runs; waits for the one in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#pending = false;
    this.#cancelTimer();
    if (this.#periodic !== undefined) this.#clock.clearTimeout(this.#periodic);
    await this.#running;
    this.#notifyIdle();
  }

  #cancelTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  /** Makes sure a timer fires no earlier than the min interval (and no earlier than `extraDelay` from now). */
  #schedule(extraDelay: number): void {
    if (this.#running || !this.#pending || this.#stopped) return;
    const now = this.#clock.now();
    const at = Math.max(this.#lastStart + this.#min, now + extraDelay);
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#cancelTimer();
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(() => this.#fire(), Math.max(0, at - now));
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (!this.#pending || this.#running || this.#stopped) return;
    this.#pending = false;
    this.#lastStart = this.#clock.now();
    this.#running = this.#execute();
  }

  async #execute(): Promise<void> {
    let retryDelay = 0;
    try {
      await this.#fn();
      this.#failures = 0;
    } catch (err) {
      this.#failures++;
      retryDelay = Math.min(this.#retryMax, this.#retryMin * 2 ** (this.#failures - 1));
      this.#pending = true;
      try {
        this.#onError?.(err, this.#failures);
      } catch {
        /* a broken reporter must not stop the loop */
      }
    }
    this.#running = undefined;
    if (this.#pending) this.#schedule(retryDelay);
    else this.#notifyIdle();
    this.#armPeriodic();
  }

  #armPeriodic(): void {
    if (this.#maxInterval === undefined || this.#stopped) return;
    if (this.#periodic !== undefined) this.#clock.clearTimeout(this.#periodic);
    this.#periodic = this.#clock.setTimeout(() => {
      this.#periodic = undefined;
      this.run();
    }, this.#maxInterval);
  }

  #notifyIdle(): void {
    if (this.#pending || this.#running) return;
    const w = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const r of w) r();
  }
}
