// The Gateway API compiler: GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant (+ Service, EndpointSlice,
// Secret, Namespace) -> one RouteTable per served (address, port) and the status of every object. Pure: no I/O,
// no clock, no logging (the controller logs `warnings` and PATCHes `status`). Semantics from gateway-api
// apis/v1 (httproute_types.go, gateway_types.go, shared_types.go) and its conformance tests; docs/ingress.md.
//
//  - ours: a GatewayClass whose controllerName is opts.controllerName; a Gateway of such a class; a route's
//    parentRef naming such a Gateway (other parentRefs get no status from us);
//  - listeners: HTTP and HTTPS (Terminate) only; listeners of one Gateway on one port share a table; different
//    protocols on a port -> Conflicted ProtocolConflict, the same hostname twice -> HostnameConflict (neither
//    served); HTTPS certificateRefs resolve to kubernetes.io/tls Secrets (cross-namespace needs a ReferenceGrant);
//  - attachment per parentRef: sectionName/port select listeners (none: NoMatchingParent), allowedRoutes
//    (namespaces, kinds: NotAllowedByListeners), hostnames intersected with the listener's
//    (NoMatchingListenerHostname); a request host belongs to the most specific listener hostname on its port
//    (listener isolation), `*.` matches one or more labels;
//  - precedence in a host: the route's hostname (longest non-wildcard, then longest wildcard), then Exact path,
//    RegularExpression (longer first; implementation-specific), PathPrefix (longer first), method, more header
//    matches, more query matches, older route, `namespace/name`, rule order, match order;
//  - a rule with an unsupported value (filter, match type, regex, duration) is dropped: Accepted True with
//    PartiallyInvalid "Dropped Rule ..." when others remain, Accepted False UnsupportedValue when none do;
//  - an invalid backendRef (unknown kind, cross-namespace without ReferenceGrant, missing Service or port) sets
//    ResolvedRefs False with the spec's reason and its share of the rule's weight answers 500.
import type {
  Gateway,
  GatewayClass,
  GRPCRoute,
  GrpcRouteRule,
  GwBackendRef,
  GwFilter,
  GwHeaderModifier,
  GwListener,
  GwParentRef,
  GwPathModifier,
  GwRef,
  GwValueMatch,
  HTTPRoute,
  HttpRouteRule,
  Key,
  LabelSelector,
  TlsSecret,
} from '../../src/model/types.ts';
import { keyOf } from '../../src/model/types.ts';
import { DEFAULT_OPTIONS } from '../annotations.ts';
import type { RouteOptions } from '../annotations.ts';
import { Resolver } from '../compile.ts';
import type {
  GatewayBackend,
  GatewayMirror,
  GatewayPathModifier,
  GatewayRedirect,
  GatewayRewrite,
  GatewayRule,
  HeaderModifier,
  HostRoutes,
  PathRoute,
  RouteTable,
  TlsCert,
  Upstream,
  ValueMatcher,
} from '../types.ts';
import { GATEWAY_GROUP } from './types.ts';
import type {
  Condition,
  ConditionStatus,
  GatewayClassStatus,
  GatewayCompileOptions,
  GatewayCompileResult,
  GatewayListenerTable,
  GatewayState,
  GatewayStatus,
  ListenerStatus,
  ParentReference,
  RouteGroupKind,
  RouteParentStatus,
  RouteStatus,
} from './types.ts';

/** Route options of every Gateway API path: no ingress-nginx annotation applies; no body limit. */
const GATEWAY_ROUTE_OPTIONS: RouteOptions = Object.freeze({ ...DEFAULT_OPTIONS, sslRedirect: false, bodyLimit: 0 });

const HTTP_KINDS: readonly RouteGroupKind[] = [
  { group: GATEWAY_GROUP, kind: 'HTTPRoute' },
  { group: GATEWAY_GROUP, kind: 'GRPCRoute' },
];
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[^\r\n\0]*$/;
const PATH_VALUE = /^\/[^\s\0?#]*$/;
const DURATION = /^(?:[0-9]{1,5}(?:h|m|s|ms)){1,4}$/;
const REDIRECT_CODES = new Set([301, 302, 303, 307, 308]);

function cond(
  type: string,
  status: ConditionStatus,
  reason: string,
  message: string,
  observedGeneration: number,
): Condition {
  return { type, status, reason, message, observedGeneration };
}

/** A value the spec answers with UnsupportedValue (the rule is dropped). */
class Unsupported extends Error {}

function unsupported(msg: string): never {
  throw new Unsupported(msg);
}

function regex(source: string, what: string): RegExp {
  try {
    return new RegExp(`^(?:${source})$`);
  } catch (err) {
    return unsupported(`${what}: invalid regular expression ${JSON.stringify(source)}: ${(err as Error).message}`);
  }
}

/** Gateway API duration (`1h2m3s500ms`) in ms; 0 disables. */
export function parseDuration(v: string, what: string): number {
  if (!DURATION.test(v)) unsupported(`${what}: ${JSON.stringify(v)} is not a Gateway API duration`);
  let ms = 0;
  for (const m of v.matchAll(/([0-9]+)(h|ms|m|s)/g)) {
    const n = Number(m[1]);
    ms += m[2] === 'h' ? n * 3_600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
  }
  return ms;
}

// ------------------------------------------------------------------------------------------- hostnames

/** Whether pattern (exact, `*.suffix`, or '' = any) covers host (exact or `*.suffix`); `*.` spans labels. */
function covers(pattern: string, host: string): boolean {
  if (pattern === '' || pattern === host) return true;
  if (!pattern.startsWith('*.')) return false;
  const suffix = pattern.slice(1); // `.example.com`
  if (host.startsWith('*.')) return host.slice(1).endsWith(suffix) && host.length > pattern.length;
  return host.endsWith(suffix) && host.length > suffix.length;
}

/** The hostnames a route serves through a listener (spec: HTTPRouteSpec.hostnames); [] = no intersection. */
export function intersectHostnames(listener: string | undefined, route: readonly string[]): string[] {
  const l = listener ?? '';
  if (route.length === 0) return [l];
  const out = new Set<string>();
  for (const r of route) {
    if (covers(l, r)) out.add(r);
    else if (covers(r, l)) out.add(l);
  }
  return [...out];
}

/** exact > longer wildcard > shorter wildcard > none: for "the most specific listener hostname". */
function specificity(h: string): number {
  if (h === '') return 0;
  return h.startsWith('*.') ? h.length : 10_000 + h.length;
}

// ------------------------------------------------------------------------------------------- references

function grantAllows(
  state: GatewayState,
  from: { group: string; kind: string; namespace: string },
  to: { group: string; kind: string; namespace: string; name: string },
): boolean {
  if (from.namespace === to.namespace) return true;
  for (const g of state.referenceGrants) {
    if (g.meta.namespace !== to.namespace) continue;
    const f = g.from.some((x) => x.group === from.group && x.kind === from.kind && x.namespace === from.namespace);
    const t = g.to.some(
      (x) => x.group === to.group && x.kind === to.kind && (x.name === undefined || x.name === to.name),
    );
    if (f && t) return true;
  }
  return false;
}

function selectorMatches(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels)) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions) {
    const has = Object.hasOwn(labels, e.key);
    const v = labels[e.key];
    if (e.operator === 'In' && !(has && e.values.includes(v!))) return false;
    if (e.operator === 'NotIn' && has && e.values.includes(v!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
    if (!['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(e.operator)) return false;
  }
  return true;
}

// ------------------------------------------------------------------------------------------- listeners

interface ListenerState {
  readonly spec: GwListener;
  readonly kinds: readonly RouteGroupKind[];
  accepted: boolean;
  programmed: boolean;
  readonly conditions: Condition[];
  /** routes (by kind and key) Accepted on it: a route with two parentRefs selecting it counts once */
  readonly attached: Set<string>;
  cert?: TlsCert;
}

interface GatewayEntry {
  readonly gw: Gateway;
  readonly key: Key;
  readonly address?: string;
  readonly listeners: Map<string, ListenerState>;
}

function listenerKinds(l: GwListener): { kinds: RouteGroupKind[]; invalid: string[] } {
  if (l.protocol !== 'HTTP' && l.protocol !== 'HTTPS') return { kinds: [], invalid: [] };
  if (l.allowedRoutes.kinds.length === 0) return { kinds: [...HTTP_KINDS], invalid: [] };
  const kinds: RouteGroupKind[] = [];
  const invalid: string[] = [];
  for (const k of l.allowedRoutes.kinds) {
    if (HTTP_KINDS.some((h) => h.group === k.group && h.kind === k.kind)) {
      if (!kinds.some((x) => x.kind === k.kind)) kinds.push({ group: k.group, kind: k.kind });
    } else invalid.push(`${k.group}/${k.kind}`);
  }
  return { kinds, invalid };
}

function resolveCert(
  state: GatewayState,
  gw: Gateway,
  l: GwListener,
): { cert?: TlsCert; reason?: string; message?: string } {
  if (!l.tls || l.tls.certificateRefs.length === 0)
    return { reason: 'InvalidCertificateRef', message: 'an HTTPS listener needs tls.certificateRefs' };
  let first: { reason: string; message: string } | undefined;
  let cert: TlsCert | undefined;
  for (const ref of l.tls.certificateRefs) {
    const ns = ref.namespace ?? gw.meta.namespace;
    const what = `certificateRef ${ref.kind} ${ns}/${ref.name}`;
    let bad: { reason: string; message: string } | undefined;
    if (ref.group !== '' || ref.kind !== 'Secret')
      bad = { reason: 'InvalidCertificateRef', message: `${what}: not a Secret` };
    else if (
      !grantAllows(
        state,
        { group: GATEWAY_GROUP, kind: 'Gateway', namespace: gw.meta.namespace },
        { group: '', kind: 'Secret', namespace: ns, name: ref.name },
      )
    )
      bad = { reason: 'RefNotPermitted', message: `${what}: no ReferenceGrant in ${ns} allows it` };
    else {
      const s: TlsSecret | undefined = state.secrets.get(`${ns}/${ref.name}`);
      if (!s) bad = { reason: 'InvalidCertificateRef', message: `${what}: no such kubernetes.io/tls Secret` };
      else cert ??= { secret: keyOf(s.meta), certPem: s.certPem, keyPem: s.keyPem };
    }
    first ??= bad;
  }
  return { ...(cert ? { cert } : {}), ...(first ?? {}) };
}

function buildGateway(
  state: GatewayState,
  gw: Gateway,
  address: string | undefined,
  taken: Map<string, Key>,
): GatewayEntry {
  const g = gw.generation;
  const key = keyOf(gw.meta);
  const listeners = new Map<string, ListenerState>();
  // conflicts on a port: protocols, then hostnames
  const byPort = new Map<number, GwListener[]>();
  for (const l of gw.listeners) byPort.set(l.port, [...(byPort.get(l.port) ?? []), l]);
  for (const l of gw.listeners) {
    const conditions: Condition[] = [];
    const { kinds, invalid } = listenerKinds(l);
    const ls: ListenerState = { spec: l, kinds, accepted: true, programmed: true, conditions, attached: new Set() };
    listeners.set(l.name, ls);
    const peers = byPort.get(l.port)!;
    let conflict: string | undefined;
    if (peers.some((p) => p.protocol !== l.protocol)) conflict = 'ProtocolConflict';
    else if (peers.some((p) => p !== l && (p.hostname ?? '') === (l.hostname ?? ''))) conflict = 'HostnameConflict';
    let accepted = cond('Accepted', 'True', 'Accepted', 'listener accepted', g);
    if (l.protocol !== 'HTTP' && l.protocol !== 'HTTPS')
      accepted = cond(
        'Accepted',
        'False',
        'UnsupportedProtocol',
        `protocol ${l.protocol} is not supported (HTTP, HTTPS)`,
        g,
      );
    else if (l.protocol === 'HTTPS' && l.tls?.mode === 'Passthrough')
      accepted = cond('Accepted', 'False', 'UnsupportedValue', 'tls.mode Passthrough is not supported on HTTPS', g);
    else if (conflict)
      accepted = cond('Accepted', 'False', conflict, `another listener on port ${l.port} conflicts (${conflict})`, g);
    else if (address !== undefined && taken.has(`${address}:${l.port}`) && taken.get(`${address}:${l.port}`) !== key)
      accepted = cond(
        'Accepted',
        'False',
        'PortUnavailable',
        `${address}:${l.port} is served for Gateway ${taken.get(`${address}:${l.port}`)}`,
        g,
      );
    ls.accepted = accepted.status === 'True';
    conditions.push(accepted);
    conditions.push(
      conflict
        ? cond('Conflicted', 'True', conflict, `conflicts with another listener on port ${l.port}`, g)
        : cond('Conflicted', 'False', 'NoConflicts', 'no conflicts', g),
    );
    let resolved = cond('ResolvedRefs', 'True', 'ResolvedRefs', 'all references resolved', g);
    if (invalid.length > 0)
      resolved = cond(
        'ResolvedRefs',
        'False',
        'InvalidRouteKinds',
        `unsupported route kinds: ${invalid.join(', ')}`,
        g,
      );
    if (l.protocol === 'HTTPS' && ls.accepted) {
      const c = resolveCert(state, gw, l);
      if (c.cert) ls.cert = c.cert;
      if (c.reason) resolved = cond('ResolvedRefs', 'False', c.reason, c.message!, g);
      if (!c.cert) ls.programmed = false;
    }
    conditions.push(resolved);
    if (!ls.accepted || address === undefined || (kinds.length === 0 && invalid.length > 0)) ls.programmed = false;
    conditions.push(
      ls.programmed
        ? cond('Programmed', 'True', 'Programmed', 'listener programmed', g)
        : cond('Programmed', 'False', 'Invalid', 'listener not served (see its other conditions)', g),
    );
  }
  if (address !== undefined)
    for (const ls of listeners.values()) if (ls.programmed) taken.set(`${address}:${ls.spec.port}`, key);
  return { gw, key, ...(address !== undefined ? { address } : {}), listeners };
}

// ------------------------------------------------------------------------------------------- rules

function valueMatchers(ms: readonly GwValueMatch[], what: string, lower: boolean): ValueMatcher[] {
  const out: ValueMatcher[] = [];
  const seen = new Set<string>();
  for (const m of ms) {
    const name = lower ? m.name.toLowerCase() : m.name;
    if (seen.has(name)) continue; // the first entry of an equivalent name counts
    seen.add(name);
    if (m.type === 'Exact') out.push({ name, exact: m.value });
    else if (m.type === 'RegularExpression') out.push({ name, regex: regex(m.value, `${what} ${m.name}`) });
    else unsupported(`${what} ${m.name}: match type ${JSON.stringify(m.type)} is not supported`);
  }
  return out;
}

function headerModifier(h: GwHeaderModifier, what: string): HeaderModifier {
  const pairs = (xs: readonly { name: string; value: string }[]): [string, string][] =>
    xs.map((x) => {
      if (!TOKEN.test(x.name)) unsupported(`${what}: invalid header name ${JSON.stringify(x.name)}`);
      if (!HEADER_VALUE.test(x.value)) unsupported(`${what}: header ${x.name} value has a line break`);
      return [x.name, x.value];
    });
  for (const r of h.remove) if (!TOKEN.test(r)) unsupported(`${what}: invalid header name ${JSON.stringify(r)}`);
  return { set: pairs(h.set), add: pairs(h.add), remove: h.remove.map((r) => r.toLowerCase()) };
}

function pathModifier(p: GwPathModifier, what: string, prefixOk: boolean): GatewayPathModifier {
  if (p.type === 'ReplaceFullPath' && p.replaceFullPath !== undefined) {
    if (!PATH_VALUE.test(p.replaceFullPath)) unsupported(`${what}: invalid path ${JSON.stringify(p.replaceFullPath)}`);
    return { type: 'ReplaceFullPath', value: p.replaceFullPath };
  }
  if (p.type === 'ReplacePrefixMatch' && p.replacePrefixMatch !== undefined) {
    if (!prefixOk) unsupported(`${what}: ReplacePrefixMatch needs exactly one PathPrefix match`);
    if (p.replacePrefixMatch !== '' && !PATH_VALUE.test(p.replacePrefixMatch))
      unsupported(`${what}: invalid path ${JSON.stringify(p.replacePrefixMatch)}`);
    return { type: 'ReplacePrefixMatch', value: p.replacePrefixMatch };
  }
  return unsupported(`${what}: path modifier type ${JSON.stringify(p.type)} is not supported`);
}

interface RefProblem {
  readonly reason: 'InvalidKind' | 'RefNotPermitted' | 'BackendNotFound';
  readonly message: string;
}

/** Context while compiling one route. */
interface RouteCtx {
  readonly state: GatewayState;
  readonly resolver: Resolver;
  readonly kind: 'HTTPRoute' | 'GRPCRoute';
  readonly namespace: string;
  /** first unresolved reference (ResolvedRefs False) */
  problem?: RefProblem;
}

function backendUpstream(ctx: RouteCtx, ref: GwRef & { readonly port?: number }): Upstream | undefined {
  const ns = ref.namespace ?? ctx.namespace;
  const what = `backendRef ${ref.kind} ${ns}/${ref.name}`;
  let p: RefProblem | undefined;
  if (ref.group !== '' || ref.kind !== 'Service')
    p = { reason: 'InvalidKind', message: `${what}: only core Services are supported` };
  else if (
    !grantAllows(
      ctx.state,
      { group: GATEWAY_GROUP, kind: ctx.kind, namespace: ctx.namespace },
      { group: '', kind: 'Service', namespace: ns, name: ref.name },
    )
  )
    p = { reason: 'RefNotPermitted', message: `${what}: no ReferenceGrant in ${ns} allows it` };
  else {
    const svc = ctx.state.services.get(`${ns}/${ref.name}`);
    if (!svc) p = { reason: 'BackendNotFound', message: `${what}: no such Service` };
    else if (ref.port === undefined) p = { reason: 'BackendNotFound', message: `${what}: port is required` };
    else if (!svc.ports.some((sp) => sp.port === ref.port && sp.protocol === 'TCP'))
      p = { reason: 'BackendNotFound', message: `${what}: the Service has no TCP port ${ref.port}` };
  }
  if (p) {
    ctx.problem ??= p;
    return undefined;
  }
  return ctx.resolver.upstream(ns, ref.name, { number: ref.port! });
}

interface RuleAction {
  readonly requestHeaders?: HeaderModifier;
  readonly responseHeaders?: HeaderModifier;
  readonly redirect?: GatewayRedirect;
  readonly rewrite?: GatewayRewrite;
  readonly mirrors: GatewayMirror[];
}

const RULE_FILTERS = new Set([
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'RequestRedirect',
  'URLRewrite',
  'RequestMirror',
]);

function ruleAction(ctx: RouteCtx, filters: readonly GwFilter[], what: string, prefixOk: boolean): RuleAction {
  const out: { -readonly [K in keyof RuleAction]: RuleAction[K] } = { mirrors: [] };
  const grpc = ctx.kind === 'GRPCRoute';
  for (const [i, f] of filters.entries()) {
    const fw = `${what} filters[${i}]`;
    if (!RULE_FILTERS.has(f.type) || (grpc && (f.type === 'RequestRedirect' || f.type === 'URLRewrite')))
      unsupported(`${fw}: filter type ${JSON.stringify(f.type)} is not supported`);
    if (f.type === 'RequestHeaderModifier') {
      if (out.requestHeaders || !f.requestHeaderModifier) unsupported(`${fw}: RequestHeaderModifier repeated or empty`);
      out.requestHeaders = headerModifier(f.requestHeaderModifier, fw);
    } else if (f.type === 'ResponseHeaderModifier') {
      if (out.responseHeaders || !f.responseHeaderModifier)
        unsupported(`${fw}: ResponseHeaderModifier repeated or empty`);
      out.responseHeaders = headerModifier(f.responseHeaderModifier, fw);
    } else if (f.type === 'RequestRedirect') {
      const r = f.requestRedirect;
      if (out.redirect || !r) unsupported(`${fw}: RequestRedirect repeated or empty`);
      if (r.scheme !== undefined && r.scheme !== 'http' && r.scheme !== 'https')
        unsupported(`${fw}: scheme ${JSON.stringify(r.scheme)} is not http or https`);
      if (!REDIRECT_CODES.has(r.statusCode)) unsupported(`${fw}: statusCode ${r.statusCode} is not supported`);
      if (r.hostname?.startsWith('*.')) unsupported(`${fw}: hostname must not be a wildcard`);
      out.redirect = {
        ...(r.scheme !== undefined ? { scheme: r.scheme } : {}),
        ...(r.hostname !== undefined ? { hostname: r.hostname } : {}),
        ...(r.port !== undefined ? { port: r.port } : {}),
        ...(r.path ? { path: pathModifier(r.path, fw, prefixOk) } : {}),
        statusCode: r.statusCode,
      };
    } else if (f.type === 'URLRewrite') {
      const r = f.urlRewrite;
      if (out.rewrite || !r) unsupported(`${fw}: URLRewrite repeated or empty`);
      if (r.hostname?.startsWith('*.')) unsupported(`${fw}: hostname must not be a wildcard`);
      out.rewrite = {
        ...(r.hostname !== undefined ? { hostname: r.hostname } : {}),
        ...(r.path ? { path: pathModifier(r.path, fw, prefixOk) } : {}),
      };
    } else {
      const m = f.requestMirror;
      if (!m) unsupported(`${fw}: RequestMirror is empty`);
      const up = backendUpstream(ctx, m.backendRef);
      const fraction =
        m.fraction !== undefined
          ? m.fraction.numerator / m.fraction.denominator
          : m.percent !== undefined
            ? m.percent / 100
            : 1;
      if (up) out.mirrors.push({ upstream: up, fraction });
    }
  }
  if (out.redirect && out.rewrite) unsupported(`${what}: RequestRedirect and URLRewrite cannot be combined`);
  return out;
}

interface Backends {
  readonly backends: GatewayBackend[];
  readonly totalWeight: number;
}

function backends(ctx: RouteCtx, refs: readonly GwBackendRef[], what: string): Backends {
  const out: GatewayBackend[] = [];
  let total = 0;
  for (const [i, ref] of refs.entries()) {
    const bw = `${what} backendRefs[${i}]`;
    let requestHeaders: HeaderModifier | undefined;
    let responseHeaders: HeaderModifier | undefined;
    for (const [j, f] of ref.filters.entries()) {
      const fw = `${bw} filters[${j}]`;
      if (f.type === 'RequestHeaderModifier' && f.requestHeaderModifier && !requestHeaders)
        requestHeaders = headerModifier(f.requestHeaderModifier, fw);
      else if (f.type === 'ResponseHeaderModifier' && f.responseHeaderModifier && !responseHeaders)
        responseHeaders = headerModifier(f.responseHeaderModifier, fw);
      else unsupported(`${fw}: filter type ${JSON.stringify(f.type)} is not supported on a backendRef`);
    }
    const upstream = backendUpstream(ctx, ref);
    if (ref.weight === 0) continue;
    total += ref.weight;
    out.push({
      ...(upstream ? { upstream } : {}),
      weight: ref.weight,
      ...(requestHeaders ? { requestHeaders } : {}),
      ...(responseHeaders ? { responseHeaders } : {}),
    });
  }
  return { backends: out, totalWeight: total };
}

/** One compiled match of a rule, with what it sorts by. */
interface Compiled {
  readonly kind: 'Exact' | 'Prefix' | 'Regex';
  readonly path: string;
  readonly prefix: string;
  readonly regex?: RegExp;
  readonly headers: ValueMatcher[];
  readonly queryParams: ValueMatcher[];
  readonly method?: string;
  /** GRPCRoute precedence: service and method characters */
  readonly grpc?: readonly [number, number];
}

function stripSlash(p: string): string {
  return p.replace(/\/+$/, '');
}

function httpMatches(rule: HttpRouteRule, what: string): Compiled[] {
  return rule.matches.map((m, j) => {
    const mw = `${what} matches[${j}]`;
    const headers = valueMatchers(m.headers, `${mw} header`, true);
    const queryParams = valueMatchers(m.queryParams, `${mw} query param`, false);
    let method: string | undefined;
    if (m.method !== undefined) {
      if (!METHODS.has(m.method)) unsupported(`${mw}: method ${JSON.stringify(m.method)} is not supported`);
      method = m.method;
    }
    const v = m.path.value;
    const base = { headers, queryParams, ...(method ? { method } : {}) };
    if (m.path.type === 'Exact' || m.path.type === 'PathPrefix') {
      if (!PATH_VALUE.test(v)) unsupported(`${mw}: path ${JSON.stringify(v)} must start with / (no query, no spaces)`);
      return m.path.type === 'Exact'
        ? { kind: 'Exact', path: v, prefix: v, ...base }
        : { kind: 'Prefix', path: v, prefix: stripSlash(v), ...base };
    }
    if (m.path.type === 'RegularExpression')
      return { kind: 'Regex', path: v, prefix: '', regex: regex(v, `${mw} path`), ...base };
    return unsupported(`${mw}: path match type ${JSON.stringify(m.path.type)} is not supported`);
  });
}

const GRPC_NAME = /^[A-Za-z0-9_.]+$/;

function grpcMatches(rule: GrpcRouteRule, what: string): Compiled[] {
  const ms = rule.matches.length > 0 ? rule.matches : [{ headers: [] }];
  return ms.map((m, j) => {
    const mw = `${what} matches[${j}]`;
    const headers = valueMatchers(m.headers, `${mw} header`, true);
    const base = { headers, queryParams: [] as ValueMatcher[] };
    const mt = m.method;
    if (!mt) return { kind: 'Prefix', path: '/', prefix: '', ...base, grpc: [0, 0] as const };
    const s = mt.service;
    const me = mt.method;
    const grpc = [s?.length ?? 0, me?.length ?? 0] as const;
    if (mt.type === 'Exact') {
      if ((s !== undefined && !GRPC_NAME.test(s)) || (me !== undefined && !/^[A-Za-z0-9_]+$/.test(me)))
        unsupported(`${mw}: invalid gRPC service or method name`);
      if (s !== undefined && me !== undefined) return { kind: 'Exact', path: `/${s}/${me}`, prefix: '', ...base, grpc };
      if (s !== undefined) return { kind: 'Prefix', path: `/${s}`, prefix: `/${s}`, ...base, grpc };
      const src = `/[^/]+/${me!}`;
      return { kind: 'Regex', path: src, prefix: '', regex: regex(src, mw), ...base, grpc };
    }
    if (mt.type === 'RegularExpression') {
      if (s !== undefined) regex(s, `${mw} service`);
      if (me !== undefined) regex(me, `${mw} method`);
      const src = `/(?:${s ?? '[^/]+'})/(?:${me ?? '[^/]+'})`;
      return { kind: 'Regex', path: src, prefix: '', regex: regex(src, mw), ...base, grpc };
    }
    return unsupported(`${mw}: method match type ${JSON.stringify(mt.type)} is not supported`);
  });
}

/** A path route and the keys it sorts by inside a host. */
interface Entry {
  readonly route: PathRoute;
  readonly c: Compiled;
  /** the route hostname that put it in this host: sort key (exact length, wildcard length) */
  readonly hostRank: number;
  readonly created: string;
  readonly key: Key;
  readonly rule: number;
  readonly match: number;
}

function kindRank(k: Compiled['kind']): number {
  return k === 'Exact' ? 0 : k === 'Regex' ? 1 : 2;
}

function compareEntries(a: Entry, b: Entry): number {
  const ca = a.c;
  const cb = b.c;
  return (
    b.hostRank - a.hostRank ||
    // GRPCRoute (grpcroute_types.go): characters of the matching service, then of the method, then headers
    (ca.grpc && cb.grpc ? cb.grpc[0] - ca.grpc[0] || cb.grpc[1] - ca.grpc[1] : 0) ||
    kindRank(ca.kind) - kindRank(cb.kind) ||
    (ca.kind === 'Prefix' ? cb.prefix.length - ca.prefix.length : cb.path.length - ca.path.length) ||
    (cb.method ? 1 : 0) - (ca.method ? 1 : 0) ||
    cb.headers.length - ca.headers.length ||
    cb.queryParams.length - ca.queryParams.length ||
    (a.created < b.created ? -1 : a.created > b.created ? 1 : 0) ||
    (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) ||
    a.rule - b.rule ||
    a.match - b.match
  );
}

/** A compiled rule: its matches and what it does (shared by every host it is served on). */
interface CompiledRule {
  readonly index: number;
  readonly matches: Compiled[];
  readonly gateway: Omit<GatewayRule, 'headers' | 'queryParams' | 'method'>;
  readonly primary: Upstream;
}

type AnyRoute = HTTPRoute | GRPCRoute;

function compileRules(ctx: RouteCtx, route: AnyRoute, dropped: string[]): CompiledRule[] {
  const key = keyOf(route.meta);
  const out: CompiledRule[] = [];
  for (const [i, rule] of route.rules.entries()) {
    const what = `${route.kind} ${key} rules[${i}]${rule.name ? ` (${rule.name})` : ''}`;
    try {
      const matches =
        route.kind === 'HTTPRoute'
          ? httpMatches(rule as HttpRouteRule, what)
          : grpcMatches(rule as GrpcRouteRule, what);
      const prefixOk = matches.length === 1 && matches[0]!.kind === 'Prefix';
      const action = ruleAction(ctx, rule.filters, what, prefixOk);
      const b = backends(ctx, rule.backendRefs, what);
      let requestTimeoutMs: number | undefined;
      let backendRequestTimeoutMs: number | undefined;
      const t = route.kind === 'HTTPRoute' ? (rule as HttpRouteRule).timeouts : undefined;
      if (t?.request !== undefined) requestTimeoutMs = parseDuration(t.request, `${what} timeouts.request`);
      if (t?.backendRequest !== undefined)
        backendRequestTimeoutMs = parseDuration(t.backendRequest, `${what} timeouts.backendRequest`);
      if (requestTimeoutMs && backendRequestTimeoutMs && backendRequestTimeoutMs > requestTimeoutMs)
        unsupported(`${what}: timeouts.backendRequest is longer than timeouts.request`);
      const primary =
        b.backends.find((x) => x.upstream)?.upstream ??
        Object.freeze({
          name: `${route.meta.namespace}-${route.meta.name}-rule${i}`,
          namespace: route.meta.namespace,
          service: '',
          port: '',
          endpoints: [],
        });
      out.push({
        index: i,
        matches,
        primary,
        gateway: {
          kind: route.kind,
          route: key,
          rule: i,
          ...(rule.name ? { ruleName: rule.name } : {}),
          ...(action.requestHeaders ? { requestHeaders: action.requestHeaders } : {}),
          ...(action.responseHeaders ? { responseHeaders: action.responseHeaders } : {}),
          ...(action.redirect ? { redirect: action.redirect } : {}),
          ...(action.rewrite ? { rewrite: action.rewrite } : {}),
          mirrors: action.mirrors,
          backends: b.backends,
          totalWeight: b.totalWeight,
          ...(requestTimeoutMs ? { requestTimeoutMs } : {}),
          ...(backendRequestTimeoutMs ? { backendRequestTimeoutMs } : {}),
        },
      });
    } catch (err) {
      if (!(err instanceof Unsupported)) throw err;
      dropped.push(err.message);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------- tables

/** Routes attached to one listener through one hostname pattern. */
interface Attachment {
  readonly listener: string;
  readonly pattern: string;
  readonly route: AnyRoute;
  readonly rules: readonly CompiledRule[];
}

function hostRank(pattern: string): number {
  return specificity(pattern);
}

function pathRoute(rule: CompiledRule, c: Compiled): PathRoute {
  return {
    kind: c.kind,
    path: c.path,
    prefix: c.prefix,
    ...(c.regex ? { regex: c.regex } : {}),
    upstream: rule.primary,
    ingress: rule.gateway.route,
    options: GATEWAY_ROUTE_OPTIONS,
    sslRedirect: false,
    gateway: {
      ...rule.gateway,
      headers: c.headers,
      queryParams: c.queryParams,
      ...(c.method ? { method: c.method } : {}),
    },
  };
}

function buildTable(
  port: number,
  listeners: ListenerState[],
  attachments: readonly Attachment[],
  version: number,
): RouteTable {
  // the host keys: every listener hostname and every route hostname pattern on this port
  const names = listeners.map((l) => l.spec.name);
  const mine = attachments.filter((a) => names.includes(a.listener));
  const keys = new Set<string>(listeners.map((l) => l.spec.hostname ?? ''));
  for (const a of mine) keys.add(a.pattern);
  const owner = (h: string): string | undefined => {
    let best: ListenerState | undefined;
    for (const l of listeners)
      if (
        covers(l.spec.hostname ?? '', h) &&
        (!best || specificity(l.spec.hostname ?? '') > specificity(best.spec.hostname ?? ''))
      )
        best = l;
    return best?.spec.name;
  };
  const hosts = new Map<string, HostRoutes>();
  const wildcards = new Map<string, HostRoutes>();
  let any: HostRoutes | undefined;
  for (const k of keys) {
    const own = owner(k);
    if (own === undefined) continue;
    const entries: Entry[] = [];
    for (const a of mine) {
      if (a.listener !== own || !covers(a.pattern, k)) continue;
      const rkey = keyOf(a.route.meta);
      for (const rule of a.rules)
        for (const [j, c] of rule.matches.entries())
          entries.push({
            route: pathRoute(rule, c),
            c,
            hostRank: hostRank(a.pattern),
            created: a.route.created,
            key: rkey,
            rule: rule.index,
            match: j,
          });
    }
    entries.sort(compareEntries);
    const hr: HostRoutes = { host: k, paths: entries.map((e) => e.route) };
    if (k === '') any = hr;
    else if (k.startsWith('*.')) wildcards.set(k.slice(2), hr);
    else hosts.set(k, hr);
  }
  const certs = new Map<string, TlsCert>();
  let fallbackCert: TlsCert | undefined;
  for (const l of listeners) {
    if (!l.cert) continue;
    if (l.spec.hostname) certs.set(l.spec.hostname, l.cert);
    else fallbackCert = l.cert;
  }
  return {
    hosts,
    wildcards,
    ...(any ? { any } : {}),
    certs,
    multiLabelWildcards: true,
    ...(fallbackCert ? { fallbackCert } : {}),
    listenerPort: port,
    version,
  };
}

// ------------------------------------------------------------------------------------------- compile

function parentOf(ref: GwParentRef): ParentReference {
  return {
    group: ref.group,
    kind: ref.kind,
    ...(ref.namespace !== undefined ? { namespace: ref.namespace } : {}),
    name: ref.name,
    ...(ref.sectionName !== undefined ? { sectionName: ref.sectionName } : {}),
    ...(ref.port !== undefined ? { port: ref.port } : {}),
  };
}

function byKey<T extends { meta: { namespace: string; name: string } }>(xs: Iterable<T>): T[] {
  return [...xs].sort((a, b) => {
    const ka = keyOf(a.meta);
    const kb = keyOf(b.meta);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}

/** Compiles the Gateway API objects into per-listener tables and status. Pure. */
export function compileGateways(state: GatewayState, opts: GatewayCompileOptions): GatewayCompileResult {
  const version = opts.version ?? 0;
  const warnings: string[] = [];
  const resolver = new Resolver(state, []);

  // GatewayClasses
  const ourClasses = new Map<string, GatewayClass>();
  const classes: GatewayClassStatus[] = [];
  for (const c of byKey(state.classes)) {
    if (c.controllerName !== opts.controllerName) continue;
    ourClasses.set(c.meta.name, c);
    classes.push({
      key: c.meta.name,
      generation: c.generation,
      conditions: [cond('Accepted', 'True', 'Accepted', 'handled by kdp', c.generation)],
    });
  }

  // Gateways
  const entries = new Map<Key, GatewayEntry>();
  const taken = new Map<string, Key>();
  const unsupportedAddr = new Map<Key, string>();
  for (const gw of byKey(state.gateways)) {
    if (!ourClasses.has(gw.gatewayClassName)) continue;
    const key = keyOf(gw.meta);
    const bad = gw.addresses.find((a) => a.type !== 'IPAddress');
    let address: string | undefined;
    if (bad) unsupportedAddr.set(key, `address type ${bad.type} is not supported (IPAddress)`);
    else address = opts.addressFor(gw);
    entries.set(key, buildGateway(state, gw, address, taken));
  }

  // Routes
  const attachmentsByGateway = new Map<Key, Attachment[]>();
  // per `gateway\nlistener`: the hostnames each accepted route holds there (HTTPRoute vs GRPCRoute exclusion)
  const claims = new Map<string, { kind: AnyRoute['kind']; key: Key; patterns: readonly string[] }[]>();
  const routeStatus = (route: AnyRoute): RouteStatus => {
    const key = keyOf(route.meta);
    const g = route.generation;
    const ctx: RouteCtx = { state, resolver, kind: route.kind, namespace: route.meta.namespace };
    const dropped: string[] = [];
    const rules = compileRules(ctx, route, dropped);
    for (const d of dropped) warnings.push(d);
    const hostnames = route.hostnames.filter((h) => h !== '');
    const parents: RouteParentStatus[] = [];
    for (const ref of route.parentRefs) {
      if (ref.group !== GATEWAY_GROUP || ref.kind !== 'Gateway') continue;
      const parentRef = parentOf(ref);
      const parentNs = ref.namespace ?? route.meta.namespace;
      const entry = entries.get(`${parentNs}/${ref.name}`);
      if (!entry) continue; // not ours (or no such Gateway): another controller's business
      const conditions: Condition[] = [];
      const candidates = [...entry.listeners.values()].filter(
        (l) =>
          (ref.sectionName === undefined || l.spec.name === ref.sectionName) &&
          (ref.port === undefined || l.spec.port === ref.port),
      );
      let accepted: Condition;
      let attachedTo: { l: ListenerState; patterns: string[] }[] = [];
      if (candidates.length === 0) {
        accepted = cond(
          'Accepted',
          'False',
          'NoMatchingParent',
          'no listener matches the parentRef sectionName/port',
          g,
        );
      } else {
        const nsLabels = state.namespaces.get(route.meta.namespace)?.meta.labels ?? {};
        // attachment depends on allowedRoutes and the parentRef only, not on the listener's own status (spec)
        const allowed = candidates.filter((l) => {
          if (!l.kinds.some((k) => k.kind === route.kind)) return false;
          const ar = l.spec.allowedRoutes;
          if (ar.namespacesFrom === 'Same') return route.meta.namespace === entry.gw.meta.namespace;
          if (ar.namespacesFrom === 'Selector')
            return ar.selector !== undefined && selectorMatches(ar.selector, nsLabels);
          return true;
        });
        if (allowed.length === 0) {
          accepted = cond(
            'Accepted',
            'False',
            'NotAllowedByListeners',
            'no listener allows this route (namespace, kind)',
            g,
          );
        } else {
          for (const l of allowed) {
            const patterns = intersectHostnames(l.spec.hostname, hostnames);
            if (patterns.length > 0) attachedTo.push({ l, patterns });
          }
          if (attachedTo.length === 0)
            accepted = cond(
              'Accepted',
              'False',
              'NoMatchingListenerHostname',
              'no hostname intersects a listener hostname',
              g,
            );
          else if (rules.length === 0 && dropped.length > 0)
            accepted = cond('Accepted', 'False', 'UnsupportedValue', dropped.join('; '), g);
          else {
            // an HTTPRoute and a GRPCRoute may not share a hostname on a listener: the older one (then by
            // namespace/name) holds it, the other is not accepted there (routes are visited in that order)
            let holder: Key | undefined;
            const free = attachedTo.filter(({ l, patterns }) => {
              const other = (claims.get(`${entry.key}\n${l.spec.name}`) ?? []).find(
                (c) =>
                  c.kind !== route.kind && c.patterns.some((p) => patterns.some((q) => covers(p, q) || covers(q, p))),
              );
              holder ??= other?.key;
              return other === undefined;
            });
            if (free.length === 0)
              accepted = cond(
                'Accepted',
                'False',
                'NotAllowedByListeners',
                `a route of the other kind (${String(holder)}) holds an intersecting hostname on the listener`,
                g,
              );
            else {
              attachedTo = free;
              accepted = cond('Accepted', 'True', 'Accepted', 'route accepted', g);
            }
          }
        }
      }
      conditions.push(accepted);
      conditions.push(
        ctx.problem
          ? cond('ResolvedRefs', 'False', ctx.problem.reason, ctx.problem.message, g)
          : cond('ResolvedRefs', 'True', 'ResolvedRefs', 'all references resolved', g),
      );
      if (accepted.status === 'True' && dropped.length > 0)
        conditions.push(
          cond('PartiallyInvalid', 'True', 'UnsupportedValue', `Dropped Rule(s): ${dropped.join('; ')}`, g),
        );
      if (accepted.status === 'True') {
        const list = attachmentsByGateway.get(entry.key) ?? [];
        attachmentsByGateway.set(entry.key, list);
        for (const { l, patterns } of attachedTo) {
          const routeId = `${route.kind} ${key}`;
          if (l.attached.has(routeId)) continue; // selected again by another parentRef: nothing new
          l.attached.add(routeId);
          const id = `${entry.key}\n${l.spec.name}`;
          claims.set(id, [...(claims.get(id) ?? []), { kind: route.kind, key, patterns }]);
          for (const pattern of patterns) list.push({ listener: l.spec.name, pattern, route, rules });
        }
      } else
        warnings.push(
          `${route.kind} ${key} parent ${parentNs}/${parentRef.name}: ${accepted.reason}: ${accepted.message}`,
        );
      parents.push({ parentRef, controllerName: opts.controllerName, conditions });
    }
    return { key, generation: g, parents };
  };
  // oldest first (then namespace/name): the order the HTTPRoute/GRPCRoute hostname exclusion is decided in
  const byAge = [...byKey(state.httpRoutes), ...byKey(state.grpcRoutes)].sort(
    (a, b) =>
      (a.created < b.created ? -1 : a.created > b.created ? 1 : 0) ||
      (keyOf(a.meta) < keyOf(b.meta) ? -1 : keyOf(a.meta) > keyOf(b.meta) ? 1 : 0) ||
      (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0),
  );
  const statusOf = new Map<AnyRoute, RouteStatus>(byAge.map((r) => [r, routeStatus(r)]));
  const httpRoutes = byKey(state.httpRoutes).map((r) => statusOf.get(r)!);
  const grpcRoutes = byKey(state.grpcRoutes).map((r) => statusOf.get(r)!);

  // tables and Gateway status
  const listeners: GatewayListenerTable[] = [];
  const gateways: GatewayStatus[] = [];
  for (const entry of entries.values()) {
    const g = entry.gw.generation;
    const ls = [...entry.listeners.values()];
    const served = ls.filter((l) => l.programmed);
    const byPort = new Map<number, ListenerState[]>();
    for (const l of served) byPort.set(l.spec.port, [...(byPort.get(l.spec.port) ?? []), l]);
    // the spec: a parametersRef that cannot be resolved (kdp supports no parameters kind) -> not accepted
    const pr = entry.gw.parametersRef;
    const badParams =
      pr && `infrastructure.parametersRef ${pr.group}/${pr.kind} ${pr.name}: kdp supports no parameters`;
    if (entry.address !== undefined && !badParams)
      for (const [port, group] of [...byPort].sort((a, b) => a[0] - b[0]))
        listeners.push({
          gateway: entry.key,
          listeners: group.map((l) => l.spec.name),
          address: entry.address,
          port,
          protocol: group[0]!.spec.protocol as 'HTTP' | 'HTTPS',
          table: buildTable(port, group, attachmentsByGateway.get(entry.key) ?? [], version),
        });
    const anyAccepted = ls.some((l) => l.accepted);
    const allAccepted = ls.every((l) => l.accepted);
    const badAddr = unsupportedAddr.get(entry.key);
    const conditions: Condition[] = [];
    if (badAddr) conditions.push(cond('Accepted', 'False', 'UnsupportedAddress', badAddr, g));
    else if (badParams) conditions.push(cond('Accepted', 'False', 'InvalidParameters', badParams, g));
    else if (!anyAccepted) conditions.push(cond('Accepted', 'False', 'ListenersNotValid', 'no listener is valid', g));
    else if (!allAccepted)
      conditions.push(cond('Accepted', 'True', 'ListenersNotValid', 'some listeners are not valid', g));
    else conditions.push(cond('Accepted', 'True', 'Accepted', 'gateway accepted', g));
    if (badAddr || badParams) conditions.push(cond('Programmed', 'False', 'Invalid', (badAddr || badParams)!, g));
    else if (entry.address === undefined)
      conditions.push(cond('Programmed', 'False', 'AddressNotAssigned', 'no address could be assigned', g));
    else if (served.length === 0) conditions.push(cond('Programmed', 'False', 'Invalid', 'no listener is served', g));
    else conditions.push(cond('Programmed', 'True', 'Programmed', `served on ${entry.address}`, g));
    gateways.push({
      key: entry.key,
      generation: g,
      addresses: entry.address !== undefined ? [{ type: 'IPAddress', value: entry.address }] : [],
      conditions,
      listeners: ls.map((l): ListenerStatus => ({
        name: l.spec.name,
        supportedKinds: l.kinds,
        attachedRoutes: l.attached.size,
        conditions: l.conditions,
      })),
    });
  }
  listeners.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port));
  return { listeners, status: { classes, gateways, httpRoutes, grpcRoutes }, warnings };
}
