// Runs a pure function of a module in a worker thread with a time limit and a heap limit, so a test of a
// parser that loops forever or allocates without bound fails with a message instead of hanging the suite
// (or the machine). The worker is replaced after a timeout or an out-of-memory exit.
import { Worker } from 'node:worker_threads';

export type Bounded<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: { readonly code?: string; readonly message: string } }
  | { readonly ok: false; readonly limit: 'time' | 'memory'; readonly ms: number };

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
let mod;
import(workerData.module).then((m) => {
  mod = m;
  parentPort.postMessage({ ready: true });
});
parentPort.on('message', ({ id, args }) => {
  try {
    parentPort.postMessage({ id, ok: true, value: mod[workerData.fn](...args) });
  } catch (err) {
    parentPort.postMessage({ id, ok: false, error: { code: err && err.code, message: String(err && err.message) } });
  }
});
`;

export class BoundedCall<T> {
  readonly #module: string;
  readonly #fn: string;
  readonly #maxOldMb: number;
  #worker: Promise<Worker> | undefined;
  #seq = 0;

  /** `module`: a file URL; `fn`: the name of an export of it, called with the arguments given to call(). */
  constructor(module: URL, fn: string, opts: { maxOldMb?: number } = {}) {
    this.#module = module.href;
    this.#fn = fn;
    this.#maxOldMb = opts.maxOldMb ?? 96;
  }

  /** a worker with the module loaded (loading is not part of any call's time) */
  #spawn(): Promise<Worker> {
    const w = new Worker(WORKER, {
      eval: true,
      workerData: { module: this.#module, fn: this.#fn },
      resourceLimits: { maxOldGenerationSizeMb: this.#maxOldMb, maxYoungGenerationSizeMb: 16 },
    });
    // a worker being terminated may still report its out-of-memory end: never an unhandled 'error'
    w.on('error', () => {});
    return new Promise((resolve, reject) => {
      w.once('message', () => {
        w.off('error', reject);
        resolve(w);
      });
      w.once('error', reject);
    });
  }

  /** One call of the function; a call that takes longer than `timeoutMs` or runs out of heap is reported as such. */
  async call(args: readonly unknown[], timeoutMs = 2000): Promise<Bounded<T>> {
    const w = await (this.#worker ??= this.#spawn());
    const id = ++this.#seq;
    const t0 = performance.now();
    return new Promise((resolve) => {
      const done = (r: Bounded<T>, kill: boolean) => {
        clearTimeout(timer);
        w.off('message', onMessage);
        w.off('error', onError);
        w.off('exit', onExit);
        if (kill) {
          this.#worker = undefined;
          void w.terminate();
        }
        resolve(r);
      };
      const onMessage = (m: { id: number } & Bounded<T>) => {
        if (m.id !== id) return;
        const { id: _id, ...r } = m;
        done(r as Bounded<T>, false);
      };
      const onError = (err: Error & { code?: string }) =>
        done(
          err.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? { ok: false, limit: 'memory', ms: performance.now() - t0 }
            : { ok: false, error: { message: `worker: ${err.message}` } },
          true,
        );
      const onExit = () => done({ ok: false, limit: 'memory', ms: performance.now() - t0 }, true);
      const timer = setTimeout(() => done({ ok: false, limit: 'time', ms: performance.now() - t0 }, true), timeoutMs);
      w.on('message', onMessage);
      w.on('error', onError);
      w.on('exit', onExit);
      w.postMessage({ id, args });
    });
  }

  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = undefined;
    await (await w)?.terminate();
  }
}
