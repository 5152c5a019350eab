// Gateway API test state from YAML manifests (the conformance suite's own form), converted by src/k8s/convert.ts,
// plus a readable, JSON-able summary of a compile result for golden files.
import { parseAllDocuments } from 'yaml';
import { convertAny } from '../../src/k8s/convert.ts';
import type { Raw } from '../../src/k8s/convert.ts';
import type { ClusterObject, EndpointSlice, Kind, ObjectOf } from '../../src/model/types.ts';
import { keyOf } from '../../src/model/types.ts';
import type { GatewayCompileResult, GatewayState } from '../gateway/types.ts';
import type { HeaderModifier, PathRoute, RouteTable } from '../types.ts';

/** Converts every document; throws on an object the converter rejects (a test fixture must be valid). */
export function objectsFrom(yamlText: string): ClusterObject[] {
  const out: ClusterObject[] = [];
  for (const doc of parseAllDocuments(yamlText)) {
    const raw = doc.toJS() as Raw | null;
    if (raw === null) continue;
    const r = convertAny(raw);
    if (!r.ok) throw new Error(`fixture ${String(raw.kind)}: ${r.reason}`);
    out.push(...r.value);
  }
  return out;
}

export function gatewayState(objects: readonly ClusterObject[], slices: readonly EndpointSlice[] = []): GatewayState {
  const of = <K extends Kind>(k: K): ObjectOf<K>[] => objects.filter((o): o is ObjectOf<K> => o.kind === k);
  const map = <K extends Kind>(k: K) => new Map(of(k).map((o) => [keyOf(o.meta), o] as const));
  return {
    classes: of('GatewayClass'),
    gateways: of('Gateway'),
    httpRoutes: of('HTTPRoute'),
    grpcRoutes: of('GRPCRoute'),
    referenceGrants: of('ReferenceGrant'),
    services: map('Service'),
    slices: [...of('EndpointSlice'), ...slices],
    secrets: map('Secret'),
    namespaces: map('Namespace'),
  };
}

function mods(h: HeaderModifier | undefined): string {
  if (!h) return '';
  return [
    ...h.set.map(([n, v]) => `set ${n}=${v}`),
    ...h.add.map(([n, v]) => `add ${n}=${v}`),
    ...h.remove.map((n) => `remove ${n}`),
  ].join(', ');
}

/** One line per path route: match, conditions, what it does. */
export function describeRoute(r: PathRoute): string {
  const g = r.gateway!;
  const cond = [
    g.method ? `method=${g.method}` : '',
    ...g.headers.map((h) => `header ${h.name}${h.exact !== undefined ? `=${h.exact}` : `~${h.regex!.source}`}`),
    ...g.queryParams.map((q) => `query ${q.name}${q.exact !== undefined ? `=${q.exact}` : `~${q.regex!.source}`}`),
  ].filter(Boolean);
  const act: string[] = [];
  if (g.redirect) act.push(`redirect ${JSON.stringify(g.redirect)}`);
  if (g.rewrite) act.push(`rewrite ${JSON.stringify(g.rewrite)}`);
  if (g.requestHeaders) act.push(`request headers: ${mods(g.requestHeaders)}`);
  if (g.responseHeaders) act.push(`response headers: ${mods(g.responseHeaders)}`);
  for (const m of g.mirrors) act.push(`mirror ${m.upstream.name}@${m.fraction}`);
  if (!g.redirect)
    act.push(
      `-> ${g.backends.map((b) => `${b.upstream ? `${b.upstream.name}[${b.upstream.endpoints.length}]` : 'INVALID'}*${b.weight}`).join(' ') || 'none'}`,
    );
  if (g.requestTimeoutMs) act.push(`timeout ${g.requestTimeoutMs}ms`);
  if (g.backendRequestTimeoutMs) act.push(`backend timeout ${g.backendRequestTimeoutMs}ms`);
  return `${r.kind} ${r.kind === 'Regex' ? r.regex!.source : r.path}${cond.length ? ` [${cond.join(' ')}]` : ''} ${g.kind} ${g.route}#${g.rule}: ${act.join('; ')}`;
}

export function describeTable(t: RouteTable): Record<string, unknown> {
  const hosts: Record<string, string[]> = {};
  for (const [h, hr] of [...t.hosts].sort()) hosts[h] = hr.paths.map(describeRoute);
  for (const [s, hr] of [...t.wildcards].sort()) hosts[`*.${s}`] = hr.paths.map(describeRoute);
  if (t.any) hosts['(any)'] = t.any.paths.map(describeRoute);
  return {
    hosts,
    certs: Object.fromEntries([...t.certs].sort().map(([h, c]) => [h, c.secret])),
    ...(t.fallbackCert ? { fallbackCert: t.fallbackCert.secret } : {}),
  };
}

/** The whole result as plain JSON (tables described, status as is). */
export function describeResult(r: GatewayCompileResult): Record<string, unknown> {
  return {
    listeners: r.listeners.map((l) => ({
      gateway: l.gateway,
      listeners: l.listeners,
      address: l.address,
      port: l.port,
      protocol: l.protocol,
      table: describeTable(l.table),
    })),
    status: r.status,
    warnings: r.warnings,
  };
}
