// Overlay e2e, backend vxlan (issue #14): three nodes on two routed underlay subnets (node-1 and node-3 on
// 198.18.0.0/24, node-2 on 198.18.1.0/24; host-gw cannot cross the router), `kdp node-agent --backend vxlan` on
// each, pods attached by the kdp CNI plugins with the conflist the agent wrote. Probed: pod-to-pod TCP/UDP/ICMP
// with the source IP kept, node-to-pod, the overlay MTU, ClusterIP / NodePort / eTP=Local and DNS across the
// subnets, `kill -9` of an agent while Nodes change, and bad Node objects. The auto backend: overlay-auto.test.ts.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { needsRoot } from '../helpers/gate.ts';
import { PROBE } from '../helpers/pods.ts';
import { OVERLAY_MTU, OverlayCluster, VXLAN_DEV, nodeAnnotations } from '../helpers/overlay.ts';
import type { OverlayPod } from '../helpers/overlay.ts';
import {
  HTTP_PORT,
  converge,
  echoAll,
  nodeToPods,
  overlayMtu,
  podToPods,
  services,
  waitReach,
  writeServices,
} from '../helpers/overlay-checks.ts';
import type { Peer } from '../helpers/overlay-checks.ts';
import { ANNOTATION_VTEP_MAC, vtepMac } from '../../src/node/overlay.ts';
import type { NodePlan } from '../../src/lab/plan.ts';

const vx = (c: OverlayCluster, n: NodePlan): Peer => ({ cidr: n.podCidr4, ip: c.ip(n), mac: vtepMac(1, c.ip(n)) });

if (needsRoot(t, 'network namespaces, VXLAN devices, nftables')) {
  const c = await OverlayCluster.create({ nodes: 3, subnets: 2, backend: 'vxlan' });
  t.teardown(() => c.destroy());
  const [n1, n2, n3] = [c.node(1), c.node(2), c.node(3)];
  let a: OverlayPod, a2: OverlayPod, b: OverlayPod, c3: OverlayPod, dns: OverlayPod;

  t.test('the agents build one VXLAN device each, with the overlay MTU in the pods', async (t) => {
    t.not(c.subnetOf(n1), c.subnetOf(n2), 'node-1 and node-2 sit on different subnets');
    t.equal(c.subnetOf(n1), c.subnetOf(n3), 'node-1 and node-3 share one');
    await c.startAgents();
    for (const n of c.nodes) {
      const link = await c.lab.exec(n.ns, ['ip', '-d', '-j', 'link', 'show', VXLAN_DEV]);
      const [l] = JSON.parse(link.stdout) as {
        mtu: number;
        address: string;
        linkinfo: { info_kind: string; info_data: { id: number; port: number; local: string; learning?: boolean } };
      }[];
      t.match(
        l,
        {
          mtu: OVERLAY_MTU,
          address: nodeAnnotations(c.ip(n))[ANNOTATION_VTEP_MAC],
          linkinfo: { info_kind: 'vxlan', info_data: { id: 1, port: 8472, local: c.ip(n), learning: false } },
        },
        `${n.name}: ${VXLAN_DEV} is VNI 1, port 8472, local ${c.ip(n)}, MTU ${OVERLAY_MTU}, the annotated MAC`,
      );
      t.match((await c.waitConflist(n)).plugins[0], { type: 'kdp-bridge', mtu: OVERLAY_MTU }, `${n.name}'s conflist`);
    }
    [a, a2, b, c3, dns] = await Promise.all([
      c.addPod(n1, 'a', 10),
      c.addPod(n1, 'a2', 11),
      c.addPod(n2, 'b', 10),
      c.addPod(n3, 'c', 10),
      c.addPod(n1, 'dns', 53),
    ]);
    await echoAll(c, [a, a2, b, c3]);
    for (const n of c.nodes) {
      const { problems } = await converge(
        c,
        n,
        c.nodes.filter((p) => p !== n).map((p) => vx(c, p)),
      );
      t.same(problems, [], `${n.name}: one route, neighbour and fdb entry per peer, nothing else`);
    }
  });

  t.test('Granular Checks: pod-to-pod and node-to-pod across the subnets, source IP kept', async (t) => {
    await waitReach(c, a, b);
    await waitReach(c, b, a);
    await podToPods(t, c, a, [a2, b, c3]);
    await podToPods(t, c, b, [a, a2, c3]);
    await podToPods(t, c, c3, [a, b]);
    await nodeToPods(t, c, n2, [a, a2, c3]);
    await nodeToPods(t, c, n1, [b, c3]);
  });

  t.test('the overlay MTU: ping -M do at MTU-28 passes, one byte more fails with mtu=1450', async (t) => {
    await overlayMtu(t, c, [a, a2, b, c3], a, b);
  });

  t.test('ClusterIP, NodePort, eTP=Local NodePort and DNS across the subnets', async (t) => {
    writeServices(c, b, dns);
    await Promise.all([...c.nodes.map((n) => c.startProxy(n)), c.startDns(dns)]);
    // b (subnet B) backs every Service; the DNS pod is on node-1 (subnet A)
    await services(t, c, { clients: [a, c3], backend: b, entry: n1, dnsClient: b });
  });

  t.test('kill -9 of an agent while Node objects change: converges, no stale or duplicate entry', async (t) => {
    // peers with no machine behind them come and go (their entries are programmed all the same) while
    // node-1's agent is killed and restarted three times; a client loop from a to b runs throughout
    const fakes = [91, 92, 93, 94, 95].map((i) => ({
      name: `fake-${i}`,
      ip: `198.18.1.${i}`,
      cidr: `198.19.${i}.0/24`,
    }));
    const present = new Set<string>();
    const loop = c.lab.spawn(a.ns, [...PROBE, 'loop', b.ip4, String(HTTP_PORT), '9', '2000']);
    let changing = true;
    const churn = (async () => {
      for (let k = 0; changing; k++) {
        const f = fakes[(k * 3) % fakes.length]!;
        if (present.has(f.name)) {
          c.removeNode(f.name);
          present.delete(f.name);
        } else {
          c.writeObject(f.name, await c.anyNodeObject(f.name, f.ip, f.cidr));
          present.add(f.name);
        }
        await sleep(40);
      }
    })();
    for (let round = 0; round < 3; round++) {
      await sleep(300 + round * 250);
      await c.killAgent(n1, 'SIGKILL');
      await sleep(150);
      c.startAgent(n1);
    }
    await sleep(1500);
    changing = false;
    await churn;
    const peers = [
      vx(c, n2),
      vx(c, n3),
      ...fakes.filter((f) => present.has(f.name)).map((f) => ({ cidr: f.cidr, ip: f.ip, mac: vtepMac(1, f.ip) })),
    ];
    const { problems, state } = await converge(c, n1, peers, 30_000);
    t.same(problems, [], `node-1 converged to ${peers.length} peers: ${JSON.stringify(state)}`);
    await loop.exited;
    const res = JSON.parse(loop.output().trim().split('\n').pop()!) as { ok: number; failed: number };
    t.equal(res.failed, 0, `a -> b while the agent died and came back: ${loop.output().trim()}`);
    t.ok(res.ok > 10, `${res.ok} requests answered`);
    for (const f of fakes) c.removeNode(f.name);
    t.same((await converge(c, n1, [vx(c, n2), vx(c, n3)])).problems, [], 'the fakes removed: their entries gone');
  });

  t.test('bad Nodes: a malformed VTEP annotation and an overlapping pod CIDR are skipped, logged once', async (t) => {
    const bad = { ...nodeAnnotations('198.18.1.70'), [ANNOTATION_VTEP_MAC]: 'not-a-mac' };
    c.writeObject('node-7', await c.anyNodeObject('node-7', '198.18.1.70', '198.19.7.0/24', bad));
    // node-8 claims node-3's pod CIDR: the later name is skipped (src/node/overlay.ts planOverlay)
    c.writeObject('node-8', await c.anyNodeObject('node-8', '198.18.1.80', n3.podCidr4));
    const agent = c.agent(n1);
    const reasons = () =>
      agent
        .output()
        .split('\n')
        .filter((l) => /"node":"node-[78]"/.test(l) && /skip/i.test(l));
    const logged = await waitForLines(reasons, 2, 15_000);
    t.match(logged.join('\n'), /node-7.*not a MAC address/, 'node-7 skipped: the reason names the bad MAC');
    t.match(logged.join('\n'), /node-8.*overlaps node node-3/, 'node-8 skipped: the reason names node-3');
    const { problems } = await converge(c, n1, [vx(c, n2), vx(c, n3)]);
    t.same(problems, [], 'node-1 keeps exactly its good peers: nothing for node-7 or node-8');
    await podToPods(t, c, a, [b, c3]);
    // another change: the agent reconciles again, and says nothing new about the same bad Nodes
    c.writeObject('fake-99', await c.anyNodeObject('fake-99', '198.18.1.99', '198.19.99.0/24'));
    await converge(c, n1, [
      vx(c, n2),
      vx(c, n3),
      { cidr: '198.19.99.0/24', ip: '198.18.1.99', mac: vtepMac(1, '198.18.1.99') },
    ]);
    await sleep(500);
    t.equal(reasons().length, 2, 'each bad Node logged once, not per reconcile');
    for (const f of ['node-7', 'node-8', 'fake-99']) c.removeNode(f);
    t.same((await converge(c, n1, [vx(c, n2), vx(c, n3)])).problems, []);
  });
}

async function waitForLines(fn: () => string[], n: number, ms: number): Promise<string[]> {
  const end = Date.now() + ms;
  for (;;) {
    const l = fn();
    if (l.length >= n || Date.now() > end) return l;
    await sleep(100);
  }
}
