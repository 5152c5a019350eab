// `kdp ingress convert`: Ingresses (with the ingress-nginx annotations kdp honours) to Gateway API objects that
// route the same requests to the same backends: one GatewayClass (kdp.dev/gateway-controller), one Gateway (an HTTP
// listener on 80, an HTTPS listener on 443 per TLS host), ReferenceGrants for Secrets in other namespaces, and one
// HTTPRoute per Ingress and host. Pure: model objects in, plain API objects and warnings out (one warning per
// annotation or field that has no Gateway API equivalent, or only an approximate one).
//
// Translation (docs/ingress.md "kdp ingress convert"):
//   paths          Exact -> Exact; Prefix and ImplementationSpecific -> PathPrefix; regex mode (use-regex /
//                  rewrite-target) -> RegularExpression, or PathPrefix for a path without regex characters
//   rewrite-target a target without `$N` -> URLRewrite ReplaceFullPath; the `/p(/|$)(.*)` + `/$2` and `/p/(.*)` +
//                  `/$1` idioms -> PathPrefix /p + ReplacePrefixMatch /; other captures: warning, not rewritten
//   ssl-redirect / force-ssl-redirect  TLS hosts (or every host when forced): the HTTP listener gets a
//                  `<route>-ssl-redirect` HTTPRoute answering 308 to https, the route itself the HTTPS listener
//   canary         canary-weight -> backendRef weights (total - w : w); canary-by-header -> a rule with the header
//                  match (`always`, or -by-header-value Exact, -by-header-pattern RegularExpression) to the canary
//                  and one matching `never` to the main backend; canary-by-cookie: warning
//   proxy-read-timeout  -> timeouts.backendRequest (nginx's is an idle timeout, Gateway's a total: noted)
//   app-root       -> a rule Exact / with RequestRedirect ReplaceFullPath, 302
//   permanent-redirect(-code)  -> RequestRedirect (scheme, hostname, port, ReplaceFullPath) with the code
//   custom-response-headers  -> ResponseHeaderModifier set
//   spec.defaultBackend  -> an HTTPRoute without hostnames, PathPrefix /
//   everything else (affinity, CORS, allow-list, body size, backend-protocol, default-backend, connect/send
//   timeouts, unknown annotations): warning, not translated.
import { stringify } from 'yaml';
import { AnnotationError, parseAnnotations } from './annotations.ts';
import type { RouteOptions } from './annotations.ts';
import type { Ingress, IngressBackend, Service } from '../src/model/types.ts';
import { keyOf } from '../src/model/types.ts';

export const GATEWAY_API = 'gateway.networking.k8s.io/v1';
const NGINX = 'nginx.ingress.kubernetes.io/';

export interface ConvertOptions {
  readonly gatewayName: string;
  /** default: the namespace of the Ingresses when they share one, else `default` */
  readonly gatewayNamespace?: string;
  readonly gatewayClassName: string;
  readonly controllerName: string;
}

export const DEFAULT_CONVERT_OPTIONS: ConvertOptions = {
  gatewayName: 'kdp',
  gatewayClassName: 'kdp',
  controllerName: 'kdp.dev/gateway-controller',
};

export interface ConvertResult {
  /** GatewayClass, Gateway, ReferenceGrants, HTTPRoutes (plain API objects, ready for YAML) */
  readonly objects: readonly Record<string, unknown>[];
  /** `namespace/name: what` lines, sorted by Ingress */
  readonly warnings: readonly string[];
}

type Obj = Record<string, unknown>;

interface Listener {
  name: string;
  hostname?: string;
  secret: { namespace: string; name: string };
}

interface Rule {
  matches: Obj[];
  filters?: Obj[];
  backendRefs?: Obj[];
  timeouts?: Obj;
}

/** The `(?i)`-free regex characters that make an ImplementationSpecific path a regex in ingress-nginx. */
const REGEX_CHARS = /[()*[\]^|?{}$+\\]/;

function slug(host: string): string {
  return host
    .replace(/^\*\./, 'wildcard.')
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

function hostCovered(host: string, tlsHost: string): boolean {
  if (tlsHost === host) return true;
  return tlsHost.startsWith('*.') && !host.startsWith('*.') && host.slice(host.indexOf('.') + 1) === tlsHost.slice(2);
}

/** Go-style duration Gateway API accepts: whole seconds here. */
function duration(ms: number): string {
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`;
}

class Converter {
  readonly warnings: string[] = [];
  readonly routes: Obj[] = [];
  readonly listeners: Listener[] = [];
  readonly #services: Pick<ReadonlyMap<string, Service>, 'get'>;
  readonly #opts: ConvertOptions;
  readonly gwNamespace: string;

  constructor(services: Pick<ReadonlyMap<string, Service>, 'get'>, opts: ConvertOptions, gwNamespace: string) {
    this.#services = services;
    this.#opts = opts;
    this.gwNamespace = gwNamespace;
  }

  warn(ing: Ingress, what: string): void {
    this.warnings.push(`${keyOf(ing.meta)}: ${what}`);
  }

  /** A backendRef for an Ingress backend; undefined (with a warning) when it has none in Gateway API terms. */
  backendRef(ing: Ingress, b: IngressBackend, weight?: number): Obj | undefined {
    if (!b.service) {
      this.warn(
        ing,
        `resource backend ${b.resource?.kind ?? '?'} ${b.resource?.name ?? ''} has no Gateway API equivalent; path skipped`,
      );
      return undefined;
    }
    let port = b.service.port.number;
    if (port === undefined) {
      const svc = this.#services.get(`${ing.meta.namespace}/${b.service.name}`);
      port = svc?.ports.find((p) => p.name === b.service!.port.name)?.port;
      if (port === undefined) {
        this.warn(
          ing,
          `backend ${b.service.name} port "${b.service.port.name}": a named port needs the Service to resolve its number (not found); path skipped`,
        );
        return undefined;
      }
    }
    return { name: b.service.name, port, ...(weight === undefined ? {} : { weight }) };
  }

  /** The listener for a TLS host (created on first use). */
  listenerFor(ing: Ingress, host: string | undefined, secretName: string | undefined): Listener | undefined {
    const existing = this.listeners.find((l) => l.hostname === host);
    if (existing) {
      if (
        secretName !== undefined &&
        (existing.secret.name !== secretName || existing.secret.namespace !== ing.meta.namespace)
      )
        this.warn(
          ing,
          `tls host ${host ?? '*'}: listener ${existing.name} already uses Secret ${existing.secret.namespace}/${existing.secret.name}; ${secretName} not used`,
        );
      return existing;
    }
    if (secretName === undefined) {
      this.warn(
        ing,
        `tls host ${host ?? '*'} has no secretName (ingress-nginx's default certificate): no HTTPS listener made`,
      );
      return undefined;
    }
    const l: Listener = {
      name: `https-${this.listeners.length + 1}`,
      ...(host === undefined ? {} : { hostname: host }),
      secret: { namespace: ing.meta.namespace, name: secretName },
    };
    this.listeners.push(l);
    return l;
  }

  parentRef(sectionName: string, ns: string): Obj {
    return {
      name: this.#opts.gatewayName,
      ...(ns === this.gwNamespace ? {} : { namespace: this.gwNamespace }),
      sectionName,
    };
  }

  /** The match, and the rewrite filter, of one Ingress path. */
  pathMatch(ing: Ingress, o: RouteOptions, pathType: string, path: string): { match: Obj; rewrite?: Obj } | undefined {
    const regexMode = pathType === 'ImplementationSpecific' && (o.useRegex || o.rewriteTarget !== undefined);
    if (pathType === 'Exact') return { match: { path: { type: 'Exact', value: path } }, ...this.rewrite(ing, o, path) };
    if (!regexMode) return { match: { path: { type: 'PathPrefix', value: path } }, ...this.rewrite(ing, o, path) };
    const target = o.rewriteTarget;
    // the idioms a prefix rewrite is written with
    let m = /^(\/[^()*[\]^|?{}$+\\]*?)\(\/\|\$\)\(\.\*\)$/.exec(path);
    if (m && target === '/$2') return this.prefixRewrite(m[1]!);
    m = /^(\/[^()*[\]^|?{}$+\\]*?)\/\(\.\*\)$/.exec(path);
    if (m && target === '/$1') return this.prefixRewrite(m[1]!);
    if (!REGEX_CHARS.test(path)) {
      this.warn(
        ing,
        `path ${path} (regex mode): PathPrefix ${path}; ingress-nginx's regex also matched it case-insensitively and inside a segment`,
      );
      return { match: { path: { type: 'PathPrefix', value: path } }, ...this.rewrite(ing, o, path) };
    }
    this.warn(ing, `path ${path}: RegularExpression (ingress-nginx: case-insensitive, anchored at the start only)`);
    return { match: { path: { type: 'RegularExpression', value: path } }, ...this.rewrite(ing, o, path) };
  }

  prefixRewrite(prefix: string): { match: Obj; rewrite: Obj } {
    return {
      match: { path: { type: 'PathPrefix', value: prefix === '' ? '/' : prefix } },
      rewrite: { type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } },
    };
  }

  rewrite(ing: Ingress, o: RouteOptions, path: string): { rewrite?: Obj } {
    const target = o.rewriteTarget;
    if (target === undefined) return {};
    if (/\$\d/.test(target)) {
      this.warn(
        ing,
        `rewrite-target ${target} on ${path}: capture groups have no Gateway API equivalent; not rewritten`,
      );
      return {};
    }
    const full = target.startsWith('/') ? target : `/${target}`;
    return {
      rewrite: { type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: full } } },
    };
  }
}

/** The annotations convert translates (the others in annotations.ts KNOWN get a warning each). */
const TRANSLATED = new Set([
  'rewrite-target',
  'use-regex',
  'ssl-redirect',
  'force-ssl-redirect',
  'canary',
  'canary-by-header',
  'canary-by-header-value',
  'canary-by-header-pattern',
  'canary-weight',
  'canary-weight-total',
  'proxy-read-timeout',
  'app-root',
  'permanent-redirect',
  'permanent-redirect-code',
  'custom-response-headers',
]);

const WHY: Record<string, string> = {
  'backend-protocol': 'HTTPS to the pods needs a BackendTLSPolicy (not made)',
  'proxy-body-size': 'no request body limit in Gateway API',
  'proxy-connect-timeout': 'no connect timeout in Gateway API',
  'proxy-send-timeout': 'no request-body timeout in Gateway API',
  affinity: 'session persistence is not in Gateway API v1',
  'canary-by-cookie': 'no cookie match in Gateway API',
  'whitelist-source-range': 'no source address filter in Gateway API',
  'allowlist-source-range': 'no source address filter in Gateway API',
  'enable-cors': 'the CORS filter is not in Gateway API v1',
  'default-backend': 'no per-route fallback backend in Gateway API',
};

/** Converts Ingresses (and the Services their named ports need) to Gateway API objects. Pure. */
export function convertIngresses(
  ingresses: readonly Ingress[],
  services: Pick<ReadonlyMap<string, Service>, 'get'> = new Map(),
  opts: ConvertOptions = DEFAULT_CONVERT_OPTIONS,
): ConvertResult {
  const sorted = [...ingresses].sort((a, b) => (keyOf(a.meta) < keyOf(b.meta) ? -1 : 1));
  const namespaces = new Set(sorted.map((i) => i.meta.namespace));
  const gwNamespace = opts.gatewayNamespace ?? (namespaces.size === 1 ? [...namespaces][0]! : 'default');
  const cv = new Converter(services, opts, gwNamespace);

  interface Parsed {
    ing: Ingress;
    options: RouteOptions;
    canary: boolean;
  }
  const parsed: Parsed[] = [];
  for (const ing of sorted) {
    try {
      const { options, canary, ignored } = parseAnnotations(ing.meta.annotations);
      for (const name of ignored) cv.warn(ing, `${NGINX}${name}: not supported by kdp; not translated`);
      for (const name of Object.keys(ing.meta.annotations)) {
        if (!name.startsWith(NGINX)) continue;
        const a = name.slice(NGINX.length);
        if (TRANSLATED.has(a) || ignored.includes(a)) continue;
        // reported once with their main annotation (affinity, enable-cors)
        if (a.startsWith('session-cookie-') || a.startsWith('cors-') || a === 'affinity-mode') continue;
        cv.warn(ing, `${name}: ${WHY[a] ?? 'no Gateway API equivalent'}; not translated`);
      }
      if (options.readTimeoutMs !== 60_000)
        cv.warn(
          ing,
          `${NGINX}proxy-read-timeout: timeouts.backendRequest ${duration(options.readTimeoutMs)} (nginx's is an idle timeout between reads, Gateway API's the whole backend request)`,
        );
      parsed.push({ ing, options, canary });
    } catch (err) {
      if (!(err instanceof AnnotationError)) throw err;
      cv.warn(ing, `not converted: ${err.message} (kdp rejects this Ingress too)`);
    }
  }

  // TLS listeners first (routes refer to them by name)
  const tlsOf = new Map<Ingress, { host: string | undefined; listener: Listener }[]>();
  for (const { ing } of parsed) {
    const list: { host: string | undefined; listener: Listener }[] = [];
    for (const t of ing.tls) {
      const hosts = t.hosts.length === 0 ? [undefined] : t.hosts.map((h) => h.toLowerCase());
      for (const h of hosts) {
        const l = cv.listenerFor(ing, h, t.secretName);
        if (l) list.push({ host: h, listener: l });
      }
    }
    tlsOf.set(ing, list);
  }

  // main routes: one per Ingress and host; canaries are folded into them afterwards
  interface Draft {
    route: Obj;
    rules: Rule[];
    ing: Ingress;
    host: string;
    /** `${pathType} ${path}` -> rule index, for the canaries */
    index: Map<string, number>;
  }
  const drafts: Draft[] = [];
  for (const { ing, options: o, canary } of parsed) {
    if (canary) continue;
    const byHost = new Map<string, Ingress['rules'][number]['paths'][number][]>();
    for (const r of ing.rules) {
      const h = (r.host ?? '').toLowerCase();
      byHost.set(h, [...(byHost.get(h) ?? []), ...r.paths]);
    }
    if (ing.defaultBackend && !byHost.has('')) byHost.set('', []);
    const hosts = [...byHost.keys()];
    for (const [i, host] of hosts.entries()) {
      const name =
        hosts.length === 1 ? ing.meta.name : `${ing.meta.name}-${host === '' ? 'default' : slug(host) || String(i)}`;
      const rules: Rule[] = [];
      const index = new Map<string, number>();
      const extra: Obj[] = [];
      if (o.responseHeaders.length > 0)
        extra.push({
          type: 'ResponseHeaderModifier',
          responseHeaderModifier: { set: o.responseHeaders.map(([n, v]) => ({ name: n, value: v })) },
        });
      const timeouts = o.readTimeoutMs !== 60_000 ? { backendRequest: duration(o.readTimeoutMs) } : undefined;
      const redirect = permanentRedirect(cv, ing, o);
      for (const p of byHost.get(host)!) {
        const pm = cv.pathMatch(ing, o, p.pathType, p.path);
        if (!pm) continue;
        const filters = [...(pm.rewrite ? [pm.rewrite] : []), ...extra];
        if (redirect) {
          index.set(`${p.pathType} ${p.path}`, rules.length);
          rules.push({ matches: [pm.match], filters: [redirect] });
          continue;
        }
        const ref = cv.backendRef(ing, p.backend);
        if (!ref) continue;
        index.set(`${p.pathType} ${p.path}`, rules.length);
        rules.push({
          matches: [pm.match],
          ...(filters.length > 0 ? { filters } : {}),
          backendRefs: [ref],
          ...(timeouts ? { timeouts } : {}),
        });
      }
      if (host === '' && ing.defaultBackend) {
        const ref = cv.backendRef(ing, ing.defaultBackend);
        if (ref)
          rules.push({
            matches: [{ path: { type: 'PathPrefix', value: '/' } }],
            ...(extra.length > 0 ? { filters: extra } : {}),
            backendRefs: [ref],
            ...(timeouts ? { timeouts } : {}),
          });
        cv.warn(
          ing,
          'spec.defaultBackend: an HTTPRoute without hostnames (PathPrefix /); it catches what no other route matches only where kdp ranks host-specific routes first',
        );
      }
      // ingress-nginx redirects `/` only where a path of the Ingress matches it
      const rootServed = byHost.get(host)!.some((p) => p.path === '/');
      if (o.appRoot !== undefined && !rootServed)
        cv.warn(ing, `${NGINX}app-root: host ${host || '*'} has no path / to redirect; nothing made`);
      if (o.appRoot !== undefined && rootServed)
        rules.unshift({
          matches: [{ path: { type: 'Exact', value: '/' } }],
          filters: [
            {
              type: 'RequestRedirect',
              requestRedirect: { path: { type: 'ReplaceFullPath', replaceFullPath: o.appRoot }, statusCode: 302 },
            },
          ],
        });
      if (o.appRoot !== undefined && rootServed) for (const [k, v] of index) index.set(k, v + 1);
      if (rules.length === 0) continue;
      // listeners: TLS-covered hosts get the HTTPS listener; with ssl-redirect the HTTP side only redirects
      const tls = (tlsOf.get(ing) ?? []).filter((t) =>
        host === '' ? t.host === undefined : t.host === undefined || hostCovered(host, t.host),
      );
      const redirectToHttps = o.forceSslRedirect || (o.sslRedirect && host !== '' && tls.length > 0);
      const ns = ing.meta.namespace;
      const parentRefs = [
        ...(redirectToHttps ? [] : [cv.parentRef('http', ns)]),
        ...[...new Set(tls.map((t) => t.listener.name))].map((l) => cv.parentRef(l, ns)),
      ];
      if (parentRefs.length === 0) {
        cv.warn(
          ing,
          `host ${host || '*'}: force-ssl-redirect without a TLS listener for it: only the redirect is made`,
        );
      }
      const meta = { name, namespace: ns };
      if (redirectToHttps)
        cv.routes.push({
          apiVersion: GATEWAY_API,
          kind: 'HTTPRoute',
          metadata: { name: `${name}-ssl-redirect`, namespace: ns },
          spec: {
            parentRefs: [cv.parentRef('http', ns)],
            ...(host === '' ? {} : { hostnames: [host] }),
            rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', statusCode: 308 } }] }],
          },
        });
      if (parentRefs.length === 0) continue;
      const route: Obj = {
        apiVersion: GATEWAY_API,
        kind: 'HTTPRoute',
        metadata: meta,
        spec: { parentRefs, ...(host === '' ? {} : { hostnames: [host] }), rules },
      };
      drafts.push({ route, rules, ing, host, index });
      cv.routes.push(route);
    }
  }

  // canaries: weights and header rules on the main route's rule for the same host, path type and path
  for (const { ing, options: o, canary } of parsed) {
    if (!canary || !o.canary) continue;
    const c = o.canary;
    for (const r of ing.rules) {
      const host = (r.host ?? '').toLowerCase();
      for (const p of r.paths) {
        const d = drafts.find((x) => x.host === host && x.index.has(`${p.pathType} ${p.path}`));
        const rule = d?.rules[d.index.get(`${p.pathType} ${p.path}`)!];
        const main = rule?.backendRefs?.[0];
        if (!d || !rule || !main) {
          cv.warn(ing, `canary for ${host || '*'} ${p.path}: no main Ingress path to attach to; skipped`);
          continue;
        }
        const ref = cv.backendRef(ing, p.backend);
        if (!ref) continue;
        if (c.weight > 0)
          rule.backendRefs = [
            { ...main, weight: c.weightTotal - c.weight },
            { ...ref, weight: c.weight },
          ];
        if (c.byHeader !== undefined) {
          const value =
            c.byHeaderValue !== undefined
              ? { type: 'Exact', value: c.byHeaderValue }
              : c.byHeaderPattern !== undefined
                ? { type: 'RegularExpression', value: c.byHeaderPattern.source }
                : { type: 'Exact', value: 'always' };
          const pathMatch = rule.matches[0]!;
          const base = { ...rule, matches: undefined };
          const withHeader = (v: Obj, to: Obj): Rule => ({
            ...base,
            matches: [{ ...pathMatch, headers: [{ name: c.byHeader!, ...v }] }],
            backendRefs: [{ name: to.name, port: to.port }],
          });
          d.rules.push(withHeader(value, ref));
          if (c.byHeaderValue === undefined && c.byHeaderPattern === undefined)
            d.rules.push(withHeader({ type: 'Exact', value: 'never' }, main));
        }
      }
    }
  }

  const gateway: Obj = {
    apiVersion: GATEWAY_API,
    kind: 'Gateway',
    metadata: { name: opts.gatewayName, namespace: gwNamespace },
    spec: {
      gatewayClassName: opts.gatewayClassName,
      listeners: [
        {
          name: 'http',
          port: 80,
          protocol: 'HTTP',
          allowedRoutes: { namespaces: { from: namespaces.size > 1 || !namespaces.has(gwNamespace) ? 'All' : 'Same' } },
        },
        ...cv.listeners.map((l) => ({
          name: l.name,
          port: 443,
          protocol: 'HTTPS',
          ...(l.hostname === undefined ? {} : { hostname: l.hostname }),
          tls: {
            mode: 'Terminate',
            certificateRefs: [
              {
                kind: 'Secret',
                name: l.secret.name,
                ...(l.secret.namespace === gwNamespace ? {} : { namespace: l.secret.namespace }),
              },
            ],
          },
          allowedRoutes: { namespaces: { from: namespaces.size > 1 || !namespaces.has(gwNamespace) ? 'All' : 'Same' } },
        })),
      ],
    },
  };
  const grants = new Map<string, Set<string>>();
  for (const l of cv.listeners)
    if (l.secret.namespace !== gwNamespace)
      grants.set(l.secret.namespace, (grants.get(l.secret.namespace) ?? new Set()).add(l.secret.name));
  const referenceGrants = [...grants].map(([ns, names]) => ({
    apiVersion: 'gateway.networking.k8s.io/v1beta1',
    kind: 'ReferenceGrant',
    metadata: { name: `${opts.gatewayName}-certificates`, namespace: ns },
    spec: {
      from: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: gwNamespace }],
      to: [...names].sort().map((name) => ({ group: '', kind: 'Secret', name })),
    },
  }));
  const gatewayClass = {
    apiVersion: GATEWAY_API,
    kind: 'GatewayClass',
    metadata: { name: opts.gatewayClassName },
    spec: { controllerName: opts.controllerName },
  };
  return { objects: [gatewayClass, gateway, ...referenceGrants, ...cv.routes], warnings: cv.warnings };
}

/** permanent-redirect (URL) as a RequestRedirect filter; undefined without the annotation. */
function permanentRedirect(cv: Converter, ing: Ingress, o: RouteOptions): Obj | undefined {
  if (o.permanentRedirect === undefined) return undefined;
  const u = new URL(o.permanentRedirect);
  const code = o.permanentRedirectCode;
  const allowed = [301, 302, 303, 307, 308];
  if (!allowed.includes(code))
    cv.warn(ing, `${NGINX}permanent-redirect-code ${code}: Gateway API allows ${allowed.join(', ')}; 301 used`);
  if (u.search !== '' || u.hash !== '')
    cv.warn(ing, `${NGINX}permanent-redirect ${o.permanentRedirect}: the query/fragment cannot be expressed; dropped`);
  return {
    type: 'RequestRedirect',
    requestRedirect: {
      scheme: u.protocol.slice(0, -1),
      hostname: u.hostname,
      ...(u.port === '' ? {} : { port: Number(u.port) }),
      path: { type: 'ReplaceFullPath', replaceFullPath: u.pathname },
      statusCode: allowed.includes(code) ? code : 301,
    },
  };
}

/** The objects as one multi-document YAML text, the warnings as leading comments. */
export function toYaml(result: ConvertResult): string {
  const head = result.warnings.map((w) => `# warning: ${w.replace(/\n/g, ' ')}\n`).join('');
  return head + result.objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}
