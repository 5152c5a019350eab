// The network-policy-api conformance tests (standard profile + NamedPort, ANP and BANP; src/policy/testing/admin-cases.ts)
// against the compiler + evaluator: every upstream subtest's policies and PokeServer expectation, in order.
import t from 'tap';
import { compilePolicies } from '../../../src/policy/compile.ts';
import { evaluate } from '../../../src/policy/evaluate.ts';
import { renderNft } from '../../../src/policy/nft.ts';
import { CONFORMANCE_TESTS, adminConformanceCases } from '../../../src/policy/testing/admin-cases.ts';
import { ADMIN_MODEL_PODS, adminModelObjects } from '../../../src/policy/testing/netpol-cases.ts';
import { inputOf } from './fixtures.ts';

const ip = (pod: string): string => {
  const i = ADMIN_MODEL_PODS.indexOf(pod);
  if (i < 0) throw new Error(`unknown pod ${pod}`);
  return `10.245.0.${i + 1}`;
};

const cases = adminConformanceCases(ip);

t.test(
  'every upstream standard-profile ANP/BANP test and the NamedPort ones are ported, each subtest with its probes',
  async (t) => {
    t.equal(cases.length, 22);
    t.equal(CONFORMANCE_TESTS.filter((c) => c.profile === 'standard').length, 18, 'the standard profile: all of it');
    t.same(
      cases.map((c) => c.name),
      CONFORMANCE_TESTS.map((c) => c.name),
    );
    t.equal(
      cases.reduce((n, c) => n + c.steps.reduce((m, s) => m + s.probes.length, 0), 0),
      280,
      'every PokeServer call of the upstream files',
    );
    for (const c of cases) for (const s of c.steps) t.ok(s.probes.length > 0, `${c.name}: ${s.what} probes something`);
    // both outcomes occur, so a constant verdict cannot pass
    const all = cases.flatMap((c) => c.steps.flatMap((s) => s.probes));
    t.ok(all.some((p) => p.connected) && all.some((p) => !p.connected));
  },
);

for (const c of cases) {
  t.test(c.name, async (t) => {
    for (const step of c.steps) {
      const input = inputOf([...adminModelObjects(ip), ...step.policies]);
      t.equal(
        input.networkPolicies.length + input.adminNetworkPolicies.length + input.baselineAdminNetworkPolicies.length,
        step.policies.length,
        `${step.what}: every policy converts`,
      );
      const compiled = compilePolicies(input);
      t.match(renderNft(compiled, { table: 'kdp-policy' }), /table inet kdp-policy/, `${step.what}: renders`);
      for (const p of step.probes) {
        const got = evaluate(compiled, { src: ip(p.from), dst: ip(p.to), port: p.port, proto: p.protocol });
        t.equal(
          got.verdict,
          p.connected ? 'allow' : 'deny',
          `${step.what}: ${p.from} -> ${p.to} ${p.protocol}/${p.port}`,
        );
      }
    }
  });
}
