// The ingress controller's answer to `kdp status` (the status interface of src/model/status.ts): the routes
// its compiler makes of the cluster's Ingresses (host, path, match kind, backend, endpoint count, TLS) and
// the Ingresses it rejected, with the reason; and the status the Gateway API compiler gives every
// GatewayClass, Gateway (address, listeners) and HTTPRoute/GRPCRoute (per parent), conditions with their
// reasons, as the controller would write it to the API. Pure.
import { keyOf } from '../src/model/types.ts';
import type { ComponentStatus } from '../src/model/status.ts';
import { compile, DEFAULT_COMPILE_OPTIONS } from './compile.ts';
import { AddressPool, requestedAddress } from './gateway/addresses.ts';
import { compileGateways } from './gateway/compile.ts';
import { GATEWAY_CONTROLLER_NAME } from './gateway/types.ts';
import type { GatewayCompileResult } from './gateway/types.ts';

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

/** The status of every Gateway API object (the compiler's, as the controller writes it in Kubernetes mode). */
export type GatewayApiStatus = GatewayCompileResult['status'];

/**
 * The Gateway API side: the addresses are those the controller gives with the default pool (the same hash, so
 * the same address as a running `kdp ingress` without --gateway-addresses), or with `pool`.
 */
export function gatewayStatus(input: Parameters<ComponentStatus<unknown>>[0], pool?: string): GatewayApiStatus {
  const snap = input.cluster;
  const classes = snap.gatewayClasses ?? [];
  const gateways = snap.gateways ?? [];
  const ours = new Set(classes.filter((c) => c.controllerName === GATEWAY_CONTROLLER_NAME).map((c) => c.meta.name));
  const addresses = new AddressPool(pool).assign(
    gateways
      .filter((g) => ours.has(g.gatewayClassName))
      .map((g) => {
        const requested = requestedAddress(g);
        return { key: keyOf(g.meta), ...(requested === undefined ? {} : { requested }) };
      }),
  );
  return compileGateways(
    {
      classes,
      gateways,
      httpRoutes: snap.httpRoutes ?? [],
      grpcRoutes: snap.grpcRoutes ?? [],
      referenceGrants: snap.referenceGrants ?? [],
      services: new Map(snap.services.map((s) => [keyOf(s.meta), s])),
      slices: snap.endpointSlices,
      secrets: new Map(snap.secrets.map((s) => [keyOf(s.meta), s])),
      namespaces: new Map(snap.namespaces.map((n) => [keyOf(n.meta), n])),
    },
    {
      controllerName: GATEWAY_CONTROLLER_NAME,
      addressFor: (g) => {
        const a = addresses.get(keyOf(g.meta));
        return a?.ok ? a.address : undefined;
      },
    },
  ).status;
}
