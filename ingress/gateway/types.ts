// The Gateway API compiler's contract (compile.ts): cluster state in, per-listener route tables and the status of
// every Gateway API object out. Pure: no I/O, no clock, no logging. The ingress controller (gwserve) serves each
// GatewayListenerTable on its (address, port) and PATCHes the status objects (adding lastTransitionTime: it keeps
// the previous one when a condition's status did not change).
//
// Status is plain JSON-able data shaped like the API's own status (conditions with type, status, reason, message,
// observedGeneration), so a PATCH body and `kdp status --json` are the objects themselves.
import type {
  EndpointSlice,
  Gateway,
  GatewayClass,
  GRPCRoute,
  HTTPRoute,
  Key,
  Namespace,
  ReferenceGrant,
  Service,
  TlsSecret,
} from '../../src/model/types.ts';
import type { RouteTable } from '../types.ts';

/** GatewayClass.spec.controllerName kdp implements. */
export const GATEWAY_CONTROLLER_NAME = 'kdp.dev/gateway-controller';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** What the compiler reads: the store view's gateway kinds plus what references resolve against. */
export interface GatewayState {
  readonly classes: Iterable<GatewayClass>;
  readonly gateways: Iterable<Gateway>;
  readonly httpRoutes: Iterable<HTTPRoute>;
  readonly grpcRoutes: Iterable<GRPCRoute>;
  readonly referenceGrants: Iterable<ReferenceGrant>;
  readonly services: Pick<ReadonlyMap<Key, Service>, 'get'>;
  /** all EndpointSlices (grouped by namespace/serviceName) */
  readonly slices: Iterable<EndpointSlice>;
  readonly secrets: Pick<ReadonlyMap<Key, TlsSecret>, 'get'>;
  /** by name: labels for allowedRoutes.namespaces.selector */
  readonly namespaces: Pick<ReadonlyMap<Key, Namespace>, 'get'>;
}

export interface GatewayCompileOptions {
  /** GatewayClass.spec.controllerName we implement (GATEWAY_CONTROLLER_NAME) */
  readonly controllerName: string;
  /**
   * The address a Gateway is served on (gwserve's: spec.addresses[type IPAddress], else one from its pool).
   * undefined: none could be assigned; the Gateway gets Programmed False AddressNotAssigned and no tables.
   */
  readonly addressFor: (gateway: Gateway) => string | undefined;
  /** RouteTable.version of every table built */
  readonly version?: number;
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration: number;
}

export interface RouteGroupKind {
  readonly group: string;
  readonly kind: string;
}

export interface GatewayClassStatus {
  /** the GatewayClass name */
  readonly key: Key;
  readonly generation: number;
  /** Accepted, SupportedVersion */
  readonly conditions: readonly Condition[];
}

export interface ListenerStatus {
  readonly name: string;
  readonly supportedKinds: readonly RouteGroupKind[];
  readonly attachedRoutes: number;
  /** Accepted, Programmed, ResolvedRefs, Conflicted */
  readonly conditions: readonly Condition[];
}

export interface GatewayStatus {
  readonly key: Key;
  readonly generation: number;
  readonly addresses: readonly { readonly type: 'IPAddress'; readonly value: string }[];
  /** Accepted, Programmed */
  readonly conditions: readonly Condition[];
  readonly listeners: readonly ListenerStatus[];
}

export interface ParentReference {
  readonly group: string;
  readonly kind: string;
  /** as written (absent: the route's namespace), so the entry matches its spec.parentRefs item */
  readonly namespace?: string;
  readonly name: string;
  readonly sectionName?: string;
  readonly port?: number;
}

export interface RouteParentStatus {
  /** as written in spec.parentRefs (group and kind defaulted as the API server does) */
  readonly parentRef: ParentReference;
  readonly controllerName: string;
  /** Accepted, ResolvedRefs (PartiallyInvalid when some rules were dropped) */
  readonly conditions: readonly Condition[];
}

export interface RouteStatus {
  readonly key: Key;
  readonly generation: number;
  /**
   * Only the parentRefs naming a Gateway of ours (class with our controllerName); gwserve keeps other
   * controllers' entries when it PATCHes.
   */
  readonly parents: readonly RouteParentStatus[];
}

/** One served (address, port): every accepted listener of one Gateway on that port shares the table. */
export interface GatewayListenerTable {
  readonly gateway: Key;
  /** listener names served by this table (same port, different hostnames) */
  readonly listeners: readonly string[];
  readonly address: string;
  readonly port: number;
  readonly protocol: 'HTTP' | 'HTTPS';
  /** HTTPS: table.certs by listener hostname (fallbackCert for a listener without hostname) */
  readonly table: RouteTable;
}

export interface GatewayCompileResult {
  /** sorted by address, then port */
  readonly listeners: readonly GatewayListenerTable[];
  readonly status: {
    readonly classes: readonly GatewayClassStatus[];
    readonly gateways: readonly GatewayStatus[];
    readonly httpRoutes: readonly RouteStatus[];
    readonly grpcRoutes: readonly RouteStatus[];
  };
  /** one line per object or rule not served as written (for the controller to log) */
  readonly warnings: readonly string[];
}
