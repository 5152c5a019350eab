// IPv6 pod CIDRs over the VXLAN overlay (flannel's dual-stack vxlan: a second device kdp6.<vni>). Two routed
// subnets, three dual-stack nodes running `kdp node-agent --backend auto`: node-1 and node-3 on segment A,
// node-2 behind the underlay router. Node manifests carry both VTEP annotation pairs. Checked: node-1's IPv6
// entries (node-2 over kdp6.1 with its neighbour and `dst <IPv6>` FDB entry, node-3 direct via its IPv6
// InternalIP) and the kdp6.1 device (local = IPv6 InternalIP, MTU 1500 - 70, the derived MAC); an IPv6 TCP
// connection from a node-1 pod to a node-2 pod (over kdp6.1, across the router) and to a node-3 pod (direct)
// with the client's pod IPv6 address seen by the server; after kill -9 and a restart the kernel holds exactly
// the desired entries again (no stale, no duplicate) and the connection still works. Then NetworkPolicy on the
// dual-stack pods: `kdp policy-agent` on node-2 allows a labelled client and refuses another, over IPv6 and IPv4.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../../src/cni/testing/fixtures.ts';
import { vtepAnnotations, vtepMac } from '../../src/node/overlay.ts';
import { needsRoot } from '../helpers/gate.ts';
import { NodeAgents } from '../helpers/node-agents.ts';
import { startPolicyAgent, syncsOf } from './netpol-harness.ts';

interface LabNode {
  name: string;
  ns: string;
  ip4: string;
  ip6: string;
  podCidr4: string;
  podCidr6: string;
}
const nodeJson = (n: LabNode) =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name, annotations: vtepAnnotations(1, n.ip4, n.ip6) },
    spec: { podCIDR: n.podCidr4, podCIDRs: [n.podCidr4, n.podCidr6] },
    status: {
      addresses: [
        { type: 'InternalIP', address: n.ip4 },
        { type: 'InternalIP', address: n.ip6 },
      ],
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  });

if (needsRoot(t)) {
  t.test('IPv6 pod CIDRs over kdp6.1 across two routed subnets', async (t) => {
    const { lab, agents, manifests } = await NodeAgents.twoSubnets(t, 'kdp-overlay6-', (l) => [
      l.plan.clusterCidr4,
      l.plan.clusterCidr6,
    ]);
    const [n1, n2, n3] = lab.nodes as [(typeof lab.nodes)[0], (typeof lab.nodes)[0], (typeof lab.nodes)[0]];
    for (const n of lab.nodes) writeFileSync(join(manifests, `${n.name}.json`), nodeJson(n));

    for (const n of lab.nodes) agents.start(n);

    // the agent's IPv6 entries: proto 199 routes, and kdp6.1's neighbours (without the kernel's own
    // link-local/router entries, which the agent never writes: none are expected on a nolearning device)
    const kernel6 = async (n: typeof n1) => ({
      routes: (await agents.lines(n, ['ip', '-6', 'route', 'show', 'proto', '199'])).map((l) =>
        l.replace(/ metric \d+| pref medium/g, ''),
      ),
      neigh: await agents.lines(n, ['ip', '-6', 'neigh', 'show', 'dev', 'kdp6.1']),
      fdb: await agents.lines(n, ['bridge', 'fdb', 'show', 'dev', 'kdp6.1']),
    });
    await waitFor(
      'every agent programmed its two IPv6 peers and wrote its conflist',
      async () => {
        for (const n of lab.nodes) {
          if (!agents.conflist(n)) return undefined;
          if ((await kernel6(n)).routes.length < 2) return undefined;
        }
        return true;
      },
      90_000,
    );

    const mac2 = vtepMac(1, n2.ip6);
    const vtep2 = n2.podCidr6.replace('/64', '');
    const want = {
      routes: [
        `${n2.podCidr6} via ${vtep2} dev kdp6.1 proto 199 onlink`,
        `${n3.podCidr6} via ${n3.ip6} dev eth0 proto 199`,
      ]
        .map((l) => l.replace(' proto 199', ''))
        .sort(),
      neigh: [`${vtep2} lladdr ${mac2} PERMANENT`],
      fdb: [`${mac2} dst ${n2.ip6} self permanent`],
    };
    const k1 = await kernel6(n1);
    t.same(k1, want, 'node-1: node-2 over kdp6.1 (route, neighbour, FDB dst IPv6), node-3 direct; nothing else');
    const dev = JSON.parse((await lab.exec(n1.ns, ['ip', '-d', '-j', 'addr', 'show', 'kdp6.1'])).stdout)[0];
    t.match(
      dev,
      {
        mtu: 1430,
        address: vtepMac(1, n1.ip6),
        linkinfo: { info_kind: 'vxlan', info_data: { id: 1, port: 8472, learning: false } },
      },
      'kdp6.1: VNI 1, port 8472, MTU 1500 - 70, the MAC derived from the IPv6 address',
    );
    t.equal(dev.linkinfo.info_data.local ?? dev.linkinfo.info_data.local6, n1.ip6, 'local = the IPv6 InternalIP');
    t.ok(
      (dev.addr_info as { local: string; prefixlen: number }[]).some(
        (a) => a.local === n1.podCidr6.replace('/64', '') && a.prefixlen === 128,
      ),
      'holds its own IPv6 VTEP address /128',
    );
    t.match(agents.conflist(n1)!.plugins[0], { mtu: 1450 }, 'the conflist keeps the IPv4 overlay MTU (one pod MTU)');

    const addPod = async (n: typeof n1, name: string): Promise<{ ns: string; ip6: string; ips: string[] }> => {
      const { ns, ips } = await agents.addPod(n, name);
      const ip6 = ips.find((a) => a.includes(':'));
      if (!ip6) throw new Error(`no IPv6 address for the pod: ${JSON.stringify(ips)}`);
      return { ns, ip6, ips };
    };
    const [a, b, c] = await Promise.all([addPod(n1, 'a'), addPod(n2, 'b'), addPod(n3, 'c')]);
    await agents.echo([
      [b.ns, 'b'],
      [c.ns, 'c'],
    ]);
    const curl = async (ns: string, ip: string) => {
      const r = await lab.exec(ns, ['curl', '-sS', '-g', '--max-time', '5', `http://[${ip}]:8080/`]);
      const j = JSON.parse(r.stdout) as { name: string; client: string };
      return [j.name, j.client.replace(/^\[?|\]?:\d+$/g, '')];
    };
    t.same(await curl(a.ns, b.ip6), ['b', a.ip6], 'IPv6 TCP node-1 pod -> node-2 pod over kdp6.1: source kept');
    t.same(await curl(a.ns, c.ip6), ['c', a.ip6], 'IPv6 TCP node-1 pod -> node-3 pod direct: source kept');
    t.same(await curl(b.ns, c.ip6), ['c', b.ip6], 'IPv6 TCP node-2 pod -> node-3 pod over kdp6.1: source kept');

    // the pod link has the IPv4 overlay MTU (1450); kdp6.1's is 1430: a packet of 1430 passes with DF (don't
    // fragment is implicit in IPv6), one byte more is answered with "packet too big" (path MTU discovery)
    const ping6 = (size: number) =>
      lab.exec(a.ns, ['ping', '-6', '-n', '-c', '1', '-W', '2', '-M', 'do', '-s', String(size), b.ip6], {
        allowFailure: true,
      });
    const fits = await ping6(1430 - 48);
    t.equal(fits.code, 0, `an IPv6 packet at kdp6.1's MTU passes: ${fits.stdout.slice(-120)}`);
    const over = await ping6(1430 - 47);
    t.not(over.code, 0, 'one byte more does not fit');
    t.match(over.stdout + over.stderr, /too big|mtu/i, 'refused with packet too big');

    // kill -9, a stale entry planted meanwhile, restart: exactly the desired entries again
    const dead = agents.agents.get(n1.name)!;
    dead.kill('SIGKILL');
    await dead.exited;
    await lab.exec(n1.ns, [
      'ip',
      'neigh',
      'replace',
      'fd00:198:19:9::',
      'lladdr',
      '0a:00:00:00:00:09',
      'dev',
      'kdp6.1',
      'nud',
      'permanent',
    ]);
    await lab.exec(n1.ns, [
      'bridge',
      'fdb',
      'append',
      '0a:00:00:00:00:09',
      'dev',
      'kdp6.1',
      'dst',
      'fd00:198:18:1::99',
      'self',
      'permanent',
    ]);
    await lab.exec(n1.ns, [
      'ip',
      'route',
      'replace',
      'fd00:198:19:9::/64',
      'via',
      'fd00:198:19:9::',
      'dev',
      'kdp6.1',
      'onlink',
      'proto',
      '199',
    ]);
    t.notSame(await kernel6(n1), want, 'stale entries planted while the agent is dead');
    const again = agents.start(n1);
    await waitFor(
      'the restarted agent synced',
      () => (again.output().includes('node agent synced') ? true : undefined),
      60_000,
    );
    await waitFor(
      'converged',
      async () => (JSON.stringify(await kernel6(n1)) === JSON.stringify(want) ? true : undefined),
      30_000,
    );
    t.same(await kernel6(n1), want, 'after the restart: exactly the desired IPv6 entries');
    t.same(await curl(a.ns, b.ip6), ['b', a.ip6], 'IPv6 pod to pod over kdp6.1 after the restart');

    // NetworkPolicy on dual-stack pods (issue #15), real packets over both families: `kdp policy-agent` on node-2
    // polices b (app=srv), which accepts TCP 8080 from pods labelled role=client only: a (node-1, over kdp6.1) is
    // one, c (node-3) is not. Then the policy's port moves to 9090: a is refused too.
    const pod = (name: string, node: string, ips: string[], labels: Record<string, string>) =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { namespace: 'default', name, labels },
        spec: { nodeName: node, containers: [{ name: 'c', ports: [{ containerPort: 8080 }] }] },
        status: {
          phase: 'Running',
          podIPs: ips.map((ip) => ({ ip })),
          conditions: [{ type: 'Ready', status: 'True' }],
        },
      });
    writeFileSync(
      join(manifests, 'ns-default.json'),
      JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } }),
    );
    writeFileSync(join(manifests, 'pod-a.json'), pod('a', n1.name, a.ips, { role: 'client' }));
    writeFileSync(join(manifests, 'pod-b.json'), pod('b', n2.name, b.ips, { app: 'srv' }));
    writeFileSync(join(manifests, 'pod-c.json'), pod('c', n3.name, c.ips, { role: 'other' }));
    /** b (app=srv) accepts TCP `port` from `from` only */
    const allowSrv = (from: object[], port: number) =>
      JSON.stringify({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { namespace: 'default', name: 'allow-clients' },
        spec: {
          podSelector: { matchLabels: { app: 'srv' } },
          policyTypes: ['Ingress'],
          ingress: [{ from, ports: [{ protocol: 'TCP', port }] }],
        },
      });
    const clients = [{ podSelector: { matchLabels: { role: 'client' } } }];
    writeFileSync(join(manifests, 'np.json'), allowSrv(clients, 8080));
    const policy = await startPolicyAgent(lab, n2, {
      manifests,
      clusterCidr: `${lab.plan.clusterCidr4},${lab.plan.clusterCidr6}`,
      metrics: '127.0.0.1:10263',
    });
    t.teardown(() => policy.kill('SIGKILL'));
    const b4 = b.ips.find((x) => !x.includes(':'))!;
    const reach = async (from: { ns: string }, ip: string) =>
      (
        await lab.exec(
          from.ns,
          ['curl', '-sS', '-g', '--max-time', '2', `http://${ip.includes(':') ? `[${ip}]` : ip}:8080/`],
          {
            allowFailure: true,
          },
        )
      ).code === 0;
    t.ok(await reach(a, b.ip6), 'IPv6: a (role=client) reaches b over kdp6.1');
    t.notOk(await reach(c, b.ip6), 'IPv6: c (not a client) is refused');
    t.ok(await reach(a, b4), 'IPv4: a reaches b');
    t.notOk(await reach(c, b4), 'IPv4: c is refused');
    const listed = (await lab.exec(n2.ns, ['nft', 'list', 'table', 'inet', 'kdp-policy'])).stdout;
    t.match(listed, /ip6 saddr \. meta l4proto \. th dport @\S+-x6 return/, 'b is allowed through the IPv6 hash set');
    /** replaces the policy and waits until the agent synced it */
    const replace = async (json: string) => {
      const before = syncsOf(policy.output());
      writeFileSync(join(manifests, 'np.json'), json);
      await waitFor(
        'the agent synced the change',
        () => (syncsOf(policy.output()) > before ? true : undefined),
        30_000,
      );
    };
    await replace(allowSrv(clients, 9090));
    t.notOk(await reach(a, b.ip6), 'IPv6: once the policy allows 9090 only, a is refused on 8080');
    t.notOk(await reach(a, b4), 'IPv4: the same');
    // an IPv6 ipBlock (node-3's pod CIDR, except a /128 that is not c): c is let in over IPv6 only (the interval set)
    await replace(
      allowSrv([{ ipBlock: { cidr: n3.podCidr6, except: [`${n3.podCidr6.replace('/64', '')}ffff/128`] } }], 8080),
    );
    t.match(
      (await lab.exec(n2.ns, ['nft', 'list', 'table', 'inet', 'kdp-policy'])).stdout,
      /ip6 saddr \. meta l4proto \. th dport @\S+-p6(-\d)? return/,
      'the block is an IPv6 interval set',
    );
    t.ok(await reach(c, b.ip6), 'IPv6: c is inside the ipBlock');
    t.notOk(await reach(c, b4), 'IPv4: c is not (the block is IPv6)');
    t.notOk(await reach(a, b.ip6), 'IPv6: a is outside it');
  });
}
