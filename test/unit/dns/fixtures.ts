// Test cluster for the DNS tests. IP plan: ClusterIPs 10.0.0.0/16 (v6 fd00:10::/64), pod and endpoint
// addresses 172.17.0.0/16 (v6 fd00:172::/64). Namespaces: testns, other, empty.
import type { Endpoint, EndpointSlice, Namespace, Pod, Service, ServicePort } from '../../../src/model/types.ts';
import { FakeSource } from '../../../src/k8s/testing/fake-source.ts';

const meta = (namespace: string, name: string) => ({
  namespace,
  name,
  uid: `${namespace}-${name}`,
  resourceVersion: '1',
  labels: {},
  annotations: {},
});

export function ns(name: string): Namespace {
  return { kind: 'Namespace', meta: meta('', name) };
}

export function svc(namespace: string, name: string, mut: Partial<Service> = {}): Service {
  return {
    kind: 'Service',
    meta: meta(namespace, name),
    type: 'ClusterIP',
    clusterIPs: [],
    headless: false,
    ipFamilies: ['IPv4'],
    ports: [],
    externalIPs: [],
    loadBalancerIPs: [],
    loadBalancerSourceRanges: [],
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    publishNotReadyAddresses: false,
    ...mut,
  };
}

export function port(name: string, p: number, protocol: 'TCP' | 'UDP' = 'TCP'): ServicePort {
  return { name, port: p, protocol, targetPort: p };
}

export function ep(addresses: string[], mut: Partial<Endpoint> = {}): Endpoint {
  return { addresses, conditions: { ready: true, serving: true, terminating: false }, ...mut };
}

export function slice(
  namespace: string,
  service: string,
  endpoints: Endpoint[],
  ports: { name: string; port: number; protocol?: 'TCP' | 'UDP' }[],
  mut: Partial<EndpointSlice> = {},
): EndpointSlice {
  return {
    kind: 'EndpointSlice',
    meta: meta(namespace, `${service}-${Math.random().toString(36).slice(2, 7)}`),
    serviceName: service,
    addressType: 'IPv4',
    endpoints,
    ports: ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol ?? 'TCP' })),
    ...mut,
  };
}

export function pod(namespace: string, name: string, ip: string): Pod {
  return {
    kind: 'Pod',
    meta: meta(namespace, name),
    hostNetwork: false,
    containerPorts: [],
    phase: 'Running',
    podIPs: [ip],
    ready: true,
  };
}

/** The standard test cluster. */
export function testCluster(): FakeSource {
  const src = new FakeSource();
  for (const n of ['testns', 'other', 'empty']) src.put(ns(n));
  src.put(svc('testns', 'svc1', { clusterIPs: ['10.0.0.1'], ports: [port('http', 80), port('dns', 53, 'UDP')] }));
  src.put(
    slice(
      'testns',
      'svc1',
      [
        ep(['172.17.0.10'], { hostname: 'ep1a' }),
        ep(['172.17.0.11'], { targetRef: { kind: 'Pod', namespace: 'testns', name: 'svc1-pod-b' } }),
      ],
      [
        { name: 'http', port: 8080 },
        { name: 'dns', port: 5353, protocol: 'UDP' },
      ],
    ),
  );
  src.put(svc('testns', 'svc6', { clusterIPs: ['fd00:10::6'], ipFamilies: ['IPv6'], ports: [port('http', 80)] }));
  src.put(
    svc('testns', 'dual', {
      clusterIPs: ['10.0.0.2', 'fd00:10::2'],
      ipFamilies: ['IPv4', 'IPv6'],
      ports: [port('http', 80)],
    }),
  );
  src.put(svc('testns', 'unnamed', { clusterIPs: ['10.0.0.3'], ports: [port('', 8080)] }));
  src.put(svc('testns', 'noeps', { clusterIPs: ['10.0.0.4'], ports: [port('http', 80)] }));
  src.put(svc('testns', 'hdls1', { headless: true, ports: [port('http', 80)] }));
  src.put(
    slice(
      'testns',
      'hdls1',
      [
        ep(['172.17.0.20'], { hostname: 'web-0' }),
        ep(['172.17.0.21'], { hostname: 'web-1' }),
        ep(['172.17.0.22'], { conditions: { ready: false, serving: false, terminating: false }, hostname: 'web-2' }),
        ep(['172.17.0.23']),
      ],
      [{ name: 'http', port: 8080 }],
    ),
  );
  src.put(
    slice('testns', 'hdls1', [ep(['fd00:172::20'], { hostname: 'web-0' })], [{ name: 'http', port: 8080 }], {
      addressType: 'IPv6',
    }),
  );
  src.put(svc('testns', 'hdlsempty', { headless: true, ports: [port('http', 80)] }));
  src.put(svc('testns', 'hdlsnoports', { headless: true }));
  src.put(slice('testns', 'hdlsnoports', [ep(['172.17.0.30'])], []));
  src.put(svc('testns', 'ext', { type: 'ExternalName', externalName: 'example.net' }));
  src.put(svc('testns', 'extin', { type: 'ExternalName', externalName: 'svc1.testns.svc.cluster.local' }));
  src.put(pod('testns', 'p1', '172.17.0.40'));
  return src;
}
