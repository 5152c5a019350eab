// Route compiler + matcher: host/path tables (every row of the Kubernetes docs' path-matching examples),
// class selection, merge/conflict rule, annotation validation that rejects only the bad Ingress.
import t from 'tap';
import { compile } from '../../../ingress/compile.ts';
import type { ClusterState } from '../../../ingress/compile.ts';
import { findCert, normalizeHost, pathOf, resolve, rewritePath } from '../../../ingress/match.ts';
import type {
  Ingress,
  IngressPath,
  Service,
  EndpointSlice,
  TlsSecret,
  IngressClass,
} from '../../../src/model/types.ts';
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

function state(
  ingresses: Ingress[],
  extra: { services?: Service[]; slices?: EndpointSlice[]; secrets?: TlsSecret[]; classes?: IngressClass[] } = {},
): ClusterState {
  const services = extra.services ?? [];
  return {
    ingresses,
    classes: extra.classes ?? [ingressClass()],
    services: new Map(services.map((s) => [`${s.meta.namespace}/${s.meta.name}`, s])),
    slices: extra.slices ?? [],
    secrets: new Map((extra.secrets ?? []).map((s) => [`${s.meta.namespace}/${s.meta.name}`, s])),
  };
}

/** which service serves host+path: the service name, 'default' (Ingress default backend) or '404' */
function serve(ings: Ingress[], host: string, p: string): string {
  const r = resolve(compile(state(ings)).table, normalizeHost(host), pathOf(p));
  return r.kind === 'route'
    ? r.match.route.upstream.service
    : r.kind === 'default'
      ? `default:${r.route.upstream.service}`
      : '404';
}

// Kubernetes docs, "Examples" under path types (kubernetes.io/docs/concepts/services-networking/ingress/#examples).
// Each path is served by a service named after it; 'no' means the request falls to the default backend.
const DOCS_TABLE: { kind: string; paths: [string, 'Exact' | 'Prefix'][]; request: string; want: string }[] = [
  { kind: 'Prefix', paths: [['/', 'Prefix']], request: '/anything/at/all', want: '/' },
  { kind: 'Exact', paths: [['/foo', 'Exact']], request: '/foo', want: '/foo' },
  { kind: 'Exact', paths: [['/foo', 'Exact']], request: '/bar', want: 'no' },
  { kind: 'Exact', paths: [['/foo', 'Exact']], request: '/foo/', want: 'no' },
  { kind: 'Exact', paths: [['/foo/', 'Exact']], request: '/foo', want: 'no' },
  { kind: 'Prefix', paths: [['/foo', 'Prefix']], request: '/foo', want: '/foo' },
  { kind: 'Prefix', paths: [['/foo', 'Prefix']], request: '/foo/', want: '/foo' },
  { kind: 'Prefix', paths: [['/foo/', 'Prefix']], request: '/foo', want: '/foo/' },
  { kind: 'Prefix', paths: [['/foo/', 'Prefix']], request: '/foo/', want: '/foo/' },
  { kind: 'Prefix', paths: [['/aaa/bb', 'Prefix']], request: '/aaa/bbb', want: 'no' },
  { kind: 'Prefix', paths: [['/aaa/bbb', 'Prefix']], request: '/aaa/bbb', want: '/aaa/bbb' },
  { kind: 'Prefix', paths: [['/aaa/bbb/', 'Prefix']], request: '/aaa/bbb', want: '/aaa/bbb/' },
  { kind: 'Prefix', paths: [['/aaa/bbb', 'Prefix']], request: '/aaa/bbb/', want: '/aaa/bbb' },
  { kind: 'Prefix', paths: [['/aaa/bbb', 'Prefix']], request: '/aaa/bbb/ccc', want: '/aaa/bbb' },
  { kind: 'Prefix', paths: [['/aaa/bbb', 'Prefix']], request: '/aaa/bbbxyz', want: 'no' },
  {
    kind: 'Prefix',
    paths: [
      ['/', 'Prefix'],
      ['/aaa', 'Prefix'],
    ],
    request: '/aaa/ccc',
    want: '/aaa',
  },
  {
    kind: 'Prefix',
    paths: [
      ['/', 'Prefix'],
      ['/aaa', 'Prefix'],
      ['/aaa/bbb', 'Prefix'],
    ],
    request: '/aaa/bbb',
    want: '/aaa/bbb',
  },
  {
    kind: 'Prefix',
    paths: [
      ['/', 'Prefix'],
      ['/aaa', 'Prefix'],
      ['/aaa/bbb', 'Prefix'],
    ],
    request: '/ccc',
    want: '/',
  },
  { kind: 'Prefix', paths: [['/aaa', 'Prefix']], request: '/ccc', want: 'no' },
  {
    kind: 'Mixed',
    paths: [
      ['/foo', 'Prefix'],
      ['/foo', 'Exact'],
    ],
    request: '/foo',
    want: '/foo Exact',
  },
];

const svcName = (p: string, k: string) => `s${p.replace(/\//g, '-')}-${k.toLowerCase()}`;

t.test('every row of the Kubernetes docs path-matching table', async (t) => {
  for (const row of DOCS_TABLE) {
    const paths: IngressPath[] = row.paths.map(([p, k]) => path(p, k, svcName(p, k)));
    const ing = ingress('docs', [rule('docs.example', ...paths)], (i) => {
      i.defaultBackend = { service: { name: 'fallback', port: { number: 80 } } };
    });
    // YAML order must not matter: try both orders
    for (const ordered of [paths, [...paths].reverse()]) {
      const got = serve(
        [ingress('docs', [rule('docs.example', ...ordered)], (i) => (i.defaultBackend = ing.defaultBackend))],
        'docs.example',
        row.request,
      );
      const want =
        row.want === 'no'
          ? 'default:fallback'
          : row.want.endsWith(' Exact')
            ? svcName(row.want.split(' ')[0]!, 'Exact')
            : svcName(row.want, row.paths.find(([p]) => p === row.want)![1]);
      t.equal(got, want, `${row.kind} ${row.paths.map(([p]) => p).join(', ')} vs ${row.request}`);
    }
  }
});

t.test('exact is case-sensitive, query and fragment are not part of the path', async (t) => {
  const ing = [ingress('a', [rule('h.test', path('/foo', 'Exact', 'exact'), path('/Bar', 'Prefix', 'bar'))])];
  t.equal(serve(ing, 'h.test', '/FOO'), '404');
  t.equal(serve(ing, 'h.test', '/foo?x=/y'), 'exact');
  t.equal(serve(ing, 'h.test', '/foo#frag'), 'exact');
  t.equal(serve(ing, 'h.test', '/bar'), '404', 'prefix is case-sensitive');
  t.equal(serve(ing, 'h.test', '/Bar/x'), 'bar');
});

t.test('/foo/ beats /foo (longer) when both are Prefix', async (t) => {
  const ing = [ingress('a', [rule('h.test', path('/foo', 'Prefix', 'short'), path('/foo/', 'Prefix', 'long'))])];
  t.equal(serve(ing, 'h.test', '/foo'), 'long');
  t.equal(serve(ing, 'h.test', '/foo/x'), 'long');
});

t.test('hosts: exact, wildcard matches exactly one label, host-less rules catch the rest', async (t) => {
  const ing = [
    ingress('a', [
      rule('foo.bar.com', path('/', 'Prefix', 'foo-bar')),
      rule('*.foo.com', path('/', 'Prefix', 'wild')),
      rule(undefined, path('/', 'Prefix', 'any')),
    ]),
  ];
  const table: [string, string][] = [
    ['foo.bar.com', 'foo-bar'],
    ['FOO.Bar.com:8080', 'foo-bar'],
    ['foo.bar.com.', 'foo-bar'],
    ['bar.foo.com', 'wild'],
    ['baz.bar.foo.com', 'any'],
    ['foo.com', 'any'],
    ['other.example', 'any'],
    ['198.18.0.11', 'any'],
  ];
  for (const [h, want] of table) t.equal(serve(ing, h, '/x'), want, h);
  const noCatchAll = [
    ingress('a', [rule('foo.bar.com', path('/', 'Prefix', 'foo-bar')), rule('*.foo.com', path('/', 'Prefix', 'wild'))]),
  ];
  t.equal(serve(noCatchAll, 'baz.bar.foo.com', '/'), '404', 'wildcard does not match two labels');
  t.equal(serve(noCatchAll, 'foo.com', '/'), '404', 'wildcard does not match the bare suffix');
  t.equal(serve(noCatchAll, 'bar.foo.com', '/'), 'wild');
});

t.test('a matched host whose paths do not match falls to the default backend, not to host-less rules', async (t) => {
  const ing = [
    ingress(
      'a',
      [rule('h.test', path('/api', 'Prefix', 'api')), rule(undefined, path('/', 'Prefix', 'any'))],
      (i) => (i.defaultBackend = { service: { name: 'dflt', port: { number: 80 } } }),
    ),
  ];
  t.equal(serve(ing, 'h.test', '/web'), 'default:dflt');
  t.equal(serve(ing, 'x.test', '/web'), 'any');
});

t.test('defaultBackend only: every host and path', async (t) => {
  const ing = [
    ingress('only-default', [], (i) => (i.defaultBackend = { service: { name: 'dflt', port: { number: 80 } } })),
  ];
  t.equal(serve(ing, 'a.b', '/'), 'default:dflt');
  t.equal(serve(ing, '', '/x/y'), 'default:dflt');
  const r = compile(state([ingress('empty', [])]));
  t.same(r.rejected, [{ ingress: 'default/empty', reason: 'no rules and no defaultBackend' }]);
});

t.test('IngressClass selection', async (t) => {
  const mk = (name: string, mut: Parameters<typeof ingress>[2]) =>
    ingress(name, [rule(`${name}.test`, path('/', 'Prefix', name))], mut);
  const ings = [
    mk('by-name', () => {}),
    mk('other-class', (i) => (i.ingressClassName = 'nginx')),
    mk('unknown-class', (i) => (i.ingressClassName = 'nope')),
    mk('legacy-ours', (i) => {
      delete i.ingressClassName;
      i.meta = { ...i.meta, annotations: { 'kubernetes.io/ingress.class': 'kdp' } };
    }),
    mk('legacy-other', (i) => {
      delete i.ingressClassName;
      i.meta = { ...i.meta, annotations: { 'kubernetes.io/ingress.class': 'nginx' } };
    }),
    mk('classless', (i) => delete i.ingressClassName),
  ];
  const classes = [ingressClass('kdp'), ingressClass('nginx', 'k8s.io/ingress-nginx')];
  t.same(compile(state(ings, { classes })).accepted.toSorted(), ['default/by-name', 'default/legacy-ours']);
  t.same(
    compile(state(ings, { classes: [ingressClass('kdp', 'kdp.dev/ingress', true), classes[1]!] })).accepted.toSorted(),
    ['default/by-name', 'default/classless', 'default/legacy-ours'],
    'our default class takes class-less Ingresses',
  );
  t.same(
    compile(
      state(ings, { classes: [classes[0]!, ingressClass('nginx', 'k8s.io/ingress-nginx', true)] }),
    ).accepted.toSorted(),
    ['default/by-name', 'default/legacy-ours'],
    'someone else is default',
  );
  t.same(
    compile(state(ings, { classes }), {
      controllerName: 'kdp.dev/ingress',
      className: 'kdp',
      watchWithoutClass: true,
    }).accepted.toSorted(),
    ['default/by-name', 'default/classless', 'default/legacy-ours'],
    '--watch-ingress-without-class',
  );
});

t.test('several Ingresses merge per host; on a conflict the first by namespace/name wins', async (t) => {
  const a = ingress('a', [rule('m.test', path('/a', 'Prefix', 'svc-a'), path('/shared', 'Prefix', 'svc-a'))]);
  const b = ingress('b', [
    rule(
      'm.test',
      path('/b', 'Prefix', 'svc-b'),
      path('/shared', 'Prefix', 'svc-b'),
      path('/shared', 'Exact', 'svc-b-exact'),
    ),
  ]);
  for (const order of [
    [a, b],
    [b, a],
  ]) {
    const r = compile(state(order));
    t.equal(r.accepted.length, 2);
    const at = (p: string) => {
      const x = resolve(r.table, 'm.test', p);
      return x.kind === 'route' ? x.match.route.upstream.service : x.kind;
    };
    t.equal(at('/a/1'), 'svc-a');
    t.equal(at('/b'), 'svc-b');
    t.equal(at('/shared/x'), 'svc-a', 'conflict: default/a wins');
    t.equal(at('/shared'), 'svc-b-exact', 'different pathType is no conflict');
    t.ok(
      r.warnings.some((w) => /default\/b: m.test Prefix \/shared already served by default\/a/.test(w)),
      String(/default\/b: m.test Prefix \/shared already served by default\/a/),
    );
  }
});

t.test('invalid values reject only the bad Ingress', async (t) => {
  const good = ingress('good', [rule('good.test', path('/', 'Prefix', 'good'))]);
  const bad: [string, Ingress][] = [
    [
      'snippet',
      withAnnotations(ingress('bad', [rule('bad.test', path('/', 'Prefix', 'x'))]), {
        'nginx.ingress.kubernetes.io/configuration-snippet': 'return 200;',
      }),
    ],
    [
      'bad redirect',
      withAnnotations(ingress('bad', [rule('bad.test', path('/', 'Prefix', 'x'))]), {
        'nginx.ingress.kubernetes.io/permanent-redirect': 'https://x.com/;\nlua_code',
      }),
    ],
    [
      'bad size',
      withAnnotations(ingress('bad', [rule('bad.test', path('/', 'Prefix', 'x'))]), {
        'nginx.ingress.kubernetes.io/proxy-body-size': '1m;',
      }),
    ],
    [
      'bad timeout',
      withAnnotations(ingress('bad', [rule('bad.test', path('/', 'Prefix', 'x'))]), {
        'nginx.ingress.kubernetes.io/proxy-read-timeout': '60 ; x',
      }),
    ],
    [
      'bad cidr',
      withAnnotations(ingress('bad', [rule('bad.test', path('/', 'Prefix', 'x'))]), {
        'nginx.ingress.kubernetes.io/whitelist-source-range': '10.0.0.0/33',
      }),
    ],
    [
      'bad bool',
      withAnnotations(ingress('bad', [rule('bad.test', path('/', 'Prefix', 'x'))]), {
        'nginx.ingress.kubernetes.io/ssl-redirect': 'yes',
      }),
    ],
    [
      'bad protocol',
      withAnnotations(ingress('bad', [rule('bad.test', path('/', 'Prefix', 'x'))]), {
        'nginx.ingress.kubernetes.io/backend-protocol': 'FCGI',
      }),
    ],
    [
      'bad header',
      withAnnotations(ingress('bad', [rule('bad.test', path('/', 'Prefix', 'x'))]), {
        'nginx.ingress.kubernetes.io/custom-response-headers': 'X-A: b\r\nSet-Cookie: x',
      }),
    ],
    [
      'bad rewrite',
      withAnnotations(ingress('bad', [rule('bad.test', path('/', 'Prefix', 'x'))]), {
        'nginx.ingress.kubernetes.io/rewrite-target': '/$1 ; }',
      }),
    ],
    [
      'bad regex path',
      withAnnotations(ingress('bad', [rule('bad.test', path('/(x', 'ImplementationSpecific', 'x'))]), {
        'nginx.ingress.kubernetes.io/use-regex': 'true',
      }),
    ],
    ['regex chars in Prefix', ingress('bad', [rule('bad.test', path('/x(.*)', 'Prefix', 'x'))])],
    ['relative path', ingress('bad', [rule('bad.test', path('x', 'Prefix', 'x'))])],
    ['bad host', ingress('bad', [rule('a.*.test', path('/', 'Prefix', 'x'))])],
    ['bare wildcard', ingress('bad', [rule('*', path('/', 'Prefix', 'x'))])],
    [
      'resource backend',
      ingress('bad', [
        {
          host: 'bad.test',
          paths: [{ path: '/', pathType: 'Prefix', backend: { resource: { kind: 'StorageBucket', name: 'b' } } }],
        },
      ]),
    ],
  ];
  for (const [what, b] of bad) {
    const r = compile(state([good, b]));
    t.same(r.accepted, ['default/good'], what);
    t.equal(r.rejected.length, 1, what);
    t.equal(r.rejected[0]!.ingress, 'default/bad');
    t.equal(resolve(r.table, 'good.test', '/').kind, 'route', `${what}: the others keep serving`);
    t.equal(resolve(r.table, 'bad.test', '/').kind, 'none');
  }
});

t.test('annotations are parsed into route options', async (t) => {
  const ing = withAnnotations(ingress('a', [rule('a.test', path('/', 'Prefix', 'x'))]), {
    'nginx.ingress.kubernetes.io/proxy-body-size': '8k',
    'nginx.ingress.kubernetes.io/proxy-read-timeout': '3',
    'nginx.ingress.kubernetes.io/affinity': 'cookie',
    'nginx.ingress.kubernetes.io/session-cookie-name': 'route',
    'nginx.ingress.kubernetes.io/enable-cors': 'true',
    'nginx.ingress.kubernetes.io/custom-response-headers': 'X-A: 1||X-B: two words',
    'nginx.ingress.kubernetes.io/whitelist-source-range': '10.0.0.0/8, 192.168.1.1',
    'nginx.ingress.kubernetes.io/some-future-thing': 'x',
  });
  const r = compile(state([ing]));
  const x = resolve(r.table, 'a.test', '/');
  if (x.kind !== 'route') throw new Error('no route');
  const o = x.match.route.options;
  t.equal(o.bodyLimit, 8192);
  t.equal(o.readTimeoutMs, 3000);
  t.equal(o.affinity?.cookieName, 'route');
  t.equal(o.cors?.allowOrigin[0], '*');
  t.same(o.responseHeaders, [
    ['X-A', '1'],
    ['X-B', 'two words'],
  ]);
  t.equal(o.allowSources?.check('10.1.2.3', 'ipv4'), true);
  t.equal(o.allowSources?.check('192.168.1.2', 'ipv4'), false);
  t.ok(
    r.warnings.some((w) => /ignored: some-future-thing/.test(w)),
    String(/ignored: some-future-thing/),
  );
});

t.test('use-regex / rewrite-target: the host becomes case-insensitive regex, captures rewrite', async (t) => {
  const ing = withAnnotations(
    ingress('rw', [
      rule('rw.test', path('/something(/|$)(.*)', 'ImplementationSpecific', 'rw'), path('/exact', 'Exact', 'ex')),
    ]),
    {
      'nginx.ingress.kubernetes.io/rewrite-target': '/$2',
    },
  );
  const other = ingress('plain', [rule('rw.test', path('/plain', 'Prefix', 'plain'))]);
  const r = compile(state([ing, other]));
  const at = (p: string) => resolve(r.table, 'rw.test', p);
  const m = at('/something/new');
  if (m.kind !== 'route') throw new Error('no match');
  t.equal(m.match.route.upstream.service, 'rw');
  t.equal(rewritePath(m.match.route.options.rewriteTarget!, m.match.captures), '/new');
  const m2 = at('/SOMETHING');
  t.equal(m2.kind === 'route' && rewritePath('/$2', m2.match.captures), '/');
  const p = at('/PLAIN/x');
  t.equal(
    p.kind === 'route' && p.match.route.upstream.service,
    'plain',
    'other Ingresses on the host become regex too',
  );
  t.equal(
    at('/exact').kind === 'route' &&
      (at('/exact') as { match: { route: { upstream: { service: string } } } }).match.route.upstream.service,
    'ex',
  );
});

t.test('endpoints come from ready EndpointSlice entries of the Service port', async (t) => {
  const ing = ingress('a', [rule('e.test', path('/', 'Prefix', 'web', 'http'))]);
  const svc = service('web', 80, 'default', 'http');
  const r = compile(
    state([ing], {
      services: [svc],
      slices: [
        slice('web', ['198.19.1.10', '198.19.1.11'], 8080, 'default', 'http'),
        slice('web', ['198.19.1.12'], 8080, 'default', 'http', false),
        slice('web', ['198.19.1.13'], 9000, 'default', 'metrics'),
      ],
    }),
  );
  const x = resolve(r.table, 'e.test', '/');
  t.same(x.kind === 'route' && x.match.route.upstream.endpoints, ['198.19.1.10:8080', '198.19.1.11:8080']);
  t.equal(x.kind === 'route' && x.match.route.upstream.name, 'default-web-http');
  const missing = compile(state([ingress('b', [rule('e.test', path('/', 'Prefix', 'gone'))])]));
  const y = resolve(missing.table, 'e.test', '/');
  t.same(y.kind === 'route' && y.match.route.upstream.endpoints, [], 'a missing Service gives an empty upstream (503)');
  t.ok(
    missing.warnings.some((w) => /service default\/gone not found/.test(w)),
    String(/service default\/gone not found/),
  );
});

t.test('TLS: certs by host (wildcards too), 308 redirect only for TLS hosts unless disabled or forced', async (t) => {
  const secret = tlsSecret('tls-a', 'CERT-A', 'KEY-A');
  const wild = tlsSecret('tls-w', 'CERT-W', 'KEY-W');
  const a = ingress(
    'a',
    [rule('secure.test', path('/', 'Prefix', 'a')), rule('plain.test', path('/', 'Prefix', 'p'))],
    (i) => (i.tls = [{ hosts: ['secure.test'], secretName: 'tls-a' }]),
  );
  const w = ingress(
    'w',
    [rule('x.wild.test', path('/', 'Prefix', 'w'))],
    (i) => (i.tls = [{ hosts: ['*.wild.test'], secretName: 'tls-w' }]),
  );
  const off = withAnnotations(
    ingress(
      'off',
      [rule('noredirect.test', path('/', 'Prefix', 'o'))],
      (i) => (i.tls = [{ hosts: ['noredirect.test'], secretName: 'tls-a' }]),
    ),
    { 'nginx.ingress.kubernetes.io/ssl-redirect': 'false' },
  );
  const force = withAnnotations(ingress('force', [rule('forced.test', path('/', 'Prefix', 'f'))]), {
    'nginx.ingress.kubernetes.io/force-ssl-redirect': 'true',
  });
  const r = compile(state([a, w, off, force], { secrets: [secret, wild] }));
  const redirect = (h: string) => {
    const x = resolve(r.table, h, '/');
    return x.kind === 'route' && x.match.route.sslRedirect;
  };
  t.equal(redirect('secure.test'), true);
  t.equal(redirect('plain.test'), false);
  t.equal(redirect('x.wild.test'), true);
  t.equal(redirect('noredirect.test'), false);
  t.equal(redirect('forced.test'), true);
  t.equal(findCert(r.table, 'secure.test')?.certPem, 'CERT-A');
  t.equal(findCert(r.table, 'any.wild.test')?.certPem, 'CERT-W');
  t.equal(findCert(r.table, 'a.b.wild.test'), undefined, 'wildcard cert covers one label');
  t.equal(findCert(r.table, 'plain.test'), undefined, 'default certificate');
  const missing = compile(state([a]));
  t.ok(
    missing.warnings.some((w) => /TLS secret default\/tls-a not found/.test(w)),
    String(/TLS secret default\/tls-a not found/),
  );
});

t.test('canary attaches to the main route of the same host and path', async (t) => {
  const main = ingress('main', [rule('c.test', path('/', 'Prefix', 'stable'))]);
  const canary = withAnnotations(ingress('canary', [rule('c.test', path('/', 'Prefix', 'next'))]), {
    'nginx.ingress.kubernetes.io/canary': 'true',
    'nginx.ingress.kubernetes.io/canary-by-header': 'X-Canary',
    'nginx.ingress.kubernetes.io/canary-weight': '25',
  });
  const orphan = withAnnotations(ingress('orphan', [rule('none.test', path('/', 'Prefix', 'next'))]), {
    'nginx.ingress.kubernetes.io/canary': 'true',
  });
  const r = compile(state([main, canary, orphan]));
  const x = resolve(r.table, 'c.test', '/');
  t.equal(x.kind === 'route' && x.match.route.upstream.service, 'stable');
  t.match(x.kind === 'route' && x.match.route.canary, {
    upstream: { service: 'next' },
    byHeader: 'X-Canary',
    weight: 25,
    weightTotal: 100,
  });
  t.equal(resolve(r.table, 'none.test', '/').kind, 'none', 'a canary alone creates no route');
  t.ok(
    r.warnings.some((w) => /orphan: canary for none.test \/ has no main Ingress/.test(w)),
    String(/orphan: canary for none.test \/ has no main Ingress/),
  );
});

t.test('IPv6 endpoints and Host headers', async (t) => {
  const ing = ingress('v6', [rule('v6.test', path('/', 'Prefix', 'web'))]);
  const s6 = {
    ...slice('web', [], 8080),
    addressType: 'IPv6' as const,
    endpoints: [{ addresses: ['fd00::10'], conditions: { ready: true, serving: true, terminating: false } }],
  };
  const r = compile(state([ing], { services: [service('web')], slices: [s6] }));
  const x = resolve(r.table, normalizeHost('V6.test:8443'), '/');
  t.same(x.kind === 'route' && x.match.route.upstream.endpoints, ['[fd00::10]:8080']);
  t.equal(normalizeHost('[fd00::1]:80'), '[fd00::1]');
  t.equal(normalizeHost(undefined), '');
});

t.test(
  'the legacy class annotation, from the API object: served when it names --ingress-class, no IngressClass needed',
  async (t) => {
    const { convertIngress } = await import('../../../src/k8s/convert.ts');
    const raw = (name: string, annotations: Record<string, string>, spec: Record<string, unknown> = {}) => {
      const r = convertIngress({
        metadata: { namespace: 'default', name, annotations },
        spec: {
          ...spec,
          rules: [
            {
              host: `${name}.test`,
              http: {
                paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name, port: { number: 80 } } } }],
              },
            },
          ],
        },
      });
      if (!r.ok) throw new Error(r.reason);
      return r.value;
    };
    const ings = [
      raw('legacy-kdp', { 'kubernetes.io/ingress.class': 'kdp' }),
      raw('legacy-custom', { 'kubernetes.io/ingress.class': 'custom' }),
      raw('legacy-nginx', { 'kubernetes.io/ingress.class': 'nginx' }),
      raw('field-wins', { 'kubernetes.io/ingress.class': 'kdp' }, { ingressClassName: 'nginx' }),
    ];
    const noClasses = state(ings, { classes: [] });
    const r = compile(noClasses);
    t.same(r.accepted, ['default/legacy-kdp'], 'annotation = default --ingress-class kdp, no IngressClass object');
    t.same(r.ignored, [
      { ingress: 'default/field-wins', reason: 'spec.ingressClassName nginx: no IngressClass of that name' },
      {
        ingress: 'default/legacy-custom',
        reason: 'annotation kubernetes.io/ingress.class: custom is not our class kdp',
      },
      { ingress: 'default/legacy-nginx', reason: 'annotation kubernetes.io/ingress.class: nginx is not our class kdp' },
    ]);
    t.same(
      compile(noClasses, { controllerName: 'kdp.dev/ingress', className: 'custom', watchWithoutClass: false }).accepted,
      ['default/legacy-custom'],
      '--ingress-class custom',
    );
    t.same(
      compile(state(ings, { classes: [ingressClass('nginx', 'k8s.io/ingress-nginx')] })).ignored[0],
      {
        ingress: 'default/field-wins',
        reason: 'IngressClass nginx belongs to controller k8s.io/ingress-nginx, not kdp.dev/ingress',
      },
      'spec.ingressClassName is looked at before the annotation (ingress-nginx order)',
    );
    t.equal(serve(ings, 'legacy-kdp.test', '/'), 'legacy-kdp');
  },
);
