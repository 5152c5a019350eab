// Gateway API conformance (GATEWAY-HTTP core), part 1 of 3: routing. Each subtest is one upstream test
// (kubernetes-sigs/gateway-api conformance/tests/<name>.go, same manifests, same requests and expectations)
// run against `kdp ingress --manifests` with echo pods on loopback; see test/helpers/gateway-conformance.ts.
import t from 'tap';
import { run } from '../../src/common/exec-adapter.ts';
import { needsRoot } from '../helpers/gate.ts';
import { Conformance, HEADER_MODIFIER_CASES, INFRA, V1, V2, V3, WEB } from '../helpers/gateway-conformance.ts';

const SAME = `${INFRA}/same-namespace`;

if (needsRoot(t, 'Gateway listeners on port 80/443 of 127.11.0.0/16')) {
  const c = await Conformance.start(t, { pool: '127.11.0.0/16', podNet: '127.0.21', name: 'routing' });

  const conf = c.test.bind(c);

  await conf('HTTPRouteSimpleSameNamespace', ['httproute-simple-same-namespace.yaml'], async (t) => {
    const route = `${INFRA}/gateway-conformance-infra-test`;
    await c.routesAccepted(SAME, [route]);
    await c.resolvedRefs(route, SAME);
    await c.expect(t, SAME, 80, [{ path: '/', backend: V1 }]);
  });

  await conf('HTTPRouteMatching', ['httproute-matching.yaml'], async (t) => {
    await c.routesAccepted(SAME, [`${INFRA}/matching`]);
    await c.resolvedRefs(`${INFRA}/matching`, SAME);
    await c.expect(t, SAME, 80, [
      { path: '/', backend: V1 },
      { path: '/example', backend: V1 },
      { path: '/', headers: { Version: 'one' }, backend: V1 },
      { path: '/v2', backend: V2 },
      { path: '/v2/example', backend: V2 },
      { path: '/', headers: { Version: 'two' }, backend: V2 },
      { path: '/v2/', backend: V2 },
      { path: '/v2example', backend: V1 },
      { path: '/foo/v2/example', backend: V1 },
    ]);
  });

  await conf('HTTPExactPathMatching', ['httproute-exact-path-matching.yaml'], async (t) => {
    await c.routesAccepted(SAME, [`${INFRA}/exact-matching`]);
    await c.resolvedRefs(`${INFRA}/exact-matching`, SAME);
    await c.expect(t, SAME, 80, [
      { path: '/one', backend: V1 },
      { path: '/two', backend: V2 },
      { path: '/', status: 404 },
      { path: '/one/example', status: 404 },
      { path: '/two/', status: 404 },
      { path: '/Two', status: 404 },
    ]);
  });

  await conf('HTTPRouteHeaderMatching', ['httproute-header-matching.yaml'], async (t) => {
    await c.routesAccepted(SAME, [`${INFRA}/header-matching`]);
    await c.resolvedRefs(`${INFRA}/header-matching`, SAME);
    await c.expect(t, SAME, 80, [
      { path: '/', headers: { Version: 'one' }, backend: V1 },
      { path: '/', headers: { Version: 'two' }, backend: V2 },
      { path: '/', headers: { Version: 'two', Color: 'orange' }, backend: V1 },
      { path: '/', headers: { Version: 'two', Color: 'blue' }, backend: V2 },
      { path: '/', headers: { Color: 'orange' }, status: 404 },
      { path: '/', headers: { 'Some-Other-Header': 'one' }, status: 404 },
      { path: '/', headers: { Color: 'blue' }, backend: V1 },
      { path: '/', headers: { Color: 'green' }, backend: V1 },
      { path: '/', headers: { Color: 'red' }, backend: V2 },
      { path: '/', headers: { Color: 'yellow' }, backend: V2 },
      { path: '/', headers: { Color: 'purple' }, status: 404 },
    ]);
  });

  await conf('HTTPRoutePathMatchOrder', ['httproute-path-match-order.yaml'], async (t) => {
    await c.routesAccepted(SAME, [`${INFRA}/path-matching-order`]);
    await c.resolvedRefs(`${INFRA}/path-matching-order`, SAME);
    await c.expect(t, SAME, 80, [
      { path: '/match/exact/one', backend: V3 },
      { path: '/match/exact', backend: V2 },
      { path: '/match', backend: V1 },
      { path: '/match/prefix/one/any', backend: V2 },
      { path: '/match/prefix/any', backend: V1 },
      { path: '/match/any', backend: V3 },
    ]);
  });

  await conf('HTTPRouteMatchingAcrossRoutes', ['httproute-matching-across-routes.yaml'], async (t) => {
    const r1 = `${INFRA}/matching-part1`;
    const r2 = `${INFRA}/matching-part2`;
    await c.routesAccepted(SAME, [r1, r2]);
    await c.resolvedRefs(r1, SAME);
    await c.resolvedRefs(r2, SAME);
    await c.expect(t, SAME, 80, [
      { host: 'example.com', path: '/', backend: V1 },
      { host: 'example.com', path: '/example', backend: V1 },
      { host: 'example.net', path: '/example', backend: V1 },
      { host: 'example.com', path: '/example', headers: { Version: 'one' }, backend: V1 },
      { host: 'example.com', path: '/v2', backend: V2 },
      { host: 'example.net', path: '/v2', backend: V1 },
      { host: 'example.com', path: '/v2/example', backend: V2 },
      { host: 'example.com', path: '/', headers: { Version: 'two' }, backend: V2 },
    ]);
  });

  await conf('HTTPRouteHostnameIntersection', ['httproute-hostname-intersection.yaml'], async (t) => {
    const gw = `${INFRA}/httproute-hostname-intersection`;
    const routes = [
      'specific-host-matches-listener-specific-host',
      'specific-host-matches-listener-wildcard-host',
      'wildcard-host-matches-listener-specific-host',
      'wildcard-host-matches-listener-wildcard-host',
    ].map((r) => `${INFRA}/${r}`);
    await c.routesAccepted(gw, routes);
    for (const r of routes) await c.resolvedRefs(r, gw);
    const notFound = (host: string, path: string) => ({ host, path, status: 404 });
    await c.expect(t, gw, 80, [
      { host: 'very.specific.com', path: '/s1', backend: V1 },
      { host: 'very.specific.com:1234', path: '/s1', backend: V1 },
      notFound('non.matching.com', '/s1'),
      notFound('foo.nonmatchingwildcard.io', '/s1'),
      notFound('foo.wildcard.io', '/s1'),
      notFound('very.specific.com', '/non-matching-prefix'),
      { host: 'foo.wildcard.io', path: '/s2', backend: V2 },
      { host: 'bar.wildcard.io', path: '/s2', backend: V2 },
      { host: 'foo.bar.wildcard.io', path: '/s2', backend: V2 },
      notFound('non.matching.com', '/s2'),
      notFound('wildcard.io', '/s2'),
      notFound('very.specific.com', '/s2'),
      notFound('foo.wildcard.io', '/non-matching-prefix'),
      { host: 'very.specific.com', path: '/s3', backend: V3 },
      notFound('non.matching.com', '/s3'),
      notFound('foo.specific.com', '/s3'),
      notFound('foo.wildcard.io', '/s3'),
      notFound('very.specific.com', '/non-matching-prefix'),
      { host: 'foo.anotherwildcard.io', path: '/s4', backend: V1 },
      { host: 'bar.anotherwildcard.io', path: '/s4', backend: V1 },
      { host: 'foo.bar.anotherwildcard.io', path: '/s4', backend: V1 },
      notFound('anotherwildcard.io', '/s4'),
      notFound('foo.wildcard.io', '/s4'),
      notFound('very.specific.com', '/s4'),
      notFound('foo.anotherwildcard.io', '/non-matching-prefix'),
    ]);
    // routes that intersect with no listener hostname
    await c.routeCondition(`${INFRA}/no-intersecting-hosts`, gw, 'Accepted', 'False', 'NoMatchingListenerHostname');
    await c.expect(t, gw, 80, [notFound('specific.but.wrong.com', '/s5'), notFound('wildcard.io', '/s5')]);
    // only Accepted routes count in attachedRoutes
    const ok: [string, string][] = [
      ['Accepted', 'True'],
      ['ResolvedRefs', 'True'],
    ];
    await c.listeners(gw, [
      { name: 'listener-1', attachedRoutes: 2, conditions: ok, kinds: ['HTTPRoute'] },
      { name: 'listener-2', attachedRoutes: 1, conditions: ok, kinds: ['HTTPRoute'] },
      { name: 'listener-3', attachedRoutes: 1, conditions: ok, kinds: ['HTTPRoute'] },
    ]);
    // a listener without hostname
    const all = `${INFRA}/httproute-hostname-intersection-all`;
    await c.routesAccepted(all, [all]);
    await c.resolvedRefs(all, all);
    await c.expect(t, all, 80, [
      { host: 'first.com', path: '/', backend: V2 },
      { host: 'sub.first.com', path: '/', backend: V2 },
      { host: 'second.com', path: '/', backend: V2 },
      { host: 'sub.second.com', path: '/', backend: V2 },
      notFound('third.com', '/'),
      notFound('sub.third.com', '/'),
    ]);
  });

  await conf('HTTPRouteListenerHostnameMatching', ['httproute-listener-hostname-matching.yaml'], async (t) => {
    const gw = `${INFRA}/httproute-listener-hostname-matching`;
    await c.routesAccepted(gw, [`${INFRA}/backend-v1`]);
    await c.resolvedRefs(`${INFRA}/backend-v1`, gw);
    await c.routesAccepted(gw, [`${INFRA}/backend-v2`]);
    await c.resolvedRefs(`${INFRA}/backend-v2`, gw);
    await c.routesAccepted(gw, [`${INFRA}/backend-v3`]);
    await c.resolvedRefs(`${INFRA}/backend-v3`, gw);
    await c.expect(t, gw, 80, [
      { host: 'bar.com', path: '/', backend: V1 },
      { host: 'foo.bar.com', path: '/', backend: V2 },
      { host: 'baz.bar.com', path: '/', backend: V3 },
      { host: 'boo.bar.com', path: '/', backend: V3 },
      { host: 'multiple.prefixes.bar.com', path: '/', backend: V3 },
      { host: 'multiple.prefixes.foo.com', path: '/', backend: V3 },
      { host: 'foo.com', path: '/', status: 404 },
      { host: 'no.matching.host', path: '/', status: 404 },
    ]);
  });

  await conf('HTTPRouteCrossNamespace', ['httproute-cross-namespace.yaml'], async (t) => {
    const gw = `${INFRA}/backend-namespaces`;
    const route = `${WEB}/cross-namespace`;
    await c.routesAccepted(gw, [route]);
    await c.resolvedRefs(route, gw);
    await c.expect(t, gw, 80, [{ path: '/', backend: 'web-backend', namespace: WEB }]);
  });

  await conf('HTTPRouteMultipleGateways', ['httproute-multiple-gateways.yaml'], async (t) => {
    const shared = `${INFRA}/multiple-gateways-shared-route`;
    await c.routesAccepted(SAME, [shared, `${INFRA}/same-namespace-dedicated-route`]);
    await c.expect(t, SAME, 80, [
      { path: '/shared', backend: V1 },
      { path: '/', backend: V2 },
    ]);
    const all = `${INFRA}/all-namespaces`;
    await c.routesAccepted(all, [shared, `${INFRA}/all-namespaces-dedicated-route`]);
    await c.expect(t, all, 80, [
      { path: '/shared', backend: V1 },
      { path: '/', backend: V3 },
    ]);
  });

  await conf('HTTPRouteWeight', ['httproute-weight.yaml'], async (t) => {
    const route = `${INFRA}/weighted-backends`;
    await c.routesAccepted(SAME, [route]);
    await c.resolvedRefs(route, SAME);
    await c.expect(t, SAME, 80, [{ path: '/' }]);
    // upstream: 500 requests, each backend within 5 points of its weight share (retried up to 10 times)
    const addr = await c.address(SAME);
    let verdict = '';
    for (let attempt = 0; attempt < 10; attempt++) {
      const urls = Array.from({ length: 500 }, (_, i) => `http://${addr}/?entropy=${attempt}-${i}`);
      const r = await run(['curl', '-sS', '-w', '\n', ...urls], { allowFailure: true, timeoutMs: 120_000 });
      const pods = r.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => (JSON.parse(l) as { pod: string }).pod);
      const share = (b: string) => pods.filter((p) => p.startsWith(`${b}-`)).length / 500;
      const got: Record<string, number> = { [V1]: share(V1), [V2]: share(V2), [V3]: share(V3) };
      const want = { [V1]: 0.7, [V2]: 0.3, [V3]: 0 };
      const bad = Object.entries(want).filter(([b, w]) => Math.abs(got[b]! - w) > 0.05);
      verdict = pods.length !== 500 ? `${pods.length}/500 answers` : bad.length > 0 ? JSON.stringify(got) : '';
      if (verdict === '') break;
    }
    t.equal(verdict, '', 'distribution 70/30/0 within 5 points');
  });

  await conf('HTTPRouteServiceTypes', ['httproute-service-types.yaml'], async (t) => {
    // upstream fills the manual EndpointSlices with infra-backend-v1's pod IPs (IPv4 here; the IPv6 slices stay empty)
    const pods = c.podsOf(V1);
    await c.remove('httproute-service-types.yaml');
    await c.apply('httproute-service-types.yaml', (o) => {
      if (o.kind === 'EndpointSlice' && o.addressType === 'IPv4')
        return {
          ...o,
          endpoints: pods.map((p) => ({
            addresses: [p.ip],
            conditions: { ready: true, serving: true, terminating: false },
            targetRef: { kind: 'Pod', name: p.name, namespace: INFRA },
          })),
        };
      if (o.kind === 'Service' && (o.spec as Record<string, unknown>).selector === undefined) return o;
      return o;
    });
    const route = `${INFRA}/service-types`;
    await c.routesAccepted(SAME, [route]);
    await c.resolvedRefs(route, SAME);
    await c.expect(
      t,
      SAME,
      80,
      ['manual-endpointslices', 'headless-manual-endpointslices', 'headless'].map((p) => ({
        path: `/${p}`,
        backend: V1,
      })),
    );
  });

  await conf('HTTPRouteHeaderModifier', ['httproute-request-header-modifier.yaml'], async (t) => {
    const route = `${INFRA}/request-header-modifier`;
    await c.routesAccepted(SAME, [route]);
    await c.resolvedRefs(route, SAME);
    await c.expect(t, SAME, 80, HEADER_MODIFIER_CASES);
  });

  await conf('HTTPRouteRedirectHostAndStatus', ['httproute-redirect-host-and-status.yaml'], async (t) => {
    const route = `${INFRA}/redirect-host-and-status`;
    await c.routesAccepted(SAME, [route]);
    await c.resolvedRefs(route, SAME);
    await c.expect(t, SAME, 80, [
      { path: '/hostname-redirect', status: 302, redirect: { host: 'example.org' } },
      { path: '/host-and-status', status: 301, redirect: { host: 'example.org' } },
    ]);
  });

  await conf('HTTPRouteHTTPSListener', ['httproute-https-listener.yaml'], async (t) => {
    const gw = `${INFRA}/same-namespace-with-https-listener`;
    const r1 = `${INFRA}/httproute-https-test`;
    const r2 = `${INFRA}/httproute-https-test-no-hostname`;
    await c.routesAccepted(gw, [r1, r2]);
    await c.resolvedRefs(r1, gw);
    await c.resolvedRefs(r2, gw);
    await c.expect(t, gw, 443, [
      { https: true, host: 'example.org', path: '/', backend: V1 },
      { https: true, host: 'unknown-example.org', path: '/', status: 404 },
      { https: true, host: 'second-example.org', path: '/', backend: V2 },
    ]);
  });
}
