import t from 'tap';
import {
  attachNodeBatch,
  leftovers,
  makeRunId,
  nodeBatch,
  nsName,
  parseNsName,
  planLab,
  underlayBatch,
  underlaySysctls,
} from '../../../src/lab/plan.ts';
import { parseNetnsList } from '../../../src/lab/lab.ts';

t.test('run ids and namespace names round-trip', async (t) => {
  const id = makeRunId(4242, 0xbeef);
  t.equal(id, '4242-beef');
  t.equal(makeRunId(7, 1), '7-0001');
  const name = nsName(id, 'node-1');
  t.equal(name, 'kdp-4242-beef-node-1');
  t.same(parseNsName(name), { pid: 4242, runId: '4242-beef', role: 'node-1' });
  t.throws(() => makeRunId(0, 1), { code: 'KDP_LAB_INVALID' });
  t.throws(() => nsName(id, 'Bad Role'), { code: 'KDP_LAB_INVALID' });
  t.throws(() => nsName(id, ''), { code: 'KDP_LAB_INVALID' });
});

t.test('parseNsName rejects what is not ours', async (t) => {
  for (const n of ['kdp', 'kdp-abc-beef-x', 'kdp-12-bee-x', 'cni-1234', 'kdp-12-beef-', 'xkdp-12-beef-node']) {
    t.equal(parseNsName(n), undefined, n);
  }
});

t.test('leftovers: only namespaces of dead runs, never foreign ones', async (t) => {
  const names = ['kdp-10-aaaa-underlay', 'kdp-10-aaaa-node-1', 'kdp-20-bbbb-node-1', 'cni-xyz', 'kdp-30-cccc-pod.a'];
  const alive = new Set([20]);
  let calls = 0;
  const isAlive = (pid: number) => {
    calls++;
    return alive.has(pid);
  };
  t.same(leftovers(names, isAlive), ['kdp-10-aaaa-underlay', 'kdp-10-aaaa-node-1', 'kdp-30-cccc-pod.a']);
  t.equal(calls, 3, 'liveness asked once per pid');
});

t.test('address plan', async (t) => {
  const p = planLab('1-0001', 3);
  t.equal(p.underlayNs, 'kdp-1-0001-underlay');
  t.same(
    p.nodes.map((n) => [n.name, n.ns, n.ip4, n.ip6, n.podCidr4, n.podCidr6, n.underlayPort]),
    [
      ['node-1', 'kdp-1-0001-node-1', '198.18.0.11', 'fd00:198:18::b', '198.19.1.0/24', 'fd00:198:19:1::/64', 'n1'],
      ['node-2', 'kdp-1-0001-node-2', '198.18.0.12', 'fd00:198:18::c', '198.19.2.0/24', 'fd00:198:19:2::/64', 'n2'],
      ['node-3', 'kdp-1-0001-node-3', '198.18.0.13', 'fd00:198:18::d', '198.19.3.0/24', 'fd00:198:19:3::/64', 'n3'],
    ],
  );
  const all = [p.underlayHost4, ...p.nodes.map((n) => n.ip4)];
  t.equal(new Set(all).size, all.length, 'addresses are distinct');
  for (const a of all) t.match(a, /^198\.1[89]\./, `${a} is in 198.18.0.0/15`);
  t.equal(planLab('1-0001', 200).nodes.at(-1)?.ip4, '198.18.0.210');
  for (const bad of [0, -1, 1.5, 201, Number.NaN])
    t.throws(() => planLab('1-0001', bad), { code: 'KDP_LAB_INVALID' }, String(bad));
});

t.test('batches build nothing outside lab namespaces and give nodes no route out', async (t) => {
  const p = planLab('1-0001', 2);
  const ul = underlayBatch(p);
  t.same(ul.slice(0, 3), ['link set lo up', 'link add ul0 address 02:6b:64:70:00:00 type bridge', 'link set ul0 up']);
  t.same(attachNodeBatch(p, p.nodes[1]!), [
    'link add n2 type veth peer name eth0 netns kdp-1-0001-node-2',
    'link set n2 master ul0 up',
  ]);
  t.ok(ul.includes('link add n1 type veth peer name eth0 netns kdp-1-0001-node-1'));
  const nb = nodeBatch(p, p.nodes[0]!);
  t.same(nb, [
    'link set lo up',
    'addr add 198.18.0.11/24 dev eth0',
    'addr add fd00:198:18::b/64 dev eth0 nodad',
    'link set eth0 up',
  ]);
  for (const line of [...ul, ...nb]) t.notMatch(line, /route|default/, `no route in: ${line}`);
});

t.test(
  'one subnet by default: the plan and its batches are what they always were (the bridge now has a fixed MAC)',
  async (t) => {
    const p = planLab('1-0001', 3);
    t.same(planLab('1-0001', 3, { subnets: 1 }), p, 'subnets: 1 is the default');
    t.same(p.subnets, [
      {
        index: 0,
        bridge: 'ul0',
        mac: '02:6b:64:70:00:00',
        cidr4: '198.18.0.0/24',
        cidr6: 'fd00:198:18::/64',
        host4: '198.18.0.1',
        host6: 'fd00:198:18::1',
      },
    ]);
    t.same(
      p.nodes.map((n) => [n.subnet, n.gateway4, n.gateway6]),
      [
        [0, '198.18.0.1', 'fd00:198:18::1'],
        [0, '198.18.0.1', 'fd00:198:18::1'],
        [0, '198.18.0.1', 'fd00:198:18::1'],
      ],
    );
    t.same(underlayBatch(p), [
      'link set lo up',
      'link add ul0 address 02:6b:64:70:00:00 type bridge',
      'link set ul0 up',
      'addr add 198.18.0.1/24 dev ul0',
      'addr add fd00:198:18::1/64 dev ul0 nodad',
      'link add n1 type veth peer name eth0 netns kdp-1-0001-node-1',
      'link set n1 master ul0 up',
      'link add n2 type veth peer name eth0 netns kdp-1-0001-node-2',
      'link set n2 master ul0 up',
      'link add n3 type veth peer name eth0 netns kdp-1-0001-node-3',
      'link set n3 master ul0 up',
    ]);
    t.same(underlaySysctls(p), [], 'the underlay does not forward');
    for (const n of p.nodes)
      t.notOk(
        nodeBatch(p, n).some((l) => l.includes('route')),
        `${n.name}: no route`,
      );
  },
);

t.test('two subnets: two bridges routed by the underlay, nodes alternate, one route per family', async (t) => {
  const p = planLab('1-0001', 3, { subnets: 2 });
  t.same(
    p.subnets.map((s) => [s.bridge, s.cidr4, s.cidr6, s.host4, s.host6]),
    [
      ['ul0', '198.18.0.0/24', 'fd00:198:18::/64', '198.18.0.1', 'fd00:198:18::1'],
      ['ul1', '198.18.1.0/24', 'fd00:198:18:1::/64', '198.18.1.1', 'fd00:198:18:1::1'],
    ],
  );
  t.same(
    p.nodes.map((n) => [n.name, n.subnet, n.ip4, n.ip6, n.gateway4, n.gateway6, n.podCidr4, n.podCidr6]),
    [
      [
        'node-1',
        0,
        '198.18.0.11',
        'fd00:198:18::b',
        '198.18.0.1',
        'fd00:198:18::1',
        '198.19.1.0/24',
        'fd00:198:19:1::/64',
      ],
      [
        'node-2',
        1,
        '198.18.1.12',
        'fd00:198:18:1::c',
        '198.18.1.1',
        'fd00:198:18:1::1',
        '198.19.2.0/24',
        'fd00:198:19:2::/64',
      ],
      [
        'node-3',
        0,
        '198.18.0.13',
        'fd00:198:18::d',
        '198.18.0.1',
        'fd00:198:18::1',
        '198.19.3.0/24',
        'fd00:198:19:3::/64',
      ],
    ],
    'two nodes on A, one on B; pod CIDRs as with one subnet',
  );
  t.same(underlayBatch(p), [
    'link set lo up',
    'link add ul0 address 02:6b:64:70:00:00 type bridge',
    'link set ul0 up',
    'addr add 198.18.0.1/24 dev ul0',
    'addr add fd00:198:18::1/64 dev ul0 nodad',
    'link add ul1 address 02:6b:64:70:00:01 type bridge',
    'link set ul1 up',
    'addr add 198.18.1.1/24 dev ul1',
    'addr add fd00:198:18:1::1/64 dev ul1 nodad',
    'link add n1 type veth peer name eth0 netns kdp-1-0001-node-1',
    'link set n1 master ul0 up',
    'link add n2 type veth peer name eth0 netns kdp-1-0001-node-2',
    'link set n2 master ul1 up',
    'link add n3 type veth peer name eth0 netns kdp-1-0001-node-3',
    'link set n3 master ul0 up',
  ]);
  t.same(underlaySysctls(p), ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'], 'the underlay routes');
  t.same(nodeBatch(p, p.nodes[0]!), [
    'link set lo up',
    'addr add 198.18.0.11/24 dev eth0',
    'addr add fd00:198:18::b/64 dev eth0 nodad',
    'link set eth0 up',
    'route add 198.18.1.0/24 via 198.18.0.1 dev eth0',
    'route add fd00:198:18:1::/64 via fd00:198:18::1 dev eth0',
  ]);
  t.same(nodeBatch(p, p.nodes[1]!).slice(1), [
    'addr add 198.18.1.12/24 dev eth0',
    'addr add fd00:198:18:1::c/64 dev eth0 nodad',
    'link set eth0 up',
    'route add 198.18.0.0/24 via 198.18.1.1 dev eth0',
    'route add fd00:198:18::/64 via fd00:198:18:1::1 dev eth0',
  ]);
  for (const n of p.nodes)
    for (const line of nodeBatch(p, n))
      t.notMatch(line, /default|198\.19\.|fd00:198:19:/, `${n.name}: no default, no pod-CIDR route: ${line}`);
  t.equal(planLab('1-0001', 200, { subnets: 2 }).nodes.at(-1)?.ip4, '198.18.1.210');
  t.throws(() => planLab('1-0001', 2, { subnets: 3 as 2 }), { code: 'KDP_LAB_INVALID' });
});

t.test('parseNetnsList', async (t) => {
  t.same(parseNetnsList('kdp-1-0001-node-1 (id: 3)\nkdp-1-0001-underlay (id: 2)\nplain\n\n'), [
    'kdp-1-0001-node-1',
    'kdp-1-0001-underlay',
    'plain',
  ]);
  t.same(parseNetnsList(''), []);
});
