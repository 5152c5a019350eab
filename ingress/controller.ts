// The controller: a reconciler on the controller kernel. It reads Ingresses, IngressClasses, Services,
// EndpointSlices and Secrets from the source's store, compiles the route table (pure) and installs it in
// the server atomically. The kernel gates it on every kind's initial sync (nothing is served from a
// half-listed cluster), coalesces changes at most once per minIntervalMs and retries a failed compile
// with backoff while the previous table keeps serving.
import type { Controller, Reconciler } from '../src/k8s/controller.ts';
import type { ClusterSource } from '../src/k8s/source.ts';
import type { StoreView } from '../src/k8s/store.ts';
import type { Key } from '../src/model/types.ts';
import type { RunnerClock } from '../src/common/runner.ts';
import { KernelAttachment } from './attachment.ts';
import type { Logger } from '../src/common/log.ts';
import { silentLogger } from '../src/common/log.ts';
import { compile, DEFAULT_COMPILE_OPTIONS } from './compile.ts';
import type { CompileOptions } from './compile.ts';
import type { IngressMetrics } from './metrics.ts';
import type { CompileResult, RouteTable } from './types.ts';

interface TableSink {
  setTable(table: RouteTable): void;
}

/** Writes Ingress status.loadBalancer (the Kubernetes adapter implements it; manifests mode has none). */
interface IngressStatusWriter {
  setLoadBalancer(namespace: string, name: string, ingress: readonly LoadBalancerAddress[]): Promise<void>;
}

interface LoadBalancerAddress {
  readonly ip?: string;
  readonly hostname?: string;
}

export interface ControllerOptions {
  /**
   * status.loadBalancer of every Ingress we serve: fixed `addresses` (ingress-nginx --publish-status-address),
   * or those of the Service `publishService` (`namespace/name`: its load-balancer IPs, then its externalIPs;
   * ingress-nginx --publish-service). Fixed addresses win when both are given.
   */
  readonly status?: {
    readonly writer: IngressStatusWriter;
    readonly addresses?: readonly LoadBalancerAddress[];
    readonly publishService?: Key;
  };
  readonly log?: Logger;
  readonly metrics?: IngressMetrics;
  readonly compile?: Partial<CompileOptions>;
  /** minimum milliseconds between two compiles (default 50) */
  readonly minIntervalMs?: number;
  readonly clock?: RunnerClock;
}

export class IngressController implements Reconciler {
  readonly name = 'ingress';
  readonly kinds = ['Ingress', 'IngressClass', 'Service', 'EndpointSlice', 'Secret'] as const;
  readonly #sink: TableSink;
  readonly #log: Logger;
  readonly #metrics: IngressMetrics | undefined;
  readonly #opts: CompileOptions;
  readonly #kernel: KernelAttachment;
  #version = 0;
  #lastRejected = '';
  #lastWarnings = '';
  #lastIgnored = new Map<Key, string>();
  /** the latest compile result (undefined before the first sync) */
  result: CompileResult | undefined;
  readonly #status: ControllerOptions['status'];
  /** status last written per Ingress key (avoids repeating writes the watch has not echoed yet) */
  readonly #written = new Map<Key, string>();

  constructor(sink: TableSink, opts: ControllerOptions = {}) {
    this.#sink = sink;
    this.#log = opts.log ?? silentLogger;
    this.#metrics = opts.metrics;
    this.#opts = { ...DEFAULT_COMPILE_OPTIONS, ...opts.compile };
    this.#kernel = new KernelAttachment({
      log: this.#log,
      minIntervalMs: opts.minIntervalMs ?? 50,
      clock: opts.clock,
      metrics: opts.metrics,
    });
    this.#status = opts.status;
  }

  /** True once the first route table is installed. */
  get ready(): boolean {
    return this.#kernel.ready;
  }

  /** Resolves when the first route table is installed. */
  whenReady(): Promise<void> {
    return this.#kernel.whenReady();
  }

  /** Runs this reconciler on the kernel over `source` (before source.start()); returns the detach function. */
  attach(source: Pick<ClusterSource, 'watch' | 'view'>): () => void {
    return this.#kernel.attach(source, this);
  }

  /** The kernel's view of this consumer (kdp status). */
  controllerStatus(): ReturnType<Controller['status']> | undefined {
    return this.#kernel.status();
  }

  stop(): void {
    this.#kernel.stop();
  }

  #publishStatus(view: StoreView, accepted: readonly Key[]): void {
    if (!this.#status) return;
    const { writer } = this.#status;
    let addresses = this.#status.addresses ?? [];
    if (addresses.length === 0 && this.#status.publishService !== undefined) {
      const svc = view.get('Service', this.#status.publishService);
      addresses = svc ? [...new Set([...svc.loadBalancerIPs, ...svc.externalIPs])].map((ip) => ({ ip })) : [];
    }
    if (addresses.length === 0) return; // nothing known to publish yet (a Service without addresses)
    const want = JSON.stringify(
      addresses.map((a) => ({ ...(a.ip ? { ip: a.ip } : {}), ...(a.hostname ? { hostname: a.hostname } : {}) })),
    );
    for (const key of accepted) {
      const ing = view.get('Ingress', key);
      if (!ing) continue;
      const have = JSON.stringify(
        ing.loadBalancer.map((a) => ({
          ...(a.ip ? { ip: a.ip } : {}),
          ...(a.hostname ? { hostname: a.hostname } : {}),
        })),
      );
      if (have === want) {
        this.#written.delete(key);
        continue;
      }
      if (this.#written.get(key) === want) continue;
      this.#written.set(key, want);
      writer.setLoadBalancer(ing.meta.namespace, ing.meta.name, addresses).catch((err: unknown) => {
        this.#written.delete(key);
        this.#log.warn(
          { ingress: key, err: (err as Error).message },
          'status update failed; retried on the next change',
        );
      });
    }
  }

  /** Compiles the whole table from the view and installs it (every reconcile is a full one: compile is pure). */
  reconcile(view: StoreView): void {
    try {
      const res = compile(
        {
          ingresses: view.list('Ingress'),
          classes: view.list('IngressClass'),
          services: { get: (k) => view.get('Service', k) },
          slices: view.list('EndpointSlice'),
          secrets: { get: (k) => view.get('Secret', k) },
        },
        { ...this.#opts, version: ++this.#version },
      );
      this.#sink.setTable(res.table);
      this.result = res;
      const rej = JSON.stringify(res.rejected);
      if (rej !== this.#lastRejected) {
        for (const r of res.rejected)
          this.#log.warn({ ingress: r.ingress, reason: r.reason }, 'Ingress rejected; the others keep serving');
        this.#lastRejected = rej;
      }
      // why an Ingress is not served, once per Ingress and reason (a class of another controller is normal)
      const ignored = new Map(res.ignored.map((r) => [r.ingress, r.reason]));
      for (const [key, reason] of ignored)
        if (this.#lastIgnored.get(key) !== reason)
          this.#log.info({ ingress: key, reason }, 'Ingress not served: not our class');
      this.#lastIgnored = ignored;
      const warn = JSON.stringify(res.warnings);
      if (warn !== this.#lastWarnings) {
        for (const w of res.warnings) this.#log.info({ warning: w }, 'route table note');
        this.#lastWarnings = warn;
      }
      this.#log.debug(
        { version: res.table.version, accepted: res.accepted.length, rejected: res.rejected.length },
        'route table installed',
      );
      this.#metrics?.lastReloadSuccessful.set(1);
      this.#metrics?.lastReloadTimestamp.set(Date.now() / 1000);
      this.#metrics?.reloads.inc({ result: 'success' });
      this.#metrics?.rejected.set(res.rejected.length);
      this.#kernel.installed();
      this.#publishStatus(view, res.accepted);
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'route table compile failed; the previous table keeps serving');
      this.#metrics?.lastReloadSuccessful.set(0);
      this.#metrics?.reloads.inc({ result: 'failure' });
      throw err;
    }
  }
}
