// The data plane's view of cluster state: small readonly types converted from API objects at the edge
// (src/k8s/convert.ts). Nothing outside src/k8s sees a raw API object. This module imports nothing.
//
// Defaults are applied by the converter, so consumers never re-derive them (sessionAffinity 'None',
// timeout 10800 s, traffic policies 'Cluster', endpoint conditions per the EndpointSlice API rules).

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type IPFamily = 'IPv4' | 'IPv6';
/** `namespace/name` (cluster-scoped objects: just `name`) */
export type Key = string;

export interface ObjectMeta {
  readonly namespace: string; // '' for cluster-scoped kinds (Node, Namespace, IngressClass)
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** set when the object is being deleted (graceful termination) */
  readonly deletionTimestamp?: string;
}

export function keyOf(meta: Pick<ObjectMeta, 'namespace' | 'name'>): Key {
  return meta.namespace === '' ? meta.name : `${meta.namespace}/${meta.name}`;
}

// ---------------------------------------------------------------- Service
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';

export interface ServicePort {
  readonly name: string; // '' when the service has one unnamed port
  readonly protocol: Protocol;
  readonly port: number;
  /** number, or the name of a container port */
  readonly targetPort: number | string;
  readonly nodePort?: number;
  readonly appProtocol?: string;
}

export interface Service {
  readonly kind: 'Service';
  readonly meta: ObjectMeta;
  readonly type: ServiceType;
  /** spec.clusterIPs (or clusterIP); empty for headless and ExternalName */
  readonly clusterIPs: readonly string[];
  /** clusterIP: None */
  readonly headless: boolean;
  readonly ipFamilies: readonly IPFamily[];
  readonly ports: readonly ServicePort[];
  /** undefined: no selector (endpoints are managed by hand) */
  readonly selector?: Readonly<Record<string, string>>;
  readonly externalName?: string;
  readonly externalIPs: readonly string[];
  /** status.loadBalancer.ingress[].ip */
  readonly loadBalancerIPs: readonly string[];
  readonly loadBalancerSourceRanges: readonly string[];
  readonly sessionAffinity: 'None' | 'ClientIP';
  readonly sessionAffinityTimeoutSeconds: number;
  readonly externalTrafficPolicy: 'Cluster' | 'Local';
  readonly internalTrafficPolicy: 'Cluster' | 'Local';
  readonly healthCheckNodePort?: number;
  readonly publishNotReadyAddresses: boolean;
  /** spec.trafficDistribution as written (PreferClose, PreferSameZone, PreferSameNode; others are ignored) */
  readonly trafficDistribution?: string;
}

// ---------------------------------------------------------------- EndpointSlice
interface EndpointConditions {
  /** nil ready counts as true (EndpointSlice API) */
  readonly ready: boolean;
  /** nil serving takes the value of ready */
  readonly serving: boolean;
  readonly terminating: boolean;
}

export interface TargetRef {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
}

export interface Endpoint {
  readonly addresses: readonly string[];
  readonly conditions: EndpointConditions;
  readonly hostname?: string;
  readonly nodeName?: string;
  readonly zone?: string;
  readonly targetRef?: TargetRef;
  /** topology-aware routing hints (set by the EndpointSlice controller) */
  readonly hints?: EndpointHints;
}

// topology-aware routing (KEP-2433 hints, KEP-3015 PreferSameNode): what endpoints[].hints carries
export interface EndpointHints {
  /** hints.forZones[].name */
  readonly forZones: readonly string[];
  /** hints.forNodes[].name */
  readonly forNodes: readonly string[];
}

/** The Node label that names its zone (kube-proxy and the EndpointSlice controller read it). */
export const LABEL_TOPOLOGY_ZONE = 'topology.kubernetes.io/zone';

export interface EndpointPort {
  readonly name: string; // '' for an unnamed port
  readonly port: number;
  readonly protocol: Protocol;
  readonly appProtocol?: string;
}

export interface EndpointSlice {
  readonly kind: 'EndpointSlice';
  readonly meta: ObjectMeta;
  /** the kubernetes.io/service-name label: the Service this slice belongs to (same namespace) */
  readonly serviceName: string;
  readonly addressType: 'IPv4' | 'IPv6' | 'FQDN';
  readonly endpoints: readonly Endpoint[];
  readonly ports: readonly EndpointPort[];
}

// ---------------------------------------------------------------- Pod, Node, Namespace
export interface ContainerPort {
  readonly name?: string;
  readonly containerPort: number;
  readonly protocol: Protocol;
  readonly hostPort?: number;
}

export interface Pod {
  readonly kind: 'Pod';
  readonly meta: ObjectMeta;
  readonly nodeName?: string;
  readonly hostNetwork: boolean;
  readonly hostname?: string;
  readonly subdomain?: string;
  readonly containerPorts: readonly ContainerPort[];
  readonly phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  /** status.podIPs (or podIP) */
  readonly podIPs: readonly string[];
  readonly hostIP?: string;
  /** the Ready condition is True */
  readonly ready: boolean;
}

export interface NodeAddress {
  readonly type: string; // InternalIP, ExternalIP, Hostname, InternalDNS, ExternalDNS
  readonly address: string;
}

export interface Node {
  readonly kind: 'Node';
  readonly meta: ObjectMeta;
  readonly podCIDRs: readonly string[];
  readonly addresses: readonly NodeAddress[];
  readonly ready: boolean;
}

export interface Namespace {
  readonly kind: 'Namespace';
  readonly meta: ObjectMeta;
}

// ---------------------------------------------------------------- Ingress, IngressClass, TLS Secret
export type PathType = 'Exact' | 'Prefix' | 'ImplementationSpecific';

interface IngressServiceBackend {
  readonly name: string;
  /** exactly one of number or name */
  readonly port: { readonly number?: number; readonly name?: string };
}

export interface IngressBackend {
  readonly service?: IngressServiceBackend;
  readonly resource?: { readonly apiGroup?: string; readonly kind: string; readonly name: string };
}

export interface IngressPath {
  readonly path: string;
  readonly pathType: PathType;
  readonly backend: IngressBackend;
}

export interface IngressRule {
  /** undefined: the rule applies to every host */
  readonly host?: string;
  readonly paths: readonly IngressPath[];
}

export interface IngressTLS {
  readonly hosts: readonly string[];
  readonly secretName?: string;
}

export interface Ingress {
  readonly kind: 'Ingress';
  readonly meta: ObjectMeta;
  readonly ingressClassName?: string;
  readonly defaultBackend?: IngressBackend;
  readonly rules: readonly IngressRule[];
  readonly tls: readonly IngressTLS[];
  /** status.loadBalancer.ingress */
  readonly loadBalancer: readonly { readonly ip?: string; readonly hostname?: string }[];
}

export interface IngressClass {
  readonly kind: 'IngressClass';
  readonly meta: ObjectMeta;
  readonly controller: string;
  /** annotation ingressclass.kubernetes.io/is-default-class: "true" */
  readonly isDefault: boolean;
}

/** A Secret of type kubernetes.io/tls (other Secrets are never converted). */
export interface TlsSecret {
  readonly kind: 'Secret';
  readonly meta: ObjectMeta;
  readonly certPem: string;
  readonly keyPem: string;
}

// ---------------------------------------------------------------- NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy
// networking.k8s.io/v1 NetworkPolicy and policy.networking.k8s.io/v1alpha1 (B)ANP, defaults applied (policyTypes,
// protocol TCP). Semantics and their compiler: src/policy, docs/policy.md.
export interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  readonly values: readonly string[];
}
/** matchLabels AND matchExpressions; both empty selects everything */
export interface LabelSelector {
  readonly matchLabels: Readonly<Record<string, string>>;
  readonly matchExpressions: readonly LabelSelectorRequirement[];
}
export interface IPBlock {
  readonly cidr: string;
  readonly except: readonly string[];
}
/** port undefined: every port of the protocol; a string names a container port (per destination pod) */
export interface PolicyPort {
  readonly protocol: Protocol;
  readonly port?: number | string;
  /** a range port..endPort (port is a number) */
  readonly endPort?: number;
}
/** podSelector and/or namespaceSelector (both: AND; only podSelector: the policy's namespace), or ipBlock */
export interface NetworkPolicyPeer {
  readonly podSelector?: LabelSelector;
  readonly namespaceSelector?: LabelSelector;
  readonly ipBlock?: IPBlock;
}
/** one ingress (from) or egress (to) rule; empty peers: every peer; empty ports: every port */
export interface NetworkPolicyRule {
  readonly peers: readonly NetworkPolicyPeer[];
  readonly ports: readonly PolicyPort[];
}
export interface NetworkPolicy {
  readonly kind: 'NetworkPolicy';
  readonly meta: ObjectMeta;
  readonly podSelector: LabelSelector;
  /** defaulted: Ingress always, Egress when egress rules exist */
  readonly policyTypes: readonly ('Ingress' | 'Egress')[];
  readonly ingress: readonly NetworkPolicyRule[];
  readonly egress: readonly NetworkPolicyRule[];
}
/** subject or pod peer of an admin policy: pods (podSelector, undefined = all) in the selected namespaces */
export interface AdminPodSelector {
  readonly namespaceSelector: LabelSelector;
  readonly podSelector?: LabelSelector;
}
/** exactly one of: pods (namespaces or pods), nodes (egress), networks (egress, CIDRs) */
export interface AdminPolicyPeer {
  readonly pods?: AdminPodSelector;
  readonly nodes?: LabelSelector;
  readonly networks?: readonly string[];
}
/** ANP ports: portNumber / portRange ({protocol, port, endPort}) or namedPort ({protocol: undefined, port: name}) */
export type AdminPolicyPort =
  PolicyPort | { readonly protocol?: undefined; readonly port: string; readonly endPort?: undefined };
export interface AdminPolicyRule {
  readonly name: string;
  /** BANP rules are Allow or Deny */
  readonly action: 'Allow' | 'Deny' | 'Pass';
  readonly peers: readonly AdminPolicyPeer[];
  /** undefined: every port and protocol */
  readonly ports?: readonly AdminPolicyPort[];
}
export interface AdminNetworkPolicy {
  readonly kind: 'AdminNetworkPolicy';
  readonly meta: ObjectMeta;
  /** 0-1000, lower first */
  readonly priority: number;
  readonly subject: AdminPodSelector;
  readonly ingress: readonly AdminPolicyRule[];
  readonly egress: readonly AdminPolicyRule[];
}
/** the singleton named "default" */
export interface BaselineAdminNetworkPolicy {
  readonly kind: 'BaselineAdminNetworkPolicy';
  readonly meta: ObjectMeta;
  readonly subject: AdminPodSelector;
  readonly ingress: readonly AdminPolicyRule[];
  readonly egress: readonly AdminPolicyRule[];
}

// ---------------------------------------------------------------- Gateway API (gateway.networking.k8s.io)
// Converted leniently: what the CRD schema rejects is rejected here; what the spec answers with a status
// condition (unknown filter or backend kind, bad regex, missing refs) is kept for the compiler to judge.
/** A reference as written (group '' is the core group; namespace undefined: the referrer's own). */
export interface GwRef {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
}

export interface GatewayClass {
  readonly kind: 'GatewayClass';
  readonly meta: ObjectMeta;
  readonly generation: number;
  readonly controllerName: string;
}

export interface GwListener {
  readonly name: string;
  readonly hostname?: string;
  readonly port: number;
  /** HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed custom value (only HTTP and HTTPS are served) */
  readonly protocol: string;
  readonly tls?: { readonly mode: 'Terminate' | 'Passthrough'; readonly certificateRefs: readonly GwRef[] };
  readonly allowedRoutes: {
    readonly namespacesFrom: 'Same' | 'All' | 'Selector';
    readonly selector?: LabelSelector;
    /** empty: the kinds the protocol supports */
    readonly kinds: readonly { readonly group: string; readonly kind: string }[];
  };
}

export interface Gateway {
  readonly kind: 'Gateway';
  readonly meta: ObjectMeta;
  readonly generation: number;
  readonly gatewayClassName: string;
  readonly listeners: readonly GwListener[];
  /** spec.addresses (type defaults to IPAddress) */
  readonly addresses: readonly { readonly type: string; readonly value: string }[];
  /** spec.infrastructure.parametersRef (kdp supports no parameters kind: a Gateway naming one is not accepted) */
  readonly parametersRef?: { readonly group: string; readonly kind: string; readonly name: string };
}

export interface GwParentRef extends GwRef {
  readonly sectionName?: string;
  readonly port?: number;
}

export interface GwHeaderModifier {
  readonly set: readonly { readonly name: string; readonly value: string }[];
  readonly add: readonly { readonly name: string; readonly value: string }[];
  readonly remove: readonly string[];
}

/** One HTTPRoute/GRPCRoute filter; only the field named by `type` is meaningful. */
export interface GwFilter {
  readonly type: string;
  readonly requestHeaderModifier?: GwHeaderModifier;
  readonly responseHeaderModifier?: GwHeaderModifier;
  readonly requestRedirect?: {
    readonly scheme?: string;
    readonly hostname?: string;
    readonly path?: GwPathModifier;
    readonly port?: number;
    readonly statusCode: number;
  };
  readonly urlRewrite?: { readonly hostname?: string; readonly path?: GwPathModifier };
  readonly requestMirror?: {
    readonly backendRef: GwRef & { readonly port?: number };
    readonly percent?: number;
    readonly fraction?: { readonly numerator: number; readonly denominator: number };
  };
  readonly extensionRef?: GwRef;
}

export interface GwPathModifier {
  readonly type: string; // ReplaceFullPath | ReplacePrefixMatch
  readonly replaceFullPath?: string;
  readonly replacePrefixMatch?: string;
}

export interface GwBackendRef extends GwRef {
  readonly port?: number;
  /** default 1 */
  readonly weight: number;
  readonly filters: readonly GwFilter[];
}

export interface GwValueMatch {
  /** Exact (default) or RegularExpression */
  readonly type: string;
  readonly name: string;
  readonly value: string;
}

export interface HttpRouteMatch {
  /** default PathPrefix `/` */
  readonly path: { readonly type: string; readonly value: string };
  readonly headers: readonly GwValueMatch[];
  readonly queryParams: readonly GwValueMatch[];
  readonly method?: string;
}

export interface HttpRouteRule {
  readonly name?: string;
  /** never empty: the default match is PathPrefix `/` */
  readonly matches: readonly HttpRouteMatch[];
  readonly filters: readonly GwFilter[];
  readonly backendRefs: readonly GwBackendRef[];
  /** Gateway API durations as written (`10s`, `500ms`, `1h2m`) */
  readonly timeouts?: { readonly request?: string; readonly backendRequest?: string };
}

export interface HTTPRoute {
  readonly kind: 'HTTPRoute';
  readonly meta: ObjectMeta;
  readonly generation: number;
  /** metadata.creationTimestamp ('' when absent): the first tie-breaker between routes */
  readonly created: string;
  readonly parentRefs: readonly GwParentRef[];
  readonly hostnames: readonly string[];
  readonly rules: readonly HttpRouteRule[];
}

export interface GrpcRouteMatch {
  /** method: type Exact (default) or RegularExpression; service and method optional */
  readonly method?: { readonly type: string; readonly service?: string; readonly method?: string };
  readonly headers: readonly GwValueMatch[];
}

export interface GrpcRouteRule {
  readonly name?: string;
  /** empty: every request */
  readonly matches: readonly GrpcRouteMatch[];
  readonly filters: readonly GwFilter[];
  readonly backendRefs: readonly GwBackendRef[];
}

export interface GRPCRoute {
  readonly kind: 'GRPCRoute';
  readonly meta: ObjectMeta;
  readonly generation: number;
  readonly created: string;
  readonly parentRefs: readonly GwParentRef[];
  readonly hostnames: readonly string[];
  readonly rules: readonly GrpcRouteRule[];
}

export interface ReferenceGrant {
  readonly kind: 'ReferenceGrant';
  readonly meta: ObjectMeta;
  readonly from: readonly { readonly group: string; readonly kind: string; readonly namespace: string }[];
  readonly to: readonly { readonly group: string; readonly kind: string; readonly name?: string }[];
}

export type ClusterObject =
  | Service
  | EndpointSlice
  | Pod
  | Node
  | Namespace
  | Ingress
  | IngressClass
  | TlsSecret
  | NetworkPolicy
  | AdminNetworkPolicy
  | BaselineAdminNetworkPolicy
  // Gateway API
  | GatewayClass
  | Gateway
  | HTTPRoute
  | GRPCRoute
  | ReferenceGrant;
export type Kind = ClusterObject['kind'];
export const KINDS: readonly Kind[] = [
  'Service',
  'EndpointSlice',
  'Pod',
  'Node',
  'Namespace',
  'Ingress',
  'IngressClass',
  'Secret',
  'NetworkPolicy',
  'AdminNetworkPolicy',
  'BaselineAdminNetworkPolicy',
  // Gateway API
  'GatewayClass',
  'Gateway',
  'HTTPRoute',
  'GRPCRoute',
  'ReferenceGrant',
];

/** The model type of a kind: ObjectOf<'Service'> is Service. */
export type ObjectOf<K extends Kind> = Extract<ClusterObject, { readonly kind: K }>;
