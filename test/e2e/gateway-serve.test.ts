// Gateway API serving on loopback, in-process: every Gateway gets its own address from a pool inside 127/8, so
// real sockets on real addresses (no interface set up), real TLS with SNI per listener, real HTTP/2 (curl).
// Two Gateways on the same port kept apart, a Gateway added and removed while a client loop runs against
// another one (zero failures), GRPCRoute over h2c end to end, RequestMirror, timeouts -> 504, response header
// filter, the metric labels of Gateway routes.
import t from 'tap';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { connect as h2connect, createServer as createH2Server } from 'node:http2';
import type { Http2Server } from 'node:http2';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { needsRoot } from '../helpers/gate.ts';
import { testCa } from '../helpers/test-ca.ts';
import { FakeSource } from '../../src/k8s/testing/fake-source.ts';
import { run } from '../../src/common/exec-adapter.ts';
import { startIngress } from '../../ingress/ingress.ts';
import { selfSigned } from '../../ingress/default-cert.ts';
import { service, slice, tlsSecret } from '../../ingress/testing/fixtures.ts';
import type {
  Gateway,
  GatewayClass,
  GRPCRoute,
  GwFilter,
  GwListener,
  HTTPRoute,
  HttpRouteRule,
  ObjectMeta,
} from '../../src/model/types.ts';

function meta(namespace: string, name: string): ObjectMeta {
  return { namespace, name, uid: `uid-${namespace}-${name}`, resourceVersion: '1', labels: {}, annotations: {} };
}

const gatewayClass: GatewayClass = {
  kind: 'GatewayClass',
  meta: meta('', 'kdp'),
  generation: 1,
  controllerName: 'kdp.dev/gateway-controller',
};

function listener(
  name: string,
  protocol: 'HTTP' | 'HTTPS',
  port: number,
  hostname?: string,
  secret?: string,
): GwListener {
  return {
    name,
    protocol,
    port,
    ...(hostname ? { hostname } : {}),
    ...(secret ? { tls: { mode: 'Terminate', certificateRefs: [{ group: '', kind: 'Secret', name: secret }] } } : {}),
    allowedRoutes: { namespacesFrom: 'Same', kinds: [] },
  };
}

function gateway(name: string, listeners: GwListener[]): Gateway {
  return {
    kind: 'Gateway',
    meta: meta('default', name),
    generation: 1,
    gatewayClassName: 'kdp',
    listeners,
    addresses: [],
  };
}

function rule(path: string, backend: string, port: number, extra: Partial<HttpRouteRule> = {}): HttpRouteRule {
  return {
    matches: [{ path: { type: 'PathPrefix', value: path }, headers: [], queryParams: [] }],
    filters: [],
    backendRefs: [{ group: '', kind: 'Service', name: backend, port, weight: 1, filters: [] }],
    ...extra,
  };
}

function httpRoute(name: string, parent: string, rules: HttpRouteRule[], sections: string[] = []): HTTPRoute {
  return {
    kind: 'HTTPRoute',
    meta: meta('default', name),
    generation: 1,
    created: '2026-12-06T00:00:00Z',
    parentRefs: (sections.length ? sections : [undefined]).map((sectionName) => ({
      group: 'gateway.networking.k8s.io',
      kind: 'Gateway',
      name: parent,
      ...(sectionName ? { sectionName } : {}),
    })),
    hostnames: [],
    rules,
  };
}

async function httpBackend(name: string, seen?: string[]): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    seen?.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      const reply = () => {
        res.writeHead(200, { 'content-type': 'application/json', 'x-backend': name });
        res.end(JSON.stringify({ name, path: req.url, headers: req.headers }));
      };
      if (req.url?.includes('/slow')) setTimeout(reply, 3000);
      else reply();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

/** A gRPC-shaped h2c backend: echoes the request body, says which HTTP version it got, ends with grpc-status. */
async function grpcBackend(): Promise<{ server: Http2Server; port: number }> {
  const server = createH2Server((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, {
        'content-type': 'application/grpc',
        'x-backend': 'grpc',
        'x-http-version': req.httpVersion,
      });
      res.addTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' });
      res.end(Buffer.concat([Buffer.from(`${req.url}|`), ...chunks]));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

if (needsRoot(t, 'nothing but loopback; kept with the other ingress e2e files')) {
  t.test('Gateway API serving on loopback', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'kdp-gw-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const signer = await testCa(dir, 'kdp gateway test CA');
    const { certFile: caCrt } = signer;
    const oneCert = await selfSigned('one.gw.test', ['one.gw.test'], 2, undefined, signer);
    const twoCert = await selfSigned('two.gw.test', ['two.gw.test'], 2, undefined, signer);

    const mirrored: string[] = [];
    const a = await httpBackend('a');
    const b = await httpBackend('b');
    const c = await httpBackend('c');
    const m = await httpBackend('mirror', mirrored);
    const g = await grpcBackend();
    t.teardown(async () => {
      for (const x of [a, b, c, m]) await new Promise((r) => (x.server.closeAllConnections(), x.server.close(r)));
      await new Promise((r) => g.server.close(r));
    });

    // a pool of our own inside 127/8 (other tests may run at the same time on the default one)
    const net = `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}`;
    const pool = `${net}.0/24`;
    const P = 8080;
    const P2 = 8081;
    const Q = 8443;
    const src = new FakeSource();
    src.put(gatewayClass);
    for (const [name, x] of [
      ['a', a],
      ['b', b],
      ['c', c],
      ['mirror', m],
      ['grpc', g],
    ] as const) {
      src.put(service(name, 80));
      src.put(slice(name, ['127.0.0.1'], x.port));
    }
    const gone = await httpBackend('gone');
    await new Promise((r) => gone.server.close(r));
    src.put(service('dead', 80));
    src.put(slice('dead', ['127.0.0.1'], gone.port));
    src.put(tlsSecret('tls-one', oneCert.certPem, oneCert.keyPem));
    src.put(tlsSecret('tls-two', twoCert.certPem, twoCert.keyPem));
    src.put(
      gateway('g1', [
        listener('http', 'HTTP', P),
        // gRPC on listeners of its own: an HTTPRoute and a GRPCRoute may not share a hostname on one listener
        listener('grpc', 'HTTP', P2),
        listener('one', 'HTTPS', Q, 'one.gw.test', 'tls-one'),
        listener('two', 'HTTPS', Q, 'two.gw.test', 'tls-two'),
      ]),
    );
    src.put(gateway('g2', [listener('http', 'HTTP', P)]));
    const mirror: GwFilter = {
      type: 'RequestMirror',
      requestMirror: { backendRef: { group: '', kind: 'Service', name: 'mirror', port: 80 } },
    };
    const setHeader: GwFilter = {
      type: 'ResponseHeaderModifier',
      responseHeaderModifier: { set: [{ name: 'X-Gw', value: 'one' }], add: [], remove: ['x-backend'] },
    };
    src.put(
      httpRoute(
        'r1',
        'g1',
        [
          rule('/', 'a', 80),
          rule('/mirror', 'a', 80, { filters: [mirror] }),
          rule('/timeout', 'a', 80, { timeouts: { request: '500ms' } }),
          rule('/backend-timeout', 'a', 80, { timeouts: { backendRequest: '300ms' } }),
          rule('/hdr', 'a', 80, { filters: [setHeader] }),
        ],
        ['http', 'one'],
      ),
    );
    src.put(httpRoute('r2', 'g2', [rule('/', 'b', 80)]));
    const grpc: GRPCRoute = {
      kind: 'GRPCRoute',
      meta: meta('default', 'echo'),
      generation: 1,
      created: '2026-12-06T00:00:00Z',
      parentRefs: [
        { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'g1', sectionName: 'grpc' },
        { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'g1', sectionName: 'two' },
      ],
      hostnames: [],
      rules: [
        {
          matches: [{ method: { type: 'Exact', service: 'echo.Echo' }, headers: [] }],
          filters: [],
          backendRefs: [{ group: '', kind: 'Service', name: 'grpc', port: 80, weight: 1, filters: [] }],
        },
        {
          // a backend that refuses connections
          matches: [{ method: { type: 'Exact', service: 'dead.Svc' }, headers: [] }],
          filters: [],
          backendRefs: [{ group: '', kind: 'Service', name: 'dead', port: 80, weight: 1, filters: [] }],
        },
      ],
    };
    src.put(grpc);

    const ing = await startIngress(src, {
      httpPort: 0,
      httpsPort: 0,
      metricsPort: -1,
      bind: '127.0.0.1',
      processMetrics: false,
      gateway: { addresses: pool, graceMs: 2000 },
    });
    t.teardown(() => ing.close());
    const gw = ing.gateway!;
    await gw.controller.whenReady();
    const addrOf = (name: string) =>
      gw.controller.result!.status.gateways.find((x) => x.key === `default/${name}`)!.addresses[0]!.value;
    const a1 = addrOf('g1');
    const a2 = addrOf('g2');

    t.test('every Gateway has its own pool address; the same port serves each its own routes', async (t) => {
      t.not(a1, a2);
      t.ok(a1.startsWith(`${net}.`) && a2.startsWith(`${net}.`), `${a1} and ${a2} from ${pool}`);
      t.same(gw.listeners.ids, [`HTTP ${a1}:${P}`, `HTTP ${a1}:${P2}`, `HTTP ${a2}:${P}`, `HTTPS ${a1}:${Q}`].sort());
      for (let i = 0; i < 3; i++) {
        const r1 = await request(`http://${a1}:${P}/x`);
        t.equal(r1.headers['x-backend'], 'a', 'g1 -> a');
        await r1.body.dump();
        const r2 = await request(`http://${a2}:${P}/x`);
        t.equal(r2.headers['x-backend'], 'b', 'g2 -> b');
        await r2.body.dump();
      }
      // the Ingress port knows none of them
      const r = await request(`http://127.0.0.1:${ing.ports.http}/x`);
      t.equal(r.statusCode, 404);
      await r.body.dump();
    });

    t.test('HTTPS: the certificate of the listener whose hostname the SNI names', async (t) => {
      // one.gw.test has the HTTPRoute (200), two.gw.test only the GRPCRoute (404 for this path)
      for (const [host, code] of [
        ['one.gw.test', 200],
        ['two.gw.test', 404],
      ] as const) {
        const out = await run([
          'curl',
          '-sS',
          '--max-time',
          '5',
          '--cacert',
          caCrt,
          '--resolve',
          `${host}:${Q}:${a1}`,
          '-o',
          '/dev/null',
          '-w',
          '%{http_code} %{http_version} %{ssl_verify_result}',
          `https://${host}:${Q}/tls`,
        ]);
        t.equal(out.stdout.trim(), `${code} 2 0`, `${host}: verified with its own certificate, HTTP/2 by ALPN`);
      }
      // two.gw.test's name with one.gw.test's certificate would not verify: prove the check can fail
      const bad = await run(
        [
          'curl',
          '-sS',
          '--max-time',
          '5',
          '--cacert',
          caCrt,
          '--resolve',
          `three.gw.test:${Q}:${a1}`,
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          `https://three.gw.test:${Q}/`,
        ],
        { allowFailure: true },
      );
      t.equal(bad.code, 60, 'a name no listener has gets no certificate that verifies (curl 60)');
    });

    t.test('GRPCRoute over HTTP/2 (h2c prior knowledge) to an h2c backend', async (t) => {
      const out = await run([
        'curl',
        '-sS',
        '--max-time',
        '5',
        '--http2-prior-knowledge',
        '-X',
        'POST',
        '-H',
        'content-type: application/grpc',
        '-H',
        'te: trailers',
        '--data-binary',
        'hello',
        '-D',
        '-',
        `http://${a1}:${P2}/echo.Echo/Say`,
      ]);
      t.match(out.stdout, /^HTTP\/2 200/m);
      t.match(out.stdout, /x-backend: grpc/);
      t.match(out.stdout, /x-http-version: 2\.0/, 'the backend got HTTP/2');
      t.match(out.stdout, /\/echo\.Echo\/Say\|hello/);
      // the trailers (grpc-status) reach the client
      const sess = h2connect(`http://${a1}:${P2}`);
      t.teardown(() => sess.close());
      const trailers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const s = sess.request({
          ':method': 'POST',
          ':path': '/echo.Echo/Say',
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        s.on('trailers', (tr) => resolve(tr as Record<string, unknown>));
        s.on('error', reject);
        s.resume();
        s.end('x');
      });
      t.equal(trailers['grpc-status'], '0');
      // over TLS: HTTP/2 by ALPN on the HTTPS listener, then h2c to the backend
      const tls = await run([
        'curl',
        '-sS',
        '--max-time',
        '5',
        '--http2',
        '--cacert',
        caCrt,
        '--resolve',
        `two.gw.test:${Q}:${a1}`,
        '-X',
        'POST',
        '-H',
        'content-type: application/grpc',
        '-H',
        'te: trailers',
        '--data-binary',
        'over-tls',
        '-D',
        '-',
        `https://two.gw.test:${Q}/echo.Echo/Say`,
      ]);
      t.match(tls.stdout, /^HTTP\/2 200/m);
      t.match(tls.stdout, /x-http-version: 2\.0/);
      t.match(tls.stdout, /\/echo\.Echo\/Say\|over-tls/);
      // a gRPC backend that refuses the connection: 502, and the listener goes on
      const dead = await run([
        'curl',
        '-sS',
        '--max-time',
        '5',
        '--http2-prior-knowledge',
        '-X',
        'POST',
        '-H',
        'content-type: application/grpc',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        `http://${a1}:${P2}/dead.Svc/Call`,
      ]);
      t.equal(dead.stdout, '502');
      // an HTTPRoute path on the same h2c connection kind still goes to its HTTP/1.1 backend
      const plain = await run([
        'curl',
        '-sS',
        '--max-time',
        '5',
        '--http2-prior-knowledge',
        '-D',
        '-',
        '-o',
        '/dev/null',
        `http://${a1}:${P}/plain`,
      ]);
      t.match(plain.stdout, /x-backend: a/);
    });

    t.test('bad h2c input: the connection is closed, the listener keeps serving', async (t) => {
      const closed = await new Promise<string>((resolve) => {
        const sock = connect(P, a1, () =>
          sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\xff\xffgarbage-not-a-frame'),
        );
        let got = 0;
        sock.on('data', (d: Buffer) => (got += d.length));
        sock.on('error', () => {});
        sock.on('close', () => resolve(`closed after ${got} bytes`));
        setTimeout(() => resolve('still open'), 5000).unref();
      });
      t.match(closed, /^closed/, closed);
      const r = await request(`http://${a1}:${P}/after`);
      t.equal(r.headers['x-backend'], 'a');
      await r.body.dump();
    });

    t.test('RequestMirror: the mirror backend gets a copy, the client the real answer', async (t) => {
      const r = await request(`http://${a1}:${P}/mirror/one?q=1`);
      t.equal(r.headers['x-backend'], 'a');
      await r.body.dump();
      await until('the mirror request', () => mirrored.includes('GET /mirror/one?q=1'));
      t.pass('mirrored');
    });

    t.test('timeouts: request and backendRequest answer 504 when the backend is slow', async (t) => {
      for (const [p, max] of [
        ['/timeout/slow', 500],
        ['/backend-timeout/slow', 300],
      ] as const) {
        const t0 = Date.now();
        const r = await request(`http://${a1}:${P}${p}`);
        const took = Date.now() - t0;
        t.equal(r.statusCode, 504, p);
        await r.body.dump();
        t.ok(took >= max - 20 && took < 2500, `${p}: ${took} ms`);
      }
      const ok = await request(`http://${a1}:${P}/timeout/fast`);
      t.equal(ok.statusCode, 200, 'a fast answer is not cut');
      await ok.body.dump();
    });

    t.test('ResponseHeaderModifier', async (t) => {
      const r = await request(`http://${a1}:${P}/hdr`);
      t.equal(r.headers['x-gw'], 'one');
      t.equal(r.headers['x-backend'], undefined, 'removed');
      await r.body.dump();
    });

    t.test('a Gateway added and removed while another one serves a client loop: zero failures', async (t) => {
      const agent = new Agent({ keepAliveTimeout: 30_000, connections: 4 });
      t.teardown(() => agent.close());
      let ok = 0;
      const failures: string[] = [];
      let stop = false;
      const loop = (async () => {
        while (!stop) {
          try {
            const r = await request(`http://${a2}:${P}/loop`, { dispatcher: agent });
            if (r.headers['x-backend'] === 'b' && r.statusCode === 200) ok++;
            else failures.push(`status ${r.statusCode} from ${String(r.headers['x-backend'])}`);
            await r.body.dump();
          } catch (err) {
            failures.push((err as Error).message);
          }
        }
      })();
      t.teardown(() => void (stop = true));
      // three rounds: g3 comes (a socket opens on its address, same port), answers, goes (its socket closes)
      let a3 = '';
      for (let round = 0; round < 3; round++) {
        const okBefore = ok;
        src.put(gateway('g3', [listener('http', 'HTTP', P)]));
        src.put(httpRoute('r3', 'g3', [rule('/', 'c', 80)]));
        await until(
          'g3 in the status',
          () => gw.controller.result?.status.gateways.some((x) => x.key === 'default/g3') ?? false,
        );
        a3 = addrOf('g3');
        t.ok(a3 !== a1 && a3 !== a2, `round ${round}: g3 on ${a3}`);
        await until('g3 answering', async () => {
          const r = await request(`http://${a3}:${P}/`);
          await r.body.dump();
          return r.headers['x-backend'] === 'c';
        });
        src.remove('Gateway', 'default/g3');
        src.remove('HTTPRoute', 'default/r3');
        await until('g3 gone', async () => {
          try {
            const r = await request(`http://${a3}:${P}/`);
            await r.body.dump();
            return false;
          } catch (err) {
            return /ECONNREFUSED/.test(String((err as { code?: string }).code ?? (err as Error).message));
          }
        });
        await until('g2 answering meanwhile', () => ok > okBefore);
      }
      const before = ok;
      await new Promise((r) => setTimeout(r, 200));
      stop = true;
      await loop;
      t.same(failures, [], 'no request on g2 failed');
      t.ok(ok > before, `${ok} requests answered on g2 while g3 came and went three times (and after)`);
      t.notOk(
        gw.listeners.ids.some((id) => id.includes(a3)),
        'the listener of g3 is closed',
      );
    });

    t.test('metrics: the Ingress families, labelled with the Gateway and the route kind', async (t) => {
      const text = await ing.metrics.registry.metrics();
      t.match(
        text,
        /nginx_ingress_controller_requests\{[^}]*ingress="r1",namespace="default"[^}]*gateway="default\/g1",route_kind="HTTPRoute"\}/,
      );
      t.match(
        text,
        /nginx_ingress_controller_requests\{[^}]*ingress="echo"[^}]*gateway="default\/g1",route_kind="GRPCRoute"\}/,
      );
      // a request no route took (404) has no route to name; every other Gateway series names its route
      t.notMatch(
        text,
        /status="(?!404")\d+",[^}]*ingress="",namespace=""[^}]*gateway=/,
        'no unnamed Gateway route series',
      );
      t.match(
        text,
        /status="404",[^}]*ingress="",namespace=""[^}]*gateway="default\/g1"\}/,
        'a 404 on a Gateway listener',
      );
    });
  });
}
