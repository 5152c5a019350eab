// The nft renderer: golden files (exact: rule order is semantics), one transaction that replaces the table, disjoint
// elements in concatenated interval sets (the kernel refuses overlaps), named counters per policy.
import t from 'tap';
import type { Test } from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { compilePolicies } from '../../../src/policy/compile.ts';
import { deltaTables } from '../../../src/policy/delta.ts';
import { counterName, parseCounters, renderNft, renderTable } from '../../../src/policy/nft.ts';
import { inputOf, MIXED, podRaw, rangedPolicy } from './fixtures.ts';

function golden(t: Test, name: string, actual: string): void {
  const path = new URL(`../../golden/policy/${name}`, import.meta.url).pathname;
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) {
    if (process.env.UPDATE_GOLDEN !== '1') t.fail(`golden file ${name} missing; wrote it (run again, review it)`);
    writeFileSync(path, actual);
    return;
  }
  t.equal(actual, readFileSync(path, 'utf8'), `matches golden ${name}`);
}

t.test('golden: node-1 and node-2 of the mixed cluster, and the compiled structure', async (t) => {
  for (const node of ['node-1', 'node-2']) {
    const compiled = compilePolicies(inputOf(MIXED), { node });
    golden(t, `mixed-${node}.nft`, renderNft(compiled, { table: 'kdp-policy' }));
    golden(t, `mixed-${node}.json`, JSON.stringify(compiled, null, 2) + '\n');
  }
});

t.test('the script replaces the table in one transaction and starts with the stateful accept', async (t) => {
  const s = renderNft(compilePolicies(inputOf(MIXED), { node: 'node-1' }), { table: 'kdp-policy' });
  const lines = s.split('\n');
  t.same(lines.slice(0, 3), ['table inet kdp-policy {}', 'delete table inet kdp-policy', 'table inet kdp-policy {']);
  const fwd = s.slice(s.indexOf('chain forward {'));
  t.match(fwd, /policy accept;\n\t\tct state established,related accept\n\t\tip saddr vmap @egress4/);
  t.equal((s.match(/hook forward/g) ?? []).length, 1, 'one base chain');
});

t.test('overlapping rules become disjoint elements', async (t) => {
  const np = (name: string, ingress: { from: unknown[]; ports: unknown[] }[]) => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: 'a' },
    spec: { podSelector: {}, ingress },
  });
  const s = renderNft(
    compilePolicies(
      inputOf([
        podRaw('a', 'p', ['10.0.0.1']),
        // all within 10.0.0.0/16: one interval set (the buckets go by address block)
        np('wide', [
          { from: [{ ipBlock: { cidr: '10.0.0.0/24' } }], ports: [{ port: 80, endPort: 90 }] },
          { from: [{ ipBlock: { cidr: '10.0.0.4/31' } }], ports: [{ port: 85 }, { port: 100 }] },
        ]),
        np('single', [{ from: [{ ipBlock: { cidr: '10.0.0.9/32' } }], ports: [{ port: 100 }] }]),
      ]),
    ),
    { table: 't' },
  );
  const elementsOf = (set: string) =>
    [...(new RegExp(`\tset ${set} \\{\n[^]*?\n\t\\}`).exec(s)?.[0] ?? '').matchAll(/^\t\t\t(.+),$/gm)].map((m) => m[1]);
  const [, tag, bucket] = /set (pod-\w+-in-np-allow)-p4(-\d)? \{/.exec(s)!;
  // address ranges and port ranges: the interval set, cut into disjoint elements (the kernel refuses overlaps)
  t.same(elementsOf(`${tag}-p4${bucket ?? ''}`), [
    '10.0.0.0/30 . tcp . 80-90',
    '10.0.0.4/31 . tcp . 80-90',
    '10.0.0.4/31 . tcp . 100',
    '10.0.0.6-10.0.0.255 . tcp . 80-90',
  ]);
  // one address and one port: the hash set (it may overlap the interval set: either lookup allows)
  const x =
    /\tset (pod-\w+-in-np-allow-x4(?:-\d)?) \{\n\t\ttype ipv4_addr \. inet_proto \. inet_service\n\t\telements/.exec(s);
  t.ok(x, 'a hash set (no interval flag)');
  t.same(elementsOf(x![1]!), ['10.0.0.9 . tcp . 100']);
});

t.test('counters: one per policy, names the metrics can read back', async (t) => {
  t.equal(counterName('NetworkPolicy', 'shop/web-in'), 'np_shop_web-in');
  t.equal(counterName('AdminNetworkPolicy', 'guard'), 'anp_guard');
  t.equal(counterName('BaselineAdminNetworkPolicy', 'default'), 'banp_default');
  const listed =
    'table inet kdp-policy {\n\tcounter np_shop_web-in {\n\t\tpackets 3 bytes 180\n\t}\n\tcounter anp_guard {\n\t\tpackets 0 bytes 0\n\t}\n}';
  t.same(
    [...parseCounters(listed)],
    [
      ['np_shop_web-in', 3],
      ['anp_guard', 0],
    ],
  );
});

t.test(
  'one policy changed: only its elements change (hash set and its bucket), no chain or set re-created',
  async (t) => {
    const pods = [
      podRaw('a', 'p', ['10.244.1.10']),
      podRaw('a', 'q', ['10.244.1.11']),
      podRaw('a', 'r', ['10.244.2.12']),
    ];
    const policies = Array.from({ length: 12 }, (_, i) => rangedPolicy(i, 1000 + i));
    const render = (ps: readonly unknown[]) =>
      renderTable(compilePolicies(inputOf([...pods, ...ps] as never), { node: 'node-1' }), { table: 'kdp-policy' });
    const before = render(policies);
    const sets = [...before.parsed.items.values()].filter((i) => i.kind === 'set').map((i) => i.name);
    t.ok(
      sets.some((n) => /-p4-\d$/.test(n)),
      `the interval elements are split into buckets (${sets.filter((n) => /-in-np-allow/.test(n)).join(' ')})`,
    );
    // p, q and r are selected by the same policies: one group of union sets, declared once, looked up by each chain
    t.equal(sets.filter((n) => /-x4$/.test(n)).length, 1, 'one hash set for the three pods');
    const chains = [...before.parsed.items.values()].filter((i) => i.kind === 'chain' && /-in-np$/.test(i.name));
    t.equal(chains.length, 3, 'a chain per pod');
    const x4 = sets.find((n) => /-x4$/.test(n))!;
    t.ok(
      chains.every((c) => c.text.includes(`@${x4} return`)),
      'every chain looks up the shared set',
    );
    const after = render(policies.map((p, i) => (i === 5 ? rangedPolicy(5, 2005, 2) : p)));
    const delta = deltaTables(before.parsed, after.parsed)!;
    t.ok(delta, 'an element-wise difference');
    t.notMatch(delta, /flush chain|delete set|add rule|^table /m, 'no chain flushed, no set re-created');
    const touched = new Set([...delta.matchAll(/^(?:add|delete) element inet kdp-policy (\S+) /gm)].map((m) => m[1]));
    const intervals = [...touched].filter((n) => /-p4(-\d)?$/.test(n!));
    t.ok(
      [...touched].some((n) => /-x4$/.test(n!)),
      'the hash set of pod peers on one port changed (port 1005 -> 2005)',
    );
    // the ranges the change names are all in 10.5.0.0/16: one address bucket's interval set
    t.equal(new Set(intervals.map((n) => n!.replace(/^pod-\w+-/, ''))).size, 1, `one bucket: ${intervals.join(' ')}`);
    // the difference applied to the old elements gives the new ones
    for (const name of touched) {
      const was = new Set(before.parsed.items.get(`set ${name}`)!.elements);
      for (const m of delta.matchAll(new RegExp(`^(add|delete) element inet kdp-policy ${name} \\{ (.*) \\}$`, 'gm')))
        for (const e of m[2]!.split(', ')) {
          if (m[1] === 'add') was.add(e);
          else was.delete(e);
        }
      t.same([...was].sort(), [...after.parsed.items.get(`set ${name}`)!.elements].sort(), `${name} after the delta`);
    }
  },
);
