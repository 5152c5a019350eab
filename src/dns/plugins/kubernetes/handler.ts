// The kubernetes plugin's state: a reconciler on the controller kernel reading Services, EndpointSlices,
// Namespaces (and Pods for `pods verified`) from the source's store. Each reconcile builds the pure index
// (records.ts) from the store and swaps it in; the kernel gates the first one on every watched kind's
// initial sync, so lookups give SERVFAIL (never NXDOMAIN) until then, and retries a failed build with
// backoff while the previous index keeps answering.
import { Controller } from '../../../k8s/controller.ts';
import type { Reconciler } from '../../../k8s/controller.ts';
import type { ClusterSource } from '../../../k8s/source.ts';
import type { StoreView } from '../../../k8s/store.ts';
import type { Kind } from '../../../model/types.ts';
import type { RunnerClock } from '../../../common/runner.ts';
import type { Logger } from '../../../common/log.ts';
import { silentLogger } from '../../../common/log.ts';
import type { Registry } from 'prom-client';
import { autoPathSearch, buildIndex, lookup } from './records.ts';
import type { ClusterIndex, KubernetesConfig, LookupResult, Query } from './records.ts';

interface KubernetesRecordsOptions {
  readonly now?: () => number;
  readonly log?: Logger;
  readonly clock?: RunnerClock;
  readonly registry?: Registry;
}

export class KubernetesRecords implements Reconciler {
  readonly name = 'dns';
  readonly kinds: readonly Kind[];
  #config: KubernetesConfig;
  readonly #opts: KubernetesRecordsOptions;
  readonly #now: () => number;
  #controller: Controller | undefined;
  #index: ClusterIndex | undefined;
  #serial: number;
  #generation = 0;
  readonly #listeners = new Set<() => void>();

  constructor(config: KubernetesConfig, opts: KubernetesRecordsOptions = {}) {
    this.#config = config;
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#serial = Math.floor(this.#now() / 1000);
    // pods are only watched for `pods verified`
    this.kinds = ['Service', 'EndpointSlice', 'Namespace', ...(config.pods === 'verified' ? (['Pod'] as const) : [])];
  }

  /** Runs this reconciler on the kernel over `source` (before source.start()); returns the detach function. */
  attach(source: Pick<ClusterSource, 'watch' | 'view'>): () => void {
    const c = new Controller(source, this, {
      log: this.#opts.log ?? silentLogger,
      retryMinMs: 1000,
      retryMaxMs: 30_000,
      ...(this.#opts.clock ? { clock: this.#opts.clock } : {}),
      ...(this.#opts.registry ? { registry: this.#opts.registry } : {}),
    });
    this.#controller = c;
    return () => void c.stop();
  }

  /** Resolves once every watched kind has synced and the index is built from it. */
  async settled(): Promise<void> {
    await this.#controller?.settled();
  }

  /** The kernel's view of this consumer (kdp status). */
  controllerStatus(): ReturnType<Controller['status']> | undefined {
    return this.#controller?.status();
  }

  get config(): KubernetesConfig {
    return this.#config;
  }

  /** Whether `next` can replace the configuration in place (pods are only watched for `pods verified`). */
  canReconfigure(next: KubernetesConfig): boolean {
    return next.pods !== 'verified' || this.#config.pods === 'verified';
  }

  /** A new configuration (Corefile reload), same cluster state: cached answers dropped, the index rebuilt. */
  reconfigure(next: KubernetesConfig): void {
    this.#config = next;
    this.#bump();
    this.#controller?.requestFull();
  }

  /** A change counter: answers computed at one generation stay valid until it moves. */
  get generation(): number {
    return this.#generation;
  }
  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** The first index is built: every watched kind has synced. */
  get synced(): boolean {
    return this.#index !== undefined;
  }

  /** Builds the whole index from the store (pure) and swaps it in. */
  reconcile(view: StoreView): void {
    const serial = Math.max(this.#serial, Math.floor(this.#now() / 1000));
    this.#index = buildIndex(
      {
        services: view.list('Service'),
        slices: view.list('EndpointSlice'),
        pods: this.#config.pods === 'verified' ? view.list('Pod') : [],
        namespaces: view.list('Namespace'),
      },
      this.config,
      serial,
    );
    this.#serial = serial;
    this.#bump();
  }

  lookup(q: Query): LookupResult {
    if (!this.#index) return lookup(EMPTY, q, this.config, false);
    return lookup(this.#index, q, this.config, true);
  }

  /**
   * The search path autopath walks for `lname` asked by `client`, or undefined (see autoPathSearch);
   * `hostSearch`: the search domains of the server's own resolv.conf.
   */
  autoPath(lname: string, client: string, hostSearch: readonly string[] = []): string[] | undefined {
    if (!this.#index) return undefined;
    return autoPathSearch(this.#index, lname, client, this.config, hostSearch);
  }

  stop(): void {
    void this.#controller?.stop();
  }

  #bump(): void {
    this.#generation++;
    for (const fn of this.#listeners) fn();
  }
}

const EMPTY: ClusterIndex = buildIndex(
  { services: [], slices: [], pods: [], namespaces: [] },
  { endpointPodNames: false },
  0,
);
