// compilePolicies: NetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy -> per enforced pod the ingress
// and egress verdict structure of ./types.ts (selectors resolved to address ranges, named ports to numbers).
// Pure. Semantics: docs/policy.md.
import type {
  AdminPodSelector,
  AdminPolicyPort,
  AdminPolicyRule,
  LabelSelector,
  BaselineAdminNetworkPolicy,
  AdminNetworkPolicy,
  Kind,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyRule,
  Pod,
  Protocol,
} from '../model/types.ts';
import { keyOf } from '../model/types.ts';
import type { Change } from '../k8s/controller.ts';
import { AddressSetBuilder, inRanges, ipKey } from './addr.ts';
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
  /** whether the pod is in a namespace matching nsSel (undefined: only `ownNs`) and its labels match podSel */
  matches(spec: PeerSpec, p: Pod): boolean {
    const { nsSel, podSel, ownNs } = spec;
    return (
      (nsSel === undefined ? p.meta.namespace === ownNs : selectorMatches(nsSel, this.nsLabels(p.meta.namespace))) &&
      (podSel === undefined || selectorMatches(podSel, p.meta.labels))
    );
  }
  /** the policy pods a peer spec selects */
  select(spec: PeerSpec): Pod[] {
    return this.pods.filter((p) => this.matches(spec, p));
  }
  nodeAddresses(sel: LabelSelector): string[] {
    return this.#input.nodes
      .filter((n) => selectorMatches(sel, n.meta.labels))
      .flatMap((n) =>
        n.addresses.filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address),
      );
  }
}

/** A peer that selects pods: namespaces by nsSel (undefined: only `ownNs`), pods by podSel (undefined: all). */
interface PeerSpec {
  readonly nsSel: LabelSelector | undefined;
  readonly podSel: LabelSelector | undefined;
  readonly ownNs?: string;
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

/**
 * Resolved rules per rule source: a rule's result depends on the local pod only through named ingress ports (its
 * container ports), so pods share one CompiledRule object (and the renderer its cut elements). A rule source is
 * re-resolved (a new object) whenever what it read of the cluster changed.
 */
const ruleMemo = new WeakMap<RuleSource, Map<string, CompiledRule>>();

/** Resolves a rule for one local pod; `notes` collects named ports that match nothing. */
function compileRule(
  src: RuleSource,
  dir: Direction,
  local: Pod,
  cluster: Cluster,
  notes: CompileNote[],
): CompiledRule {
  const named = src.ports?.filter((p) => typeof p.port === 'string') ?? [];
  const memoKey = named.length > 0 && dir === 'ingress' ? `in ${JSON.stringify(local.containerPorts)}` : dir;
  let memo = ruleMemo.get(src);
  if (!memo) ruleMemo.set(src, (memo = new Map()));
  let rule = memo.get(memoKey);
  if (!rule) memo.set(memoKey, (rule = resolveRule(src, dir, local, cluster)));
  if (
    named.length > 0 &&
    named.length === src.ports!.length &&
    rule.ports !== 'any' &&
    rule.ports.length === 0 &&
    rule.peerPorts.length === 0
  )
    notes.push({
      tier: src.tier,
      policy: src.policy,
      message: `${src.rule}: port name(s) ${named.map((p) => p.port).join(', ')} match no container port${dir === 'ingress' ? ` of ${keyOf(local.meta)}` : ' of any peer'}; the rule matches nothing there`,
    });
  return rule;
}

function resolveRule(src: RuleSource, dir: Direction, local: Pod, cluster: Cluster): CompiledRule {
  let peers: 'any' | AddressRange[] = 'any';
  let peerParts: CompiledRule['peerParts'];
  if (src.peers !== 'any') {
    const b = new AddressSetBuilder();
    for (const p of src.peers.pods) for (const ip of p.podIPs) b.addIP(ip);
    b.addRanges(src.peers.ranges);
    peers = b.build();
    const ips = new Map<string, string>();
    for (const p of src.peers.pods) for (const ip of p.podIPs) ips.set(ipKey(ip), ip);
    const rb = new AddressSetBuilder();
    rb.addRanges(src.peers.ranges);
    peerParts = { pods: [...ips.keys()].sort().map((k) => ips.get(k)!), ranges: rb.build() };
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
    ...(peerParts ? { peerParts } : {}),
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
    else for (const p of cluster.select(npPeerSpec(np, peer))) pods.set(keyOf(p.meta), p);
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

const npPeerSpec = (np: NetworkPolicy, peer: NetworkPolicyPeer): PeerSpec => ({
  nsSel: peer.namespaceSelector,
  podSel: peer.podSelector,
  ownNs: np.meta.namespace,
});
const adminPeerSpec = (s: AdminPodSelector): PeerSpec => ({ nsSel: s.namespaceSelector, podSel: s.podSelector });

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
    if (peer.pods) for (const p of cluster.select(adminPeerSpec(peer.pods))) pods.set(keyOf(p.meta), p);
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

/** Sorts as String.prototype.localeCompare does (one collator: much cheaper than localeCompare per call). */
const collate = new Intl.Collator().compare;
const byName = <T extends { meta: { namespace: string; name: string } }>(a: T, b: T): number =>
  collate(keyOf(a.meta), keyOf(b.meta));

type AnyPolicy = NetworkPolicy | AdminNetworkPolicy | BaselineAdminNetworkPolicy;
const POLICY_KINDS: readonly Kind[] = ['NetworkPolicy', 'AdminNetworkPolicy', 'BaselineAdminNetworkPolicy'];

/** One policy with its rule sources resolved against the cluster, and what they depend on (updated in place). */
interface Entry {
  /** `Kind key` */
  id: string;
  policy: AnyPolicy;
  ingress: readonly RuleSource[];
  egress: readonly RuleSource[];
  /** the pods its peers selected when it was resolved (a change of one of them re-resolves it) */
  peerPods: ReadonlySet<string>;
  /** its pod-selecting peers (a changed pod they now select re-resolves it) */
  specs: readonly PeerSpec[];
  /** node peers: re-resolved on any Node change */
  nodes: boolean;
  /** named ports of egress rules (resolved on every peer pod's ports): re-resolved on any Pod change */
  named: boolean;
}

function resolve(policy: AnyPolicy, cluster: Cluster): Entry {
  const id = `${policy.kind} ${keyOf(policy.meta)}`;
  const specs: PeerSpec[] = [];
  let nodes = false;
  let ingress: RuleSource[];
  let egress: RuleSource[];
  if (policy.kind === 'NetworkPolicy') {
    ingress = policy.ingress.map((r, i) => npRuleSource(policy, r, `ingress[${i}]`, cluster));
    egress = policy.egress.map((r, i) => npRuleSource(policy, r, `egress[${i}]`, cluster));
    for (const r of [...policy.ingress, ...policy.egress])
      for (const peer of r.peers) if (!peer.ipBlock) specs.push(npPeerSpec(policy, peer));
  } else {
    const tier = policy.kind;
    const prio = policy.kind === 'AdminNetworkPolicy' ? policy.priority : undefined;
    ingress = policy.ingress.map((r) => adminRuleSource(tier, policy.meta.name, prio, r, cluster));
    egress = policy.egress.map((r) => adminRuleSource(tier, policy.meta.name, prio, r, cluster));
    for (const r of [...policy.ingress, ...policy.egress])
      for (const peer of r.peers) {
        if (peer.pods) specs.push(adminPeerSpec(peer.pods));
        if (peer.nodes) nodes = true;
      }
  }
  const peerPods = new Set<string>();
  for (const s of [...ingress, ...egress])
    if (s.peers !== 'any') for (const p of s.peers.pods) peerPods.add(keyOf(p.meta));
  const named = egress.some((s) => s.ports?.some((p) => typeof p.port === 'string') ?? false);
  return { id, policy, ingress, egress, peerPods, specs, nodes, named };
}

/** Whether the policy's subject selects the pod (in any direction: the pod's result depends on it). */
function subjectSelects(e: Entry, pod: Pod, cluster: Cluster): boolean {
  const p = e.policy;
  if (p.kind === 'NetworkPolicy')
    return p.meta.namespace === pod.meta.namespace && selectorMatches(p.podSelector, pod.meta.labels);
  return subjectMatches(p.subject, pod, cluster);
}

interface Sorted {
  readonly anps: readonly Entry[];
  /** NetworkPolicies per namespace, sorted */
  readonly nps: ReadonlyMap<string, readonly Entry[]>;
  readonly banps: readonly Entry[];
  readonly policies: CompiledPolicies['policies'];
  readonly priorityNotes: readonly CompileNote[];
}

function sortEntries(entries: ReadonlyMap<string, Entry>): Sorted {
  const of = <K extends AnyPolicy['kind']>(kind: K) =>
    [...entries.values()].filter((e) => e.policy.kind === kind) as (Entry & {
      policy: Extract<AnyPolicy, { kind: K }>;
    })[];
  const anps = of('AdminNetworkPolicy').sort(
    (a, b) => a.policy.priority - b.policy.priority || byName(a.policy, b.policy),
  );
  const npList = of('NetworkPolicy').sort((a, b) => byName(a.policy, b.policy));
  const banps = of('BaselineAdminNetworkPolicy').sort((a, b) => byName(a.policy, b.policy));
  const nps = new Map<string, Entry[]>();
  for (const e of npList) {
    const l = nps.get(e.policy.meta.namespace);
    if (l) l.push(e);
    else nps.set(e.policy.meta.namespace, [e]);
  }
  // two ANPs of one priority: undefined by the API; we order them by name and say so
  const priorityNotes: CompileNote[] = [];
  for (let i = 1; i < anps.length; i++)
    if (anps[i]!.policy.priority === anps[i - 1]!.policy.priority)
      priorityNotes.push({
        tier: 'AdminNetworkPolicy',
        policy: anps[i]!.policy.meta.name,
        message: `shares priority ${anps[i]!.policy.priority} with ${anps[i - 1]!.policy.meta.name}; evaluated after it (by name)`,
      });
  return {
    anps,
    nps,
    banps,
    policies: [
      ...anps.map((a) => ({ tier: 'AdminNetworkPolicy' as const, key: a.policy.meta.name })),
      ...npList.map((n) => ({ tier: 'NetworkPolicy' as const, key: keyOf(n.policy.meta) })),
      ...banps.map((b) => ({ tier: 'BaselineAdminNetworkPolicy' as const, key: b.policy.meta.name })),
    ],
    priorityNotes,
  };
}

/** Whether a policy change can move the policy in the sorted lists (or change the same-priority notes). */
function reorders(c: Change): boolean {
  if (c.previous === undefined || c.current === undefined) return true;
  const a = c.previous as AnyPolicy;
  const b = c.current as AnyPolicy;
  return a.kind === 'AdminNetworkPolicy' && b.kind === 'AdminNetworkPolicy' && a.priority !== b.priority;
}

/** One local pod compiled, with the policies it depends on and the notes its rules gave. */
interface PodResult {
  readonly pod: CompiledPod;
  /** ids of the entries whose subject selects it */
  readonly deps: ReadonlySet<string>;
  readonly notes: readonly CompileNote[];
}

function compilePod(pod: Pod, sorted: Sorted, cluster: Cluster): PodResult {
  const notes: CompileNote[] = [];
  const deps = new Set<string>();
  const anps = sorted.anps.filter((a) => subjectMatches((a.policy as AdminNetworkPolicy).subject, pod, cluster));
  const banps = sorted.banps.filter((b) =>
    subjectMatches((b.policy as BaselineAdminNetworkPolicy).subject, pod, cluster),
  );
  const nps = (sorted.nps.get(pod.meta.namespace) ?? []).filter((n) =>
    selectorMatches((n.policy as NetworkPolicy).podSelector, pod.meta.labels),
  );
  for (const e of [...anps, ...nps, ...banps]) deps.add(e.id);
  const direction = (dir: Direction): DirectionPolicy => {
    const type = dir === 'ingress' ? 'Ingress' : 'Egress';
    const admin = anps.flatMap((a) => a[dir].map((s) => compileRule(s, dir, pod, cluster, notes)));
    const selecting = nps.filter((n) => (n.policy as NetworkPolicy).policyTypes.includes(type));
    const baseline = banps.flatMap((b) => b[dir].map((s) => compileRule(s, dir, pod, cluster, notes)));
    return {
      admin,
      isolatedBy: selecting.map((n) => keyOf(n.policy.meta)),
      allow: selecting.flatMap((n) => n[dir].map((s) => compileRule(s, dir, pod, cluster, notes))),
      baseline,
    };
  };
  const compiled: CompiledPod = {
    key: keyOf(pod.meta),
    namespace: pod.meta.namespace,
    name: pod.meta.name,
    ...(pod.nodeName ? { node: pod.nodeName } : {}),
    ips: [...pod.podIPs],
    ingress: direction('ingress'),
    egress: direction('egress'),
  };
  return { pod: compiled, deps, notes };
}

/**
 * The compiler with memory: compile(input, opts, changes) gives what compilePolicies(input, opts) gives, redoing
 * only what the changes touch. It keeps every policy's resolved rule sources (re-resolved when the policy changes
 * or a pod, namespace or node its peers depend on does) and every local pod's result (recompiled when the pod, its
 * namespace or a policy selecting it before or after the change changed); an untouched pod keeps its CompiledPod
 * object, so the renderer's per-pod cache (nft.ts) reuses its elements. Without changes (undefined: a full
 * reconcile, or the first) it compiles from scratch. A compile that throws forgets everything (the next is full).
 */
export class PolicyCompiler {
  #entries = new Map<string, Entry>();
  #pods = new Map<string, PodResult>();
  #sorted: Sorted | undefined;
  #node: string | undefined;
  #primed = false;

  compile(input: PolicyInput, opts: CompileOptions = {}, changes?: readonly Change[]): CompiledPolicies {
    try {
      return this.#compile(input, opts, changes);
    } catch (err) {
      this.#primed = false;
      throw err;
    }
  }

  #compile(input: PolicyInput, opts: CompileOptions, changes: readonly Change[] | undefined): CompiledPolicies {
    const cluster = new Cluster(input);
    const local = cluster.pods
      .filter((p) => opts.node === undefined || p.nodeName === opts.node)
      .sort((a, b) => collate(keyOf(a.meta), keyOf(b.meta)));
    const policies: AnyPolicy[] = [
      ...input.networkPolicies,
      ...input.adminNetworkPolicies,
      ...input.baselineAdminNetworkPolicies,
    ];
    const known = new Set<Kind>([...POLICY_KINDS, 'Pod', 'Namespace', 'Node']);
    const incremental =
      this.#primed && changes !== undefined && this.#node === opts.node && changes.every((c) => known.has(c.kind));
    /** local pods to compile again */
    const redo = new Set<string>();
    if (!incremental) {
      this.#entries = new Map(policies.map((p) => [`${p.kind} ${keyOf(p.meta)}`, resolve(p, cluster)]));
      this.#pods.clear();
      this.#sorted = undefined;
    } else {
      const dirty = new Set<string>();
      const touched = new Set<string>();
      for (const c of changes) {
        if (POLICY_KINDS.includes(c.kind)) dirty.add(`${c.kind} ${c.key}`);
        else if (c.kind === 'Pod') touched.add(c.key);
        else if (c.kind === 'Namespace') {
          // its pods' namespace labels changed: each is a changed pod (as a peer and as a subject)
          for (const p of cluster.pods) if (p.meta.namespace === c.key) touched.add(keyOf(p.meta));
          for (const k of this.#pods.keys()) if (k.startsWith(`${c.key}/`)) touched.add(k);
        } else if (c.kind === 'Node') for (const e of this.#entries.values()) if (e.nodes) dirty.add(e.id);
      }
      if (touched.size > 0) {
        const now = cluster.pods.filter((p) => touched.has(keyOf(p.meta)));
        for (const e of this.#entries.values())
          if (
            e.named ||
            [...touched].some((k) => e.peerPods.has(k)) ||
            now.some((p) => e.specs.some((s) => cluster.matches(s, p)))
          )
            dirty.add(e.id);
        for (const k of touched) redo.add(k);
      }
      if (dirty.size > 0) {
        const byId = new Map(policies.map((p) => [`${p.kind} ${keyOf(p.meta)}`, p]));
        for (const id of dirty) {
          // the pods it selected before, and those it selects now
          for (const [k, r] of this.#pods) if (r.deps.has(id)) redo.add(k);
          const p = byId.get(id);
          if (p === undefined) {
            this.#entries.delete(id);
            continue;
          }
          const e = resolve(p, cluster);
          // in place: the sorted lists keep pointing at it (they are rebuilt when a policy itself changed)
          const had = this.#entries.get(id);
          if (had) Object.assign(had, e);
          else this.#entries.set(id, e);
          for (const lp of local) if (subjectSelects(e, lp, cluster)) redo.add(keyOf(lp.meta));
        }
        // the order changes when a policy comes or goes, or an ANP's priority changes (an edit keeps its place)
        if (changes.some((c) => POLICY_KINDS.includes(c.kind) && reorders(c))) this.#sorted = undefined;
      }
    }
    const sorted = (this.#sorted ??= sortEntries(this.#entries));
    const results = new Map<string, PodResult>();
    for (const p of local) {
      const key = keyOf(p.meta);
      const had = this.#pods.get(key);
      results.set(key, had !== undefined && !redo.has(key) ? had : compilePod(p, sorted, cluster));
    }
    this.#pods = results;
    this.#node = opts.node;
    this.#primed = true;

    const podByIP: Record<string, string> = {};
    for (const p of [...cluster.pods].sort((a, b) => collate(keyOf(a.meta), keyOf(b.meta))))
      for (const ip of p.podIPs) podByIP[ip] ??= keyOf(p.meta);
    const seen = new Set<string>();
    const notes = [...sorted.priorityNotes, ...[...results.values()].flatMap((r) => r.notes)].filter((n) => {
      const k = `${n.tier}|${n.policy}|${n.message}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    return {
      ...(opts.node !== undefined ? { node: opts.node } : {}),
      pods: [...results.values()].map((r) => r.pod),
      podByIP,
      policies: sorted.policies,
      notes,
    };
  }
}

export function compilePolicies(input: PolicyInput, opts: CompileOptions = {}): CompiledPolicies {
  return new PolicyCompiler().compile(input, opts);
}

/** Whether any policy selects the pod (it must stay closed until the first sync has programmed it). */
export function isSelected(pod: CompiledPod): boolean {
  const d = (x: DirectionPolicy): boolean => x.admin.length > 0 || x.isolatedBy.length > 0 || x.baseline.length > 0;
  return d(pod.ingress) || d(pod.egress);
}
