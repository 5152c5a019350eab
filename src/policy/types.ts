// The contract of the policy compiler (src/policy): what compilePolicies() produces from the cluster's policies,
// what renderNft() turns into one nft script and what evaluate() walks for `kdp explain` and the unit tests.
// Plain data (no Maps), so golden files and the node agent (pagent) read the same structure.
//
// Evaluation order per direction (docs/policy.md): AdminNetworkPolicy rules (priority, lowest first; Allow and
// Deny decide, Pass skips to NetworkPolicy), then NetworkPolicy (a pod selected by a policy of that direction is
// isolated: allowed only by the union of those policies' rules), then BaselineAdminNetworkPolicy (only for pods
// NetworkPolicy did not isolate), then the default: allow. A connection is allowed when the source pod's egress
// and the destination pod's ingress both allow it; replies of allowed connections always pass (stateful).
import type {
  AdminNetworkPolicy,
  BaselineAdminNetworkPolicy,
  IPFamily,
  Key,
  Namespace,
  NetworkPolicy,
  Node,
  Pod,
  Protocol,
} from '../model/types.ts';

/** What the compiler reads (a ClusterView of src/model/status.ts is one). */
export interface PolicyInput {
  readonly pods: readonly Pod[];
  readonly namespaces: readonly Namespace[];
  /** for AdminNetworkPolicy egress `nodes` peers (their InternalIP/ExternalIP addresses) */
  readonly nodes: readonly Node[];
  readonly networkPolicies: readonly NetworkPolicy[];
  readonly adminNetworkPolicies: readonly AdminNetworkPolicy[];
  readonly baselineAdminNetworkPolicies: readonly BaselineAdminNetworkPolicy[];
}

export interface CompileOptions {
  /** compile for the pods on this node (undefined: every pod, as `kdp explain` does) */
  readonly node?: string;
}

export type Direction = 'ingress' | 'egress';
export type Tier = 'AdminNetworkPolicy' | 'NetworkPolicy' | 'BaselineAdminNetworkPolicy';
export type RuleAction = 'Allow' | 'Deny' | 'Pass';

/** An inclusive address range of one family (a /32 is first === last). */
export interface AddressRange {
  readonly family: IPFamily;
  readonly first: string;
  readonly last: string;
}

/** An inclusive port range of one protocol. */
export interface PortRange {
  readonly protocol: Protocol;
  readonly first: number;
  readonly last: number;
}

/** A named port resolved on one peer pod (egress rules): that pod's address with its numbered port. */
export interface PeerPort {
  readonly ip: string;
  readonly protocol: Protocol;
  readonly port: number;
}

/**
 * One rule of one policy as it applies to one pod and direction. It matches a packet whose remote address is in
 * `peers` and whose protocol/port is in `ports`, or whose (remote address, protocol, port) is one of `peerPorts`.
 */
export interface CompiledRule {
  readonly tier: Tier;
  /** the policy's key: `namespace/name` (NetworkPolicy) or `name` (cluster-scoped) */
  readonly policy: Key;
  /** `ingress[0]`, `egress[2]` (NetworkPolicy) or the admin rule's name */
  readonly rule: string;
  /** NetworkPolicy rules are Allow; BaselineAdminNetworkPolicy rules Allow or Deny */
  readonly action: RuleAction;
  /** AdminNetworkPolicy only */
  readonly priority?: number;
  /** remote addresses: 'any', or merged sorted ranges (empty: no peer matched, the rule matches nothing) */
  readonly peers: 'any' | readonly AddressRange[];
  /** 'any' (every protocol and port, ICMP too), or sorted merged ranges (empty: only peerPorts can match) */
  readonly ports: 'any' | readonly PortRange[];
  /** named ports resolved per peer pod (egress); sorted */
  readonly peerPorts: readonly PeerPort[];
  /**
   * `peers` as they came (absent when peers is 'any'): the selected pods' addresses (sorted, each once) and the
   * other ranges (ipBlocks, nodes; merged). The renderer puts pod addresses in hash sets and ranges in interval sets.
   */
  readonly peerParts?: { readonly pods: readonly string[]; readonly ranges: readonly AddressRange[] };
}

/** The verdict structure of one pod in one direction. */
export interface DirectionPolicy {
  /** AdminNetworkPolicy rules selecting the pod, in evaluation order (priority, policy name, rule order) */
  readonly admin: readonly CompiledRule[];
  /** the NetworkPolicies of this direction selecting the pod (sorted keys); non-empty = isolated */
  readonly isolatedBy: readonly Key[];
  /** the rules of those NetworkPolicies (their union allows) */
  readonly allow: readonly CompiledRule[];
  /** BaselineAdminNetworkPolicy rules selecting the pod, in order */
  readonly baseline: readonly CompiledRule[];
}

/** A pod the node enforces policy for (hostNetwork pods and pods without an IP are never local pods). */
export interface CompiledPod {
  /** `namespace/name` */
  readonly key: Key;
  readonly namespace: string;
  readonly name: string;
  readonly node?: string;
  readonly ips: readonly string[];
  readonly ingress: DirectionPolicy;
  readonly egress: DirectionPolicy;
}

/** Why part of a policy matches nothing or a policy was left out (for logs and `kdp explain`). */
export interface CompileNote {
  readonly policy: Key;
  readonly tier: Tier;
  readonly message: string;
}

export interface CompiledPolicies {
  readonly node?: string;
  /** the enforced pods, sorted by key */
  readonly pods: readonly CompiledPod[];
  /** every pod address of the cluster -> its pod key (peers named in explain output) */
  readonly podByIP: Readonly<Record<string, Key>>;
  /** every policy known, sorted (tier order, then key): the nft counters are per policy */
  readonly policies: readonly { readonly tier: Tier; readonly key: Key }[];
  readonly notes: readonly CompileNote[];
}

/** A packet's first packet as the node sees it after Service DNAT (dst is the endpoint pod). */
export interface Packet {
  readonly src: string;
  readonly dst: string;
  readonly port: number;
  readonly proto: Protocol;
}

/** One step of the evaluation, naming the policy and rule that decided or passed. */
export interface Step {
  readonly direction: Direction;
  /** the pod whose policy is evaluated (source pod for egress, destination pod for ingress) */
  readonly pod: Key;
  readonly tier: Tier | 'Default';
  readonly policy?: Key;
  readonly rule?: string;
  /** allow / deny end this direction; pass moves on to the next tier */
  readonly outcome: 'allow' | 'deny' | 'pass';
  readonly reason: string;
}

export interface Evaluation {
  readonly verdict: 'allow' | 'deny';
  /** empty when the source is not an enforced pod */
  readonly egress: readonly Step[];
  /** empty when the destination is not an enforced pod */
  readonly ingress: readonly Step[];
}

export interface RenderOptions {
  /** the nft table name (family inet), e.g. `kdp-policy` */
  readonly table: string;
}
