// Conversion of raw API objects to the model: defaults, legacy forms and rejections, as tables.
import t from 'tap';
import {
  convertAny,
  convertEndpointSlice,
  convertEndpoints,
  convertIngress,
  convertIngressClass,
  convertNamespace,
  convertNode,
  convertPod,
  convertSecret,
  convertService,
} from '../../../src/k8s/convert.ts';
import type { Raw, Result } from '../../../src/k8s/convert.ts';
import type { ClusterObject } from '../../../src/model/types.ts';

const md = (name = 'web', extra: Raw = {}): Raw => ({
  name,
  namespace: 'shop',
  uid: 'u1',
  resourceVersion: '7',
  ...extra,
});
const svc = (spec: Raw, extra: Raw = {}): Raw => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: md(),
  spec,
  ...extra,
});

function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`expected ok, got: ${r.reason}`);
  return r.value;
}

t.test('Service: defaults and fields', async (t) => {
  const cases: { name: string; raw: Raw; want: Record<string, unknown> }[] = [
    {
      name: 'ClusterIP defaults',
      raw: svc({ clusterIP: '10.96.0.10', ports: [{ port: 53 }], selector: { app: 'dns' } }),
      want: {
        type: 'ClusterIP',
        clusterIPs: ['10.96.0.10'],
        headless: false,
        ipFamilies: ['IPv4'],
        ports: [{ name: '', protocol: 'TCP', port: 53, targetPort: 53 }],
        selector: { app: 'dns' },
        sessionAffinity: 'None',
        sessionAffinityTimeoutSeconds: 10800,
        externalTrafficPolicy: 'Cluster',
        internalTrafficPolicy: 'Cluster',
        publishNotReadyAddresses: false,
        externalIPs: [],
        loadBalancerIPs: [],
        loadBalancerSourceRanges: [],
      },
    },
    {
      name: 'dual-stack clusterIPs win over clusterIP',
      raw: svc({
        clusterIP: '10.96.0.1',
        clusterIPs: ['10.96.0.1', 'fd00::1'],
        ports: [{ port: 80, targetPort: 'http', name: 'web' }],
      }),
      want: {
        clusterIPs: ['10.96.0.1', 'fd00::1'],
        ipFamilies: ['IPv4', 'IPv6'],
        ports: [{ name: 'web', protocol: 'TCP', port: 80, targetPort: 'http' }],
      },
    },
    {
      name: 'headless',
      raw: svc({ clusterIP: 'None', selector: { a: 'b' } }),
      want: { headless: true, clusterIPs: [], ipFamilies: [] },
    },
    {
      name: 'headless via clusterIPs',
      raw: svc({ clusterIPs: ['None'], ipFamilies: ['IPv6'] }),
      want: { headless: true, clusterIPs: [], ipFamilies: ['IPv6'] },
    },
    {
      name: 'empty selector is no selector',
      raw: svc({ clusterIP: '10.0.0.1', selector: {} }),
      want: { selector: undefined },
    },
    {
      name: 'ExternalName',
      raw: svc({ type: 'ExternalName', externalName: 'db.example.com', clusterIP: '', selector: { x: 'y' } }),
      want: {
        type: 'ExternalName',
        externalName: 'db.example.com',
        clusterIPs: [],
        headless: false,
        selector: undefined,
        ipFamilies: [],
      },
    },
    {
      name: 'NodePort keeps nodePort and external policy, numeric-string targetPort',
      raw: svc({
        type: 'NodePort',
        clusterIP: '10.0.0.2',
        externalTrafficPolicy: 'Local',
        ports: [{ port: 80, targetPort: '8080', nodePort: 30080, protocol: 'UDP' }],
      }),
      want: {
        type: 'NodePort',
        externalTrafficPolicy: 'Local',
        ports: [{ name: '', protocol: 'UDP', port: 80, targetPort: 8080, nodePort: 30080 }],
      },
    },
    {
      name: 'Global is Cluster',
      raw: svc({ type: 'LoadBalancer', clusterIP: '10.0.0.3', externalTrafficPolicy: 'Global' }),
      want: { externalTrafficPolicy: 'Cluster' },
    },
    {
      name: 'LoadBalancer status, health check node port, source ranges',
      raw: svc(
        {
          type: 'LoadBalancer',
          clusterIP: '10.0.0.4',
          externalTrafficPolicy: 'Local',
          healthCheckNodePort: 32000,
          loadBalancerSourceRanges: [' 192.0.2.0/24'],
        },
        { status: { loadBalancer: { ingress: [{ ip: '203.0.113.9' }, { hostname: 'lb.example' }] } } },
      ),
      want: {
        loadBalancerIPs: ['203.0.113.9'],
        healthCheckNodePort: 32000,
        loadBalancerSourceRanges: ['192.0.2.0/24'],
      },
    },
    {
      name: 'ClientIP affinity with timeout',
      raw: svc({
        clusterIP: '10.0.0.5',
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
      }),
      want: { sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 60 },
    },
    {
      name: 'namespace defaults to default',
      raw: { metadata: { name: 'x' }, spec: {} },
      want: { meta: { namespace: 'default', name: 'x', uid: '', resourceVersion: '', labels: {}, annotations: {} } },
    },
    {
      name: 'numeric labels become text',
      raw: { metadata: { name: 'x', labels: { v: 1 } }, spec: {} },
      want: {
        meta: { namespace: 'default', name: 'x', uid: '', resourceVersion: '', labels: { v: '1' }, annotations: {} },
      },
    },
  ];
  for (const c of cases) {
    const got = value(convertService(c.raw)) as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(c.want)) t.same(got[k], v, `${c.name}: ${k}`);
  }
});

t.test('Service: invalid objects are rejected with a reason', async (t) => {
  const cases: { name: string; raw: Raw; reason: RegExp }[] = [
    { name: 'missing name', raw: { metadata: {}, spec: {} }, reason: /metadata.name is required/ },
    { name: 'bad name', raw: { metadata: { name: 'Bad_Name' } }, reason: /DNS-1123/ },
    { name: 'bad clusterIP', raw: svc({ clusterIP: '10.0.0.300' }), reason: /clusterIPs\[0\].*not an IP/ },
    {
      name: 'port out of range',
      raw: svc({ clusterIP: '10.0.0.1', ports: [{ port: 70000 }] }),
      reason: /port 70000 is out of range/,
    },
    { name: 'port zero', raw: svc({ clusterIP: '10.0.0.1', ports: [{ port: 0 }] }), reason: /out of range/ },
    {
      name: 'targetPort out of range',
      raw: svc({ clusterIP: '10.0.0.1', ports: [{ port: 80, targetPort: 65536 }] }),
      reason: /targetPort 65536/,
    },
    {
      name: 'unknown protocol',
      raw: svc({ clusterIP: '10.0.0.1', ports: [{ port: 80, protocol: 'ICMP' }] }),
      reason: /"ICMP" is not TCP, UDP or SCTP/,
    },
    {
      name: 'unnamed port among several',
      raw: svc({ ports: [{ port: 80 }, { port: 81, name: 'b' }] }),
      reason: /name is required when/,
    },
    {
      name: 'duplicate port',
      raw: svc({
        ports: [
          { port: 80, name: 'a' },
          { port: 80, name: 'b' },
        ],
      }),
      reason: /appears twice/,
    },
    { name: 'unknown type', raw: svc({ type: 'Magic' }), reason: /spec.type/ },
    { name: 'ExternalName without name', raw: svc({ type: 'ExternalName' }), reason: /externalName is required/ },
    {
      name: 'two IPv4 clusterIPs',
      raw: svc({ clusterIPs: ['10.0.0.1', '10.0.0.2'] }),
      reason: /two addresses of one family/,
    },
    { name: 'bad affinity', raw: svc({ sessionAffinity: 'Cookie' }), reason: /sessionAffinity/ },
    {
      name: 'affinity timeout',
      raw: svc({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } }),
      reason: /timeoutSeconds 0/,
    },
    { name: 'bad external IP', raw: svc({ externalIPs: ['nope'] }), reason: /externalIPs\[0\]/ },
    { name: 'ports not a list', raw: svc({ ports: { port: 80 } }), reason: /spec.ports must be a list/ },
    {
      name: 'port as text name too long',
      raw: svc({ ports: [{ port: 80, targetPort: 'a-very-long-port-name' }] }),
      reason: /not a valid port name/,
    },
  ];
  for (const c of cases) {
    const r = convertService(c.raw);
    t.equal(r.ok, false, c.name);
    if (!r.ok) t.match(r.reason, c.reason, c.name);
  }
});

t.test('EndpointSlice: condition defaults, validation', async (t) => {
  const slice = (endpoints: unknown[], extra: Raw = {}): Raw => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: md('web-abc', { labels: { 'kubernetes.io/service-name': 'web' } }),
    addressType: 'IPv4',
    endpoints,
    ports: [{ name: 'http', port: 8080 }],
    ...extra,
  });
  const ok: { name: string; raw: Raw; want: unknown }[] = [
    {
      name: 'nil conditions: ready and serving',
      raw: slice([{ addresses: ['198.19.1.5'] }]),
      want: { ready: true, serving: true, terminating: false },
    },
    {
      name: 'serving follows ready',
      raw: slice([{ addresses: ['198.19.1.5'], conditions: { ready: false } }]),
      want: { ready: false, serving: false, terminating: false },
    },
    {
      name: 'terminating but serving',
      raw: slice([{ addresses: ['198.19.1.5'], conditions: { ready: false, serving: true, terminating: true } }]),
      want: { ready: false, serving: true, terminating: true },
    },
  ];
  for (const c of ok) {
    const s = value(convertEndpointSlice(c.raw));
    t.same(s.endpoints[0]!.conditions, c.want, c.name);
    t.equal(s.serviceName, 'web');
    t.same(s.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
  }
  const bad: { name: string; raw: Raw; reason: RegExp }[] = [
    { name: 'v6 address in v4 slice', raw: slice([{ addresses: ['fd00::1'] }]), reason: /not an IPv4 address/ },
    { name: 'garbage address', raw: slice([{ addresses: ['1.2.3'] }]), reason: /not an IPv4/ },
    { name: 'no addresses', raw: slice([{ addresses: [] }]), reason: /addresses is empty/ },
    { name: 'unknown addressType', raw: slice([], { addressType: 'IPX' }), reason: /addressType/ },
    { name: 'port out of range', raw: slice([], { ports: [{ port: 99999 }] }), reason: /out of range/ },
    { name: 'bad protocol', raw: slice([], { ports: [{ port: 1, protocol: 'tcp' }] }), reason: /not TCP/ },
  ];
  for (const c of bad) {
    const r = convertEndpointSlice(c.raw);
    t.equal(r.ok, false, c.name);
    if (!r.ok) t.match(r.reason, c.reason, c.name);
  }
  const fq = value(
    convertEndpointSlice(
      slice(
        [
          {
            addresses: ['db.example.com'],
            hostname: 'db-0',
            nodeName: 'node-1',
            targetRef: { kind: 'Pod', name: 'db-0' },
          },
        ],
        { addressType: 'FQDN' },
      ),
    ),
  );
  t.same(fq.endpoints[0], {
    addresses: ['db.example.com'],
    conditions: { ready: true, serving: true, terminating: false },
    hostname: 'db-0',
    nodeName: 'node-1',
    targetRef: { kind: 'Pod', namespace: 'shop', name: 'db-0' },
  });
});

t.test('topology: EndpointSlice hints and Service trafficDistribution', async (t) => {
  const slice = (hints: unknown): Raw => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: md('web-abc', { labels: { 'kubernetes.io/service-name': 'web' } }),
    addressType: 'IPv4',
    endpoints: [{ addresses: ['198.19.1.5'], nodeName: 'node-1', zone: 'zone-a', hints }],
    ports: [{ name: 'http', port: 8080 }],
  });
  const ep = (hints: unknown) => value(convertEndpointSlice(slice(hints))).endpoints[0]!;
  t.same(ep({ forZones: [{ name: 'zone-a' }, { name: 'zone-b' }] }).hints, {
    forZones: ['zone-a', 'zone-b'],
    forNodes: [],
  });
  t.same(ep({ forZones: [{ name: 'zone-a' }], forNodes: [{ name: 'node-1' }] }).hints, {
    forZones: ['zone-a'],
    forNodes: ['node-1'],
  });
  t.equal(ep(undefined).hints, undefined, 'no hints');
  t.same(ep({}).hints, { forZones: [], forNodes: [] }, 'empty hints: none of either kind');
  t.equal(ep(undefined).zone, 'zone-a');
  const bad: [unknown, RegExp][] = [
    [{ forZones: [{}] }, /endpoints\[0\]\.hints\.forZones\[0\]\.name is required/],
    [{ forZones: [{ name: 7 }] }, /hints\.forZones\[0\]\.name must be a string/],
    [{ forNodes: [{ name: 'Node_1' }] }, /hints\.forNodes\[0\]\.name "Node_1" is not a valid DNS-1123 subdomain/],
    [{ forZones: 'zone-a' }, /hints\.forZones must be a list/],
    ['zone-a', /hints must be an object/],
  ];
  for (const [hints, reason] of bad) {
    const r = convertEndpointSlice(slice(hints));
    t.equal(r.ok, false, JSON.stringify(hints));
    if (!r.ok) t.match(r.reason, reason);
  }
  const spec = { clusterIP: '10.96.0.10', ports: [{ port: 80 }] };
  t.equal(value(convertService(svc(spec))).trafficDistribution, undefined);
  for (const td of ['PreferClose', 'PreferSameZone', 'PreferSameNode', 'SomethingNewer'])
    t.equal(value(convertService(svc({ ...spec, trafficDistribution: td }))).trafficDistribution, td, td);
  const r = convertService(svc({ ...spec, trafficDistribution: 3 }));
  t.equal(r.ok, false);
  if (!r.ok) t.match(r.reason, /spec\.trafficDistribution must be a string/);
});

t.test('legacy Endpoints become one slice per subset and family', async (t) => {
  const raw: Raw = {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: md('web'),
    subsets: [
      {
        addresses: [{ ip: '198.19.1.5', nodeName: 'node-1' }, { ip: 'fd00::5' }],
        notReadyAddresses: [{ ip: '198.19.1.6', hostname: 'w6' }],
        ports: [{ name: 'http', port: 80 }],
      },
      { addresses: [{ ip: '198.19.2.7' }], ports: [{ port: 53, protocol: 'UDP' }] },
    ],
  };
  const slices = value(convertEndpoints(raw));
  t.same(
    slices.map((s) => [
      s.meta.name,
      s.addressType,
      s.serviceName,
      s.endpoints.map((e) => [e.addresses[0], e.conditions.ready]),
    ]),
    [
      [
        'web-legacy-0-v4',
        'IPv4',
        'web',
        [
          ['198.19.1.5', true],
          ['198.19.1.6', false],
        ],
      ],
      ['web-legacy-0-v6', 'IPv6', 'web', [['fd00::5', true]]],
      ['web-legacy-1-v4', 'IPv4', 'web', [['198.19.2.7', true]]],
    ],
  );
  t.equal(slices[0]!.endpoints[1]!.hostname, 'w6');
  t.equal(slices[0]!.meta.labels['kubernetes.io/service-name'], 'web');
  t.same(slices[2]!.ports, [{ name: '', port: 53, protocol: 'UDP' }]);
  const bad = convertEndpoints({ metadata: md('web'), subsets: [{ addresses: [{ ip: 'x' }] }] });
  t.equal(bad.ok, false);
  const viaAny = value(convertAny(raw));
  t.equal(viaAny.length, 3, 'convertAny accepts legacy Endpoints');
});

t.test('Pod: IPs, readiness, ports, phase', async (t) => {
  const pod = (spec: Raw, status: Raw, m: Raw = {}): Raw => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: md('web-1', m),
    spec,
    status,
  });
  const p = value(
    convertPod(
      pod(
        {
          nodeName: 'node-1',
          hostname: 'web-1',
          subdomain: 'web',
          containers: [
            {
              ports: [
                { name: 'http', containerPort: 8080 },
                { containerPort: 53, protocol: 'UDP', hostPort: 5353 },
              ],
            },
          ],
          initContainers: [
            { restartPolicy: 'Always', ports: [{ name: 'side', containerPort: 9000 }] },
            { ports: [{ name: 'init', containerPort: 1 }] },
          ],
        },
        {
          phase: 'Running',
          podIP: '198.19.1.5',
          podIPs: [{ ip: '198.19.1.5' }, { ip: 'fd00:1::5' }],
          hostIP: '198.18.0.11',
          conditions: [{ type: 'Ready', status: 'True' }],
        },
        { deletionTimestamp: '2026-01-01T00:00:00Z' },
      ),
    ),
  );
  t.same(p.podIPs, ['198.19.1.5', 'fd00:1::5']);
  t.equal(p.ready, true);
  t.equal(p.meta.deletionTimestamp, '2026-01-01T00:00:00Z');
  t.same(p.containerPorts, [
    { name: 'side', containerPort: 9000, protocol: 'TCP' },
    { name: 'http', containerPort: 8080, protocol: 'TCP' },
    { containerPort: 53, protocol: 'UDP', hostPort: 5353 },
  ]);
  t.same(
    [p.nodeName, p.hostname, p.subdomain, p.hostIP, p.phase, p.hostNetwork],
    ['node-1', 'web-1', 'web', '198.18.0.11', 'Running', false],
  );

  const cases: { name: string; raw: Raw; want?: Partial<Record<string, unknown>>; reason?: RegExp }[] = [
    {
      name: 'podIP only',
      raw: pod({}, { podIP: '198.19.2.9' }),
      want: { podIPs: ['198.19.2.9'], phase: 'Pending', ready: false },
    },
    { name: 'not ready', raw: pod({}, { conditions: [{ type: 'Ready', status: 'False' }] }), want: { ready: false } },
    {
      name: 'Date deletionTimestamp',
      raw: pod({}, {}, { deletionTimestamp: new Date('2026-01-02T00:00:00Z') }),
      want: {},
    },
    { name: 'bad podIP', raw: pod({}, { podIP: '999.1.1.1' }), reason: /status.podIP/ },
    {
      name: 'bad containerPort',
      raw: pod({ containers: [{ ports: [{ containerPort: 0 }] }] }, {}),
      reason: /containerPort 0 is out of range/,
    },
    { name: 'bad phase', raw: pod({}, { phase: 'Sleeping' }), reason: /phase/ },
  ];
  for (const c of cases) {
    const r = convertPod(c.raw);
    if (c.reason) {
      t.equal(r.ok, false, c.name);
      if (!r.ok) t.match(r.reason, c.reason, c.name);
    } else {
      const v = value(r) as unknown as Record<string, unknown>;
      for (const [k, w] of Object.entries(c.want ?? {})) t.same(v[k], w, `${c.name}: ${k}`);
    }
  }
});

t.test('Node, Namespace, IngressClass', async (t) => {
  const n = value(
    convertNode({
      metadata: { name: 'node-1' },
      spec: { podCIDR: '198.19.1.0/24' },
      status: {
        addresses: [
          { type: 'InternalIP', address: '198.18.0.11' },
          { type: 'Hostname', address: 'node-1' },
        ],
        conditions: [{ type: 'Ready', status: 'True' }],
      },
    }),
  );
  t.same([n.meta.namespace, n.podCIDRs, n.addresses.length, n.ready], ['', ['198.19.1.0/24'], 2, true]);
  t.same(
    value(convertNode({ metadata: { name: 'n2' }, spec: { podCIDR: 'x', podCIDRs: ['198.19.2.0/24', 'fd00:2::/64'] } }))
      .podCIDRs,
    ['198.19.2.0/24', 'fd00:2::/64'],
  );
  for (const [name, raw, reason] of [
    ['bad CIDR', { metadata: { name: 'n' }, spec: { podCIDRs: ['198.19.1.0/33'] } }, /not a CIDR/],
    [
      'bad InternalIP',
      { metadata: { name: 'n' }, status: { addresses: [{ type: 'InternalIP', address: 'node-1' }] } },
      /not an IP/,
    ],
  ] as const) {
    const r = convertNode(raw as Raw);
    t.equal(r.ok, false, name);
    if (!r.ok) t.match(r.reason, reason);
  }
  t.same(
    value(convertNamespace({ metadata: { name: 'shop', labels: { team: 'a' } } })).meta.labels,
    { team: 'a', 'kubernetes.io/metadata.name': 'shop' },
    'the API server labels every namespace with its name; manifests that lack it get it at the edge',
  );
  t.equal(convertNamespace({ metadata: { name: 'a.b' } }).ok, false, 'namespace names are labels');
  const ic = value(
    convertIngressClass({
      metadata: { name: 'kdp', annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' } },
      spec: { controller: 'kdp.dev/ingress' },
    }),
  );
  t.same([ic.controller, ic.isDefault], ['kdp.dev/ingress', true]);
  t.equal(convertIngressClass({ metadata: { name: 'x' }, spec: {} }).ok, false);
});

t.test('Ingress', async (t) => {
  const ing = value(
    convertIngress({
      metadata: md('shop', { annotations: { 'kubernetes.io/ingress.class': 'legacy' } }),
      spec: {
        defaultBackend: { service: { name: 'fallback', port: { number: 80 } } },
        tls: [{ hosts: ['shop.example'], secretName: 'shop-tls' }],
        rules: [
          {
            host: 'shop.example',
            http: {
              paths: [
                { path: '/api', pathType: 'Prefix', backend: { service: { name: 'api', port: { name: 'http' } } } },
                { pathType: 'ImplementationSpecific', backend: { resource: { kind: 'Bucket', name: 'b' } } },
              ],
            },
          },
          { http: { paths: [] } },
        ],
      },
      status: { loadBalancer: { ingress: [{ ip: '198.18.0.11' }] } },
    }),
  );
  t.equal(ing.ingressClassName, undefined, 'the deprecated annotation is not an IngressClass name');
  t.equal(
    ing.meta.annotations['kubernetes.io/ingress.class'],
    'legacy',
    'it stays an annotation (compared with --ingress-class)',
  );
  t.same(ing.defaultBackend, { service: { name: 'fallback', port: { number: 80 } } });
  t.same(
    ing.rules[0]!.paths.map((p) => [p.path, p.pathType]),
    [
      ['/api', 'Prefix'],
      ['/', 'ImplementationSpecific'],
    ],
  );
  t.equal(ing.rules[1]!.host, undefined);
  t.same(ing.tls, [{ hosts: ['shop.example'], secretName: 'shop-tls' }]);
  t.same(ing.loadBalancer, [{ ip: '198.18.0.11' }]);
  const bad: [string, Raw, RegExp][] = [
    [
      'missing pathType',
      {
        metadata: md(),
        spec: {
          rules: [{ http: { paths: [{ path: '/', backend: { service: { name: 's', port: { number: 1 } } } }] } }],
        },
      },
      /pathType is required/,
    ],
    [
      'both port forms',
      { metadata: md(), spec: { defaultBackend: { service: { name: 's', port: { number: 1, name: 'x' } } } } },
      /exactly one/,
    ],
    [
      'port out of range',
      { metadata: md(), spec: { defaultBackend: { service: { name: 's', port: { number: 0 } } } } },
      /out of range/,
    ],
    [
      'relative path',
      {
        metadata: md(),
        spec: {
          rules: [
            {
              http: {
                paths: [{ path: 'a', pathType: 'Exact', backend: { service: { name: 's', port: { number: 1 } } } }],
              },
            },
          ],
        },
      },
      /absolute/,
    ],
    ['bad host', { metadata: md(), spec: { rules: [{ host: 'Bad Host' }] } }, /not a DNS name/],
  ];
  for (const [name, raw, reason] of bad) {
    const r = convertIngress(raw);
    t.equal(r.ok, false, name);
    if (!r.ok) t.match(r.reason, reason, name);
  }
});

t.test('Secret: only kubernetes.io/tls', async (t) => {
  const crt = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  const key = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n';
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const s = value(
    convertSecret({
      metadata: md('tls'),
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': b64(crt), 'tls.key': b64(key) },
    }),
  );
  t.same([s.certPem, s.keyPem], [crt, key]);
  t.equal(
    value(
      convertSecret({ metadata: md('tls'), type: 'kubernetes.io/tls', stringData: { 'tls.crt': crt, 'tls.key': key } }),
    ).certPem,
    crt,
    'stringData (manifests) works',
  );
  const opaque = convertSecret({ metadata: md('x'), type: 'Opaque', data: {} });
  t.equal(opaque.ok, false);
  t.same(
    convertAny({ apiVersion: 'v1', kind: 'Secret', metadata: md('x'), type: 'Opaque' }),
    { ok: true, value: [] },
    'convertAny skips non-TLS Secrets silently',
  );
  t.equal(
    convertSecret({
      metadata: md('tls'),
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': b64('junk'), 'tls.key': b64(key) },
    }).ok,
    false,
    'no PEM',
  );
});

t.test('convertAny dispatches on kind and apiVersion', async (t) => {
  t.same(
    convertAny({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: md() }),
    { ok: true, value: [] },
    'unused kinds are ignored',
  );
  t.match(convertAny({ apiVersion: 'extensions/v1beta1', kind: 'Ingress', metadata: md() }), {
    ok: false,
    reason: /not supported/,
  });
  t.match(convertAny({ metadata: md() }), { ok: false, reason: /kind is required/ });
  t.match(convertAny({ kind: 'Service', metadata: md() }), { ok: false, reason: /apiVersion is required/ });
  const r = value(convertAny(svc({ clusterIP: '10.0.0.1' })));
  t.equal(r[0]!.kind, 'Service');
});

// ---------------------------------------------------------------- Gateway API
const GW = 'gateway.networking.k8s.io';
const gwObj = (kind: string, spec: Raw, extra: Raw = {}): Raw => ({
  apiVersion: kind === 'ReferenceGrant' ? `${GW}/v1beta1` : `${GW}/v1`,
  kind,
  metadata: md('x', { generation: 4, creationTimestamp: '2026-01-01T00:00:00Z' }),
  spec,
  ...extra,
});
const listener = (l: Raw = {}): Raw => ({ name: 'http', port: 80, protocol: 'HTTP', ...l });

t.test('Gateway API: defaults the CRD applies', async (t) => {
  const gw = value(convertGatewayKind('Gateway', { gatewayClassName: 'kdp', listeners: [listener()] }));
  t.match(gw, {
    kind: 'Gateway',
    generation: 4,
    listeners: [{ name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { namespacesFrom: 'Same', kinds: [] } }],
    addresses: [],
  });
  const route = value(
    convertGatewayKind('HTTPRoute', {
      parentRefs: [{ name: 'gw', sectionName: 'http' }],
      rules: [{ backendRefs: [{ name: 'web', port: 80 }], matches: [{ headers: [{ name: 'x', value: 'y' }] }] }],
    }),
  );
  t.match(route, {
    created: '2026-01-01T00:00:00Z',
    parentRefs: [{ group: GW, kind: 'Gateway', name: 'gw', sectionName: 'http' }],
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [{ type: 'Exact', name: 'x', value: 'y' }] }],
        backendRefs: [{ group: '', kind: 'Service', name: 'web', port: 80, weight: 1, filters: [] }],
      },
    ],
  });
  const empty = value(convertGatewayKind('HTTPRoute', { parentRefs: [{ name: 'gw' }] }));
  t.same(
    empty.kind === 'HTTPRoute' && empty.rules,
    [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }],
        filters: [],
        backendRefs: [],
      },
    ],
    'no rules: one rule matching everything, no backend',
  );
  const redirect = value(
    convertGatewayKind('HTTPRoute', {
      rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https' } }] }],
    }),
  );
  t.match(redirect, { rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 302 } }] }] });
  t.match(value(convertGatewayKind('GatewayClass', { controllerName: 'kdp.dev/gateway-controller' })), {
    kind: 'GatewayClass',
    controllerName: 'kdp.dev/gateway-controller',
    generation: 4,
  });
  t.match(
    value(
      convertGatewayKind('ReferenceGrant', {
        from: [{ group: GW, kind: 'HTTPRoute', namespace: 'a' }],
        to: [{ kind: 'Service' }],
      }),
    ),
    { from: [{ group: GW, kind: 'HTTPRoute', namespace: 'a' }], to: [{ group: '', kind: 'Service' }] },
  );
});

t.test(
  'Gateway API: what the CRD rejects is rejected with a reason; what the spec answers in status is kept',
  async (t) => {
    const bad: [string, string, Raw, RegExp][] = [
      ['Gateway', 'no class', { listeners: [listener()] }, /gatewayClassName is required/],
      ['Gateway', 'no listener', { gatewayClassName: 'kdp', listeners: [] }, /at least one listener/],
      [
        'Gateway',
        'duplicate listener names',
        { gatewayClassName: 'kdp', listeners: [listener(), listener({ port: 81 })] },
        /not unique/,
      ],
      ['Gateway', 'port 0', { gatewayClassName: 'kdp', listeners: [listener({ port: 0 })] }, /out of range/],
      [
        'Gateway',
        'bad hostname',
        { gatewayClassName: 'kdp', listeners: [listener({ hostname: 'a b' })] },
        /not a valid hostname/,
      ],
      [
        'Gateway',
        'namespaces.from',
        { gatewayClassName: 'kdp', listeners: [listener({ allowedRoutes: { namespaces: { from: 'Some' } } })] },
        /Same, All or Selector/,
      ],
      [
        'Gateway',
        'IPAddress not an IP',
        { gatewayClassName: 'kdp', listeners: [listener()], addresses: [{ value: '10.0.0.1; rm' }] },
        /addresses\[0\]\.value/,
      ],
      ['HTTPRoute', 'parentRef without name', { parentRefs: [{}] }, /parentRefs\[0\]\.name is required/],
      [
        'HTTPRoute',
        'negative weight',
        { rules: [{ backendRefs: [{ name: 'w', port: 80, weight: -1 }] }] },
        /weight -1/,
      ],
      ['HTTPRoute', 'filter without type', { rules: [{ filters: [{}] }] }, /filters\[0\]\.type is required/],
      [
        'HTTPRoute',
        'header without name',
        { rules: [{ matches: [{ headers: [{ value: 'x' }] }] }] },
        /name is required/,
      ],
      ['HTTPRoute', 'bad route hostname', { hostnames: ['-x-'] }, /not a valid hostname/],
      [
        'HTTPRoute',
        'mirror fraction > 1',
        {
          rules: [
            {
              filters: [
                {
                  type: 'RequestMirror',
                  requestMirror: { backendRef: { name: 'a', port: 1 }, fraction: { numerator: 3, denominator: 2 } },
                },
              ],
            },
          ],
        },
        /fraction/,
      ],
      [
        'GRPCRoute',
        'method with neither service nor method',
        { rules: [{ matches: [{ method: {} }] }] },
        /needs service or method/,
      ],
      ['GatewayClass', 'no controllerName', {}, /controllerName is required/],
      [
        'ReferenceGrant',
        'from without namespace',
        { from: [{ kind: 'HTTPRoute' }], to: [] },
        /needs kind and namespace/,
      ],
    ];
    for (const [kind, name, spec, re] of bad) {
      const r = convertGatewayKind(kind, spec);
      t.equal(r.ok, false, `${kind}: ${name}`);
      if (!r.ok) t.match(r.reason, re, `${kind}: ${name}: reason`);
    }
    // kept for the compiler, which answers with a status condition
    const kept = value(
      convertGatewayKind('HTTPRoute', {
        rules: [
          {
            matches: [{ path: { type: 'RegularExpression', value: '([' } }],
            filters: [{ type: 'ExtensionRef', extensionRef: { group: 'x.io', kind: 'Magic', name: 'm' } }],
            backendRefs: [{ group: 'x.io', kind: 'Bucket', name: 'b' }],
          },
        ],
      }),
    );
    t.match(kept, {
      rules: [
        {
          matches: [{ path: { type: 'RegularExpression', value: '([' } }],
          filters: [{ type: 'ExtensionRef' }],
          backendRefs: [{ group: 'x.io', kind: 'Bucket' }],
        },
      ],
    });
    t.match(convertAny({ ...gwObj('GRPCRoute', {}), apiVersion: `${GW}/v1alpha2` }), {
      ok: false,
      reason: /GRPCRoute under apiVersion gateway.networking.k8s.io\/v1alpha2 is not supported/,
    });
    t.match(
      convertAny(
        gwObj('Gateway', {
          gatewayClassName: 'kdp',
          listeners: [listener()],
          addresses: [{ type: 'Hostname', value: 'gw.example' }],
        }),
      ),
      {
        ok: true,
        value: [{ addresses: [{ type: 'Hostname', value: 'gw.example' }] }],
      },
    );
  },
);

function convertGatewayKind(kind: string, spec: Raw): Result<ClusterObject> {
  const r = convertAny(gwObj(kind, spec));
  return r.ok ? { ok: true, value: r.value[0]! } : r;
}
