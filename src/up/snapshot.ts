// One consistent read of a cluster-state source: start it, collect every object once synced, stop it.
// `kdp up` plans the lab from it and `kdp status` renders it.
import type {
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
import { keyOf } from '../model/types.ts';
import type { ClusterSource, Handlers } from '../k8s/handlers.ts';

export interface Snapshot {
  readonly services: readonly Service[];
  readonly endpointSlices: readonly EndpointSlice[];
  readonly pods: readonly Pod[];
  readonly nodes: readonly Node[];
  readonly namespaces: readonly Namespace[];
  readonly ingresses: readonly Ingress[];
  readonly ingressClasses: readonly IngressClass[];
  readonly secrets: readonly TlsSecret[];
}

export async function takeSnapshot(source: ClusterSource): Promise<Snapshot> {
  const maps = new Map<ClusterObject['kind'], Map<string, ClusterObject>>();
  const put = (o: ClusterObject) => {
    let m = maps.get(o.kind);
    if (!m) maps.set(o.kind, (m = new Map()));
    m.set(keyOf(o.meta), o);
  };
  const del = (o: ClusterObject) => maps.get(o.kind)?.delete(keyOf(o.meta));
  const h: Handlers = {
    onServiceAdd: put,
    onServiceUpdate: (_o, c) => put(c),
    onServiceDelete: del,
    onServicesSynced() {},
    onEndpointSliceAdd: put,
    onEndpointSliceUpdate: (_o, c) => put(c),
    onEndpointSliceDelete: del,
    onEndpointSlicesSynced() {},
    onPodAdd: put,
    onPodUpdate: (_o, c) => put(c),
    onPodDelete: del,
    onPodsSynced() {},
    onNodeAdd: put,
    onNodeUpdate: (_o, c) => put(c),
    onNodeDelete: del,
    onNodesSynced() {},
    onNamespaceAdd: put,
    onNamespaceUpdate: (_o, c) => put(c),
    onNamespaceDelete: del,
    onNamespacesSynced() {},
    onIngressAdd: put,
    onIngressUpdate: (_o, c) => put(c),
    onIngressDelete: del,
    onIngressesSynced() {},
    onIngressClassAdd: put,
    onIngressClassUpdate: (_o, c) => put(c),
    onIngressClassDelete: del,
    onIngressClassesSynced() {},
    onSecretAdd: put,
    onSecretUpdate: (_o, c) => put(c),
    onSecretDelete: del,
    onSecretsSynced() {},
  };
  const unsubscribe = source.subscribe(h);
  try {
    await source.start();
  } finally {
    unsubscribe();
    await source.stop();
  }
  const list = <T extends ClusterObject>(k: T['kind']) =>
    [...(maps.get(k)?.values() ?? [])].sort((a, b) => keyOf(a.meta).localeCompare(keyOf(b.meta))) as unknown as T[];
  return {
    services: list<Service>('Service'),
    endpointSlices: list<EndpointSlice>('EndpointSlice'),
    pods: list<Pod>('Pod'),
    nodes: list<Node>('Node'),
    namespaces: list<Namespace>('Namespace'),
    ingresses: list<Ingress>('Ingress'),
    ingressClasses: list<IngressClass>('IngressClass'),
    secrets: list<TlsSecret>('Secret'),
  };
}
