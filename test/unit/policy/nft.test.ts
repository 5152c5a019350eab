// The nft renderer: golden files (exact: rule order is semantics), one transaction that replaces the table, disjoint
// elements in concatenated interval sets (the kernel refuses overlaps), named counters per policy.
import t from 'tap';
import type { Test } from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { compilePolicies } from '../../../src/policy/compile.ts';
import { counterName, parseCounters, renderNft } from '../../../src/policy/nft.ts';
import { inputOf, MIXED, podRaw } from './fixtures.ts';

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
  const np = (name: string, from: unknown[], ports: unknown[]) => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: 'a' },
    spec: { podSelector: {}, ingress: [{ from, ports }] },
  });
  const s = renderNft(
    compilePolicies(
      inputOf([
        podRaw('a', 'p', ['10.0.0.1']),
        np('wide', [{ ipBlock: { cidr: '10.0.0.0/24' } }], [{ port: 80, endPort: 90 }]),
        np('narrow', [{ ipBlock: { cidr: '10.0.0.5/32' } }], [{ port: 85 }, { port: 100 }]),
      ]),
    ),
    { table: 't' },
  );
  const els = [...s.matchAll(/^\t\t\t(10\.[^,]+ \. [^,]+),$/gm)].map((m) => m[1]);
  t.same(els, [
    '10.0.0.0-10.0.0.4 . tcp . 80-90',
    '10.0.0.5 . tcp . 80-90',
    '10.0.0.5 . tcp . 100',
    '10.0.0.6-10.0.0.255 . tcp . 80-90',
  ]);
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
