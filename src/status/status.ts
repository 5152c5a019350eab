// `kdp status`: what kdp sees (services -> ports -> endpoints, DNS names, ingress routes) and, when a lab is
// up, what the proxy programmed (the nft chain of each service port and its backends). Pure: built from a
// read of the cluster and the text of the nft table; rendered as a table or JSON. Each component answers for
// itself through its status.ts (the status interface of src/model/status.ts): this module only puts the
// answers side by side.
import type { ClusterView, StatusInput } from '../model/status.ts';
import { keyOf } from '../model/types.ts';
import { status as proxyStatus } from '../proxy/status.ts';
import type { EndpointStatus } from '../proxy/status.ts';
import { portKey, status as dnsStatus } from '../dns/status.ts';
import type { DnsOnlyStatus } from '../dns/status.ts';
import { status as ingressStatus } from '../../ingress/status.ts';
import type { IngressRouteStatus } from '../../ingress/status.ts';
import { status as nodeStatus } from '../node/status.ts';
import type { PeerStatus } from '../node/status.ts';
import { status as policyStatus } from '../policy/status.ts';
import type { PodPolicyStatus } from '../policy/status.ts';

export type { DnsOnlyStatus, EndpointStatus, IngressRouteStatus, PeerStatus, PodPolicyStatus };

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

export interface StatusReport {
  readonly services: readonly ServicePortStatus[];
  readonly dnsOnly: readonly DnsOnlyStatus[];
  readonly ingress: readonly IngressRouteStatus[];
  readonly ingressRejected: readonly { readonly ingress: string; readonly reason: string }[];
  /** the report's node's peers: path and kernel entries (node agent) */
  readonly peers: readonly PeerStatus[];
  /** per pod (of the report's node, or all), the policies selecting it */
  readonly policies: readonly PodPolicyStatus[];
}

export function buildStatus(
  cluster: ClusterView,
  opts: { zone?: string; nodeName?: string; nftTable?: string; nodeKernel?: StatusInput['nodeKernel'] } = {},
): StatusReport {
  const input: StatusInput = {
    cluster,
    zone: opts.zone ?? 'cluster.local',
    nodeName: opts.nodeName ?? '',
    ...(opts.nftTable !== undefined ? { nftTable: opts.nftTable } : {}),
    ...(opts.nodeKernel !== undefined ? { nodeKernel: opts.nodeKernel } : {}),
  };
  const dns = dnsStatus(input);
  const ingress = ingressStatus(input);
  const typeOf = new Map(cluster.services.map((s) => [keyOf(s.meta), s.type]));
  const services: ServicePortStatus[] = proxyStatus(input).map((p) => ({
    service: `${p.namespace}/${p.name}`,
    type: typeOf.get(`${p.namespace}/${p.name}`) ?? '',
    clusterIP: p.clusterIP,
    port: `${p.portName ? `${p.portName} ` : ''}${p.port}/${p.protocol}`,
    ...(p.nodePort !== undefined ? { nodePort: p.nodePort } : {}),
    endpoints: p.endpoints,
    dns: dns.portNames.get(portKey(p.namespace, p.name, p.portName, p.protocol)) ?? [],
    rule: p.rule,
  }));
  return {
    services,
    dnsOnly: dns.dnsOnly,
    ingress: ingress.routes,
    ingressRejected: ingress.rejected,
    peers: nodeStatus(input),
    policies: policyStatus(input),
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
  if (r.peers.length)
    out.push(
      '\nNODE PEERS (path and kernel entries of the node agent)\n',
      table(
        ['PEER', 'POD-CIDR', 'PATH', 'KERNEL', 'NOTE'],
        r.peers.map((p) => [p.node, p.podCidr, p.path || '-', p.kernel ?? '(not checked)', p.note ?? '']),
      ),
    );
  const governed = r.policies.filter((p) => p.ingress.length > 0 || p.egress.length > 0);
  out.push(
    '\nNETWORK POLICY (pod -> policies selecting it, in evaluation order)\n',
    governed.length
      ? table(
          ['POD', 'NODE', 'IPS', 'INGRESS', 'EGRESS'],
          governed.map((p) => [
            p.pod,
            p.node ?? '',
            p.ips.join(','),
            p.ingress.join(' ') || '(open)',
            p.egress.join(' ') || '(open)',
          ]),
        )
      : '(none)\n',
  );
  if (r.policies.length > governed.length)
    out.push(`${r.policies.length - governed.length} other pod(s) selected by no policy: open\n`);
  return out.join('');
}
