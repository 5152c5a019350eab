// compileGateways: golden JSON of whole scenarios (test/fixtures/gateway/*.yaml -> test/golden/ingress/*.json;
// UPDATE_GOLDEN=1 rewrites, then review the diff), plus focused checks of the spec's rules.
// IP plan: Gateways 203.0.113.0/24 (addressFor), endpoints 198.19.1.0/24.
import t from 'tap';
import type { Test } from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { compileGateways, intersectHostnames, parseDuration } from '../../../ingress/gateway/compile.ts';
import { GATEWAY_CONTROLLER_NAME } from '../../../ingress/gateway/types.ts';
import type {
  Condition,
  GatewayCompileOptions,
  GatewayCompileResult,
  RouteStatus,
} from '../../../ingress/gateway/types.ts';
import { describeResult, gatewayState, objectsFrom } from '../../../ingress/testing/gateway-fixtures.ts';
import type { ClusterObject } from '../../../src/model/types.ts';
import { convertAny } from '../../../src/k8s/convert.ts';
import type { Raw } from '../../../src/k8s/convert.ts';
import { parseAllDocuments } from 'yaml';
import { fuzzSeed, mutate, rng } from '../../helpers/fuzz.ts';

const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/gateway/${name}`, import.meta.url).pathname, 'utf8');
const COMMON = objectsFrom(fixture('common.yaml'));

const ADDRESSES: Record<string, string> = { 'infra/gw': '203.0.113.10', 'infra/iso': '203.0.113.11' };
const OPTS: GatewayCompileOptions = {
  controllerName: GATEWAY_CONTROLLER_NAME,
  addressFor: (g) => ADDRESSES[`${g.meta.namespace}/${g.meta.name}`] ?? '203.0.113.99',
  version: 7,
};

function compileYaml(yaml: string, opts: GatewayCompileOptions = OPTS): GatewayCompileResult {
  return compileGateways(gatewayState([...COMMON, ...objectsFrom(yaml)]), opts);
}

function assertGoldenJson(tt: Test, name: string, actual: unknown): void {
  const path = new URL(`../../golden/ingress/${name}`, import.meta.url).pathname;
  const text = JSON.stringify(actual, null, 2) + '\n';
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) {
    if (process.env.UPDATE_GOLDEN !== '1') tt.fail(`golden file ${name} missing; wrote it (run again, review it)`);
    writeFileSync(path, text);
    return;
  }
  tt.same(JSON.parse(text), JSON.parse(readFileSync(path, 'utf8')), `matches golden ${name}`);
}

function routeCond(rs: readonly RouteStatus[], key: string, type: string, parent = 0): Condition | undefined {
  return rs.find((r) => r.key === key)?.parents[parent]?.conditions.find((c) => c.type === type);
}

for (const scenario of ['basic', 'invalid', 'isolation']) {
  t.test(`golden: ${scenario}`, async (t) => {
    const r = compileYaml(fixture(`${scenario}.yaml`));
    assertGoldenJson(t, `gateway-${scenario}.json`, describeResult(r));
    t.same(JSON.parse(JSON.stringify(r.status)), r.status, 'status is plain JSON (PATCH body as is)');
  });
}

t.test('pure: the same input gives the same output; input order does not matter', async (t) => {
  const objs = [...COMMON, ...objectsFrom(fixture('basic.yaml')), ...objectsFrom(fixture('invalid.yaml'))];
  // the two fixtures both define infra/gw: keep the first (basic) so the state is a real cluster
  const seen = new Set<string>();
  const unique = objs.filter((o) => {
    const k = `${o.kind}/${o.meta.namespace}/${o.meta.name}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  const a = describeResult(compileGateways(gatewayState(unique), OPTS));
  const b = describeResult(compileGateways(gatewayState([...unique].reverse()), OPTS));
  t.same(b, a);
});

t.test('GatewayClass: only ours gets status; a Gateway of another class gets none and no table', async (t) => {
  const r = compileYaml(fixture('basic.yaml'));
  t.same(
    r.status.classes.map((c) => [c.key, c.conditions[0]!.status, c.conditions[0]!.reason]),
    [['kdp', 'True', 'Accepted']],
  );
  t.same(
    r.status.gateways.map((g) => g.key),
    ['infra/gw'],
  );
  t.notOk(
    r.listeners.some((l) => l.gateway === 'infra/foreign'),
    'no table for the foreign Gateway',
  );
  const shop = r.status.httpRoutes.find((x) => x.key === 'infra/shop')!;
  t.equal(shop.parents.length, 1, 'the parentRef to the foreign Gateway gets no status from us');
});

t.test('observedGeneration is the object generation everywhere', async (t) => {
  const r = compileYaml(fixture('basic.yaml'));
  const gw = r.status.gateways[0]!;
  t.ok(gw.conditions.every((c) => c.observedGeneration === 3));
  t.ok(gw.listeners.every((l) => l.conditions.every((c) => c.observedGeneration === 3)));
  const echo = r.status.grpcRoutes.find((x) => x.key === 'infra/echo')!;
  t.ok(echo.parents[0]!.conditions.every((c) => c.observedGeneration === 4));
});

t.test('listeners of one Gateway on one port share a table; certificates per listener hostname', async (t) => {
  const r = compileYaml(fixture('basic.yaml'));
  t.same(
    r.listeners.map((l) => [l.address, l.port, l.protocol, l.listeners]),
    [
      ['203.0.113.10', 80, 'HTTP', ['http']],
      ['203.0.113.10', 443, 'HTTPS', ['https', 'https-default']],
    ],
  );
  const https = r.listeners[1]!.table;
  t.equal(https.certs.get('*.example.com')?.secret, 'infra/wildcard-cert');
  t.equal(https.fallbackCert?.secret, 'infra/default-cert');
  t.equal(https.listenerPort, 443);
  t.equal(https.version, 7);
  t.ok(https.multiLabelWildcards);
});

t.test('two Gateways given the same address and port: the second listener is PortUnavailable', async (t) => {
  const yaml = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: a, namespace: infra }
spec: { gatewayClassName: kdp, listeners: [{ name: http, port: 80, protocol: HTTP }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: b, namespace: infra }
spec: { gatewayClassName: kdp, listeners: [{ name: http, port: 80, protocol: HTTP }, { name: alt, port: 81, protocol: HTTP }] }
`;
  const r = compileYaml(yaml, { ...OPTS, addressFor: () => '203.0.113.50' });
  const b = r.status.gateways.find((g) => g.key === 'infra/b')!;
  t.same(
    b.listeners.map((l) => [l.name, l.conditions.find((c) => c.type === 'Accepted')!.reason]),
    [
      ['http', 'PortUnavailable'],
      ['alt', 'Accepted'],
    ],
  );
  t.same(
    r.listeners.map((l) => `${l.gateway} ${l.port}`),
    ['infra/a 80', 'infra/b 81'],
  );
});

t.test('no address: Programmed False AddressNotAssigned, no table; unsupported address type', async (t) => {
  const yaml = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: noaddr, namespace: infra }
spec: { gatewayClassName: kdp, listeners: [{ name: http, port: 80, protocol: HTTP }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: hostaddr, namespace: infra }
spec:
  gatewayClassName: kdp
  addresses: [{ type: Hostname, value: gw.example.com }]
  listeners: [{ name: http, port: 80, protocol: HTTP }]
`;
  const r = compileYaml(yaml, { ...OPTS, addressFor: () => undefined });
  const cond = (key: string, type: string) =>
    r.status.gateways.find((g) => g.key === key)!.conditions.find((c) => c.type === type)!;
  t.equal(cond('infra/noaddr', 'Programmed').reason, 'AddressNotAssigned');
  t.equal(cond('infra/noaddr', 'Accepted').status, 'True');
  t.equal(cond('infra/hostaddr', 'Accepted').reason, 'UnsupportedAddress');
  t.equal(r.listeners.length, 0);
});

t.test(
  'infrastructure.parametersRef: kdp supports no parameters kind, so Accepted False InvalidParameters',
  async (t) => {
    const yaml = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: kdp }
spec: { controllerName: ${GATEWAY_CONTROLLER_NAME} }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: params, namespace: infra }
spec:
  gatewayClassName: kdp
  listeners: [{ name: http, port: 80, protocol: HTTP }]
  infrastructure: { parametersRef: { group: invalid.io, kind: InvalidParameters, name: invalid } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: plain, namespace: infra }
spec:
  gatewayClassName: kdp
  listeners: [{ name: http, port: 80, protocol: HTTP }]
`;
    // two addresses: the same address and port for both would make the second PortUnavailable
    const r = compileYaml(yaml, {
      ...OPTS,
      addressFor: (g) => (g.meta.name === 'params' ? '203.0.113.20' : '203.0.113.21'),
    });
    const cond = (key: string, type: string) =>
      r.status.gateways.find((g) => g.key === key)!.conditions.find((c) => c.type === type)!;
    t.match(cond('infra/params', 'Accepted'), { status: 'False', reason: 'InvalidParameters' });
    t.match(cond('infra/params', 'Programmed'), { status: 'False', reason: 'Invalid' });
    t.match(cond('infra/plain', 'Accepted'), { status: 'True', reason: 'Accepted' });
    t.same(
      r.listeners.map((l) => l.gateway),
      ['infra/plain'],
      'only the Gateway without parameters is served',
    );
  },
);

t.test('invalid objects: the spec reason for each, and the valid routes keep serving', async (t) => {
  const r = compileYaml(fixture('invalid.yaml'));
  const hr = r.status.httpRoutes;
  const acc = (k: string, p = 0) => routeCond(hr, k, 'Accepted', p);
  const res = (k: string) => routeCond(hr, k, 'ResolvedRefs');
  t.equal(acc('infra/good')?.status, 'True');
  t.equal(acc('infra/partial')?.status, 'True', 'partially invalid: accepted');
  t.match(routeCond(hr, 'infra/partial', 'PartiallyInvalid'), {
    status: 'True',
    reason: 'UnsupportedValue',
    message: /^Dropped Rule/,
    observedGeneration: 5,
  });
  t.match(acc('infra/unknown-filter'), { status: 'False', reason: 'UnsupportedValue', message: /ExtensionRef/ });
  t.match(acc('infra/all-bad'), { status: 'False', reason: 'UnsupportedValue' });
  t.equal(routeCond(hr, 'infra/all-bad', 'PartiallyInvalid'), undefined, 'never on a fully invalid route');
  t.match(res('infra/missing-backend'), { status: 'False', reason: 'BackendNotFound' });
  t.equal(acc('infra/missing-backend')?.status, 'True', 'a missing backend does not un-accept the route');
  t.match(res('infra/unknown-kind'), { status: 'False', reason: 'InvalidKind' });
  t.match(res('apps/cross-ns'), { status: 'False', reason: 'RefNotPermitted', message: /infra\/api/ });
  t.match(acc('infra/no-section', 0), { status: 'False', reason: 'NoMatchingParent' });
  t.match(acc('infra/no-section', 1), { status: 'False', reason: 'NoMatchingParent' });
  t.match(acc('outside/not-allowed'), { status: 'False', reason: 'NotAllowedByListeners' });
  t.match(acc('infra/wrong-host'), { status: 'False', reason: 'NoMatchingListenerHostname' });
  t.match(acc('infra/kinds', 0), { status: 'False', reason: 'NotAllowedByListeners' }, 'listener allows TCPRoute only');
  t.match(acc('infra/kinds', 1), { status: 'True' }, 'listener allows HTTPRoute among invalid kinds');
  t.match(acc('infra/kinds', 2), { status: 'False', reason: 'NotAllowedByListeners' }, 'TCP listener');

  const gw = r.status.gateways.find((g) => g.key === 'infra/gw')!;
  const l = (name: string, type: string) =>
    gw.listeners.find((x) => x.name === name)!.conditions.find((c) => c.type === type)!;
  t.match(l('tcp', 'Accepted'), { status: 'False', reason: 'UnsupportedProtocol' });
  t.same(gw.listeners.find((x) => x.name === 'tcp')!.supportedKinds, []);
  t.match(l('kinds', 'ResolvedRefs'), { status: 'False', reason: 'InvalidRouteKinds' });
  t.same(gw.listeners.find((x) => x.name === 'kinds')!.supportedKinds, [], 'no supported kind left');
  t.same(gw.listeners.find((x) => x.name === 'some-kinds')!.supportedKinds, [
    { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' },
  ]);
  t.match(l('dup-a', 'Conflicted'), { status: 'True', reason: 'HostnameConflict' });
  t.match(l('dup-b', 'Conflicted'), { status: 'True', reason: 'HostnameConflict' });
  t.match(l('proto-a', 'Conflicted'), { status: 'True', reason: 'ProtocolConflict' });
  t.match(l('proto-b', 'Conflicted'), { status: 'True', reason: 'ProtocolConflict' });
  t.match(l('http', 'Conflicted'), { status: 'False', reason: 'NoConflicts' });
  t.match(l('bad-cert', 'ResolvedRefs'), { status: 'False', reason: 'InvalidCertificateRef' });
  t.match(l('bad-cert', 'Programmed'), { status: 'False' });
  t.match(l('foreign-cert', 'ResolvedRefs'), { status: 'False', reason: 'RefNotPermitted' });
  t.match(l('cert-kind', 'ResolvedRefs'), { status: 'False', reason: 'InvalidCertificateRef' });
  const gwAccepted = gw.conditions.find((c) => c.type === 'Accepted')!;
  t.match(gwAccepted, { status: 'True', reason: 'ListenersNotValid' }, 'some listeners valid: accepted');
  t.equal(
    gw.listeners.find((x) => x.name === 'http')!.attachedRoutes,
    6,
    'attachedRoutes counts the routes Accepted True: good, partial, missing-backend, unknown-kind, cross-ns, zero',
  );
  // served: only the valid listeners' ports, and the valid routes in them
  t.same(
    r.listeners.map((x) => x.port),
    [80, 8081],
  );
  const http = r.listeners[0]!.table;
  t.ok(http.hosts.get('good.example.com')!.paths.length === 1, 'good serves');
  t.same(
    http.hosts.get('partial.example.com')!.paths.map((p) => p.path),
    ['/ok'],
    'the bad rule is dropped, the good one serves',
  );
  t.notOk(http.hosts.has('filter.example.com'), 'fully invalid route: nothing served');
  t.notOk(http.hosts.has('bad.example.com'));
});

t.test('all listeners invalid: Gateway Accepted False ListenersNotValid, Programmed False', async (t) => {
  const yaml = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: udp, namespace: infra, generation: 2 }
spec: { gatewayClassName: kdp, listeners: [{ name: u, port: 53, protocol: UDP }] }
`;
  const r = compileYaml(yaml);
  const g = r.status.gateways[0]!;
  t.match(g.conditions, [
    { type: 'Accepted', status: 'False', reason: 'ListenersNotValid' },
    { type: 'Programmed', status: 'False' },
  ]);
  t.equal(g.listeners[0]!.attachedRoutes, 0);
});

t.test('hostname intersection (spec examples)', async (t) => {
  t.same(intersectHostnames(undefined, []), ['']);
  t.same(intersectHostnames('*.example.com', []), ['*.example.com']);
  t.same(intersectHostnames('*.example.com', ['test.example.com', 'test.example.net']), ['test.example.com']);
  t.same(intersectHostnames('*.example.com', ['a.b.example.com']), ['a.b.example.com'], 'wildcards span labels');
  t.same(intersectHostnames('*.example.com', ['example.com']), [], '*.example.com does not match example.com');
  t.same(intersectHostnames('foo.example.com', ['*.example.com']), ['foo.example.com']);
  t.same(intersectHostnames('*.example.com', ['*.foo.example.com']), ['*.foo.example.com']);
  t.same(intersectHostnames('*.foo.example.com', ['*.example.com']), ['*.foo.example.com']);
  t.same(intersectHostnames('foo.example.com', ['bar.example.com']), []);
});

t.test('durations', async (t) => {
  t.equal(parseDuration('10s', 'x'), 10_000);
  t.equal(parseDuration('1h2m3s4ms', 'x'), 3_723_004);
  t.equal(parseDuration('0s', 'x'), 0);
  t.throws(() => parseDuration('1.5s', 'x'), /not a Gateway API duration/);
  t.throws(() => parseDuration('10', 'x'));
});

t.test('a route with no hostnames attached to the HTTP listener with no hostname serves every host', async (t) => {
  const r = compileYaml(fixture('basic.yaml'));
  const http = r.listeners[0]!.table;
  t.ok(http.any, 'rules without host');
  t.same(
    http.any!.paths.map((p) => `${p.kind} ${p.path} ${p.gateway!.route}`),
    ['Prefix /old apps/redirects', 'Prefix /app apps/redirects'], // same length: rule order
  );
});

t.test('converter defaults feed the compiler: PathPrefix /, weight 1, kind Service, group core', async (t) => {
  const objs: ClusterObject[] = objectsFrom(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: d, namespace: infra }
spec:
  parentRefs: [{ name: gw }]
  rules: [{ backendRefs: [{ name: web, port: 8080 }] }]
`);
  const route = objs[0]!;
  t.match(route, {
    kind: 'HTTPRoute',
    parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }],
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }],
        backendRefs: [{ group: '', kind: 'Service', name: 'web', port: 8080, weight: 1, filters: [] }],
      },
    ],
  });
});

t.test('bad input: mutated Gateway API objects never make the compiler throw', async (t) => {
  const seed = fuzzSeed();
  const r = rng(seed);
  const docs = ['basic.yaml', 'invalid.yaml', 'isolation.yaml'].flatMap((f) =>
    parseAllDocuments(fixture(f))
      .map((d) => d.toJS() as Raw | null)
      .filter((x): x is Raw => x !== null),
  );
  const N = Number(process.env.FUZZ_ITERATIONS ?? 300);
  const problems: string[] = [];
  let compiled = 0;
  for (let i = 0; i < N && problems.length < 3; i++) {
    // a few mutated objects among the valid ones
    const objs = docs.map((d) => (r() < 0.3 ? (mutate(r, d as never).value as Raw) : d));
    const model = objs.flatMap((o) => {
      const c = convertAny(o);
      return c.ok ? c.value : [];
    });
    try {
      const res = compileGateways(gatewayState([...COMMON, ...model]), OPTS);
      JSON.stringify(res.status);
      compiled++;
    } catch (err) {
      problems.push(`seed ${seed} iteration ${i}: ${String(err)}`);
    }
  }
  t.same(problems, [], 'no throw');
  t.equal(compiled, N);
});

t.test('an HTTPRoute and a GRPCRoute with intersecting hostnames on one listener: the older one only', async (t) => {
  const yaml = (grpcCreated: string) => `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: infra }
spec:
  gatewayClassName: kdp
  listeners: [{ name: a, port: 80, protocol: HTTP }, { name: b, port: 81, protocol: HTTP }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: infra, creationTimestamp: "2026-01-02T00:00:00Z" }
spec:
  parentRefs: [{ name: gw, sectionName: a }]
  hostnames: ["*.example.com"]
  rules: [{ backendRefs: [{ name: web, port: 8080 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: rpc, namespace: infra, creationTimestamp: "${grpcCreated}" }
spec:
  parentRefs: [{ name: gw, sectionName: a }, { name: gw, sectionName: b }]
  hostnames: [api.example.com]
  rules: [{ backendRefs: [{ name: grpc, port: 9000 }] }]
`;
  const newer = compileYaml(yaml('2026-01-03T00:00:00Z'));
  t.match(routeCond(newer.status.grpcRoutes, 'infra/rpc', 'Accepted', 0), {
    status: 'False',
    reason: 'NotAllowedByListeners',
    message: /infra\/web/,
  });
  t.match(routeCond(newer.status.grpcRoutes, 'infra/rpc', 'Accepted', 1), { status: 'True' }, 'alone on listener b');
  t.match(routeCond(newer.status.httpRoutes, 'infra/web', 'Accepted'), { status: 'True' });
  t.same(newer.listeners[0]!.table.hosts.get('api.example.com'), undefined, 'port 80: no GRPCRoute entry for the host');
  const older = compileYaml(yaml('2026-01-01T00:00:00Z'));
  t.match(routeCond(older.status.httpRoutes, 'infra/web', 'Accepted'), {
    status: 'False',
    reason: 'NotAllowedByListeners',
  });
  t.match(
    routeCond(older.status.grpcRoutes, 'infra/rpc', 'Accepted', 0),
    { status: 'True' },
    'the older GRPCRoute holds it',
  );
});

t.test('a route whose two parentRefs select the same listener is attached (and counted) once', async (t) => {
  const r = compileYaml(`
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: infra }
spec: { gatewayClassName: kdp, listeners: [{ name: http, port: 80, protocol: HTTP }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: twice, namespace: infra }
spec:
  parentRefs: [{ name: gw }, { name: gw, sectionName: http }]
  rules: [{ backendRefs: [{ name: web, port: 8080 }] }]
`);
  t.equal(r.status.gateways[0]!.listeners[0]!.attachedRoutes, 1);
  t.same(
    r.status.httpRoutes[0]!.parents.map((p) => p.conditions[0]!.status),
    ['True', 'True'],
    'both parentRefs report Accepted',
  );
  t.equal(r.listeners[0]!.table.any!.paths.length, 1, 'one path entry, not two');
});
