// Synthetic cluster for the policy benchmarks: 100 pods in 10 namespaces on node-1 (pod i: 198.19.1.(10+i)),
// and N NetworkPolicies spread over the namespaces, each selecting a fifth of its namespace's pods, with
// namespace+pod selector peers, an ipBlock with except, numbered and named ports, egress for one in four.
// Pod 0 (ns-0/client, 198.19.1.10) and pod 10 (ns-0/server, 198.19.1.20) are the latency pair: both are isolated by
// the generated policies, and one explicit policy opens client -> server:8080 in both directions' verdicts, so the
// first connection is allowed after walking the client's egress and the server's ingress.
import type { Namespace, NetworkPolicy, Pod } from '../../src/model/types.ts';

const meta = (namespace: string, name: string, labels: Record<string, string> = {}, rv = '1') => ({
  namespace,
  name,
  uid: `uid-${namespace}-${name}`,
  resourceVersion: rv,
  labels,
  annotations: {},
});
const sel = (m: Record<string, string>) => ({ matchLabels: m, matchExpressions: [] });

export const POD_COUNT = 100;
export const NS_COUNT = 10;
export const podIp = (i: number) => `198.19.1.${10 + i}`;

export function namespaces(): Namespace[] {
  return Array.from({ length: NS_COUNT }, (_, i) => ({
    kind: 'Namespace',
    meta: meta('', `ns-${i}`, { 'kubernetes.io/metadata.name': `ns-${i}`, team: `t${i % 3}` }),
  }));
}

export function pods(): Pod[] {
  return Array.from({ length: POD_COUNT }, (_, i): Pod => {
    const ns = `ns-${i % NS_COUNT}`;
    const name = i === 0 ? 'client' : i === 10 ? 'server' : `p${i}`;
    return {
      kind: 'Pod',
      meta: meta(ns, name, { app: `a${Math.floor(i / NS_COUNT) % 5}`, role: `r${i % 2}`, pod: name }),
      nodeName: 'node-1',
      hostNetwork: false,
      containerPorts: [
        { name: 'http', containerPort: 8080, protocol: 'TCP' },
        { name: 'dns', containerPort: 53, protocol: 'UDP' },
      ],
      phase: 'Running',
      podIPs: [podIp(i)],
      ready: true,
    };
  });
}

/** Policy i (generation g: a change bumps its port). */
export function policy(i: number, g = 0): NetworkPolicy {
  const ns = `ns-${i % NS_COUNT}`;
  const egress = i % 4 === 0;
  return {
    kind: 'NetworkPolicy',
    meta: meta(ns, `np-${i}`, {}, String(1 + g)),
    podSelector: sel({ app: `a${i % 5}` }),
    policyTypes: egress ? ['Ingress', 'Egress'] : ['Ingress'],
    ingress: [
      {
        peers: [
          { namespaceSelector: sel({ team: `t${i % 3}` }), podSelector: sel({ role: `r${i % 2}` }) },
          { ipBlock: { cidr: `10.${i % 250}.0.0/16`, except: [`10.${i % 250}.${(i + g) % 250}.0/24`] } },
        ],
        ports: [
          { protocol: 'TCP', port: 1000 + ((i + g) % 500) },
          { protocol: 'TCP', port: 'http' },
          { protocol: 'UDP', port: 5000, endPort: 5000 + (i % 50) },
        ],
      },
    ],
    egress: egress
      ? [{ peers: [{ namespaceSelector: sel({ team: `t${(i + 1) % 3}` }) }], ports: [{ protocol: 'TCP', port: 443 }] }]
      : [],
  };
}

/** ns-0/server accepts ns-0/client on 8080 and the client may reach it (whatever else selects them). */
export function allowClient(): NetworkPolicy {
  return {
    kind: 'NetworkPolicy',
    meta: meta('ns-0', 'allow-client'),
    podSelector: sel({ pod: 'server' }),
    policyTypes: ['Ingress'],
    ingress: [{ peers: [{ podSelector: sel({ pod: 'client' }) }], ports: [{ protocol: 'TCP', port: 8080 }] }],
    egress: [],
  };
}

export function clientEgress(): NetworkPolicy {
  return {
    kind: 'NetworkPolicy',
    meta: meta('ns-0', 'client-egress'),
    podSelector: sel({ pod: 'client' }),
    policyTypes: ['Egress'],
    ingress: [],
    egress: [{ peers: [{ podSelector: sel({ pod: 'server' }) }], ports: [{ protocol: 'TCP', port: 8080 }] }],
  };
}
