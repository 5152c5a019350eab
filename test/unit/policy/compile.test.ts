// The compiler and the evaluator over one cluster with every feature (fixtures.ts MIXED): tiers in order, Pass,
// isolation, BANP only for pods NetworkPolicy did not isolate, named ports resolved per destination pod, endPort,
// ipBlock except, a port name nobody exposes, hostNetwork pods left out, node filtering.
import t from 'tap';
import { compilePolicies, isSelected } from '../../../src/policy/compile.ts';
import { evaluate } from '../../../src/policy/evaluate.ts';
import type { Packet } from '../../../src/policy/types.ts';
import type { Protocol } from '../../../src/model/types.ts';
import { inputOf, MIXED, podRaw } from './fixtures.ts';

const all = compilePolicies(inputOf(MIXED));
const pkt = (src: string, dst: string, port: number, proto: Protocol = 'TCP'): Packet => ({ src, dst, port, proto });
const WEB = '10.244.1.10';
const WORKER = '10.244.2.11';
const PG = '10.244.1.20';
const METRICS = '10.244.2.21';

t.test('pods: only pods with their own addresses; a node compiles its own', async (t) => {
  t.same(
    all.pods.map((p) => p.key),
    ['db/metrics', 'db/pg', 'shop/web', 'shop/worker'],
    'the hostNetwork pod is never a policy pod',
  );
  const n1 = compilePolicies(inputOf(MIXED), { node: 'node-1' });
  t.same(
    n1.pods.map((p) => p.key),
    ['db/pg', 'shop/web'],
  );
  t.equal(n1.podByIP[METRICS], 'db/metrics', 'peers of every node are known');
  t.notOk(all.podByIP['192.168.0.1'], 'the hostNetwork address is not a pod');
  t.same(
    all.policies.map((p) => `${p.tier}:${p.key}`),
    [
      'AdminNetworkPolicy:guard',
      'NetworkPolicy:db/ghost-port',
      'NetworkPolicy:shop/web-in',
      'NetworkPolicy:shop/web-out',
      'BaselineAdminNetworkPolicy:default',
    ],
  );
  t.same(
    all.pods.map((p) => isSelected(p)),
    [true, true, true, true],
    'every pod is selected (the BANP selects every namespace)',
  );
});

const cases: [string, Packet, 'allow' | 'deny', string][] = [
  ['ipBlock allows pg to web on the named port http', pkt(PG, WEB, 8080), 'allow', 'shop/web-in rule ingress[0]'],
  ['ipBlock except: worker is cut out', pkt(WORKER, WEB, 8080), 'deny', 'isolated'],
  ['named port http is TCP: UDP 8080 is not allowed', pkt(PG, WEB, 8080, 'UDP'), 'deny', 'isolated'],
  ['endPort range: worker to 9050', pkt(WORKER, WEB, 9050), 'allow', 'shop/web-in rule ingress[1]'],
  ['endPort range: 9101 is outside', pkt(WORKER, WEB, 9101), 'deny', 'isolated'],
  [
    'egress named port resolved on the peer: metrics serves pg on 9187',
    pkt(WEB, METRICS, 9187),
    'allow',
    'shop/web-out rule egress[0]',
  ],
  ['egress named port: 5432 is not metrics pg port', pkt(WEB, METRICS, 5432), 'deny', 'isolated'],
  [
    'ANP Pass, then pg isolated by a policy whose port name nobody exposes',
    pkt(WEB, PG, 5432),
    'deny',
    'db/ghost-port',
  ],
  ['egress peers bound the ports: UDP 53 only to db pods', pkt(WEB, '10.96.0.10', 53, 'UDP'), 'deny', 'isolated'],
  ['ANP Allow decides before BANP', pkt(PG, '10.96.0.10', 53, 'UDP'), 'allow', 'guard rule allow-dns'],
  ['ANP Deny with a named port resolved on the peer', pkt(PG, METRICS, 9187), 'deny', 'guard rule deny-metrics-port'],
  ['BANP Deny for a pod NetworkPolicy does not isolate', pkt(PG, '10.96.5.5', 443), 'deny', 'default rule deny-range'],
  ['BANP port range ends at 1024', pkt(PG, '10.96.5.5', 2000), 'allow', 'no policy decides'],
  [
    'BANP is not consulted for an isolated pod: web egress is NetworkPolicy only',
    pkt(WEB, '10.96.5.5', 443),
    'deny',
    'isolated',
  ],
];

t.test('verdicts and the step that decides', async (t) => {
  for (const [what, p, verdict] of cases) {
    const e = evaluate(all, p);
    t.equal(e.verdict, verdict, what);
  }
  const steps = (p: Packet) =>
    [...evaluate(all, p).egress, ...evaluate(all, p).ingress].map((s) => s.reason).join(' | ');
  for (const [what, p, , reason] of cases) t.match(steps(p), reason, `${what}: steps name it`);
});

t.test('steps: egress then ingress, naming tier, policy and rule', async (t) => {
  const e = evaluate(all, pkt(WEB, PG, 5432));
  t.same(
    e.egress.map((s) => [s.tier, s.policy, s.rule, s.outcome]),
    [['NetworkPolicy', 'shop/web-out', 'egress[0]', 'allow']],
  );
  t.same(
    e.ingress.map((s) => [s.tier, s.policy, s.rule, s.outcome]),
    [
      ['AdminNetworkPolicy', 'guard', 'pass-shop', 'pass'],
      ['NetworkPolicy', 'db/ghost-port', undefined, 'deny'],
    ],
  );
  const outside = evaluate(all, pkt('10.244.9.9', PG, 5432));
  t.same(outside.egress, [], 'a source that is no pod has no egress steps');
  t.same(
    outside.ingress.map((s) => s.outcome),
    ['deny'],
    'an address in no namespace is not matched by `namespaces: {}`; ghost-port isolates',
  );
});

t.test('a port name nobody exposes matches nothing and is noted', async (t) => {
  t.match(all.notes, [{ policy: 'db/ghost-port', tier: 'NetworkPolicy', message: /nobody.*matches nothing/ }]);
  const pg = all.pods.find((p) => p.key === 'db/pg')!;
  t.same(pg.ingress.allow[0]!.ports, [], 'the rule has no port left');
  t.same(pg.ingress.allow[0]!.peerPorts, []);
});

t.test('ANP priority: the lower number is evaluated first, whatever the name', async (t) => {
  const anp = (name: string, priority: number, action: string) => ({
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name },
    spec: { priority, subject: { namespaces: {} }, ingress: [{ name: action, action, from: [{ namespaces: {} }] }] },
  });
  const pods = [podRaw('a', 'p', ['10.1.0.1']), podRaw('a', 'q', ['10.1.0.2'])];
  const c1 = compilePolicies(inputOf([...pods, anp('aaa', 50, 'Deny'), anp('zzz', 5, 'Allow')]));
  t.equal(evaluate(c1, pkt('10.1.0.1', '10.1.0.2', 80)).verdict, 'allow', 'priority 5 Allow beats priority 50 Deny');
  const c2 = compilePolicies(inputOf([...pods, anp('aaa', 5, 'Deny'), anp('zzz', 50, 'Allow')]));
  t.equal(evaluate(c2, pkt('10.1.0.1', '10.1.0.2', 80)).verdict, 'deny');
  const c3 = compilePolicies(inputOf([...pods, anp('aaa', 5, 'Deny'), anp('zzz', 5, 'Allow')]));
  t.match(c3.notes, [{ policy: 'zzz', message: /shares priority 5 with aaa/ }], 'equal priorities are reported');
});

t.test('namespace labels: the name label is implied when a Namespace object is missing', async (t) => {
  const c = compilePolicies(
    inputOf([
      podRaw('a', 'p', ['10.1.0.1']),
      podRaw('b', 'q', ['10.1.0.2']),
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'from-a', namespace: 'b' },
        spec: {
          podSelector: {},
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'a' } } }] }],
        },
      },
    ]),
  );
  t.equal(evaluate(c, pkt('10.1.0.1', '10.1.0.2', 80)).verdict, 'allow');
});

t.test('a pod with no IP yet: never enforced, never a peer; selected once it has one', async (t) => {
  const allowFromClients = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'from-clients', namespace: 'a' },
    spec: {
      podSelector: { matchLabels: { app: 'srv' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }] }],
    },
  };
  const srv = podRaw('a', 'srv', ['10.1.0.1'], { labels: { app: 'srv' } });
  const other = podRaw('a', 'other', ['10.1.0.3'], { labels: {} });
  const pending = (ips: string[]) => podRaw('a', 'new', ips, { labels: { role: 'client', app: 'srv' } });
  const before = compilePolicies(inputOf([srv, other, pending([]), allowFromClients]));
  t.same(
    before.pods.map((p) => p.key),
    ['a/other', 'a/srv'],
    'the pod without an address is not enforced (nothing to match)',
  );
  t.same(Object.keys(before.podByIP).sort(), ['10.1.0.1', '10.1.0.3']);
  t.equal(evaluate(before, pkt('10.1.0.3', '10.1.0.1', 80)).verdict, 'deny', 'its peer rule opens nothing to others');
  t.equal(evaluate(before, pkt('10.1.0.2', '10.1.0.1', 80)).verdict, 'deny', 'nor to its future address');
  const after = compilePolicies(inputOf([srv, other, pending(['10.1.0.2']), allowFromClients]));
  t.same(
    after.pods.map((p) => p.key),
    ['a/new', 'a/other', 'a/srv'],
  );
  t.equal(evaluate(after, pkt('10.1.0.2', '10.1.0.1', 80)).verdict, 'allow', 'with its address: a client');
  t.equal(evaluate(after, pkt('10.1.0.3', '10.1.0.2', 80)).verdict, 'deny', 'and isolated itself (app=srv)');
});

t.test('a port name exposed by two containers with different numbers matches both', async (t) => {
  const srv = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'srv', namespace: 'a', labels: { app: 'srv' } },
    spec: {
      nodeName: 'node-1',
      containers: [
        { name: 'one', ports: [{ name: 'http', containerPort: 8080 }] },
        { name: 'two', ports: [{ name: 'http', containerPort: 9090 }] },
        { name: 'three', ports: [{ name: 'admin', containerPort: 7070 }] },
      ],
    },
    status: { phase: 'Running', podIPs: [{ ip: '10.1.0.1' }] },
  };
  const c = compilePolicies(
    inputOf([
      srv,
      podRaw('a', 'client', ['10.1.0.2']),
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'http-only', namespace: 'a' },
        spec: { podSelector: { matchLabels: { app: 'srv' } }, ingress: [{ ports: [{ port: 'http' }] }] },
      },
    ]),
  );
  t.equal(evaluate(c, pkt('10.1.0.2', '10.1.0.1', 8080)).verdict, 'allow', 'container one: 8080');
  t.equal(evaluate(c, pkt('10.1.0.2', '10.1.0.1', 9090)).verdict, 'allow', 'container two: 9090');
  t.equal(evaluate(c, pkt('10.1.0.2', '10.1.0.1', 7070)).verdict, 'deny', 'another name: denied');
  t.equal(evaluate(c, pkt('10.1.0.2', '10.1.0.1', 9090, 'UDP')).verdict, 'deny', 'the name is TCP: UDP 9090 denied');
});
