// The overlay agent's pure half (VTEP identity, annotation parsing, per-peer path, kernel diffs, device batch)
// and the agent itself on the controller kernel's harness against a fake kernel that applies the batches.
// Test plan: underlay 192.168.0.0/24 (this node .11, node-2 .12) and 192.168.1.0/24 (node-3 .13, across a
// router); pod CIDRs 10.244.N.0/24.
import t from 'tap';
import {
  ANNOTATION_PUBLIC_IP,
  ANNOTATION_VTEP_MAC,
  FLANNEL_BACKEND_DATA,
  FLANNEL_PUBLIC_IP,
  deviceBatch,
  fdbBatch,
  findUnderlay,
  ipBatch,
  parseVtep,
  planOverlay,
  vtepAddress,
  vtepAnnotations,
  ANNOTATION_VTEP_MAC_V6,
  ANNOTATION_PUBLIC_IPV6,
  FLANNEL_BACKEND_V6_DATA,
  FLANNEL_PUBLIC_IPV6,
  vtepMac,
} from '../../../src/node/overlay.ts';
import type { FdbEntry, LinkJson, Neighbour, OverlayRoute } from '../../../src/node/overlay.ts';
import { OverlayAgent } from '../../../src/node/overlay-agent.ts';
import type { NodeAnnotator, OverlayKernel } from '../../../src/node/overlay-agent.ts';
import { ConflistWriter } from '../../../src/node/conflist.ts';
import { makeNode } from '../../../src/cni/testing/fixtures.ts';
import { attemptTimes, harness } from '../../../src/k8s/testing/harness.ts';
import type { Logger } from '../../../src/common/log.ts';
import type { Node } from '../../../src/model/types.ts';
import { Registry } from 'prom-client';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const annotated = (n: Node, a: Record<string, string>): Node => ({
  ...n,
  meta: { ...n.meta, annotations: { ...n.meta.annotations, ...a } },
});
const vtepNode = (name: string, cidrs: string[], ip: string) =>
  annotated(makeNode(name, cidrs, [ip]), vtepAnnotations(1, ip));

const self = vtepNode('node-1', ['10.244.1.0/24'], '192.168.0.11');
const same = vtepNode('node-2', ['10.244.2.0/24'], '192.168.0.12');
const far = vtepNode('node-3', ['10.244.3.0/24'], '192.168.1.13');

t.test('VTEP MAC: deterministic, locally administered unicast, per VNI and underlay IP', async (t) => {
  const m = vtepMac(1, '192.168.0.11');
  t.equal(m, vtepMac(1, '192.168.0.11'), 'same inputs, same MAC (a restart keeps it)');
  t.match(m, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  const b0 = parseInt(m.slice(0, 2), 16);
  t.equal(b0 & 1, 0, 'unicast');
  t.equal(b0 & 2, 2, 'locally administered');
  t.not(vtepMac(2, '192.168.0.11'), m, 'another VNI, another MAC');
  t.not(vtepMac(1, '192.168.0.12'), m, 'another node, another MAC');
  t.same(vtepAnnotations(1, '192.168.0.11'), { [ANNOTATION_VTEP_MAC]: m, [ANNOTATION_PUBLIC_IP]: '192.168.0.11' });
  t.equal(vtepAddress('10.244.3.0/24'), '10.244.3.0');
  t.equal(vtepAddress('10.244.3.7/24'), '10.244.3.0', 'the network address, whatever the host bits');
});

t.test('annotations: kdp keys, flannel keys as a fallback, a reason for each malformed one', async (t) => {
  const n = makeNode('x', ['10.244.9.0/24'], ['192.168.0.19']);
  const with_ = (a: Record<string, string>) => parseVtep(annotated(n, a), 1);
  t.same(with_({ [ANNOTATION_VTEP_MAC]: '0A:00:00:00:00:01', [ANNOTATION_PUBLIC_IP]: '192.168.0.19' }), {
    ok: true,
    mac: '0a:00:00:00:00:01',
    publicIp: '192.168.0.19',
    from: 'kdp',
  });
  t.same(
    with_({
      [FLANNEL_BACKEND_DATA]: '{"VNI":1,"VtepMAC":"66:2b:f1:6c:2f:61"}',
      [FLANNEL_PUBLIC_IP]: '192.168.0.19',
    }),
    { ok: true, mac: '66:2b:f1:6c:2f:61', publicIp: '192.168.0.19', from: 'flannel' },
  );
  const bad: [Record<string, string>, RegExp][] = [
    [{}, /no kdp\.dev\/vxlan-mac/],
    [{ [ANNOTATION_VTEP_MAC]: 'zz', [ANNOTATION_PUBLIC_IP]: '192.168.0.19' }, /not a MAC/],
    [{ [ANNOTATION_VTEP_MAC]: '01:00:5e:00:00:01', [ANNOTATION_PUBLIC_IP]: '192.168.0.19' }, /multicast/],
    [{ [ANNOTATION_VTEP_MAC]: '00:00:00:00:00:00', [ANNOTATION_PUBLIC_IP]: '192.168.0.19' }, /zero MAC/],
    [{ [ANNOTATION_VTEP_MAC]: '0a:00:00:00:00:01' }, /no kdp\.dev\/public-ip/],
    [{ [ANNOTATION_PUBLIC_IP]: '192.168.0.19' }, /no kdp\.dev\/vxlan-mac/],
    [{ [ANNOTATION_VTEP_MAC]: '0a:00:00:00:00:01', [ANNOTATION_PUBLIC_IP]: '192.168.0.300' }, /not an IPv4/],
    [{ [ANNOTATION_VTEP_MAC]: '0a:00:00:00:00:01', [ANNOTATION_PUBLIC_IP]: 'fd00::1' }, /not an IPv4/],
    [{ [FLANNEL_BACKEND_DATA]: '{nope', [FLANNEL_PUBLIC_IP]: '192.168.0.19' }, /not JSON/],
    [{ [FLANNEL_BACKEND_DATA]: '7', [FLANNEL_PUBLIC_IP]: '192.168.0.19' }, /not an object/],
    [{ [FLANNEL_BACKEND_DATA]: '{"VNI":2,"VtepMAC":"66:2b:f1:6c:2f:61"}' }, /VNI 2 is not ours/],
    [{ [FLANNEL_BACKEND_DATA]: '{"VNI":1,"VtepMAC":"66:2b:f1:6c:2f:61"}' }, /no flannel.*public-ip/],
    [{ [FLANNEL_BACKEND_DATA]: '{"VNI":1,"VtepMAC":5}', [FLANNEL_PUBLIC_IP]: '192.168.0.19' }, /not a MAC/],
  ];
  for (const [a, reason] of bad) {
    const r = parseVtep(annotated(n, a), 1);
    t.equal(r.ok, false, JSON.stringify(a));
    if (!r.ok) t.match(r.reason, reason, JSON.stringify(a));
  }
});

t.test('plan: vxlan routes, neighbours and FDB per peer; auto goes direct on a shared subnet', async (t) => {
  const vx = planOverlay('node-1', [self, same, far], { backend: 'vxlan', vni: 1, localSubnets: ['192.168.0.0/24'] });
  t.same(vx.skipped, []);
  t.same(
    vx.peers.map((p) => [p.node, p.path]),
    [
      ['node-2', 'vxlan'],
      ['node-3', 'vxlan'],
    ],
    'vxlan: every peer over the overlay',
  );
  t.same(vx.routes, [
    { dst: '10.244.2.0/24', via: '10.244.2.0', dev: 'kdp.1' },
    { dst: '10.244.3.0/24', via: '10.244.3.0', dev: 'kdp.1' },
  ]);
  t.same(vx.neighbours, [
    { ip: '10.244.2.0', mac: vtepMac(1, '192.168.0.12') },
    { ip: '10.244.3.0', mac: vtepMac(1, '192.168.1.13') },
  ]);
  t.same(
    [...vx.fdb].sort((a, b) => a.dst.localeCompare(b.dst)),
    [
      { mac: vtepMac(1, '192.168.0.12'), dst: '192.168.0.12' },
      { mac: vtepMac(1, '192.168.1.13'), dst: '192.168.1.13' },
    ],
  );

  const auto = planOverlay('node-1', [self, same, far], { backend: 'auto', vni: 1, localSubnets: ['192.168.0.0/24'] });
  t.same(
    auto.peers.map((p) => [p.node, p.path]),
    [
      ['node-2', 'direct'],
      ['node-3', 'vxlan'],
    ],
  );
  t.same(auto.routes, [
    { dst: '10.244.2.0/24', via: '192.168.0.12' },
    { dst: '10.244.3.0/24', via: '10.244.3.0', dev: 'kdp.1' },
  ]);
  t.same(auto.neighbours.length + auto.fdb.length, 2, 'neighbour and FDB only for the VXLAN peer');
  const bare = makeNode('node-2', ['10.244.2.0/24', 'fd00:2::/64'], ['192.168.0.12', 'fd00::12']);
  const direct6 = planOverlay('node-1', [self, bare], {
    backend: 'auto',
    vni: 1,
    localSubnets: ['192.168.0.0/24', 'fd00::/64'],
  });
  t.same(
    direct6.routes,
    [
      { dst: '10.244.2.0/24', via: '192.168.0.12' },
      { dst: 'fd00:2::/64', via: 'fd00::12' },
    ],
    'a direct peer (both InternalIPs on our subnets) needs no annotation and gets both families',
  );
  const moved = planOverlay('node-1', [self, vtepNode('node-2', ['10.244.2.0/24'], '192.168.1.12')], {
    backend: 'auto',
    vni: 1,
    localSubnets: ['192.168.0.0/24'],
  });
  t.same(
    moved.peers.map((p) => p.path),
    ['vxlan'],
    're-decided when the address changes: now across the router',
  );
});

t.test('plan: bad peers are skipped with a reason, the others keep working', async (t) => {
  const nodes = [
    self,
    same,
    far,
    makeNode('node-4', ['10.244.4.0/24'], ['192.168.1.14']), // no annotation
    vtepNode('node-5', ['10.244.3.128/25'], '192.168.1.15'), // inside node-3's
    vtepNode('node-0', ['10.244.1.0/24'], '192.168.1.10'), // this node's
    vtepNode('node-6', ['not-a-cidr'], '192.168.1.16'),
    vtepNode('node-7', [], '192.168.1.17'),
    vtepNode('node-8', ['fd00:8::/64'], '192.168.1.18'),
    annotated(makeNode('node-9', ['10.244.9.0/24'], ['192.168.1.19']), {
      [ANNOTATION_VTEP_MAC]: 'garbage',
      [ANNOTATION_PUBLIC_IP]: '192.168.1.19',
    }),
  ];
  const p = planOverlay('node-1', nodes, { backend: 'vxlan', vni: 1, localSubnets: ['192.168.0.0/24'] });
  t.same(
    p.peers.map((x) => x.node),
    ['node-2', 'node-3'],
  );
  const reasons = Object.fromEntries(p.skipped.map((s) => [s.node, s.reason]));
  t.match(reasons, {
    'node-0': /overlaps this node's 10\.244\.1\.0\/24/,
    'node-4': /no kdp\.dev\/vxlan-mac/,
    'node-5': /overlaps node node-3's 10\.244\.3\.0\/24/,
    'node-6': /malformed podCIDR/,
    'node-7': /no podCIDR/,
    'node-8': /IPv6 podCIDR fd00:8::\/64: this node has no IPv6 underlay/,
    'node-9': /not a MAC/,
  });
  t.equal(p.skipped.length, 7);
  t.equal(p.routes.length, 2, 'routes for the good peers only');
  // the earlier name wins: node-3 keeps its CIDR whatever order the nodes come in
  const rev = planOverlay('node-1', [...nodes].reverse(), { backend: 'vxlan', vni: 1, localSubnets: [] });
  t.same(rev.skipped.map((s) => s.node).sort(), p.skipped.map((s) => s.node).sort());
});

const dual = (name: string, i: number, ip4: string, ip6: string) =>
  annotated(makeNode(name, [`10.244.${i}.0/24`, `fd00:244:${i}::/64`], [ip4, ip6]), vtepAnnotations(1, ip4, ip6));

t.test('IPv6: annotations for both families, parsed per family, flannel v6 keys as a fallback', async (t) => {
  const a = vtepAnnotations(1, '192.168.0.11', 'fd00::11');
  t.same(a, {
    [ANNOTATION_VTEP_MAC]: vtepMac(1, '192.168.0.11'),
    [ANNOTATION_PUBLIC_IP]: '192.168.0.11',
    [ANNOTATION_VTEP_MAC_V6]: vtepMac(1, 'fd00::11'),
    [ANNOTATION_PUBLIC_IPV6]: 'fd00::11',
  });
  t.not(vtepMac(1, 'fd00::11'), vtepMac(1, '192.168.0.11'), 'its own VTEP MAC');
  t.same(vtepAnnotations(1, '192.168.0.11'), {
    [ANNOTATION_VTEP_MAC]: vtepMac(1, '192.168.0.11'),
    [ANNOTATION_PUBLIC_IP]: '192.168.0.11',
  });
  const n = annotated(makeNode('x', ['fd00:9::/64'], ['fd00::19']), a);
  t.match(parseVtep(n, 1, 6), { ok: true, mac: vtepMac(1, 'fd00::11'), publicIp: 'fd00::11', from: 'kdp' });
  t.match(parseVtep(n, 1, 4), { ok: true, publicIp: '192.168.0.11' }, 'the IPv4 pair is separate');
  const fl = annotated(makeNode('x', ['fd00:9::/64'], ['fd00::19']), {
    [FLANNEL_BACKEND_V6_DATA]: '{"VNI":1,"VtepMAC":"66:2B:F1:6C:2F:62"}',
    [FLANNEL_PUBLIC_IPV6]: 'fd00::19',
  });
  t.same(parseVtep(fl, 1, 6), { ok: true, mac: '66:2b:f1:6c:2f:62', publicIp: 'fd00::19', from: 'flannel' });
  t.match(parseVtep(fl, 1, 4), { ok: false, reason: /no kdp\.dev\/vxlan-mac / }, 'v6 keys say nothing about IPv4');
  const bad: [Record<string, string>, RegExp][] = [
    [{}, /no kdp\.dev\/vxlan-mac-v6 \(or flannel\.alpha\.coreos\.com\/backend-v6-data\)/],
    [{ [ANNOTATION_VTEP_MAC_V6]: '0a:00:00:00:00:01', [ANNOTATION_PUBLIC_IPV6]: '192.168.0.1' }, /not an IPv6/],
    [{ [ANNOTATION_VTEP_MAC_V6]: '01:00:00:00:00:01', [ANNOTATION_PUBLIC_IPV6]: 'fd00::1' }, /multicast/],
    [{ [ANNOTATION_PUBLIC_IPV6]: 'fd00::1' }, /no kdp\.dev\/vxlan-mac-v6 annotation/],
    [
      { [FLANNEL_BACKEND_V6_DATA]: '{"VNI":3,"VtepMAC":"66:2b:f1:6c:2f:61"}', [FLANNEL_PUBLIC_IPV6]: 'fd00::1' },
      /VNI 3/,
    ],
  ];
  for (const [ann, reason] of bad) {
    const r = parseVtep(annotated(makeNode('x', ['fd00:9::/64'], ['fd00::19']), ann), 1, 6);
    t.equal(r.ok, false, JSON.stringify(ann));
    if (!r.ok) t.match(r.reason, reason, JSON.stringify(ann));
  }
});

t.test('IPv6 plan: VXLAN over kdp6.1 per family, auto direct per family, partial peers keep IPv4', async (t) => {
  const me = dual('node-1', 1, '192.168.0.11', 'fd00::11');
  const near = dual('node-2', 2, '192.168.0.12', 'fd00::12');
  const away = dual('node-3', 3, '192.168.1.13', 'fd00:1::13');
  const o = { vni: 1, localSubnets: ['192.168.0.0/24', 'fd00::/64'], ipv6: true };
  const vx = planOverlay('node-1', [me, near, away], { ...o, backend: 'vxlan' });
  t.same(vx.skipped, []);
  t.same(vx.routes, [
    { dst: '10.244.2.0/24', via: '10.244.2.0', dev: 'kdp.1' },
    { dst: '10.244.3.0/24', via: '10.244.3.0', dev: 'kdp.1' },
    { dst: 'fd00:244:2::/64', via: 'fd00:244:2::', dev: 'kdp6.1' },
    { dst: 'fd00:244:3::/64', via: 'fd00:244:3::', dev: 'kdp6.1' },
  ]);
  t.same(vx.neighbours6, [
    { ip: 'fd00:244:2::', mac: vtepMac(1, 'fd00::12') },
    { ip: 'fd00:244:3::', mac: vtepMac(1, 'fd00:1::13') },
  ]);
  t.same(
    vx.fdb6,
    [
      { mac: vtepMac(1, 'fd00::12'), dst: 'fd00::12' },
      { mac: vtepMac(1, 'fd00:1::13'), dst: 'fd00:1::13' },
    ].sort((a, b) => `${a.mac} ${a.dst}`.localeCompare(`${b.mac} ${b.dst}`)),
  );
  t.equal(vx.neighbours.length + vx.fdb.length, 4, 'the IPv4 entries as before, on kdp.1');
  t.match(vx.peers[0], {
    node: 'node-2',
    path: 'vxlan',
    path6: 'vxlan',
    underlayIp6: 'fd00::12',
    vtep6: { ip: 'fd00:244:2::' },
  });

  const auto = planOverlay('node-1', [me, near, away], { ...o, backend: 'auto' });
  t.same(
    auto.routes,
    [
      { dst: '10.244.2.0/24', via: '192.168.0.12' },
      { dst: '10.244.3.0/24', via: '10.244.3.0', dev: 'kdp.1' },
      { dst: 'fd00:244:2::/64', via: 'fd00::12' },
      { dst: 'fd00:244:3::/64', via: 'fd00:244:3::', dev: 'kdp6.1' },
    ],
    'auto: node-2 direct in both families, node-3 over both devices',
  );
  t.same(
    auto.neighbours6.map((n) => n.ip),
    ['fd00:244:3::'],
  );
  // the same IPv4 subnet but another IPv6 one: each family decides on its own
  const split = planOverlay('node-1', [me, dual('node-2', 2, '192.168.0.12', 'fd00:1::12')], { ...o, backend: 'auto' });
  t.same(split.routes, [
    { dst: '10.244.2.0/24', via: '192.168.0.12' },
    { dst: 'fd00:244:2::/64', via: 'fd00:244:2::', dev: 'kdp6.1' },
  ]);
  t.match(split.peers[0], { path: 'direct', path6: 'vxlan' });

  // no IPv6 annotations: IPv4 still routed, the IPv6 CIDR not, with the reason on the peer
  const v4only = annotated(
    makeNode('node-4', ['10.244.4.0/24', 'fd00:244:4::/64'], ['192.168.1.14', 'fd00:1::14']),
    vtepAnnotations(1, '192.168.1.14'),
  );
  const part = planOverlay('node-1', [me, v4only], { ...o, backend: 'vxlan' });
  t.same(part.routes, [{ dst: '10.244.4.0/24', via: '10.244.4.0', dev: 'kdp.1' }]);
  t.same(part.skipped, []);
  t.match(part.peers[0]!.unrouted, /IPv6: no kdp\.dev\/vxlan-mac-v6/);
  // an IPv6-only peer with IPv6 annotations goes over kdp6.1; without, it is skipped with the reason
  const only6 = annotated(
    makeNode('node-5', ['fd00:244:5::/64'], ['fd00:1::15']),
    vtepAnnotations(1, '192.168.1.15', 'fd00:1::15'),
  );
  const bare6 = makeNode('node-6', ['fd00:244:6::/64'], ['fd00:1::16']);
  const p6 = planOverlay('node-1', [me, only6, bare6], { ...o, backend: 'vxlan' });
  t.same(p6.routes, [{ dst: 'fd00:244:5::/64', via: 'fd00:244:5::', dev: 'kdp6.1' }]);
  t.match(p6.skipped, [{ node: 'node-6', reason: /^no kdp\.dev\/vxlan-mac-v6/ }]);
  // this node without an IPv6 underlay: dual-stack peers keep IPv4 silently, IPv6-only ones are skipped
  const no6 = planOverlay('node-1', [me, near, only6], { ...o, backend: 'vxlan', ipv6: false });
  t.same(
    no6.routes.map((r) => r.dev),
    ['kdp.1'],
  );
  t.notOk(no6.peers[0]!.unrouted);
  t.match(no6.skipped, [{ node: 'node-5', reason: /no IPv6 underlay/ }]);
  // overlaps are per family too: an IPv6 CIDR inside another peer's skips the later peer
  const clash = dual('node-7', 7, '192.168.1.17', 'fd00:1::17');
  const clashing = { ...clash, podCIDRs: ['10.244.7.0/24', 'fd00:244:3::/80'] };
  t.match(planOverlay('node-1', [me, away, clashing], { ...o, backend: 'vxlan' }).skipped, [
    { node: 'node-7', reason: /overlaps node node-3's fd00:244:3::\/64/ },
  ]);

  // the diff for both devices
  t.same(
    ipBatch({ routes: [], neighbours: [] }, vx, 'kdp.1').filter((l) => l.includes('kdp6.1')),
    [
      `neigh replace fd00:244:2:: lladdr ${vtepMac(1, 'fd00::12')} dev kdp6.1 nud permanent`,
      `neigh replace fd00:244:3:: lladdr ${vtepMac(1, 'fd00:1::13')} dev kdp6.1 nud permanent`,
      'route replace fd00:244:2::/64 via fd00:244:2:: dev kdp6.1 onlink proto 199',
      'route replace fd00:244:3::/64 via fd00:244:3:: dev kdp6.1 onlink proto 199',
    ],
  );
  t.same(ipBatch(vx, vx, 'kdp.1'), [], 'converged');
  t.same(
    ipBatch({ ...vx, neighbours6: [...vx.neighbours6, { ip: 'fd00:244:9::', mac: '0a:00:00:00:00:09' }] }, vx, 'kdp.1'),
    ['neigh del fd00:244:9:: dev kdp6.1'],
    'a stale IPv6 neighbour goes from kdp6.1',
  );
  t.same(
    fdbBatch([], vx.fdb6, 'kdp6.1')[0],
    `fdb append ${vx.fdb6[0]!.mac} dev kdp6.1 dst ${vx.fdb6[0]!.dst} self permanent`,
  );
});

t.test('diffs: stale entries go, present ones stay, missing ones are added once', async (t) => {
  const cur = {
    routes: [
      { dst: '10.244.2.0/24', via: '10.244.2.0', dev: 'kdp.1' },
      { dst: '10.244.9.0/24', via: '10.244.9.0', dev: 'kdp.1' },
      { dst: '10.244.5.0/24', via: '192.168.0.15' },
    ] as OverlayRoute[],
    neighbours: [
      { ip: '10.244.2.0', mac: '0a:00:00:00:00:02' },
      { ip: '10.244.9.0', mac: '0a:00:00:00:00:09' },
      { ip: '10.244.7.0', mac: '' },
    ] as Neighbour[],
  };
  const want = {
    routes: [
      { dst: '10.244.2.0/24', via: '10.244.2.0', dev: 'kdp.1' },
      { dst: '10.244.3.0/24', via: '10.244.3.0', dev: 'kdp.1' },
    ] as OverlayRoute[],
    neighbours: [
      { ip: '10.244.2.0', mac: '0a:00:00:00:00:02' },
      { ip: '10.244.3.0', mac: '0a:00:00:00:00:03' },
    ] as Neighbour[],
  };
  t.same(ipBatch(cur, want, 'kdp.1'), [
    'route del 10.244.9.0/24 via 10.244.9.0 dev kdp.1 onlink proto 199',
    'route del 10.244.5.0/24 via 192.168.0.15 proto 199',
    'neigh del 10.244.9.0 dev kdp.1',
    'neigh del 10.244.7.0 dev kdp.1',
    'neigh replace 10.244.3.0 lladdr 0a:00:00:00:00:03 dev kdp.1 nud permanent',
    'route replace 10.244.3.0/24 via 10.244.3.0 dev kdp.1 onlink proto 199',
  ]);
  t.same(ipBatch(want, want, 'kdp.1'), [], 'converged: nothing to do');
  const f: FdbEntry[] = [
    { mac: '0a:00:00:00:00:02', dst: '192.168.0.12' },
    { mac: '0a:00:00:00:00:09', dst: '192.168.1.19' },
  ];
  t.same(fdbBatch(f, [f[0]!, { mac: '0a:00:00:00:00:09', dst: '192.168.1.99' }], 'kdp.1'), [
    'fdb del 0a:00:00:00:00:09 dev kdp.1 dst 192.168.1.19 self',
    'fdb append 0a:00:00:00:00:09 dev kdp.1 dst 192.168.1.99 self permanent',
  ]);
  t.same(fdbBatch(f, f, 'kdp.1'), []);
});

const eth0: LinkJson = {
  ifname: 'eth0',
  mtu: 1500,
  flags: ['UP'],
  addr_info: [
    { family: 'inet', local: '192.168.0.11', prefixlen: 24, scope: 'global' },
    { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
  ],
};
const spec = {
  name: 'kdp.1',
  vni: 1,
  port: 8472,
  local: '192.168.0.11',
  underlay: 'eth0',
  mtu: 1450,
  mac: '0a:00:00:00:00:01',
  address: '10.244.1.0',
};
const deviceOf = (s: typeof spec): LinkJson => ({
  ifname: s.name,
  mtu: s.mtu,
  address: s.mac,
  flags: ['UP'],
  linkinfo: {
    info_kind: 'vxlan',
    info_data: { id: s.vni, local: s.local, link: s.underlay, port: s.port, learning: false },
  },
  addr_info: s.address ? [{ family: 'inet', local: s.address, prefixlen: 32, scope: 'global' }] : [],
});

t.test('underlay and device: found by InternalIP or name; device created, fixed or re-created', async (t) => {
  const lo: LinkJson = {
    ifname: 'lo',
    mtu: 65536,
    addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' }],
  };
  t.same(findUnderlay([lo, eth0], { internalIp: '192.168.0.11' }), {
    iface: 'eth0',
    ip: '192.168.0.11',
    mtu: 1500,
    subnets: ['192.168.0.0/24'],
  });
  t.match(findUnderlay([lo, eth0], { iface: 'eth0' }), { ip: '192.168.0.11' }, 'by name');
  t.match(findUnderlay([lo, eth0], { internalIp: '10.0.0.1' }), /no interface holds/);
  t.match(findUnderlay([lo, eth0], { iface: 'eth9' }), /eth9 not found/);
  t.match(findUnderlay([lo], { iface: 'lo' }), /no global IPv4/);
  t.match(findUnderlay([lo, eth0], {}), /no IPv4 InternalIP/);

  t.same(deviceBatch(undefined, spec), [
    'link add kdp.1 address 0a:00:00:00:00:01 mtu 1450 type vxlan id 1 dstport 8472 local 192.168.0.11 dev eth0 nolearning',
    'addr add 10.244.1.0/32 dev kdp.1',
    'link set kdp.1 up',
  ]);
  t.same(deviceBatch(deviceOf(spec), spec), [], 'matches: nothing');
  t.same(
    deviceBatch(deviceOf(spec), { ...spec, mtu: 8950, address: '10.244.7.0' }),
    ['link set kdp.1 mtu 8950', 'addr del 10.244.1.0/32 dev kdp.1', 'addr add 10.244.7.0/32 dev kdp.1'],
    'MTU and address fixed in place',
  );
  t.same(deviceBatch({ ...deviceOf(spec), flags: [] }, spec), ['link set kdp.1 up']);
  for (const changed of [{ vni: 2 }, { port: 4789 }, { local: '192.168.0.99' }, { underlay: 'eth1' }]) {
    const lines = deviceBatch(deviceOf(spec), { ...spec, ...changed });
    t.equal(lines[0], 'link del kdp.1', `re-created for ${JSON.stringify(changed)}`);
    t.match(lines[1], /^link add kdp\.1 /);
  }
  const eth06: LinkJson = {
    ...eth0,
    addr_info: [
      ...eth0.addr_info!,
      { family: 'inet6', local: 'fd00::99', prefixlen: 64, scope: 'global' },
      { family: 'inet6', local: 'fd00::11', prefixlen: 64, scope: 'global' },
    ],
  };
  t.same(
    findUnderlay([lo, eth06], { internalIp: '192.168.0.11', internalIp6: 'fd00::11' }),
    {
      iface: 'eth0',
      ip: '192.168.0.11',
      ip6: 'fd00::11',
      mtu: 1500,
      subnets: ['192.168.0.0/24', 'fd00::/64', 'fd00::/64'],
    },
    'the IPv6 VTEP address is the IPv6 InternalIP',
  );
  t.match(findUnderlay([lo, eth06], { internalIp: '192.168.0.11' }), { ip6: 'fd00::99' }, 'else the first global one');
  t.notOk((findUnderlay([lo, eth0], { internalIp: '192.168.0.11' }) as { ip6?: string }).ip6, 'link-local only: none');
  const spec6 = { ...spec, name: 'kdp6.1', family: 6 as const, local: 'fd00::11', mtu: 1430, address: 'fd00:244:1::' };
  t.same(deviceBatch(undefined, spec6), [
    'link add kdp6.1 address 0a:00:00:00:00:01 mtu 1430 type vxlan id 1 dstport 8472 local fd00::11 dev eth0 nolearning',
    'addr add fd00:244:1::/128 dev kdp6.1 nodad',
    'link set kdp6.1 up',
  ]);
  const dev6: LinkJson = {
    ifname: 'kdp6.1',
    mtu: 1430,
    address: '0a:00:00:00:00:01',
    flags: ['UP'],
    linkinfo: {
      info_kind: 'vxlan',
      info_data: { id: 1, local6: 'fd00::11', link: 'eth0', port: 8472, learning: false },
    },
    addr_info: [
      { family: 'inet6', local: 'fd00:244:1::', prefixlen: 128, scope: 'global' },
      { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
    ],
  };
  t.same(deviceBatch(dev6, spec6), [], 'matches (local6, link-local address ignored): nothing');
  t.same(deviceBatch(dev6, { ...spec6, address: 'fd00:244:7::' }), [
    'addr del fd00:244:1::/128 dev kdp6.1',
    'addr add fd00:244:7::/128 dev kdp6.1 nodad',
  ]);
  t.equal(
    deviceBatch(dev6, { ...spec6, local: 'fd00::12' })[0],
    'link del kdp6.1',
    'another local address: re-created',
  );
  t.equal(
    deviceBatch({ ifname: 'kdp.1', linkinfo: { info_kind: 'bridge' } }, spec)[0],
    'link del kdp.1',
    'not a VXLAN device',
  );
});

/** The kernel as the batches leave it. */
class FakeKernel implements OverlayKernel {
  links_: LinkJson[] = [eth0];
  routes_: OverlayRoute[] = [];
  neigh: Neighbour[] = [];
  fdb_: FdbEntry[] = [];
  batches: string[][] = [];
  failNext = 0;
  async links() {
    return structuredClone(this.links_);
  }
  async routes() {
    return [...this.routes_];
  }
  // the fake holds kdp.1's entries only (its eth0 has no global IPv6 address: no kdp6.1)
  async neighbours(device: string) {
    return device === 'kdp.1' ? [...this.neigh] : [];
  }
  async fdb(device: string) {
    return device === 'kdp.1' ? [...this.fdb_] : [];
  }
  async ip(lines: readonly string[]) {
    if (lines.length === 0) return;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('RTNETLINK answers: File exists');
    }
    this.batches.push([...lines]);
    for (const l of lines) {
      const w = l.split(' ');
      if (w[0] === 'link' && w[1] === 'add')
        this.links_.push(
          deviceOf({
            ...spec,
            name: w[2]!,
            mac: w[4]!,
            mtu: Number(w[6]),
            vni: Number(w[10]),
            local: w[14]!,
            address: undefined as unknown as string,
          }),
        );
      else if (w[0] === 'addr' && w[1] === 'add') {
        const [ip, len] = w[2]!.split('/');
        const d = this.links_.find((x) => x.ifname === w[4])!;
        (d as unknown as { addr_info: unknown[] }).addr_info = [
          { family: 'inet', local: ip, prefixlen: Number(len), scope: 'global' },
        ];
      } else if (w[0] === 'route') {
        const r: OverlayRoute = { dst: w[2]!, via: w[4]!, ...(w[5] === 'dev' ? { dev: w[6]! } : {}) };
        const k = JSON.stringify(r);
        if (w[1] === 'del') this.routes_ = this.routes_.filter((x) => JSON.stringify(x) !== k);
        else {
          this.routes_ = this.routes_.filter((x) => x.dst !== r.dst); // replace: one route per prefix
          this.routes_.push(r);
        }
      } else if (w[0] === 'neigh') {
        this.neigh = this.neigh.filter((n) => n.ip !== w[2]);
        if (w[1] === 'replace') this.neigh.push({ ip: w[2]!, mac: w[4]! });
      }
    }
  }
  async bridge(lines: readonly string[]) {
    for (const l of lines) {
      const w = l.split(' ');
      const f = { mac: w[2]!, dst: w[6]! };
      if (w[1] === 'del') this.fdb_ = this.fdb_.filter((x) => !(x.mac === f.mac && x.dst === f.dst));
      else {
        if (this.fdb_.some((x) => x.mac === f.mac && x.dst === f.dst))
          throw new Error('RTNETLINK answers: File exists');
        this.fdb_.push(f);
      }
    }
  }
}

function recorder(): { log: Logger; lines: { level: string; obj: Record<string, unknown>; msg: string }[] } {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void => {
      lines.push({
        level,
        obj: typeof obj === 'string' ? {} : (obj as Record<string, unknown>),
        msg: msg ?? String(obj),
      });
    };
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return { log, lines };
}

t.test('agent on the kernel: device, peers, node churn, bad peers logged once, annotations published', async (t) => {
  const k = new FakeKernel();
  const h = harness();
  const { log, lines } = recorder();
  const patched: [string, Record<string, string>][] = [];
  const annotator: NodeAnnotator = {
    annotate: async (node, a) => {
      patched.push([node, { ...a }]);
    },
  };
  const registry = new Registry();
  let underlayCalls = 0;
  const agent = new OverlayAgent({
    nodeName: 'node-1',
    backend: 'auto',
    kernel: k,
    annotator,
    registry,
    log,
    onUnderlay: () => underlayCalls++,
  });
  const c = h.controller(agent);
  h.source.put(makeNode('node-1', ['10.244.1.0/24'], ['192.168.0.11'])); // not yet annotated
  h.source.put(same);
  h.source.put(far);
  await h.clock.advance(10);
  t.equal(k.batches.length, 0, 'nothing before sync');
  t.equal(agent.overlayMtu, undefined);
  await h.source.start();
  await h.clock.advance(1);
  t.match(
    k.links_.find((l) => l.ifname === 'kdp.1'),
    {
      mtu: 1450,
      address: vtepMac(1, '192.168.0.11'),
      addr_info: [{ local: '10.244.1.0', prefixlen: 32 }],
    },
  );
  t.equal(agent.overlayMtu, 1450, 'the conflist MTU: underlay - 50');
  t.equal(underlayCalls, 1, 'the conflist writer is told once');
  t.same(patched, [['node-1', vtepAnnotations(1, '192.168.0.11')]], 'own VTEP annotations PATCHed');
  t.same(k.routes_.map((r) => [r.dst, r.via, r.dev ?? '']).sort(), [
    ['10.244.2.0/24', '192.168.0.12', ''],
    ['10.244.3.0/24', '10.244.3.0', 'kdp.1'],
  ]);
  t.same(k.neigh, [{ ip: '10.244.3.0', mac: vtepMac(1, '192.168.1.13') }]);
  t.same(k.fdb_, [{ mac: vtepMac(1, '192.168.1.13'), dst: '192.168.1.13' }]);
  t.match(await registry.metrics(), /kdp_node_agent_peers\{path="direct"\} 1[\s\S]*path="vxlan"\} 1/);

  // the PATCH comes back through the watch: no second PATCH
  h.source.put(annotated(makeNode('node-1', ['10.244.1.0/24'], ['192.168.0.11']), vtepAnnotations(1, '192.168.0.11')));
  await h.clock.advance(1);
  t.equal(patched.length, 1);

  // a bad peer, seen on three reconciles, is reported once; the others keep their entries
  h.source.put(makeNode('node-4', ['10.244.4.0/24'], ['192.168.1.14']));
  await h.clock.advance(1);
  h.source.put(vtepNode('node-5', ['10.244.5.0/24'], '192.168.1.15'));
  await h.clock.advance(1);
  c.requestFull();
  await h.clock.advance(1);
  const skips = lines.filter((l) => l.msg === 'peer skipped');
  t.same(
    skips.map((l) => [l.obj.node, l.obj.code]),
    [['node-4', 'KDP_NODE_PEER_SKIPPED']],
    'logged once, with its code',
  );
  t.equal(k.routes_.length, 3, 'node-2, node-3 and the new node-5 routed');
  // fixed: no longer skipped, routed
  h.source.put(vtepNode('node-4', ['10.244.4.0/24'], '192.168.1.14'));
  await h.clock.advance(1);
  t.ok(lines.some((l) => l.msg === 'peer no longer skipped' && l.obj.node === 'node-4'));
  t.equal(k.routes_.length, 4);

  // removal: all three entries of a VXLAN peer go
  h.source.remove('Node', 'node-3');
  await h.clock.advance(1);
  t.notOk(
    k.routes_.some((r) => r.dst === '10.244.3.0/24'),
    'route gone',
  );
  t.notOk(
    k.neigh.some((n) => n.ip === '10.244.3.0'),
    'neighbour gone',
  );
  t.notOk(
    k.fdb_.some((f) => f.dst === '192.168.1.13'),
    'FDB entry gone',
  );

  // readdress: node-2 moves across the router, it becomes a VXLAN peer
  h.source.put(vtepNode('node-2', ['10.244.2.0/24'], '192.168.1.12'));
  await h.clock.advance(1);
  t.same(
    k.routes_.find((r) => r.dst === '10.244.2.0/24'),
    { dst: '10.244.2.0/24', via: '10.244.2.0', dev: 'kdp.1' },
    're-decided: VXLAN now',
  );
  t.ok(k.fdb_.some((f) => f.dst === '192.168.1.12'));
  t.same(
    agent.plan?.peers.map((p) => [p.node, p.path]),
    [
      ['node-2', 'vxlan'],
      ['node-4', 'vxlan'],
      ['node-5', 'vxlan'],
    ],
  );
  await c.stop();
});

t.test('agent restart: converges from what the kernel holds, no stale entry, no duplicate', async (t) => {
  const k = new FakeKernel();
  // a previous run left: a device, a peer that is gone, a stale neighbour and FDB entry, a host-gw route
  k.links_.push(deviceOf({ ...spec, mac: vtepMac(1, '192.168.0.11') }));
  k.routes_ = [
    { dst: '10.244.3.0/24', via: '10.244.3.0', dev: 'kdp.1' },
    { dst: '10.244.8.0/24', via: '10.244.8.0', dev: 'kdp.1' },
    { dst: '10.244.2.0/24', via: '192.168.0.12' },
  ];
  k.neigh = [
    { ip: '10.244.3.0', mac: vtepMac(1, '192.168.1.13') },
    { ip: '10.244.8.0', mac: '0a:00:00:00:00:08' },
  ];
  k.fdb_ = [
    { mac: vtepMac(1, '192.168.1.13'), dst: '192.168.1.13' },
    { mac: '0a:00:00:00:00:08', dst: '192.168.1.18' },
  ];
  const h = harness();
  const agent = new OverlayAgent({ nodeName: 'node-1', backend: 'vxlan', kernel: k });
  const c = h.controller(agent);
  h.source.put(self);
  h.source.put(same);
  h.source.put(far);
  await h.source.start();
  await h.clock.advance(1);
  t.same(k.routes_.map((r) => `${r.dst} ${r.via} ${r.dev ?? ''}`).sort(), [
    '10.244.2.0/24 10.244.2.0 kdp.1',
    '10.244.3.0/24 10.244.3.0 kdp.1',
  ]);
  t.same(k.neigh.map((n) => n.ip).sort(), ['10.244.2.0', '10.244.3.0']);
  t.same(k.fdb_.map((f) => f.dst).sort(), ['192.168.0.12', '192.168.1.13']);
  t.notOk(
    k.batches.flat().some((l) => l.startsWith('link')),
    'the matching device is kept',
  );
  t.notOk(
    k.batches.flat().some((l) => l.includes('10.244.3.0')),
    'the entries already right are not touched',
  );
  await c.stop();
});

t.test(
  'agent: manifests mode warns once about its own missing annotations; no underlay is an error, retried',
  async (t) => {
    const k = new FakeKernel();
    const h = harness();
    const { log, lines } = recorder();
    const agent = new OverlayAgent({ nodeName: 'node-1', backend: 'vxlan', kernel: k, log });
    const c = h.controller(agent, { retryMinMs: 1000, retryMaxMs: 10_000 });
    h.source.put(makeNode('node-1', ['10.244.1.0/24'], ['192.168.0.11']));
    h.source.put(same);
    await h.source.start();
    await h.clock.advance(1);
    c.requestFull();
    await h.clock.advance(1);
    t.equal(lines.filter((l) => /lacks its VTEP annotations/.test(l.msg)).length, 1, 'said once');
    t.equal(k.routes_.length, 1, 'peers are programmed all the same');

    // the node's InternalIP moves to an address no interface holds: KDP_NODE_UNDERLAY, retried with backoff
    let attempts = 0;
    const links = k.links.bind(k);
    k.links = async () => {
      attempts++;
      return links();
    };
    h.source.put(makeNode('node-1', ['10.244.1.0/24'], ['192.168.0.99']));
    const times = await attemptTimes(h, () => attempts, 4000);
    t.ok(times.length >= 3, `retried (${times.length} attempts)`);
    t.match(c.status().lastError, /no interface holds this node's InternalIP 192\.168\.0\.99/);
    t.equal(k.routes_.length, 1, 'what was programmed stays');
    await c.stop();
  },
);

t.test('agent: a failed apply is retried with backoff and then converges', async (t) => {
  const k = new FakeKernel();
  const h = harness();
  const agent = new OverlayAgent({ nodeName: 'node-1', backend: 'vxlan', kernel: k });
  const c = h.controller(agent, { retryMinMs: 1000, retryMaxMs: 10_000 });
  h.source.put(self);
  await h.source.start();
  await h.clock.advance(1);
  let attempts = 0;
  const ip = k.ip.bind(k);
  k.ip = async (l) => {
    attempts++;
    return ip(l);
  };
  k.failNext = 2;
  h.source.put(far);
  const times = await attemptTimes(h, () => attempts, 10_000);
  t.same(
    times.slice(1).map((x, i) => Math.round((x - times[i]!) / 100) * 100),
    [1000, 2000],
    'retried after 1 and 2 s',
  );
  t.equal(c.status().failuresTotal, 2);
  t.same(k.routes_, [{ dst: '10.244.3.0/24', via: '10.244.3.0', dev: 'kdp.1' }]);
  await c.stop();
});

t.test('conflist writer: the overlay MTU from a getter; written once the agent found the underlay', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kdp-overlay-conf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const underlay: { mtu?: number } = {};
  const h = harness();
  const w = new ConflistWriter({
    nodeName: 'node-1',
    confDir: dir,
    mtu: () => underlay.mtu,
    clusterCidrs: ['10.244.0.0/16'],
  });
  const c = h.controller(w, { retryMinMs: 1000 });
  h.source.put(self);
  await h.source.start();
  await h.clock.advance(1);
  t.throws(() => readFileSync(w.path), 'nothing written while the MTU is unknown');
  t.equal(c.status().failures, 0, 'not an error: the agent asks again');
  underlay.mtu = 1450;
  c.requestFull();
  await h.clock.advance(1);
  t.match(JSON.parse(readFileSync(w.path, 'utf8')), { plugins: [{ mtu: 1450, clusterCIDRs: ['10.244.0.0/16'] }] });
  await c.stop();
});
