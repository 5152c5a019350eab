// NetworkPolicy across nodes over the VXLAN overlay (issue #15: enforcement "must work with host-gw, the overlay
// and same-node bridge traffic"; host-gw across nodes and the bridge are the netpol-matrix-* and netpol-agent
// files). Two nodes on two routed underlay subnets (host-gw cannot cross the router), `kdp node-agent --backend
// vxlan` and `kdp policy-agent` on each, pods attached by the kdp CNI plugins (test/helpers/overlay.ts), kdp proxy
// for a ClusterIP and a NodePort. Real packets throughout:
//   - a deny-all-ingress + allow-from-label policy: the labelled pod on the other node connects over VXLAN, an
//     unlabelled one times out; the same on one node across the bridge;
//   - via the ClusterIP (DNAT on the client's node): judged as if addressed to the pod;
//   - via the NodePort of the other node (externalTrafficPolicy Cluster): that node DNATs and masquerades, so the
//     endpoint's node sees that node's overlay address (its VTEP address, the network address of its pod CIDR,
//     docs/overlay.md), not the client: denied by the label rule, allowed once an ipBlock names that address;
//   - egress: a pod on node-2 may only reach one pod on node-1: its other connections time out;
//   - bad input: a policy with a bad CIDR or an unknown protocol is skipped (it isolates nothing), one naming a port
//     the pod does not expose isolates it and allows nothing; each logged once, the valid policy next to them holds.
import t from 'tap';
import type { Test } from 'tap';
import { needsRoot } from '../helpers/gate.ts';
import { PROBE } from '../helpers/pods.ts';
import { CLUSTER_CIDR, OverlayCluster } from '../helpers/overlay.ts';
import type { OverlayPod } from '../helpers/overlay.ts';
import { HTTP_PORT, echoAll, waitReach } from '../helpers/overlay-checks.ts';
import { startPolicyAgent, syncsOf } from './netpol-harness.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';

const VIP = '10.96.0.60';
const NODE_PORT = 30090;

const netpol = (name: string, spec: object): object => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { namespace: 'default', name },
  spec,
});
const denyAllIngress = netpol('deny-all-ingress', { podSelector: {}, policyTypes: ['Ingress'] });
/** srv accepts TCP 8080 from pods labelled role=client, and from the ipBlocks given */
const allowClients = (cidrs: string[] = []) =>
  netpol('allow-clients', {
    podSelector: { matchLabels: { app: 'srv' } },
    policyTypes: ['Ingress'],
    ingress: [
      {
        from: [{ podSelector: { matchLabels: { role: 'client' } } }, ...cidrs.map((cidr) => ({ ipBlock: { cidr } }))],
        ports: [{ protocol: 'TCP', port: HTTP_PORT }],
      },
    ],
  });

if (needsRoot(t, 'network namespaces, VXLAN devices, nftables')) {
  const c = await OverlayCluster.create({ nodes: 2, subnets: 2, backend: 'vxlan' });
  t.teardown(() => c.destroy());
  const [n1, n2] = [c.node(1), c.node(2)];
  const agents = new Map<string, Spawned>();
  t.teardown(() => agents.forEach((a) => a.kill('SIGKILL')));
  let srv: OverlayPod, near: OverlayPod, nearx: OverlayPod, far: OverlayPod, farx: OverlayPod;

  /** Makes a manifest change and waits until both agents synced since (and stayed quiet 150 ms). */
  async function synced(change: () => void): Promise<void> {
    const before = c.nodes.map((n) => syncsOf(agents.get(n.name)!.output()));
    change();
    let last = '';
    let since = Date.now();
    const end = Date.now() + 20_000;
    for (;;) {
      const now = c.nodes.map((n) => syncsOf(agents.get(n.name)!.output()));
      const key = now.join(',');
      if (key !== last) [last, since] = [key, Date.now()];
      if (now.every((s, i) => s > before[i]!) && Date.now() - since >= 150) return;
      if (Date.now() > end) throw new Error(`policy agents did not sync: ${before.join(',')} -> ${key}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const setPolicies = (items: object[]) =>
    synced(() => c.writeObject('policies', { apiVersion: 'v1', kind: 'List', items }));

  /** A TCP connect from a pod (or any lab namespace); true when it connected within `ms`. */
  const connect = async (ns: string, host: string, port = HTTP_PORT, ms = 1000) =>
    /^connected/.test(
      (await c.lab.exec(ns, [...PROBE, 'connect', host, String(port), String(ms)], { allowFailure: true })).stdout,
    );

  /** TCP connects all at once, each asserted: [from, to address, port, connects?, what]. */
  const expectReach = async (t: Test, rows: [OverlayPod, string, number, boolean, string][]) => {
    const got = await Promise.all(rows.map(([from, host, port]) => connect(from.ns, host, port)));
    rows.forEach(([, , , want, what], i) => t.equal(got[i], want, what));
  };

  /** The client address the echo server in srv saw for an HTTP request from `ns` to `url` (undefined: no answer). */
  const clientSeen = async (ns: string, url: string): Promise<string | undefined> => {
    const r = await c.lab.exec(ns, ['curl', '-sS', '--max-time', '2', url], { allowFailure: true });
    if (r.code !== 0) return undefined;
    return (JSON.parse(r.stdout) as { client: string }).client.replace(/^::ffff:/, '').replace(/:\d+$/, '');
  };

  /** clientSeen, retried until the proxies programmed the Service (30 s at most). */
  const waitSeen = async (ns: string, url: string): Promise<string | undefined> => {
    const end = Date.now() + 30_000;
    for (;;) {
      const s = await clientSeen(ns, url);
      if (s !== undefined || Date.now() > end) return s;
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  t.test('setup: vxlan agents, pods on both subnets, kdp proxy and a policy agent on each node', async (t) => {
    t.not(
      c.subnetOf(n1),
      c.subnetOf(n2),
      'the nodes sit on different underlay subnets: only the overlay connects them',
    );
    await c.startAgents();
    [srv, near, nearx, far, farx] = await Promise.all([
      c.addPod(n1, 'srv', 10),
      c.addPod(n1, 'near', 11),
      c.addPod(n1, 'nearx', 12),
      c.addPod(n2, 'far', 10),
      c.addPod(n2, 'farx', 11),
    ]);
    await echoAll(c, [srv, near, nearx, far, farx]);
    const ports = [{ port: HTTP_PORT }];
    c.publishPod(srv, { app: 'srv' }, ports);
    c.publishPod(near, { role: 'client' }, ports);
    c.publishPod(nearx, {}, ports);
    c.publishPod(far, { role: 'client', pod: 'far' }, ports);
    c.publishPod(farx, {}, ports);
    c.writeObject('ns-default', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    const http = [{ name: 'http', protocol: 'TCP', port: 80, targetPort: HTTP_PORT, nodePort: NODE_PORT }];
    c.writeObject('svc-srv', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { namespace: 'default', name: 'srv' },
      spec: { type: 'NodePort', clusterIP: VIP, clusterIPs: [VIP], selector: { app: 'srv' }, ports: http },
    });
    c.writeObject('policies', { apiVersion: 'v1', kind: 'List', items: [] });
    await waitReach(c, far, srv);
    await waitReach(c, srv, far);
    await Promise.all(c.nodes.map((n) => c.startProxy(n)));
    await Promise.all(
      c.nodes.map(async (n) =>
        agents.set(
          n.name,
          await startPolicyAgent(c.lab, n, { manifests: c.dir, clusterCidr: CLUSTER_CIDR, metrics: '' }),
        ),
      ),
    );
    // no policy: everything is open, also through the Service
    t.ok(await connect(farx.ns, srv.ip4), 'farx -> srv across the overlay: open without a policy');
    const seen = await waitSeen(c.lab.underlay, `http://${c.ip(n2)}:${NODE_PORT}/`);
    t.equal(seen, n2.podCidr4.replace(/\/24$/, ''), "node-2's NodePort answers; srv sees node-2's VTEP address");
  });

  t.test(
    'deny-all-ingress + allow role=client: across nodes over VXLAN and on one node across the bridge',
    async (t) => {
      await setPolicies([denyAllIngress, allowClients()]);
      await expectReach(t, [
        [far, srv.ip4, HTTP_PORT, true, 'far (role=client, node-2) -> srv (node-1) over VXLAN: allowed'],
        [farx, srv.ip4, HTTP_PORT, false, 'farx (no label, node-2) -> srv over VXLAN: times out'],
        [near, srv.ip4, HTTP_PORT, true, 'near (role=client, node-1) -> srv across the bridge: allowed'],
        [nearx, srv.ip4, HTTP_PORT, false, 'nearx (no label, node-1) -> srv across the bridge: times out'],
        [srv, far.ip4, HTTP_PORT, false, 'srv -> far: far is isolated too (deny-all-ingress selects every pod)'],
      ]);
      // the pod's own address reached srv: no NAT on the overlay between pods
      t.equal(await clientSeen(far.ns, `http://${srv.ip4}:${HTTP_PORT}/`), far.ip4, 'srv saw far by its pod IP');
    },
  );

  t.test('via the ClusterIP: DNAT on the client node, judged at srv as if addressed to it', async (t) => {
    await expectReach(t, [
      [far, VIP, 80, true, 'far -> ClusterIP -> srv on the other node: allowed'],
      [farx, VIP, 80, false, 'farx -> ClusterIP -> srv on the other node: times out'],
      [nearx, VIP, 80, false, 'nearx -> ClusterIP -> srv on the same node: times out'],
    ]);
  });

  t.test("via node-2's NodePort: node-1 sees node-2's overlay address, ipBlock allows it", async (t) => {
    const vtep2 = n2.podCidr4.replace(/\/24$/, '');
    const url = `http://${c.ip(n2)}:${NODE_PORT}/`;
    t.notOk(await connect(c.lab.underlay, c.ip(n2), NODE_PORT), 'underlay -> node-2 NodePort -> srv: denied');
    t.notOk(await connect(far.ns, c.ip(n2), NODE_PORT), 'even far (role=client) via the NodePort: denied (SNAT)');
    await setPolicies([denyAllIngress, allowClients([`${c.ip(n2)}/32`])]);
    t.notOk(
      await connect(c.lab.underlay, c.ip(n2), NODE_PORT),
      "an ipBlock of node-2's InternalIP does not match: over VXLAN the masquerade picks the VTEP address",
    );
    await setPolicies([denyAllIngress, allowClients([`${vtep2}/32`])]);
    t.equal(
      await clientSeen(c.lab.underlay, url),
      vtep2,
      "allowed by an ipBlock of node-2's VTEP address, the source srv saw",
    );
    t.notOk(await connect(farx.ns, srv.ip4), 'farx -> srv directly: still denied');
  });

  t.test('egress across nodes: far may reach nearx only', async (t) => {
    await setPolicies([
      netpol('far-egress', {
        podSelector: { matchLabels: { pod: 'far' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ podSelector: { matchExpressions: [{ key: 'role', operator: 'DoesNotExist' }] } }] }],
      }),
    ]);
    await expectReach(t, [
      [far, nearx.ip4, HTTP_PORT, true, 'far -> nearx (no role label, node-1) over VXLAN: allowed'],
      [far, near.ip4, HTTP_PORT, false, "far -> near (role=client, node-1) over VXLAN: times out at far's node"],
      [far, farx.ip4, HTTP_PORT, true, 'far -> farx (no role label, same node): allowed'],
      [farx, near.ip4, HTTP_PORT, true, 'farx (not selected) -> near across the overlay: open'],
    ]);
    await setPolicies([]);
    t.ok(await connect(far.ns, near.ip4), 'policy removed: far -> near open again');
  });

  t.test('bad policies: skipped or noted, logged once, opening and blocking nothing else', async (t) => {
    const onSrv = (name: string, ingress: object[]) =>
      netpol(name, { podSelector: { matchLabels: { app: 'srv' } }, policyTypes: ['Ingress'], ingress });
    await setPolicies([
      // rejected by the converter: were they half applied, srv would be isolated
      onSrv('bad-cidr', [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }]),
      onSrv('bad-proto', [{ ports: [{ protocol: 'ICMP', port: 1 }] }]),
      // valid; selects role=none pods, which expose no port named nope: isolated, the rule matches nothing
      netpol('unused-port-name', {
        podSelector: { matchLabels: { role: 'none' } },
        policyTypes: ['Ingress'],
        ingress: [{ ports: [{ port: 'nope' }] }],
      }),
      netpol('far-closed', { podSelector: { matchLabels: { pod: 'far' } }, policyTypes: ['Ingress'] }),
    ]);
    await synced(() => c.publishPod(nearx, { role: 'none' }, [{ port: HTTP_PORT }]));
    await expectReach(t, [
      [farx, srv.ip4, HTTP_PORT, true, 'the rejected policies do not isolate srv'],
      [srv, far.ip4, HTTP_PORT, false, 'the valid policy next to them is enforced (far closed)'],
      [far, nearx.ip4, HTTP_PORT, false, 'the policy with an unused port name isolates nearx and allows nothing'],
      [farx, near.ip4, HTTP_PORT, true, 'everything else stays open'],
    ]);
    // one more sync (an unrelated change): nothing is logged again
    await synced(() => c.publishPod(farx, { extra: '1' }, [{ port: HTTP_PORT }]));
    const lines = (n: typeof n1, re: RegExp) =>
      agents
        .get(n.name)!
        .output()
        .split('\n')
        .filter((l) => re.test(l)).length;
    for (const n of c.nodes) {
      t.equal(lines(n, /bad-cidr.*is not a CIDR.*object skipped/), 1, `${n.name}: the bad CIDR is logged once`);
      t.equal(lines(n, /ICMP.*object skipped/), 1, `${n.name}: the unknown protocol is logged once`);
    }
    t.equal(
      lines(n1, /unused-port-name.*nope match no container port of default\/nearx/),
      1,
      'node-1 (where nearx runs): the unused port name is logged once over two syncs',
    );
  });
}
