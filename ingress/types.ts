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
