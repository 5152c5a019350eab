// What the Ingress and the Gateway reconcilers share around the controller kernel: running on it with the
// ingress' settings (coalescing interval, retry 1 s doubling to 30 s, the controller-runtime metrics in the
// ingress registry), the "first table installed" promise the server waits for, and the kernel's status.
import { Controller } from '../src/k8s/controller.ts';
import type { Reconciler } from '../src/k8s/controller.ts';
import type { ClusterSource } from '../src/k8s/source.ts';
import type { RunnerClock } from '../src/common/runner.ts';
import type { Logger } from '../src/common/log.ts';
import type { IngressMetrics } from './metrics.ts';

interface AttachmentOptions {
  readonly log: Logger;
  readonly minIntervalMs: number;
  readonly clock: RunnerClock | undefined;
  readonly metrics: IngressMetrics | undefined;
}

export class KernelAttachment {
  readonly #opts: AttachmentOptions;
  #controller: Controller | undefined;
  #ready = false;
  readonly #waiters: (() => void)[] = [];

  constructor(opts: AttachmentOptions) {
    this.#opts = opts;
  }

  /** Runs `reconciler` on the kernel over `source` (before source.start()); returns the detach function. */
  attach(source: Pick<ClusterSource, 'watch' | 'view'>, reconciler: Reconciler): () => void {
    const { log, minIntervalMs, clock, metrics } = this.#opts;
    const c = new Controller(source, reconciler, {
      log,
      minIntervalMs,
      retryMinMs: 1000,
      retryMaxMs: 30_000,
      ...(clock ? { clock } : {}),
      ...(metrics ? { registry: metrics.registry } : {}),
    });
    this.#controller = c;
    return () => void c.stop();
  }

  /** True once the reconciler has installed its first table. */
  get ready(): boolean {
    return this.#ready;
  }

  /** The reconciler calls this after every install; the first one releases whenReady(). */
  installed(): void {
    this.#ready = true;
    for (const w of this.#waiters.splice(0)) w();
  }

  whenReady(): Promise<void> {
    return this.#ready ? Promise.resolve() : new Promise((r) => this.#waiters.push(r));
  }

  /** The kernel's view of this consumer (kdp status). */
  status(): ReturnType<Controller['status']> | undefined {
    return this.#controller?.status();
  }

  /** Asks the kernel for a full reconcile (a retry the reconciler schedules itself, e.g. a failed status write). */
  requestFull(): void {
    this.#controller?.requestFull();
  }

  stop(): void {
    void this.#controller?.stop();
  }
}
