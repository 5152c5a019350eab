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
const set = (name: string, elements: string[]) =>
  [
    `\tset ${name} {`,
    '\t\ttype ipv4_addr',
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
