// decide(table, request): the one routing decision every ingress lane calls, table-driven.
// IP plan: endpoints 198.19.1.0/24 (pods), clients 198.18.0.0/24 (allowed) and 203.0.113.0/24 (outside).
import t from 'tap';
import { compile } from '../../../ingress/compile.ts';
import { decide, forwardedAround, forwardedInto } from '../../../ingress/decide.ts';
import type { Decision, RequestFacts } from '../../../ingress/decide.ts';
import type { Ingress } from '../../../src/model/types.ts';
import {
  ingress,
  ingressClass,
  path,
  rule,
  service,
  slice,
  tlsSecret,
  withAnnotations,
} from '../../../ingress/testing/fixtures.ts';

const A = 'nginx.ingress.kubernetes.io/';
const ings: Ingress[] = [
  ingress('shop', [rule('shop.test', path('/', 'Prefix', 'web'), path('/api', 'Prefix', 'api'))]),
  withAnnotations(ingress('rw', [rule('rw.test', path('/something(/|$)(.*)', 'ImplementationSpecific', 'web'))]), {
    [`${A}rewrite-target`]: '/$2',
  }),
  withAnnotations(ingress('rw-rel', [rule('rel.test', path('/old', 'ImplementationSpecific', 'web'))]), {
    [`${A}rewrite-target`]: 'new',
  }),
  withAnnotations(ingress('allow', [rule('allow.test', path('/', 'Prefix', 'web'))]), {
    [`${A}whitelist-source-range`]: '198.18.0.0/24',
  }),
  ingress(
    'tls',
    [rule('tls.test', path('/', 'Prefix', 'web'))],
    (i) => (i.tls = [{ hosts: ['tls.test'], secretName: 'c' }]),
  ),
  withAnnotations(ingress('moved', [rule('moved.test', path('/', 'Prefix', 'web'))]), {
    [`${A}permanent-redirect`]: 'https://new.test/',
  }),
  withAnnotations(ingress('approot', [rule('approot.test', path('/', 'Prefix', 'web'))]), {
    [`${A}app-root`]: '/app',
  }),
  withAnnotations(ingress('cors', [rule('cors.test', path('/', 'Prefix', 'web'))]), { [`${A}enable-cors`]: 'true' }),
  withAnnotations(ingress('fb', [rule('fb.test', path('/', 'Prefix', 'empty'))]), {
    [`${A}default-backend`]: 'api',
  }),
  ingress('down', [rule('down.test', path('/', 'Prefix', 'empty'))]),
  ingress('canary-main', [rule('canary.test', path('/', 'Prefix', 'web'))]),
  withAnnotations(ingress('canary', [rule('canary.test', path('/', 'Prefix', 'api'))]), {
    [`${A}canary`]: 'true',
    [`${A}canary-by-header`]: 'x-canary',
    [`${A}canary-by-cookie`]: 'canary',
  }),
  ingress('catchall', [], (i) => (i.defaultBackend = { service: { name: 'api', port: { number: 80 } } })),
];
const table = compile({
  ingresses: ings,
  classes: [ingressClass()],
  services: new Map(['web', 'api', 'empty'].map((n) => [`default/${n}`, service(n)])),
  slices: [slice('web', ['198.19.1.10', '198.19.1.11']), slice('api', ['198.19.1.20'])],
  secrets: new Map([['default/c', tlsSecret('c', 'CERT', 'KEY')]]),
}).table;
const noDefault = compile({
  ingresses: ings.filter((i) => i.meta.name !== 'catchall'),
  classes: [ingressClass()],
  services: new Map(['web', 'api', 'empty'].map((n) => [`default/${n}`, service(n)])),
  slices: [slice('web', ['198.19.1.10', '198.19.1.11']), slice('api', ['198.19.1.20'])],
  secrets: new Map(),
}).table;

function req(host: string, url: string, more: Partial<RequestFacts> & { headers?: Record<string, string> } = {}) {
  const headers = more.headers ?? {};
  return {
    scheme: more.scheme ?? 'http',
    host,
    url,
    method: more.method ?? 'GET',
    ip: more.ip ?? '198.18.0.1',
    header: (n: string) => headers[n],
  } satisfies RequestFacts;
}

/** The decision in the notation of the rows below. */
function show(d: Decision): string {
  switch (d.kind) {
    case 'proxy':
      return `proxy ${d.upstream.service} ${d.target}${d.alternative ? ` (canary, not ${d.alternative})` : ''} [${d.ingress}]`;
    case 'reply':
      return `${d.status}${d.location ? ` ${d.location}` : ''}`;
    case 'preflight':
      return `preflight [${d.ingress}]`;
  }
}

const rows: { name: string; req: RequestFacts; want: string; table?: typeof table }[] = [
  { name: 'host + longest prefix', req: req('shop.test', '/api/v1?q=1'), want: 'proxy api /api/v1?q=1 [default/shop]' },
  { name: 'host case and port ignored', req: req('SHOP.test:8080', '/x'), want: 'proxy web /x [default/shop]' },
  {
    name: 'no rule: the Ingress default backend',
    req: req('other.test', '/x'),
    want: 'proxy api /x [default/catchall]',
  },
  { name: 'no rule, no default backend: 404', req: req('other.test', '/x'), want: '404', table: noDefault },
  {
    name: 'rewrite-target with captures, query kept',
    req: req('rw.test', '/something/new/x?a=b'),
    want: 'proxy web /new/x?a=b [default/rw]',
  },
  {
    name: 'rewrite-target to a relative path gets a /',
    req: req('rel.test', '/old'),
    want: 'proxy web /new [default/rw-rel]',
  },
  { name: 'allow-list: inside', req: req('allow.test', '/'), want: 'proxy web / [default/allow]' },
  { name: 'allow-list: outside is 403', req: req('allow.test', '/', { ip: '203.0.113.5' }), want: '403' },
  { name: 'TLS host over http: 308 to https', req: req('tls.test', '/p?q'), want: '308 https://tls.test/p?q' },
  {
    name: 'TLS host over https: proxied',
    req: req('tls.test', '/p', { scheme: 'https' }),
    want: 'proxy web /p [default/tls]',
  },
  { name: 'permanent-redirect', req: req('moved.test', '/any'), want: '301 https://new.test/' },
  { name: 'app-root for / only', req: req('approot.test', '/'), want: '302 /app' },
  { name: 'app-root leaves other paths', req: req('approot.test', '/x'), want: 'proxy web /x [default/approot]' },
  { name: 'CORS preflight', req: req('cors.test', '/', { method: 'OPTIONS' }), want: 'preflight [default/cors]' },
  { name: 'CORS GET is proxied', req: req('cors.test', '/'), want: 'proxy web / [default/cors]' },
  { name: 'no endpoints: the default-backend annotation', req: req('fb.test', '/'), want: 'proxy api / [default/fb]' },
  { name: 'no endpoints and no fallback: 503', req: req('down.test', '/'), want: '503' },
  {
    name: 'canary by header always',
    req: req('canary.test', '/', { headers: { 'x-canary': 'always' } }),
    want: 'proxy api / (canary, not default-web-80) [default/canary-main]',
  },
  {
    name: 'canary header never beats the cookie',
    req: req('canary.test', '/', { headers: { 'x-canary': 'never', cookie: 'canary=always' } }),
    want: 'proxy web / [default/canary-main]',
  },
  {
    name: 'canary by cookie',
    req: req('canary.test', '/', { headers: { cookie: 'a=1; canary=always' } }),
    want: 'proxy api / (canary, not default-web-80) [default/canary-main]',
  },
  { name: 'canary: neither, weight 0', req: req('canary.test', '/'), want: 'proxy web / [default/canary-main]' },
];

t.test('decide: table', async (t) => {
  for (const r of rows) t.equal(show(decide(r.table ?? table, r.req)), r.want, r.name);
});

t.test('decide: pure (same table and request, same decision; the table is not changed)', async (t) => {
  const before = JSON.stringify([...table.hosts.keys()]);
  for (const r of rows) t.same(decide(r.table ?? table, r.req), decide(r.table ?? table, r.req), r.name);
  t.equal(JSON.stringify([...table.hosts.keys()]), before);
});

t.test('X-Forwarded-*: the same set as text (fast front) and as a record (node:http)', async (t) => {
  const rec: Record<string, string | string[]> = {};
  forwardedInto(rec, 'http', 'shop.test', '198.18.0.1', 80, 'abc', '192.0.2.1');
  t.same(rec, {
    host: 'shop.test',
    'x-request-id': 'abc',
    'x-real-ip': '198.18.0.1',
    'x-forwarded-for': '198.18.0.1',
    'x-forwarded-host': 'shop.test',
    'x-forwarded-port': '80',
    'x-forwarded-proto': 'http',
    'x-forwarded-scheme': 'http',
    'x-scheme': 'http',
    'x-original-forwarded-for': '192.0.2.1',
  });
  const text = (...a: Parameters<typeof forwardedAround>) => forwardedAround(...a).join('abc');
  t.equal(
    text('http', 'shop.test', '198.18.0.1', 80, '192.0.2.1'),
    Object.entries(rec)
      .map(([k, v]) => `${k}: ${String(v)}\r\n`)
      .join(''),
  );
  t.notMatch(text('https', 'shop.test', '198.18.0.1', 443, undefined), /original/);
});
