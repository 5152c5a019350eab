// The lab's naming and address plan: pure functions, unit-tested (test/unit/lab/plan.test.ts).
//
// Names: every network namespace a lab makes is `kdp-<pid>-<tag>-<role>`, where <pid> is the process that
// built it and <tag> four random hex digits. A later run sweeps the namespaces whose <pid> is no longer
// alive, so a crashed run never leaves anything behind for long, and parallel runs never touch each other.
//
// Addresses (all from 198.18.0.0/15, the benchmarking range, and ULA fd00:198:18::/48):
//   underlay bridge host ("outside client")  198.18.0.1/24        fd00:198:18::1/64
//   node i (1-based)                          198.18.0.(10+i)/24   fd00:198:18::(10+i)/64
//   pod CIDR of node i                        198.19.i.0/24        fd00:198:19:i::/64     (cluster CIDR 198.19.0.0/16)
//
// Two routed subnets (`planLab(id, n, { subnets: 2 })`, where host-gw cannot work and an overlay must):
// the underlay namespace holds a second bridge ul1 and forwards between the two, so it is the router.
//   segment A: bridge ul0, 198.18.0.0/24  fd00:198:18::/64    router 198.18.0.1  fd00:198:18::1
//   segment B: bridge ul1, 198.18.1.0/24  fd00:198:18:1::/64  router 198.18.1.1  fd00:198:18:1::1
//   node i sits on segment A when i is odd, B when even (3 nodes: node-1, node-3 on A, node-2 on B), with
//   address 198.18.<segment>.(10+i) and fd00:198:18:<segment>::(10+i), and ONE route per family: the other
//   segment via the router. No default route, no route to any pod CIDR: pods of a node on the other segment
//   are reachable only through an overlay. Pod CIDRs are the same as with one subnet.
import { KdpError } from '../common/errors.ts';

const LAB_PREFIX = 'kdp';
const MAX_NODES = 200;
const NAME_RE = /^kdp-(\d+)-([0-9a-f]{4})-([a-z0-9][a-z0-9.-]*)$/;
const ROLE_RE = /^[a-z0-9][a-z0-9.-]{0,40}$/;

export interface NodePlan {
  readonly index: number;
  /** Kubernetes-style node name */
  readonly name: string;
  /** the node's network namespace */
  readonly ns: string;
  /** the node's interface to the underlay (inside its namespace) */
  readonly ifname: 'eth0';
  /** the node's port on the underlay bridge (inside the underlay namespace) */
  readonly underlayPort: string;
  readonly ip4: string;
  readonly ip6: string;
  readonly podCidr4: string;
  readonly podCidr6: string;
  /** index of the underlay segment the node sits on (0: ul0, 198.18.0.0/24; 1: ul1, 198.18.1.0/24) */
  readonly subnet: number;
  /**
   * the router's address on the node's segment (the underlay namespace): the next hop to the other segment in
   * a two-subnet lab. In a one-subnet lab it is the underlay host, and nothing routes through it.
   */
  readonly gateway4: string;
  readonly gateway6: string;
}

/** One underlay segment: a bridge in the underlay namespace, whose address is the segment's router/host. */
export interface SubnetPlan {
  readonly index: number;
  readonly bridge: string;
  /**
   * the bridge's fixed MAC: a bridge without one takes its lowest port's MAC, so the router's MAC would move when
   * a node's port moves to the other segment (the nodes' neighbour entries would go stale for ~30 s)
   */
  readonly mac: string;
  readonly cidr4: string;
  readonly cidr6: string;
  readonly host4: string;
  readonly host6: string;
}

export interface LabPlanOptions {
  /** underlay segments: 1 (one bridge, today's lab) or 2 (two bridges routed by the underlay namespace) */
  readonly subnets?: 1 | 2;
}

export interface LabPlan {
  readonly runId: string;
  readonly underlayNs: string;
  readonly underlayBridge: 'ul0';
  readonly underlayPrefix4: 24;
  readonly underlayPrefix6: 64;
  readonly underlayHost4: string;
  readonly underlayHost6: string;
  readonly clusterCidr4: string;
  readonly clusterCidr6: string;
  /** the underlay segments (one, or two routed by the underlay namespace); [0] is ul0 / underlayHost4 */
  readonly subnets: readonly SubnetPlan[];
  readonly nodes: readonly NodePlan[];
}

export function makeRunId(pid: number, tag: number): string {
  if (!Number.isInteger(pid) || pid <= 0) throw new KdpError('KDP_LAB_INVALID', `bad pid ${pid}`);
  return `${pid}-${(tag & 0xffff).toString(16).padStart(4, '0')}`;
}

export function nsName(runId: string, role: string): string {
  if (!ROLE_RE.test(role))
    throw new KdpError(
      'KDP_LAB_INVALID',
      `bad namespace role ${JSON.stringify(role)}: lowercase letters, digits, '.' and '-'`,
    );
  return `${LAB_PREFIX}-${runId}-${role}`;
}

interface ParsedNsName {
  readonly pid: number;
  readonly runId: string;
  readonly role: string;
}

export function parseNsName(name: string): ParsedNsName | undefined {
  const m = NAME_RE.exec(name);
  if (!m) return undefined;
  return { pid: Number(m[1]), runId: `${m[1]}-${m[2]}`, role: m[3] as string };
}

/** The namespaces, among `names`, left by runs whose process is gone. */
export function leftovers(names: readonly string[], isAlive: (pid: number) => boolean): string[] {
  const alive = new Map<number, boolean>();
  return names.filter((n) => {
    const p = parseNsName(n);
    if (!p) return false;
    let a = alive.get(p.pid);
    if (a === undefined) alive.set(p.pid, (a = isAlive(p.pid)));
    return !a;
  });
}

function subnetPlan(index: number): SubnetPlan {
  const v6 = index === 0 ? 'fd00:198:18::' : `fd00:198:18:${index.toString(16)}::`;
  return {
    index,
    bridge: `ul${index}`,
    mac: `02:6b:64:70:00:${index.toString(16).padStart(2, '0')}`,
    cidr4: `198.18.${index}.0/24`,
    cidr6: `${v6}/64`,
    host4: `198.18.${index}.1`,
    host6: `${v6}1`,
  };
}

export function planLab(runId: string, nodeCount: number, opts: LabPlanOptions = {}): LabPlan {
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > MAX_NODES) {
    throw new KdpError('KDP_LAB_INVALID', `node count must be an integer from 1 to ${MAX_NODES}, got ${nodeCount}`);
  }
  const subnetCount: number = opts.subnets ?? 1;
  if (subnetCount !== 1 && subnetCount !== 2)
    throw new KdpError('KDP_LAB_INVALID', `subnets must be 1 or 2, got ${String(subnetCount)}`);
  const subnets = Array.from({ length: subnetCount }, (_, i) => subnetPlan(i));
  const nodes: NodePlan[] = [];
  for (let i = 1; i <= nodeCount; i++) {
    const sub = subnets[(i - 1) % subnetCount] as SubnetPlan;
    const v6 = sub.host6.slice(0, -1); // the segment's prefix, ending in '::'
    nodes.push({
      index: i,
      name: `node-${i}`,
      ns: nsName(runId, `node-${i}`),
      ifname: 'eth0',
      underlayPort: `n${i}`,
      ip4: `198.18.${sub.index}.${10 + i}`,
      ip6: `${v6}${(10 + i).toString(16)}`,
      podCidr4: `198.19.${i}.0/24`,
      podCidr6: `fd00:198:19:${i.toString(16)}::/64`,
      subnet: sub.index,
      gateway4: sub.host4,
      gateway6: sub.host6,
    });
  }
  return {
    runId,
    underlayNs: nsName(runId, 'underlay'),
    underlayBridge: 'ul0',
    underlayPrefix4: 24,
    underlayPrefix6: 64,
    underlayHost4: '198.18.0.1',
    underlayHost6: 'fd00:198:18::1',
    clusterCidr4: '198.19.0.0/16',
    clusterCidr6: 'fd00:198:19::/48',
    subnets,
    nodes,
  };
}

/**
 * `ip -batch` lines run inside the underlay namespace: one bridge per segment with its host (router) address,
 * one veth per node on its segment's bridge.
 */
export function underlayBatch(plan: LabPlan): string[] {
  const lines = ['link set lo up'];
  for (const s of plan.subnets)
    lines.push(
      `link add ${s.bridge} address ${s.mac} type bridge`,
      `link set ${s.bridge} up`,
      `addr add ${s.host4}/${plan.underlayPrefix4} dev ${s.bridge}`,
      `addr add ${s.host6}/${plan.underlayPrefix6} dev ${s.bridge} nodad`,
    );
  for (const n of plan.nodes) lines.push(...attachNodeBatch(plan, n));
  return lines;
}

/** Lines (inside the underlay namespace) that plug one node into its segment's bridge. */
export function attachNodeBatch(plan: LabPlan, n: NodePlan): string[] {
  const bridge = plan.subnets[n.subnet]?.bridge ?? plan.underlayBridge;
  return [
    `link add ${n.underlayPort} type veth peer name ${n.ifname} netns ${n.ns}`,
    `link set ${n.underlayPort} master ${bridge} up`,
  ];
}

/**
 * `ip -batch` lines run inside a node's namespace. No default route: a node reaches only the lab. In a
 * two-subnet lab, one route per family to each other segment, via the router on the node's own segment.
 */
export function nodeBatch(plan: LabPlan, n: NodePlan): string[] {
  const lines = [
    'link set lo up',
    `addr add ${n.ip4}/${plan.underlayPrefix4} dev ${n.ifname}`,
    `addr add ${n.ip6}/${plan.underlayPrefix6} dev ${n.ifname} nodad`,
    `link set ${n.ifname} up`,
  ];
  for (const s of plan.subnets) {
    if (s.index === n.subnet) continue;
    lines.push(`route add ${s.cidr4} via ${n.gateway4} dev ${n.ifname}`);
    lines.push(`route add ${s.cidr6} via ${n.gateway6} dev ${n.ifname}`);
  }
  return lines;
}

/** sysctls of a node namespace: a Kubernetes node forwards packets for its pods. */
export const NODE_SYSCTLS: readonly string[] = ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'];

/** sysctls of the underlay namespace: it routes between the segments when there are two (none otherwise). */
export function underlaySysctls(plan: LabPlan): string[] {
  return plan.subnets.length > 1 ? ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'] : [];
}
