// Gateway API conformance, part 3 of 3: the extended GATEWAY-HTTP features kdp claims (docs/ingress.md "Gateway
// API conformance"): method and query matching, response header modifier, redirects (path, port, scheme,
// 303/307/308), URL rewrite (host, path), request mirror (one and several), request and backendRequest timeouts,
// listener port matching, parentRef port. Same harness as part 1 (test/helpers/gateway-conformance.ts).
import t from 'tap';
import type { Test } from 'tap';
import { randomUUID } from 'node:crypto';
import { run } from '../../src/common/exec-adapter.ts';
import { needsRoot } from '../helpers/gate.ts';
import { Conformance, HEADER_MODIFIER_CASES, INFRA, V1, V2, V3 } from '../helpers/gateway-conformance.ts';
import type { Expect } from '../helpers/gateway-conformance.ts';

const SAME = `${INFRA}/same-namespace`;
const HTTPS = `${INFRA}/same-namespace-with-https-listener`;

/** the request and response header edits several upstream tests share */
const MODIFIED = {
  headers: {
    'X-Header-Add': 'header-val-1',
    'X-Header-Add-Append': 'append-val-1,header-val-2',
    'X-Header-Set': 'set-overwrites-values',
  },
  absent: ['X-Header-Remove'],
};

if (needsRoot(t, 'Gateway listeners on port 80/443/8080/8090 of 127.13.0.0/16')) {
  const c = await Conformance.start(t, { pool: '127.13.0.0/16', podNet: '127.0.23', name: 'extended' });

  const conf = c.test.bind(c);

  /** accepted + ResolvedRefs on same-namespace, then the requests */
  const simple = (name: string, file: string, route: string, cases: Expect[], gw = SAME, port = 80) =>
    conf(name, [file], async (t) => {
      await c.routesAccepted(gw, [`${INFRA}/${route}`]);
      await c.resolvedRefs(`${INFRA}/${route}`, gw);
      await c.expect(t, gw, port, cases);
    });

  await simple('HTTPRouteMethodMatching', 'httproute-method-matching.yaml', 'method-matching', [
    { method: 'POST', path: '/', backend: V1 },
    { method: 'GET', path: '/', backend: V2 },
    { method: 'HEAD', path: '/', status: 404 },
    { method: 'GET', path: '/path1', backend: V1 },
    { method: 'PUT', path: '/', headers: { version: 'one' }, backend: V2 },
    { method: 'POST', path: '/path2', headers: { version: 'two' }, backend: V3 },
    { method: 'PATCH', path: '/path3', backend: V1 },
    { method: 'DELETE', path: '/path4', headers: { version: 'three' }, backend: V1 },
    { method: 'PUT', path: '/', status: 404 },
    { method: 'DELETE', path: '/path4', status: 404 },
    { method: 'PATCH', path: '/path5', backend: V1 },
    { method: 'PATCH', path: '/', headers: { version: 'four' }, backend: V2 },
  ]);

  await simple('HTTPRouteQueryParamMatching', 'httproute-query-param-matching.yaml', 'query-param-matching', [
    { path: '/?animal=whale', backend: V1 },
    { path: '/?animal=dolphin', backend: V2 },
    { path: '/?animal=dolphin&color=blue', backend: V3 },
    { path: '/?ANIMAL=Whale', backend: V3 },
    { path: '/?animal=whale&otherparam=irrelevant', backend: V1 },
    { path: '/?animal=dolphin&color=yellow', backend: V2 },
    { path: '/?color=blue', status: 404 },
    { path: '/?animal=dog', status: 404 },
    { path: '/?animal=whaledolphin', status: 404 },
    { path: '/', status: 404 },
    { path: '/path1?animal=whale', backend: V1 },
    { path: '/?animal=whale', headers: { version: 'one' }, backend: V2 },
    { path: '/path2?animal=whale', headers: { version: 'two' }, backend: V3 },
    { path: '/path3?animal=shark', backend: V1 },
    { path: '/path4?animal=kraken', headers: { version: 'three' }, backend: V1 },
    { path: '/?animal=shark', status: 404 },
    { path: '/path4?animal=kraken', status: 404 },
    { path: '/path5?animal=hydra', backend: V1 },
    { path: '/?animal=hydra', headers: { version: 'four' }, backend: V3 },
  ]);

  await simple(
    'HTTPRouteResponseHeaderModifier',
    'httproute-response-header-modifier.yaml',
    'response-header-modifier',
    [
      {
        path: '/set',
        backendSets: { 'Some-Other-Header': 'val' },
        respHeaders: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' },
        backend: V1,
      },
      {
        path: '/set',
        backendSets: { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' },
        respHeaders: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' },
        backend: V1,
      },
      {
        path: '/add',
        backendSets: { 'Some-Other-Header': 'val' },
        respHeaders: { 'Some-Other-Header': 'val', 'X-Header-Add': 'add-appends-values' },
        backend: V1,
      },
      {
        path: '/add',
        backendSets: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value' },
        respHeaders: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value,add-appends-values' },
        backend: V1,
      },
      { path: '/remove', backendSets: { 'X-Header-Remove': 'val' }, respAbsent: ['X-Header-Remove'], backend: V1 },
      {
        path: '/multiple',
        backendSets: {
          'X-Header-Set-2': 'set-val-2',
          'X-Header-Add-2': 'add-val-2',
          'X-Header-Remove-2': 'remove-val-2',
          'Another-Header': 'another-header-val',
          'X-Header-Remove-1': 'val',
        },
        respHeaders: {
          'X-Header-Set-1': 'header-set-1',
          'X-Header-Set-2': 'header-set-2',
          'X-Header-Add-1': 'header-add-1',
          'X-Header-Add-2': 'add-val-2,header-add-2',
          'X-Header-Add-3': 'header-add-3',
          'Another-Header': 'another-header-val',
        },
        respAbsent: ['X-Header-Remove-1', 'X-Header-Remove-2'],
        backend: V1,
      },
      {
        path: '/case-insensitivity',
        backendSets: {
          'x-header-set': 'original-val-set',
          'x-header-add': 'original-val-add',
          'x-header-remove': 'original-val-remove',
          'Another-Header': 'another-header-val',
        },
        respHeaders: {
          'X-Header-Set': 'header-set',
          'X-Header-Add': 'original-val-add,header-add',
          'X-Lowercase-Add': 'lowercase-add',
          'X-Mixedcase-Add-1': 'mixedcase-add-1',
          'X-Mixedcase-Add-2': 'mixedcase-add-2',
          'X-Uppercase-Add': 'uppercase-add',
          'Another-Header': 'another-header-val',
        },
        respAbsent: ['x-header-remove', 'X-Header-Remove'],
        backend: V1,
      },
      {
        path: '/response-and-request-header-modifiers',
        headers: { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1', 'X-Header-Echo': 'echo' },
        backendSets: {
          'X-Header-Set-2': 'set-val-2',
          'X-Header-Add-2': 'add-val-2',
          'X-Header-Remove-2': 'remove-val-2',
          'Another-Header': 'another-header-val',
          'X-Header-Remove-1': 'remove-val-1',
          'X-Header-Echo': 'echo',
        },
        got: { headers: { ...MODIFIED.headers, 'X-Header-Echo': 'echo' }, absent: MODIFIED.absent },
        respHeaders: {
          'X-Header-Set-1': 'header-set-1',
          'X-Header-Set-2': 'header-set-2',
          'X-Header-Add-1': 'header-add-1',
          'X-Header-Add-2': 'add-val-2,header-add-2',
          'Another-Header': 'another-header-val',
          'X-Header-Echo': 'echo',
        },
        respAbsent: ['X-Header-Remove-1', 'X-Header-Remove-2'],
        backend: V1,
      },
    ],
  );

  await simple('HTTPRouteRedirectPath', 'httproute-redirect-path.yaml', 'redirect-path', [
    { path: '/original-prefix/lemon', status: 302, redirect: { path: '/replacement-prefix/lemon' } },
    { path: '/full/path/original', status: 302, redirect: { path: '/full-path-replacement' } },
    { path: '/path-and-host', status: 302, redirect: { host: 'example.org', path: '/replacement-prefix' } },
    { path: '/path-and-status', status: 301, redirect: { path: '/replacement-prefix' } },
    { path: '/full-path-and-host', status: 302, redirect: { host: 'example.org', path: '/replacement-full' } },
    { path: '/full-path-and-status', status: 301, redirect: { path: '/replacement-full' } },
  ]);

  await simple('HTTPRouteRedirectPort', 'httproute-redirect-port.yaml', 'redirect-port', [
    { path: '/port', status: 302, redirect: { port: '8083' } },
    { path: '/port-and-host', status: 302, redirect: { host: 'example.org', port: '8083' } },
    { path: '/port-and-status', status: 301, redirect: { port: '8083' } },
    { path: '/port-and-host-and-status', status: 302, redirect: { port: '8083', host: 'example.org' } },
  ]);

  await simple('HTTPRouteRedirectScheme', 'httproute-redirect-scheme.yaml', 'redirect-scheme', [
    { path: '/scheme', status: 302, redirect: { scheme: 'https' } },
    { path: '/scheme-and-host', status: 302, redirect: { host: 'example.org', scheme: 'https' } },
    { path: '/scheme-and-status', status: 301, redirect: { scheme: 'https' } },
    { path: '/scheme-and-host-and-status', status: 302, redirect: { scheme: 'https', host: 'example.org' } },
  ]);

  await conf('HTTPRouteRedirectPortAndScheme', ['httproute-redirect-port-and-scheme.yaml'], async (t) => {
    const r80 = `${INFRA}/http-route-for-listener-on-port-80`;
    const on8080 = `${INFRA}/same-namespace-with-http-listener-on-8080`;
    const r8080 = `${INFRA}/http-route-for-listener-on-port-8080`;
    const r443 = `${INFRA}/http-route-for-listener-on-port-443`;
    await c.routesAccepted(SAME, [r80]);
    await c.resolvedRefs(r80, SAME);
    await c.routesAccepted(on8080, [r8080]);
    await c.resolvedRefs(r8080, on8080);
    await c.routesAccepted(HTTPS, [r443]);
    await c.resolvedRefs(r443, HTTPS);
    const to = (scheme: string, port?: string) => ({ scheme, host: 'example.org', ...(port ? { port } : {}) });
    await c.expect(t, SAME, 80, [
      { path: '/scheme-nil-and-port-nil', status: 302, redirect: to('http') },
      { path: '/scheme-nil-and-port-80', status: 302, redirect: to('http') },
      { path: '/scheme-nil-and-port-8080', status: 302, redirect: to('http', '8080') },
      { path: '/scheme-https-and-port-nil', status: 302, redirect: to('https') },
      { path: '/scheme-https-and-port-443', status: 302, redirect: to('https') },
      { path: '/scheme-https-and-port-8443', status: 302, redirect: to('https', '8443') },
    ]);
    await c.expect(t, on8080, 8080, [
      { path: '/scheme-nil-and-port-nil', status: 302, redirect: to('http', '8080') },
      { path: '/scheme-nil-and-port-80', status: 302, redirect: to('http') },
      { path: '/scheme-https-and-port-nil', status: 302, redirect: to('https') },
    ]);
    const tls = { https: true, host: 'example.org' };
    await c.expect(t, HTTPS, 443, [
      { ...tls, path: '/scheme-nil-and-port-nil', status: 302, redirect: to('https') },
      { ...tls, path: '/scheme-nil-and-port-443', status: 302, redirect: to('https') },
      { ...tls, path: '/scheme-nil-and-port-8443', status: 302, redirect: to('https', '8443') },
      { ...tls, path: '/scheme-http-and-port-nil', status: 302, redirect: to('http') },
      { ...tls, path: '/scheme-http-and-port-80', status: 302, redirect: to('http') },
      { ...tls, path: '/scheme-http-and-port-8080', status: 302, redirect: to('http', '8080') },
    ]);
  });

  await simple('HTTPRoute303Redirect', 'httproute-303-redirect.yaml', '303-redirect', [
    { method: 'POST', path: '/see-other', status: 303, redirect: { path: '/see-other' } },
  ]);
  await simple('HTTPRoute307Redirect', 'httproute-307-redirect.yaml', '307-redirect', [
    { path: '/temporary', status: 307, redirect: { path: '/temporary' } },
  ]);
  await simple('HTTPRoute308Redirect', 'httproute-308-redirect.yaml', '308-redirect', [
    { path: '/permanent', status: 308, redirect: { path: '/permanent' } },
  ]);

  await simple('HTTPRouteRewriteHost', 'httproute-rewrite-host.yaml', 'rewrite-host', [
    { host: 'rewrite.example', path: '/one', got: { host: 'one.example.org' }, backend: V1 },
    { host: 'rewrite.example', path: '/two', got: { host: 'example.org' }, backend: V2 },
    {
      host: 'rewrite.example',
      path: '/rewrite-host-and-modify-headers',
      headers: { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1' },
      got: { host: 'test.example.org', ...MODIFIED },
      backend: V2,
    },
  ]);

  const edited = { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1', 'X-Header-Set': 'set-val' };
  await simple('HTTPRouteRewritePath', 'httproute-rewrite-path.yaml', 'rewrite-path', [
    { path: '/prefix/one/two', got: { path: '/one/two' }, backend: V1 },
    { path: '/strip-prefix/three', got: { path: '/three' }, backend: V1 },
    { path: '/strip-prefix', got: { path: '/' }, backend: V1 },
    { path: '/full/one/two', got: { path: '/one' }, backend: V1 },
    {
      path: '/full/rewrite-path-and-modify-headers/test',
      headers: edited,
      got: { path: '/test', ...MODIFIED },
      backend: V1,
    },
    {
      path: '/prefix/rewrite-path-and-modify-headers/one',
      headers: edited,
      got: { path: '/prefix/one', ...MODIFIED },
      backend: V1,
    },
  ]);

  /** upstream's ExpectMirroredRequest: every mirror backend logged the request (its unique request id) */
  const mirrors = async (t: Test, cases: (Expect & { mirroredTo: string[] })[]) => {
    for (const m of cases) {
      const id = randomUUID();
      const e = { ...m, path: `${m.path}?request-id=${id}` };
      await c.expect(t, SAME, 80, [e]);
      const seen = await c
        .waitFor(
          `mirrored ${e.path}`,
          async () => (m.mirroredTo.every((b) => c.mirrored(b, e.path)) ? true : undefined),
          10_000,
        )
        .catch((err: Error) => err.message);
      t.equal(seen, true, `${m.path} mirrored to ${m.mirroredTo.join(', ')}`);
    }
  };

  await conf('HTTPRouteRequestMirror', ['httproute-request-mirror.yaml'], async (t) => {
    await c.routesAccepted(SAME, [`${INFRA}/request-mirror`]);
    await mirrors(t, [
      { path: '/mirror', backend: V1, mirroredTo: [V2] },
      {
        path: '/mirror-and-modify-headers',
        headers: { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1' },
        got: MODIFIED,
        backend: V1,
        mirroredTo: [V2],
      },
    ]);
  });

  await conf('HTTPRouteRequestMultipleMirrors', ['httproute-request-multiple-mirrors.yaml'], async (t) => {
    await c.routesAccepted(SAME, [`${INFRA}/request-multiple-mirrors`]);
    await mirrors(t, [
      { path: '/multi-mirror', backend: V1, mirroredTo: [V2, V3] },
      {
        path: '/multi-mirror-and-modify-request-headers',
        headers: { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1' },
        got: MODIFIED,
        backend: V1,
        mirroredTo: [V2, V3],
      },
    ]);
  });

  await simple(
    'HTTPRouteBackendRequestHeaderModifier',
    'httproute-request-header-modifier-backend.yaml',
    'request-header-modifier',
    [...HEADER_MODIFIER_CASES],
  );

  await conf(
    'HTTPRouteRequestHeaderModifierBackendWeights',
    ['httproute-request-header-modifier-backend-weights.yaml'],
    async (t) => {
      const route = `${INFRA}/request-header-modifier-backend-weights`;
      await c.routesAccepted(SAME, [route]);
      await c.resolvedRefs(route, SAME);
      await c.expect(t, SAME, 80, [{ path: '/' }]);
      // 100 requests: each lands on the pod its backendRef's filter named in the Backend header
      const addr = await c.address(SAME);
      const urls = Array.from({ length: 100 }, () => `http://${addr}/`);
      const r = await run(['curl', '-sS', '-w', '\n', ...urls], { allowFailure: true, timeoutMs: 60_000 });
      const got = r.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { pod: string; headers: Record<string, string[]> });
      const wrong = got.filter((g) => g.headers.Backend?.length !== 1 || !g.pod.startsWith(g.headers.Backend[0]!));
      t.equal(got.length, 100, '100 answers');
      t.same(wrong.slice(0, 3), [], 'every request carries the Backend header of the backendRef that served it');
    },
  );

  await conf('HTTPRouteRequestPercentageMirror', ['httproute-request-percentage-mirror.yaml'], async (t) => {
    await c.routesAccepted(SAME, [`${INFRA}/request-percentage-mirror`]);
    await c.resolvedRefs(`${INFRA}/request-percentage-mirror`, SAME);
    const addr = await c.address(SAME);
    const cases: { path: string; percent: number; headers: Record<string, string>; got?: typeof MODIFIED }[] = [
      { path: '/percent-mirror', percent: 20, headers: {} },
      { path: '/percent-mirror-fraction', percent: 50, headers: {} },
      {
        path: '/percent-mirror-and-modify-headers',
        percent: 35,
        headers: { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1' },
        got: MODIFIED,
      },
    ];
    for (const m of cases) {
      await c.expect(t, SAME, 80, [
        { path: m.path, headers: m.headers, backend: V1, ...(m.got ? { got: m.got } : {}) },
      ]);
      // upstream: 500 requests, the mirror backend's count within 3 binomial standard deviations (5 tries)
      const n = 500;
      const p = m.percent / 100;
      const margin = 3 * Math.sqrt(n * p * (1 - p));
      let verdict = '';
      for (let attempt = 0; attempt < 5; attempt++) {
        const path = `${m.path}?request-id=${randomUUID()}`;
        const argv = ['curl', '-sS', '-w', '\n%{http_code}\n']; // -o would apply to the first URL only
        for (const [k, v] of Object.entries(m.headers)) argv.push('-H', `${k}: ${v}`);
        const r = await run([...argv, ...Array.from({ length: n }, () => `http://${addr}${path}`)], {
          allowFailure: true,
          timeoutMs: 120_000,
        });
        const ok = r.stdout.split('\n').filter((l) => l === '200').length;
        await new Promise((res) => setTimeout(res, 500)); // mirrors are fire-and-forget
        const mirrored = c.podsOf(V2).reduce((a, pod) => a + pod.seen.filter((x) => x.path === path).length, 0);
        verdict =
          ok !== n
            ? `${ok}/${n} answers 200`
            : Math.abs(mirrored - n * p) > margin
              ? `${mirrored} of ${n} mirrored, want ${n * p} ± ${margin.toFixed(1)}`
              : '';
        if (verdict === '') break;
      }
      t.equal(verdict, '', `${m.path}: ${m.percent}% mirrored`);
    }
  });

  await simple('HTTPRouteRequestTimeout', 'httproute-timeout-request.yaml', 'request-timeout', [
    { path: '/request-timeout', status: 200 },
    { path: '/request-timeout?delay=1s', status: 504 },
    { path: '/disable-request-timeout?delay=1s', status: 200 },
  ]);

  await simple('HTTPRouteBackendRequestTimeout', 'httproute-timeout-backend-request.yaml', 'backend-request-timeout', [
    { path: '/backend-timeout', status: 200 },
    { path: '/backend-timeout?delay=1s', status: 504 },
    { path: '/disable-backend-timeout?delay=1s', status: 200 },
  ]);

  await conf('HTTPRouteListenerPortMatching', ['httproute-listener-port-matching.yaml'], async (t) => {
    const gw = `${INFRA}/httproute-listener-port-matching`;
    // upstream names the listeners (1, 2, 4) but compares parents without the sectionName
    for (const route of ['backend-v1', 'backend-v2', 'backend-v3']) {
      await c.routesAccepted(gw, [`${INFRA}/${route}`]);
      await c.resolvedRefs(`${INFRA}/${route}`, gw);
    }
    await c.expect(t, gw, 80, [
      { host: 'foo.com', path: '/', backend: V1 },
      { host: 'foo.com:8080', port: 8080, path: '/', backend: V2 },
      { host: 'bar.com:8080', port: 8080, path: '/', backend: V2 },
      { host: 'foo.com:8090', port: 8090, path: '/', backend: V3 },
      { host: 'bar.com:8090', port: 8090, path: '/', status: 404 },
    ]);
  });

  await conf(
    'HTTPRouteInvalidParentRefSectionNameNotMatchingPort',
    ['httproute-invalid-parentref-section-name-not-matching-port.yaml'],
    async (t) => {
      const gw = `${INFRA}/gateway-with-one-not-matching-port-and-section-name-route`;
      const route = `${INFRA}/httproute-listener-section-name-not-matching-port`;
      await c.routeCondition(route, gw, 'Accepted', 'False', 'NoMatchingParent');
      await c.routeNotAccepted(route);
      await c.listeners(gw, [{ name: 'http', attachedRoutes: 0 }]);
      t.pass('NoMatchingParent, nothing attached');
    },
  );
}
