// decide() over Gateway API tables: match precedence across rules and routes, header/query/method matches,
// filters (redirect, rewrite, header modifiers, mirror), weighted backendRefs (weight 0, all zero, invalid share),
// GRPCRoute paths, multi-label wildcards and certificates. Rows follow the upstream conformance tests
// (httproute-matching*.go, httproute-redirect-*.go, httproute-rewrite-*.go, httproute-weight.go).
// IP plan: Gateway 203.0.113.10, endpoints 198.19.1.0/24, clients 198.18.0.0/24.
import t from 'tap';
import type { Test } from 'tap';
import { readFileSync } from 'node:fs';
import { decide, replacePrefix } from '../../../ingress/decide.ts';
import type { Decision, RequestFacts } from '../../../ingress/decide.ts';
import { compileGateways } from '../../../ingress/gateway/compile.ts';
import { GATEWAY_CONTROLLER_NAME } from '../../../ingress/gateway/types.ts';
import { findCert } from '../../../ingress/match.ts';
import { gatewayState, objectsFrom } from '../../../ingress/testing/gateway-fixtures.ts';
import type { RouteTable } from '../../../ingress/types.ts';

const COMMON = objectsFrom(
  readFileSync(new URL('../../fixtures/gateway/common.yaml', import.meta.url).pathname, 'utf8'),
);

const GATEWAY = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: infra }
spec:
  gatewayClassName: kdp
  listeners:
    - { name: http, port: 8080, protocol: HTTP, allowedRoutes: { namespaces: { from: All } } }
    - name: https
      port: 8443
      protocol: HTTPS
      hostname: "*.example.com"
      tls: { certificateRefs: [{ name: wildcard-cert }] }
      allowedRoutes: { namespaces: { from: All } }
    - name: https-default
      port: 8443
      protocol: HTTPS
      tls: { certificateRefs: [{ name: default-cert }] }
`;

/** The tables of GATEWAY + routes, by port. */
function tables(routes: string): Map<number, RouteTable> {
  const r = compileGateways(gatewayState([...COMMON, ...objectsFrom(GATEWAY + '\n---\n' + routes)]), {
    controllerName: GATEWAY_CONTROLLER_NAME,
    addressFor: () => '203.0.113.10',
  });
  return new Map(r.listeners.map((l) => [l.port, l.table]));
}

function req(
  host: string,
  url: string,
  more: { method?: string; scheme?: 'http' | 'https'; headers?: Record<string, string> } = {},
): RequestFacts {
  const headers = Object.fromEntries(Object.entries(more.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    scheme: more.scheme ?? 'http',
    host,
    url,
    method: more.method ?? 'GET',
    ip: '198.18.0.1',
    header: (n: string) => headers[n],
  };
}

function show(d: Decision): string {
  switch (d.kind) {
    case 'proxy':
      return `proxy ${d.upstream.service} ${d.target} [${d.ingress}]`;
    case 'reply':
      return `${d.status}${d.location ? ` ${d.location}` : ''}`;
    case 'preflight':
      return 'preflight';
  }
}

/** Runs rows against a table; `want` in show() notation. */
function rows(t: Test, table: RouteTable, cases: [string, RequestFacts, string][]): void {
  for (const [name, r, want] of cases) t.equal(show(decide(table, r)), want, name);
}

t.test('matching: path types, headers, query params, method (httproute-matching, -method, -query)', async (t) => {
  const http = tables(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: m, namespace: infra }
spec:
  parentRefs: [{ name: gw, sectionName: http }]
  rules:
    - matches: [{ path: { type: Exact, value: /exact } }]
      backendRefs: [{ name: web, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /prefix/ } }]
      backendRefs: [{ name: api, port: 8080 }]
    - matches: [{ path: { type: RegularExpression, value: "/re/[0-9]+" } }]
      backendRefs: [{ name: api, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /h }, headers: [{ name: version, value: one }] }]
      backendRefs: [{ name: web, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /h }, headers: [{ name: version, type: RegularExpression, value: "t.o" }] }]
      backendRefs: [{ name: api, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /q }, queryParams: [{ name: animal, value: whale }] }]
      backendRefs: [{ name: web, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /m }, method: POST }]
      backendRefs: [{ name: api, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /m } }]
      backendRefs: [{ name: web, port: 8080 }]
`).get(8080)!;
  rows(t, http, [
    ['Exact matches only the path itself', req('a.test', '/exact'), 'proxy web /exact [infra/m]'],
    ['Exact: no trailing slash match', req('a.test', '/exact/'), '404'],
    [
      'PathPrefix /prefix/ matches /prefix (trailing slash ignored)',
      req('a.test', '/prefix'),
      'proxy api /prefix [infra/m]',
    ],
    ['PathPrefix by element', req('a.test', '/prefix/one'), 'proxy api /prefix/one [infra/m]'],
    ['PathPrefix: not a partial element', req('a.test', '/prefixes'), '404'],
    ['RegularExpression is anchored', req('a.test', '/re/123'), 'proxy api /re/123 [infra/m]'],
    ['RegularExpression: no partial match', req('a.test', '/re/123/x'), '404'],
    ['header Exact', req('a.test', '/h', { headers: { Version: 'one' } }), 'proxy web /h [infra/m]'],
    ['header Exact is case-sensitive in value', req('a.test', '/h', { headers: { version: 'ONE' } }), '404'],
    ['header RegularExpression', req('a.test', '/h', { headers: { version: 'two' } }), 'proxy api /h [infra/m]'],
    ['header missing', req('a.test', '/h'), '404'],
    ['query Exact', req('a.test', '/q?animal=whale'), 'proxy web /q?animal=whale [infra/m]'],
    ['query other value', req('a.test', '/q?animal=dolphin'), '404'],
    ['query decoded', req('a.test', '/q?x=1&animal=wh%61le'), 'proxy web /q?x=1&animal=wh%61le [infra/m]'],
    ['method match first', req('a.test', '/m', { method: 'POST' }), 'proxy api /m [infra/m]'],
    ['other methods fall to the rule without method', req('a.test', '/m', { method: 'GET' }), 'proxy web /m [infra/m]'],
  ]);
});

t.test('precedence across rules and routes (httproute-matching-across-routes)', async (t) => {
  const http = tables(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: b-newer, namespace: infra, creationTimestamp: "2026-02-01T00:00:00Z" }
spec:
  parentRefs: [{ name: gw, sectionName: http }]
  hostnames: [p.example.com]
  rules:
    - matches: [{ path: { type: PathPrefix, value: / } }]
      backendRefs: [{ name: web, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /v2 }, headers: [{ name: a, value: "1" }, { name: c, value: "3" }] }]
      backendRefs: [{ name: web, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /tie } }]
      backendRefs: [{ name: web, port: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: a-older, namespace: apps, creationTimestamp: "2026-01-01T00:00:00Z" }
spec:
  parentRefs: [{ name: gw, namespace: infra, sectionName: http }]
  hostnames: [p.example.com]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /v2 }, headers: [{ name: a, value: "1" }] }]
      backendRefs: [{ name: app, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /v2 }, queryParams: [{ name: q, value: "1" }], headers: [{ name: a, value: "1" }] }]
      backendRefs: [{ name: app, port: 80 }]
    - matches: [{ path: { type: Exact, value: /v2/exact } }]
      backendRefs: [{ name: app, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /tie } }]
      backendRefs: [{ name: app, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /same-age } }]
      backendRefs: [{ name: app, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /m }, headers: [{ name: a, value: "1" }] }]
      backendRefs: [{ name: app, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: z-same-age, namespace: infra, creationTimestamp: "2026-01-01T00:00:00Z" }
spec:
  parentRefs: [{ name: gw, sectionName: http }]
  hostnames: [p.example.com]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /same-age } }]
      backendRefs: [{ name: api, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /longer-prefix } }]
      backendRefs: [{ name: api, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /m }, method: GET }]
      backendRefs: [{ name: api, port: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: y-oldest, namespace: infra, creationTimestamp: "2025-06-01T00:00:00Z" }
spec:
  parentRefs: [{ name: gw, sectionName: http }]
  hostnames: [p.example.com]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /tie } }]
      backendRefs: [{ name: api, port: 8080 }]
`).get(8080)!;
  /** which rule of which route took it */
  const who = (r: RequestFacts): string => {
    const d = decide(http, r);
    return d.kind === 'proxy' ? `${d.ingress}#${d.route!.gateway!.rule}` : show(d);
  };
  const cases: [string, RequestFacts, string][] = [
    [
      'Exact beats longer prefixes',
      req('p.example.com', '/v2/exact', { headers: { a: '1', c: '3' } }),
      'apps/a-older#2',
    ],
    [
      'more header matches beat an older route',
      req('p.example.com', '/v2', { headers: { a: '1', c: '3' } }),
      'infra/b-newer#1',
    ],
    [
      'then more query matches beat rule order',
      req('p.example.com', '/v2?q=1', { headers: { a: '1' } }),
      'apps/a-older#1',
    ],
    ['one header: the first rule', req('p.example.com', '/v2', { headers: { a: '1' } }), 'apps/a-older#0'],
    ['no conditions met: the catch-all', req('p.example.com', '/v2'), 'infra/b-newer#0'],
    ['longest prefix across routes', req('p.example.com', '/longer-prefix/x'), 'infra/z-same-age#1'],
    ['method match beats a header match', req('p.example.com', '/m', { headers: { a: '1' } }), 'infra/z-same-age#2'],
    ['tie: the oldest route first (not the name)', req('p.example.com', '/tie'), 'infra/y-oldest#0'],
    ['same age: namespace/name (not rule order)', req('p.example.com', '/same-age'), 'apps/a-older#4'],
  ];
  for (const [name, r, want] of cases) t.equal(who(r), want, name);
});

t.test('hostnames: exact before wildcard, wildcards span labels, listener hostname isolation', async (t) => {
  const https = tables(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: wild, namespace: infra }
spec:
  parentRefs: [{ name: gw, sectionName: https }]
  hostnames: ["*.example.com"]
  rules:
    - backendRefs: [{ name: web, port: 8080 }]
    - matches: [{ path: { type: Exact, value: /exact-in-wild } }]
      backendRefs: [{ name: web, port: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: two, namespace: infra }
spec:
  parentRefs: [{ name: gw, sectionName: https }]
  hostnames: [two.example.com]
  rules: [{ backendRefs: [{ name: api, port: 8080 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: exact, namespace: infra }
spec:
  parentRefs: [{ name: gw, sectionName: https }]
  hostnames: [very.specific.example.com]
  rules: [{ matches: [{ path: { type: PathPrefix, value: /only } }], backendRefs: [{ name: api, port: 8080 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: other-domain, namespace: infra }
spec:
  parentRefs: [{ name: gw, sectionName: https-default }]
  hostnames: [example.net]
  rules: [{ backendRefs: [{ name: api, port: 8080 }] }]
`).get(8443)!;
  rows(t, https, [
    ['one label under the wildcard', req('a.example.com', '/', { scheme: 'https' }), 'proxy web / [infra/wild]'],
    ['several labels under the wildcard', req('a.b.example.com', '/', { scheme: 'https' }), 'proxy web / [infra/wild]'],
    ['the apex is not covered', req('example.com', '/', { scheme: 'https' }), '404'],
    [
      'exact hostname first',
      req('very.specific.example.com', '/only', { scheme: 'https' }),
      'proxy api /only [infra/exact]',
    ],
    [
      'then the wildcard route for the same host',
      req('very.specific.example.com', '/other', { scheme: 'https' }),
      'proxy web /other [infra/wild]',
    ],
    [
      "the exact hostname's rules come before a wildcard route's Exact path",
      req('two.example.com', '/exact-in-wild', { scheme: 'https' }),
      'proxy api /exact-in-wild [infra/two]',
    ],
    ['the listener without hostname', req('example.net', '/', { scheme: 'https' }), 'proxy api / [infra/other-domain]'],
    ['no route for the host', req('example.org', '/', { scheme: 'https' }), '404'],
  ]);
  t.equal(findCert(https, 'a.b.example.com')?.secret, 'infra/wildcard-cert', 'SNI: wildcard over several labels');
  t.equal(findCert(https, 'example.net')?.secret, 'infra/default-cert', 'SNI: the listener without hostname');
});

t.test('RequestRedirect: scheme, hostname, port, path, status (httproute-redirect-*)', async (t) => {
  const m = tables(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: infra }
spec:
  parentRefs: [{ name: gw }]
  hostnames: [r.example.com]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /scheme } }]
      filters: [{ type: RequestRedirect, requestRedirect: { scheme: https } }]
    - matches: [{ path: { type: PathPrefix, value: /hostname } }]
      filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org } }]
    - matches: [{ path: { type: PathPrefix, value: /port } }]
      filters: [{ type: RequestRedirect, requestRedirect: { port: 8083 } }]
    - matches: [{ path: { type: PathPrefix, value: /scheme-port } }]
      filters: [{ type: RequestRedirect, requestRedirect: { scheme: http, port: 80 } }]
    - matches: [{ path: { type: PathPrefix, value: /status } }]
      filters: [{ type: RequestRedirect, requestRedirect: { statusCode: 301 } }]
    - matches: [{ path: { type: PathPrefix, value: /full } }]
      filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: /full-path-replaced } } }]
    - matches: [{ path: { type: PathPrefix, value: /prefix } }]
      filters: [{ type: RequestRedirect, requestRedirect: { statusCode: 308, path: { type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix } } }]
      backendRefs: [{ name: web, port: 8080 }]
`);
  const http = m.get(8080)!;
  const https = m.get(8443)!;
  rows(t, http, [
    ['scheme https: port 443 omitted', req('r.example.com', '/scheme?a=1'), '302 https://r.example.com/scheme?a=1'],
    [
      'hostname; no scheme: the listener port',
      req('r.example.com', '/hostname'),
      '302 http://example.org:8080/hostname',
    ],
    ['port', req('r.example.com', '/port'), '302 http://r.example.com:8083/port'],
    ['scheme http + port 80: omitted', req('r.example.com', '/scheme-port'), '302 http://r.example.com/scheme-port'],
    ['statusCode 301', req('r.example.com', '/status'), '301 http://r.example.com:8080/status'],
    ['ReplaceFullPath', req('r.example.com', '/full/one/two'), '302 http://r.example.com:8080/full-path-replaced'],
    [
      'ReplacePrefixMatch, redirect wins over backendRefs',
      req('r.example.com', '/prefix/one'),
      '308 http://r.example.com:8080/replacement-prefix/one',
    ],
  ]);
  rows(t, https, [
    [
      'https listener, no scheme: its port',
      req('r.example.com', '/hostname', { scheme: 'https' }),
      '302 https://example.org:8443/hostname',
    ],
  ]);
});

t.test('ReplacePrefixMatch: the spec table', async (t) => {
  const table: [string, string, string, string][] = [
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '', '/bar'],
    ['/foo/', '/foo', '', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
  ];
  for (const [path, match, repl, want] of table)
    t.equal(replacePrefix(path, match.replace(/\/+$/, ''), repl), want, `${path} | ${match} | ${repl || '""'}`);
});

t.test('URLRewrite: hostname, full path, prefix; header modifiers and mirrors go to the lane', async (t) => {
  const http = tables(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: rw, namespace: infra }
spec:
  parentRefs: [{ name: gw, sectionName: http }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /prefix/one } }]
      filters:
        - type: URLRewrite
          urlRewrite: { hostname: rewritten.example.com, path: { type: ReplacePrefixMatch, replacePrefixMatch: /one } }
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: X-Set, value: s }], add: [{ name: X-Add, value: a }], remove: [X-Gone] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [{ name: X-Resp, value: r }] }
        - type: RequestMirror
          requestMirror: { backendRef: { name: api, port: 8080 } }
      backendRefs:
        - name: web
          port: 8080
          filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: X-Backend, value: web }] } }]
    - matches: [{ path: { type: PathPrefix, value: /full } }]
      filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplaceFullPath, replaceFullPath: /one } } }]
      backendRefs: [{ name: web, port: 8080 }]
`).get(8080)!;
  rows(t, http, [
    [
      'prefix rewrite keeps the rest and the query',
      req('a.test', '/prefix/one/two?x=1'),
      'proxy web /one/two?x=1 [infra/rw]',
    ],
    ['full path rewrite keeps the query', req('a.test', '/full/a/b?x=1'), 'proxy web /one?x=1 [infra/rw]'],
  ]);
  const d = decide(http, req('a.test', '/prefix/one'));
  t.equal(d.kind, 'proxy');
  if (d.kind !== 'proxy') return;
  t.equal(d.gateway?.host, 'rewritten.example.com', 'Host rewritten for the upstream');
  t.same(d.gateway?.requestHeaders, [
    { set: [['X-Set', 's']], add: [['X-Add', 'a']], remove: ['x-gone'] },
    { set: [['X-Backend', 'web']], add: [], remove: [] },
  ]);
  t.same(d.gateway?.responseHeaders, [{ set: [], add: [['X-Resp', 'r']], remove: [] }]);
  t.same(
    d.gateway?.mirrors.map((m) => m.upstream.name),
    ['infra-api-8080'],
  );
  const plain = decide(http, req('a.test', '/full'));
  t.ok(plain.kind === 'proxy' && plain.gateway && plain.gateway.host === undefined, 'no rewrite: Host kept');
});

t.test('backendRefs: weights, weight 0, all zero -> 500, invalid share -> 500, no endpoints -> 503', async (t) => {
  const http = tables(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: w, namespace: infra }
spec:
  parentRefs: [{ name: gw, sectionName: http }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /split } }]
      backendRefs: [{ name: web, port: 8080, weight: 30 }, { name: api, port: 8080, weight: 70 }, { name: app, namespace: apps, port: 80, weight: 0 }]
    - matches: [{ path: { type: PathPrefix, value: /zero } }]
      backendRefs: [{ name: web, port: 8080, weight: 0 }]
    - matches: [{ path: { type: PathPrefix, value: /half-invalid } }]
      backendRefs: [{ name: web, port: 8080 }, { name: nowhere, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /empty } }]
      backendRefs: [{ name: empty, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /none } }]
`).get(8080)!;
  const random = Math.random;
  t.teardown(() => void (Math.random = random));
  const at = (x: number, url: string) => {
    Math.random = () => x;
    return show(decide(http, req('a.test', url)));
  };
  t.equal(at(0.0, '/split'), 'proxy web /split [infra/w]', 'draw 0.00 of 100: web (0..30)');
  t.equal(at(0.29, '/split'), 'proxy web /split [infra/w]', 'draw 0.29: web');
  t.equal(at(0.3, '/split'), 'proxy api /split [infra/w]', 'draw 0.30: api (30..100)');
  t.equal(at(0.999, '/split'), 'proxy api /split [infra/w]', 'the weight-0 backend is never drawn');
  t.equal(at(0.5, '/zero'), '500', 'all weights 0: 500');
  t.equal(at(0.1, '/half-invalid'), 'proxy web /half-invalid [infra/w]', 'the valid half is served');
  t.equal(at(0.9, '/half-invalid'), '500', "the invalid backend's share gets 500");
  t.equal(at(0.5, '/empty'), '503', 'a Service without endpoints: 503');
  t.equal(at(0.5, '/none'), '500', 'no backendRefs and no filter: 500');
  Math.random = random;
  // the real generator: roughly 30/70 over 2,000 draws (binomial sd ~20)
  let web = 0;
  for (let i = 0; i < 2000; i++) {
    const d = decide(http, req('a.test', '/split'));
    if (d.kind === 'proxy' && d.upstream.service === 'web') web++;
  }
  t.ok(web > 480 && web < 720, `web got ${web} of 2000 (want ~600)`);
});

t.test('GRPCRoute: service/method to /service/method, header matches', async (t) => {
  const https = tables(`
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: g, namespace: infra }
spec:
  parentRefs: [{ name: gw, sectionName: https }]
  hostnames: [grpc.example.com]
  rules:
    - matches: [{ method: { service: echo.Echo, method: Say } }]
      backendRefs: [{ name: grpc, port: 9000 }]
    - matches: [{ method: { service: echo.Admin }, headers: [{ name: x-admin, value: "1" }] }]
      backendRefs: [{ name: api, port: 8080 }]
    - matches: [{ method: { method: Ping } }]
      backendRefs: [{ name: web, port: 8080 }]
    - matches: [{ method: { type: RegularExpression, service: "echo\\\\.V[0-9]+", method: "Get.*" } }]
      backendRefs: [{ name: api, port: 8080 }]
`).get(8443)!;
  const g = (path: string, headers: Record<string, string> = {}) =>
    req('grpc.example.com', path, { method: 'POST', scheme: 'https', headers });
  rows(t, https, [
    ['exact service and method', g('/echo.Echo/Say'), 'proxy grpc /echo.Echo/Say [infra/g]'],
    ['other method of the service: no match', g('/echo.Echo/Shout'), '404'],
    ['service only, with header', g('/echo.Admin/Reset', { 'x-admin': '1' }), 'proxy api /echo.Admin/Reset [infra/g]'],
    ['service only, header missing', g('/echo.Admin/Reset'), '404'],
    ['method only, any service', g('/any.Svc/Ping'), 'proxy web /any.Svc/Ping [infra/g]'],
    [
      'a matching service beats a method-only match (service characters first)',
      g('/echo.Admin/Ping', { 'x-admin': '1' }),
      'proxy api /echo.Admin/Ping [infra/g]',
    ],
    ['regular expression', g('/echo.V2/GetThing'), 'proxy api /echo.V2/GetThing [infra/g]'],
    ['regular expression: no match', g('/echo.Vx/GetThing'), '404'],
  ]);
});

t.test('an invalid route never disturbs the others in the same table', async (t) => {
  const http = tables(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: good, namespace: infra }
spec:
  parentRefs: [{ name: gw, sectionName: http }]
  rules: [{ matches: [{ path: { type: PathPrefix, value: /good } }], backendRefs: [{ name: web, port: 8080 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: bad, namespace: infra }
spec:
  parentRefs: [{ name: gw, sectionName: http }]
  rules:
    - matches: [{ path: { type: RegularExpression, value: "([" } }]
      backendRefs: [{ name: web, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: / } }]
      filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: "bad header", value: x }] } }]
      backendRefs: [{ name: web, port: 8080 }]
`).get(8080)!;
  rows(t, http, [
    ['the good route serves', req('a.test', '/good/x'), 'proxy web /good/x [infra/good]'],
    ['the bad rules are not served (no catch-all from the bad route)', req('a.test', '/other'), '404'],
  ]);
});

t.test('Ingress tables are unaffected: one-label wildcards only, no Gateway conditions', async (t) => {
  const http = tables(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: w, namespace: infra }
spec:
  parentRefs: [{ name: gw, sectionName: http }]
  hostnames: ["*.example.com"]
  rules: [{ backendRefs: [{ name: web, port: 8080 }] }]
`).get(8080)!;
  const ingressLike: RouteTable = { ...http, multiLabelWildcards: false };
  t.equal(show(decide(ingressLike, req('a.b.example.com', '/'))), '404', 'without the flag: one label');
  t.equal(show(decide(http, req('a.b.example.com', '/'))), 'proxy web / [infra/w]', 'with it: several');
});
