// Conversion of NetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy: the API's defaults, and every
// object the API server (or the v1alpha1 CRD's validation) would reject is refused with a reason, so it is
// skipped at the edge and neither opens nor blocks anything.
import t from 'tap';
import {
  convertAdminNetworkPolicy,
  convertAny,
  convertBaselineAdminNetworkPolicy,
  convertNetworkPolicy,
} from '../../../src/k8s/convert.ts';
import type { Raw } from '../../../src/k8s/convert.ts';

const np = (spec: Raw): Raw => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'p', namespace: 'x' },
  spec,
});
const anp = (spec: Raw, name = 'a'): Raw => ({
  apiVersion: 'policy.networking.k8s.io/v1alpha1',
  kind: 'AdminNetworkPolicy',
  metadata: { name },
  spec: { priority: 10, subject: { namespaces: {} }, ...spec },
});
const banp = (spec: Raw, name = 'default'): Raw => ({
  apiVersion: 'policy.networking.k8s.io/v1alpha1',
  kind: 'BaselineAdminNetworkPolicy',
  metadata: { name },
  spec: { subject: { namespaces: {} }, ...spec },
});

t.test('NetworkPolicy defaults: policyTypes, protocol TCP, string ports', async (t) => {
  const r = convertNetworkPolicy(np({ podSelector: {}, ingress: [{ ports: [{ port: '80' }, { port: 'http' }] }] }));
  t.ok(r.ok);
  if (!r.ok) return;
  t.same(r.value.policyTypes, ['Ingress'], 'no egress rules: Ingress only');
  t.same(r.value.ingress[0]!.ports, [
    { protocol: 'TCP', port: 80 },
    { protocol: 'TCP', port: 'http' },
  ]);
  const e = convertNetworkPolicy(np({ podSelector: {}, egress: [{}] }));
  t.same(e.ok && e.value.policyTypes, ['Ingress', 'Egress'], 'egress rules present: both');
  const peers = convertNetworkPolicy(
    np({ podSelector: {}, ingress: [{ from: [{ podSelector: {}, namespaceSelector: { matchLabels: { a: 'b' } } }] }] }),
  );
  t.same(peers.ok && peers.value.ingress[0]!.peers[0], {
    podSelector: { matchLabels: {}, matchExpressions: [] },
    namespaceSelector: { matchLabels: { a: 'b' }, matchExpressions: [] },
  });
});

t.test('invalid NetworkPolicies are rejected with the reason', async (t) => {
  const cases: [string, Raw, RegExp][] = [
    ['bad CIDR', np({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] }), /is not a CIDR/],
    [
      'except outside the cidr',
      np({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }] }),
      /not strictly within 10.0.0.0\/16/,
    ],
    [
      'except equal to the cidr',
      np({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.0.0/16'] } }] }] }),
      /not strictly within/,
    ],
    [
      'except of the other family',
      np({ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['fd00::/64'] } }] }] }),
      /not strictly within/,
    ],
    [
      'endPort below port',
      np({ podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }),
      /endPort 80 is below port 90/,
    ],
    [
      'endPort with a named port',
      np({ podSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 80 }] }] }),
      /needs a numeric port/,
    ],
    [
      'unknown protocol',
      np({ podSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP', port: 1 }] }] }),
      /"ICMP" is not TCP, UDP or SCTP/,
    ],
    ['port out of range', np({ podSelector: {}, ingress: [{ ports: [{ port: 70000 }] }] }), /out of range/],
    ['bad port name', np({ podSelector: {}, ingress: [{ ports: [{ port: 'Not_A_Name' }] }] }), /IANA_SVC_NAME/],
    [
      'ipBlock with a selector',
      np({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] }),
      /cannot be combined/,
    ],
    [
      'empty peer',
      np({ podSelector: {}, ingress: [{ from: [{}] }] }),
      /needs podSelector, namespaceSelector or ipBlock/,
    ],
    ['bad policyType', np({ podSelector: {}, policyTypes: ['Both'] }), /policyTypes\[0\]/],
    [
      'In without values',
      np({ podSelector: { matchExpressions: [{ key: 'a', operator: 'In', values: [] }] } }),
      /values must be non-empty/,
    ],
    [
      'Exists with values',
      np({ podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }),
      /values must be empty/,
    ],
    [
      'unknown operator',
      np({ podSelector: { matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] } }),
      /operator "Gt"/,
    ],
  ];
  for (const [what, raw, reason] of cases) {
    const r = convertNetworkPolicy(raw);
    t.notOk(r.ok, what);
    if (!r.ok) t.match(r.reason, reason, what);
  }
});

t.test('AdminNetworkPolicy and BaselineAdminNetworkPolicy: accepted forms', async (t) => {
  const r = convertAdminNetworkPolicy(
    anp({
      subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'db' } } } },
      egress: [
        {
          name: 'e',
          action: 'Pass',
          to: [{ networks: ['10.0.0.0/8'] }, { nodes: {} }, { namespaces: { matchLabels: { a: 'b' } } }],
          ports: [
            { portNumber: { port: 53, protocol: 'UDP' } },
            { namedPort: 'dns' },
            { portRange: { start: 1, end: 9 } },
          ],
        },
      ],
    }),
  );
  t.ok(r.ok);
  if (!r.ok) return;
  t.same(r.value.egress[0]!.ports, [
    { protocol: 'UDP', port: 53 },
    { port: 'dns' },
    { protocol: 'TCP', port: 1, endPort: 9 },
  ]);
  t.same(r.value.egress[0]!.peers[2], {
    pods: { namespaceSelector: { matchLabels: { a: 'b' }, matchExpressions: [] } },
  });
  const b = convertBaselineAdminNetworkPolicy(banp({ ingress: [{ action: 'Deny', from: [{ namespaces: {} }] }] }));
  t.ok(b.ok && b.value.ingress[0]!.name === 'ingress[0]', 'an unnamed rule is named by its place');
  const any = convertAny(anp({}));
  t.ok(any.ok && any.value[0]!.kind === 'AdminNetworkPolicy', 'by kind and apiVersion');
});

t.test('invalid admin policies are rejected with the reason', async (t) => {
  const rule = (x: Raw): Raw => ({ name: 'r', action: 'Deny', from: [{ namespaces: {} }], ...x });
  const cases: [string, Raw, RegExp, 'anp' | 'banp'][] = [
    ['priority above 1000', anp({ priority: 1001 }), /priority 1001 is out of range/, 'anp'],
    ['no priority', anp({ priority: null }), /priority is required/, 'anp'],
    [
      'subject with both',
      anp({ subject: { namespaces: {}, pods: { namespaceSelector: {}, podSelector: {} } } }),
      /exactly one of namespaces or pods/,
      'anp',
    ],
    ['unknown action', anp({ ingress: [rule({ action: 'Maybe' })] }), /action "Maybe"/, 'anp'],
    [
      'networks in ingress',
      anp({ ingress: [rule({ from: [{ networks: ['10.0.0.0/8'] }] })] }),
      /only allowed in egress/,
      'anp',
    ],
    [
      'bad network',
      anp({ egress: [{ name: 'e', action: 'Deny', to: [{ networks: ['10.0.0.1'] }] }] }),
      /not a CIDR/,
      'anp',
    ],
    ['empty peers', anp({ ingress: [rule({ from: [] })] }), /must hold 1-100 peers/, 'anp'],
    [
      'two port kinds',
      anp({ ingress: [rule({ ports: [{ namedPort: 'a', portNumber: { port: 1 } }] })] }),
      /exactly one of portNumber/,
      'anp',
    ],
    [
      'range start >= end',
      anp({ ingress: [rule({ ports: [{ portRange: { start: 9, end: 9 } }] })] }),
      /must be less than end/,
      'anp',
    ],
    ['BANP not named default', banp({}, 'other'), /must be named default/, 'banp'],
    ['BANP Pass', banp({ ingress: [rule({ action: 'Pass' })] }), /action "Pass" is not Allow, Deny/, 'banp'],
  ];
  for (const [what, raw, reason, kind] of cases) {
    const r = kind === 'anp' ? convertAdminNetworkPolicy(raw) : convertBaselineAdminNetworkPolicy(raw);
    t.notOk(r.ok, what);
    if (!r.ok) t.match(r.reason, reason, what);
  }
});
