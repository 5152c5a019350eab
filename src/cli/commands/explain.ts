// `kdp explain SRC DST PORT/PROTO`: the path of one connection through the data plane, from cluster state alone:
// the service DNAT the proxy does (which endpoints a ClusterIP, NodePort, external or load-balancer address maps
// to; src/proxy's model), then for each endpoint the policy verdict (src/policy's evaluator) with every step:
// which AdminNetworkPolicy, NetworkPolicy or BaselineAdminNetworkPolicy rule allows or denies it at egress and
// ingress. The pure part (explainConnection) is tested on its own; run() only reads the cluster and prints.
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { KdpError } from '../../common/errors.ts';
import type { ClusterView } from '../../model/status.ts';
import type { EndpointSlice, IPFamily, Protocol } from '../../model/types.ts';
import { keyOf, LABEL_TOPOLOGY_ZONE } from '../../model/types.ts';
import { compilePolicies } from '../../policy/compile.ts';
import { evaluateDirection } from '../../policy/evaluate.ts';
import type { Packet, Step } from '../../policy/types.ts';
import { ANNOTATION_VTEP_MAC, ANNOTATION_VTEP_MAC_V6 } from '../../node/overlay.ts';
import { buildServicePorts } from '../../proxy/model.ts';
import type { Command } from '../command.ts';
import { flagHelp, parseFlags } from '../flags.ts';
import type { FlagTable } from '../flags.ts';

export interface ExplainQuery {
  /** an IP or `namespace/pod` */
  readonly src: string;
  readonly dst: string;
  readonly port: number;
  readonly proto: Protocol;
}

export interface EndpointPath {
  /** the address and port the packet has after DNAT */
  readonly ip: string;
  readonly port: number;
  readonly pod?: string;
  /** the source address the endpoint sees (a node address when the proxy masquerades) */
  readonly seenSource: string;
  readonly verdict: 'allow' | 'deny';
  readonly egress: readonly Step[];
  readonly ingress: readonly Step[];
}

export interface Explanation {
  readonly src: { readonly ip: string; readonly pod?: string };
  readonly dst: { readonly ip: string; readonly pod?: string };
  readonly port: number;
  readonly proto: Protocol;
  /** set when the destination is a service address */
  readonly service?: {
    readonly key: string;
    readonly portName: string;
    readonly via: 'ClusterIP' | 'NodePort' | 'ExternalIP' | 'LoadBalancer';
    readonly masqueraded: boolean;
    readonly notes: readonly string[];
  };
  /** one path per endpoint (a service), or the direct path */
  readonly paths: readonly EndpointPath[];
  /** allow: every path allows; deny: none does; partial: it depends on the endpoint the proxy picks */
  readonly verdict: 'allow' | 'deny' | 'partial' | 'no-endpoint';
}

const family = (ip: string): IPFamily => (isIP(ip) === 6 ? 'IPv6' : 'IPv4');

function addressOf(view: ClusterView, what: string, role: string): { ip: string; pod?: string } {
  if (isIP(what)) {
    const pod = view.pods.find((p) => !p.hostNetwork && p.podIPs.includes(what));
    return { ip: what, ...(pod ? { pod: keyOf(pod.meta) } : {}) };
  }
  const pod = view.pods.find((p) => keyOf(p.meta) === what);
  if (!pod)
    throw new KdpError(
      'KDP_USAGE',
      `${role} ${JSON.stringify(what)} is neither an IP address nor a pod (namespace/name)`,
    );
  const ip = pod.podIPs[0];
  if (ip === undefined) throw new KdpError('KDP_USAGE', `${role} pod ${what} has no IP address yet`);
  return { ip, pod: what };
}

/**
 * The source address a masqueraded connection from node `nodeName` carries to node `to`: the address of the
 * device its route leaves by. Between two nodes that both publish a VXLAN VTEP for the family (kdp node-agent
 * --backend vxlan or auto, docs/overlay.md) that is the overlay device, whose address is the network address of the
 * sending node's pod CIDR; else (host-gw) the InternalIP. A note says when an auto pair might route directly.
 */
function nodeAddress(
  view: ClusterView,
  nodeName: string | undefined,
  to: string | undefined,
  fam: IPFamily,
  notes: string[],
): string | undefined {
  const node = view.nodes.find((n) => n.meta.name === nodeName);
  const internal = node?.addresses.find((a) => a.type === 'InternalIP' && family(a.address) === fam)?.address;
  const peer = view.nodes.find((n) => n.meta.name === to);
  const vtepKey = fam === 'IPv4' ? ANNOTATION_VTEP_MAC : ANNOTATION_VTEP_MAC_V6;
  const cidr = node?.podCIDRs.find((c) => family(c.split('/')[0]!) === fam);
  if (node && peer && cidr && node.meta.annotations[vtepKey] && peer.meta.annotations[vtepKey]) {
    const vtep = cidr.split('/')[0]!;
    const note = `${nodeName} -> ${to} over the VXLAN overlay: masqueraded to ${nodeName}'s VTEP address ${vtep} (over a direct route, --backend auto on one subnet: ${internal ?? 'its InternalIP'})`;
    if (!notes.includes(note)) notes.push(note);
    return vtep;
  }
  return internal;
}

/** The pure part of `kdp explain`. */
export function explainConnection(view: ClusterView, q: ExplainQuery): Explanation {
  const src = addressOf(view, q.src, 'SRC');
  const dst = addressOf(view, q.dst, 'DST');
  const fam = family(dst.ip);
  const compiled = compilePolicies(view);
  const podOf = (ip: string) => compiled.pods.find((p) => p.ips.includes(ip));
  const srcPod = view.pods.find((p) => src.pod !== undefined && keyOf(p.meta) === src.pod);
  const srcNode = srcPod?.nodeName;

  /**
   * One endpoint's path. `egressTo` is the destination the source node's forward hook sees (the endpoint after a
   * DNAT on that node, else the address the packet was sent to); `seenSource` the source the endpoint's node sees.
   */
  const path = (ip: string, port: number, seenSource: string, egressTo = { ip, port }): EndpointPath => {
    const from = podOf(src.ip);
    const to = podOf(ip);
    const out: Packet = { src: src.ip, dst: egressTo.ip, port: egressTo.port, proto: q.proto };
    const egress = from ? evaluateDirection(from, 'egress', egressTo.ip, out) : [];
    const inn: Packet = { src: seenSource, dst: ip, port, proto: q.proto };
    const ingress = to ? evaluateDirection(to, 'ingress', seenSource, inn) : [];
    const denied = [...egress, ...ingress].some((s) => s.outcome === 'deny');
    return {
      ip,
      port,
      ...(compiled.podByIP[ip] ? { pod: compiled.podByIP[ip] } : {}),
      seenSource,
      verdict: denied ? 'deny' : 'allow',
      egress,
      ingress,
    };
  };

  const slices = new Map<string, EndpointSlice[]>();
  for (const s of view.endpointSlices) {
    const k = `${s.meta.namespace}/${s.serviceName}`;
    slices.set(k, [...(slices.get(k) ?? []), s]);
  }
  // topology hints are matched against the zone of the node whose proxy DNATs (the source's, for a ClusterIP)
  const srcZone = view.nodes.find((n) => n.meta.name === srcNode)?.meta.labels[LABEL_TOPOLOGY_ZONE];
  const ports = buildServicePorts(view.services, slices, {
    nodeName: srcNode ?? '',
    family: fam,
    ...(srcZone ? { zone: srcZone } : {}),
  });
  const nodeIPs = new Map<string, string>();
  for (const n of view.nodes)
    for (const a of n.addresses)
      if (a.type === 'InternalIP' || a.type === 'ExternalIP') nodeIPs.set(a.address, n.meta.name);

  for (const sp of ports) {
    if (sp.protocol !== q.proto) continue;
    let via: NonNullable<Explanation['service']>['via'] | undefined;
    if (sp.clusterIP === dst.ip && sp.port === q.port) via = 'ClusterIP';
    else if (sp.externalIPs.includes(dst.ip) && sp.port === q.port) via = 'ExternalIP';
    else if (sp.loadBalancerIPs.includes(dst.ip) && sp.port === q.port) via = 'LoadBalancer';
    else if (sp.nodePort === q.port && nodeIPs.has(dst.ip)) via = 'NodePort';
    if (via === undefined) continue;
    const notes: string[] = [];
    let eps = sp.clusterEndpoints;
    let masqueraded = false;
    if (via === 'ClusterIP') {
      if (sp.internalLocal) {
        eps = sp.localEndpoints;
        notes.push(`internalTrafficPolicy Local: only endpoints on the source's node (${srcNode ?? 'unknown'})`);
      } else if (sp.topology) {
        const where = sp.topology === 'PreferSameNode' ? `node ${srcNode}` : `zone ${srcZone}`;
        notes.push(`topology hints (${sp.topology}): only the endpoints hinted for ${where}`);
      }
    } else if (sp.externalLocal) {
      // a pod's traffic to an external address of a Local service takes the cluster-wide endpoints, unmasqueraded
      notes.push('externalTrafficPolicy Local: traffic from a pod goes to any endpoint, source kept');
    } else {
      masqueraded = true;
      notes.push(
        "externalTrafficPolicy Cluster: masqueraded after forward; an endpoint on another node than the DNAT node sees that node's address as the source",
      );
    }
    // the node that DNATs: the NodePort's node, else the source's own node (ClusterIP, external addresses)
    const dnatNode = via === 'NodePort' ? nodeIPs.get(dst.ip) : srcNode;
    const dnatHere = dnatNode !== undefined && dnatNode === srcNode;
    if (via === 'NodePort' && !dnatHere)
      notes.push(`the NodePort is on ${dnatNode}: the source's egress is checked against ${dst.ip}:${q.port}`);
    const nodeOfIP = (ip: string) => view.pods.find((p) => !p.hostNetwork && p.podIPs.includes(ip))?.nodeName;
    // masquerade happens in postrouting, after forward: only a node behind the DNAT node sees the node address
    const seenBy = (epIP: string): string => {
      if (!masqueraded || nodeOfIP(epIP) === dnatNode) return src.ip;
      return nodeAddress(view, dnatNode, nodeOfIP(epIP), fam, notes) ?? src.ip;
    };
    const paths = eps.map((e) =>
      path(
        e.ip,
        e.port,
        seenBy(e.ip),
        dnatHere || via !== 'NodePort' ? { ip: e.ip, port: e.port } : { ip: dst.ip, port: q.port },
      ),
    );
    const allowed = paths.filter((p) => p.verdict === 'allow').length;
    return {
      src,
      dst,
      port: q.port,
      proto: q.proto,
      service: { key: `${sp.namespace}/${sp.name}`, portName: sp.portName, via, masqueraded, notes },
      paths,
      verdict:
        paths.length === 0 ? 'no-endpoint' : allowed === paths.length ? 'allow' : allowed === 0 ? 'deny' : 'partial',
    };
  }
  const direct = path(dst.ip, q.port, src.ip);
  return { src, dst, port: q.port, proto: q.proto, paths: [direct], verdict: direct.verdict };
}

const named = (a: { ip: string; pod?: string }): string => (a.pod ? `${a.ip} (${a.pod})` : a.ip);

export function renderExplanation(e: Explanation): string {
  const out: string[] = [`connection ${named(e.src)} -> ${named(e.dst)} port ${e.port}/${e.proto}`];
  if (e.service) {
    const s = e.service;
    out.push(
      `service ${s.key}${s.portName ? ` port ${s.portName}` : ''} (${s.via}): DNAT to ${e.paths.length} endpoint${e.paths.length === 1 ? '' : 's'}`,
    );
    for (const n of s.notes) out.push(`  note: ${n}`);
  }
  for (const p of e.paths) {
    out.push(`${e.service ? 'endpoint' : 'destination'} ${p.ip}:${p.port}${p.pod ? ` (${p.pod})` : ''}: ${p.verdict}`);
    if (p.seenSource !== e.src.ip) out.push(`  source seen by the endpoint: ${p.seenSource}`);
    const steps = (dir: string, list: readonly Step[], who: string) => {
      if (list.length === 0) out.push(`  ${dir}: ${who} is not a pod kdp enforces policy for: no check`);
      for (const s of list)
        out.push(
          `  ${dir} ${s.pod}: ${s.outcome.toUpperCase()} ${s.tier}${s.policy ? ` ${s.policy}` : ''}${s.rule ? ` rule ${s.rule}` : ''}: ${s.reason}`,
        );
    };
    steps('egress ', p.egress, e.src.ip);
    steps('ingress', p.ingress, p.seenSource === e.src.ip ? p.ip : p.ip);
  }
  out.push(`verdict: ${e.verdict}`);
  return out.join('\n') + '\n';
}

const FLAGS = {
  manifests: {
    type: 'string',
    arg: 'DIR',
    help: 'cluster state from a directory of manifests',
    defaultText: "the running kdp up's, else examples/cluster",
  },
  kubeconfig: { type: 'string', arg: 'FILE', help: 'cluster state from the Kubernetes API' },
  json: { type: 'boolean', default: false, help: 'as JSON' },
} as const satisfies FlagTable;

const usage = `Usage: kdp explain SRC DST PORT/PROTO [options]

SRC and DST are IP addresses or pods (namespace/name); DST may be a ClusterIP, NodePort (node address),
external or load-balancer address of a Service. PROTO is tcp, udp or sctp (default tcp).
Prints the service DNAT and its endpoints, then for each endpoint every policy step at egress and ingress
(AdminNetworkPolicy, NetworkPolicy, BaselineAdminNetworkPolicy) and the verdict. Exit status: 0 allowed on
every path, 1 denied on some path.

${flagHelp(FLAGS)}`;

export function parsePortProto(s: string): { port: number; proto: Protocol } {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(s);
  const port = m ? Number(m[1]) : NaN;
  if (!m || port < 1 || port > 65535)
    throw new KdpError('KDP_USAGE', `bad PORT/PROTO ${JSON.stringify(s)} (e.g. 80/tcp, 53/udp, 9000/sctp)`);
  return { port, proto: (m[2] ?? 'tcp').toUpperCase() as Protocol };
}

export const explainCommand: Command = {
  name: 'explain',
  summary: 'the path of one connection: service DNAT, then the policy rule that allows or denies it',
  usage,
  flags: { '': FLAGS },
  async run(argv, ctx) {
    const { values, positionals } = parseFlags(FLAGS, argv);
    if (positionals.length !== 3) throw new KdpError('KDP_USAGE', 'kdp explain needs SRC DST PORT/PROTO');
    const [src, dst, pp] = positionals as [string, string, string];
    const { port, proto } = parsePortProto(pp);
    const { readState } = await import('../../up/state.ts');
    const { openSource } = await import('../../k8s/open-source.ts');
    const { takeSnapshot } = await import('../../up/snapshot.ts');
    const { DEFAULT_MANIFESTS } = await import('./up.ts');
    const state = readState();
    const manifests = values.manifests ?? (values.kubeconfig ? undefined : (state?.manifests ?? DEFAULT_MANIFESTS));
    const view = await takeSnapshot(
      openSource({
        ...(manifests ? { manifestsDir: resolve(manifests) } : {}),
        ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
        log: ctx.log,
      }),
    );
    const e = explainConnection(view, { src, dst, port, proto });
    ctx.out(values.json ? JSON.stringify(e, null, 2) + '\n' : renderExplanation(e));
    return e.verdict === 'allow' ? 0 : 1;
  },
};
