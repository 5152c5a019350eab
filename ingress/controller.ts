// The controller: receives cluster state through the handler ports, recompiles the route table when
// something relevant changes (coalesced, bounded frequency) and installs it in the server atomically.
// Nothing is served from a half-listed cluster: the first table is built after every kind has synced.
import type { ClusterSource, Handlers } from '../src/k8s/handlers.ts';
import type { EndpointSlice, Ingress, IngressClass, Key, Service, TlsSecret } from '../src/model/types.ts';
import { keyOf } from '../src/model/types.ts';
import type { Logger } from '../src/common/log.ts';
import { silentLogger } from '../src/common/log.ts';
import { compile, DEFAULT_COMPILE_OPTIONS } from './compile.ts';
import type { CompileOptions } from './compile.ts';
import type { IngressMetrics } from './metrics.ts';
import type { CompileResult, RouteTable } from './types.ts';

export interface TableSink {
  setTable(table: RouteTable): void;
}

/** Writes Ingress status.loadBalancer (the Kubernetes adapter implements it; manifests mode has none). */
export interface IngressStatusWriter {
  setLoadBalancer(namespace: string, name: string, ingress: readonly LoadBalancerAddress[]): Promise<void>;
}

export interface LoadBalancerAddress {
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
}

type SyncKind = 'Ingress' | 'IngressClass' | 'Service' | 'EndpointSlice' | 'Secret';

export class IngressController {
  readonly #sink: TableSink;
  readonly #log: Logger;
  readonly #metrics: IngressMetrics | undefined;
  readonly #opts: CompileOptions;
  readonly #minInterval: number;
  readonly #ingresses = new Map<Key, Ingress>();
  readonly #classes = new Map<Key, IngressClass>();
  readonly #services = new Map<Key, Service>();
  readonly #slices = new Map<Key, EndpointSlice>();
  readonly #secrets = new Map<Key, TlsSecret>();
  readonly #synced = new Set<SyncKind>();
  #timer: NodeJS.Timeout | undefined;
  #last = 0;
  #version = 0;
  #lastRejected = '';
  #lastWarnings = '';
  #stopped = false;
  /** the latest compile result (undefined before the first sync) */
  result: CompileResult | undefined;
  readonly #waiters: (() => void)[] = [];
  readonly #status: ControllerOptions['status'];
  /** status last written per Ingress key (avoids repeating writes the watch has not echoed yet) */
  readonly #written = new Map<Key, string>();

  constructor(sink: TableSink, opts: ControllerOptions = {}) {
    this.#sink = sink;
    this.#log = opts.log ?? silentLogger;
    this.#metrics = opts.metrics;
    this.#opts = { ...DEFAULT_COMPILE_OPTIONS, ...opts.compile };
    this.#minInterval = opts.minIntervalMs ?? 50;
    this.#status = opts.status;
  }

  /** True once the first route table is installed. */
  get ready(): boolean {
    return this.result !== undefined;
  }

  /** Resolves when the first route table is installed. */
  whenReady(): Promise<void> {
    return this.ready ? Promise.resolve() : new Promise((r) => this.#waiters.push(r));
  }

  /** Subscribes to `source` (before source.start()). */
  attach(source: ClusterSource): () => void {
    return source.subscribe(this.handlers());
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  handlers(): Handlers {
    const put = <T extends { meta: { namespace: string; name: string } }>(m: Map<Key, T>, o: T) => {
      m.set(keyOf(o.meta), o);
      this.#schedule();
    };
    const del = <T extends { meta: { namespace: string; name: string } }>(m: Map<Key, T>, o: T) => {
      m.delete(keyOf(o.meta));
      this.#schedule();
    };
    const synced = (k: SyncKind) => {
      this.#synced.add(k);
      this.#schedule();
    };
    return {
      onIngressAdd: (o) => put(this.#ingresses, o),
      onIngressUpdate: (_, o) => put(this.#ingresses, o),
      onIngressDelete: (o) => del(this.#ingresses, o),
      onIngressesSynced: () => synced('Ingress'),
      onIngressClassAdd: (o) => put(this.#classes, o),
      onIngressClassUpdate: (_, o) => put(this.#classes, o),
      onIngressClassDelete: (o) => del(this.#classes, o),
      onIngressClassesSynced: () => synced('IngressClass'),
      onServiceAdd: (o) => put(this.#services, o),
      onServiceUpdate: (_, o) => put(this.#services, o),
      onServiceDelete: (o) => del(this.#services, o),
      onServicesSynced: () => synced('Service'),
      onEndpointSliceAdd: (o) => put(this.#slices, o),
      onEndpointSliceUpdate: (_, o) => put(this.#slices, o),
      onEndpointSliceDelete: (o) => del(this.#slices, o),
      onEndpointSlicesSynced: () => synced('EndpointSlice'),
      onSecretAdd: (o) => put(this.#secrets, o),
      onSecretUpdate: (_, o) => put(this.#secrets, o),
      onSecretDelete: (o) => del(this.#secrets, o),
      onSecretsSynced: () => synced('Secret'),
    };
  }

  #schedule(): void {
    if (this.#stopped || this.#synced.size < 5 || this.#timer) return;
    const wait = Math.max(0, this.#last + this.#minInterval - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.sync();
    }, wait);
  }

  #publishStatus(accepted: readonly Key[]): void {
    if (!this.#status) return;
    const { writer } = this.#status;
    let addresses = this.#status.addresses ?? [];
    if (addresses.length === 0 && this.#status.publishService !== undefined) {
      const svc = this.#services.get(this.#status.publishService);
      addresses = svc ? [...new Set([...svc.loadBalancerIPs, ...svc.externalIPs])].map((ip) => ({ ip })) : [];
    }
    if (addresses.length === 0) return; // nothing known to publish yet (a Service without addresses)
    const want = JSON.stringify(
      addresses.map((a) => ({ ...(a.ip ? { ip: a.ip } : {}), ...(a.hostname ? { hostname: a.hostname } : {}) })),
    );
    for (const key of accepted) {
      const ing = this.#ingresses.get(key);
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

  /** Compiles and installs now (normally called by the scheduler). */
  sync(): CompileResult | undefined {
    this.#last = Date.now();
    try {
      const res = compile(
        {
          ingresses: this.#ingresses.values(),
          classes: this.#classes.values(),
          services: this.#services,
          slices: this.#slices.values(),
          secrets: this.#secrets,
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
      for (const w of this.#waiters.splice(0)) w();
      this.#publishStatus(res.accepted);
      return res;
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'route table compile failed; the previous table keeps serving');
      this.#metrics?.lastReloadSuccessful.set(0);
      this.#metrics?.reloads.inc({ result: 'failure' });
      return undefined;
    }
  }
}
