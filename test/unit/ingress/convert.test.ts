// kdp ingress convert: Ingress manifests (test/fixtures/ingress-convert) to Gateway API YAML, compared with the
// golden files in test/golden/ingress-convert (exact text; UPDATE_GOLDEN=1 rewrites them, review the diff).
// Plus the rules the golden files only show: the warnings, the objects' shapes, and that the result is
// accepted by kdp's own Gateway API manifest reader.
import t from 'tap';
import type { Test } from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { convertIngresses, DEFAULT_CONVERT_OPTIONS, toYaml } from '../../../ingress/convert.ts';
import type { ConvertResult } from '../../../ingress/convert.ts';
import { parseManifest } from '../../../src/k8s/manifests-source.ts';
import type { Ingress, Service } from '../../../src/model/types.ts';

function load(name: string): { ingresses: Ingress[]; services: Map<string, Service> } {
  const text = readFileSync(new URL(`../../fixtures/ingress-convert/${name}`, import.meta.url), 'utf8');
  const parsed = parseManifest(text);
  if (!parsed.ok) throw new Error(`${name}:${parsed.line}: ${parsed.reason}`);
  const ingresses: Ingress[] = [];
  const services = new Map<string, Service>();
  for (const { obj } of parsed.objects) {
    if (obj.kind === 'Ingress') ingresses.push(obj);
    if (obj.kind === 'Service') services.set(`${obj.meta.namespace}/${obj.meta.name}`, obj);
  }
  return { ingresses, services };
}

function golden(t: Test, name: string, actual: string): void {
  const url = new URL(`../../golden/ingress-convert/${name}`, import.meta.url);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(url)) {
    if (process.env.UPDATE_GOLDEN !== '1') t.fail(`golden file ${name} missing; wrote it (run again, review it)`);
    writeFileSync(url, actual);
    return;
  }
  t.equal(actual, readFileSync(url, 'utf8'), `matches golden ${name}`);
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function convert(name: string): ConvertResult {
  const { ingresses, services } = load(name);
  return convertIngresses(ingresses, services, DEFAULT_CONVERT_OPTIONS);
}

const find = (r: ConvertResult, kind: string, name: string) =>
  r.objects.find((o) => o.kind === kind && (o.metadata as Obj).name === name) as Obj | undefined;

for (const name of ['basic.yaml', 'annotations.yaml', 'namespaces.yaml'])
  t.test(`golden ${name}`, async (t) => {
    const r = convert(name);
    golden(t, name, toYaml(r));
    // kdp's own manifest reader takes every object it wrote
    const back = parseManifest(toYaml(r));
    t.ok(back.ok, 'parses');
    if (back.ok) t.same(back.skipped, [], 'no object skipped by the converters');
    t.equal(parseAllDocuments(toYaml(r)).length, r.objects.length, 'one YAML document per object');
  });

t.test('basic: listeners, ssl-redirect, named port, default backend', async (t) => {
  const r = convert('basic.yaml');
  const gw = find(r, 'Gateway', 'kdp')!;
  t.equal(gw.metadata.namespace, 'shop', 'the Gateway goes to the one namespace of the Ingresses');
  t.same(
    gw.spec.listeners.map((l: Obj) => [l.name, l.port, l.protocol, l.hostname]),
    [
      ['http', 80, 'HTTP', undefined],
      ['https-1', 443, 'HTTPS', 'shop.example.com'],
    ],
  );
  const shop = find(r, 'HTTPRoute', 'store-shop-example-com')!;
  t.same(shop.spec.parentRefs, [{ name: 'kdp', sectionName: 'https-1' }], 'the TLS host is served on HTTPS only');
  t.same(shop.spec.rules[0].backendRefs, [{ name: 'web', port: 8080 }], 'named port resolved through the Service');
  const redirect = find(r, 'HTTPRoute', 'store-shop-example-com-ssl-redirect')!;
  t.same(redirect.spec.rules[0].filters[0].requestRedirect, { scheme: 'https', statusCode: 308 });
  const admin = find(r, 'HTTPRoute', 'store-admin-example-com')!;
  t.same(admin.spec.parentRefs, [{ name: 'kdp', sectionName: 'http' }]);
  t.equal(admin.spec.rules[0].matches[0].path.type, 'PathPrefix', 'ImplementationSpecific without regex mode');
  const def = find(r, 'HTTPRoute', 'store-default')!;
  t.equal(def.spec.hostnames, undefined, 'the default backend route has no hostnames');
});

t.test('annotations: translations and one warning per untranslated annotation', async (t) => {
  const r = convert('annotations.yaml');
  const rw = find(r, 'HTTPRoute', 'rewrite')!.spec.rules[0];
  t.same(rw.matches[0].path, { type: 'PathPrefix', value: '/api' }, 'the /p(/|$)(.*) idiom is a prefix');
  t.same(rw.filters[0].urlRewrite.path, { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' });
  t.same(rw.filters[1].responseHeaderModifier.set, [{ name: 'X-Served-By', value: 'kdp' }]);
  t.same(rw.timeouts, { backendRequest: '30s' });
  const st = find(r, 'HTTPRoute', 'static')!.spec.rules;
  t.same(st[0].filters[0].requestRedirect, {
    path: { type: 'ReplaceFullPath', replaceFullPath: '/home' },
    statusCode: 302,
  });
  t.same(st[1].filters[0].urlRewrite.path, { type: 'ReplaceFullPath', replaceFullPath: '/index.html' });
  const mv = find(r, 'HTTPRoute', 'moved')!.spec.rules[0];
  t.same(mv.filters[0].requestRedirect, {
    scheme: 'https',
    hostname: 'new.example.com',
    path: { type: 'ReplaceFullPath', replaceFullPath: '/landing' },
    statusCode: 308,
  });
  t.notOk(mv.backendRefs, 'a redirect rule has no backend');
  const main = find(r, 'HTTPRoute', 'main')!.spec.rules;
  t.same(main[0].backendRefs, [
    { name: 'stable', port: 80, weight: 80 },
    { name: 'preview', port: 80, weight: 20 },
  ]);
  t.same(main[1].matches[0].headers, [{ name: 'X-Canary', type: 'Exact', value: 'always' }]);
  t.same(main[1].backendRefs, [{ name: 'preview', port: 80 }]);
  t.same(main[2].matches[0].headers, [{ name: 'X-Canary', type: 'Exact', value: 'never' }]);
  t.same(main[2].backendRefs, [{ name: 'stable', port: 80 }]);
  t.ok(find(r, 'HTTPRoute', 'main-ssl-redirect'), 'force-ssl-redirect');
  t.notOk(find(r, 'HTTPRoute', 'broken'), 'an Ingress kdp rejects is not converted');
  const w = r.warnings.join('\n');
  for (const re of [
    /apps\/static: nginx.ingress.kubernetes.io\/affinity: session persistence/,
    /apps\/static: nginx.ingress.kubernetes.io\/proxy-body-size: no request body limit/,
    /apps\/static: nginx.ingress.kubernetes.io\/whitelist-source-range: no source address filter/,
    /apps\/static: nginx.ingress.kubernetes.io\/enable-cors: the CORS filter/,
    /apps\/static: nginx.ingress.kubernetes.io\/server-alias: not supported by kdp/,
    /apps\/main-canary: nginx.ingress.kubernetes.io\/canary-by-cookie: no cookie match/,
    /apps\/rewrite: nginx.ingress.kubernetes.io\/proxy-read-timeout: timeouts.backendRequest 30s/,
    /apps\/broken: not converted: configuration-snippet/,
  ])
    t.match(w, re);
  t.notMatch(w, /session-cookie-name/, 'subsidiary annotations are reported with their main one');
  t.equal(r.warnings.filter((x) => x.includes('affinity')).length, 1, 'one warning per annotation, not one per path');
});

t.test('namespaces: Gateway in default, routes from All, ReferenceGrants for the Secrets', async (t) => {
  const r = convert('namespaces.yaml');
  const gw = find(r, 'Gateway', 'kdp')!;
  t.equal(gw.metadata.namespace, 'default');
  t.ok(gw.spec.listeners.every((l: Obj) => l.allowedRoutes.namespaces.from === 'All'));
  t.same(gw.spec.listeners[1].tls.certificateRefs, [{ kind: 'Secret', name: 'wildcard-a', namespace: 'team-a' }]);
  const grants = r.objects.filter((o) => o.kind === 'ReferenceGrant') as Obj[];
  t.same(
    grants.map((g) => [g.metadata.namespace, g.spec.to.map((x: Obj) => x.name)]),
    [
      ['team-a', ['wildcard-a']],
      ['team-b', ['b-tls']],
    ],
  );
  const a = find(r, 'HTTPRoute', 'a')!;
  t.same(
    a.spec.parentRefs,
    [{ name: 'kdp', namespace: 'default', sectionName: 'https-1' }],
    'wildcard TLS host covers x.a',
  );
  const b = find(r, 'HTTPRoute', 'b')!;
  t.same(
    b.spec.parentRefs.map((p: Obj) => p.sectionName),
    ['http', 'https-2'],
    'ssl-redirect "false": served on both listeners',
  );
  t.notOk(find(r, 'HTTPRoute', 'b-ssl-redirect'));
});

t.test('options: Gateway name, namespace and class', async (t) => {
  const { ingresses } = load('namespaces.yaml');
  const r = convertIngresses(ingresses, new Map(), {
    ...DEFAULT_CONVERT_OPTIONS,
    gatewayName: 'edge',
    gatewayNamespace: 'infra',
    gatewayClassName: 'prod',
  });
  t.same(r.objects[0], {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name: 'prod' },
    spec: { controllerName: 'kdp.dev/gateway-controller' },
  });
  const gw = find(r, 'Gateway', 'edge')!;
  t.equal(gw.metadata.namespace, 'infra');
  t.equal(gw.spec.gatewayClassName, 'prod');
  t.same(find(r, 'HTTPRoute', 'a')!.spec.parentRefs[0], { name: 'edge', namespace: 'infra', sectionName: 'https-1' });
});

t.test('no Ingresses: class and an HTTP-only Gateway, no warnings', async (t) => {
  const r = convertIngresses([]);
  t.same(
    r.objects.map((o) => o.kind),
    ['GatewayClass', 'Gateway'],
  );
  t.same(r.warnings, []);
});
