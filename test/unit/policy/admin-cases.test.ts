// The network-policy-api conformance integration test (ANP Deny / Pass -> NetworkPolicy / Pass -> BANP) against
// the evaluator, with upstream's probes and expectations (src/policy/testing/netpol-cases.ts adminCases).
import t from 'tap';
import { compilePolicies } from '../../../src/policy/compile.ts';
import { evaluate } from '../../../src/policy/evaluate.ts';
import { ADMIN_MODEL_PODS, adminCases, adminModelObjects } from '../../../src/policy/testing/netpol-cases.ts';
import { inputOf } from './fixtures.ts';

const ip = (pod: string): string => `10.245.0.${ADMIN_MODEL_PODS.indexOf(pod) + 1}`;

for (const c of adminCases()) {
  t.test(c.name, async (t) => {
    for (const step of c.steps) {
      const input = inputOf([...adminModelObjects(ip), ...step.policies]);
      t.equal(
        input.networkPolicies.length + input.adminNetworkPolicies.length + input.baselineAdminNetworkPolicies.length,
        step.policies.length,
        `${step.what}: every policy converts`,
      );
      const compiled = compilePolicies(input);
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

t.test(
  'the pre-0.1.5 peer form `namespaces: {namespaceSelector}` selects those namespaces, not every one',
  async (t) => {
    const old = {
      apiVersion: 'policy.networking.k8s.io/v1alpha1',
      kind: 'AdminNetworkPolicy',
      metadata: { name: 'old-form' },
      spec: {
        priority: 1,
        subject: { namespaces: { matchLabels: { 'conformance-house': 'gryffindor' } } },
        ingress: [
          {
            name: 'deny-slytherin',
            action: 'Deny',
            from: [{ namespaces: { namespaceSelector: { matchLabels: { 'conformance-house': 'slytherin' } } } }],
          },
        ],
      },
    };
    const compiled = compilePolicies(inputOf([...adminModelObjects(ip), old]));
    const G = 'network-policy-conformance-gryffindor/harry-potter-0';
    t.equal(
      evaluate(compiled, {
        src: ip('network-policy-conformance-slytherin/draco-malfoy-0'),
        dst: ip(G),
        port: 80,
        proto: 'TCP',
      }).verdict,
      'deny',
    );
    t.equal(
      evaluate(compiled, {
        src: ip('network-policy-conformance-hufflepuff/cedric-diggory-0'),
        dst: ip(G),
        port: 80,
        proto: 'TCP',
      }).verdict,
      'allow',
    );
  },
);
