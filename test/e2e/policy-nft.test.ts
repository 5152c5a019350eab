// The rendered policy tables load into a real kernel (a lab node's namespace): every step of every upstream netpol
// case and of the admin conformance case, one transaction after another on the same table (so each replaces the
// previous), and the golden scripts. The kernel is the judge of the syntax and of what the renderer must avoid
// (overlapping elements in a concatenated interval set are refused with "File exists").
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Lab } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';
import { compilePolicies } from '../../src/policy/compile.ts';
import { parseCounters, renderNft } from '../../src/policy/nft.ts';
import {
  ADMIN_MODEL_PODS,
  adminCases,
  adminModelObjects,
  modelObjects,
  netpolCases,
} from '../../src/policy/testing/netpol-cases.ts';
import { inputOf, modelIP, podRaw } from '../unit/policy/fixtures.ts';

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
