// The upstream NetworkPolicy e2e cases (src/policy/testing/netpol-cases.ts) as table tests of the evaluator: for
// every step of every case, every (from, to) pair of its pods on every probed port/protocol must get exactly the
// verdict upstream's reachability matrix expects.
import t from 'tap';
import { compilePolicies } from '../../../src/policy/compile.ts';
import { evaluate } from '../../../src/policy/evaluate.ts';
import { modelObjects, netpolCases } from '../../../src/policy/testing/netpol-cases.ts';
import type { CaseContext } from '../../../src/policy/testing/netpol-cases.ts';
import { inputOf, modelIP } from './fixtures.ts';

const ctx: CaseContext = { ns: { x: 'x', y: 'y', z: 'z' }, podIP: modelIP };
const cases = netpolCases(ctx);

t.test('every upstream case is ported (network_policy.go: 42 TCP, 3 UDP, 3 SCTP)', async (t) => {
  t.equal(cases.filter((c) => c.suite === 'TCP').length, 42);
  t.equal(cases.filter((c) => c.suite === 'UDP').length, 3);
  t.equal(cases.filter((c) => c.suite === 'SCTP').length, 3);
  t.equal(new Set(cases.map((c) => c.name)).size, cases.length, 'names are unique');
});

for (const c of cases) {
  t.test(c.name, async (t) => {
    for (const step of c.steps) {
      const input = inputOf([...modelObjects(c, ctx, step), ...step.policies]);
      t.equal(input.networkPolicies.length, step.policies.length, `${step.what}: every policy converts`);
      const compiled = compilePolicies(input, {});
      for (const probe of step.probes) {
        const wrong: string[] = [];
        for (const [from, row] of Object.entries(probe.expected))
          for (const [to, expected] of Object.entries(row)) {
            const got = evaluate(compiled, {
              src: modelIP(from),
              dst: modelIP(to),
              port: probe.port,
              proto: probe.protocol,
            });
            if ((got.verdict === 'allow') !== expected)
              wrong.push(`${from} -> ${to}: expected ${expected ? 'allow' : 'deny'}, got ${got.verdict}`);
          }
        t.same(wrong, [], `${step.what}: ${probe.protocol}/${probe.port} matrix`);
      }
    }
  });
}
