// The kubernetes-sigs/network-policy-api conformance tests for AdminNetworkPolicy and BaselineAdminNetworkPolicy at
// tag v0.1.7 (the last release of the v1alpha1 API kdp implements): every test of the "standard" (core) profile
// (conformance/tests/*-standard-*.go) and the experimental NamedPort tests, on their manifests
// (conformance/base/{admin,baseline_admin}_network_policy/*.yaml, api_integration/standard-anp-np-banp.yaml), as
// data: each test's manifest objects, its subtests in order with the patch each one applies to the policies
// (patches accumulate, as upstream's do on the live object) and every PokeServer call with its expected result.
// The model (four houses, two pods each) is adminModelObjects(). Used by test/unit/policy/admin-conformance.test.ts
// (evaluator) and test/e2e/netpol-admin.test.ts (real packets).
import type { Protocol } from '../../model/types.ts';
import type { AdminCase, AdminProbe, Raw } from './netpol-cases.ts';

/** A patch an upstream subtest applies before its probes (cumulative over the test's subtests). */
export type ConformanceOp =
  /** swap rules i and j of one direction (upstream: "ensure rule ordering is respected") */
  | {
      readonly op: 'swap';
      readonly policy: string;
      readonly direction: 'ingress' | 'egress';
      readonly i: number;
      readonly j: number;
    }
  /** set the action of rule i */
  | {
      readonly op: 'action';
      readonly policy: string;
      readonly direction: 'ingress' | 'egress';
      readonly i: number;
      readonly action: string;
    }
  /** replace the ports of rule i with one `namedPort` (the experimental NamedPort tests) */
  | {
      readonly op: 'namedPort';
      readonly policy: string;
      readonly direction: 'ingress' | 'egress';
      readonly i: number;
      readonly name: string;
    }
  | { readonly op: 'priority'; readonly policy: string; readonly value: number }
  | { readonly op: 'delete'; readonly kind: string; readonly name: string }
  /** insert at egress[0] a rule whose `networks` peer is these pods' addresses as /32 (/128) */
  | {
      readonly op: 'prependEgressNetworks';
      readonly policy: string;
      readonly rule: { readonly name: string; readonly action: string };
      readonly pods: readonly string[];
    };

/** One upstream PokeServer call: pods as `<house>/<pod>` (namespace network-policy-conformance-<house>). */
export interface ConformanceProbe {
  readonly from: string;
  readonly to: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly connected: boolean;
}

export interface ConformanceTest {
  /** upstream's ShortName */
  readonly name: string;
  /** upstream's conformance profile of the test: standard (core) or experimental (the NamedPort ones) */
  readonly profile: 'standard' | 'experimental';
  /** the upstream test file (conformance/tests/) */
  readonly upstream: string;
  /** the upstream manifest (conformance/) */
  readonly manifest: string;
  readonly objects: readonly Raw[];
  /** upstream's t.Run subtests, in order */
  readonly steps: readonly {
    readonly what: string;
    readonly ops: readonly ConformanceOp[];
    readonly probes: readonly ConformanceProbe[];
  }[];
}

/** A probe as upstream's PokeServer call: `<house>/<pod> -> <house>/<pod> <PROTOCOL>/<port> allow|deny`. */
type ProbeText = `${string} -> ${string} ${Protocol}/${number} ${'allow' | 'deny'}`;

function probe(text: ProbeText): ConformanceProbe {
  const m = /^(\S+) -> (\S+) (TCP|UDP|SCTP)\/(\d+) (allow|deny)$/.exec(text);
  if (!m) throw new Error(`bad conformance probe: ${text}`);
  return { from: m[1]!, to: m[2]!, protocol: m[3] as Protocol, port: Number(m[4]), connected: m[5] === 'allow' };
}

/** One upstream t.Run subtest: the patches it applies, then its probes. */
function step(
  what: string,
  ops: readonly ConformanceOp[],
  probes: readonly ProbeText[],
): ConformanceTest['steps'][number] {
  return { what, ops, probes: probes.map(probe) };
}

/** the peer (or subject) "namespaces of this house" the manifests spell out in full */
const houseNs = (house: string): Raw => ({
  namespaces: { matchLabels: { 'kubernetes.io/metadata.name': `network-policy-conformance-${house}` } },
});

/** conformance/base/admin_network_policy/standard-egress-tcp-rules.yaml */
const adminEgressTcp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'egress-tcp' },
    spec: {
      priority: 6,
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-gryffindor' } },
      },
      egress: [
        {
          name: 'allow-to-ravenclaw-everything',
          action: 'Allow',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-to-ravenclaw-everything',
          action: 'Deny',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'pass-to-ravenclaw-everything',
          action: 'Pass',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-to-slytherin-at-port-80',
          action: 'Deny',
          to: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'TCP', port: 80 } }],
        },
        {
          name: 'pass-to-slytherin-at-port-80',
          action: 'Pass',
          to: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'TCP', port: 80 } }],
        },
        {
          name: 'allow-to-hufflepuff-at-port-8080',
          action: 'Allow',
          to: [houseNs('hufflepuff')],
          ports: [{ portNumber: { protocol: 'TCP', port: 8080 } }],
        },
        {
          name: 'deny-to-hufflepuff-everything-else',
          action: 'Deny',
          to: [houseNs('hufflepuff')],
        },
      ],
    },
  },
];

/** conformance/base/admin_network_policy/standard-ingress-udp-rules.yaml */
const adminIngressUdp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'ingress-udp' },
    spec: {
      priority: 4,
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-hufflepuff' } },
      },
      ingress: [
        {
          name: 'allow-from-ravenclaw-everything',
          action: 'Allow',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-from-ravenclaw-everything',
          action: 'Deny',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'pass-from-ravenclaw-everything',
          action: 'Pass',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-from-slytherin-at-port-5353',
          action: 'Deny',
          from: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'UDP', port: 5353 } }],
        },
        {
          name: 'pass-from-slytherin-at-port-5353',
          action: 'Pass',
          from: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'UDP', port: 5353 } }],
        },
        {
          name: 'allow-from-gryffindor-at-port-53',
          action: 'Allow',
          from: [houseNs('gryffindor')],
          ports: [{ portNumber: { protocol: 'UDP', port: 53 } }],
        },
        {
          name: 'deny-from-gryffindor-everything-else',
          action: 'Deny',
          from: [houseNs('gryffindor')],
        },
      ],
    },
  },
];

/** conformance/base/admin_network_policy/standard-egress-inline-cidr-rules.yaml */
const adminEgressInlineCidr: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'inline-cidr-as-peers-example' },
    spec: {
      priority: 85,
      subject: {
        pods: {
          namespaceSelector: { matchLabels: { 'conformance-house': 'gryffindor' } },
          podSelector: { matchLabels: { 'conformance-house': 'gryffindor' } },
        },
      },
      egress: [
        {
          name: 'allow-egress-to-slytherin',
          action: 'Allow',
          to: [
            {
              pods: {
                namespaceSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
                podSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
              },
            },
          ],
        },
        { name: 'deny-egress-to-internet', action: 'Deny', to: [{ networks: ['0.0.0.0/0', '::/0'] }] },
      ],
    },
  },
];

/** conformance/base/admin_network_policy/standard-egress-sctp-rules.yaml */
const adminEgressSctp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'egress-sctp' },
    spec: {
      priority: 8,
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-ravenclaw' } },
      },
      egress: [
        {
          name: 'allow-to-gryffindor-everything',
          action: 'Allow',
          to: [houseNs('gryffindor')],
        },
        {
          name: 'deny-to-gryffindor-everything',
          action: 'Deny',
          to: [houseNs('gryffindor')],
        },
        {
          name: 'pass-to-gryffindor-everything',
          action: 'Pass',
          to: [houseNs('gryffindor')],
        },
        {
          name: 'deny-to-slytherin-at-port-9003',
          action: 'Deny',
          to: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'SCTP', port: 9003 } }],
        },
        {
          name: 'pass-to-slytherin-at-port-9003',
          action: 'Pass',
          to: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'SCTP', port: 9003 } }],
        },
        {
          name: 'allow-to-hufflepuff-at-port-9003',
          action: 'Allow',
          to: [houseNs('hufflepuff')],
          ports: [{ portNumber: { protocol: 'SCTP', port: 9003 } }],
        },
        {
          name: 'deny-to-hufflepuff-everything-else',
          action: 'Deny',
          to: [houseNs('hufflepuff')],
        },
      ],
    },
  },
];

/** conformance/base/admin_network_policy/standard-egress-udp-rules.yaml */
const adminEgressUdp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'egress-udp' },
    spec: {
      priority: 7,
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-hufflepuff' } },
      },
      egress: [
        {
          name: 'allow-to-ravenclaw-everything',
          action: 'Allow',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-to-ravenclaw-everything',
          action: 'Deny',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'pass-to-ravenclaw-everything',
          action: 'Pass',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-to-slytherin-at-port-5353',
          action: 'Deny',
          to: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'UDP', port: 5353 } }],
        },
        {
          name: 'pass-to-slytherin-at-port-5353',
          action: 'Pass',
          to: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'UDP', port: 5353 } }],
        },
        {
          name: 'allow-to-gryffindor-at-port-53',
          action: 'Allow',
          to: [houseNs('gryffindor')],
          ports: [{ portNumber: { protocol: 'UDP', port: 53 } }],
        },
        {
          name: 'deny-to-gryffindor-everything-else',
          action: 'Deny',
          to: [houseNs('gryffindor')],
        },
      ],
    },
  },
];

/** conformance/base/admin_network_policy/standard-gress-rules-combined.yaml */
const adminGressCombined: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'gress-rules' },
    spec: {
      priority: 15,
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-gryffindor' } },
      },
      egress: [
        {
          name: 'allow-to-ravenclaw-everything',
          action: 'Allow',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-to-ravenclaw-everything',
          action: 'Deny',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'pass-to-ravenclaw-everything',
          action: 'Pass',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-to-slytherin-at-ports-80-53-9003',
          action: 'Deny',
          to: [houseNs('slytherin')],
          ports: [
            { portNumber: { protocol: 'TCP', port: 80 } },
            { portNumber: { protocol: 'UDP', port: 53 } },
            { portNumber: { protocol: 'SCTP', port: 9003 } },
          ],
        },
        {
          name: 'pass-to-slytherin-at-port-80-53-9003',
          action: 'Pass',
          to: [houseNs('slytherin')],
          ports: [
            { portNumber: { protocol: 'TCP', port: 80 } },
            { portNumber: { protocol: 'UDP', port: 53 } },
            { portNumber: { protocol: 'SCTP', port: 9003 } },
          ],
        },
        {
          name: 'allow-to-hufflepuff-at-ports-8080-5353-9003',
          action: 'Allow',
          to: [houseNs('hufflepuff')],
          ports: [
            { portNumber: { protocol: 'TCP', port: 8080 } },
            { portNumber: { protocol: 'UDP', port: 5353 } },
            { portNumber: { protocol: 'SCTP', port: 9003 } },
          ],
        },
        {
          name: 'deny-to-hufflepuff-everything-else',
          action: 'Deny',
          to: [houseNs('hufflepuff')],
        },
      ],
      ingress: [
        {
          name: 'allow-from-ravenclaw-everything',
          action: 'Allow',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-from-ravenclaw-everything',
          action: 'Deny',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'pass-from-ravenclaw-everything',
          action: 'Pass',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-from-slytherin-at-port-80-53-9003',
          action: 'Deny',
          from: [houseNs('slytherin')],
          ports: [
            { portNumber: { protocol: 'TCP', port: 80 } },
            { portNumber: { protocol: 'UDP', port: 53 } },
            { portNumber: { protocol: 'SCTP', port: 9003 } },
          ],
        },
        {
          name: 'pass-from-slytherin-at-port-80-53-9003',
          action: 'Pass',
          from: [houseNs('slytherin')],
          ports: [
            { portNumber: { protocol: 'TCP', port: 80 } },
            { portNumber: { protocol: 'UDP', port: 53 } },
            { portNumber: { protocol: 'SCTP', port: 9003 } },
          ],
        },
        {
          name: 'allow-from-hufflepuff-at-port-80-5353-9003',
          action: 'Allow',
          from: [houseNs('hufflepuff')],
          ports: [
            { portNumber: { protocol: 'TCP', port: 80 } },
            { portNumber: { protocol: 'UDP', port: 5353 } },
            { portNumber: { protocol: 'SCTP', port: 9003 } },
          ],
        },
        {
          name: 'deny-from-hufflepuff-everything-else',
          action: 'Deny',
          from: [houseNs('hufflepuff')],
        },
      ],
    },
  },
];

/** conformance/base/admin_network_policy/standard-ingress-sctp-rules.yaml */
const adminIngressSctp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'ingress-sctp' },
    spec: {
      priority: 5,
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-ravenclaw' } },
      },
      ingress: [
        {
          name: 'allow-from-gryffindor-everything',
          action: 'Allow',
          from: [houseNs('gryffindor')],
        },
        {
          name: 'deny-from-gryffindor-everything',
          action: 'Deny',
          from: [houseNs('gryffindor')],
        },
        {
          name: 'pass-from-gryffindor-everything',
          action: 'Pass',
          from: [houseNs('gryffindor')],
        },
        {
          name: 'deny-from-slytherin-at-port-9003',
          action: 'Deny',
          from: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'SCTP', port: 9003 } }],
        },
        {
          name: 'pass-from-slytherin-at-port-9003',
          action: 'Pass',
          from: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'SCTP', port: 9003 } }],
        },
        {
          name: 'allow-from-hufflepuff-at-port-9003',
          action: 'Allow',
          from: [houseNs('hufflepuff')],
          ports: [{ portNumber: { protocol: 'SCTP', port: 9003 } }],
        },
        {
          name: 'deny-from-hufflepuff-everything-else',
          action: 'Deny',
          from: [houseNs('hufflepuff')],
        },
      ],
    },
  },
];

/** conformance/base/admin_network_policy/standard-ingress-tcp-rules.yaml */
const adminIngressTcp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'ingress-tcp' },
    spec: {
      priority: 3,
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-gryffindor' } },
      },
      ingress: [
        {
          name: 'allow-from-ravenclaw-everything',
          action: 'Allow',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-from-ravenclaw-everything',
          action: 'Deny',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'pass-from-ravenclaw-everything',
          action: 'Pass',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-from-slytherin-at-port-80',
          action: 'Deny',
          from: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'TCP', port: 80 } }],
        },
        {
          name: 'pass-from-slytherin-at-port-80',
          action: 'Pass',
          from: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'TCP', port: 80 } }],
        },
        {
          name: 'allow-from-hufflepuff-at-port-80',
          action: 'Allow',
          from: [houseNs('hufflepuff')],
          ports: [{ portNumber: { protocol: 'TCP', port: 80 } }],
        },
        {
          name: 'deny-from-hufflepuff-everything-else',
          action: 'Deny',
          from: [houseNs('hufflepuff')],
        },
      ],
    },
  },
];

/** conformance/base/api_integration/standard-anp-np-banp.yaml */
const apiIntegrationAnpNpBanp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'pass-example' },
    spec: {
      priority: 10,
      subject: { namespaces: { matchLabels: { 'conformance-house': 'gryffindor' } } },
      ingress: [
        {
          name: 'deny-all-ingress-from-slytherin',
          action: 'Deny',
          from: [{ namespaces: { matchLabels: { 'conformance-house': 'slytherin' } } }],
        },
      ],
      egress: [
        {
          name: 'deny-all-egress-to-slytherin',
          action: 'Deny',
          to: [{ namespaces: { matchLabels: { 'conformance-house': 'slytherin' } } }],
        },
      ],
    },
  },
  {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: 'allow-gress-from-to-slytherin-to-gryffindor',
      namespace: 'network-policy-conformance-gryffindor',
    },
    spec: {
      podSelector: null,
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'conformance-house': 'slytherin' } } }] }],
      egress: [{ to: [{ namespaceSelector: { matchLabels: { 'conformance-house': 'slytherin' } } }] }],
    },
  },
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: {
      subject: { namespaces: { matchLabels: { 'conformance-house': 'gryffindor' } } },
      ingress: [
        {
          name: 'deny-all-ingress-from-slytherin',
          action: 'Deny',
          from: [{ namespaces: { matchLabels: { 'conformance-house': 'slytherin' } } }],
        },
      ],
      egress: [
        {
          name: 'deny-all-egress-to-slytherin',
          action: 'Deny',
          to: [{ namespaces: { matchLabels: { 'conformance-house': 'slytherin' } } }],
        },
      ],
    },
  },
];

/** conformance/base/admin_network_policy/standard-priority-field.yaml */
const adminPriorityField: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'priority-50-example' },
    spec: {
      priority: 50,
      subject: {
        pods: {
          namespaceSelector: { matchLabels: { 'conformance-house': 'gryffindor' } },
          podSelector: { matchLabels: { 'conformance-house': 'gryffindor' } },
        },
      },
      ingress: [
        {
          name: 'deny-all-ingress-from-slytherin',
          action: 'Deny',
          from: [
            {
              pods: {
                namespaceSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
                podSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
              },
            },
          ],
        },
      ],
      egress: [
        {
          name: 'deny-all-egress-to-slytherin',
          action: 'Deny',
          to: [
            {
              pods: {
                namespaceSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
                podSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
              },
            },
          ],
        },
      ],
    },
  },
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'old-priority-60-new-priority-40-example' },
    spec: {
      priority: 60,
      subject: {
        pods: {
          namespaceSelector: { matchLabels: { 'conformance-house': 'gryffindor' } },
          podSelector: { matchLabels: { 'conformance-house': 'gryffindor' } },
        },
      },
      ingress: [
        {
          name: 'pass-all-ingress-from-slytherin',
          action: 'Pass',
          from: [
            {
              pods: {
                namespaceSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
                podSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
              },
            },
          ],
        },
      ],
      egress: [
        {
          name: 'pass-all-egress-to-slytherin',
          action: 'Pass',
          to: [
            {
              pods: {
                namespaceSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
                podSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
              },
            },
          ],
        },
      ],
    },
  },
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: {
      subject: {
        pods: {
          namespaceSelector: { matchLabels: { 'conformance-house': 'gryffindor' } },
          podSelector: { matchLabels: { 'conformance-house': 'gryffindor' } },
        },
      },
      ingress: [
        {
          name: 'allow-all-ingress-from-slytherin',
          action: 'Allow',
          from: [
            {
              pods: {
                namespaceSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
                podSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
              },
            },
          ],
        },
      ],
      egress: [
        {
          name: 'allow-all-egress-to-slytherin',
          action: 'Allow',
          to: [
            {
              pods: {
                namespaceSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
                podSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
              },
            },
          ],
        },
      ],
    },
  },
];

/** conformance/base/baseline_admin_network_policy/standard-egress-udp-rules.yaml */
const baselineAdminEgressUdp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: {
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-hufflepuff' } },
      },
      egress: [
        {
          name: 'allow-to-ravenclaw-everything',
          action: 'Allow',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-to-ravenclaw-everything',
          action: 'Deny',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-to-slytherin-at-port-5353',
          action: 'Deny',
          to: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'UDP', port: 5353 } }],
        },
        {
          name: 'allow-to-gryffindor-at-port-53',
          action: 'Allow',
          to: [houseNs('gryffindor')],
          ports: [{ portNumber: { protocol: 'UDP', port: 53 } }],
        },
        {
          name: 'deny-to-gryffindor-everything-else',
          action: 'Deny',
          to: [houseNs('gryffindor')],
        },
      ],
    },
  },
];

/** conformance/base/baseline_admin_network_policy/standard-ingress-tcp-rules.yaml */
const baselineAdminIngressTcp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: {
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-gryffindor' } },
      },
      ingress: [
        {
          name: 'allow-from-ravenclaw-everything',
          action: 'Allow',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-from-ravenclaw-everything',
          action: 'Deny',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-from-slytherin-at-port-80',
          action: 'Deny',
          from: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'TCP', port: 80 } }],
        },
        {
          name: 'allow-from-hufflepuff-at-port-80',
          action: 'Allow',
          from: [houseNs('hufflepuff')],
          ports: [{ portNumber: { protocol: 'TCP', port: 80 } }],
        },
        {
          name: 'deny-from-hufflepuff-everything-else',
          action: 'Deny',
          from: [houseNs('hufflepuff')],
        },
      ],
    },
  },
];

/** conformance/base/baseline_admin_network_policy/standard-egress-inline-cidr-rules.yaml */
const baselineAdminEgressInlineCidr: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: {
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-gryffindor' } },
      },
      egress: [
        {
          name: 'allow-egress-to-slytherin',
          action: 'Allow',
          to: [
            {
              pods: {
                namespaceSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
                podSelector: { matchLabels: { 'conformance-house': 'slytherin' } },
              },
            },
          ],
        },
        { name: 'deny-egress-to-internet', action: 'Deny', to: [{ networks: ['0.0.0.0/0', '::/0'] }] },
      ],
    },
  },
];

/** conformance/base/baseline_admin_network_policy/standard-egress-sctp-rules.yaml */
const baselineAdminEgressSctp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: {
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-ravenclaw' } },
      },
      egress: [
        {
          name: 'allow-to-gryffindor-everything',
          action: 'Allow',
          to: [houseNs('gryffindor')],
        },
        {
          name: 'deny-to-gryffindor-everything',
          action: 'Deny',
          to: [houseNs('gryffindor')],
        },
        {
          name: 'deny-to-slytherin-at-port-9003',
          action: 'Deny',
          to: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'SCTP', port: 9003 } }],
        },
        {
          name: 'allow-to-hufflepuff-at-port-9003',
          action: 'Allow',
          to: [houseNs('hufflepuff')],
          ports: [{ portNumber: { protocol: 'SCTP', port: 9003 } }],
        },
        {
          name: 'deny-to-hufflepuff-everything-else',
          action: 'Deny',
          to: [houseNs('hufflepuff')],
        },
      ],
    },
  },
];

/** conformance/base/baseline_admin_network_policy/standard-egress-tcp-rules.yaml */
const baselineAdminEgressTcp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: {
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-gryffindor' } },
      },
      egress: [
        {
          name: 'allow-to-ravenclaw-everything',
          action: 'Allow',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-to-ravenclaw-everything',
          action: 'Deny',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-to-slytherin-at-port-80',
          action: 'Deny',
          to: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'TCP', port: 80 } }],
        },
        {
          name: 'allow-to-hufflepuff-at-port-8080',
          action: 'Allow',
          to: [houseNs('hufflepuff')],
          ports: [{ portNumber: { protocol: 'TCP', port: 8080 } }],
        },
        {
          name: 'deny-to-hufflepuff-everything-else',
          action: 'Deny',
          to: [houseNs('hufflepuff')],
        },
      ],
    },
  },
];

/** conformance/base/baseline_admin_network_policy/standard-gress-rules-combined.yaml */
const baselineAdminGressCombined: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: {
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-gryffindor' } },
      },
      egress: [
        {
          name: 'allow-to-ravenclaw-everything',
          action: 'Allow',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-to-ravenclaw-everything',
          action: 'Deny',
          to: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-to-slytherin-at-ports-80-53-9003',
          action: 'Deny',
          to: [houseNs('slytherin')],
          ports: [
            { portNumber: { protocol: 'TCP', port: 80 } },
            { portNumber: { protocol: 'UDP', port: 53 } },
            { portNumber: { protocol: 'SCTP', port: 9003 } },
          ],
        },
        {
          name: 'allow-to-hufflepuff-at-ports-8080-5353',
          action: 'Allow',
          to: [houseNs('hufflepuff')],
          ports: [
            { portNumber: { protocol: 'TCP', port: 8080 } },
            { portNumber: { protocol: 'UDP', port: 5353 } },
            { portNumber: { protocol: 'SCTP', port: 9003 } },
          ],
        },
        {
          name: 'deny-to-hufflepuff-everything-else',
          action: 'Deny',
          to: [houseNs('hufflepuff')],
        },
      ],
      ingress: [
        {
          name: 'allow-from-ravenclaw-everything',
          action: 'Allow',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-from-ravenclaw-everything',
          action: 'Deny',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-from-slytherin-at-port-80-53-9003',
          action: 'Deny',
          from: [houseNs('slytherin')],
          ports: [
            { portNumber: { protocol: 'TCP', port: 80 } },
            { portNumber: { protocol: 'UDP', port: 53 } },
            { portNumber: { protocol: 'SCTP', port: 9003 } },
          ],
        },
        {
          name: 'allow-from-hufflepuff-at-port-80-5353-9003',
          action: 'Allow',
          from: [houseNs('hufflepuff')],
          ports: [
            { portNumber: { protocol: 'TCP', port: 80 } },
            { portNumber: { protocol: 'UDP', port: 5353 } },
            { portNumber: { protocol: 'SCTP', port: 9003 } },
          ],
        },
        {
          name: 'deny-from-hufflepuff-everything-else',
          action: 'Deny',
          from: [houseNs('hufflepuff')],
        },
      ],
    },
  },
];

/** conformance/base/baseline_admin_network_policy/standard-ingress-sctp-rules.yaml */
const baselineAdminIngressSctp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: {
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-ravenclaw' } },
      },
      ingress: [
        {
          name: 'allow-from-gryffindor-everything',
          action: 'Allow',
          from: [houseNs('gryffindor')],
        },
        {
          name: 'deny-from-gryffindor-everything',
          action: 'Deny',
          from: [houseNs('gryffindor')],
        },
        {
          name: 'deny-from-slytherin-at-port-9003',
          action: 'Deny',
          from: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'SCTP', port: 9003 } }],
        },
        {
          name: 'allow-from-hufflepuff-at-port-9003',
          action: 'Allow',
          from: [houseNs('hufflepuff')],
          ports: [{ portNumber: { protocol: 'SCTP', port: 9003 } }],
        },
        {
          name: 'deny-from-hufflepuff-everything-else',
          action: 'Deny',
          from: [houseNs('hufflepuff')],
        },
      ],
    },
  },
];

/** conformance/base/baseline_admin_network_policy/standard-ingress-udp-rules.yaml */
const baselineAdminIngressUdp: readonly Raw[] = [
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: {
      subject: {
        namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'network-policy-conformance-hufflepuff' } },
      },
      ingress: [
        {
          name: 'allow-from-ravenclaw-everything',
          action: 'Allow',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-from-ravenclaw-everything',
          action: 'Deny',
          from: [houseNs('ravenclaw')],
        },
        {
          name: 'deny-from-slytherin-at-port-5353',
          action: 'Deny',
          from: [houseNs('slytherin')],
          ports: [{ portNumber: { protocol: 'UDP', port: 5353 } }],
        },
        {
          name: 'allow-from-gryffindor-at-port-53',
          action: 'Allow',
          from: [houseNs('gryffindor')],
          ports: [{ portNumber: { protocol: 'UDP', port: 53 } }],
        },
        {
          name: 'deny-from-gryffindor-everything-else',
          action: 'Deny',
          from: [houseNs('gryffindor')],
        },
      ],
    },
  },
];

export const CONFORMANCE_TESTS: readonly ConformanceTest[] = [
  {
    name: 'AdminNetworkPolicyEgressNamedPort',
    profile: 'experimental',
    upstream: 'admin-network-policy-experimental-egress-rules.go',
    manifest: 'base/admin_network_policy/standard-egress-tcp-rules.yaml',
    objects: adminEgressTcp,
    steps: [
      step(
        "Should support an 'allow-egress' policy for named port",
        [{ op: 'namedPort', policy: 'egress-tcp', direction: 'egress', i: 5, name: 'web' }],
        [
          'gryffindor/harry-potter-0 -> hufflepuff/cedric-diggory-1 TCP/80 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 TCP/8080 deny',
        ],
      ),
    ],
  },
  {
    name: 'AdminNetworkPolicyIngressNamedPort',
    profile: 'experimental',
    upstream: 'admin-network-policy-experimental-ingress-rules.go',
    manifest: 'base/admin_network_policy/standard-ingress-udp-rules.yaml',
    objects: adminIngressUdp,
    steps: [
      step(
        "Should support an 'allow-ingress' policy for named port",
        [{ op: 'namedPort', policy: 'ingress-udp', direction: 'ingress', i: 5, name: 'dns' }],
        [
          'gryffindor/harry-potter-0 -> hufflepuff/cedric-diggory-1 UDP/53 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 UDP/5353 deny',
        ],
      ),
    ],
  },
  {
    name: 'AdminNetworkPolicyEgressInlineCIDRPeers',
    profile: 'standard',
    upstream: 'admin-network-policy-standard-egress-inline-cidr-rules.go',
    manifest: 'base/admin_network_policy/standard-egress-inline-cidr-rules.yaml',
    objects: adminEgressInlineCidr,
    steps: [
      step(
        "Should support a 'deny-egress' rule policy for egress-cidr-peer",
        [],
        [
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 TCP/80 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 UDP/53 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 SCTP/9003 deny',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-0 TCP/80 deny',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-0 UDP/53 deny',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-0 SCTP/9003 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 UDP/53 allow',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 SCTP/9003 allow',
        ],
      ),
      step(
        "Should support an 'allow-egress' rule policy for egress-cidr-peer",
        [
          {
            op: 'prependEgressNetworks',
            policy: 'inline-cidr-as-peers-example',
            rule: { name: 'allow-egress-to-specific-podIPs', action: 'Allow' },
            pods: ['ravenclaw/luna-lovegood-0', 'hufflepuff/cedric-diggory-0'],
          },
        ],
        [
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 UDP/53 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 SCTP/9003 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-0 UDP/53 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-0 SCTP/9003 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 TCP/80 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 UDP/53 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 SCTP/9003 deny',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 TCP/80 deny',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 UDP/53 deny',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 SCTP/9003 deny',
        ],
      ),
    ],
  },
  {
    name: 'AdminNetworkPolicyEgressSCTP',
    profile: 'standard',
    upstream: 'admin-network-policy-standard-egress-sctp-rules.go',
    manifest: 'base/admin_network_policy/standard-egress-sctp-rules.yaml',
    objects: adminEgressSctp,
    steps: [
      step(
        "Should support an 'allow-egress' policy for SCTP protocol; ensure rule ordering is respected",
        [],
        [
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-0 SCTP/9003 allow',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-0 SCTP/9005 allow',
        ],
      ),
      step(
        "Should support an 'allow-egress' policy for SCTP protocol at the specified port",
        [],
        [
          'ravenclaw/luna-lovegood-0 -> hufflepuff/cedric-diggory-1 SCTP/9003 allow',
          'ravenclaw/luna-lovegood-1 -> hufflepuff/cedric-diggory-1 SCTP/9005 deny',
        ],
      ),
      step(
        "Should support an 'deny-egress' policy for SCTP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'egress-sctp', direction: 'egress', i: 0, j: 1 }],
        [
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-1 SCTP/9003 deny',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-1 SCTP/9005 deny',
        ],
      ),
      step(
        "Should support a 'deny-egress' policy for SCTP protocol at the specified port",
        [],
        [
          'ravenclaw/luna-lovegood-0 -> slytherin/draco-malfoy-0 SCTP/9003 deny',
          'ravenclaw/luna-lovegood-1 -> slytherin/draco-malfoy-0 SCTP/9005 allow',
        ],
      ),
      step(
        "Should support an 'pass-egress' policy for SCTP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'egress-sctp', direction: 'egress', i: 0, j: 2 }],
        [
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-1 SCTP/9003 allow',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-1 SCTP/9005 allow',
        ],
      ),
      step(
        "Should support a 'pass-egress' policy for SCTP protocol at the specified port",
        [{ op: 'swap', policy: 'egress-sctp', direction: 'egress', i: 3, j: 4 }],
        [
          'ravenclaw/luna-lovegood-0 -> slytherin/draco-malfoy-0 SCTP/9003 allow',
          'ravenclaw/luna-lovegood-1 -> slytherin/draco-malfoy-0 SCTP/9005 allow',
        ],
      ),
    ],
  },
  {
    name: 'AdminNetworkPolicyEgressTCP',
    profile: 'standard',
    upstream: 'admin-network-policy-standard-egress-tcp-rules.go',
    manifest: 'base/admin_network_policy/standard-egress-tcp-rules.yaml',
    objects: adminEgressTcp,
    steps: [
      step(
        "Should support an 'allow-egress' policy for TCP protocol; ensure rule ordering is respected",
        [],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 TCP/8080 allow',
        ],
      ),
      step(
        "Should support an 'allow-egress' policy for TCP protocol at the specified port",
        [],
        [
          'gryffindor/harry-potter-0 -> hufflepuff/cedric-diggory-1 TCP/8080 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 TCP/80 deny',
        ],
      ),
      step(
        "Should support an 'deny-egress' policy for TCP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'egress-tcp', direction: 'egress', i: 0, j: 1 }],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-1 TCP/80 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 TCP/8080 deny',
        ],
      ),
      step(
        "Should support a 'deny-egress' policy for TCP protocol at the specified port",
        [],
        [
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 TCP/80 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/8080 allow',
        ],
      ),
      step(
        "Should support an 'pass-egress' policy for TCP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'egress-tcp', direction: 'egress', i: 0, j: 2 }],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 TCP/8080 allow',
        ],
      ),
      step(
        "Should support a 'pass-egress' policy for TCP protocol at the specified port",
        [{ op: 'swap', policy: 'egress-tcp', direction: 'egress', i: 3, j: 4 }],
        [
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/8080 allow',
        ],
      ),
    ],
  },
  {
    name: 'AdminNetworkPolicyEgressUDP',
    profile: 'standard',
    upstream: 'admin-network-policy-standard-egress-udp-rules.go',
    manifest: 'base/admin_network_policy/standard-egress-udp-rules.yaml',
    objects: adminEgressUdp,
    steps: [
      step(
        "Should support an 'allow-egress' policy for UDP protocol; ensure rule ordering is respected",
        [],
        [
          'hufflepuff/cedric-diggory-0 -> ravenclaw/luna-lovegood-0 UDP/53 allow',
          'hufflepuff/cedric-diggory-1 -> ravenclaw/luna-lovegood-0 UDP/5353 allow',
        ],
      ),
      step(
        "Should support an 'allow-egress' policy for UDP protocol at the specified port",
        [],
        [
          'hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-1 UDP/53 allow',
          'hufflepuff/cedric-diggory-1 -> gryffindor/harry-potter-1 UDP/5353 deny',
        ],
      ),
      step(
        "Should support an 'deny-egress' policy for UDP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'egress-udp', direction: 'egress', i: 0, j: 1 }],
        [
          'hufflepuff/cedric-diggory-0 -> ravenclaw/luna-lovegood-1 UDP/53 deny',
          'hufflepuff/cedric-diggory-1 -> ravenclaw/luna-lovegood-1 UDP/5353 deny',
        ],
      ),
      step(
        "Should support a 'deny-egress' policy for UDP protocol at the specified port",
        [],
        [
          'hufflepuff/cedric-diggory-0 -> slytherin/draco-malfoy-0 UDP/5353 deny',
          'hufflepuff/cedric-diggory-1 -> slytherin/draco-malfoy-0 UDP/53 allow',
        ],
      ),
      step(
        "Should support an 'pass-egress' policy for UDP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'egress-udp', direction: 'egress', i: 0, j: 2 }],
        [
          'hufflepuff/cedric-diggory-0 -> ravenclaw/luna-lovegood-1 UDP/5353 allow',
          'hufflepuff/cedric-diggory-1 -> ravenclaw/luna-lovegood-1 UDP/53 allow',
        ],
      ),
      step(
        "Should support a 'pass-egress' policy for UDP protocol at the specified port",
        [{ op: 'swap', policy: 'egress-udp', direction: 'egress', i: 3, j: 4 }],
        [
          'hufflepuff/cedric-diggory-0 -> slytherin/draco-malfoy-0 UDP/5353 allow',
          'hufflepuff/cedric-diggory-1 -> slytherin/draco-malfoy-0 UDP/53 allow',
        ],
      ),
    ],
  },
  {
    name: 'AdminNetworkPolicyGress',
    profile: 'standard',
    upstream: 'admin-network-policy-standard-gress-rules.go',
    manifest: 'base/admin_network_policy/standard-gress-rules-combined.yaml',
    objects: adminGressCombined,
    steps: [
      step(
        "Should support an 'allow-gress' policy across different protocols",
        [],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 UDP/53 allow',
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-0 SCTP/9003 allow',
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-0 TCP/80 allow',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-0 UDP/53 allow',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-0 SCTP/9003 allow',
        ],
      ),
      step(
        "Should support an 'allow-gress' policy across different protocols at the specified ports",
        [],
        [
          'gryffindor/harry-potter-0 -> hufflepuff/cedric-diggory-1 TCP/8080 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 TCP/80 deny',
          'gryffindor/harry-potter-0 -> hufflepuff/cedric-diggory-1 UDP/5353 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 UDP/53 deny',
          'gryffindor/harry-potter-0 -> hufflepuff/cedric-diggory-1 SCTP/9003 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 SCTP/9005 deny',
          'hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-1 TCP/80 allow',
          'hufflepuff/cedric-diggory-1 -> gryffindor/harry-potter-1 TCP/8080 deny',
          'hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-1 UDP/5353 allow',
          'hufflepuff/cedric-diggory-1 -> gryffindor/harry-potter-1 UDP/53 deny',
          'hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-1 SCTP/9003 allow',
          'hufflepuff/cedric-diggory-1 -> gryffindor/harry-potter-1 SCTP/9005 deny',
        ],
      ),
      step(
        "Should support an 'deny-gress' policy across different protocols",
        [
          { op: 'swap', policy: 'gress-rules', direction: 'egress', i: 0, j: 1 },
          { op: 'swap', policy: 'gress-rules', direction: 'ingress', i: 0, j: 1 },
        ],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-1 TCP/80 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 UDP/53 deny',
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-1 SCTP/9003 deny',
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-1 TCP/80 deny',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-1 UDP/53 deny',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-1 SCTP/9003 deny',
        ],
      ),
      step(
        "Should support a 'deny-gress' policy across different protocols at the specified ports",
        [],
        [
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 TCP/80 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/8080 allow',
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 UDP/53 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 UDP/5353 allow',
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 SCTP/9003 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 SCTP/9005 allow',
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 TCP/80 deny',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 TCP/8080 allow',
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 UDP/53 deny',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 UDP/5353 allow',
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 SCTP/9003 deny',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 SCTP/9005 allow',
        ],
      ),
      step(
        "Should support an 'pass-gress' policy across different protocols",
        [
          { op: 'swap', policy: 'gress-rules', direction: 'egress', i: 0, j: 2 },
          { op: 'swap', policy: 'gress-rules', direction: 'ingress', i: 0, j: 2 },
        ],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-0 TCP/80 allow',
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-0 UDP/5353 allow',
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-0 SCTP/9003 allow',
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-0 TCP/80 allow',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-0 UDP/53 allow',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-0 SCTP/9003 allow',
        ],
      ),
      step(
        "Should support a 'pass-gress' policy across different protocols at the specified ports",
        [
          { op: 'swap', policy: 'gress-rules', direction: 'egress', i: 3, j: 4 },
          { op: 'swap', policy: 'gress-rules', direction: 'ingress', i: 3, j: 4 },
        ],
        [
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/8080 allow',
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 UDP/53 allow',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 UDP/5353 allow',
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 SCTP/9003 allow',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 SCTP/9005 allow',
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 TCP/80 allow',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 TCP/8080 allow',
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 UDP/53 allow',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 UDP/5353 allow',
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 SCTP/9003 allow',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 SCTP/9005 allow',
        ],
      ),
    ],
  },
  {
    name: 'AdminNetworkPolicyIngressSCTP',
    profile: 'standard',
    upstream: 'admin-network-policy-standard-ingress-sctp-rules.go',
    manifest: 'base/admin_network_policy/standard-ingress-sctp-rules.yaml',
    objects: adminIngressSctp,
    steps: [
      step(
        "Should support an 'allow-ingress' policy for SCTP protocol; ensure rule ordering is respected",
        [],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-0 SCTP/9003 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 SCTP/9005 allow',
        ],
      ),
      step(
        "Should support an 'allow-ingress' policy for SCTP protocol at the specified port",
        [],
        [
          'hufflepuff/cedric-diggory-0 -> ravenclaw/luna-lovegood-1 SCTP/9003 allow',
          'hufflepuff/cedric-diggory-1 -> ravenclaw/luna-lovegood-1 SCTP/9005 deny',
        ],
      ),
      step(
        "Should support an 'deny-ingress' policy for SCTP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'ingress-sctp', direction: 'ingress', i: 0, j: 1 }],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-1 SCTP/9003 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 SCTP/9005 deny',
        ],
      ),
      step(
        "Should support a 'deny-ingress' policy for SCTP protocol at the specified port",
        [],
        [
          'slytherin/draco-malfoy-0 -> ravenclaw/luna-lovegood-0 SCTP/9003 deny',
          'slytherin/draco-malfoy-1 -> ravenclaw/luna-lovegood-0 SCTP/9005 allow',
        ],
      ),
      step(
        "Should support an 'pass-ingress' policy for SCTP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'ingress-sctp', direction: 'ingress', i: 0, j: 2 }],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-1 SCTP/9003 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 SCTP/9005 allow',
        ],
      ),
      step(
        "Should support a 'pass-ingress' policy for SCTP protocol at the specified port",
        [{ op: 'swap', policy: 'ingress-sctp', direction: 'ingress', i: 3, j: 4 }],
        [
          'slytherin/draco-malfoy-0 -> ravenclaw/luna-lovegood-0 SCTP/9003 allow',
          'slytherin/draco-malfoy-1 -> ravenclaw/luna-lovegood-0 SCTP/9005 allow',
        ],
      ),
    ],
  },
  {
    name: 'AdminNetworkPolicyIngressTCP',
    profile: 'standard',
    upstream: 'admin-network-policy-standard-ingress-tcp-rules.go',
    manifest: 'base/admin_network_policy/standard-ingress-tcp-rules.yaml',
    objects: adminIngressTcp,
    steps: [
      step(
        "Should support an 'allow-ingress' policy for TCP protocol; ensure rule ordering is respected",
        [],
        [
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-0 TCP/80 allow',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-0 TCP/8080 allow',
        ],
      ),
      step(
        "Should support an 'allow-ingress' policy for TCP protocol at the specified port",
        [],
        [
          'hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-1 TCP/80 allow',
          'hufflepuff/cedric-diggory-1 -> gryffindor/harry-potter-1 TCP/8080 deny',
        ],
      ),
      step(
        "Should support an 'deny-ingress' policy for TCP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'ingress-tcp', direction: 'ingress', i: 0, j: 1 }],
        [
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-1 TCP/80 deny',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-1 TCP/8080 deny',
        ],
      ),
      step(
        "Should support a 'deny-ingress' policy for TCP protocol at the specified port",
        [],
        [
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 TCP/80 deny',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 TCP/8080 allow',
        ],
      ),
      step(
        "Should support an 'pass-ingress' policy for TCP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'ingress-tcp', direction: 'ingress', i: 0, j: 2 }],
        [
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-0 TCP/80 allow',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-0 TCP/8080 allow',
        ],
      ),
      step(
        "Should support a 'pass-ingress' policy for TCP protocol at the specified port",
        [{ op: 'swap', policy: 'ingress-tcp', direction: 'ingress', i: 3, j: 4 }],
        [
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 TCP/80 allow',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 TCP/8080 allow',
        ],
      ),
    ],
  },
  {
    name: 'AdminNetworkPolicyIngressUDP',
    profile: 'standard',
    upstream: 'admin-network-policy-standard-ingress-udp-rules.go',
    manifest: 'base/admin_network_policy/standard-ingress-udp-rules.yaml',
    objects: adminIngressUdp,
    steps: [
      step(
        "Should support an 'allow-ingress' policy for UDP protocol; ensure rule ordering is respected",
        [],
        [
          'ravenclaw/luna-lovegood-0 -> hufflepuff/cedric-diggory-0 UDP/53 allow',
          'ravenclaw/luna-lovegood-1 -> hufflepuff/cedric-diggory-0 UDP/5353 allow',
        ],
      ),
      step(
        "Should support an 'allow-ingress' policy for UDP protocol at the specified port",
        [],
        [
          'gryffindor/harry-potter-0 -> hufflepuff/cedric-diggory-1 UDP/53 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 UDP/5353 deny',
        ],
      ),
      step(
        "Should support an 'deny-ingress' policy for UDP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'ingress-udp', direction: 'ingress', i: 0, j: 1 }],
        [
          'ravenclaw/luna-lovegood-0 -> hufflepuff/cedric-diggory-1 UDP/53 deny',
          'ravenclaw/luna-lovegood-1 -> hufflepuff/cedric-diggory-1 UDP/5353 deny',
        ],
      ),
      step(
        "Should support a 'deny-ingress' policy for UDP protocol at the specified port",
        [],
        [
          'slytherin/draco-malfoy-0 -> hufflepuff/cedric-diggory-0 UDP/5353 deny',
          'slytherin/draco-malfoy-1 -> hufflepuff/cedric-diggory-0 UDP/53 allow',
        ],
      ),
      step(
        "Should support an 'pass-ingress' policy for UDP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'ingress-udp', direction: 'ingress', i: 0, j: 2 }],
        [
          'ravenclaw/luna-lovegood-0 -> hufflepuff/cedric-diggory-1 UDP/5353 allow',
          'ravenclaw/luna-lovegood-1 -> hufflepuff/cedric-diggory-1 UDP/53 allow',
        ],
      ),
      step(
        "Should support a 'pass-ingress' policy for UDP protocol at the specified port",
        [{ op: 'swap', policy: 'ingress-udp', direction: 'ingress', i: 3, j: 4 }],
        [
          'slytherin/draco-malfoy-0 -> hufflepuff/cedric-diggory-0 UDP/5353 allow',
          'slytherin/draco-malfoy-1 -> hufflepuff/cedric-diggory-0 UDP/53 allow',
        ],
      ),
    ],
  },
  {
    name: 'AdminNetworkPolicyIntegration',
    profile: 'standard',
    upstream: 'admin-network-policy-standard-integration.go',
    manifest: 'base/api_integration/standard-anp-np-banp.yaml',
    objects: apiIntegrationAnpNpBanp,
    steps: [
      step(
        'Should Deny traffic from slytherin to gryffindor respecting ANP',
        [],
        [
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 TCP/80 deny',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 TCP/8080 deny',
        ],
      ),
      step(
        'Should Deny traffic to slytherin from gryffindor respecting ANP',
        [],
        [
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 TCP/80 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/8080 deny',
        ],
      ),
      step(
        "Should support a 'pass-ingress' policy for ANP and respect the match for network policy",
        [{ op: 'action', policy: 'pass-example', direction: 'ingress', i: 0, action: 'Pass' }],
        [
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 TCP/80 allow',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 TCP/8080 allow',
        ],
      ),
      step(
        "Should support a 'pass-egress' policy for ANP and respect the match for network policy",
        [{ op: 'action', policy: 'pass-example', direction: 'egress', i: 0, action: 'Pass' }],
        [
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/8080 allow',
        ],
      ),
      step(
        "Should support a 'pass-ingress' policy for ANP and respect the match for baseline admin network policy",
        [{ op: 'delete', kind: 'NetworkPolicy', name: 'allow-gress-from-to-slytherin-to-gryffindor' }],
        [
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 TCP/80 deny',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 TCP/8080 deny',
        ],
      ),
      step(
        "Should support a 'pass-egress' policy for ANP and respect the match for baseline admin network policy",
        [],
        [
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 TCP/80 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/8080 deny',
        ],
      ),
    ],
  },
  {
    name: 'AdminNetworkPolicyPriorityField',
    profile: 'standard',
    upstream: 'admin-network-policy-standard-priority.go',
    manifest: 'base/admin_network_policy/standard-priority-field.yaml',
    objects: adminPriorityField,
    steps: [
      step(
        'Should Deny traffic from slytherin to gryffindor respecting ANP',
        [],
        [
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 TCP/80 deny',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 TCP/8080 deny',
        ],
      ),
      step(
        'Should Deny traffic to slytherin from gryffindor respecting ANP',
        [],
        [
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 TCP/80 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/8080 deny',
        ],
      ),
      step(
        'Should respect ANP priority field; thus passing both ingress and egress traffic over to BANP',
        [{ op: 'priority', policy: 'old-priority-60-new-priority-40-example', value: 40 }],
        [
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 TCP/80 allow',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 TCP/8080 allow',
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/8080 allow',
        ],
      ),
    ],
  },
  {
    name: 'BaselineAdminNetworkPolicyEgressNamedPort',
    profile: 'experimental',
    upstream: 'baseline-admin-network-policy-experimental-egress-rules.go',
    manifest: 'base/baseline_admin_network_policy/standard-egress-udp-rules.yaml',
    objects: baselineAdminEgressUdp,
    steps: [
      step(
        "Should support an 'allow-egress' policy for named port",
        [{ op: 'namedPort', policy: 'default', direction: 'egress', i: 3, name: 'dns' }],
        [
          'hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-1 UDP/53 allow',
          'hufflepuff/cedric-diggory-1 -> gryffindor/harry-potter-1 UDP/5353 deny',
        ],
      ),
    ],
  },
  {
    name: 'BaselineAdminNetworkPolicyIngressNamedPort',
    profile: 'experimental',
    upstream: 'baseline-admin-network-policy-experimental-ingress-rules.go',
    manifest: 'base/baseline_admin_network_policy/standard-ingress-tcp-rules.yaml',
    objects: baselineAdminIngressTcp,
    steps: [
      step(
        "Should support an 'allow-ingress' policy for named port",
        [{ op: 'namedPort', policy: 'default', direction: 'ingress', i: 3, name: 'web' }],
        [
          'hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-1 TCP/80 allow',
          'hufflepuff/cedric-diggory-1 -> gryffindor/harry-potter-1 TCP/8080 deny',
        ],
      ),
    ],
  },
  {
    name: 'BaselineAdminNetworkPolicyEgressInlineCIDRPeers',
    profile: 'standard',
    upstream: 'baseline-admin-network-policy-standard-egress-inline-cidr-rules.go',
    manifest: 'base/baseline_admin_network_policy/standard-egress-inline-cidr-rules.yaml',
    objects: baselineAdminEgressInlineCidr,
    steps: [
      step(
        "Should support a 'deny-egress' rule policy for egress-cidr-peer",
        [],
        [
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 TCP/80 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 UDP/53 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 SCTP/9003 deny',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-0 TCP/80 deny',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-0 UDP/53 deny',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-0 SCTP/9003 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 UDP/53 allow',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 SCTP/9003 allow',
        ],
      ),
      step(
        "Should support an 'allow-egress' rule policy for egress-cidr-peer",
        [
          {
            op: 'prependEgressNetworks',
            policy: 'default',
            rule: { name: 'allow-egress-to-specific-podIPs', action: 'Allow' },
            pods: ['ravenclaw/luna-lovegood-0', 'hufflepuff/cedric-diggory-0'],
          },
        ],
        [
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 UDP/53 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 SCTP/9003 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-0 UDP/53 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-0 SCTP/9003 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 TCP/80 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 UDP/53 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 SCTP/9003 deny',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 TCP/80 deny',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 UDP/53 deny',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 SCTP/9003 deny',
        ],
      ),
    ],
  },
  {
    name: 'BaselineAdminNetworkPolicyEgressSCTP',
    profile: 'standard',
    upstream: 'baseline-admin-network-policy-standard-egress-sctp-rules.go',
    manifest: 'base/baseline_admin_network_policy/standard-egress-sctp-rules.yaml',
    objects: baselineAdminEgressSctp,
    steps: [
      step(
        "Should support an 'allow-egress' policy for SCTP protocol; ensure rule ordering is respected",
        [],
        [
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-0 SCTP/9003 allow',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-0 SCTP/9005 allow',
        ],
      ),
      step(
        "Should support an 'allow-egress' policy for SCTP protocol at the specified port",
        [],
        [
          'ravenclaw/luna-lovegood-0 -> hufflepuff/cedric-diggory-1 SCTP/9003 allow',
          'ravenclaw/luna-lovegood-1 -> hufflepuff/cedric-diggory-1 SCTP/9005 deny',
        ],
      ),
      step(
        "Should support an 'deny-egress' policy for SCTP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'default', direction: 'egress', i: 0, j: 1 }],
        [
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-1 SCTP/9003 deny',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-1 SCTP/9005 deny',
        ],
      ),
      step(
        "Should support a 'deny-egress' policy for SCTP protocol at the specified port",
        [],
        [
          'ravenclaw/luna-lovegood-0 -> slytherin/draco-malfoy-0 SCTP/9003 deny',
          'ravenclaw/luna-lovegood-1 -> slytherin/draco-malfoy-0 SCTP/9005 allow',
        ],
      ),
    ],
  },
  {
    name: 'BaselineAdminNetworkPolicyEgressTCP',
    profile: 'standard',
    upstream: 'baseline-admin-network-policy-standard-egress-tcp-rules.go',
    manifest: 'base/baseline_admin_network_policy/standard-egress-tcp-rules.yaml',
    objects: baselineAdminEgressTcp,
    steps: [
      step(
        "Should support an 'allow-egress' policy for TCP protocol; ensure rule ordering is respected",
        [],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 TCP/8080 allow',
        ],
      ),
      step(
        "Should support an 'allow-egress' policy for TCP protocol at the specified port",
        [],
        [
          'gryffindor/harry-potter-0 -> hufflepuff/cedric-diggory-1 TCP/8080 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 TCP/80 deny',
        ],
      ),
      step(
        "Should support an 'deny-egress' policy for TCP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'default', direction: 'egress', i: 0, j: 1 }],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-1 TCP/80 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 TCP/8080 deny',
        ],
      ),
      step(
        "Should support a 'deny-egress' policy for TCP protocol at the specified port",
        [],
        [
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 TCP/80 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/8080 allow',
        ],
      ),
    ],
  },
  {
    name: 'BaselineAdminNetworkPolicyEgressUDP',
    profile: 'standard',
    upstream: 'baseline-admin-network-policy-standard-egress-udp-rules.go',
    manifest: 'base/baseline_admin_network_policy/standard-egress-udp-rules.yaml',
    objects: baselineAdminEgressUdp,
    steps: [
      step(
        "Should support an 'allow-egress' policy for UDP protocol; ensure rule ordering is respected",
        [],
        [
          'hufflepuff/cedric-diggory-0 -> ravenclaw/luna-lovegood-0 UDP/53 allow',
          'hufflepuff/cedric-diggory-1 -> ravenclaw/luna-lovegood-0 UDP/5353 allow',
        ],
      ),
      step(
        "Should support an 'allow-egress' policy for UDP protocol at the specified port",
        [],
        [
          'hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-1 UDP/53 allow',
          'hufflepuff/cedric-diggory-1 -> gryffindor/harry-potter-1 UDP/5353 deny',
        ],
      ),
      step(
        "Should support an 'deny-egress' policy for UDP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'default', direction: 'egress', i: 0, j: 1 }],
        [
          'hufflepuff/cedric-diggory-0 -> ravenclaw/luna-lovegood-1 UDP/53 deny',
          'hufflepuff/cedric-diggory-1 -> ravenclaw/luna-lovegood-1 UDP/5353 deny',
        ],
      ),
      step(
        "Should support a 'deny-egress' policy for UDP protocol at the specified port",
        [],
        [
          'hufflepuff/cedric-diggory-0 -> slytherin/draco-malfoy-0 UDP/5353 deny',
          'hufflepuff/cedric-diggory-1 -> slytherin/draco-malfoy-0 UDP/53 allow',
        ],
      ),
    ],
  },
  {
    name: 'BaselineAdminNetworkPolicyGress',
    profile: 'standard',
    upstream: 'baseline-admin-network-policy-standard-gress-rules.go',
    manifest: 'base/baseline_admin_network_policy/standard-gress-rules-combined.yaml',
    objects: baselineAdminGressCombined,
    steps: [
      step(
        "Should support an 'allow-gress' policy across different protocols",
        [],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-0 TCP/80 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 UDP/53 allow',
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-0 SCTP/9003 allow',
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-0 TCP/80 allow',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-0 UDP/53 allow',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-0 SCTP/9003 allow',
        ],
      ),
      step(
        "Should support an 'allow-gress' policy across different protocols at the specified ports",
        [],
        [
          'gryffindor/harry-potter-0 -> hufflepuff/cedric-diggory-1 TCP/8080 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 TCP/80 deny',
          'gryffindor/harry-potter-0 -> hufflepuff/cedric-diggory-1 UDP/5353 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 UDP/53 deny',
          'gryffindor/harry-potter-0 -> hufflepuff/cedric-diggory-1 SCTP/9003 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 SCTP/9005 deny',
          'hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-1 TCP/80 allow',
          'hufflepuff/cedric-diggory-1 -> gryffindor/harry-potter-1 TCP/8080 deny',
          'hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-1 UDP/5353 allow',
          'hufflepuff/cedric-diggory-1 -> gryffindor/harry-potter-1 UDP/53 deny',
          'hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-1 SCTP/9003 allow',
          'hufflepuff/cedric-diggory-1 -> gryffindor/harry-potter-1 SCTP/9005 deny',
        ],
      ),
      step(
        "Should support an 'deny-gress' policy across different protocols",
        [
          { op: 'swap', policy: 'default', direction: 'egress', i: 0, j: 1 },
          { op: 'swap', policy: 'default', direction: 'ingress', i: 0, j: 1 },
        ],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-1 TCP/80 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 UDP/53 deny',
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-1 SCTP/9003 deny',
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-1 TCP/80 deny',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-1 UDP/53 deny',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-1 SCTP/9003 deny',
        ],
      ),
      step(
        "Should support a 'deny-gress' policy across different protocols at the specified ports",
        [],
        [
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 TCP/80 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 TCP/8080 allow',
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 UDP/53 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 UDP/5353 allow',
          'gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0 SCTP/9003 deny',
          'gryffindor/harry-potter-1 -> slytherin/draco-malfoy-0 SCTP/9005 allow',
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 TCP/80 deny',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 TCP/8080 allow',
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 UDP/53 deny',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 UDP/5353 allow',
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 SCTP/9003 deny',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 SCTP/9005 allow',
        ],
      ),
    ],
  },
  {
    name: 'BaselineAdminNetworkPolicyIngressSCTP',
    profile: 'standard',
    upstream: 'baseline-admin-network-policy-standard-ingress-sctp-rules.go',
    manifest: 'base/baseline_admin_network_policy/standard-ingress-sctp-rules.yaml',
    objects: baselineAdminIngressSctp,
    steps: [
      step(
        "Should support an 'allow-ingress' policy for SCTP protocol; ensure rule ordering is respected",
        [],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-0 SCTP/9003 allow',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-0 SCTP/9005 allow',
        ],
      ),
      step(
        "Should support an 'allow-ingress' policy for SCTP protocol at the specified port",
        [],
        [
          'hufflepuff/cedric-diggory-0 -> ravenclaw/luna-lovegood-1 SCTP/9003 allow',
          'hufflepuff/cedric-diggory-1 -> ravenclaw/luna-lovegood-1 SCTP/9005 deny',
        ],
      ),
      step(
        "Should support an 'deny-ingress' policy for SCTP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'default', direction: 'ingress', i: 0, j: 1 }],
        [
          'gryffindor/harry-potter-0 -> ravenclaw/luna-lovegood-1 SCTP/9003 deny',
          'gryffindor/harry-potter-1 -> ravenclaw/luna-lovegood-1 SCTP/9005 deny',
        ],
      ),
      step(
        "Should support a 'deny-ingress' policy for SCTP protocol at the specified port",
        [],
        [
          'slytherin/draco-malfoy-0 -> ravenclaw/luna-lovegood-0 SCTP/9003 deny',
          'slytherin/draco-malfoy-1 -> ravenclaw/luna-lovegood-0 SCTP/9005 allow',
        ],
      ),
    ],
  },
  {
    name: 'BaselineAdminNetworkPolicyIngressTCP',
    profile: 'standard',
    upstream: 'baseline-admin-network-policy-standard-ingress-tcp-rules.go',
    manifest: 'base/baseline_admin_network_policy/standard-ingress-tcp-rules.yaml',
    objects: baselineAdminIngressTcp,
    steps: [
      step(
        "Should support an 'allow-ingress' policy for TCP protocol; ensure rule ordering is respected",
        [],
        [
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-0 TCP/80 allow',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-0 TCP/8080 allow',
        ],
      ),
      step(
        "Should support an 'allow-ingress' policy for TCP protocol at the specified port",
        [],
        [
          'hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-1 TCP/80 allow',
          'hufflepuff/cedric-diggory-1 -> gryffindor/harry-potter-1 TCP/8080 deny',
        ],
      ),
      step(
        "Should support an 'deny-ingress' policy for TCP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'default', direction: 'ingress', i: 0, j: 1 }],
        [
          'ravenclaw/luna-lovegood-0 -> gryffindor/harry-potter-1 TCP/80 deny',
          'ravenclaw/luna-lovegood-1 -> gryffindor/harry-potter-1 TCP/8080 deny',
        ],
      ),
      step(
        "Should support a 'deny-ingress' policy for TCP protocol at the specified port",
        [],
        [
          'slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0 TCP/80 deny',
          'slytherin/draco-malfoy-1 -> gryffindor/harry-potter-0 TCP/8080 allow',
        ],
      ),
    ],
  },
  {
    name: 'BaselineAdminNetworkPolicyIngressUDP',
    profile: 'standard',
    upstream: 'baseline-admin-network-policy-standard-ingress-udp-rules.go',
    manifest: 'base/baseline_admin_network_policy/standard-ingress-udp-rules.yaml',
    objects: baselineAdminIngressUdp,
    steps: [
      step(
        "Should support an 'allow-ingress' policy for UDP protocol; ensure rule ordering is respected",
        [],
        [
          'ravenclaw/luna-lovegood-0 -> hufflepuff/cedric-diggory-0 UDP/53 allow',
          'ravenclaw/luna-lovegood-1 -> hufflepuff/cedric-diggory-0 UDP/5353 allow',
        ],
      ),
      step(
        "Should support an 'allow-ingress' policy for UDP protocol at the specified port",
        [],
        [
          'gryffindor/harry-potter-0 -> hufflepuff/cedric-diggory-1 UDP/53 allow',
          'gryffindor/harry-potter-1 -> hufflepuff/cedric-diggory-1 UDP/5353 deny',
        ],
      ),
      step(
        "Should support an 'deny-ingress' policy for UDP protocol; ensure rule ordering is respected",
        [{ op: 'swap', policy: 'default', direction: 'ingress', i: 0, j: 1 }],
        [
          'ravenclaw/luna-lovegood-0 -> hufflepuff/cedric-diggory-1 UDP/53 deny',
          'ravenclaw/luna-lovegood-1 -> hufflepuff/cedric-diggory-1 UDP/5353 deny',
        ],
      ),
      step(
        "Should support a 'deny-ingress' policy for UDP protocol at the specified port",
        [],
        [
          'slytherin/draco-malfoy-0 -> hufflepuff/cedric-diggory-0 UDP/5353 deny',
          'slytherin/draco-malfoy-1 -> hufflepuff/cedric-diggory-0 UDP/53 allow',
        ],
      ),
    ],
  },
];

const fullPod = (p: string): string => `network-policy-conformance-${p}`;
const clone = <T>(v: T): T => structuredClone(v);

function applyOp(objects: Raw[], op: ConformanceOp, podIP: (pod: string) => string): Raw[] {
  if (op.op === 'delete') {
    return objects.filter((o) => !(o['kind'] === op.kind && (o['metadata'] as Raw)['name'] === op.name));
  }
  const target = objects.find(
    (o) => String(o['kind']).endsWith('AdminNetworkPolicy') && (o['metadata'] as Raw)['name'] === op.policy,
  );
  if (!target) throw new Error(`conformance op on unknown policy ${op.policy}`);
  const spec = target['spec'] as Raw;
  switch (op.op) {
    case 'swap': {
      const rules = spec[op.direction] as Raw[];
      [rules[op.i], rules[op.j]] = [rules[op.j]!, rules[op.i]!];
      break;
    }
    case 'action':
      (spec[op.direction] as Raw[])[op.i]!['action'] = op.action;
      break;
    case 'namedPort':
      (spec[op.direction] as Raw[])[op.i]!['ports'] = [{ namedPort: op.name }];
      break;
    case 'priority':
      spec['priority'] = op.value;
      break;
    case 'prependEgressNetworks': {
      const networks = op.pods.map((p) => {
        const ip = podIP(fullPod(p));
        return `${ip}${ip.includes(':') ? '/128' : '/32'}`;
      });
      spec['egress'] = [{ ...op.rule, to: [{ networks }] }, ...((spec['egress'] as Raw[] | undefined) ?? [])];
      break;
    }
  }
  return objects;
}

/**
 * The conformance tests as AdminCases: each step carries the full set of policies present at that subtest (the
 * manifest with every earlier patch applied) and its probes with full `<namespace>/<pod>` keys.
 */
export function adminConformanceCases(podIP: (pod: string) => string): AdminCase[] {
  return CONFORMANCE_TESTS.map((t) => {
    let objects = clone(t.objects) as Raw[];
    return {
      name: t.name,
      steps: t.steps.map((s) => {
        for (const op of s.ops) objects = applyOp(objects, op, podIP);
        const probes: AdminProbe[] = s.probes.map((p) => ({ ...p, from: fullPod(p.from), to: fullPod(p.to) }));
        return { what: s.what, policies: clone(objects), probes };
      }),
    };
  });
}
