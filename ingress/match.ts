// Request -> route lookup over a compiled RouteTable. Pure; called once per request.
import type { DefaultRoute, GatewayRule, HostRoutes, PathRoute, RouteTable, TlsCert, ValueMatcher } from './types.ts';

interface PathMatch {
  readonly route: PathRoute;
  /** regex routes: the match (capture groups for rewrite-target) */
  readonly captures?: RegExpExecArray;
}

type Resolution =
  | { readonly kind: 'route'; readonly host: HostRoutes; readonly match: PathMatch }
  | { readonly kind: 'default'; readonly route: DefaultRoute }
  | { readonly kind: 'none' };

const VALID_HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * A Host header value the proxy accepts: a DNS name (labels of letters, digits, `-`, `_`, not starting or ending
 * with `-`, optional trailing dot) or an IPv6 literal, optional port; at most 255 characters.
 */
export function validHost(v: string): boolean {
  // the last good one again (a keep-alive client repeats its Host): a string compare instead of the regexp's ~550
  // instructions
  if (v === lastValidHost) return true;
  if (v.length > 255 || !VALID_HOST.test(v)) return false;
  lastValidHost = v;
  return true;
}
let lastValidHost = '';
let lastRawHost = '';
let lastHost = '';
/** Lower-cases, drops the port and a trailing dot: `Foo.COM.:8080` -> `foo.com`. */
export function normalizeHost(raw: string | undefined): string {
  if (!raw) return '';
  // the last answer again for the same Host (a keep-alive client repeats it): the same string, whose hash the
  // route table's lookup has already computed
  if (raw === lastRawHost) return lastHost;
  let h = raw.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    h = end < 0 ? h : h.slice(0, end + 1);
  } else {
    const colon = h.indexOf(':');
    if (colon >= 0) h = h.slice(0, colon);
    if (h.endsWith('.')) h = h.slice(0, -1);
  }
  lastRawHost = raw;
  lastHost = h;
  return h;
}

/** The path part of a request target (no query, no fragment). */
export function pathOf(url: string): string {
  let end = url.length;
  const q = url.indexOf('?');
  if (q >= 0) end = q;
  const f = url.indexOf('#');
  if (f >= 0 && f < end) end = f;
  return url.slice(0, end) || '/';
}

/**
 * Exact host first, then `*.suffix` (Ingress: one label only; Gateway API tables: one or more labels, the longest
 * suffix first), then the rules without host.
 */
function findHost(table: RouteTable, host: string): HostRoutes | undefined {
  const exact = table.hosts.get(host);
  if (exact) return exact;
  let dot = host.indexOf('.');
  if (dot > 0) {
    const wild = table.wildcards.get(host.slice(dot + 1));
    if (wild) return wild;
    if (table.multiLabelWildcards)
      while ((dot = host.indexOf('.', dot + 1)) > 0) {
        const w = table.wildcards.get(host.slice(dot + 1));
        if (w) return w;
      }
  }
  return table.any;
}

/** What a Gateway API match reads besides the path (RequestFacts has it). */
export interface MatchFacts {
  readonly method: string;
  /** the request target (the query is read from it) */
  readonly url: string;
  /** a request header by lower-case name (first value) */
  header(name: string): string | undefined;
}

function valueMatches(m: ValueMatcher, v: string | undefined): boolean {
  if (v === undefined) return false;
  return m.exact !== undefined ? v === m.exact : m.regex!.test(v);
}

function queryParam(url: string, name: string): string | undefined {
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  const f = url.indexOf('#', q);
  try {
    return new URLSearchParams(url.slice(q + 1, f < 0 ? undefined : f)).get(name) ?? undefined;
  } catch {
    return undefined;
  }
}

/** The method, header and query-param conditions of a Gateway API match (all must hold). */
function conditionsHold(g: GatewayRule, req: MatchFacts | undefined): boolean {
  if (g.method !== undefined && req?.method !== g.method) return false;
  for (const h of g.headers) if (!valueMatches(h, req?.header(h.name))) return false;
  for (const p of g.queryParams) if (!valueMatches(p, req ? queryParam(req.url, p.name) : undefined)) return false;
  return true;
}

function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47; /* '/' */
}

function matchPath(hr: HostRoutes, path: string, req: MatchFacts | undefined): PathMatch | undefined {
  for (const r of hr.paths) {
    if (r.kind === 'Exact') {
      if (r.path === path && (r.gateway === undefined || conditionsHold(r.gateway, req))) return { route: r };
    } else if (r.kind === 'Prefix') {
      if (prefixMatches(r.prefix, path) && (r.gateway === undefined || conditionsHold(r.gateway, req)))
        return { route: r };
    } else {
      const m = r.regex!.exec(path);
      if (m && (r.gateway === undefined || conditionsHold(r.gateway, req))) return { route: r, captures: m };
    }
  }
  return undefined;
}

/**
 * Host rules, then the Ingress default backend, else none (404). `req` supplies the method, headers and query of
 * Gateway API matches (without it, a Gateway API route with such conditions never matches).
 */
export function resolve(table: RouteTable, host: string, path: string, req?: MatchFacts): Resolution {
  const hr = findHost(table, host);
  if (hr) {
    const m = matchPath(hr, path, req);
    if (m) return { kind: 'route', host: hr, match: m };
  }
  return table.defaultRoute ? { kind: 'default', route: table.defaultRoute } : { kind: 'none' };
}

/**
 * The certificate for an SNI name: exact, then `*.suffix` (Gateway API tables: any number of labels, longest
 * suffix first, then the certificate of a listener without hostname), else undefined (the default certificate).
 */
export function findCert(table: RouteTable, servername: string): TlsCert | undefined {
  const h = normalizeHost(servername);
  const exact = table.certs.get(h);
  if (exact) return exact;
  let dot = h.indexOf('.');
  if (!table.multiLabelWildcards) return dot > 0 ? table.certs.get(`*.${h.slice(dot + 1)}`) : undefined;
  for (; dot > 0; dot = h.indexOf('.', dot + 1)) {
    const w = table.certs.get(`*.${h.slice(dot + 1)}`);
    if (w) return w;
  }
  return table.fallbackCert;
}

/** rewrite-target: `$1`..`$9` replaced by the regex captures (missing ones by ''). */
export function rewritePath(target: string, captures: RegExpExecArray | undefined): string {
  return target.replace(/\$(\d)/g, (_, d: string) => captures?.[Number(d)] ?? '');
}
