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

// The It() names of kubernetes test/e2e/network/netpol/network_policy.go (Describe "NetworkPolicy between server and
// client"), in upstream's order; the UDP and SCTP contexts repeat the first three of the loop below.
const UPSTREAM_TCP = [
  "should support a 'default-deny-ingress' policy",
  "should support a 'default-deny-all' policy",
  'should enforce policy to allow traffic from pods within server namespace based on PodSelector',
  'should enforce policy to allow ingress traffic for a target',
  'should enforce policy to allow ingress traffic from pods in all namespaces',
  'should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector',
  'should enforce policy based on PodSelector with MatchExpressions',
  'should enforce policy based on NamespaceSelector with MatchExpressions',
  'should enforce policy based on PodSelector or NamespaceSelector',
  'should enforce policy based on PodSelector and NamespaceSelector',
  'should enforce policy based on Multiple PodSelectors and NamespaceSelectors',
  'should enforce policy based on any PodSelectors',
  'should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector',
  'should enforce policy based on Ports',
  'should enforce multiple, stacked policies with overlapping podSelectors',
  'should support allow-all policy',
  'should allow ingress access on one named port',
  'should allow ingress access from namespace on one named port',
  'should allow egress access on one named port',
  'should enforce updated policy',
  'should allow ingress access from updated namespace',
  'should allow ingress access from updated pod',
  'should deny ingress from pods on other namespaces',
  'should deny ingress access to updated pod',
  'should deny egress from pods based on PodSelector',
  'should deny egress from all pods in a namespace',
  'should work with Ingress, Egress specified together',
  'should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)',
  'should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector',
  'should enforce ingress policy allowing any port traffic to a server on a specific protocol',
  'should enforce multiple ingress policies with ingress allow-all policy taking precedence',
  'should enforce multiple egress policies with egress allow-all policy taking precedence',
  'should stop enforcing policies after they are deleted',
  'should allow egress access to server in CIDR block',
  'should enforce except clause while egress access to server in CIDR block',
  'should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed',
  'should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector',
  "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
  "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
  'should not allow access by TCP when a policy specifies only UDP',
  'should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label',
  'should enforce policy based on NamespaceSelector with MatchExpressions using default ns label',
];
const UPSTREAM_UDP_SCTP = [
  "should support a 'default-deny-ingress' policy",
  'should enforce policy based on Ports',
  'should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector',
];

t.test('audit: every upstream It() has a case of the same name, and no case is invented', async (t) => {
  t.same(
    cases
      .filter((c) => c.suite === 'TCP')
      .map((c) => c.name)
      .sort(),
    [...UPSTREAM_TCP].sort(),
  );
  for (const suite of ['UDP', 'SCTP'] as const)
    t.same(
      cases
        .filter((c) => c.suite === suite)
        .map((c) => c.name.replace(` [${suite}]`, ''))
        .sort(),
      [...UPSTREAM_UDP_SCTP].sort(),
      suite,
    );
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
