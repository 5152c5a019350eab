// The route compiler: a pure function from cluster objects (Ingress, IngressClass, Service, EndpointSlice,
// TLS Secret) to an immutable RouteTable. No I/O, no clock, no logging: the controller logs what it returns.
//
// Rules (Ingress networking.k8s.io/v1, docs/ingress.md):
//  - class selection: spec.ingressClassName naming an IngressClass whose controller is ours; else the legacy
//    kubernetes.io/ingress.class annotation equal to our class name; else (no class at all) ours when one of
//    our IngressClasses is marked default, or when the controller watches class-less Ingresses;
//  - hosts: exact, or `*.suffix` matching exactly one label; rules without host catch the rest;
//  - paths: Exact first, then the longest Prefix (whole segments, trailing slash ignored); Exact wins ties;
//    ImplementationSpecific is Prefix, or a case-insensitive regex when the host uses use-regex/rewrite-target;
//  - several Ingresses merge per host; on the same host+pathType+path the Ingress whose `namespace/name`
//    sorts first wins (deterministic, independent of event order) and the loser's path is reported;
//  - one bad Ingress (invalid annotation, host or path) is rejected alone; the others keep serving.
import type {
  EndpointSlice,
  Ingress,
  IngressBackend,
  IngressClass,
  Key,
  Service,
  TlsSecret,
} from '../src/model/types.ts';
import { keyOf } from '../src/model/types.ts';
import { AnnotationError, parseAnnotations } from './annotations.ts';
import type { RouteOptions } from './annotations.ts';
import type {
  Canary,
  CompileResult,
  DefaultRoute,
  HostRoutes,
  PathRoute,
  Rejection,
  RouteTable,
  TlsCert,
  Upstream,
} from './types.ts';

export const LEGACY_CLASS_ANNOTATION = 'kubernetes.io/ingress.class';

export interface ClusterState {
  readonly ingresses: Iterable<Ingress>;
  readonly classes: Iterable<IngressClass>;
  readonly services: Pick<ReadonlyMap<Key, Service>, 'get'>;
  /** all EndpointSlices (grouped here by namespace/serviceName) */
  readonly slices: Iterable<EndpointSlice>;
  readonly secrets: Pick<ReadonlyMap<Key, TlsSecret>, 'get'>;
}

export interface CompileOptions {
  /** IngressClass.spec.controller value we implement */
  readonly controllerName: string;
  /** class name honoured in the legacy annotation */
  readonly className: string;
  /** serve Ingresses that name no class even when no default IngressClass of ours exists */
  readonly watchWithoutClass: boolean;
  readonly version?: number;
}

export const DEFAULT_COMPILE_OPTIONS: CompileOptions = {
  controllerName: 'kdp.dev/ingress',
  className: 'kdp',
  watchWithoutClass: false,
};

const HOST_RE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const PLAIN_PATH_RE = /^\/[A-Za-z0-9\-._~/%!$&'+,;=:@]*$/; // no regex metacharacters ( ) * [ ] ^ | ? { }

/**
 * Whether the controller should serve this Ingress, and why not (ingress-nginx's order): spec.ingressClassName
 * names an IngressClass whose controller is ours; else the legacy annotation equals our class name (no
 * IngressClass object needed); else, with no class at all, our default IngressClass or --watch-ingress-without-class.
 */
export function classVerdict(
  ing: Ingress,
  classes: readonly IngressClass[],
  opts: CompileOptions,
): { readonly ours: true } | { readonly ours: false; readonly reason: string } {
  if (ing.ingressClassName !== undefined) {
    const cls = classes.find((c) => c.meta.name === ing.ingressClassName);
    if (cls === undefined)
      return { ours: false, reason: `spec.ingressClassName ${ing.ingressClassName}: no IngressClass of that name` };
    if (cls.controller !== opts.controllerName)
      return {
        ours: false,
        reason: `IngressClass ${cls.meta.name} belongs to controller ${cls.controller}, not ${opts.controllerName}`,
      };
    return { ours: true };
  }
  const legacy = ing.meta.annotations[LEGACY_CLASS_ANNOTATION];
  if (legacy !== undefined)
    return legacy === opts.className
      ? { ours: true }
      : { ours: false, reason: `annotation ${LEGACY_CLASS_ANNOTATION}: ${legacy} is not our class ${opts.className}` };
  const defaults = classes.filter((c) => c.isDefault);
  if (defaults.length > 0) {
    if (defaults.length === 1 && defaults[0]!.controller === opts.controllerName) return { ours: true };
    return {
      ours: false,
      reason:
        defaults.length > 1
          ? `no class, and ${defaults.length} IngressClasses are marked default`
          : `no class, and the default IngressClass ${defaults[0]!.meta.name} is not ours`,
    };
  }
  return opts.watchWithoutClass
    ? { ours: true }
    : { ours: false, reason: 'no class, no default IngressClass, and --watch-ingress-without-class is off' };
}

function slicesByService(slices: Iterable<EndpointSlice>): Map<Key, EndpointSlice[]> {
  const m = new Map<Key, EndpointSlice[]>();
  for (const s of slices) {
    const k = `${s.meta.namespace}/${s.serviceName}`;
    const l = m.get(k);
    if (l) l.push(s);
    else m.set(k, [s]);
  }
  return m;
}

export class Resolver {
  readonly #services: Pick<ReadonlyMap<Key, Service>, 'get'>;
  readonly #slices: Map<Key, EndpointSlice[]>;
  readonly #cache = new Map<string, Upstream>();
  readonly warnings: string[];
  constructor(state: Pick<ClusterState, 'services' | 'slices'>, warnings: string[]) {
    this.#services = state.services;
    this.#slices = slicesByService(state.slices);
    this.warnings = warnings;
  }

  upstream(namespace: string, service: string, port: { number?: number; name?: string }): Upstream {
    const portText = port.number !== undefined ? String(port.number) : (port.name ?? '');
    const id = `${namespace}/${service}/${portText}`;
    const hit = this.#cache.get(id);
    if (hit) return hit;
    const svc = this.#services.get(`${namespace}/${service}`);
    const sp = svc?.ports.find(
      (p) => (port.number !== undefined ? p.port === port.number : p.name === port.name) && p.protocol === 'TCP',
    );
    const endpoints = new Set<string>();
    if (!svc) this.warnings.push(`service ${namespace}/${service} not found`);
    else if (!sp) this.warnings.push(`service ${namespace}/${service} has no TCP port ${portText}`);
    else {
      for (const slice of this.#slices.get(`${namespace}/${service}`) ?? []) {
        if (slice.addressType === 'FQDN') continue;
        const ep = slice.ports.find((p) => p.name === sp.name && p.protocol === 'TCP');
        if (!ep) continue;
        for (const e of slice.endpoints) {
          if (!e.conditions.ready) continue;
          for (const a of e.addresses)
            endpoints.add(slice.addressType === 'IPv6' ? `[${a}]:${ep.port}` : `${a}:${ep.port}`);
        }
      }
    }
    const u: Upstream = Object.freeze({
      name: `${namespace}-${service}-${portText}`,
      namespace,
      service,
      port: portText,
      endpoints: Object.freeze([...endpoints].sort()),
    });
    this.#cache.set(id, u);
    return u;
  }

  backend(namespace: string, b: IngressBackend): Upstream {
    if (!b.service) throw new AnnotationError(`resource backends (${b.resource?.kind ?? '?'}) are not supported`);
    const p = b.service.port;
    if ((p.number === undefined) === (p.name === undefined))
      throw new AnnotationError(`backend ${b.service.name}: exactly one of port.number and port.name`);
    return this.upstream(namespace, b.service.name, p);
  }
}

interface Draft {
  host: string;
  routes: Map<string, PathRoute>; // `${kind} ${path}`
  regex: boolean;
}

interface ParsedPath {
  readonly host: string;
  readonly pathType: 'Exact' | 'Prefix' | 'ImplementationSpecific';
  readonly path: string;
  readonly upstream: Upstream;
}

function validateHost(h: string): string {
  const host = h.toLowerCase();
  if (!HOST_RE.test(host)) throw new AnnotationError(`invalid host ${JSON.stringify(h)}`);
  return host;
}

function hostCoveredBy(host: string, tlsHosts: readonly string[]): boolean {
  for (const t of tlsHosts) {
    const th = t.toLowerCase();
    if (th === host) return true;
    if (th.startsWith('*.') && !host.startsWith('*.') && host.slice(host.indexOf('.') + 1) === th.slice(2)) return true;
  }
  return false;
}

function stripSlash(p: string): string {
  return p.endsWith('/') ? p.replace(/\/+$/, '') : p;
}

function regexFor(path: string): RegExp {
  try {
    return new RegExp(`^${path}`, 'i');
  } catch (err) {
    throw new AnnotationError(`path ${JSON.stringify(path)}: invalid regular expression: ${(err as Error).message}`);
  }
}

function orderRoutes(routes: Iterable<PathRoute>): PathRoute[] {
  const rank = (r: PathRoute) => (r.kind === 'Exact' ? 0 : 1);
  return [...routes].sort(
    (a, b) =>
      rank(a) - rank(b) ||
      (a.kind === 'Prefix' && b.kind === 'Prefix' ? b.prefix.length - a.prefix.length : 0) ||
      b.path.length - a.path.length ||
      (a.path < b.path ? -1 : a.path > b.path ? 1 : 0),
  );
}

/** Compiles cluster state into a route table. Pure. */
export function compile(state: ClusterState, opts: CompileOptions = DEFAULT_COMPILE_OPTIONS): CompileResult {
  const classes = [...state.classes];
  const warnings: string[] = [];
  const rejected: Rejection[] = [];
  const accepted: Key[] = [];
  const resolver = new Resolver(state, warnings);
  const ignored: Rejection[] = [];
  const ours = [...state.ingresses]
    .filter((i) => {
      if (i.meta.deletionTimestamp) return false;
      const v = classVerdict(i, classes, opts);
      if (!v.ours) ignored.push({ ingress: keyOf(i.meta), reason: v.reason });
      return v.ours;
    })
    .sort((a, b) => (keyOf(a.meta) < keyOf(b.meta) ? -1 : 1));
  ignored.sort((a, b) => (a.ingress < b.ingress ? -1 : 1));

  // pass 1: validate each Ingress on its own; nothing of a rejected Ingress reaches the table
  interface Checked {
    ing: Ingress;
    key: Key;
    options: RouteOptions;
    canary: boolean;
    paths: ParsedPath[];
    defaultUpstream?: Upstream;
    fallback?: Upstream;
    tlsHosts: string[];
  }
  const checked: Checked[] = [];
  for (const ing of ours) {
    const key = keyOf(ing.meta);
    try {
      const { options, canary, ignored } = parseAnnotations(ing.meta.annotations);
      if (ignored.length > 0) warnings.push(`${key}: annotations not supported, ignored: ${ignored.join(', ')}`);
      const ns = ing.meta.namespace;
      const paths: ParsedPath[] = [];
      for (const rule of ing.rules) {
        const host = rule.host === undefined || rule.host === '' ? '' : validateHost(rule.host);
        for (const p of rule.paths) {
          const path = p.path === '' && p.pathType === 'ImplementationSpecific' ? '/' : p.path;
          if (!path.startsWith('/')) throw new AnnotationError(`path ${JSON.stringify(p.path)} must start with /`);
          const regexy =
            p.pathType === 'ImplementationSpecific' && (options.useRegex || options.rewriteTarget !== undefined);
          if (!regexy && !PLAIN_PATH_RE.test(path))
            throw new AnnotationError(
              `path ${JSON.stringify(p.path)} (${p.pathType}) has characters only regex paths may use`,
            );
          if (regexy) regexFor(path);
          paths.push({ host, pathType: p.pathType, path, upstream: resolver.backend(ns, p.backend) });
        }
      }
      const defaultUpstream = ing.defaultBackend ? resolver.backend(ns, ing.defaultBackend) : undefined;
      if (ing.rules.length === 0 && !defaultUpstream) throw new AnnotationError('no rules and no defaultBackend');
      const fallback =
        options.defaultBackend === undefined
          ? undefined
          : resolver.upstream(ns, options.defaultBackend, { number: 80 });
      const tlsHosts = ing.tls.flatMap((t) => t.hosts.map((h) => h.toLowerCase()));
      checked.push({
        ing,
        key,
        options,
        canary,
        paths,
        tlsHosts,
        ...(defaultUpstream ? { defaultUpstream } : {}),
        ...(fallback ? { fallback } : {}),
      });
      accepted.push(key);
    } catch (err) {
      if (!(err instanceof AnnotationError)) throw err;
      rejected.push({ ingress: key, reason: err.message });
    }
  }

  // pass 2: hosts in regex mode (any Ingress on the host uses use-regex or rewrite-target)
  const regexHosts = new Set<string>();
  for (const c of checked)
    if (!c.canary && (c.options.useRegex || c.options.rewriteTarget !== undefined))
      for (const p of c.paths) regexHosts.add(p.host);

  // pass 3: merge the main (non-canary) Ingresses per host
  const drafts = new Map<string, Draft>();
  let defaultRoute: DefaultRoute | undefined;
  for (const c of checked) {
    if (c.canary) continue;
    if (c.defaultUpstream) {
      if (!defaultRoute)
        defaultRoute = Object.freeze({ upstream: c.defaultUpstream, ingress: c.key, options: c.options });
      else warnings.push(`${c.key}: defaultBackend ignored, ${defaultRoute.ingress} already sets one`);
    }
    for (const p of c.paths) {
      let d = drafts.get(p.host);
      if (!d) drafts.set(p.host, (d = { host: p.host, routes: new Map(), regex: regexHosts.has(p.host) }));
      const kind = p.pathType === 'Exact' ? 'Exact' : d.regex ? 'Regex' : 'Prefix';
      const id = `${kind} ${kind === 'Regex' ? p.path.toLowerCase() : p.path}`;
      const existing = d.routes.get(id);
      if (existing) {
        warnings.push(
          `${c.key}: ${p.host || '*'} ${p.pathType} ${p.path} already served by ${existing.ingress}; ignored`,
        );
        continue;
      }
      const sslRedirect =
        c.options.forceSslRedirect || (c.options.sslRedirect && p.host !== '' && hostCoveredBy(p.host, c.tlsHosts));
      d.routes.set(
        id,
        Object.freeze({
          kind,
          path: p.path,
          prefix: kind === 'Prefix' ? stripSlash(p.path) : p.path,
          ...(kind === 'Regex' ? { regex: regexFor(p.path) } : {}),
          upstream: p.upstream,
          ...(c.fallback ? { fallback: c.fallback } : {}),
          ingress: c.key,
          options: c.options,
          sslRedirect,
        }),
      );
    }
  }

  // pass 4: canaries attach to the main route with the same host, path type and path
  for (const c of checked) {
    if (!c.canary || !c.options.canary) continue;
    const co = c.options.canary;
    for (const p of c.paths) {
      const d = drafts.get(p.host);
      const kind = p.pathType === 'Exact' ? 'Exact' : d?.regex ? 'Regex' : 'Prefix';
      const id = `${kind} ${kind === 'Regex' ? p.path.toLowerCase() : p.path}`;
      const main = d?.routes.get(id);
      if (!d || !main) {
        warnings.push(`${c.key}: canary for ${p.host || '*'} ${p.path} has no main Ingress; ignored`);
        continue;
      }
      if (main.canary) {
        warnings.push(`${c.key}: ${p.host || '*'} ${p.path} already has canary ${main.canary.ingress}; ignored`);
        continue;
      }
      const canary: Canary = Object.freeze({ upstream: p.upstream, ingress: c.key, ...co });
      d.routes.set(id, Object.freeze({ ...main, canary }));
    }
  }

  // certificates: first Ingress (by key) naming a host wins
  const certs = new Map<string, TlsCert>();
  for (const c of checked) {
    for (const t of c.ing.tls) {
      if (t.secretName === undefined) continue;
      const sk = `${c.ing.meta.namespace}/${t.secretName}`;
      const secret = state.secrets.get(sk);
      if (!secret) {
        warnings.push(`${c.key}: TLS secret ${sk} not found; the default certificate is used`);
        continue;
      }
      for (const h of t.hosts) {
        const host = h.toLowerCase();
        if (!certs.has(host))
          certs.set(host, Object.freeze({ secret: sk, certPem: secret.certPem, keyPem: secret.keyPem }));
      }
    }
  }

  const hosts = new Map<string, HostRoutes>();
  const wildcards = new Map<string, HostRoutes>();
  let any: HostRoutes | undefined;
  for (const d of drafts.values()) {
    const hr: HostRoutes = Object.freeze({ host: d.host, paths: Object.freeze(orderRoutes(d.routes.values())) });
    if (d.host === '') any = hr;
    else if (d.host.startsWith('*.')) wildcards.set(d.host.slice(2), hr);
    else hosts.set(d.host, hr);
  }
  const table: RouteTable = Object.freeze({
    hosts,
    wildcards,
    ...(any ? { any } : {}),
    ...(defaultRoute ? { defaultRoute } : {}),
    certs,
    version: opts.version ?? 0,
  });
  return { table, accepted, rejected, ignored, warnings };
}
