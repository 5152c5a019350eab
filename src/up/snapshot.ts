// One consistent read of a cluster-state source: start it, collect every object once synced, stop it.
// `kdp up` plans the lab from it and `kdp status` renders it.
import type { Kind, ObjectOf } from '../model/types.ts';
import { KINDS, keyOf } from '../model/types.ts';
import type { ClusterSource } from '../k8s/source.ts';
import type { ClusterView } from '../model/status.ts';

/** One consistent read of the cluster: the model's ClusterView (the status interface reads the same shape). */
export type Snapshot = ClusterView;

export async function takeSnapshot(source: ClusterSource): Promise<Snapshot> {
  // the source's own store is the copy read here; the listener only tells the source to watch every kind
  const unwatch = source.watch({ kinds: KINDS, changed() {}, synced() {} });
  try {
    await source.start();
  } catch (err) {
    await source.stop();
    throw err;
  } finally {
    unwatch();
  }
  const view = source.view;
  const list = <K extends Kind>(k: K): ObjectOf<K>[] =>
    [...view.list(k)].sort((a, b) => keyOf(a.meta).localeCompare(keyOf(b.meta)));
  const snap: Snapshot = {
    services: list('Service'),
    endpointSlices: list('EndpointSlice'),
    pods: list('Pod'),
    nodes: list('Node'),
    namespaces: list('Namespace'),
    ingresses: list('Ingress'),
    ingressClasses: list('IngressClass'),
    secrets: list('Secret'),
    networkPolicies: list('NetworkPolicy'),
    adminNetworkPolicies: list('AdminNetworkPolicy'),
    baselineAdminNetworkPolicies: list('BaselineAdminNetworkPolicy'),
    gatewayClasses: list('GatewayClass'),
    gateways: list('Gateway'),
    httpRoutes: list('HTTPRoute'),
    grpcRoutes: list('GRPCRoute'),
    referenceGrants: list('ReferenceGrant'),
  };
  await source.stop();
  return snap;
}
