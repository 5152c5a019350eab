// The small status interface of `kdp status` (src/status): every component answers for itself through a
// `status(input: StatusInput)` function in its own folder's status.ts (src/proxy/status.ts, src/dns/status.ts,
// ingress/status.ts), so the status report never reaches into a component's compilers or renderers.
// Plain data; imports only the model types.
import type {
  AdminNetworkPolicy,
  BaselineAdminNetworkPolicy,
  EndpointSlice,
  Gateway,
  GatewayClass,
  GRPCRoute,
  HTTPRoute,
  Ingress,
  IngressClass,
  Namespace,
  NetworkPolicy,
  Node,
  Pod,
  ReferenceGrant,
  Service,
  TlsSecret,
} from './types.ts';

/** One consistent read of the cluster (the snapshot of src/up/snapshot.ts has this shape). */
export interface ClusterView {
  readonly services: readonly Service[];
  readonly endpointSlices: readonly EndpointSlice[];
  readonly pods: readonly Pod[];
  readonly nodes: readonly Node[];
  readonly namespaces: readonly Namespace[];
  readonly ingresses: readonly Ingress[];
  readonly ingressClasses: readonly IngressClass[];
  readonly secrets: readonly TlsSecret[];
  readonly networkPolicies: readonly NetworkPolicy[];
  readonly adminNetworkPolicies: readonly AdminNetworkPolicy[];
  readonly baselineAdminNetworkPolicies: readonly BaselineAdminNetworkPolicy[];
  // Gateway API (absent: none)
  readonly gatewayClasses?: readonly GatewayClass[];
  readonly gateways?: readonly Gateway[];
  readonly httpRoutes?: readonly HTTPRoute[];
  readonly grpcRoutes?: readonly GRPCRoute[];
  readonly referenceGrants?: readonly ReferenceGrant[];
}

/** What `kdp status` hands every component. */
export interface StatusInput {
  readonly cluster: ClusterView;
  /** the DNS zone (cluster.local) */
  readonly zone: string;
  /** the node the report is for ('' = none) */
  readonly nodeName: string;
  /** `nft list table ip kdp` of that node, when it was read (undefined: the kernel was not checked) */
  readonly nftTable?: string;
  /**
   * the node agent's kernel entries on that node, as `ip -j` / `bridge -j` print them (undefined: not checked):
   * routes of proto 199 (IPv4 and IPv6 arrays concatenated), neighbours and FDB entries of every device
   */
  readonly nodeKernel?: { readonly routes: string; readonly neighbours: string; readonly fdb: string };
}

/** A component's answer to `kdp status`: its own status shape, computed from the input alone (pure). */
export type ComponentStatus<T> = (input: StatusInput) => T;
