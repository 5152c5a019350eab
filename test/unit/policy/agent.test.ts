// The policy agent on the controller kernel's harness with a fake policy table: fail closed at start (keep a
// table an earlier agent left, else install the closed one), nothing applied before every kind synced, one
// apply per change, a failed apply retried in full with backoff, metrics; the closed table's text and the
// counters' JSON.
import t from 'tap';
import { Registry } from 'prom-client';
import { PolicyAgent, PolicyMetrics, parseCounters, renderClosedTable } from '../../../src/policy/agent.ts';
import type { NamedCounter, PolicyTable } from '../../../src/policy/agent.ts';
import { renderForNode, scriptSize } from '../../../src/policy/sync.ts';
import { attemptTimes, harness } from '../../../src/k8s/testing/harness.ts';
import type { Namespace, NetworkPolicy, Pod } from '../../../src/model/types.ts';
import { meta } from './fixtures.ts';
import { silentLogger } from '../../../src/common/log.ts';

class FakeTable implements PolicyTable {
  present = false;
  scripts: string[] = [];
  failNext = 0;
  counterList: NamedCounter[] = [];
  async exists() {
    return this.present;
  }
  async apply(script: string) {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('Error: Could not process rule: No such file or directory');
    }
    this.scripts.push(script);
    this.present = true;
  }
  async counters() {
    return this.counterList;
  }
  async list() {
    return this.scripts.at(-1) ?? '';
  }
  async remove() {
    this.present = false;
  }
  async enableBridgeNetfilter(): Promise<'on'> {
    return 'on';
  }
}

const ns = (name: string): Namespace => ({ kind: 'Namespace', meta: { ...meta('', name, { ns: name }) } });
const pod = (n: string, name: string, ip: string, node: string, labels: Record<string, string>): Pod => ({
  kind: 'Pod',
  meta: meta(n, name, labels),
  nodeName: node,
  hostNetwork: false,
  containerPorts: [{ name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' }],
  phase: 'Running',
  podIPs: [ip],
  ready: true,
});
const denyAll = (n: string): NetworkPolicy => ({
  kind: 'NetworkPolicy',
  meta: meta(n, 'deny-all'),
  podSelector: { matchLabels: {}, matchExpressions: [] },
  policyTypes: ['Ingress'],
  ingress: [],
  egress: [],
});

t.test('closed table: established passes, new connections from and to the pod CIDRs drop, per family', async (t) => {
  const text = renderClosedTable(['10.244.0.0/16', 'fd00:10:244::/56'], 'kdp-policy');
  t.match(text, /^table inet kdp-policy \{$/m);
  t.match(text, /type filter hook forward priority filter; policy accept;/);
  const lines = text.split('\n').map((l) => l.trim());
  const est = lines.indexOf('ct state established,related accept');
  t.ok(est > 0, 'established first');
  const drops = lines.filter((l) => / drop /.test(l));
  t.same(
    drops.map((l) => l.split(' counter')[0]),
    [
      'ip saddr { 10.244.0.0/16 }',
      'ip daddr { 10.244.0.0/16 }',
      'ip6 saddr { fd00:10:244::/56 }',
      'ip6 daddr { fd00:10:244::/56 }',
    ],
  );
  t.ok(lines.findIndex((l) => / drop /.test(l)) > est, 'drops come after the established accept');
});

t.test('counters JSON', async (t) => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      {
        counter: {
          family: 'inet',
          name: 'np-x-deny',
          table: 'kdp-policy',
          handle: 3,
          packets: 7,
          bytes: 420,
          comment: 'x/deny',
        },
      },
      { counter: { family: 'inet', name: 'other', table: 'kdp-policy', handle: 4, packets: 0, bytes: 0 } },
    ],
  });
  t.same(parseCounters(json), [
    { name: 'np-x-deny', packets: 7, bytes: 420, comment: 'x/deny' },
    { name: 'other', packets: 0, bytes: 0 },
  ]);
});

t.test('script size: rules inside chains and add rule lines; sets and maps', async (t) => {
  const s = [
    'add table inet k',
    'delete table inet k',
    'table inet k {',
    '  counter c1 { comment "x" }',
    '  set s1 { type ipv4_addr; flags interval; elements = { 10.0.0.0/8 } }',
    '  map m1 {',
    '    type ipv4_addr : verdict',
    '    elements = { 10.0.0.1 : jump p1 }',
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    ct state established,related accept',
    '    ip daddr vmap @m1',
    '  }',
    '  chain p1 {',
    '    ip saddr @s1 accept',
    '    counter name c1 drop',
    '  }',
    '}',
    'add rule inet k p1 accept',
  ].join('\n');
  t.same(scriptSize(s), { rules: 5, sets: 2 });
});

t.test('start: keeps a table an earlier agent left, else installs the closed one', async (t) => {
  const render = () => ({ script: 'S', rules: 0, sets: 0, selectedPods: 0 });
  const kept = new FakeTable();
  kept.present = true;
  t.equal(await new PolicyAgent({ nodeName: 'n1', table: kept, render, podCidrs: ['10.244.0.0/16'] }).start(), 'kept');
  t.same(kept.scripts, [], 'nothing applied: the old table stays until the first sync replaces it');
  const fresh = new FakeTable();
  t.equal(
    await new PolicyAgent({ nodeName: 'n1', table: fresh, render, podCidrs: ['10.244.0.0/16'] }).start(),
    'closed',
  );
  t.same(fresh.scripts, [renderClosedTable(['10.244.0.0/16'])]);
  const broken = new FakeTable();
  broken.failNext = 1;
  await t.rejects(
    new PolicyAgent({ nodeName: 'n1', table: broken, render, podCidrs: ['10.244.0.0/16'] }).start(),
    { code: 'KDP_POLICY_SYNC_FAILED' },
    'a failure to close is an error (the command exits non-zero rather than run open)',
  );
});

t.test('on the kernel: nothing before every kind synced, then the real render; a change re-applies', async (t) => {
  const table = new FakeTable();
  const h = harness();
  const registry = new Registry();
  const metrics = new PolicyMetrics(registry, () => table.counters());
  const agent = new PolicyAgent({ nodeName: 'n1', table, render: renderForNode, podCidrs: ['10.244.0.0/16'], metrics });
  h.controller(agent);
  h.source.put(ns('x'));
  h.source.put(ns('y'));
  h.source.put(pod('x', 'a', '10.244.1.10', 'n1', { pod: 'a' }));
  h.source.put(pod('y', 'b', '10.244.2.10', 'n2', { pod: 'b' }));
  h.source.put(denyAll('x'));
  h.source.syncKinds(['Pod', 'Namespace', 'NetworkPolicy', 'Node', 'AdminNetworkPolicy']);
  await h.clock.advance(10);
  t.same(table.scripts, [], 'BaselineAdminNetworkPolicy has not listed yet: nothing programmed');
  h.source.syncKinds(['BaselineAdminNetworkPolicy']);
  await h.clock.advance(1);
  t.equal(table.scripts.length, 1, 'one apply once everything listed');
  t.match(table.scripts[0], /10\.244\.1\.10/, 'the local pod x/a is in the table');
  t.equal(agent.last?.selectedPods, 1, 'x/a is governed (deny-all), y/b is on another node');
  h.source.put(pod('x', 'c', '10.244.1.11', 'n1', { pod: 'c' }));
  await h.clock.advance(1);
  t.equal(table.scripts.length, 2, 'a new local pod: applied again');
  t.match(table.scripts[1], /10\.244\.1\.11/);
  h.source.put(pod('y', 'b', '10.244.2.10', 'n2', { pod: 'b', extra: '1' }));
  await h.clock.advance(1);
  t.ok(table.scripts.length <= 3, 'a change that renders the same text may be skipped');
  const text = await registry.metrics();
  t.match(text, /^kdp_policy_sync_duration_seconds_count [1-9]/m);
  t.match(text, /^kdp_policy_rules [1-9]/m);
  t.match(text, /^kdp_policy_selected_pods 2$/m);
});

t.test('a failed apply is retried in full with backoff (1 s doubling)', async (t) => {
  const table = new FakeTable();
  const h = harness();
  const agent = new PolicyAgent({ nodeName: 'n1', table, render: renderForNode, podCidrs: ['10.244.0.0/16'] });
  h.controller(agent, { retryMinMs: 1000, retryMaxMs: 8000 });
  h.source.put(ns('x'));
  h.source.put(pod('x', 'a', '10.244.1.10', 'n1', { pod: 'a' }));
  table.failNext = 3;
  await h.source.start();
  const times = await attemptTimes(h, () => table.scripts.length + (3 - table.failNext), 10_000);
  t.same(
    times.slice(1).map((x, i) => Math.round((x - times[i]!) / 100) * 100),
    [1000, 2000, 4000],
    'retries 1 s, 2 s, 4 s apart',
  );
  t.equal(table.scripts.length, 1, 'then the table is applied');
});

t.test('a full reconcile re-applies an unchanged table only when it is gone', async (t) => {
  const table = new FakeTable();
  const h = harness();
  const agent = new PolicyAgent({ nodeName: 'n1', table, render: renderForNode, podCidrs: ['10.244.0.0/16'] });
  const c = h.controller(agent);
  h.source.put(ns('x'));
  h.source.put(pod('x', 'a', '10.244.1.10', 'n1', { pod: 'a' }));
  await h.source.start();
  await h.clock.advance(1);
  t.equal(table.scripts.length, 1);
  c.requestFull();
  await h.clock.advance(1);
  t.equal(table.scripts.length, 1, 'same text, table present: nothing applied (the counters keep counting)');
  await table.remove();
  c.requestFull();
  await h.clock.advance(1);
  t.equal(table.scripts.length, 2, 'the table was deleted behind our back: applied again');
});

t.test('drop counters are exported per policy at scrape time', async (t) => {
  const table = new FakeTable();
  table.counterList = [{ name: 'np-x-deny-all', packets: 12, bytes: 720, comment: 'NetworkPolicy x/deny-all' }];
  const registry = new Registry();
  new PolicyMetrics(registry, () => table.counters());
  t.match(
    await registry.metrics(),
    /^kdp_policy_drop_packets\{counter="np-x-deny-all",policy="NetworkPolicy x\/deny-all"\} 12$/m,
  );
});

t.test(
  'a compiler note (a port name the pod does not expose) is logged once while it stays, again when it comes back',
  async (t) => {
    const table = new FakeTable();
    const h = harness();
    const warnings: string[] = [];
    const log = { ...silentLogger, warn: (_o: object | string, msg?: string) => void warnings.push(msg ?? '') };
    const agent = new PolicyAgent({ nodeName: 'n1', table, render: renderForNode, podCidrs: ['10.244.0.0/16'], log });
    h.controller(agent);
    const ghost: NetworkPolicy = {
      ...denyAll('x'),
      meta: meta('x', 'ghost'),
      ingress: [{ peers: [], ports: [{ protocol: 'TCP', port: 'no-such-port' }] }],
    };
    h.source.put(ns('x'));
    h.source.put(pod('x', 'a', '10.244.1.10', 'n1', { pod: 'a' }));
    h.source.put(ghost);
    await h.source.start();
    await h.clock.advance(1);
    t.match(warnings, [/NetworkPolicy x\/ghost: .*no-such-port/], 'logged at the first sync');
    t.match(table.scripts.at(-1), /10\.244\.1\.10/, 'x/a is still programmed (isolated: the rule matches nothing)');
    const syncs = agent.syncs;
    h.source.put(pod('x', 'a', '10.244.1.10', 'n1', { pod: 'a', v: '2' }));
    await h.clock.advance(1);
    t.equal(agent.syncs, syncs + 1, 'another sync');
    t.equal(warnings.length, 1, 'not logged again');
    h.source.remove('NetworkPolicy', 'x/ghost');
    await h.clock.advance(1);
    h.source.put(ghost);
    await h.clock.advance(1);
    t.equal(warnings.length, 2, 'gone and back: logged again');
  },
);
