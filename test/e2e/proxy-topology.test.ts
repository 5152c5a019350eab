// Topology-aware routing in the lab, in every mode: node-1 and node-2 carry topology.kubernetes.io/zone labels
// (Node objects in the manifests directory); real HTTP from pod a (node-1) through the ClusterIP, and the set of
// backends that answer. Zone hints written into an EndpointSlice (as kube-controller-manager does), the fallback
// when one endpoint lacks its hint, trafficDistribution PreferClose / PreferSameNode through the manifests
// EndpointSlice controller, and a change of node-1's own zone (a full re-sync).
import t from 'tap';
import { needsRoot } from '../helpers/gate.ts';
import { CLI, ProxyLab, runFlows } from './proxy-harness.ts';
import type { SvcSpec } from './proxy-harness.ts';

const MODES = ['nftables', 'iptables', 'userspace'] as const;

if (needsRoot(t)) {
  t.test('topology-aware routing', async (t) => {
    const pl = await ProxyLab.create(t, 'nftables');
    t.teardown(() => pl.stopProxy());
    const { b1, b2, c1, c2 } = pl.pods;
    const [n1, n2] = [pl.n1.name, pl.n2.name];
    const zones = (z1: string, z2: string) =>
      pl.write('nodes', {
        apiVersion: 'v1',
        kind: 'List',
        items: [
          [n1, z1],
          [n2, z2],
        ].map(([name, zone]) => ({
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name, labels: { 'topology.kubernetes.io/zone': zone } },
        })),
      });
    // b1, b2 on node-1; c1, c2 on node-2
    const zonal: SvcSpec = {
      name: 'zonal',
      clusterIP: '10.96.0.60',
      endpoints: [
        { pod: b1, zones: ['zone-a'] },
        { pod: b2, zones: ['zone-a'] },
        { pod: c1, zones: ['zone-b'] },
        { pod: c2, zones: ['zone-b'] },
      ],
    };
    const fallback: SvcSpec = {
      ...zonal,
      name: 'fallback',
      clusterIP: '10.96.0.61',
      endpoints: zonal.endpoints.map((e) => (e.pod === c2 ? { pod: c2 } : e)),
    };
    const close: SvcSpec = {
      name: 'close',
      clusterIP: '10.96.0.62',
      trafficDistribution: 'PreferClose',
      viaPods: true,
      endpoints: [{ pod: b1 }, { pod: c1 }],
    };
    const near: SvcSpec = {
      name: 'near',
      clusterIP: '10.96.0.63',
      trafficDistribution: 'PreferSameNode',
      viaPods: true,
      endpoints: [{ pod: b2 }, { pod: c2 }],
    };
    for (const s of [zonal, fallback, close, near]) pl.apply(s);
    const from = (url: string, backends: string[], all = backends.length > 1) => ({
      name: `${url} -> ${backends.join(', ')}`,
      from: 'pod' as const,
      url,
      backends,
      all,
      // every one of 4 random backends seen in 40 tries: P(miss) ~ 4 * 0.75^40 = 4e-5
      tries: backends.length > 2 ? 40 : backends.length > 1 ? 16 : 8,
    });

    for (const mode of MODES) {
      await t.test(`${mode} mode`, async (t) => {
        zones('zone-a', 'zone-b');
        await pl.startProxy([], mode);
        await t.test('node-1 in zone-a, node-2 in zone-b', (t) =>
          runFlows(t, pl, [
            from('http://10.96.0.60/', ['b1', 'b2']),
            from('http://10.96.0.61/', ['b1', 'b2', 'c1', 'c2']),
            from('http://10.96.0.62/', ['b1']),
            from('http://10.96.0.63/', ['b2']),
          ]),
        );
        // PreferClose now spans both nodes; PreferSameNode still keeps node-1's own endpoint
        await pl.synced(zones('zone-a', 'zone-a'));
        await t.test('both nodes in zone-a', (t) =>
          runFlows(t, pl, [
            from('http://10.96.0.62/', ['b1', 'c1']),
            from('http://10.96.0.63/', ['b2']),
            from('http://10.96.0.60/', ['b1', 'b2']),
          ]),
        );
        // this node's own zone changes: every service is rebuilt against zone-b
        await pl.synced(zones('zone-b', 'zone-a'));
        await t.test("node-1's zone changes to zone-b", (t) =>
          runFlows(t, pl, [
            from('http://10.96.0.60/', ['c1', 'c2']),
            from('http://10.96.0.62/', ['b1']),
            from('http://10.96.0.61/', ['b1', 'b2', 'c1', 'c2']),
          ]),
        );
        await pl.stopProxy();
        await pl.lab.exec(pl.n1.ns, [process.execPath, CLI, '--log-format', 'json', 'proxy', 'cleanup']);
      });
    }
  });
}
