// Test fixtures for the proxy: Services and EndpointSlices built with mutators (after kube-proxy's
// makeTestService). IP plan: ClusterIPs 10.96.0.0/16, pods 198.19.0.0/16 (node1 198.19.1.0/24,
// node2 198.19.2.0/24), node addresses 198.18.0.0/24, external/LB IPs 203.0.113.0/24.
import type { Endpoint, EndpointSlice, Service, ServicePort } from '../../../src/model/types.ts';
import { testService } from '../../../src/model/testing/builders.ts';

export function makeService(ns: string, name: string, mutate: (s: Mutable<Service>) => void = () => {}): Service {
  const s: Mutable<Service> = {
    ...testService(ns, name),
    ports: [{ name: 'p80', protocol: 'TCP', port: 80, targetPort: 8080 }],
  };
  mutate(s);
  return s;
}

export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export interface EpSpec {
  ip: string;
  node?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

export function makeSlice(
  ns: string,
  svc: string,
  eps: EpSpec[],
  ports: ServicePort[] | { name: string; port: number; protocol?: 'TCP' | 'UDP' | 'SCTP' }[] = [
    { name: 'p80', port: 8080 },
  ],
  sliceName = `${svc}-abc`,
): EndpointSlice {
  return {
    kind: 'EndpointSlice',
    meta: {
      namespace: ns,
      name: sliceName,
      uid: `uid-${sliceName}`,
      resourceVersion: '1',
      labels: { 'kubernetes.io/service-name': svc },
      annotations: {},
    },
    serviceName: svc,
    addressType: eps[0]?.ip.includes(':') ? 'IPv6' : 'IPv4',
    endpoints: eps.map((e): Endpoint => ({
      addresses: [e.ip],
      conditions: {
        ready: e.ready ?? true,
        serving: e.serving ?? e.ready ?? true,
        terminating: e.terminating ?? false,
      },
      ...(e.node ? { nodeName: e.node } : {}),
    })),
    ports: ports.map((p) => ({
      name: p.name,
      port: 'targetPort' in p ? Number(p.targetPort) : p.port,
      protocol: p.protocol ?? 'TCP',
    })),
  };
}

/** The scenario the golden files of both renderers are made from. */
export function goldenScenario(): { services: Service[]; slices: EndpointSlice[] } {
  const services = [
    makeService('ns1', 'svc1', (s) => void (s.clusterIPs = ['10.96.0.41'])),
    makeService('ns1', 'noeps', (s) => {
      s.clusterIPs = ['10.96.0.42'];
      s.type = 'NodePort';
      s.ports = [{ name: '', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30042 }];
    }),
    makeService('ns2', 'web', (s) => {
      s.clusterIPs = ['10.96.0.43'];
      s.type = 'NodePort';
      s.ports = [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }];
      s.sessionAffinity = 'ClientIP';
      s.sessionAffinityTimeoutSeconds = 600;
    }),
    makeService('ns2', 'local', (s) => {
      s.clusterIPs = ['10.96.0.44'];
      s.type = 'LoadBalancer';
      s.ports = [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30044 }];
      s.externalTrafficPolicy = 'Local';
      s.healthCheckNodePort = 32044;
      s.loadBalancerIPs = ['203.0.113.44'];
      s.loadBalancerSourceRanges = ['192.0.2.0/24'];
    }),
    // Local policy, endpoint on node2 only: node1 keeps the short-circuit for its own and its pods' traffic
    makeService('ns2', 'remote', (s) => {
      s.clusterIPs = ['10.96.0.47'];
      s.type = 'LoadBalancer';
      s.ports = [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30047 }];
      s.externalTrafficPolicy = 'Local';
      s.healthCheckNodePort = 32047;
      s.loadBalancerIPs = ['203.0.113.47'];
      s.externalIPs = ['203.0.113.48'];
    }),
    makeService('ns2', 'dns', (s) => {
      s.clusterIPs = ['10.96.0.53'];
      s.ports = [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 5353 }];
      s.internalTrafficPolicy = 'Local';
      s.externalIPs = ['203.0.113.53'];
    }),
    makeService('ns3', 'term', (s) => void (s.clusterIPs = ['10.96.0.45'])),
    makeService('ns3', 'headless', (s) => {
      s.clusterIPs = [];
      s.headless = true;
    }),
    makeService('ns3', 'other-proxy', (s) => {
      s.clusterIPs = ['10.96.0.46'];
      s.meta = { ...s.meta, labels: { 'service.kubernetes.io/service-proxy-name': 'someone-else' } };
    }),
  ];
  const slices = [
    makeSlice('ns1', 'svc1', [
      { ip: '198.19.1.10', node: 'node1' },
      { ip: '198.19.2.10', node: 'node2' },
    ]),
    makeSlice(
      'ns2',
      'web',
      [
        { ip: '198.19.1.11', node: 'node1' },
        { ip: '198.19.2.11', node: 'node2' },
        { ip: '198.19.2.12', node: 'node2', ready: false },
      ],
      [{ name: 'http', port: 8080 }],
    ),
    makeSlice(
      'ns2',
      'local',
      [
        { ip: '198.19.1.12', node: 'node1' },
        { ip: '198.19.2.13', node: 'node2' },
      ],
      [{ name: 'http', port: 8080 }],
    ),
    makeSlice('ns2', 'remote', [{ ip: '198.19.2.47', node: 'node2' }], [{ name: 'http', port: 8080 }]),
    makeSlice('ns2', 'dns', [{ ip: '198.19.2.53', node: 'node2' }], [{ name: 'dns', port: 5353, protocol: 'UDP' }]),
    makeSlice('ns3', 'term', [
      { ip: '198.19.1.20', node: 'node1', ready: false, serving: true, terminating: true },
      { ip: '198.19.1.21', node: 'node1', ready: false, serving: false, terminating: true },
    ]),
    makeSlice('ns3', 'other-proxy', [{ ip: '198.19.1.30', node: 'node1' }]),
  ];
  return { services, slices };
}

/** An endpoint with topology hints (what the EndpointSlice controller writes for trafficDistribution). */
export interface HintedEp extends EpSpec {
  zones?: string[];
  nodes?: string[];
}

export function makeHintedSlice(ns: string, svc: string, eps: HintedEp[], portName = 'p80'): EndpointSlice {
  const s = makeSlice(ns, svc, eps, [{ name: portName, port: 8080 }]);
  return {
    ...s,
    endpoints: s.endpoints.map((e, i) => {
      const h = eps[i]!;
      return h.zones || h.nodes ? { ...e, hints: { forZones: h.zones ?? [], forNodes: h.nodes ?? [] } } : e;
    }),
  };
}

/**
 * The topology scenario of both renderers' golden files, seen from node1 in zone-a: zone hints on a plain
 * ClusterIP service, node hints on a NodePort service, a service whose one endpoint lacks its hint (no
 * filtering), and a Local-policy LoadBalancer whose local set ignores the hints.
 */
export function topologyScenario(): { services: Service[]; slices: EndpointSlice[] } {
  const services = [
    makeService('topo', 'zonal', (s) => void (s.clusterIPs = ['10.96.1.1'])),
    makeService('topo', 'samenode', (s) => {
      s.clusterIPs = ['10.96.1.2'];
      s.type = 'NodePort';
      s.ports = [{ name: 'p80', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30102 }];
    }),
    makeService('topo', 'fallback', (s) => void (s.clusterIPs = ['10.96.1.3'])),
    makeService('topo', 'etplocal', (s) => {
      s.clusterIPs = ['10.96.1.4'];
      s.type = 'LoadBalancer';
      s.ports = [{ name: 'p80', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30104 }];
      s.externalTrafficPolicy = 'Local';
      s.healthCheckNodePort = 32104;
      s.loadBalancerIPs = ['203.0.113.104'];
    }),
  ];
  const slices = [
    makeHintedSlice('topo', 'zonal', [
      { ip: '198.19.1.41', node: 'node1', zones: ['zone-a'] },
      { ip: '198.19.2.41', node: 'node2', zones: ['zone-b'] },
      { ip: '198.19.3.41', node: 'node3', zones: ['zone-a'] },
    ]),
    makeHintedSlice('topo', 'samenode', [
      { ip: '198.19.1.42', node: 'node1', zones: ['zone-a'], nodes: ['node1'] },
      { ip: '198.19.2.42', node: 'node2', zones: ['zone-b'], nodes: ['node2'] },
      { ip: '198.19.3.42', node: 'node3', zones: ['zone-a'], nodes: ['node3'] },
    ]),
    makeHintedSlice('topo', 'fallback', [
      { ip: '198.19.1.43', node: 'node1', zones: ['zone-a'] },
      { ip: '198.19.2.43', node: 'node2' },
    ]),
    makeHintedSlice('topo', 'etplocal', [
      { ip: '198.19.1.44', node: 'node1', zones: ['zone-b'] },
      { ip: '198.19.2.44', node: 'node2', zones: ['zone-a'] },
    ]),
  ];
  return { services, slices };
}
