// Shared fixtures of the policy unit tests: raw objects -> PolicyInput through the real converter.
import { convertAny } from '../../../src/k8s/convert.ts';
import type { Raw } from '../../../src/k8s/convert.ts';
import type { ClusterObject } from '../../../src/model/types.ts';
import type { PolicyInput } from '../../../src/policy/types.ts';

/** Converts raw objects; an object the converter rejects throws (fixtures must be valid). */
export function inputOf(raws: readonly Raw[]): PolicyInput {
  const objs: ClusterObject[] = [];
  for (const r of raws) {
    const c = convertAny(r);
    if (!c.ok) throw new Error(`fixture ${JSON.stringify(r).slice(0, 120)}: ${c.reason}`);
    objs.push(...c.value);
  }
  const of = <K extends ClusterObject['kind']>(k: K) =>
    objs.filter((o): o is Extract<ClusterObject, { kind: K }> => o.kind === k);
  return {
    pods: of('Pod'),
    namespaces: of('Namespace'),
    nodes: of('Node'),
    networkPolicies: of('NetworkPolicy'),
    adminNetworkPolicies: of('AdminNetworkPolicy'),
    baselineAdminNetworkPolicies: of('BaselineAdminNetworkPolicy'),
  };
}

/** Model object metadata (resourceVersion 1, no annotations). */
export const meta = (namespace: string, name: string, labels: Record<string, string> = {}) => ({
  namespace,
  name,
  uid: `uid-${namespace}-${name}`,
  resourceVersion: '1',
  labels,
  annotations: {},
});

/** Model pod addresses: x/a 10.244.1.1, x/b 10.244.1.2, ..., z/c 10.244.3.3. */
export const modelIP = (p: string): string => {
  const [ns, pod] = p.split('/') as [string, string];
  return `10.244.${'xyz'.indexOf(ns) + 1}.${'abc'.indexOf(pod) + 1}`;
};

const ns = (name: string, labels: Record<string, string> = {}): Raw => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, labels },
});
export const podRaw = (
  namespace: string,
  name: string,
  ips: string[],
  opts: { labels?: Record<string, string>; node?: string; ports?: Raw[]; hostNetwork?: boolean } = {},
): Raw => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace, labels: opts.labels ?? { app: name } },
  spec: {
    nodeName: opts.node ?? 'node-1',
    ...(opts.hostNetwork ? { hostNetwork: true } : {}),
    containers: [{ name: 'c', ports: opts.ports ?? [] }],
  },
  status: { phase: 'Running', podIPs: ips.map((ip) => ({ ip })) },
});

/**
 * A small cluster with every feature: namespaces shop (tier=front) and db, pods on two nodes (one dual-stack), a
 * hostNetwork pod, NetworkPolicies with named ports, endPort, ipBlock with except, an ANP with Allow/Deny/Pass and a
 * BANP. The golden files under test/golden/policy/ are rendered from it.
 */
export const MIXED: readonly Raw[] = [
  ns('shop', { tier: 'front' }),
  ns('db'),
  podRaw('shop', 'web', ['10.244.1.10', 'fd00:10:244:1::10'], {
    ports: [{ name: 'http', containerPort: 8080 }],
  }),
  podRaw('shop', 'worker', ['10.244.2.11'], { node: 'node-2' }),
  podRaw('db', 'pg', ['10.244.1.20'], { labels: { app: 'pg' }, ports: [{ name: 'pg', containerPort: 5432 }] }),
  podRaw('db', 'metrics', ['10.244.2.21'], { node: 'node-2', ports: [{ name: 'pg', containerPort: 9187 }] }),
  podRaw('kube-system', 'agent', ['192.168.0.1'], { hostNetwork: true }),
  {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'web-in', namespace: 'shop' },
    spec: {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [
        { from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.244.2.0/24'] } }], ports: [{ port: 'http' }] },
        {
          from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'worker' } } }],
          ports: [{ port: 9000, endPort: 9100 }],
        },
      ],
    },
  },
  {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'web-out', namespace: 'shop' },
    spec: {
      podSelector: { matchLabels: { app: 'web' } },
      policyTypes: ['Egress'],
      egress: [
        {
          to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'db' } } }],
          ports: [{ port: 'pg' }, { port: 53, protocol: 'UDP' }],
        },
      ],
    },
  },
  {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'ghost-port', namespace: 'db' },
    spec: { podSelector: { matchLabels: { app: 'pg' } }, ingress: [{ ports: [{ port: 'nobody' }] }] },
  },
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'guard' },
    spec: {
      priority: 10,
      subject: { namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'db' } } },
      ingress: [
        { name: 'pass-shop', action: 'Pass', from: [{ namespaces: { matchLabels: { tier: 'front' } } }] },
        { name: 'deny-rest', action: 'Deny', from: [{ namespaces: {} }] },
      ],
      egress: [
        {
          name: 'allow-dns',
          action: 'Allow',
          to: [{ networks: ['10.96.0.10/32'] }],
          ports: [{ portNumber: { protocol: 'UDP', port: 53 } }],
        },
        {
          name: 'deny-metrics-port',
          action: 'Deny',
          to: [{ pods: { namespaceSelector: {}, podSelector: {} } }],
          ports: [{ namedPort: 'pg' }],
        },
      ],
    },
  },
  {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: {
      subject: { namespaces: {} },
      egress: [
        {
          name: 'deny-range',
          action: 'Deny',
          to: [{ networks: ['10.96.0.0/16'] }],
          ports: [{ portRange: { protocol: 'TCP', start: 1, end: 1024 } }],
        },
      ],
    },
  },
];

/**
 * NetworkPolicy a/np-<i> for the renderer's set layout: ingress from every pod of namespace a and from `blocks`
 * ipBlocks 10.<i>.<4k>.0/22 each except 10.<i>.<4k + except>.0/24, on TCP `port` and UDP 5000-(5000 + i).
 */
export const rangedPolicy = (i: number, port: number, except = 1, blocks = 1): Raw => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: `np-${i}`, namespace: 'a' },
  spec: {
    podSelector: {},
    ingress: [
      {
        from: [
          { podSelector: {} },
          ...Array.from({ length: blocks }, (_, k) => ({
            ipBlock: { cidr: `10.${i}.${k * 4}.0/22`, except: [`10.${i}.${k * 4 + except}.0/24`] },
          })),
        ],
        ports: [{ port }, { protocol: 'UDP', port: 5000, endPort: 5000 + i }],
      },
    ],
  },
});
