// The rendered policy tables load into a real kernel (a lab node's namespace): every step of every upstream netpol
// case and of the admin conformance case, one transaction after another on the same table (so each replaces the
// previous), and the golden scripts. The kernel is the judge of the syntax and of what the renderer must avoid
// (overlapping elements in a concatenated interval set are refused with "File exists").
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Lab } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';
import { compilePolicies } from '../../src/policy/compile.ts';
import { deltaTables } from '../../src/policy/delta.ts';
import { parseCounters, renderNft, renderTable } from '../../src/policy/nft.ts';
import {
  ADMIN_MODEL_PODS,
  adminCases,
  adminModelObjects,
  modelObjects,
  netpolCases,
} from '../../src/policy/testing/netpol-cases.ts';
import { inputOf, modelIP, podRaw, rangedPolicy } from '../unit/policy/fixtures.ts';

if (needsRoot(t)) {
  t.test('every rendered table loads, replacing the previous one', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const ns = lab.nodes[0]!.ns;
    const load = async (script: string) => lab.exec(ns, ['nft', '-f', '-'], { input: script, allowFailure: true });

    const scripts: [string, string][] = [];
    const ctx = { ns: { x: 'x', y: 'y', z: 'z' }, podIP: modelIP };
    for (const c of netpolCases(ctx))
      for (const s of c.steps) {
        const objs = modelObjects(c, ctx, s, { nodeOf: (p) => (p.startsWith('x/') ? 'node-1' : 'node-2') });
        const input = inputOf([...objs, ...s.policies]);
        for (const node of ['node-1', 'node-2'])
          scripts.push([
            `${c.name} / ${s.what} / ${node}`,
            renderNft(compilePolicies(input, { node }), { table: 'kdp-policy' }),
          ]);
      }
    const aip = (p: string) => `10.245.0.${ADMIN_MODEL_PODS.indexOf(p) + 1}`;
    for (const c of adminCases())
      for (const s of c.steps)
        scripts.push([
          `${c.name} / ${s.what}`,
          renderNft(compilePolicies(inputOf([...adminModelObjects(aip), ...s.policies])), { table: 'kdp-policy' }),
        ]);
    // overlapping rules of one pod: the union must be cut into disjoint elements or the kernel refuses it
    const np = (name: string, cidr: string, ports: unknown[]) => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name, namespace: 'a' },
      spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr } }], ports }] },
    });
    const overlap = inputOf([
      podRaw('a', 'p', ['10.0.0.1']),
      np('wide', '10.0.0.0/24', [{ port: 80, endPort: 90 }]),
      np('narrow', '10.0.0.5/32', [{ port: 85 }, { port: 100 }]),
      np('wider', '10.0.0.0/16', [{ port: 88 }]),
    ]);
    scripts.push(['overlapping rules', renderNft(compilePolicies(overlap), { table: 'kdp-policy' })]);
    for (const g of ['mixed-node-1.nft', 'mixed-node-2.nft'])
      scripts.push([g, readFileSync(new URL(`../golden/policy/${g}`, import.meta.url), 'utf8')]);

    const failed: string[] = [];
    for (const [what, script] of scripts) {
      const r = await load(script);
      if (r.code !== 0) failed.push(`${what}: ${r.stderr.split('\n').slice(0, 3).join(' ')}`);
    }
    t.same(failed, [], `${scripts.length} scripts load`);
    t.ok(scripts.length > 100);

    // the last one loaded is the golden node-2 table: its counters are there, at zero
    const listed = await lab.exec(ns, ['nft', 'list', 'table', 'inet', 'kdp-policy']);
    t.same([...parseCounters(listed.stdout).keys()].sort(), [
      'anp_guard',
      'banp_default',
      'np_db_ghost-port',
      'np_shop_web-in',
      'np_shop_web-out',
    ]);
    const tables = await lab.exec(ns, ['nft', 'list', 'tables']);
    t.equal((tables.stdout.match(/kdp-policy/g) ?? []).length, 1, 'one table, replaced each time');
  });
}

if (needsRoot(t)) {
  // what the agent sends after the first sync: the difference between two renderings (delta.ts). Applied to the
  // table of the first state, the kernel must hold exactly the table the second state renders (both listed as JSON,
  // set elements compared as sets): a policy's elements in a shared union and one address bucket, the first pod of
  // a shared union leaving (the next one declares the sets, the chains follow), and a re-cut of many ranges
  t.test('differences applied to the kernel give the table a full render gives', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const ns = lab.nodes[0]!.ns;
    const pod = (n: string, ip: string) => podRaw('a', n, [ip, `fd00:10:244:1::${ip.split('.')[3]}`]);
    const pods = [pod('p', '10.244.1.10'), pod('q', '10.244.1.11'), pod('r', '10.244.1.12')];
    // IPv6 peers as well (dual-stack pods, an IPv6 ipBlock with except on a port range): the ip6 hash and interval
    // sets through the same differences
    const v6 = (port: number, except: string) => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'v6', namespace: 'a' },
      spec: {
        podSelector: {},
        ingress: [
          {
            from: [{ podSelector: {} }, { ipBlock: { cidr: 'fd00:99::/48', except: [except] } }],
            ports: [{ port }, { protocol: 'UDP', port: 6000, endPort: 6100 }],
          },
        ],
      },
    });
    const policies = [...Array.from({ length: 12 }, (_, i) => rangedPolicy(i, 1000 + i)), v6(443, 'fd00:99:0:1::/64')];
    const states: [string, unknown[]][] = [
      ['12 policies, 3 pods sharing one union', [...pods, ...policies]],
      [
        'np-5: port and except changed, the IPv6 one too',
        [
          ...pods,
          ...policies.map((p, i) => (i === 5 ? rangedPolicy(5, 2005, 2) : i === 12 ? v6(8443, 'fd00:99:0:2::/64') : p)),
        ],
      ],
      ['the first pod of the union gone', [...pods.slice(1), ...policies]],
      [
        'np-7: 60 ranges instead of 1',
        [...pods.slice(1), ...policies.map((p, i) => (i === 7 ? rangedPolicy(7, 1007, 1, 60) : p))],
      ],
    ];
    const render = (objs: unknown[], table: string) =>
      renderTable(compilePolicies(inputOf(objs as never), { node: 'node-1' }), { table });
    const listing = async (table: string) => {
      const r = await lab.exec(ns, ['nft', '-j', 'list', 'table', 'inet', table]);
      const out: Record<string, string> = {};
      for (const o of (JSON.parse(r.stdout) as { nftables: Record<string, Record<string, unknown>>[] }).nftables) {
        const [kind, v] = Object.entries(o)[0]!;
        if (kind === 'metainfo' || kind === 'table') continue;
        const { table: _t, handle: _h, elem, ...rest } = v as Record<string, unknown> & { elem?: unknown[] };
        const id =
          kind === 'rule' ? `rule ${String(rest.chain)} ${JSON.stringify(rest.expr)}` : `${kind} ${String(rest.name)}`;
        out[id] = JSON.stringify({ ...rest, ...(elem ? { elem: elem.map((e) => JSON.stringify(e)).sort() } : {}) });
      }
      return out;
    };
    const first = render(states[0]![1], 'kdp-policy').script;
    t.match(first, /set \S+-x6 \{/, 'an IPv6 hash set');
    t.match(first, /set \S+-p6(-\d)? \{/, 'an IPv6 interval set');
    for (let i = 1; i < states.length; i++) {
      const [was, before] = states[i - 1]!;
      const [what, after] = states[i]!;
      await lab.exec(ns, ['nft', '-f', '-'], { input: render(before, 'kdp-policy').script });
      const delta = deltaTables(render(before, 'kdp-policy').parsed, render(after, 'kdp-policy').parsed);
      t.ok(delta, `${was} -> ${what}: a difference`);
      await lab.exec(ns, ['nft', '-f', '-'], { input: delta! });
      await lab.exec(ns, ['nft', '-f', '-'], { input: render(after, 'kdp-policy-b').script });
      t.same(await listing('kdp-policy'), await listing('kdp-policy-b'), `${was} -> ${what}: the kernel's table`);
      await lab.exec(ns, ['nft', 'delete', 'table', 'inet', 'kdp-policy-b']);
    }
  });
}
