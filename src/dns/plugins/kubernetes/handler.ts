// The kubernetes plugin's state: it implements the handler ports for the kinds DNS needs, keeps the
// latest objects, and rebuilds the pure index (records.ts) lazily after a change. Before every watched
// kind has synced, lookups give SERVFAIL (never NXDOMAIN).
import type {
  EndpointSliceHandler,
  NamespaceHandler,
  PodHandler,
  ServiceHandler,
  ClusterSource,
  Handlers,
} from '../../../k8s/handlers.ts';
import type { EndpointSlice, Namespace, Pod, Service } from '../../../model/types.ts';
import { keyOf } from '../../../model/types.ts';
import { buildIndex, lookup } from './records.ts';
import type { ClusterIndex, KubernetesConfig, LookupResult, Query } from './records.ts';

type Kinds = 'services' | 'slices' | 'namespaces' | 'pods';

export class KubernetesRecords implements ServiceHandler, EndpointSliceHandler, NamespaceHandler, Partial<PodHandler> {
  #config: KubernetesConfig;
  readonly #services = new Map<string, Service>();
  readonly #slices = new Map<string, EndpointSlice>();
  readonly #namespaces = new Map<string, Namespace>();
  readonly #pods = new Map<string, Pod>();
  readonly #synced = new Set<Kinds>();
  readonly #now: () => number;
  #index: ClusterIndex | undefined;
  #serial: number;
  #generation = 0;
  readonly #listeners = new Set<() => void>();

  constructor(config: KubernetesConfig, opts: { now?: () => number } = {}) {
    this.#config = config;
    this.#now = opts.now ?? Date.now;
    this.#serial = Math.floor(this.#now() / 1000);
  }

  /** Subscribes to a source: pods only when `pods verified` needs them. */
  subscribeTo(source: ClusterSource): () => void {
    const h: Handlers = {
      onServiceAdd: (s) => this.onServiceAdd(s),
      onServiceUpdate: (o, s) => this.onServiceUpdate(o, s),
      onServiceDelete: (s) => this.onServiceDelete(s),
      onServicesSynced: () => this.onServicesSynced(),
      onEndpointSliceAdd: (s) => this.onEndpointSliceAdd(s),
      onEndpointSliceUpdate: (o, s) => this.onEndpointSliceUpdate(o, s),
      onEndpointSliceDelete: (s) => this.onEndpointSliceDelete(s),
      onEndpointSlicesSynced: () => this.onEndpointSlicesSynced(),
      onNamespaceAdd: (n) => this.onNamespaceAdd(n),
      onNamespaceUpdate: (o, n) => this.onNamespaceUpdate(o, n),
      onNamespaceDelete: (n) => this.onNamespaceDelete(n),
      onNamespacesSynced: () => this.onNamespacesSynced(),
    };
    if (this.config.pods === 'verified') {
      Object.assign(h, {
        onPodAdd: (p: Pod) => this.onPodAdd(p),
        onPodUpdate: (o: Pod, p: Pod) => this.onPodUpdate(o, p),
        onPodDelete: (p: Pod) => this.onPodDelete(p),
        onPodsSynced: () => this.onPodsSynced(),
      });
    } else {
      this.#synced.add('pods');
    }
    return source.subscribe(h);
  }

  get config(): KubernetesConfig {
    return this.#config;
  }

  /** Whether `next` can replace the configuration in place (pods are only watched for `pods verified`). */
  canReconfigure(next: KubernetesConfig): boolean {
    return next.pods !== 'verified' || this.#config.pods === 'verified';
  }

  /** A new configuration (Corefile reload), same cluster state: the index is rebuilt, cached answers dropped. */
  reconfigure(next: KubernetesConfig): void {
    this.#config = next;
    this.#changed();
  }

  /** A change counter: answers computed at one generation stay valid until it moves. */
  get generation(): number {
    return this.#generation;
  }
  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  get synced(): boolean {
    return this.#synced.size === 4;
  }
  /** Marks everything synced (the source's start() resolved: every watched kind was listed). */
  markSynced(): void {
    for (const k of ['services', 'slices', 'namespaces', 'pods'] as const) this.#synced.add(k);
    this.#changed();
  }

  lookup(q: Query): LookupResult {
    if (!this.#index)
      this.#index = buildIndex(
        { services: this.#services, slices: this.#slices, pods: this.#pods, namespaces: this.#namespaces },
        this.config,
        this.#serial,
      );
    return lookup(this.#index, q, this.config, this.synced);
  }

  #changed(): void {
    this.#index = undefined;
    this.#generation++;
    this.#serial = Math.max(this.#serial, Math.floor(this.#now() / 1000));
    for (const fn of this.#listeners) fn();
  }
  #sync(kind: Kinds): void {
    this.#synced.add(kind);
    this.#changed();
  }

  onServiceAdd(s: Service): void {
    this.#services.set(keyOf(s.meta), s);
    this.#changed();
  }
  onServiceUpdate(_o: Service, s: Service): void {
    this.onServiceAdd(s);
  }
  onServiceDelete(s: Service): void {
    this.#services.delete(keyOf(s.meta));
    this.#changed();
  }
  onServicesSynced(): void {
    this.#sync('services');
  }
  onEndpointSliceAdd(s: EndpointSlice): void {
    this.#slices.set(keyOf(s.meta), s);
    this.#changed();
  }
  onEndpointSliceUpdate(_o: EndpointSlice, s: EndpointSlice): void {
    this.onEndpointSliceAdd(s);
  }
  onEndpointSliceDelete(s: EndpointSlice): void {
    this.#slices.delete(keyOf(s.meta));
    this.#changed();
  }
  onEndpointSlicesSynced(): void {
    this.#sync('slices');
  }
  onNamespaceAdd(n: Namespace): void {
    this.#namespaces.set(n.meta.name, n);
    this.#changed();
  }
  onNamespaceUpdate(_o: Namespace, n: Namespace): void {
    this.onNamespaceAdd(n);
  }
  onNamespaceDelete(n: Namespace): void {
    this.#namespaces.delete(n.meta.name);
    this.#changed();
  }
  onNamespacesSynced(): void {
    this.#sync('namespaces');
  }
  onPodAdd(p: Pod): void {
    this.#pods.set(keyOf(p.meta), p);
    this.#changed();
  }
  onPodUpdate(_o: Pod, p: Pod): void {
    this.onPodAdd(p);
  }
  onPodDelete(p: Pod): void {
    this.#pods.delete(keyOf(p.meta));
    this.#changed();
  }
  onPodsSynced(): void {
    this.#sync('pods');
  }
}
