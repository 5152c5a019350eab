// The manifests EndpointSlice controller: selection, readiness, terminating pods, named ports, hostnames, as tables.
import t from 'tap';
import {
  computeEndpointSlices,
  endpointSlicesFor,
  MAX_ENDPOINTS_PER_SLICE,
} from '../../../src/k8s/endpoint-controller.ts';
import type { EndpointSlice, Node, Pod, Service, ServicePort } from '../../../src/model/types.ts';

const meta = (name: string, labels: Record<string, string> = {}, extra: Partial<Pod['meta']> = {}) => ({
  namespace: 'shop',
  name,
  uid: `uid-${name}`,
  resourceVersion: '1',
  labels,
  annotations: {},
  ...extra,
});

function service(name: string, mut: Partial<Service> = {}): Service {
  return {
    kind: 'Service',
    meta: meta(name),
    type: 'ClusterIP',
    clusterIPs: ['10.96.0.10'],
    headless: false,
    ipFamilies: ['IPv4'],
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
    selector: { app: name },
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

function pod(name: string, ip: string | string[], mut: Partial<Pod> = {}, metaExtra: Partial<Pod['meta']> = {}): Pod {
  return {
    kind: 'Pod',
    meta: meta(name, { app: 'web' }, metaExtra),
    nodeName: 'node-1',
    hostNetwork: false,
    containerPorts: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
    phase: 'Running',
    podIPs: Array.isArray(ip) ? ip : [ip],
    ready: true,
    ...mut,
  };
}

/** endpoints as "ip ready/serving/terminating" strings, per slice "family ports" */
function summary(slices: EndpointSlice[]): string[] {
  return slices.map((s) =>
    `${s.addressType} [${s.ports.map((p) => `${p.name}:${p.port}`).join(',')}] ${s.endpoints.map((e) => `${e.addresses[0]}${e.conditions.ready ? 'R' : ''}${e.conditions.serving ? 'S' : ''}${e.conditions.terminating ? 'T' : ''}${e.hostname ? `(${e.hostname})` : ''}`).join(' ')}`.trim(),
  );
}

const named: ServicePort[] = [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'http' }];

t.test('controller rules as a table', async (t) => {
  const cases: { name: string; svc: Service; pods: Pod[]; want: string[] }[] = [
    {
      name: 'selects by labels, sorted by pod name',
      svc: service('web'),
      pods: [pod('b', '198.19.1.3'), pod('a', '198.19.1.2'), pod('x', '198.19.1.9', {}, { labels: { app: 'other' } })],
      want: ['IPv4 [http:8080] 198.19.1.2RS 198.19.1.3RS'],
    },
    {
      name: 'other namespace is not selected',
      svc: service('web'),
      pods: [pod('a', '198.19.1.2', {}, { namespace: 'other' })],
      want: ['IPv4 []'],
    },
    {
      name: 'not ready: neither ready nor serving',
      svc: service('web'),
      pods: [pod('a', '198.19.1.2', { ready: false })],
      want: ['IPv4 [http:8080] 198.19.1.2'],
    },
    {
      name: 'terminating ready pod: serving and terminating, not ready',
      svc: service('web'),
      pods: [pod('a', '198.19.1.2', {}, { deletionTimestamp: '2026-01-01T00:00:00Z' })],
      want: ['IPv4 [http:8080] 198.19.1.2ST'],
    },
    {
      name: 'publishNotReadyAddresses makes every endpoint ready',
      svc: service('web', { publishNotReadyAddresses: true }),
      pods: [pod('a', '198.19.1.2', { ready: false })],
      want: ['IPv4 [http:8080] 198.19.1.2R'],
    },
    {
      name: 'pods without IP and finished pods are left out',
      svc: service('web'),
      pods: [
        pod('a', []),
        pod('b', '198.19.1.3', { phase: 'Succeeded' }),
        pod('c', '198.19.1.4', { phase: 'Failed' }),
        pod('d', '198.19.1.5', { phase: 'Pending', ready: false }),
      ],
      want: ['IPv4 [http:8080] 198.19.1.5'],
    },
    {
      name: 'named targetPort resolved per pod; different numbers split slices',
      svc: service('web', { ports: named }),
      pods: [
        pod('a', '198.19.1.2'),
        pod('b', '198.19.1.3', { containerPorts: [{ name: 'http', containerPort: 9090, protocol: 'TCP' }] }),
      ],
      want: ['IPv4 [http:8080] 198.19.1.2RS', 'IPv4 [http:9090] 198.19.1.3RS'],
    },
    {
      name: 'pod lacking the named port is left out',
      svc: service('web', { ports: named }),
      pods: [pod('a', '198.19.1.2', { containerPorts: [] }), pod('b', '198.19.1.3')],
      want: ['IPv4 [http:8080] 198.19.1.3RS'],
    },
    {
      name: 'named port must match protocol',
      svc: service('web', { ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 'http' }] }),
      pods: [pod('a', '198.19.1.2')],
      want: ['IPv4 []'],
    },
    {
      name: 'dual-stack service: one slice per family',
      svc: service('web', { ipFamilies: ['IPv4', 'IPv6'] }),
      pods: [pod('a', ['198.19.1.2', 'fd00:1::2'])],
      want: ['IPv4 [http:8080] 198.19.1.2RS', 'IPv6 [http:8080] fd00:1::2RS'],
    },
    {
      name: 'single-stack v6 service ignores v4 pod IPs',
      svc: service('web', { ipFamilies: ['IPv6'] }),
      pods: [pod('a', ['198.19.1.2', 'fd00:1::2'])],
      want: ['IPv6 [http:8080] fd00:1::2RS'],
    },
    {
      name: 'headless without families gets both',
      svc: service('web', { headless: true, clusterIPs: [], ipFamilies: [] }),
      pods: [pod('a', ['198.19.1.2', 'fd00:1::2'])],
      want: ['IPv4 [http:8080] 198.19.1.2RS', 'IPv6 [http:8080] fd00:1::2RS'],
    },
    {
      name: 'hostname only when subdomain is the service',
      svc: service('web', { headless: true, clusterIPs: [] }),
      pods: [
        pod('a', '198.19.1.2', { hostname: 'a0', subdomain: 'web' }),
        pod('b', '198.19.1.3', { hostname: 'b0', subdomain: 'other' }),
      ],
      want: ['IPv4 [http:8080] 198.19.1.2RS(a0) 198.19.1.3RS'],
    },
    {
      name: 'no selector: no slices',
      svc: service('web', { selector: undefined }),
      pods: [pod('a', '198.19.1.2')],
      want: [],
    },
    {
      name: 'ExternalName: no slices',
      svc: service('web', { type: 'ExternalName', externalName: 'x.example' }),
      pods: [pod('a', '198.19.1.2')],
      want: [],
    },
    {
      name: 'no ports: endpoints with no ports',
      svc: service('web', { ports: [] }),
      pods: [pod('a', '198.19.1.2')],
      want: ['IPv4 [] 198.19.1.2RS'],
    },
  ];
  for (const c of cases) t.same(summary(endpointSlicesFor(c.svc, c.pods)), c.want, c.name);
});

t.test('slice metadata: labels, targetRef, nodeName, deterministic names, 100 per slice', async (t) => {
  const s = endpointSlicesFor(service('web'), [pod('a', '198.19.1.2')]);
  t.equal(s[0]!.serviceName, 'web');
  t.equal(s[0]!.meta.labels['kubernetes.io/service-name'], 'web');
  t.match(s[0]!.meta.name, /^web-[0-9a-f]{5}$/);
  t.same(s[0]!.endpoints[0]!.targetRef, { kind: 'Pod', namespace: 'shop', name: 'a', uid: 'uid-a' });
  t.equal(s[0]!.endpoints[0]!.nodeName, 'node-1');
  t.same(
    endpointSlicesFor(service('web'), [pod('a', '198.19.1.2')]).map((x) => x.meta.name),
    s.map((x) => x.meta.name),
    'names are stable',
  );
  const many = Array.from({ length: 250 }, (_, i) =>
    pod(`p${String(i).padStart(3, '0')}`, `198.19.${1 + (i >> 8)}.${i & 255}`),
  );
  const big = endpointSlicesFor(service('web'), many);
  t.same(
    big.map((x) => x.endpoints.length),
    [MAX_ENDPOINTS_PER_SLICE, MAX_ENDPOINTS_PER_SLICE, 50],
  );
  t.equal(new Set(big.map((x) => x.meta.name)).size, 3);
});

t.test('explicit slices are respected', async (t) => {
  const explicit: EndpointSlice = {
    kind: 'EndpointSlice',
    meta: { ...meta('web-manual'), labels: { 'kubernetes.io/service-name': 'web' } },
    serviceName: 'web',
    addressType: 'IPv4',
    endpoints: [{ addresses: ['192.0.2.1'], conditions: { ready: true, serving: true, terminating: false } }],
    ports: [],
  };
  const all = computeEndpointSlices(
    [service('web'), service('api')],
    [pod('a', '198.19.1.2'), pod('b', '198.19.1.3', {}, { labels: { app: 'api' } })],
    [explicit],
  );
  t.same(
    all.map((s) => `${s.serviceName}:${s.endpoints.map((e) => e.addresses[0]).join(',')}`),
    ['web:192.0.2.1', 'api:198.19.1.3'],
  );
});

t.test("topology: zone from the Pod's Node, hints from trafficDistribution (upstream trafficdist)", async (t) => {
  const node = (name: string, zone?: string): Node => ({
    kind: 'Node',
    meta: {
      ...meta(name, zone ? { 'topology.kubernetes.io/zone': zone } : {}),
      namespace: '',
    },
    podCIDRs: [],
    addresses: [],
    ready: true,
  });
  const nodes = [node('node-1', 'zone-a'), node('node-2', 'zone-b'), node('node-3')];
  const pods = [
    pod('a', '198.19.1.2'),
    pod('b', '198.19.2.2', { nodeName: 'node-2' }),
    pod('c', '198.19.3.2', { nodeName: 'node-3' }),
    pod('d', '198.19.1.3', { ready: false }),
  ];
  const eps = (td?: string) =>
    computeEndpointSlices([service('web', td ? { trafficDistribution: td } : {})], pods, [], nodes)[0]!.endpoints.map(
      (e) =>
        `${e.addresses[0]} zone=${e.zone ?? '-'} hints=${e.hints ? `${e.hints.forZones}|${e.hints.forNodes}` : '-'}`,
    );
  t.same(
    eps(),
    [
      '198.19.1.2 zone=zone-a hints=-',
      '198.19.2.2 zone=zone-b hints=-',
      '198.19.3.2 zone=- hints=-',
      '198.19.1.3 zone=zone-a hints=-',
    ],
    'no trafficDistribution: zones, no hints',
  );
  for (const td of ['PreferClose', 'PreferSameZone'])
    t.same(
      eps(td),
      [
        '198.19.1.2 zone=zone-a hints=zone-a|',
        '198.19.2.2 zone=zone-b hints=zone-b|',
        '198.19.3.2 zone=- hints=-',
        '198.19.1.3 zone=zone-a hints=-',
      ],
      `${td}: forZones for ready endpoints with a zone`,
    );
  t.same(
    eps('PreferSameNode'),
    [
      '198.19.1.2 zone=zone-a hints=zone-a|node-1',
      '198.19.2.2 zone=zone-b hints=zone-b|node-2',
      '198.19.3.2 zone=- hints=|node-3',
      '198.19.1.3 zone=zone-a hints=-',
    ],
    'PreferSameNode: forNodes too',
  );
  t.same(eps('PreferFarAway'), eps(), 'an unknown value: no hints');
});
