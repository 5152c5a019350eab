// compilePolicies: NetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy -> per enforced pod the ingress
// and egress verdict structure of ./types.ts (selectors resolved to address ranges, named ports to numbers).
// Pure. Semantics: docs/policy.md.
import type {
  AdminPodSelector,
  AdminPolicyPort,
  AdminPolicyRule,
  LabelSelector,
  NetworkPolicy,
  NetworkPolicyRule,
  Pod,
  Protocol,
} from '../model/types.ts';
import { keyOf } from '../model/types.ts';
import { AddressSetBuilder, inRanges } from './addr.ts';
import type {
  AddressRange,
  CompiledPod,
  CompiledPolicies,
  CompiledRule,
  CompileNote,
  CompileOptions,
  Direction,
  DirectionPolicy,
  PeerPort,
  PolicyInput,
  PortRange,
  RuleAction,
  Tier,
} from './types.ts';

/** The label every namespace carries (set by the API server; added here for manifests that lack it). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';
const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

export function selectorMatches(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels)) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions) {
    const has = Object.hasOwn(labels, e.key);
    const val = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !e.values.includes(val!)) return false;
        break;
      case 'NotIn':
        if (has && e.values.includes(val!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** A pod that takes part in policy: it has its own addresses (not hostNetwork) and is not finished. */
export function isPolicyPod(p: Pod): boolean {
  return !p.hostNetwork && p.podIPs.length > 0 && p.phase !== 'Succeeded' && p.phase !== 'Failed';
}

class Cluster {
  readonly pods: readonly Pod[];
  readonly #nsLabels = new Map<string, Readonly<Record<string, string>>>();
  readonly #input: PolicyInput;
  constructor(input: PolicyInput) {
    this.#input = input;
    this.pods = input.pods.filter(isPolicyPod);
    for (const ns of input.namespaces)
      this.#nsLabels.set(ns.meta.name, { ...ns.meta.labels, [NAMESPACE_NAME_LABEL]: ns.meta.name });
  }
  nsLabels(ns: string): Readonly<Record<string, string>> {
    return this.#nsLabels.get(ns) ?? { [NAMESPACE_NAME_LABEL]: ns };
  }
  /** pods in namespaces matching nsSel (undefined: only `ownNs`) whose labels match podSel (undefined: all) */
  select(nsSel: LabelSelector | undefined, podSel: LabelSelector | undefined, ownNs?: string): Pod[] {
    return this.pods.filter(
      (p) =>
        (nsSel === undefined ? p.meta.namespace === ownNs : selectorMatches(nsSel, this.nsLabels(p.meta.namespace))) &&
        (podSel === undefined || selectorMatches(podSel, p.meta.labels)),
    );
  }
  nodeAddresses(sel: LabelSelector): string[] {
    return this.#input.nodes
      .filter((n) => selectorMatches(sel, n.meta.labels))
      .flatMap((n) =>
        n.addresses.filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address),
      );
  }
}

interface PortSpec {
  readonly protocol?: Protocol; // undefined: a named port of any protocol (ANP namedPort)
  readonly port?: number | string;
  readonly endPort?: number;
}

interface RuleSource {
  readonly tier: Tier;
  readonly policy: string;
  readonly rule: string;
  readonly action: RuleAction;
  readonly priority?: number;
  /** 'any' or the remote pods and extra address ranges */
  readonly peers: 'any' | { readonly pods: readonly Pod[]; readonly ranges: readonly AddressRange[] };
  /** undefined: every port */
  readonly ports?: readonly PortSpec[];
}

function namedPorts(pod: Pod, name: string, protocol: Protocol | undefined): { protocol: Protocol; port: number }[] {
  return pod.containerPorts
    .filter((c) => c.name === name && (protocol === undefined || c.protocol === protocol))
    .map((c) => ({ protocol: c.protocol, port: c.containerPort }));
}

function mergePorts(ports: PortRange[]): PortRange[] {
  const out: PortRange[] = [];
  const sorted = [...ports].sort((a, b) =>
    a.protocol !== b.protocol ? PROTOCOLS.indexOf(a.protocol) - PROTOCOLS.indexOf(b.protocol) : a.first - b.first,
  );
  for (const p of sorted) {
    const prev = out[out.length - 1];
    if (prev && prev.protocol === p.protocol && p.first <= prev.last + 1) {
      if (p.last > prev.last) out[out.length - 1] = { ...prev, last: p.last };
    } else out.push(p);
  }
  return out;
}

/** Resolves a rule for one local pod; `notes` collects named ports that match nothing. */
function compileRule(
  src: RuleSource,
  dir: Direction,
  local: Pod,
  cluster: Cluster,
  notes: CompileNote[],
): CompiledRule {
  let peers: 'any' | AddressRange[] = 'any';
  if (src.peers !== 'any') {
    const b = new AddressSetBuilder();
    for (const p of src.peers.pods) for (const ip of p.podIPs) b.addIP(ip);
    b.addRanges(src.peers.ranges);
    peers = b.build();
  }
  let ports: 'any' | PortRange[] = 'any';
  const peerPorts: PeerPort[] = [];
  if (src.ports !== undefined) {
    const numbered: PortRange[] = [];
    for (const ps of src.ports) {
      if (typeof ps.port === 'string') {
        const name = ps.port;
        if (dir === 'ingress') {
          // the destination is the local pod: its own container port of that name
          for (const np of namedPorts(local, name, ps.protocol))
            numbered.push({ protocol: np.protocol, first: np.port, last: np.port });
        } else {
          // the destination is the peer: each peer pod's own port of that name
          const candidates = cluster.pods.filter(
            (p) => peers === 'any' || p.podIPs.some((ip) => inRanges(ip, peers as AddressRange[])),
          );
          for (const p of candidates)
            for (const np of namedPorts(p, name, ps.protocol))
              for (const ip of p.podIPs) peerPorts.push({ ip, protocol: np.protocol, port: np.port });
        }
        continue;
      }
      for (const protocol of ps.protocol ? [ps.protocol] : PROTOCOLS) {
        if (ps.port === undefined) numbered.push({ protocol, first: 0, last: 65535 });
        else numbered.push({ protocol, first: ps.port, last: ps.endPort ?? ps.port });
      }
    }
    ports = mergePorts(numbered);
    const named = src.ports.filter((p) => typeof p.port === 'string');
    if (named.length > 0 && ports.length === 0 && peerPorts.length === 0 && named.length === src.ports.length)
      notes.push({
        tier: src.tier,
        policy: src.policy,
        message: `${src.rule}: port name(s) ${named.map((p) => p.port).join(', ')} match no container port${dir === 'ingress' ? ` of ${keyOf(local.meta)}` : ' of any peer'}; the rule matches nothing there`,
      });
  }
  peerPorts.sort((a, b) => (a.ip + a.protocol + a.port).localeCompare(b.ip + b.protocol + b.port));
  const dedup = peerPorts.filter(
    (p, i) =>
      i === 0 ||
      p.ip !== peerPorts[i - 1]!.ip ||
      p.protocol !== peerPorts[i - 1]!.protocol ||
      p.port !== peerPorts[i - 1]!.port,
  );
  return {
    tier: src.tier,
    policy: src.policy,
    rule: src.rule,
    action: src.action,
    ...(src.priority !== undefined ? { priority: src.priority } : {}),
    peers,
    ports,
    peerPorts: dedup,
  };
}

function npRuleSource(np: NetworkPolicy, rule: NetworkPolicyRule, name: string, cluster: Cluster): RuleSource {
  const key = keyOf(np.meta);
  if (rule.peers.length === 0)
    return { tier: 'NetworkPolicy', policy: key, rule: name, action: 'Allow', peers: 'any', ...portsOf(rule) };
  const pods = new Map<string, Pod>();
  const b = new AddressSetBuilder();
  for (const peer of rule.peers) {
    if (peer.ipBlock) b.addCIDR(peer.ipBlock.cidr, peer.ipBlock.except);
    else
      for (const p of cluster.select(peer.namespaceSelector, peer.podSelector, np.meta.namespace))
        pods.set(keyOf(p.meta), p);
  }
  return {
    tier: 'NetworkPolicy',
    policy: key,
    rule: name,
    action: 'Allow',
    peers: { pods: [...pods.values()], ranges: b.build() },
    ...portsOf(rule),
  };
}

function portsOf(rule: { readonly ports?: readonly AdminPolicyPort[] }): { ports?: readonly PortSpec[] } {
  if (rule.ports === undefined || rule.ports.length === 0) return {};
  return { ports: rule.ports };
}

function adminRuleSource(
  tier: Tier,
  policy: string,
  priority: number | undefined,
  rule: AdminPolicyRule,
  cluster: Cluster,
): RuleSource {
  const pods = new Map<string, Pod>();
  const b = new AddressSetBuilder();
  for (const peer of rule.peers) {
    if (peer.pods)
      for (const p of cluster.select(peer.pods.namespaceSelector, peer.pods.podSelector)) pods.set(keyOf(p.meta), p);
    if (peer.nodes) for (const ip of cluster.nodeAddresses(peer.nodes)) b.addIP(ip);
    if (peer.networks) for (const c of peer.networks) b.addCIDR(c);
  }
  return {
    tier,
    policy,
    rule: rule.name,
    action: rule.action,
    ...(priority !== undefined ? { priority } : {}),
    peers: { pods: [...pods.values()], ranges: b.build() },
    ...(rule.ports !== undefined ? { ports: rule.ports } : {}),
  };
}

function subjectMatches(s: AdminPodSelector, pod: Pod, cluster: Cluster): boolean {
  return (
    selectorMatches(s.namespaceSelector, cluster.nsLabels(pod.meta.namespace)) &&
    (s.podSelector === undefined || selectorMatches(s.podSelector, pod.meta.labels))
  );
}

export function compilePolicies(input: PolicyInput, opts: CompileOptions = {}): CompiledPolicies {
  const cluster = new Cluster(input);
  const notes: CompileNote[] = [];
  const byName = <T extends { meta: { namespace: string; name: string } }>(a: T, b: T): number =>
    keyOf(a.meta).localeCompare(keyOf(b.meta));
  const anps = [...input.adminNetworkPolicies].sort((a, b) => a.priority - b.priority || byName(a, b));
  const nps = [...input.networkPolicies].sort(byName);
  const banps = [...input.baselineAdminNetworkPolicies].sort(byName);
  // two ANPs of one priority: undefined by the API; we order them by name and say so
  for (let i = 1; i < anps.length; i++)
    if (anps[i]!.priority === anps[i - 1]!.priority)
      notes.push({
        tier: 'AdminNetworkPolicy',
        policy: anps[i]!.meta.name,
        message: `shares priority ${anps[i]!.priority} with ${anps[i - 1]!.meta.name}; evaluated after it (by name)`,
      });

  // rule sources are resolved once (peers do not depend on the local pod; named ingress ports do, later)
  const anpRules = anps.map((a) => ({
    anp: a,
    ingress: a.ingress.map((r) => adminRuleSource('AdminNetworkPolicy', a.meta.name, a.priority, r, cluster)),
    egress: a.egress.map((r) => adminRuleSource('AdminNetworkPolicy', a.meta.name, a.priority, r, cluster)),
  }));
  const banpRules = banps.map((a) => ({
    banp: a,
    ingress: a.ingress.map((r) => adminRuleSource('BaselineAdminNetworkPolicy', a.meta.name, undefined, r, cluster)),
    egress: a.egress.map((r) => adminRuleSource('BaselineAdminNetworkPolicy', a.meta.name, undefined, r, cluster)),
  }));
  const npRules = nps.map((np) => ({
    np,
    ingress: np.ingress.map((r, i) => npRuleSource(np, r, `ingress[${i}]`, cluster)),
    egress: np.egress.map((r, i) => npRuleSource(np, r, `egress[${i}]`, cluster)),
  }));

  const local = cluster.pods
    .filter((p) => opts.node === undefined || p.nodeName === opts.node)
    .sort((a, b) => keyOf(a.meta).localeCompare(keyOf(b.meta)));
  const pods: CompiledPod[] = local.map((pod) => {
    const direction = (dir: Direction): DirectionPolicy => {
      const type = dir === 'ingress' ? 'Ingress' : 'Egress';
      const admin = anpRules
        .filter((a) => subjectMatches(a.anp.subject, pod, cluster))
        .flatMap((a) => a[dir].map((s) => compileRule(s, dir, pod, cluster, notes)));
      const selecting = npRules.filter(
        (n) =>
          n.np.meta.namespace === pod.meta.namespace &&
          n.np.policyTypes.includes(type) &&
          selectorMatches(n.np.podSelector, pod.meta.labels),
      );
      const baseline = banpRules
        .filter((b) => subjectMatches(b.banp.subject, pod, cluster))
        .flatMap((b) => b[dir].map((s) => compileRule(s, dir, pod, cluster, notes)));
      return {
        admin,
        isolatedBy: selecting.map((n) => keyOf(n.np.meta)),
        allow: selecting.flatMap((n) => n[dir].map((s) => compileRule(s, dir, pod, cluster, notes))),
        baseline,
      };
    };
    return {
      key: keyOf(pod.meta),
      namespace: pod.meta.namespace,
      name: pod.meta.name,
      ...(pod.nodeName ? { node: pod.nodeName } : {}),
      ips: [...pod.podIPs],
      ingress: direction('ingress'),
      egress: direction('egress'),
    };
  });

  const podByIP: Record<string, string> = {};
  for (const p of [...cluster.pods].sort((a, b) => keyOf(a.meta).localeCompare(keyOf(b.meta))))
    for (const ip of p.podIPs) podByIP[ip] ??= keyOf(p.meta);
  const seen = new Set<string>();
  const uniqueNotes = notes.filter((n) => {
    const k = `${n.tier}|${n.policy}|${n.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return {
    ...(opts.node !== undefined ? { node: opts.node } : {}),
    pods,
    podByIP,
    policies: [
      ...anps.map((a) => ({ tier: 'AdminNetworkPolicy' as const, key: a.meta.name })),
      ...nps.map((n) => ({ tier: 'NetworkPolicy' as const, key: keyOf(n.meta) })),
      ...banps.map((b) => ({ tier: 'BaselineAdminNetworkPolicy' as const, key: b.meta.name })),
    ],
    notes: uniqueNotes,
  };
}

/** Whether any policy selects the pod (it must stay closed until the first sync has programmed it). */
export function isSelected(pod: CompiledPod): boolean {
  const d = (x: DirectionPolicy): boolean => x.admin.length > 0 || x.isolatedBy.length > 0 || x.baseline.length > 0;
  return d(pod.ingress) || d(pod.egress);
}
