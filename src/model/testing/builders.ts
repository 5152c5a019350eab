// Model objects with the API's defaults, for tests and benchmarks of every consumer (proxy, DNS, ingress).
// Override what a case is about; the rest is what the converter would have produced for a minimal object.
import type { ObjectMeta, Service } from '../types.ts';

export function testMeta(namespace: string, name: string, over: Partial<ObjectMeta> = {}): ObjectMeta {
  return {
    namespace,
    name,
    uid: `uid-${namespace}-${name}`,
    resourceVersion: '1',
    labels: {},
    annotations: {},
    ...over,
  };
}

/** A ClusterIP Service 10.96.0.10 with one TCP port 80 -> 8080 selecting app=<name>, every other field defaulted. */
export function testService(namespace: string, name: string, over: Partial<Service> = {}): Service {
  return {
    kind: 'Service',
    meta: testMeta(namespace, name),
    type: 'ClusterIP',
    clusterIPs: ['10.96.0.10'],
    headless: false,
    ipFamilies: ['IPv4'],
    ports: [{ name: '', protocol: 'TCP', port: 80, targetPort: 8080 }],
    selector: { app: name },
    externalIPs: [],
    loadBalancerIPs: [],
    loadBalancerSourceRanges: [],
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    publishNotReadyAddresses: false,
    ...over,
  };
}
