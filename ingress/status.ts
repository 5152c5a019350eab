// The ingress controller's answer to `kdp status` (the status interface of src/model/status.ts): the routes
// its compiler makes of the cluster's Ingresses (host, path, match kind, backend, endpoint count, TLS) and
// the Ingresses it rejected, with the reason. Pure.
import { keyOf } from '../src/model/types.ts';
import type { ComponentStatus } from '../src/model/status.ts';
import { compile, DEFAULT_COMPILE_OPTIONS } from './compile.ts';

export interface IngressRouteStatus {
  readonly host: string;
  readonly path: string;
  readonly match: string;
  readonly backend: string;
  readonly endpoints: number;
  readonly tls: boolean;
}

export interface IngressStatus {
  readonly routes: readonly IngressRouteStatus[];
  readonly rejected: readonly { readonly ingress: string; readonly reason: string }[];
}

export const status: ComponentStatus<IngressStatus> = (input) => {
  const snap = input.cluster;
  const result = compile(
    {
      ingresses: snap.ingresses,
      classes: snap.ingressClasses,
      services: new Map(snap.services.map((s) => [keyOf(s.meta), s])),
      slices: snap.endpointSlices,
      secrets: new Map(snap.secrets.map((s) => [keyOf(s.meta), s])),
    },
    DEFAULT_COMPILE_OPTIONS,
  );
  const routes: IngressRouteStatus[] = [];
  const t = result.table;
  const hosts = [...t.hosts.values(), ...t.wildcards.values(), ...(t.any ? [t.any] : [])];
  for (const h of hosts) {
    for (const p of h.paths) {
      routes.push({
        host: h.host || '*',
        path: p.path,
        match: p.kind,
        backend: `${p.upstream.namespace}/${p.upstream.service}:${p.upstream.port}`,
        endpoints: p.upstream.endpoints.length,
        tls: t.certs.has(h.host) || [...t.certs.keys()].some((c) => c.startsWith('*.') && h.host.endsWith(c.slice(1))),
      });
    }
  }
  if (t.defaultRoute)
    routes.push({
      host: '(default)',
      path: '',
      match: 'default',
      backend: `${t.defaultRoute.upstream.namespace}/${t.defaultRoute.upstream.service}:${t.defaultRoute.upstream.port}`,
      endpoints: t.defaultRoute.upstream.endpoints.length,
      tls: false,
    });
  return { routes, rejected: result.rejected.map((r) => ({ ingress: r.ingress, reason: r.reason })) };
};
