// Handler ports: how the watch layer hands cluster state to the proxy, DNS, ingress and node agent.
// A consumer implements the handlers it needs and never touches the client library. Every source
// (Kubernetes API, manifests directory, the test fake) calls them with the same contract:
//   - onXAdd / onXUpdate(old, cur) / onXDelete for each object, after conversion to the model;
//   - onXSynced once, after the initial list of that kind has been delivered in full;
//   - calls for one kind are serialized; no call is made after stop().
import type { IndexFn, StoreListener, StoreView } from './store.ts';
import type {
  Kind,
  ClusterObject,
  EndpointSlice,
  Ingress,
  IngressClass,
  Namespace,
  Node,
  Pod,
  Service,
  TlsSecret,
} from '../model/types.ts';

export interface ServiceHandler {
  onServiceAdd(svc: Service): void;
  onServiceUpdate(old: Service, cur: Service): void;
  onServiceDelete(svc: Service): void;
  onServicesSynced(): void;
}

export interface EndpointSliceHandler {
  onEndpointSliceAdd(slice: EndpointSlice): void;
  onEndpointSliceUpdate(old: EndpointSlice, cur: EndpointSlice): void;
  onEndpointSliceDelete(slice: EndpointSlice): void;
  onEndpointSlicesSynced(): void;
}

export interface PodHandler {
  onPodAdd(pod: Pod): void;
  onPodUpdate(old: Pod, cur: Pod): void;
  onPodDelete(pod: Pod): void;
  onPodsSynced(): void;
}

export interface NodeHandler {
  onNodeAdd(node: Node): void;
  onNodeUpdate(old: Node, cur: Node): void;
  onNodeDelete(node: Node): void;
  onNodesSynced(): void;
}

export interface NamespaceHandler {
  onNamespaceAdd(ns: Namespace): void;
  onNamespaceUpdate(old: Namespace, cur: Namespace): void;
  onNamespaceDelete(ns: Namespace): void;
  onNamespacesSynced(): void;
}

export interface IngressHandler {
  onIngressAdd(ing: Ingress): void;
  onIngressUpdate(old: Ingress, cur: Ingress): void;
  onIngressDelete(ing: Ingress): void;
  onIngressesSynced(): void;
}

export interface IngressClassHandler {
  onIngressClassAdd(cls: IngressClass): void;
  onIngressClassUpdate(old: IngressClass, cur: IngressClass): void;
  onIngressClassDelete(cls: IngressClass): void;
  onIngressClassesSynced(): void;
}

export interface SecretHandler {
  onSecretAdd(secret: TlsSecret): void;
  onSecretUpdate(old: TlsSecret, cur: TlsSecret): void;
  onSecretDelete(secret: TlsSecret): void;
  onSecretsSynced(): void;
}

/** Any subset: a source watches only the kinds some subscriber handles. */
export type Handlers = Partial<
  ServiceHandler &
    EndpointSliceHandler &
    PodHandler &
    NodeHandler &
    NamespaceHandler &
    IngressHandler &
    IngressClassHandler &
    SecretHandler
>;

/** What every cluster-state source offers. */
export interface ClusterSource {
  /** Registers handlers; returns the unsubscribe function. Subscribe before start(). */
  subscribe(handlers: Handlers): () => void;
  /** Registers an object-level listener (the controller kernel's intake); before start(). */
  watch(listener: StoreListener): () => void;
  /** The source's store, read-only: the one copy of every watched object in this process. */
  readonly view: StoreView & IndexRegistry;
  /** Starts listing and watching; resolves once every watched kind has synced. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Consumers declare the secondary indexes they read (the store shares one per name). */
export interface IndexRegistry {
  addIndex<K extends Kind>(kind: K, name: string, fn: IndexFn<K>): void;
}

type Verb = 'Add' | 'Update' | 'Delete';
const PLURAL: Record<ClusterObject['kind'], string> = {
  Service: 'Services',
  EndpointSlice: 'EndpointSlices',
  Pod: 'Pods',
  Node: 'Nodes',
  Namespace: 'Namespaces',
  Ingress: 'Ingresses',
  IngressClass: 'IngressClasses',
  Secret: 'Secrets',
};

/** Whether `h` handles `kind` at all (sources skip watching kinds nobody handles). */
export function handlesKind(h: Handlers, kind: ClusterObject['kind']): boolean {
  return (
    typeof (h as Record<string, unknown>)[`on${kind}Add`] === 'function' ||
    typeof (h as Record<string, unknown>)[`on${PLURAL[kind]}Synced`] === 'function'
  );
}

/** Calls the right handler method for an event on one object. */
export function dispatch(h: Handlers, verb: Verb, obj: ClusterObject, old?: ClusterObject): void {
  const fn = (h as Record<string, ((...a: ClusterObject[]) => void) | undefined>)[`on${obj.kind}${verb}`];
  if (!fn) return;
  if (verb === 'Update') fn.call(h, old ?? obj, obj);
  else fn.call(h, obj);
}

export function dispatchSynced(h: Handlers, kind: ClusterObject['kind']): void {
  const fn = (h as Record<string, (() => void) | undefined>)[`on${PLURAL[kind]}Synced`];
  fn?.call(h);
}
