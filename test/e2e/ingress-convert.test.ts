// kdp ingress convert, end to end: `kdp ingress --manifests` serves a set of Ingresses (hosts, path types, TLS
// with ssl-redirect, a default backend, a rewrite-target idiom, a header canary, app-root, response headers); a
// table of requests is sent with curl and where each lands is recorded (status, backend, path it received,
// Location). Then the Ingresses are replaced by what `kdp ingress convert` makes of them, and the same requests,
// sent to the Gateway's address, must land in the same places. Also: `convert --kubeconfig` against the API
// double writes the same YAML as `convert FILE`, and a file with a snippet annotation is reported, not converted.
import t from 'tap';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { run, spawnChild } from '../../src/common/exec-adapter.ts';
import { selfSigned } from '../../ingress/default-cert.ts';
import { ApiDouble } from '../apiserver/server.ts';
import { needsRoot } from '../helpers/gate.ts';
import { gatewayAddressOf } from '../helpers/gateway-conformance.ts';
import { freePort } from '../helpers/ports.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const NS = 'shop';
const POOL = '127.14.0.0/16';
const SERVICES = ['web', 'api', 'admin', 'fallback', 'stable', 'preview', 'files'];
type Obj = Record<string, unknown>;

const backend = (name: string, port = 80) => ({ service: { name, port: { number: port } } });
const path = (p: string, type: string, svc: string) => ({ path: p, pathType: type, backend: backend(svc) });
const ingress = (name: string, spec: Obj, annotations: Record<string, string> = {}): Obj => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: { name, namespace: NS, annotations },
  spec: { ingressClassName: 'kdp', ...spec },
});
const rule = (host: string, ...paths: Obj[]) => ({ host, http: { paths } });

const INGRESSES: Obj[] = [
  ingress('store', {
    defaultBackend: backend('fallback'),
    tls: [{ hosts: ['shop.example.com'], secretName: 'shop-tls' }],
    rules: [
      rule(
        'shop.example.com',
        path('/', 'Prefix', 'web'),
        path('/api', 'Prefix', 'api'),
        path('/healthz', 'Exact', 'api'),
      ),
      rule('admin.example.com', path('/', 'ImplementationSpecific', 'admin')),
    ],
  }),
  ingress(
    'rewrite',
    { rules: [rule('app.example.com', path('/api(/|$)(.*)', 'ImplementationSpecific', 'api'))] },
    {
      'nginx.ingress.kubernetes.io/rewrite-target': '/$2',
    },
  ),
  ingress('main', { rules: [rule('canary.example.com', path('/', 'Prefix', 'stable'))] }),
  ingress(
    'main-canary',
    { rules: [rule('canary.example.com', path('/', 'Prefix', 'preview'))] },
    {
      'nginx.ingress.kubernetes.io/canary': 'true',
      'nginx.ingress.kubernetes.io/canary-by-header': 'X-Canary',
    },
  ),
  ingress(
    'static',
    { rules: [rule('static.example.com', path('/', 'Prefix', 'files'))] },
    {
      'nginx.ingress.kubernetes.io/app-root': '/home',
      'nginx.ingress.kubernetes.io/custom-response-headers': 'X-Served-By: kdp',
    },
  ),
];

interface Req {
  readonly host: string;
  readonly path: string;
  readonly https?: boolean;
  readonly headers?: Record<string, string>;
}

const REQUESTS: Req[] = [
  { host: 'shop.example.com', path: '/' },
  { host: 'shop.example.com', path: '/api/orders' },
  { host: 'shop.example.com', path: '/', https: true },
  { host: 'shop.example.com', path: '/api/orders?id=7', https: true },
  { host: 'shop.example.com', path: '/healthz', https: true },
  { host: 'shop.example.com', path: '/healthz/deep', https: true },
  { host: 'shop.example.com', path: '/apiary', https: true },
  { host: 'admin.example.com', path: '/users' },
  { host: 'unknown.example.com', path: '/anything' },
  { host: 'app.example.com', path: '/api/users/3' },
  { host: 'app.example.com', path: '/api' },
  { host: 'canary.example.com', path: '/' },
  { host: 'canary.example.com', path: '/', headers: { 'X-Canary': 'always' } },
  { host: 'canary.example.com', path: '/', headers: { 'X-Canary': 'never' } },
  { host: 'static.example.com', path: '/' },
  { host: 'static.example.com', path: '/page' },
];

/** where a request landed: status, backend and path it received, Location, X-Served-By */
async function land(addr: string, httpPort: number, httpsPort: number, r: Req): Promise<string> {
  const port = r.https ? httpsPort : httpPort;
  const url = `${r.https ? 'https' : 'http'}://${r.host}:${port}${r.path}`;
  const argv = ['curl', '-sS', '-i', '-k', '--max-time', '10', '--resolve', `${r.host}:${port}:${addr}`, url];
  for (const [k, v] of Object.entries(r.headers ?? {})) argv.push('-H', `${k}: ${v}`);
  const res = await run(argv, { allowFailure: true, timeoutMs: 15_000 });
  if (res.code !== 0) return `curl failed: ${res.stderr.trim()}`;
  const [head = '', body = ''] = res.stdout.split('\r\n\r\n');
  const status = /^HTTP\/[\d.]+ (\d+)/.exec(head)?.[1] ?? '?';
  const header = (n: string) => new RegExp(`^${n}: *(.*)$`, 'im').exec(head)?.[1]?.trim();
  let where: string;
  try {
    const j = JSON.parse(body) as { svc: string; path: string };
    where = `${j.svc} ${j.path}`;
  } catch {
    where = '-';
  }
  // where a redirect sends the client (a relative Location resolved against the request, as a client does),
  // without the port the Ingress test listens on (the Gateway's is the default one)
  const raw = header('location');
  const loc = raw === undefined ? '' : new URL(raw, url).href.replace(`:${port}/`, '/');
  return `${status} ${where} ${loc} ${header('x-served-by') ?? ''}`.trim();
}

if (needsRoot(t, 'a Gateway listening on port 80/443 of 127.14.0.0/16')) {
  const dir = await mkdtemp(join(tmpdir(), 'kdp-ingress-convert-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const manifests = join(dir, 'manifests');
  await run(['mkdir', '-p', manifests]);
  const put = async (file: string, objects: readonly unknown[]) => {
    const tmp = join(manifests, `.${file}.tmp`);
    await writeFile(tmp, objects.map((o) => stringify(o)).join('---\n'));
    await rename(tmp, join(manifests, file));
  };

  // one echo backend per Service, each on its own loopback address
  const servers: Server[] = [];
  t.teardown(() => Promise.all(servers.map((s) => new Promise((r) => (s.closeAllConnections(), s.close(r))))));
  const cluster: Obj[] = [];
  for (const [i, svc] of SERVICES.entries()) {
    const ip = `127.0.24.${i + 1}`;
    const s = createServer((req, res) => {
      req.resume();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ svc, path: req.url }));
    });
    await new Promise<void>((r) => s.listen(8080, ip, r));
    servers.push(s);
    cluster.push(
      { apiVersion: 'v1', kind: 'Service', metadata: { name: svc, namespace: NS }, spec: { ports: [{ port: 80 }] } },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: `${svc}-1`, namespace: NS, labels: { 'kubernetes.io/service-name': svc } },
        addressType: 'IPv4',
        endpoints: [{ addresses: [ip], conditions: { ready: true } }],
        ports: [{ name: '', port: 8080, protocol: 'TCP' }],
      },
    );
  }
  const cert = await selfSigned('shop.example.com', ['shop.example.com']);
  cluster.push({
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: { name: 'shop-tls', namespace: NS },
    data: {
      'tls.crt': Buffer.from(cert.certPem).toString('base64'),
      'tls.key': Buffer.from(cert.keyPem).toString('base64'),
    },
  });
  await put('cluster.yaml', [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }, ...cluster]);
  const ingressFile = join(dir, 'ingresses.yaml');
  await writeFile(ingressFile, INGRESSES.map((o) => stringify(o)).join('---\n'));

  t.test('convert FILE and convert --kubeconfig write the same YAML; warnings on stderr', async (t) => {
    const fromFile = await run([process.execPath, MAIN, 'ingress', 'convert', ingressFile], { allowFailure: true });
    t.equal(fromFile.code, 0, `convert FILE exits 0 ${fromFile.code === 0 ? '' : fromFile.stderr.slice(-500)}`);
    t.match(fromFile.stdout, /kind: HTTPRoute/);
    t.match(fromFile.stderr, /warning: shop\/store: spec.defaultBackend/, 'the approximation is reported');
    const double = await ApiDouble.start();
    t.teardown(() => double.close());
    for (const o of INGRESSES) double.create('Ingress', o);
    for (const o of cluster) if (o.kind === 'Service') double.create('Service', o);
    const kc = await double.writeKubeconfig(join(dir, 'kubeconfig'));
    const fromApi = await run([process.execPath, MAIN, 'ingress', 'convert', '--kubeconfig', kc], {
      allowFailure: true,
      timeoutMs: 90_000,
    });
    t.equal(fromApi.code, 0, `convert --kubeconfig exits 0 ${fromApi.code === 0 ? '' : fromApi.stderr.slice(-500)}`);
    t.equal(fromApi.stdout, fromFile.stdout, 'the same Gateway API objects from the API as from the file');
    const snippet = join(dir, 'snippet.yaml');
    await writeFile(
      snippet,
      stringify(
        ingress(
          'bad',
          { rules: [rule('x.example.com', path('/', 'Prefix', 'web'))] },
          {
            'nginx.ingress.kubernetes.io/server-snippet': 'return 200;',
          },
        ),
      ),
    );
    const bad = await run([process.execPath, MAIN, 'ingress', 'convert', snippet], { allowFailure: true });
    t.equal(bad.code, 0);
    t.match(bad.stderr, /warning: shop\/bad: not converted: server-snippet/);
    t.notMatch(bad.stdout, /kind: HTTPRoute/, 'no route for an Ingress kdp refuses');
    const none = await run([process.execPath, MAIN, 'ingress', 'convert', join(dir, 'missing.yaml')], {
      allowFailure: true,
    });
    t.not(none.code, 0, 'a missing file is an error');
    t.match(none.stderr, /missing.yaml: no such file/);
  });

  t.test('the converted Gateway routes every request where the Ingresses did', async (t) => {
    await put('ingress.yaml', [
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'IngressClass',
        metadata: { name: 'kdp' },
        spec: { controller: 'kdp.dev/ingress' },
      },
      ...INGRESSES,
    ]);
    const [httpPort, httpsPort, healthz] = [await freePort(), await freePort(), await freePort()];
    const child = spawnChild([
      process.execPath,
      MAIN,
      'ingress',
      '--manifests',
      manifests,
      '--bind',
      '127.0.0.1',
      '--http-port',
      String(httpPort),
      '--https-port',
      String(httpsPort),
      '--healthz-port',
      String(healthz),
      '--access-log',
      'off',
      '--gateway-addresses',
      POOL,
    ]);
    t.teardown(async () => {
      child.kill('SIGTERM');
      await child.exited;
    });
    const until = async <T>(what: string, f: () => Promise<T | undefined>, ms = 20_000): Promise<T> => {
      const end = Date.now() + ms;
      for (;;) {
        const v = await f().catch(() => undefined);
        if (v !== undefined) return v;
        if (Date.now() > end)
          throw new Error(`${what}: not within ${ms} ms; controller output: ${child.output().slice(-1500)}`);
        await new Promise((r) => setTimeout(r, 300));
      }
    };
    // the Ingress answers: wait until the last Ingress is served, then record
    await until('the Ingresses served', async () =>
      (await land('127.0.0.1', httpPort, httpsPort, REQUESTS.at(-1)!)).startsWith('200 files') ? true : undefined,
    );
    const before: string[] = [];
    for (const r of REQUESTS) before.push(await land('127.0.0.1', httpPort, httpsPort, r));
    t.ok(
      before.every((b) => !b.startsWith('404') && !b.startsWith('curl')),
      `every request is routed by the Ingresses:\n${before.join('\n')}`,
    );

    // the same cluster with the converted objects instead of the Ingresses
    const converted = await run([process.execPath, MAIN, 'ingress', 'convert', ingressFile]);
    const tmp = join(manifests, '.gateway.yaml.tmp');
    await writeFile(tmp, converted.stdout);
    await rename(tmp, join(manifests, 'gateway.yaml'));
    await rm(join(manifests, 'ingress.yaml'));
    const addr = await until('the Gateway address', () => gatewayAddressOf(manifests, POOL, `${NS}/kdp`));
    let last = '';
    await until('the Gateway served', async () => {
      last = await land(addr, 80, 443, REQUESTS.at(-1)!);
      return last.startsWith('200 files') ? true : undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}; last answer: ${last}`);
    });
    for (const [i, r] of REQUESTS.entries()) {
      const after = await land(addr, 80, 443, r);
      t.equal(after, before[i], `${r.https ? 'https' : 'http'} ${r.host}${r.path} ${JSON.stringify(r.headers ?? {})}`);
    }
    // the Ingresses are gone: the Ingress listener no longer routes them
    t.match(await land('127.0.0.1', httpPort, httpsPort, REQUESTS[7]!), /^404/, 'the Ingress port serves nothing now');
  });
}
