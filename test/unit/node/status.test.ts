// The node agent's answer to `kdp status`: per peer the path found in the kernel and whether every entry that
// path needs is there, from `ip -j` / `bridge -j` text as the status command reads it; skip reasons for peers
// that are not routed.
import t from 'tap';
import { status } from '../../../src/node/status.ts';
import { buildStatus, renderStatus } from '../../../src/status/status.ts';
import { vtepAnnotations, vtepMac } from '../../../src/node/overlay.ts';
import { makeNode } from '../../../src/cni/testing/fixtures.ts';
import type { ClusterView } from '../../../src/model/status.ts';
import type { Node } from '../../../src/model/types.ts';

const withVtep = (n: Node, ip: string): Node => ({
  ...n,
  meta: { ...n.meta, annotations: vtepAnnotations(1, ip) },
});
const nodes = [
  withVtep(makeNode('node-1', ['198.19.1.0/24'], ['198.18.0.11']), '198.18.0.11'),
  withVtep(makeNode('node-2', ['198.19.2.0/24'], ['198.18.1.12']), '198.18.1.12'),
  makeNode('node-3', ['198.19.3.0/24'], ['198.18.0.13']), // direct: no annotation needed
  withVtep(makeNode('node-4', ['198.19.4.0/24'], ['198.18.1.14']), '198.18.1.14'),
  makeNode('node-5', ['198.19.5.0/24'], ['198.18.1.15']), // across the router, no annotation
];
const cluster: ClusterView = {
  services: [],
  endpointSlices: [],
  pods: [],
  nodes,
  namespaces: [],
  ingresses: [],
  ingressClasses: [],
  secrets: [],
  networkPolicies: [],
  adminNetworkPolicies: [],
  baselineAdminNetworkPolicies: [],
};
const mac2 = vtepMac(1, '198.18.1.12');
const mac4 = vtepMac(1, '198.18.1.14');
// node-4's FDB entry is missing (someone deleted it)
const kernel = {
  routes:
    JSON.stringify([
      { dst: '198.19.2.0/24', gateway: '198.19.2.0', dev: 'kdp.1', flags: ['onlink'] },
      { dst: '198.19.3.0/24', gateway: '198.18.0.13', dev: 'eth0' },
      { dst: '198.19.4.0/24', gateway: '198.19.4.0', dev: 'kdp.1', flags: ['onlink'] },
    ]) + '\n[]\n',
  neighbours: JSON.stringify([
    { dst: '198.19.2.0', dev: 'kdp.1', lladdr: mac2, state: ['PERMANENT'] },
    { dst: '198.19.4.0', dev: 'kdp.1', lladdr: mac4, state: ['PERMANENT'] },
    { dst: '198.18.0.1', dev: 'eth0', lladdr: '0a:0a:0a:0a:0a:0a', state: ['REACHABLE'] },
  ]),
  fdb: JSON.stringify([
    { mac: '33:33:00:00:00:01', ifname: 'eth0', flags: ['self'], state: 'permanent' },
    { mac: mac2, ifname: 'kdp.1', dst: '198.18.1.12', flags: ['self'], state: 'permanent' },
  ]),
};

t.test('peers: path and kernel entries per peer, skip reasons for the unrouted', async (t) => {
  t.same(status({ cluster, zone: 'cluster.local', nodeName: 'node-1', nodeKernel: kernel }), [
    { node: 'node-2', podCidr: '198.19.2.0/24', path: 'vxlan', kernel: 'ok' },
    { node: 'node-3', podCidr: '198.19.3.0/24', path: 'direct', kernel: 'ok' },
    { node: 'node-4', podCidr: '198.19.4.0/24', path: 'vxlan', kernel: 'missing fdb' },
    {
      node: 'node-5',
      podCidr: '198.19.5.0/24',
      path: '',
      kernel: 'missing route',
      note: 'no kdp.dev/vxlan-mac (or flannel.alpha.coreos.com/backend-data) annotation',
    },
  ]);
  const unchecked = status({ cluster, zone: 'cluster.local', nodeName: 'node-1' });
  t.same(
    unchecked.map((p) => [p.node, p.path, p.kernel]),
    [
      ['node-2', '', undefined],
      ['node-3', '', undefined],
      ['node-4', '', undefined],
      ['node-5', '', undefined],
    ],
    'kernel not read: nothing claimed',
  );
  t.same(status({ cluster, zone: 'cluster.local', nodeName: '' }), [], 'no node: no peers');
  t.same(
    status({
      cluster,
      zone: 'cluster.local',
      nodeName: 'node-1',
      nodeKernel: { routes: 'garbage', neighbours: '', fdb: '{' },
    }).map((p) => p.kernel),
    ['missing route', 'missing route', 'missing route', 'missing route'],
    'unreadable kernel text: nothing present, no crash',
  );
});

t.test('kdp status renders the peers table', async (t) => {
  const text = renderStatus(buildStatus(cluster, { nodeName: 'node-1', nodeKernel: kernel }));
  t.match(text, /NODE PEERS/);
  t.match(text, /node-2\s+198\.19\.2\.0\/24\s+vxlan\s+ok/);
  t.match(text, /node-3\s+198\.19\.3\.0\/24\s+direct\s+ok/);
  t.match(text, /node-4\s+198\.19\.4\.0\/24\s+vxlan\s+missing fdb/);
  t.match(text, /node-5\s+198\.19\.5\.0\/24\s+-\s+missing route\s+no kdp\.dev\/vxlan-mac/);
});

t.test('peers: a dual-stack peer gets a row per family; IPv6 over kdp6.1 checked against its v6 VTEP', async (t) => {
  const dual = (name: string, i: number, ip4: string, ip6: string, a = vtepAnnotations(1, ip4, ip6)): Node => ({
    ...makeNode(name, [`198.19.${i}.0/24`, `fd00:198:19:${i}::/64`], [ip4, ip6]),
    meta: { ...makeNode(name, [], []).meta, annotations: a },
  });
  const ds: ClusterView = {
    ...cluster,
    nodes: [
      dual('node-1', 1, '198.18.0.11', 'fd00:198:18::b'),
      dual('node-2', 2, '198.18.1.12', 'fd00:198:18:1::c'),
      dual('node-3', 3, '198.18.1.13', 'fd00:198:18:1::d'),
      // IPv4 annotations only: its IPv6 pod CIDR is not routed, with the reason
      dual('node-4', 4, '198.18.1.14', 'fd00:198:18:1::e', vtepAnnotations(1, '198.18.1.14')),
    ],
  };
  const m2 = vtepMac(1, 'fd00:198:18:1::c');
  const m3 = vtepMac(1, 'fd00:198:18:1::d');
  const k = {
    routes:
      JSON.stringify([
        { dst: '198.19.2.0/24', gateway: '198.19.2.0', dev: 'kdp.1' },
        { dst: '198.19.3.0/24', gateway: '198.19.3.0', dev: 'kdp.1' },
        { dst: '198.19.4.0/24', gateway: '198.19.4.0', dev: 'kdp.1' },
      ]) +
      '\n' +
      JSON.stringify([
        { dst: 'fd00:198:19:2::/64', gateway: 'fd00:198:19:2::', dev: 'kdp6.1' },
        { dst: 'fd00:198:19:3::/64', gateway: 'fd00:198:19:3::', dev: 'kdp6.1' },
      ]),
    neighbours: JSON.stringify([
      ...[2, 3, 4].map((i) => ({ dst: `198.19.${i}.0`, dev: 'kdp.1', lladdr: vtepMac(1, `198.18.1.1${i}`) })),
      { dst: 'fd00:198:19:2::', dev: 'kdp6.1', lladdr: m2 },
      { dst: 'fd00:198:19:3::', dev: 'kdp.1', lladdr: m3 }, // on the wrong device
    ]),
    fdb: JSON.stringify([
      ...[2, 3, 4].map((i) => ({ mac: vtepMac(1, `198.18.1.1${i}`), ifname: 'kdp.1', dst: `198.18.1.1${i}` })),
      { mac: m2, ifname: 'kdp6.1', dst: 'fd00:198:18:1::c' },
      { mac: m3, ifname: 'kdp6.1', dst: 'fd00:198:18:1::d' },
    ]),
  };
  t.same(status({ cluster: ds, zone: 'cluster.local', nodeName: 'node-1', nodeKernel: k }), [
    { node: 'node-2', podCidr: '198.19.2.0/24', path: 'vxlan', kernel: 'ok' },
    { node: 'node-2', podCidr: 'fd00:198:19:2::/64', path: 'vxlan', kernel: 'ok' },
    { node: 'node-3', podCidr: '198.19.3.0/24', path: 'vxlan', kernel: 'ok' },
    { node: 'node-3', podCidr: 'fd00:198:19:3::/64', path: 'vxlan', kernel: 'missing neighbour' },
    { node: 'node-4', podCidr: '198.19.4.0/24', path: 'vxlan', kernel: 'ok' },
    {
      node: 'node-4',
      podCidr: 'fd00:198:19:4::/64',
      path: '',
      kernel: 'missing route',
      note: 'IPv6: no kdp.dev/vxlan-mac-v6 (or flannel.alpha.coreos.com/backend-v6-data) annotation',
    },
  ]);
});
