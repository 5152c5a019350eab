// The one routing decision of the ingress: request facts + the current RouteTable -> what to do. Pure (no I/O,
// no clock; the only input besides the arguments is Math.random for a canary weight). Every lane calls it: the
// plain-HTTP fast front (fast-front.ts), node:http / HTTP/2 requests and upgrades (server.ts). A lane only
// carries out the decision in its own framing; none of them routes on its own.
//
// Order (as ingress-nginx's generated location does it): route lookup (host, then path; else the Ingress
// default backend; else 404), allow-list (403), HTTP -> HTTPS redirect (308), permanent-redirect, app-root
// (302 for `/`), CORS preflight (204), rewrite-target, canary (header, then cookie, then weight), the
// per-Ingress default backend when the Service has no endpoints, 503 when nothing has endpoints. A Gateway API
// route (PathRoute.gateway; its method/header/query conditions are part of the lookup) takes decideGateway below.
import type { RouteOptions } from './annotations.ts';
import { normalizeHost, pathOf, resolve, rewritePath } from './match.ts';
import type {
  GatewayMirror,
  GatewayPathModifier,
  GatewayRedirect,
  GatewayRule,
  HeaderModifier,
  PathRoute,
  RouteTable,
  Upstream,
} from './types.ts';
import { cookieValue } from './upstream.ts';

/** What the decision needs to know about a request. A lane may implement it on a reused object. */
export interface RequestFacts {
  readonly scheme: 'http' | 'https';
  /** the Host header (or :authority) as received */
  readonly host: string;
  /** the request target as received (path and query) */
  readonly url: string;
  readonly method: string;
  /** client address (no `::ffff:` prefix) */
  readonly ip: string;
  /** a request header by lower-case name (first value), for canary by-header and cookies */
  header(name: string): string | undefined;
}

export type Decision =
  | {
      readonly kind: 'proxy';
      readonly upstream: Upstream;
      readonly options: RouteOptions;
      /** the path route (undefined: the Ingress spec.defaultBackend) */
      readonly route: PathRoute | undefined;
      /** `namespace/name` of the Ingress (or HTTPRoute/GRPCRoute) whose rule matched */
      readonly ingress: string;
      /** the request target sent upstream (rewrite-target applied; always starts with `/`) */
      readonly target: string;
      /** the canary took it: the name of the upstream it would have gone to ('' otherwise) */
      readonly alternative: string;
      /** Gateway API routes: what the lane does besides forwarding (undefined for Ingress routes) */
      readonly gateway?: GatewayForward;
    }
  | {
      /** an answer the ingress gives itself (404, 403, 503, redirects) */
      readonly kind: 'reply';
      readonly status: number;
      readonly body: string;
      /** redirects */
      readonly location?: string;
      readonly route: PathRoute | undefined;
      readonly ingress: string;
      /** the upstream the request was meant for (503: no endpoints), for metrics */
      readonly upstream?: Upstream;
    }
  | {
      /** CORS preflight: answered here with these options' CORS headers */
      readonly kind: 'preflight';
      readonly options: RouteOptions;
      readonly route: PathRoute;
      readonly ingress: string;
    };

/** Gateway API: the filters of the matched rule and backend, for the lane to carry out. */
export interface GatewayForward {
  /** rule filter, then backendRef filter (apply both, in order) */
  readonly requestHeaders: readonly HeaderModifier[];
  readonly responseHeaders: readonly HeaderModifier[];
  /** URLRewrite hostname: the Host sent upstream (the X-Forwarded-Host stays the client's) */
  readonly host?: string;
  /** the RequestMirror backends this request is copied to (their fraction already drawn) */
  readonly mirrors: readonly GatewayMirror[];
  readonly requestTimeoutMs?: number;
  readonly backendRequestTimeoutMs?: number;
}

const NOT_FOUND: Decision = Object.freeze({
  kind: 'reply',
  status: 404,
  body: 'default backend - 404\n',
  route: undefined,
  ingress: '',
});

function reply(status: number, body: string, route: PathRoute | undefined, ingress: string): Decision {
  return { kind: 'reply', status, body, route, ingress };
}

function unavailable(upstream: Upstream, route: PathRoute | undefined, ingress: string): Decision {
  return { kind: 'reply', status: 503, body: 'service unavailable: no endpoints\n', route, ingress, upstream };
}

/** Whether the canary takes this request: by-header, then by-cookie, then weight (ingress-nginx precedence). */
function canaryTakes(route: PathRoute, req: RequestFacts): boolean {
  const c = route.canary!;
  let use: boolean | undefined;
  if (c.byHeader !== undefined) {
    const v = req.header(c.byHeader.toLowerCase());
    if (v !== undefined) {
      if (c.byHeaderValue !== undefined) use = v === c.byHeaderValue ? true : undefined;
      else if (c.byHeaderPattern !== undefined) use = c.byHeaderPattern.test(v) ? true : undefined;
      else use = v === 'always' ? true : v === 'never' ? false : undefined;
    }
  }
  if (use === undefined && c.byCookie !== undefined) {
    const v = cookieValue(req.header('cookie'), c.byCookie);
    use = v === 'always' ? true : v === 'never' ? false : undefined;
  }
  if (use === undefined && c.weight > 0) use = Math.random() * c.weightTotal < c.weight;
  return use === true;
}

/** The routing decision for one request. */
export function decide(table: RouteTable, req: RequestFacts): Decision {
  const url = req.url;
  const path = pathOf(url);
  const r = resolve(table, normalizeHost(req.host), path, req);
  if (r.kind === 'none') return NOT_FOUND;
  if (r.kind === 'default') {
    const d = r.route;
    if (d.upstream.endpoints.length === 0) return unavailable(d.upstream, undefined, d.ingress);
    return {
      kind: 'proxy',
      upstream: d.upstream,
      options: d.options,
      route: undefined,
      ingress: d.ingress,
      target: url,
      alternative: '',
    };
  }
  const route = r.match.route;
  if (route.gateway) return decideGateway(table, req, route, route.gateway, path);
  const o = route.options;
  const ingress = route.ingress;
  if (o.allowSources && !o.allowSources.check(req.ip, req.ip.includes(':') ? 'ipv6' : 'ipv4'))
    return reply(403, 'forbidden\n', route, ingress);
  if (route.sslRedirect && req.scheme === 'http')
    return redirect(308, `https://${normalizeHost(req.host)}${url}`, route, ingress);
  if (o.permanentRedirect !== undefined) return redirect(o.permanentRedirectCode, o.permanentRedirect, route, ingress);
  if (o.appRoot !== undefined && path === '/') return redirect(302, o.appRoot, route, ingress);
  if (o.cors && req.method === 'OPTIONS') return { kind: 'preflight', options: o, route, ingress };
  let target = url;
  if (o.rewriteTarget !== undefined) {
    const q = url.indexOf('?');
    target = rewritePath(o.rewriteTarget, r.match.captures) + (q >= 0 ? url.slice(q) : '');
    if (!target.startsWith('/')) target = `/${target}`;
  }
  let upstream = route.upstream;
  let alternative = '';
  if (route.canary && route.canary.upstream.endpoints.length > 0 && canaryTakes(route, req)) {
    alternative = upstream.name;
    upstream = route.canary.upstream;
  }
  if (upstream.endpoints.length === 0 && route.fallback && route.fallback.endpoints.length > 0)
    upstream = route.fallback;
  if (upstream.endpoints.length === 0) return unavailable(upstream, route, ingress);
  return { kind: 'proxy', upstream, options: o, route, ingress, target, alternative };
}

function redirect(status: number, location: string, route: PathRoute, ingress: string): Decision {
  return { kind: 'reply', status, body: `${status} redirect\n`, location, route, ingress };
}

// ------------------------------------------------------------------------------------ Gateway API rules
// HTTPRoute/GRPCRoute (gateway-api apis/v1/httproute_types.go): RequestRedirect answers here; otherwise one
// backendRef is drawn by weight (all weights 0, no backendRefs, or an invalid backendRef drawn: 500; a Service
// without ready endpoints: 503), URLRewrite sets the target path and the upstream Host, and the header
// modifiers, mirrors and timeouts go to the lane in `gateway`.

/**
 * ReplacePrefixMatch: the matched prefix (`prefix`, no trailing slash) replaced by `value` (trailing slash
 * ignored), per the spec's table: /foo/bar with /foo -> /xyz gives /xyz/bar, with /foo -> '' gives /bar.
 */
export function replacePrefix(path: string, prefix: string, value: string): string {
  const out = value.replace(/\/+$/, '') + path.slice(prefix.length);
  return out === '' ? '/' : out.startsWith('/') ? out : `/${out}`;
}

function modifiedPath(m: GatewayPathModifier | undefined, route: PathRoute, path: string): string {
  if (m === undefined) return path;
  return m.type === 'ReplaceFullPath' ? m.value : replacePrefix(path, route.prefix, m.value);
}

function queryOf(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return '';
  const f = url.indexOf('#', q);
  return url.slice(q, f < 0 ? undefined : f);
}

/** The Location of a RequestRedirect: scheme, host, port (omitted when the scheme's default), path, query. */
function redirectLocation(
  table: RouteTable,
  req: RequestFacts,
  route: PathRoute,
  r: GatewayRedirect,
  path: string,
): string {
  const scheme = r.scheme ?? req.scheme;
  const host = r.hostname ?? normalizeHost(req.host);
  // no port: the scheme's well-known port when the scheme is set, else the listener's
  const port =
    r.port ??
    (r.scheme !== undefined
      ? scheme === 'https'
        ? 443
        : 80
      : (table.listenerPort ?? (scheme === 'https' ? 443 : 80)));
  const showPort = !((scheme === 'http' && port === 80) || (scheme === 'https' && port === 443));
  return `${scheme}://${host}${showPort ? `:${port}` : ''}${modifiedPath(r.path, route, path)}${queryOf(req.url)}`;
}

function decideGateway(table: RouteTable, req: RequestFacts, route: PathRoute, g: GatewayRule, path: string): Decision {
  const name = g.route;
  if (g.redirect)
    return redirect(g.redirect.statusCode, redirectLocation(table, req, route, g.redirect, path), route, name);
  if (g.totalWeight <= 0) return reply(500, 'no backend\n', route, name);
  let pick = g.backends[0]!;
  if (g.backends.length > 1) {
    let x = Math.random() * g.totalWeight;
    for (const b of g.backends) {
      pick = b;
      if ((x -= b.weight) < 0) break;
    }
  }
  if (!pick.upstream) return reply(500, 'invalid backend\n', route, name);
  const upstream = pick.upstream;
  if (upstream.endpoints.length === 0) return unavailable(upstream, route, name);
  const rw = g.rewrite;
  const target = rw?.path ? modifiedPath(rw.path, route, path) + queryOf(req.url) : req.url;
  const requestHeaders: HeaderModifier[] = [];
  if (g.requestHeaders) requestHeaders.push(g.requestHeaders);
  if (pick.requestHeaders) requestHeaders.push(pick.requestHeaders);
  const responseHeaders: HeaderModifier[] = [];
  if (g.responseHeaders) responseHeaders.push(g.responseHeaders);
  if (pick.responseHeaders) responseHeaders.push(pick.responseHeaders);
  const mirrors =
    g.mirrors.length === 0 ? g.mirrors : g.mirrors.filter((m) => m.fraction >= 1 || Math.random() < m.fraction);
  return {
    kind: 'proxy',
    upstream,
    options: route.options,
    route,
    ingress: name,
    target,
    alternative: '',
    gateway: {
      requestHeaders,
      responseHeaders,
      ...(rw?.hostname !== undefined ? { host: rw.hostname } : {}),
      mirrors,
      ...(g.requestTimeoutMs !== undefined ? { requestTimeoutMs: g.requestTimeoutMs } : {}),
      ...(g.backendRequestTimeoutMs !== undefined ? { backendRequestTimeoutMs: g.backendRequestTimeoutMs } : {}),
    },
  };
}

// ------------------------------------------------------------------------------------ X-Forwarded-* headers

/**
 * Request headers a client cannot pass through: set by the proxy itself (from ForwardFacts) or hop-by-hop.
 * Lower case.
 */
export const PROXY_SET_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'x-request-id',
  'x-real-ip',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-proto',
  'x-forwarded-scheme',
  'x-scheme',
  'x-original-forwarded-for',
]);

// The headers the ingress sets on every proxied request (ingress-nginx's defaults, use-forwarded-headers off):
// Host as received, the request id, the client address as X-Real-IP and X-Forwarded-For (the client's own
// X-Forwarded-For kept as X-Original-Forwarded-For), X-Forwarded-Host/-Port/-Proto/-Scheme, X-Scheme.

/**
 * The proxy-set request headers, in order, as HTTP/1 header lines (each ending in CRLF): those before and after
 * the request id (`before + id + after`), for a caller that keeps them for a connection's next requests. Joined
 * rather than concatenated: flat strings, written out without walking a tree of concatenations each time.
 */
export function forwardedAround(
  scheme: 'http' | 'https',
  host: string,
  ip: string,
  port: number | string,
  clientForwardedFor: string | undefined,
): readonly [string, string] {
  const before = ['host: ', host, '\r\nx-request-id: '].join('');
  const after = [
    '\r\nx-real-ip: ',
    ip,
    '\r\nx-forwarded-for: ',
    ip,
    '\r\nx-forwarded-host: ',
    host,
    '\r\nx-forwarded-port: ',
    String(port),
    '\r\nx-forwarded-proto: ',
    scheme,
    '\r\nx-forwarded-scheme: ',
    scheme,
    '\r\nx-scheme: ',
    scheme,
    '\r\n',
    clientForwardedFor === undefined ? '' : `x-original-forwarded-for: ${clientForwardedFor}\r\n`,
  ].join('');
  return [before, after];
}

/** The same headers into a header record (node:http / undici lanes). */
export function forwardedInto(
  out: Record<string, string | string[]>,
  scheme: 'http' | 'https',
  host: string,
  ip: string,
  port: number | string,
  requestId: string,
  clientForwardedFor: string | undefined,
): void {
  out.host = host;
  out['x-request-id'] = requestId;
  out['x-real-ip'] = ip;
  out['x-forwarded-for'] = ip;
  out['x-forwarded-host'] = host;
  out['x-forwarded-port'] = String(port);
  out['x-forwarded-proto'] = scheme;
  out['x-forwarded-scheme'] = scheme;
  out['x-scheme'] = scheme;
  if (clientForwardedFor !== undefined) out['x-original-forwarded-for'] = clientForwardedFor;
}
