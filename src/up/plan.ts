// What `kdp up` builds from a cluster snapshot, as pure functions (unit-tested):
//   - which lab node stands for which Node object (their addresses and pod CIDRs must agree);
//   - one sandbox per Pod (its IP requested from the CNI plugin, the ports its echo server answers on);
//   - the commands a user can try, each with what its output must show (kdp up checks them itself).
import { KdpError } from '../common/errors.ts';
import { contains, parseCidr, tryParseIp } from '../ipam/ip.ts';
import type { LabPlan } from '../lab/plan.ts';
import type { Node, Pod } from '../model/types.ts';
import { keyOf } from '../model/types.ts';
import type { Snapshot } from './snapshot.ts';

export const DNS_LABEL = ['k8s-app', 'kube-dns'] as const;

export interface UpPod {
  readonly key: string; // namespace/name
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly ip: string;
  /** lab namespace role (kdp-<run>-<role>) */
  readonly role: string;
  readonly containerId: string;
  readonly runs: 'echo' | 'dns';
  readonly tcp: readonly number[];
  readonly udp: readonly number[];
  readonly hostPorts: readonly { hostPort: number; containerPort: number; protocol: 'tcp' | 'udp' }[];
}

export interface Skipped {
  readonly key: string;
  readonly reason: string;
}

function internalIp(n: Node): string | undefined {
  return n.addresses.find((a) => a.type === 'InternalIP' && tryParseIp(a.address)?.family === 4)?.address;
}

/** Lab node index (1-based) of each Node, by name order; throws when the manifests disagree with the lab plan. */
export function mapNodes(nodes: readonly Node[], lab: LabPlan): Map<string, number> {
  const sorted = [...nodes].sort((a, b) => a.meta.name.localeCompare(b.meta.name, 'en', { numeric: true }));
  const out = new Map<string, number>();
  sorted.forEach((n, i) => {
    const plan = lab.nodes[i];
    if (!plan) throw new KdpError('KDP_UP_MANIFESTS', `more Nodes in the manifests than lab nodes`);
    const ip = internalIp(n);
    if (ip !== plan.ip4 || !n.podCIDRs.includes(plan.podCidr4)) {
      throw new KdpError(
        'KDP_UP_MANIFESTS',
        `Node ${n.meta.name} must have InternalIP ${plan.ip4} and podCIDR ${plan.podCidr4} to stand for lab node ${plan.index} ` +
          `(it has ${ip ?? 'no IPv4 InternalIP'} and ${n.podCIDRs.join(',') || 'no podCIDR'}); see src/lab/plan.ts for the address plan`,
      );
    }
    out.set(n.meta.name, plan.index);
  });
  return out;
}

/** How the node agents of `kdp up` reach the other nodes' pods (`kdp up --backend`). */
export type Backend = 'host-gw' | 'vxlan' | 'auto';

export function isBackend(s: string): s is Backend {
  return s === 'host-gw' || s === 'vxlan' || s === 'auto';
}

/** MTU of the lab's underlay links (veth default). */
export const LAB_LINK_MTU = 1500;
/** What VXLAN over IPv4 adds to a packet: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD4 = 50;

/** The pod interface MTU under a backend: the underlay's, less the VXLAN header when pods may cross an overlay. */
export function podMtu(backend: Backend, underlayMtu = LAB_LINK_MTU): number | undefined {
  return backend === 'host-gw' ? undefined : underlayMtu - VXLAN_OVERHEAD4;
}

/**
 * The flags `kdp up` adds to each `kdp node-agent` for a backend: none for host-gw (the agent's default, so its
 * argv is what it always was), `--backend B --mtu M` otherwise.
 */
export function nodeAgentBackendArgs(backend: Backend, underlayMtu = LAB_LINK_MTU): string[] {
  const mtu = podMtu(backend, underlayMtu);
  return mtu === undefined ? [] : ['--backend', backend, '--mtu', String(mtu)];
}

function roleOf(pod: Pod, i: number): string {
  const r = `${pod.meta.namespace}.${pod.meta.name}`.toLowerCase().replace(/[^a-z0-9.-]/g, '-');
  return r.length <= 36 ? r : `pod-${i}`;
}

/** One sandbox per Pod that can run in the lab; the rest with the reason they are skipped. */
export function planPods(
  snap: Snapshot,
  nodeIndex: ReadonlyMap<string, number>,
): { pods: UpPod[]; skipped: Skipped[] } {
  const pods: UpPod[] = [];
  const skipped: Skipped[] = [];
  const nodes = new Map(snap.nodes.map((n) => [n.meta.name, n]));
  const seen = new Set<string>();
  snap.pods.forEach((p, i) => {
    const key = keyOf(p.meta);
    const skip = (reason: string) => skipped.push({ key, reason });
    if (p.hostNetwork) return skip('hostNetwork pods share the node namespace');
    if (p.phase === 'Succeeded' || p.phase === 'Failed') return skip(`phase ${p.phase}`);
    if (!p.nodeName || !nodeIndex.has(p.nodeName)) return skip(`not on a lab node (nodeName ${p.nodeName ?? 'unset'})`);
    const ip = p.podIPs.find((a) => tryParseIp(a)?.family === 4);
    if (!ip) return skip('no IPv4 podIP in status');
    const node = nodes.get(p.nodeName)!;
    if (!node.podCIDRs.some((c) => contains(parseCidr(c), tryParseIp(ip)!)))
      return skip(`podIP ${ip} is outside ${p.nodeName}'s podCIDRs`);
    if (seen.has(ip)) return skip(`podIP ${ip} is used by another pod`);
    seen.add(ip);
    const dns = p.meta.labels[DNS_LABEL[0]] === DNS_LABEL[1];
    const tcp = [...new Set(p.containerPorts.filter((c) => c.protocol === 'TCP').map((c) => c.containerPort))].sort(
      (a, b) => a - b,
    );
    const udp = [...new Set(p.containerPorts.filter((c) => c.protocol === 'UDP').map((c) => c.containerPort))].sort(
      (a, b) => a - b,
    );
    const hostPorts = p.containerPorts
      .filter((c) => c.hostPort !== undefined && c.protocol !== 'SCTP')
      .map((c) => ({
        hostPort: c.hostPort as number,
        containerPort: c.containerPort,
        protocol: c.protocol.toLowerCase() as 'tcp' | 'udp',
      }));
    pods.push({
      key,
      namespace: p.meta.namespace,
      name: p.meta.name,
      node: p.nodeName,
      ip,
      role: roleOf(p, i),
      containerId: `kdpup-${(p.meta.uid || key).replace(/[^A-Za-z0-9_.-]/g, '-')}`,
      runs: dns ? 'dns' : 'echo',
      tcp: dns ? [] : tcp.length ? tcp : [8080],
      udp: dns ? [] : udp,
      hostPorts,
    });
  });
  return { pods, skipped };
}

/** resolv.conf of a pod (ClusterFirst): the cluster DNS service, the Kubernetes search path, ndots:5. */
export function podResolvConf(namespace: string, dnsIp: string, zone = 'cluster.local'): string {
  return `nameserver ${dnsIp}\nsearch ${namespace}.svc.${zone} svc.${zone} ${zone}\noptions ndots:5\n`;
}

/** The cluster DNS service: the Service selecting the kube-dns pods (its first ClusterIP). */
export function dnsServiceIp(snap: Snapshot): string | undefined {
  const svc = snap.services.find((s) => s.selector?.[DNS_LABEL[0]] === DNS_LABEL[1] && s.clusterIPs.length > 0);
  return svc?.clusterIPs[0];
}

export interface TryCommand {
  readonly what: string;
  /** `kdp exec TARGET -- ...` argv after `kdp` */
  readonly argv: readonly string[];
  /** the output shows it worked */
  readonly expect: RegExp;
}

/** The commands `kdp up` prints (and checks), chosen from what the manifests hold. */
export function tryCommands(snap: Snapshot, pods: readonly UpPod[], lab: LabPlan): TryCommand[] {
  const out: TryCommand[] = [];
  const node1 = lab.nodes[0]!;
  const echoPods = pods.filter((p) => p.runs === 'echo');
  const readyBackends = (ns: string, svc: string) => {
    const names = new Set<string>();
    for (const s of snap.endpointSlices) {
      if (s.meta.namespace !== ns || s.serviceName !== svc) continue;
      for (const e of s.endpoints) if (e.conditions.ready && e.targetRef?.kind === 'Pod') names.add(e.targetRef.name);
    }
    return [...names].filter((n) => echoPods.some((p) => p.namespace === ns && p.name === n));
  };
  const alt = (names: readonly string[]) =>
    new RegExp(`"name":"(${names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})"`);
  const client = echoPods[0];
  const cluster = snap.services.find(
    (s) =>
      s.type === 'ClusterIP' &&
      !s.headless &&
      s.ports.some((p) => p.protocol === 'TCP') &&
      readyBackends(s.meta.namespace, s.meta.name).length > 0,
  );
  if (cluster && client) {
    const port = cluster.ports.find((p) => p.protocol === 'TCP')!.port;
    const url = `http://${cluster.meta.name}.${cluster.meta.namespace}${port === 80 ? '' : `:${port}`}/`;
    out.push({
      what: `a pod reaches Service ${keyOf(cluster.meta)} by name (cluster DNS + ClusterIP)`,
      argv: ['exec', client.key, '--', 'curl', '-sS', '--max-time', '5', url],
      expect: alt(readyBackends(cluster.meta.namespace, cluster.meta.name)),
    });
    out.push({
      what: 'the same name through the search path, with dig',
      argv: ['exec', client.key, '--', 'dig', '+search', '+short', `${cluster.meta.name}.${cluster.meta.namespace}`],
      expect: new RegExp(`^${cluster.clusterIPs[0]!.replace(/\./g, '\\.')}$`, 'm'),
    });
  }
  const np = snap.services.find(
    (s) =>
      s.type === 'NodePort' &&
      s.ports.some((p) => p.protocol === 'TCP' && p.nodePort) &&
      readyBackends(s.meta.namespace, s.meta.name).length > 0,
  );
  if (np) {
    const port = np.ports.find((p) => p.protocol === 'TCP' && p.nodePort)!.nodePort!;
    out.push({
      what: `NodePort ${port} of ${keyOf(np.meta)} from outside the cluster (the underlay)`,
      argv: ['exec', 'underlay', '--', 'curl', '-sS', '--max-time', '5', `http://${node1.ip4}:${port}/`],
      expect: alt(readyBackends(np.meta.namespace, np.meta.name)),
    });
  }
  const headless = snap.services.find((s) => s.headless && s.selector);
  if (headless && client) {
    out.push({
      what: `headless Service ${keyOf(headless.meta)}: one A record per ready pod`,
      argv: [
        'exec',
        client.key,
        '--',
        'dig',
        '+short',
        `${headless.meta.name}.${headless.meta.namespace}.svc.cluster.local`,
      ],
      expect: /^198\.19\.\d+\.\d+$/m,
    });
  }
  for (const ing of snap.ingresses) {
    const rule = ing.rules.find((r) => r.host && !r.host.startsWith('*') && r.paths.some((p) => p.backend.service));
    if (!rule?.host) continue;
    const route = rule.paths.find((p) => p.backend.service && p.pathType !== 'ImplementationSpecific')!;
    if (!route) continue;
    const names = readyBackends(ing.meta.namespace, route.backend.service!.name);
    if (names.length === 0) continue;
    const tls = ing.tls.some((t) => t.hosts.includes(rule.host!));
    if (tls) {
      out.push({
        what: `Ingress ${keyOf(ing.meta)} over HTTPS, certificate chosen by SNI (${route.path} -> ${route.backend.service!.name})`,
        argv: [
          'exec',
          'underlay',
          '--',
          'curl',
          '-sS',
          '-k',
          '--max-time',
          '5',
          '--resolve',
          `${rule.host}:443:${node1.ip4}`,
          `https://${rule.host}${route.path}`,
        ],
        expect: alt(names),
      });
      out.push({
        what: 'plain HTTP to a TLS host is redirected (308)',
        argv: [
          'exec',
          'underlay',
          '--',
          'curl',
          '-sS',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}\\n',
          '--max-time',
          '5',
          '-H',
          `Host: ${rule.host}`,
          `http://${node1.ip4}/`,
        ],
        expect: /^308$/m,
      });
    } else {
      out.push({
        what: `Ingress ${keyOf(ing.meta)} by host (${route.path} -> ${route.backend.service!.name})`,
        argv: [
          'exec',
          'underlay',
          '--',
          'curl',
          '-sS',
          '--max-time',
          '5',
          '-H',
          `Host: ${rule.host}`,
          `http://${node1.ip4}${route.path}`,
        ],
        expect: alt(names),
      });
    }
    break;
  }
  return out;
}
