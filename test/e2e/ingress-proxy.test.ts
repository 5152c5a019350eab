// The ingress data path on loopback, in-process: real sockets, real TLS/HTTP2 (curl), real backends on
// 127.0.0.1; cluster state from the FakeSource. Covers routing, headers, retries, 502/503/504, body limit,
// affinity, canary, annotations, TLS by SNI, 308 redirects, WebSocket, metrics and the access log.
import t from 'tap';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { needsRoot } from '../helpers/gate.ts';
import { loopbackIngress } from '../helpers/loopback-ingress.ts';
import { testCa } from '../helpers/test-ca.ts';
import { FakeSource } from '../../src/k8s/testing/fake-source.ts';
import { run } from '../../src/common/exec-adapter.ts';
import { selfSigned } from '../../ingress/default-cert.ts';
import { attachWsEcho } from '../../ingress/testing/ws-echo.ts';
import {
  ingress,
  ingressClass,
  path,
  rule,
  service,
  slice,
  tlsSecret,
  withAnnotations,
} from '../../ingress/testing/fixtures.ts';
import type { Ingress } from '../../src/model/types.ts';

const A = 'nginx.ingress.kubernetes.io/';

async function backend(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      const url = req.url ?? '/';
      if (url.includes('/slow')) {
        setTimeout(() => res.end('slow'), 3000);
        return;
      }
      if (url.includes('/stream')) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let i = 0;
        const tick = setInterval(() => {
          res.write(`chunk${i}\n`);
          if (++i === 5) {
            clearInterval(tick);
            res.end();
          }
        }, 20);
        return;
      }
      const m = /^\/status\/(\d{3})/.exec(url);
      res.writeHead(m ? Number(m[1]) : 200, { 'content-type': 'application/json', 'x-backend': name });
      res.end(JSON.stringify({ name, method: req.method, path: url, headers: req.headers, bodyBytes: n }));
    });
  });
  attachWsEcho(server, name);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

if (needsRoot(t, 'nothing but loopback; kept with the other ingress e2e files')) {
  t.test('ingress data path on loopback', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'kdp-ingress-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    // TLS material: a CA, a cert for secure.test, a wildcard cert for *.wild.test
    const signer = await testCa(dir, 'kdp test CA');
    const { certFile: caCrt } = signer;
    const secureCert = await selfSigned('secure.test', ['secure.test'], 2, undefined, signer);
    const wildCert = await selfSigned('*.wild.test', ['*.wild.test'], 2, undefined, signer);

    const b = Object.fromEntries(
      await Promise.all(['a', 'b', 'c', 'canary', 'fallback'].map(async (n) => [n, await backend(n)] as const)),
    );
    t.teardown(() =>
      Promise.all(Object.values(b).map((x) => new Promise((r) => (x.server.closeAllConnections(), x.server.close(r))))),
    );
    // a port with nothing listening (connect refused) for retry and 502 tests
    const dead = await backend('dead');
    await new Promise((r) => dead.server.close(r));

    const src = new FakeSource();
    src.put(ingressClass());
    for (const [n, x] of Object.entries(b)) {
      src.put(service(n));
      src.put(slice(n, ['127.0.0.1'], x.port));
    }
    src.put(service('flaky'));
    src.put(service('empty'));
    src.put(slice('empty', [], 80));
    src.put(tlsSecret('secure-tls', secureCert.certPem, secureCert.keyPem));
    src.put(tlsSecret('wild-tls', wildCert.certPem, wildCert.keyPem));
    const ings: Ingress[] = [
      ingress(
        'main',
        [rule('h.test', path('/a', 'Prefix', 'a'), path('/b', 'Prefix', 'b'), path('/exact', 'Exact', 'c'))],
        (i) => (i.defaultBackend = { service: { name: 'fallback', port: { number: 80 } } }),
      ),
      ingress(
        'secure',
        [rule('secure.test', path('/', 'Prefix', 'a'))],
        (i) => (i.tls = [{ hosts: ['secure.test'], secretName: 'secure-tls' }]),
      ),
      ingress(
        'wild',
        [rule('*.wild.test', path('/', 'Prefix', 'b'))],
        (i) => (i.tls = [{ hosts: ['*.wild.test'], secretName: 'wild-tls' }]),
      ),
      withAnnotations(
        ingress('rewrite', [rule('rw.test', path('/something(/|$)(.*)', 'ImplementationSpecific', 'a'))]),
        { [`${A}rewrite-target`]: '/$2' },
      ),
      withAnnotations(ingress('limits', [rule('limits.test', path('/', 'Prefix', 'a'))]), {
        [`${A}proxy-body-size`]: '1k',
        [`${A}proxy-read-timeout`]: '1',
        [`${A}proxy-send-timeout`]: '1',
      }),
      ingress('lb', [rule('lb.test', path('/', 'Prefix', 'flaky'))]),
      ingress('empty', [rule('empty.test', path('/', 'Prefix', 'empty'))]),
      withAnnotations(ingress('fb', [rule('fb.test', path('/', 'Prefix', 'empty'))]), {
        [`${A}default-backend`]: 'fallback',
      }),
      withAnnotations(ingress('misc', [rule('misc.test', path('/', 'Prefix', 'a'))]), {
        [`${A}enable-cors`]: 'true',
        [`${A}cors-allow-origin`]: 'https://app.example',
        [`${A}custom-response-headers`]: 'X-Frame-Options: DENY',
        [`${A}app-root`]: '/app',
      }),
      withAnnotations(ingress('deny', [rule('deny.test', path('/', 'Prefix', 'a'))]), {
        [`${A}whitelist-source-range`]: '10.0.0.0/8',
      }),
      withAnnotations(ingress('moved', [rule('moved.test', path('/', 'Prefix', 'a'))]), {
        [`${A}permanent-redirect`]: 'https://example.com/new',
      }),
      withAnnotations(ingress('bad', [rule('bad.test', path('/', 'Prefix', 'a'))]), {
        [`${A}server-snippet`]: 'location / { return 200; }',
      }),
      ingress('stable', [rule('canary.test', path('/', 'Prefix', 'a'))]),
      withAnnotations(ingress('canary', [rule('canary.test', path('/', 'Prefix', 'canary'))]), {
        [`${A}canary`]: 'true',
        [`${A}canary-by-header`]: 'X-Canary',
        [`${A}canary-by-cookie`]: 'use_canary',
      }),
    ];
    for (const i of ings) src.put(i);
    // the sticky upstream: two live endpoints on different loopback addresses
    const s2 = await backend('a2');
    t.teardown(() => new Promise((r) => (s2.server.closeAllConnections(), s2.server.close(r))));

    const { ing, logs } = await loopbackIngress(t, src);
    const base = `http://127.0.0.1:${ing.ports.http}`;
    const get = async (
      host: string,
      p: string,
      opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
    ) => {
      const r = await request(`${base}${p}`, {
        method: (opts.method ?? 'GET') as 'GET',
        headers: { host, ...opts.headers },
        ...(opts.body !== undefined ? { body: opts.body } : {}),
      });
      const text = await r.body.text();
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        /* not JSON */
      }
      return { status: r.statusCode, headers: r.headers, text, json };
    };

    t.test('host and path routing, default backend, 404', async (t) => {
      t.equal((await get('h.test', '/a/x')).json.name, 'a');
      t.equal((await get('h.test', '/b')).json.name, 'b');
      t.equal((await get('h.test', '/exact')).json.name, 'c');
      t.equal(
        (await get('h.test', '/exact/no')).json.name,
        'fallback',
        'Exact does not match a subpath: default backend',
      );
      t.equal((await get('nohost.test', '/')).json.name, 'fallback', 'unknown host: the Ingress default backend');
      t.equal((await get('x.wild.test', '/')).status, 308, 'wildcard TLS host redirects');
      t.equal((await get('bad.test', '/')).json.name, 'fallback', 'the snippet Ingress is rejected, the rest serves');
      t.match(ing.controller.result?.rejected, [{ ingress: 'default/bad', reason: /snippet/ }]);
    });

    t.test('headers to the upstream', async (t) => {
      const r = await get('h.test', '/a?q=1', {
        headers: { 'x-forwarded-for': '1.2.3.4', proxy: 'evil', 'x-request-id': 'abc123' },
      });
      const h = r.json.headers as Record<string, string>;
      t.equal(r.json.path, '/a?q=1');
      t.equal(h.host, 'h.test');
      t.equal(h['x-real-ip'], '127.0.0.1');
      t.equal(h['x-forwarded-for'], '127.0.0.1');
      t.equal(h['x-original-forwarded-for'], '1.2.3.4');
      t.equal(h['x-forwarded-host'], 'h.test');
      t.equal(h['x-forwarded-proto'], 'http');
      t.equal(h['x-forwarded-port'], String(ing.ports.http));
      t.equal(h['x-request-id'], 'abc123', 'a client request id is kept');
      t.notOk(h.proxy, 'httpoxy: Proxy header dropped');
      const r2 = await get('h.test', '/a');
      t.match((r2.json.headers as Record<string, string>)['x-request-id'], /^[0-9a-f]{32}$/, 'generated when absent');
    });

    t.test('rewrite-target with capture groups', async (t) => {
      t.equal((await get('rw.test', '/something/new?x=1')).json.path, '/new?x=1');
      t.equal((await get('rw.test', '/something')).json.path, '/');
    });

    t.test('body limit (413) and read timeout (504)', async (t) => {
      t.equal((await get('limits.test', '/', { method: 'POST', body: 'x'.repeat(2000) })).status, 413);
      t.equal((await get('limits.test', '/', { method: 'POST', body: 'x'.repeat(500) })).json.bodyBytes, 500);
      t.equal((await get('limits.test', '/slow')).status, 504);
      // a client that stops sending its body for longer than proxy-send-timeout
      const sock = connect(ing.ports.http, '127.0.0.1');
      let answer = '';
      sock.on('data', (d: Buffer) => (answer += d.toString()));
      sock.write('POST / HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 10\r\n\r\nhalf.');
      await new Promise((r) => sock.once('close', r));
      t.match(answer, /^HTTP\/1.1 408 /, 'stalled request body: 408');
    });

    const named = (x: ReturnType<typeof slice>, name: string) => ({ ...x, meta: { ...x.meta, name } });
    const settle = () => new Promise((r) => setTimeout(r, 150));

    t.test('503 without endpoints, per-Ingress default backend, 502 when nothing answers', async (t) => {
      t.equal((await get('empty.test', '/')).status, 503);
      t.equal((await get('fb.test', '/')).json.name, 'fallback');
      src.put(named(slice('flaky', ['127.0.0.1'], dead.port), 'flaky-dead'));
      await settle();
      t.equal((await get('lb.test', '/')).status, 502);
    });

    t.test('retries idempotent requests on connect errors; round robin', async (t) => {
      // two endpoints of one Service: one refuses connections, one answers
      src.put(named(slice('flaky', ['127.0.0.1'], b.b!.port), 'flaky-live'));
      await settle();
      const st: number[] = [];
      const who = new Set<unknown>();
      for (let i = 0; i < 8; i++) {
        const r = await get('lb.test', '/');
        st.push(r.status);
        who.add(r.json.name);
      }
      t.same([...new Set(st)], [200], 'every GET succeeds: a refused endpoint is retried on the next one');
      t.same([...who], ['b']);
      const post: number[] = [];
      for (let i = 0; i < 4; i++) post.push((await get('lb.test', '/', { method: 'POST', body: 'x' })).status);
      t.ok(post.includes(502) && post.includes(200), 'a POST with a body is not retried');
    });

    t.test('cookie affinity sticks to one endpoint', async (t) => {
      src.put(service('sticky'));
      src.put(named(slice('sticky', ['127.0.0.1'], b.a!.port), 'sticky-1'));
      src.put(named(slice('sticky', ['127.0.0.1'], s2.port), 'sticky-2'));
      src.put(
        withAnnotations(ingress('sticky', [rule('sticky.test', path('/', 'Prefix', 'sticky'))]), {
          [`${A}affinity`]: 'cookie',
        }),
      );
      await settle();
      const first = await get('sticky.test', '/');
      const cookie = String(first.headers['set-cookie']).split(';')[0]!;
      t.match(cookie, /^INGRESSCOOKIE=[0-9a-f]{16}$/);
      const names = new Set<unknown>();
      for (let i = 0; i < 6; i++) names.add((await get('sticky.test', '/', { headers: { cookie } })).json.name);
      t.same([...names], [first.json.name]);
      const free = new Set<unknown>();
      for (let i = 0; i < 6; i++) free.add((await get('sticky.test', '/')).json.name);
      t.same([...free].sort(), ['a', 'a2'], 'without the cookie: round robin over both endpoints');
    });

    t.test('canary by header and cookie', async (t) => {
      t.equal((await get('canary.test', '/')).json.name, 'a');
      t.equal((await get('canary.test', '/', { headers: { 'x-canary': 'always' } })).json.name, 'canary');
      t.equal(
        (await get('canary.test', '/', { headers: { 'x-canary': 'never', cookie: 'use_canary=always' } })).json.name,
        'a',
        'header beats cookie',
      );
      t.equal((await get('canary.test', '/', { headers: { cookie: 'use_canary=always' } })).json.name, 'canary');
      src.put(
        withAnnotations(ingress('canary', [rule('canary.test', path('/', 'Prefix', 'canary'))]), {
          [`${A}canary`]: 'true',
          [`${A}canary-weight`]: '50',
        }),
      );
      await settle();
      const seen = { a: 0, canary: 0 } as Record<string, number>;
      for (let i = 0; i < 60; i++) seen[String((await get('canary.test', '/')).json.name)]! += 1;
      t.ok(seen.a! > 10 && seen.canary! > 10, `weight 50: both get traffic (${JSON.stringify(seen)})`);
      src.put(
        withAnnotations(ingress('canary', [rule('canary.test', path('/', 'Prefix', 'canary'))]), {
          [`${A}canary`]: 'true',
          [`${A}canary-weight`]: '0',
        }),
      );
      await settle();
      for (let i = 0; i < 10; i++) seen[String((await get('canary.test', '/')).json.name)]! += 1;
      t.equal(seen.a! + seen.canary!, 70);
    });

    t.test('cors, app-root, custom headers, allow-list, permanent redirect', async (t) => {
      const pre = await get('misc.test', '/x', { method: 'OPTIONS', headers: { origin: 'https://app.example' } });
      t.equal(pre.status, 204);
      t.equal(pre.headers['access-control-allow-origin'], 'https://app.example');
      t.match(String(pre.headers['access-control-allow-methods']), /GET/);
      const r = await get('misc.test', '/x', { headers: { origin: 'https://app.example' } });
      t.equal(r.headers['x-frame-options'], 'DENY');
      t.equal(r.headers['access-control-allow-origin'], 'https://app.example');
      const root = await get('misc.test', '/');
      t.equal(root.status, 302);
      t.equal(root.headers.location, '/app');
      t.equal((await get('deny.test', '/')).status, 403);
      const moved = await get('moved.test', '/x');
      t.equal(moved.status, 301);
      t.equal(moved.headers.location, 'https://example.com/new');
    });

    t.test('streaming responses pass chunk by chunk', async (t) => {
      const r = await request(`${base}/a/stream`, { headers: { host: 'h.test' } });
      t.equal(r.headers['transfer-encoding'], 'chunked');
      t.equal(await r.body.text(), 'chunk0\nchunk1\nchunk2\nchunk3\nchunk4\n');
    });

    t.test('TLS: certificate by SNI (wildcard too), default certificate, HTTP/2, 308 from HTTP', async (t) => {
      const curl = (host: string, extra: string[] = []) =>
        run(
          [
            'curl',
            '-sS',
            '--max-time',
            '5',
            '--cacert',
            caCrt,
            '--resolve',
            `${host}:${ing.ports.https}:127.0.0.1`,
            '-w',
            '\\n%{http_version} %{http_code}',
            ...extra,
            `https://${host}:${ing.ports.https}/`,
          ],
          { allowFailure: true },
        );
      // who terminated TLS: the addon (HTTP/1.1, and HTTP/2 in its own session) or node:tls
      const terminated = async () => {
        const text = await (await request(`http://127.0.0.1:${ing.ports.metrics}/metrics`)).body.text();
        const n = (by: string) =>
          Number(
            new RegExp(`kdp_ingress_tls_connections_total\\{terminated_by="${by}"\\} (\\d+)`).exec(text)?.[1] ?? 0,
          );
        return { addon: n('addon'), node: n('node') };
      };
      const before = await terminated();
      const h2 = await curl('secure.test', ['--http2']);
      t.equal(h2.code, 0, h2.stderr);
      t.match(h2.stdout, /"name":"a"/);
      t.match(h2.stdout, /\n2 200$/, 'HTTP/2 over TLS');
      t.match(h2.stdout, /"x-forwarded-proto":"https"/);
      const h1 = await curl('secure.test', ['--http1.1']);
      t.match(h1.stdout, /\n1.1 200$/, 'HTTP/1.1 over TLS');
      const after = await terminated();
      t.equal(after.addon - before.addon, 2, 'HTTP/1.1 and HTTP/2 (ALPN h2) over TLS: terminated by the addon');
      t.equal(after.node - before.node, 0, 'none by node:tls');
      // the certificate by SNI, the same from both terminations
      for (const v of ['--http2', '--http1.1']) {
        const wild = await curl('any.wild.test', [v]);
        t.equal(wild.code, 0, wild.stderr);
        t.match(wild.stdout, /"name":"b"/, `${v}: wildcard certificate verifies`);
        const dflt = await curl('h.test', [v]);
        t.not(dflt.code, 0, `${v}: a host without TLS section gets the default (untrusted) certificate`);
        const insecure = await curl('h.test', ['-k', v]);
        t.match(insecure.stdout, /"name":"a"|"name":"fallback"/);
      }
      const big = await run(
        [
          'curl',
          '-sS',
          '-k',
          '--http2',
          '--max-time',
          '5',
          '-o',
          '/dev/null',
          '-w',
          '%{http_version} %{http_code}',
          '--resolve',
          `limits.test:${ing.ports.https}:127.0.0.1`,
          '--data-binary',
          'x'.repeat(2000),
          `https://limits.test:${ing.ports.https}/`,
        ],
        { allowFailure: true },
      );
      t.equal(big.stdout, '2 413', 'body limit over HTTP/2');
      await writeFile(join(dir, 'upload.bin'), 'y'.repeat(300_000));
      const upload = await run(
        [
          'curl',
          '-sS',
          '-k',
          '--http2',
          '--max-time',
          '5',
          '-H',
          'content-type: application/octet-stream',
          '--resolve',
          `h.test:${ing.ports.https}:127.0.0.1`,
          '--data-binary',
          `@${join(dir, 'upload.bin')}`,
          `https://h.test:${ing.ports.https}/a/up`,
        ],
        { allowFailure: true },
      );
      t.match(upload.stdout, /"bodyBytes":300000/, 'request body streamed to the upstream over HTTP/2');
      const wss = await curl('secure.test', [
        '--http1.1',
        '-i',
        '-N',
        '--max-time',
        '1',
        '-H',
        'Connection: Upgrade',
        '-H',
        'Upgrade: websocket',
        '-H',
        'Sec-WebSocket-Version: 13',
        '-H',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      ]);
      t.match(wss.stdout, /^HTTP\/1.1 101 Switching Protocols/, 'WebSocket upgrade over TLS');
      t.match(wss.stdout, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
      const redirect = await get('secure.test', '/p?q=1');
      t.equal(redirect.status, 308);
      t.equal(redirect.headers.location, 'https://secure.test/p?q=1');
      // the certificate follows a Secret edit, no restart
      src.put(tlsSecret('secure-tls', wildCert.certPem, wildCert.keyPem));
      await new Promise((r) => setTimeout(r, 150));
      const swapped = await curl('secure.test');
      t.not(swapped.code, 0, 'the new (wrong-name) certificate is served at once');
      const swapped1 = await curl('secure.test', ['--http1.1']);
      t.not(swapped1.code, 0, 'by the addon too');
      src.put(tlsSecret('secure-tls', secureCert.certPem, secureCert.keyPem));
      await new Promise((r) => setTimeout(r, 150));
      t.equal((await curl('secure.test')).code, 0);
      t.equal((await curl('secure.test', ['--http1.1'])).code, 0);
      const end = await terminated();
      // HTTP/1.1: 3 certificate checks, the WebSocket upgrade (node:http over the addon's TLS), 2 after the Secret
      // edits; HTTP/2: 3 certificate checks, the body limit, the upload (relayed to the general path), 2 after the
      // Secret edits
      t.equal(end.addon - after.addon, 13, "every connection was the addon's, HTTP/2 ones too");
      t.equal(end.node - after.node, 0, 'none went to node:tls');
    });

    t.test('WebSocket through the ingress survives an Ingress edit', async (t) => {
      src.put(ingress('ws', [rule(undefined, path('/ws', 'Prefix', 'a'))]));
      await new Promise((r) => setTimeout(r, 150));
      const ws = new WebSocket(`ws://127.0.0.1:${ing.ports.http}/ws`);
      const replies: string[] = [];
      let closed = false;
      ws.addEventListener('message', (e) => replies.push(String(e.data)));
      ws.addEventListener('close', () => (closed = true));
      await new Promise<void>(
        (r, j) => (
          ws.addEventListener('open', () => r()),
          ws.addEventListener('error', () => j(new Error('ws error')))
        ),
      );
      ws.send('one');
      await new Promise((r) => setTimeout(r, 100));
      src.put(ingress('ws', [rule(undefined, path('/ws', 'Prefix', 'b'))]));
      await new Promise((r) => setTimeout(r, 200));
      ws.send('two');
      await new Promise((r) => setTimeout(r, 100));
      t.same(replies, ['a one', 'a two'], 'the open socket stays on its backend');
      t.equal(closed, false);
      ws.close();
      const ws2 = new WebSocket(`ws://127.0.0.1:${ing.ports.http}/ws`);
      const r2 = await new Promise<string>(
        (r) => (
          ws2.addEventListener('open', () => ws2.send('three')),
          ws2.addEventListener('message', (e) => r(String(e.data)))
        ),
      );
      t.equal(r2, 'b three', 'new sockets follow the edit');
      ws2.close();
    });

    t.test('metrics, healthz and access log', async (t) => {
      const m = `http://127.0.0.1:${ing.ports.metrics}`;
      const hz = await request(`${m}/healthz`);
      t.equal(hz.statusCode, 200);
      await hz.body.text();
      const text = await (await request(`${m}/metrics`)).body.text();
      t.match(
        text,
        /nginx_ingress_controller_requests\{host="h.test",status="200",method="GET",path="\/a",ingress="main",namespace="default",service="a",canary=""\} \d+/,
      );
      t.match(text, /nginx_ingress_controller_request_duration_seconds_bucket\{/);
      t.match(text, /nginx_ingress_controller_config_last_reload_successful 1/);
      await new Promise((r) => setImmediate(r));
      const line = logs
        .join('')
        .split('\n')
        .find((l) => l.includes('"GET /a?q=1 HTTP/1.1"'));
      t.comment(String(line));
      t.match(
        line,
        /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/a\?q=1 HTTP\/1\.1" 200 \d+ "-" "[^"]*" \d+ \d+\.\d{3} \[default-a-80\] \[\] 127\.0\.0\.1:\d+ \d+ \d+\.\d{3} 200 abc123$/,
      );
    });

    t.test('graceful close: requests in flight finish, new connections are refused', async (t) => {
      const slow = get('h.test', '/a/slow');
      await new Promise((r) => setTimeout(r, 300));
      const closing = ing.close(10_000);
      await new Promise((r) => setTimeout(r, 100));
      const refused = await request(`${base}/a`, { headers: { host: 'h.test' } }).then(
        (r) => `answered ${r.statusCode}`,
        (err: NodeJS.ErrnoException) => err.code ?? 'error',
      );
      t.equal(refused, 'ECONNREFUSED', 'no new connections while draining');
      const r = await slow;
      t.equal(r.status, 200);
      t.equal(r.text, 'slow', 'the request in flight completed');
      await closing;
    });
  });
}
