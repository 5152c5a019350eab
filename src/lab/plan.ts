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

export function planLab(runId: string, nodeCount: number): LabPlan {
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > MAX_NODES) {
    throw new KdpError('KDP_LAB_INVALID', `node count must be an integer from 1 to ${MAX_NODES}, got ${nodeCount}`);
  }
  const nodes: NodePlan[] = [];
  for (let i = 1; i <= nodeCount; i++) {
    nodes.push({
      index: i,
      name: `node-${i}`,
      ns: nsName(runId, `node-${i}`),
      ifname: 'eth0',
      underlayPort: `n${i}`,
      ip4: `198.18.0.${10 + i}`,
      ip6: `fd00:198:18::${(10 + i).toString(16)}`,
      podCidr4: `198.19.${i}.0/24`,
      podCidr6: `fd00:198:19:${i.toString(16)}::/64`,
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
    nodes,
  };
}

/** `ip -batch` lines run inside the underlay namespace: the bridge, its host address, one veth per node. */
export function underlayBatch(plan: LabPlan): string[] {
  const br = plan.underlayBridge;
  const lines = [
    'link set lo up',
    `link add ${br} type bridge`,
    `link set ${br} up`,
    `addr add ${plan.underlayHost4}/${plan.underlayPrefix4} dev ${br}`,
    `addr add ${plan.underlayHost6}/${plan.underlayPrefix6} dev ${br} nodad`,
  ];
  for (const n of plan.nodes) lines.push(...attachNodeBatch(plan, n));
  return lines;
}

/** Lines (inside the underlay namespace) that plug one node into the bridge. */
export function attachNodeBatch(plan: LabPlan, n: NodePlan): string[] {
  return [
    `link add ${n.underlayPort} type veth peer name ${n.ifname} netns ${n.ns}`,
    `link set ${n.underlayPort} master ${plan.underlayBridge} up`,
  ];
}

/** `ip -batch` lines run inside a node's namespace. No default route: a node reaches only the lab. */
export function nodeBatch(plan: LabPlan, n: NodePlan): string[] {
  return [
    'link set lo up',
    `addr add ${n.ip4}/${plan.underlayPrefix4} dev ${n.ifname}`,
    `addr add ${n.ip6}/${plan.underlayPrefix6} dev ${n.ifname} nodad`,
    `link set ${n.ifname} up`,
  ];
}

/** sysctls of a node namespace: a Kubernetes node forwards packets for its pods. */
export const NODE_SYSCTLS: readonly string[] = ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'];
