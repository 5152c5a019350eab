// Synthetic cluster objects in API form (what the API server or a manifests directory holds): Service i in
// namespace ns-(i % namespaces) with a selector and two ports, and its EndpointSlice with `endpoints`
// ready endpoints on node-1, node-2, ... (pod IPs from 198.19.0.0/16, the lab's cluster CIDR). Shared by
// the cluster-state benchmark (fed to the API double) and the memory benchmark (written as manifests).
import type { Raw } from '../../src/k8s/convert.ts';

export interface ObjectOptions {
  /** Services are spread over ns-0 .. ns-(namespaces-1) (default 50) */
  readonly namespaces?: number;
  /** endpoints per EndpointSlice (default 3) */
  readonly endpoints?: number;
}

export const namespaceOf = (i: number, namespaces = 50): string => `ns-${i % namespaces}`;
export const serviceName = (i: number): string => `svc-${i}`;
export const clusterIPOf = (i: number): string => `10.96.${(i >> 8) & 255}.${i & 255}`;
export const endpointIPOf = (i: number, j: number, endpoints: number): string =>
  `198.19.${((i * endpoints + j) >> 8) & 255}.${(i * endpoints + j) & 255}`;

export function serviceObject(i: number, opts: ObjectOptions = {}): Raw {
  const name = serviceName(i);
  const ip = clusterIPOf(i);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: namespaceOf(i, opts.namespaces), labels: { app: name, tier: i % 2 ? 'web' : 'api' } },
    spec: {
      type: 'ClusterIP',
      clusterIP: ip,
      clusterIPs: [ip],
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      selector: { app: name },
      ports: [
        { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' },
        { name: 'metrics', port: 9090, targetPort: 9090, protocol: 'TCP' },
      ],
      sessionAffinity: 'None',
      internalTrafficPolicy: 'Cluster',
    },
    status: { loadBalancer: {} },
  };
}

export function endpointSliceObject(i: number, opts: ObjectOptions = {}): Raw {
  const name = serviceName(i);
  const ns = namespaceOf(i, opts.namespaces);
  const e = opts.endpoints ?? 3;
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${name}-abcde`,
      namespace: ns,
      labels: {
        'kubernetes.io/service-name': name,
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
      },
    },
    addressType: 'IPv4',
    endpoints: Array.from({ length: e }, (_, j) => ({
      addresses: [endpointIPOf(i, j, e)],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: `node-${j + 1}`,
      targetRef: {
        kind: 'Pod',
        namespace: ns,
        name: `${name}-pod-${j}`,
        uid: `00000000-0000-0000-0000-${String(i * e + j).padStart(12, '0')}`,
      },
    })),
    ports: [
      { name: 'http', port: 8080, protocol: 'TCP' },
      { name: 'metrics', port: 9090, protocol: 'TCP' },
    ],
  };
}

export function namespaceObject(name: string): Raw {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

export function nodeObject(name: string, ip: string): Raw {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name } },
    status: { addresses: [{ type: 'InternalIP', address: ip }], conditions: [{ type: 'Ready', status: 'True' }] },
  };
}
