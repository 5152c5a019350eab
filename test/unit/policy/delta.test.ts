// The policy table's difference transaction (src/policy/delta.ts) on renderNft's own output: what it flushes,
// deletes and adds, in dependency order, and when it gives up (then the agent replaces the whole table). That
// the kernel ends up with exactly the full script's table is checked for real in test/e2e/netpol-agent.test.ts.
import t from 'tap';
import { deltaScript, parseTable } from '../../../src/policy/delta.ts';
import { oneLine } from '../../../src/policy/agent.ts';

const table = (items: string[], comment = 'kdp policy on n1') =>
  [
    'table inet kdp-policy {}',
    'delete table inet kdp-policy',
    'table inet kdp-policy {',
    `\tcomment "${comment}"`,
    ...items,
    '}',
    '',
  ].join('\n');
const set = (name: string, elements: string[], type = 'ipv4_addr') =>
  [
    `\tset ${name} {`,
    `\t\ttype ${type}`,
    '\t\tflags interval',
    '\t\telements = {',
    ...elements.map((e) => `\t\t\t${e},`),
    '\t\t}',
    '\t}',
  ].join('\n');
const map = (name: string, elements: string[]) =>
  [
    `\tmap ${name} {`,
    '\t\ttype ipv4_addr : verdict',
    ...(elements.length ? ['\t\telements = {', ...elements.map((e) => `\t\t\t${e},`), '\t\t}'] : []),
    '\t}',
  ].join('\n');
const chain = (name: string, rules: string[]) =>
  [`\tchain ${name} {`, ...rules.map((r) => `\t\t${r}`), '\t}'].join('\n');
const counter = (name: string) => `\tcounter ${name} {\n\t}`;
const fwd = chain('forward', [
  'type filter hook forward priority filter; policy accept;',
  'ct state established,related accept',
  'ip daddr vmap @ingress4',
]);

const A = table([
  counter('np_x_a'),
  set('p1-in', ['10.0.0.1', '10.0.1.0/24']),
  map('ingress4', ['198.19.1.10 : jump p1']),
  chain('p1', ['ip saddr @p1-in return', 'counter name np_x_a drop']),
  fwd,
]);

t.test('parses the table block into objects', async (t) => {
  const p = parseTable(A)!;
  t.equal(p.table, 'kdp-policy');
  t.same(p.order, ['counter np_x_a', 'set p1-in', 'map ingress4', 'chain p1', 'chain forward']);
  t.same(p.items.get('set p1-in')!.elements, ['10.0.0.1', '10.0.1.0/24']);
  t.same(p.items.get('map ingress4')!.elements, ['198.19.1.10 : jump p1']);
  t.equal(parseTable('add rule inet x y accept\n'), undefined, 'not the layout: undefined');
});

t.test('same text: nothing to send', async (t) => {
  t.equal(deltaScript(A, A), '');
});

t.test('set elements: only what changed, deleted before added', async (t) => {
  const B = A.replace('\t\t\t10.0.0.1,\n', '\t\t\t10.0.0.2,\n');
  t.equal(
    deltaScript(A, B),
    ['delete element inet kdp-policy p1-in { 10.0.0.1 }', 'add element inet kdp-policy p1-in { 10.0.0.2 }', ''].join(
      '\n',
    ),
  );
});

t.test('a new pod: new set, chain and counter in one block, its map element after the block', async (t) => {
  const B = table([
    counter('np_x_a'),
    counter('np_x_b'),
    set('p1-in', ['10.0.0.1', '10.0.1.0/24']),
    set('p2-in', ['10.0.0.9']),
    map('ingress4', ['198.19.1.10 : jump p1', '198.19.1.11 : jump p2']),
    chain('p1', ['ip saddr @p1-in return', 'counter name np_x_a drop']),
    chain('p2', ['ip saddr @p2-in return', 'counter name np_x_b drop']),
    fwd,
  ]);
  const d = deltaScript(A, B)!;
  const lines = d.trim().split('\n');
  t.equal(lines[0], 'table inet kdp-policy {');
  t.ok(lines.includes('\tchain p2 {') && lines.includes('\tset p2-in {') && lines.includes('\tcounter np_x_b {'));
  t.equal(
    lines.at(-1),
    'add element inet kdp-policy ingress4 { 198.19.1.11 : jump p2 }',
    'the jump once the chain exists',
  );
  t.notOk(/flush|delete/.test(d), 'nothing flushed or deleted');
});

t.test('a pod gone: its map element, then its chain, then its set and counter', async (t) => {
  const B = table([map('ingress4', []), fwd]);
  t.equal(
    deltaScript(A, B),
    [
      'flush chain inet kdp-policy p1',
      'delete element inet kdp-policy ingress4 { 198.19.1.10 }',
      'delete chain inet kdp-policy p1',
      'delete set inet kdp-policy p1-in',
      'delete counter inet kdp-policy np_x_a',
      '',
    ].join('\n'),
  );
});

t.test('a pod gone whose chains goto each other: every gone chain is flushed before any is deleted', async (t) => {
  // regression (netpol-admin e2e, upstream conformance cases in a row): the old order deleted `p2-np` while `p2`
  // still held `goto p2-np`, and the kernel refused the whole transaction with EBUSY
  const withAnp = table([
    map('ingress4', ['198.19.1.10 : jump p2']),
    chain('p2-np', ['return']),
    chain('p2', ['ip saddr 10.0.0.1 drop', 'goto p2-np']),
    fwd,
  ]);
  const lines = deltaScript(withAnp, table([map('ingress4', []), fwd]))!.split('\n');
  const lastFlush = Math.max(
    lines.indexOf('flush chain inet kdp-policy p2'),
    lines.indexOf('flush chain inet kdp-policy p2-np'),
  );
  const firstDelete = lines.findIndex((l) => l.startsWith('delete chain'));
  t.ok(lines.includes('flush chain inet kdp-policy p2') && lines.includes('flush chain inet kdp-policy p2-np'));
  t.ok(firstDelete > lastFlush, 'both flushed before the first chain is deleted');
});

t.test('a changed chain is flushed and refilled; a map verdict change is delete + add of the key', async (t) => {
  const B = A.replace('counter name np_x_a drop', 'counter name np_x_a reject').replace(
    '198.19.1.10 : jump p1',
    '198.19.1.10 : goto p1',
  );
  const d = deltaScript(A, B)!.trim().split('\n');
  t.equal(d[0], 'flush chain inet kdp-policy p1');
  t.equal(d[1], 'delete element inet kdp-policy ingress4 { 198.19.1.10 }');
  t.same(d.slice(2, 4), ['table inet kdp-policy {', '\tchain p1 {']);
  t.equal(d.at(-1), 'add element inet kdp-policy ingress4 { 198.19.1.10 : goto p1 }');
});

t.test('what it cannot express: undefined (the agent replaces the table)', async (t) => {
  t.equal(deltaScript(A, A.replace('kdp policy on n1', 'kdp policy on n2')), undefined, 'table comment');
  t.equal(deltaScript(A, A.replace('flags interval', 'flags constant')), undefined, 'set flags');
  t.equal(deltaScript(A, A.replace('policy accept;', 'policy drop;')), undefined, 'hook chain policy');
  t.equal(deltaScript(A, A.replace(/kdp-policy/g, 'other')), undefined, 'another table');
});

t.test('one line for nft -i: no separator after { or ,', async (t) => {
  t.equal(
    oneLine(
      'table inet t {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = {\n\t\t\t1.2.3.4,\n\t\t\t5.6.7.8,\n\t\t}\n\t}\n}\n',
    ),
    'table inet t { set s { type ipv4_addr; elements = { 1.2.3.4, 5.6.7.8, }; }; }',
  );
});

t.test(
  'a concatenated interval set with many changed elements is re-created, its rules flushed and re-added',
  async (t) => {
    const pset = (name: string, elements: string[]) => set(name, elements, 'ipv4_addr . inet_proto . inet_service');
    const els = (port: number, n: number) =>
      Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24 . tcp . ${port}`);
    const p1 = chain('p1', ['ip saddr . meta l4proto . th dport @p1-p4 return', 'counter name np_x_a drop']);
    const mk = (elements: string[]) => table([counter('np_x_a'), pset('p1-p4', elements), p1, fwd]);
    // a few changed elements: element-wise
    const few = deltaScript(mk(els(80, 400)), mk([...els(80, 399), '10.9.99.0/24 . tcp . 80']))!;
    t.match(few, /^delete element .* p1-p4 \{ 10\.1\.143\.0\/24 \. tcp \. 80 \}$/m);
    t.notMatch(few, /delete set/);
    // a small set: every element changed (40) is still cheaper element by element than the chains re-written
    const small = deltaScript(mk(els(80, 20)), mk(els(81, 20)))!;
    t.notMatch(small, /delete set|flush chain/);
    t.match(small, /^add element .* p1-p4 \{ 10\.0\.0\.0\/24 \. tcp \. 81, /m);
    // past 16 + 10,000 / size changed elements (41 for 400): the set is deleted and declared again; the chain using
    // it is flushed before and refilled after
    const many = deltaScript(mk(els(80, 400)), mk(els(81, 400)))!
      .trim()
      .split('\n');
    t.same(many.slice(0, 3), [
      'flush chain inet kdp-policy p1',
      'delete set inet kdp-policy p1-p4',
      'table inet kdp-policy {',
    ]);
    t.equal(many[3], '\tset p1-p4 {', 'the set first in the block, then the chain');
    t.ok(many.indexOf('\tchain p1 {') > many.indexOf('\tset p1-p4 {'));
    t.notOk(
      many.some((l) => /element/.test(l.split(' ')[1] ?? '')),
      'no element commands',
    );
    // an address-only interval set (not concatenated) keeps element-wise updates
    const plain = deltaScript(
      table([
        set(
          'p1-in',
          els(80, 20).map((e) => e.split(' ')[0]!),
        ),
      ]),
      table([
        set(
          'p1-in',
          els(80, 20).map((e) => e.split(' ')[0]!.replace('10.0.', '10.1.')),
        ),
      ]),
    )!;
    t.notMatch(plain, /delete set/);
  },
);
