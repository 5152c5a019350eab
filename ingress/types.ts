// The compiled, immutable route table the HTTP server reads. Built by compile.ts from model objects;
// swapped atomically by the controller (one reference assignment), never mutated after construction.
import type { Key } from '../src/model/types.ts';
import type { CanaryOptions, RouteOptions } from './annotations.ts';

/** One upstream: a Service port resolved to endpoint addresses (`ip:port`, IPv6 in brackets). */
export interface Upstream {
  /** ingress-nginx style upstream name: `<namespace>-<service>-<port>` */
  readonly name: string;
  readonly namespace: string;
  readonly service: string;
  readonly port: string;
  /** ready endpoint addresses, `host:port` (sorted; empty: 503) */
  readonly endpoints: readonly string[];
}

/** A canary route: the canary annotations (weight is 0..weightTotal) resolved to an upstream. */
export interface Canary extends CanaryOptions {
  readonly upstream: Upstream;
  readonly ingress: Key;
}

type MatchKind = 'Exact' | 'Prefix' | 'Regex';

export interface PathRoute {
  readonly kind: MatchKind;
  /** the path as written in the Ingress */
  readonly path: string;
  /** Prefix: the path without its trailing slash ('' for '/') */
  readonly prefix: string;
  readonly regex?: RegExp;
  readonly upstream: Upstream;
  /** per-Ingress default backend (annotation default-backend), used when `upstream` has no endpoints */
  readonly fallback?: Upstream;
  readonly canary?: Canary;
  readonly ingress: Key;
  readonly options: RouteOptions;
  /** redirect plain HTTP to HTTPS (TLS host with ssl-redirect, or force-ssl-redirect) */
  readonly sslRedirect: boolean;
  /** Gateway API (HTTPRoute/GRPCRoute rule match): the rest of the match and what the rule does; undefined for Ingress */
  readonly gateway?: GatewayRule;
}

// ---------------------------------------------------------------- Gateway API route rules (ingress/gateway)
// A PathRoute with `gateway` set is one HTTPRouteMatch (or GRPCRouteMatch) of one rule; the compiler orders the
// host's paths by the spec's precedence and decide() takes the first whose path AND these conditions match.

/** Header/query-param condition: `name` lower case for headers (case-sensitive for query params). */
export interface ValueMatcher {
  readonly name: string;
  /** exactly one of exact or regex */
  readonly exact?: string;
  readonly regex?: RegExp;
}

/** RequestHeaderModifier / ResponseHeaderModifier: set, then add, then remove. */
export interface HeaderModifier {
  /** replace the header (name as written) */
  readonly set: readonly (readonly [string, string])[];
  /** append a value (comma-joined with an existing one by HTTP semantics) */
  readonly add: readonly (readonly [string, string])[];
  /** lower-case names */
  readonly remove: readonly string[];
}

export interface GatewayRedirect {
  /** `http` / `https`; undefined: the request's */
  readonly scheme?: string;
  readonly hostname?: string;
  /** undefined: the request's port rules of the spec (derived from scheme when the scheme changes) */
  readonly port?: number;
  readonly path?: GatewayPathModifier;
  readonly statusCode: number;
}

export type GatewayPathModifier =
  | { readonly type: 'ReplaceFullPath'; readonly value: string }
  /** the matched prefix (this PathRoute's `prefix`) replaced by value */
  | { readonly type: 'ReplacePrefixMatch'; readonly value: string };

export interface GatewayRewrite {
  /** the Host header sent upstream */
  readonly hostname?: string;
  readonly path?: GatewayPathModifier;
}

/** RequestMirror (extended): carried out by the lanes (fire and forget, response ignored). */
export interface GatewayMirror {
  readonly upstream: Upstream;
  /** 0..1: share of requests mirrored (1 when neither percent nor fraction is set) */
  readonly fraction: number;
}

export interface GatewayBackend {
  /** undefined: invalid backendRef (not found, not permitted, unknown kind): its share of requests gets a 500 */
  readonly upstream?: Upstream;
  /** > 0 (weight 0 refs are not in the list) */
  readonly weight: number;
  /** backendRef-level filters (core: header modifiers), applied after the rule's */
  readonly requestHeaders?: HeaderModifier;
  readonly responseHeaders?: HeaderModifier;
}

export interface GatewayRule {
  readonly kind: 'HTTPRoute' | 'GRPCRoute';
  /** `namespace/name` of the route */
  readonly route: Key;
  /** index of the rule in spec.rules (and its name when set) */
  readonly rule: number;
  readonly ruleName?: string;
  /** HTTPRouteMatch besides the path (all must match) */
  readonly headers: readonly ValueMatcher[];
  readonly queryParams: readonly ValueMatcher[];
  /** upper case; undefined: any */
  readonly method?: string;
  readonly requestHeaders?: HeaderModifier;
  readonly responseHeaders?: HeaderModifier;
  /** RequestRedirect: answered by the ingress, no backend */
  readonly redirect?: GatewayRedirect;
  readonly rewrite?: GatewayRewrite;
  readonly mirrors: readonly GatewayMirror[];
  /** weighted backends (weight > 0 only); empty with totalWeight 0: 500 unless a redirect answers */
  readonly backends: readonly GatewayBackend[];
  readonly totalWeight: number;
  /** HTTPRoute timeouts in ms (undefined: none); carried out by the lanes */
  readonly requestTimeoutMs?: number;
  readonly backendRequestTimeoutMs?: number;
}

export interface HostRoutes {
  /** the rule host ('' for rules without host, '*.foo.com' for wildcards) */
  readonly host: string;
  /** in match order: Exact first, then regex (longest first) or Prefix (longest first) */
  readonly paths: readonly PathRoute[];
}

export interface DefaultRoute {
  readonly upstream: Upstream;
  readonly ingress: Key;
  readonly options: RouteOptions;
}

export interface TlsCert {
  /** Secret key `namespace/name` */
  readonly secret: Key;
  readonly certPem: string;
  readonly keyPem: string;
}

export interface RouteTable {
  /** exact hosts, lower case */
  readonly hosts: ReadonlyMap<string, HostRoutes>;
  /** wildcard hosts keyed by the suffix after `*.` */
  readonly wildcards: ReadonlyMap<string, HostRoutes>;
  /** rules without host */
  readonly any?: HostRoutes;
  /** spec.defaultBackend of the (first) Ingress that has one; else 404 */
  readonly defaultRoute?: DefaultRoute;
  /** certificates by TLS host (exact or `*.suffix`) */
  readonly certs: ReadonlyMap<string, TlsCert>;
  /** Gateway API tables: `*.suffix` matches one or more labels, the longest suffix first (Ingress: exactly one) */
  readonly multiLabelWildcards?: boolean;
  /** Gateway API: the certificate of an HTTPS listener without hostname (SNI matching no other listener) */
  readonly fallbackCert?: TlsCert;
  /** Gateway API: the listener port (a RequestRedirect without scheme or port keeps it) */
  readonly listenerPort?: number;
  /** generation counter: bumps on every compile */
  readonly version: number;
}

export interface Rejection {
  readonly ingress: Key;
  readonly reason: string;
}

export interface CompileResult {
  readonly table: RouteTable;
  /** Ingresses served */
  readonly accepted: readonly Key[];
  /** Ingresses left out entirely (bad annotation, invalid path, ...) */
  readonly rejected: readonly Rejection[];
  /** Ingresses not ours by class, with the reason (sorted by key) */
  readonly ignored: readonly Rejection[];
  /** paths of accepted Ingresses that lost a conflict, unresolved secrets, ... */
  readonly warnings: readonly string[];
}
