// The probes the overlay e2e files share (test/e2e/overlay-*.test.ts). What is probed follows the upstream
// Kubernetes conformance cases of test/e2e/common/network/networking.go, "Granular Checks: Pods": from a test
// pod, every endpoint pod over HTTP and UDP must answer with its own name ("intra-pod communication"), and the
// same from a node's host network ("node-pod communication"). Added here: ICMP, the client address each server
// saw (no NAT inside the cluster), the overlay MTU, and Services and DNS across the subnets.
import type { Test } from 'tap';
import { waitFor } from '../../src/cni/testing/fixtures.ts';
import { PROBE } from './pods.ts';
import { OVERLAY_MTU } from './overlay.ts';
import type { KernelState, OverlayCluster, OverlayPod } from './overlay.ts';
import type { NodePlan } from '../../src/lab/plan.ts';

export const HTTP_PORT = 8080;
export const UDP_PORT = 5300;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Starts the echo server (HTTP 8080, UDP 5300 naming the sender) in every pod. */
export async function echoAll(c: OverlayCluster, pods: readonly OverlayPod[]): Promise<void> {
  await Promise.all(pods.map((p) => c.startEcho(p, { http: [HTTP_PORT], udp: [UDP_PORT], udpClient: true })));
}

async function curl(c: OverlayCluster, ns: string, url: string, maxTime = 3) {
  return c.lab.exec(ns, ['curl', '-sS', '--max-time', String(maxTime), url], { allowFailure: true, timeoutMs: 20_000 });
}

/** Waits until `from` gets an HTTP answer from `to` (routes, neighbours and fdb entries are in). */
export async function waitReach(c: OverlayCluster, from: OverlayPod, to: OverlayPod, ms = 30_000): Promise<void> {
  await waitFor(
    `${from.name} -> ${to.name}`,
    async () => ((await curl(c, from.ns, `http://${to.ip4}:${HTTP_PORT}/`, 1)).code === 0 ? true : undefined),
    ms,
  );
}

/** HTTP, UDP and ICMP from `client` to each server; each server names itself and saw the client's pod IP. */
export async function podToPods(
  t: Test,
  c: OverlayCluster,
  client: OverlayPod,
  servers: readonly OverlayPod[],
): Promise<void> {
  for (const s of servers) {
    if (s === client) continue;
    const where = `${client.name}@${client.node.name} -> ${s.name}@${s.node.name}`;
    const http = await curl(c, client.ns, `http://${s.ip4}:${HTTP_PORT}/granular`);
    t.equal(http.code, 0, `${where} TCP: ${http.stderr.trim()}`);
    if (http.code === 0)
      t.match(
        JSON.parse(http.stdout),
        { name: s.name, client: new RegExp(`^(::ffff:)?${esc(client.ip4)}:\\d+$`) },
        `${where} TCP: the server answers and saw the client pod IP`,
      );
    const udp = await c.lab.exec(client.ns, [...PROBE, 'udp', s.ip4, String(UDP_PORT), 'hostname', '2000'], {
      allowFailure: true,
    });
    t.match(
      udp.stdout,
      new RegExp(`^${esc(s.name)} hostname ${esc(client.ip4)}:\\d+\\n$`),
      `${where} UDP: the server answers and saw the client pod IP`,
    );
    const icmp = await c.lab.exec(client.ns, ['ping', '-n', '-c', '2', '-i', '0.2', '-W', '2', s.ip4], {
      allowFailure: true,
    });
    t.match(icmp.stdout, /2 packets transmitted, 2 received/, `${where} ICMP`);
  }
}

/** The node-pod case: from a node's host network, every pod answers HTTP and UDP. */
export async function nodeToPods(
  t: Test,
  c: OverlayCluster,
  node: NodePlan,
  servers: readonly OverlayPod[],
): Promise<void> {
  for (const s of servers) {
    const where = `${node.name} -> ${s.name}@${s.node.name}`;
    const http = await curl(c, node.ns, `http://${s.ip4}:${HTTP_PORT}/`);
    t.match(http.code === 0 ? JSON.parse(http.stdout) : {}, { name: s.name }, `${where} TCP: ${http.stderr.trim()}`);
    const udp = await c.lab.exec(node.ns, [...PROBE, 'udp', s.ip4, String(UDP_PORT), 'hostname', '2000'], {
      allowFailure: true,
    });
    t.match(udp.stdout, new RegExp(`^${esc(s.name)} hostname `), `${where} UDP`);
  }
}

/**
 * The overlay MTU: every pod's eth0 has it (the agent's conflist); the largest unfragmentable ICMP echo at that
 * MTU (MTU - 20 IP - 8 ICMP) crosses the overlay, and one byte more is refused with the MTU in the error.
 */
export async function overlayMtu(
  t: Test,
  c: OverlayCluster,
  pods: readonly OverlayPod[],
  from: OverlayPod,
  to: OverlayPod,
): Promise<void> {
  for (const p of pods) {
    const mtu = (await c.lab.exec(p.ns, ['cat', '/sys/class/net/eth0/mtu'])).stdout.trim();
    t.equal(mtu, String(OVERLAY_MTU), `${p.name}'s eth0 MTU is the overlay MTU`);
  }
  const ping = (size: number) =>
    c.lab.exec(from.ns, ['ping', '-n', '-M', 'do', '-s', String(size), '-c', '2', '-i', '0.2', '-W', '2', to.ip4], {
      allowFailure: true,
    });
  const fits = await ping(OVERLAY_MTU - 28);
  t.match(fits.stdout, /2 packets transmitted, 2 received/, `ping -M do -s ${OVERLAY_MTU - 28} crosses the overlay`);
  const over = await ping(OVERLAY_MTU - 27);
  t.not(over.code, 0, `ping -M do -s ${OVERLAY_MTU - 27} fails`);
  t.match(
    over.stdout + over.stderr,
    new RegExp(`message too long, mtu=${OVERLAY_MTU}|[Ff]rag needed and DF set \\(mtu = ${OVERLAY_MTU}\\)`),
    'with "message too long" / "frag needed" naming the overlay MTU',
  );
}

export const SERVICES = { web: '10.96.0.50', dns: '10.96.0.10', nodePort: 30080, localNodePort: 30081 };

/**
 * Services over the overlay: a ClusterIP, a NodePort (externalTrafficPolicy Cluster) and a NodePort with
 * externalTrafficPolicy Local, all backed by `backend` only; the cluster DNS (kdp dns in `dnsPod`) behind its
 * ClusterIP. kdp proxy (nftables) runs in every node given.
 */
export function writeServices(c: OverlayCluster, backend: OverlayPod, dnsPod: OverlayPod): void {
  c.publishPod(backend, { app: 'web' }, [{ port: 8080 }]);
  c.publishPod(dnsPod, { 'k8s-app': 'kube-dns' }, [
    { port: 53, protocol: 'UDP' },
    { port: 53, protocol: 'TCP' },
  ]);
  const svc = (name: string, spec: Record<string, unknown>) =>
    c.writeObject(`svc-${name}`, { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec });
  const http = (nodePort?: number) => [{ name: 'http', port: 80, targetPort: 8080, ...(nodePort ? { nodePort } : {}) }];
  svc('web', {
    type: 'ClusterIP',
    clusterIP: SERVICES.web,
    clusterIPs: [SERVICES.web],
    selector: { app: 'web' },
    ports: http(),
  });
  svc('web-np', {
    type: 'NodePort',
    clusterIP: '10.96.0.51',
    selector: { app: 'web' },
    externalTrafficPolicy: 'Cluster',
    ports: http(SERVICES.nodePort),
  });
  svc('web-local', {
    type: 'NodePort',
    clusterIP: '10.96.0.52',
    selector: { app: 'web' },
    externalTrafficPolicy: 'Local',
    ports: http(SERVICES.localNodePort),
  });
  svc('kube-dns', {
    clusterIP: SERVICES.dns,
    clusterIPs: [SERVICES.dns],
    selector: { 'k8s-app': 'kube-dns' },
    ports: [
      { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
      { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
    ],
  });
}

export async function services(
  t: Test,
  c: OverlayCluster,
  o: {
    /** pods on the backend's other subnet and on its own (ClusterIP clients) */
    clients: readonly OverlayPod[];
    backend: OverlayPod;
    /** a node on the other subnet than the backend (NodePort entry point), and the backend's node */
    entry: NodePlan;
    /** a pod on the other subnet than the DNS pod */
    dnsClient: OverlayPod;
  },
): Promise<void> {
  const { backend } = o;
  for (const cl of o.clients) {
    const where = `ClusterIP from ${cl.name}@${cl.node.name} to ${backend.name}@${backend.node.name}`;
    const r = await waitFor(
      where,
      async () => {
        const res = await curl(c, cl.ns, `http://${SERVICES.web}/`, 2);
        return res.code === 0 ? res : undefined;
      },
      30_000,
    );
    t.match(
      JSON.parse(r.stdout),
      { name: backend.name, client: new RegExp(`^(::ffff:)?${esc(cl.ip4)}:`) },
      `${where}: served, client pod IP kept`,
    );
  }
  const ul = c.lab.underlay;
  const entryIp = c.ip(o.entry);
  const np = await waitFor(
    'NodePort',
    async () => {
      const res = await curl(c, ul, `http://${entryIp}:${SERVICES.nodePort}/`, 2);
      return res.code === 0 ? res : undefined;
    },
    30_000,
  );
  t.match(
    JSON.parse(np.stdout),
    { name: backend.name },
    `NodePort on ${o.entry.name} (subnet ${c.subnetOf(o.entry)}) reaches ${backend.name} on subnet ${c.subnetOf(backend.node)}`,
  );
  const home = backend.node;
  const routerOnHome = c.lab.plan.subnets[c.subnetOf(home)]!.host4;
  const local = await waitFor(
    'eTP=Local NodePort',
    async () => {
      const res = await curl(c, ul, `http://${c.ip(home)}:${SERVICES.localNodePort}/`, 2);
      return res.code === 0 ? res : undefined;
    },
    30_000,
  );
  t.match(
    JSON.parse(local.stdout),
    { name: backend.name, client: new RegExp(`^(::ffff:)?${esc(routerOnHome)}:`) },
    `eTP=Local NodePort on ${home.name} (the local endpoint): served, client address kept`,
  );
  const notLocal = await curl(c, ul, `http://${entryIp}:${SERVICES.localNodePort}/`, 2);
  t.not(notLocal.code, 0, `eTP=Local NodePort on ${o.entry.name} (no local endpoint) is not served`);
  for (const proto of ['+notcp', '+tcp']) {
    const dig = await waitFor(
      `DNS ${proto}`,
      async () => {
        const res = await c.lab.exec(
          o.dnsClient.ns,
          ['dig', proto, '+short', '+time=2', '+tries=1', `@${SERVICES.dns}`, 'web.default.svc.cluster.local', 'A'],
          { allowFailure: true },
        );
        return res.code === 0 && res.stdout.trim() ? res : undefined;
      },
      30_000,
    );
    t.equal(
      dig.stdout.trim(),
      SERVICES.web,
      `kdp dns (${proto.slice(1)}) answers ${o.dnsClient.name} on subnet ${c.subnetOf(o.dnsClient.node)} across the overlay`,
    );
  }
}

/** The VTEP MAC among a Node's annotations (whatever the key). */
export const macOf = (annotations: Record<string, string>): string => {
  const mac = Object.values(annotations).find((v) => /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(v));
  if (!mac) throw new Error(`no MAC among the annotations ${JSON.stringify(annotations)}`);
  return mac.toLowerCase();
};

export interface Peer {
  readonly cidr: string;
  readonly ip: string;
  /** the peer's VTEP MAC (vxlan peers); undefined for a direct peer */
  readonly mac?: string;
}

/**
 * The kernel holds exactly one route per peer (over the overlay device for vxlan peers, via the peer's underlay
 * address for direct ones), one neighbour and one fdb entry per vxlan peer, and nothing else of the agent's.
 */
export function kernelProblems(k: KernelState, peers: readonly Peer[]): string[] {
  const problems: string[] = [];
  const dup = (xs: readonly string[]) => xs.filter((x, i) => xs.indexOf(x) !== i);
  for (const d of dup(k.routes)) problems.push(`duplicate route ${d}`);
  const routeDsts = k.routes.map((r) => r.split(' ')[0]);
  for (const d of dup(routeDsts as string[])) problems.push(`two routes to ${d}`);
  for (const p of peers) {
    const r = k.routes.filter((x) => x.startsWith(`${p.cidr} `));
    if (r.length !== 1) problems.push(`${r.length} routes to ${p.cidr}: ${r.join(' | ')}`);
    else if (p.mac && !/dev kdp\.1\b/.test(r[0]!)) problems.push(`route to ${p.cidr} is not over kdp.1: ${r[0]}`);
    else if (!p.mac && !r[0]!.includes(`via ${p.ip} `)) problems.push(`route to ${p.cidr} is not direct: ${r[0]}`);
  }
  for (const r of k.routes) if (!peers.some((p) => r.startsWith(`${p.cidr} `))) problems.push(`stale route ${r}`);
  const vx = peers.filter((p) => p.mac);
  for (const p of vx) {
    const f = k.fdb.filter((x) => x.startsWith(`${p.mac} `));
    if (f.length !== 1 || f[0] !== `${p.mac} ${p.ip}`)
      problems.push(`fdb for ${p.cidr} (${p.mac} -> ${p.ip}): ${f.join(' | ') || 'none'}`);
    const n = k.neigh.filter((x) => x.endsWith(` ${p.mac}`));
    if (n.length !== 1) problems.push(`${n.length} neighbour entries with ${p.mac}: ${n.join(' | ')}`);
  }
  for (const f of k.fdb) if (!vx.some((p) => f === `${p.mac} ${p.ip}`)) problems.push(`stale fdb ${f}`);
  for (const n of k.neigh) if (!vx.some((p) => n.endsWith(` ${p.mac}`))) problems.push(`stale neighbour ${n}`);
  for (const d of dup(k.fdb)) problems.push(`duplicate fdb ${d}`);
  return problems;
}

/** Waits until node n's kernel state has no problem for `peers`; returns the last problems (empty: converged). */
export async function converge(
  c: OverlayCluster,
  n: NodePlan,
  peers: readonly Peer[],
  ms = 15_000,
): Promise<{ problems: string[]; state: KernelState }> {
  const end = Date.now() + ms;
  for (;;) {
    const state = await c.kernel(n);
    const problems = kernelProblems(state, peers);
    if (problems.length === 0 || Date.now() > end) return { problems, state };
    await new Promise((r) => setTimeout(r, 100));
  }
}
