// `kdp status`: what kdp sees (services -> ports -> endpoints, DNS names, ingress routes) and, when a lab is
// up, what the proxy programmed (the nft chain of each service port and its backends). Pure: built from a
// snapshot and the text of the nft table; rendered as a table or JSON.
import type { Snapshot } from '../up/snapshot.ts';
import { buildServicePorts } from '../proxy/model.ts';
import { chainNames, programmedBackends } from '../proxy/nftables/render.ts';
import { compile, DEFAULT_COMPILE_OPTIONS } from '../../ingress/compile.ts';
import type { EndpointSlice } from '../model/types.ts';
import { keyOf } from '../model/types.ts';

export interface EndpointStatus {
  readonly address: string;
  /** ready | serving-terminating | terminating | not-ready */
  readonly state: string;
  readonly node?: string;
}

export interface ServicePortStatus {
  readonly service: string;
  readonly type: string;
  readonly clusterIP: string;
  readonly port: string; // "http 80/TCP"
  readonly nodePort?: number;
  readonly endpoints: readonly EndpointStatus[];
  readonly dns: readonly string[];
  /** the nft chain of this service port; programmed: its backends as found in the kernel (undefined: not checked) */
  readonly rule: { readonly chain: string; readonly programmedBackends?: number };
}

export interface DnsOnlyStatus {
  readonly service: string;
  readonly kind: 'headless' | 'ExternalName';
  readonly dns: string;
  readonly answers: readonly string[];
}

export interface IngressRouteStatus {
  readonly host: string;
  readonly path: string;
  readonly match: string;
  readonly backend: string;
  readonly endpoints: number;
  readonly tls: boolean;
}

export interface StatusReport {
  readonly services: readonly ServicePortStatus[];
  readonly dnsOnly: readonly DnsOnlyStatus[];
  readonly ingress: readonly IngressRouteStatus[];
  readonly ingressRejected: readonly { readonly ingress: string; readonly reason: string }[];
}

function bySvc(slices: readonly EndpointSlice[]): Map<string, EndpointSlice[]> {
  const m = new Map<string, EndpointSlice[]>();
  for (const s of slices) {
    const k = `${s.meta.namespace}/${s.serviceName}`;
    m.set(k, [...(m.get(k) ?? []), s]);
  }
  return m;
}

/** nft `list table` text -> chain name -> number of endpoints it balances over (the proxy's renderer knows the rule forms). */
export function nftBackends(tableText: string): Map<string, number> {
  return programmedBackends(tableText);
}

/**
 * ClusterIP-only service ports have no chain of their own: their endpoints are elements `vip . port . index`
 * of the shared `cluster-endpoints-<proto>` maps. `<proto> <vip> <port>` -> number of endpoints.
 */
export function nftClusterMapBackends(tableText: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of tableText.matchAll(/^\s*map cluster-endpoints-(\w+) \{([\s\S]*?)^\s*\}/gm)) {
    for (const e of (m[2] ?? '').matchAll(/([0-9a-fA-F:.]+) \. (\d+) \. \d+ :/g)) {
      const k = `${m[1]} ${e[1]} ${e[2]}`;
      out.set(k, (out.get(k) ?? 0) + 1);
    }
  }
  return out;
}

export function buildStatus(
  snap: Snapshot,
  opts: { zone?: string; nodeName?: string; nftTable?: string } = {},
): StatusReport {
  const zone = opts.zone ?? 'cluster.local';
  const slices = bySvc(snap.endpointSlices);
  const programmed = opts.nftTable === undefined ? undefined : nftBackends(opts.nftTable);
  const viaMaps = opts.nftTable === undefined ? undefined : nftClusterMapBackends(opts.nftTable);
  const nodeName = opts.nodeName ?? '';
  const ports = [
    ...buildServicePorts(snap.services, slices, { family: 'IPv4', nodeName }),
    ...buildServicePorts(snap.services, slices, { family: 'IPv6', nodeName }),
  ];
  const svcByKey = new Map(snap.services.map((s) => [keyOf(s.meta), s]));
  const services: ServicePortStatus[] = ports.map((sp) => {
    const svc = svcByKey.get(`${sp.namespace}/${sp.name}`)!;
    const fqdn = `${sp.name}.${sp.namespace}.svc.${zone}`;
    const chain = chainNames(sp).service;
    const found = programmed?.get(chain) ?? viaMaps?.get(`${sp.protocol.toLowerCase()} ${sp.clusterIP} ${sp.port}`);
    return {
      service: `${sp.namespace}/${sp.name}`,
      type: svc.type,
      clusterIP: sp.clusterIP,
      port: `${sp.portName ? `${sp.portName} ` : ''}${sp.port}/${sp.protocol}`,
      ...(sp.nodePort !== undefined ? { nodePort: sp.nodePort } : {}),
      endpoints: sp.endpoints.map((e) => ({
        address: `${e.ip}:${e.port}`,
        state: e.ready
          ? 'ready'
          : e.serving && e.terminating
            ? 'serving-terminating'
            : e.terminating
              ? 'terminating'
              : 'not-ready',
      })),
      dns: [fqdn, ...(sp.portName ? [`_${sp.portName}._${sp.protocol.toLowerCase()}.${fqdn} (SRV)`] : [])],
      rule: programmed === undefined ? { chain } : { chain, programmedBackends: found ?? 0 },
    };
  });
  const dnsOnly: DnsOnlyStatus[] = [];
  for (const svc of snap.services) {
    const fqdn = `${svc.meta.name}.${svc.meta.namespace}.svc.${zone}`;
    if (svc.type === 'ExternalName' && svc.externalName)
      dnsOnly.push({
        service: keyOf(svc.meta),
        kind: 'ExternalName',
        dns: fqdn,
        answers: [`CNAME ${svc.externalName}`],
      });
    else if (svc.headless) {
      const answers: string[] = [];
      for (const s of slices.get(keyOf(svc.meta)) ?? [])
        for (const e of s.endpoints)
          if (e.conditions.ready || svc.publishNotReadyAddresses)
            answers.push(...e.addresses.slice(0, 1).map((a) => (e.hostname ? `${a} (${e.hostname}.${fqdn})` : a)));
      dnsOnly.push({ service: keyOf(svc.meta), kind: 'headless', dns: fqdn, answers: answers.sort() });
    }
  }
  const result = compile(
    {
      ingresses: snap.ingresses,
      classes: snap.ingressClasses,
      services: svcByKey,
      slices: snap.endpointSlices,
      secrets: new Map(snap.secrets.map((s) => [keyOf(s.meta), s])),
    },
    DEFAULT_COMPILE_OPTIONS,
  );
  const ingress: IngressRouteStatus[] = [];
  const t = result.table;
  const hosts = [...t.hosts.values(), ...t.wildcards.values(), ...(t.any ? [t.any] : [])];
  for (const h of hosts) {
    for (const p of h.paths) {
      ingress.push({
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
    ingress.push({
      host: '(default)',
      path: '',
      match: 'default',
      backend: `${t.defaultRoute.upstream.namespace}/${t.defaultRoute.upstream.service}:${t.defaultRoute.upstream.port}`,
      endpoints: t.defaultRoute.upstream.endpoints.length,
      tls: false,
    });
  return {
    services,
    dnsOnly,
    ingress,
    ingressRejected: result.rejected.map((r) => ({ ingress: r.ingress, reason: r.reason })),
  };
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function renderStatus(r: StatusReport): string {
  const svcRows: string[][] = [];
  for (const s of r.services) {
    const eps = s.endpoints.length === 0 ? ['(none: REJECT)'] : s.endpoints.map((e) => `${e.address} ${e.state}`);
    const rule =
      s.rule.programmedBackends === undefined
        ? s.rule.chain
        : `${s.rule.chain} [${s.rule.programmedBackends} backends in kernel]`;
    eps.forEach((e, i) =>
      svcRows.push(
        i === 0
          ? [
              s.service,
              s.type,
              s.clusterIP,
              s.port + (s.nodePort ? ` node:${s.nodePort}` : ''),
              e,
              s.dns[0] ?? '',
              rule,
            ]
          : ['', '', '', '', e, '', ''],
      ),
    );
  }
  const out = [
    'SERVICES (service -> port -> endpoints -> proxy rule)\n',
    table(['SERVICE', 'TYPE', 'CLUSTER-IP', 'PORT', 'ENDPOINTS', 'DNS', 'RULE'], svcRows),
  ];
  if (r.dnsOnly.length)
    out.push(
      '\nDNS ONLY (not proxied)\n',
      table(
        ['SERVICE', 'KIND', 'NAME', 'ANSWERS'],
        r.dnsOnly.map((d) => [d.service, d.kind, d.dns, d.answers.join(', ') || '(none)']),
      ),
    );
  out.push(
    '\nINGRESS ROUTES\n',
    r.ingress.length
      ? table(
          ['HOST', 'PATH', 'MATCH', 'BACKEND', 'ENDPOINTS', 'TLS'],
          r.ingress.map((g) => [g.host, g.path, g.match, g.backend, String(g.endpoints), g.tls ? 'yes' : 'no']),
        )
      : '(none)\n',
  );
  if (r.ingressRejected.length)
    out.push(
      '\nREJECTED INGRESSES\n',
      table(
        ['INGRESS', 'REASON'],
        r.ingressRejected.map((x) => [x.ingress, x.reason]),
      ),
    );
  return out.join('');
}
