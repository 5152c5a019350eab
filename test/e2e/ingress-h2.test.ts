// The HTTP/2 lane of the ingress front (FastFront.stream in ingress/fast-front.ts): real curl --http2 (TLS, ALPN
// h2) and --http2-prior-knowledge (h2c), node:http2 and h2load clients against a raw HTTP/1.1 backend on
// loopback. Each answer the lane gives is compared with the general path's (node:http2 compat + undici) for the
// same backend answer: an Ingress with an allow-list (127.0.0.0/8) routes to the same Service through the
// general path, since the front leaves routes with an allow-list to it.
import t from 'tap';
import { createHash } from 'node:crypto';
import { connect as h2Connect, constants as h2constants } from 'node:http2';
import type { ClientHttp2Session } from 'node:http2';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { needsRoot } from '../helpers/gate.ts';
import { loopbackIngress } from '../helpers/loopback-ingress.ts';
import { until } from '../helpers/wait.ts';
import { BIG, BIG_SHA256, rawBackend } from '../helpers/raw-backend.ts';
import { run } from '../../src/common/exec-adapter.ts';
import { FakeSource } from '../../src/k8s/testing/fake-source.ts';
import { ingress, ingressClass, path, rule, service, slice, withAnnotations } from '../../ingress/testing/fixtures.ts';

const ALLOW = { 'nginx.ingress.kubernetes.io/whitelist-source-range': '127.0.0.0/8' };

interface Answer {
  status: number;
  /** response header lines as curl printed them (lower-case names), without the status line and Date */
  headers: string[];
  body: Buffer;
  code: number;
  stderr: string;
}

/**
 * What the backend received for one request: header lines, lower-cased names, sorted, without the ones that vary
 * (the request id; undici's `connection: keep-alive`, HTTP/1.1's default the lane leaves out).
 */
function upstreamHeaders(head: string, host: string): string[] {
  return head
    .split('\r\n')
    .slice(1)
    .map((l) => {
      const c = l.indexOf(':');
      return `${l.slice(0, c).toLowerCase()}: ${l.slice(c + 1).trim()}`;
    })
    .filter((l) => !l.startsWith('x-request-id:') && !l.startsWith('connection:'))
    .map((l) => l.replaceAll(host, 'HOST'))
    .sort();
}

if (needsRoot(t, 'nothing but loopback; kept with the other ingress e2e files')) {
  t.test('HTTP/2 lane: the fast front serves GET/HEAD streams over its raw upstream pool', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'kdp-h2lane-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const be = await rawBackend();
    t.teardown(() => new Promise((r) => be.server.close(r)));
    // a port with nothing listening: connect refused
    const dead = await rawBackend();
    await new Promise((r) => dead.server.close(r));
    const src = new FakeSource();
    src.put(ingressClass());
    src.put(service('raw'));
    src.put(slice('raw', ['127.0.0.1'], be.port));
    src.put(service('dead'));
    src.put(slice('dead', ['127.0.0.1'], dead.port));
    src.put(service('empty'));
    src.put(slice('empty', [], 80));
    src.put(ingress('raw', [rule('raw.test', path('/', 'Prefix', 'raw'))]));
    src.put(withAnnotations(ingress('gen', [rule('gen.test', path('/', 'Prefix', 'raw'))]), ALLOW));
    src.put(ingress('dead', [rule('dead.test', path('/', 'Prefix', 'dead'))]));
    src.put(withAnnotations(ingress('dead-gen', [rule('deadgen.test', path('/', 'Prefix', 'dead'))]), ALLOW));
    src.put(ingress('empty', [rule('empty.test', path('/', 'Prefix', 'empty'))]));
    const { ing, logs } = await loopbackIngress(t, src);
    const port = ing.ports.https;

    let n = 0;
    /** One request with curl over HTTP/2 (TLS, ALPN h2; `h2c`: prior knowledge on the plain port). */
    const curl = async (host: string, p: string, extra: string[] = [], h2c = false): Promise<Answer> => {
      const file = join(dir, `body${n++}`);
      // HEAD (-I): the headers on stdout, no body to save
      const out = extra.includes('-I') ? [] : ['-D', '-', '-o', file];
      const base = h2c ? `http://${host}:${ing.ports.http}` : `https://${host}:${port}`;
      const r = await run(
        [
          'curl',
          '-sS',
          '-k',
          h2c ? '--http2-prior-knowledge' : '--http2',
          '--max-time',
          '20',
          '--resolve',
          `${host}:${h2c ? ing.ports.http : port}:127.0.0.1`,
          ...out,
          ...extra,
          `${base}${p}`,
        ],
        { allowFailure: true },
      );
      const lines = r.stdout.split('\r\n').filter((l) => l !== '');
      const status = Number(/^HTTP\/2 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
      const headers = lines.slice(1).filter((l) => !l.startsWith('date:'));
      const body = out.length === 0 ? Buffer.alloc(0) : await readFile(file);
      return { status, headers, body, code: r.code, stderr: r.stderr };
    };
    /** The last head the backend received for `url`. */
    const headOf = (method: string, url: string) => be.heads.findLast((h) => h.startsWith(`${method} ${url} `))!;
    /** undici (the general path) always sends a Connection header; the lane, as the HTTP/1.1 front, never does. */
    const viaLane = (head: string) => !/\r\nconnection:/i.test(head);
    /** Response header lines in a comparable order (the lane puts Server last, the general path where the pod had it). */
    const sorted = (a: Answer) => [...a.headers].sort();

    t.test('GET and HEAD: the same status, headers and bytes as the general path; same upstream request', async (t) => {
      for (const method of ['GET', 'HEAD']) {
        const extra = method === 'HEAD' ? ['-I'] : [];
        const lane = await curl('raw.test', '/plain?q=1', [...extra, '-H', 'x-custom: one', '-A', 'ua/1']);
        const laneHead = headOf(method, '/plain?q=1');
        const gen = await curl('gen.test', '/plain?q=1', [...extra, '-H', 'x-custom: one', '-A', 'ua/1']);
        const genHead = headOf(method, '/plain?q=1');
        t.equal(lane.code, 0, lane.stderr);
        t.equal(lane.status, 200, method);
        t.ok(viaLane(laneHead), `${method} took the lane: ${JSON.stringify(laneHead)}`);
        t.notOk(viaLane(genHead), `${method} on the allow-listed route took the general path`);
        t.same(sorted(lane), sorted(gen), `${method}: response headers`);
        t.same(lane.body, gen.body, `${method}: body`);
        t.equal(lane.body.toString(), method === 'HEAD' ? '' : 'GET /plain?q=1 body=');
        t.equal(gen.status, 200);
        for (const h of ['content-type: text/plain', `content-length: ${method.length + 17}`, 'server: kdp'])
          t.ok(lane.headers.includes(h), h);
        t.same(upstreamHeaders(laneHead, 'raw.test'), upstreamHeaders(genHead, 'gen.test'), `${method}: upstream head`);
        t.match(laneHead, /\r\nx-forwarded-proto: https\r\n/);
        t.match(laneHead, new RegExp(`\\r\\nx-forwarded-port: ${port}\\r\\n`));
        t.match(laneHead, /\r\nx-real-ip: 127\.0\.0\.1\r\n/);
        t.match(laneHead, /\r\nx-request-id: [0-9a-f]{32}\r\n/);
      }
    });

    t.test('chunked, until-close, 204, 103 and Server answers: as the general path, de-chunked', async (t) => {
      for (const p of ['/chunked', '/until-close', '/nocontent', '/early', '/server-pod', '/conn-close']) {
        const lane = await curl('raw.test', p);
        t.ok(viaLane(headOf('GET', p)), `${p} took the lane`);
        const gen = await curl('gen.test', p);
        t.notOk(viaLane(headOf('GET', p)), `${p} on gen.test took the general path`);
        t.equal(lane.code, 0, `${p}: ${lane.stderr}`);
        t.equal(lane.status, gen.status, `${p}: status`);
        t.same(sorted(lane), sorted(gen), `${p}: headers`);
        t.same(lane.body.toString(), gen.body.toString(), `${p}: body`);
        t.notOk(
          lane.headers.some((h) => /^(transfer-encoding|connection|keep-alive|upgrade|proxy-connection):/.test(h)),
          `${p}: no connection-specific header`,
        );
      }
      t.equal((await curl('raw.test', '/chunked')).body.toString(), 'hello world');
      t.equal((await curl('raw.test', '/until-close')).body.toString(), 'all of it until close');
      t.equal((await curl('raw.test', '/nocontent')).status, 204);
    });

    t.test('malformed upstream answers: 502 as the general path', async (t) => {
      for (const p of ['/malformed', '/both-framings', '/split-header', '/dup-type']) {
        const lane = await curl('raw.test', p);
        const gen = await curl('gen.test', p);
        t.equal(lane.status, 502, p);
        t.equal(gen.status, 502, p);
        t.same(sorted(lane), sorted(gen), `${p}: headers`);
        t.equal(lane.body.toString(), 'bad gateway\n');
      }
    });

    t.test('more body than Content-Length in the read with the head: the announced bytes only', async (t) => {
      const r = await curl('raw.test', '/overlong');
      t.ok(viaLane(headOf('GET', '/overlong')), 'the lane took it');
      t.equal(r.code, 0, r.stderr);
      t.equal(r.status, 200);
      t.equal(r.body.toString(), 'hello', 'the 5 announced bytes');
      t.ok(r.headers.includes('content-length: 5'));
      const next = await curl('raw.test', '/after-overlong');
      t.equal(next.body.toString(), 'GET /after-overlong body=', 'the next request is answered whole');
    });

    t.test('a body (POST) still takes the general path', async (t) => {
      const r = await curl('raw.test', '/post', ['--data-binary', 'hello']);
      t.equal(r.status, 200);
      t.equal(r.body.toString(), 'POST /post body=hello');
      t.notOk(viaLane(headOf('POST', '/post')), 'undici sent it');
    });

    t.test('backend down: the same 502; no endpoints: the same 503', async (t) => {
      const lane = await curl('dead.test', '/x');
      const gen = await curl('deadgen.test', '/x');
      t.equal(lane.status, 502);
      t.same(sorted(lane), sorted(gen));
      t.equal(lane.body.toString(), gen.body.toString());
      const none = await curl('empty.test', '/x');
      t.equal(none.status, 503);
      t.equal(none.body.toString(), 'service unavailable: no endpoints\n');
    });

    t.test('one endpoint refusing: retried on the next, as the HTTP/1.1 front', async (t) => {
      // 127.0.0.2: loopback, nothing listens there on the backend's port (connect refused)
      src.put(slice('raw', ['127.0.0.2', '127.0.0.1'], be.port));
      await until(async () => (await curl('raw.test', '/retry-probe')).status === 200 || undefined, {
        timeoutMs: 10_000,
        what: 'the new endpoints in the table',
      });
      for (let i = 0; i < 4; i++) t.equal((await curl('raw.test', `/retry${i}`)).status, 200, `retry${i}`);
      await new Promise((r) => setTimeout(r, 200)); // the access log is buffered
      const retried = logs
        .join('')
        .split('\n')
        .filter((l) => / "GET \/retry\d HTTP\/2\.0" 200 /.test(l) && l.includes(`127.0.0.2:${be.port}, 127.0.0.1:`));
      t.ok(retried.length >= 1, `${retried.length} of 4 went to the refusing endpoint first, then the next one`);
      src.put(slice('raw', ['127.0.0.1'], be.port));
      await until(async () => (await curl('raw.test', '/retry-probe')).status === 200 || undefined, {
        timeoutMs: 10_000,
        what: 'the table back',
      });
    });

    t.test(
      'the upstream fails mid-body: that stream is reset (as the general path), the session goes on',
      async (t) => {
        // Content-Length short, and chunked without its last chunk: never an END_STREAM that makes it look complete
        for (const p of ['/cut', '/cut-chunked']) {
          const lane = await curl('raw.test', p);
          const gen = await curl('gen.test', p);
          t.equal(lane.code, 92, `${p}: curl sees the stream reset: ${lane.stderr}`);
          t.match(lane.stderr, /INTERNAL_ERROR/);
          t.equal(lane.code, gen.code, `${p}: the same curl exit as the general path (${gen.stderr})`);
        }
        const sess = h2Connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
        t.teardown(() => sess.close());
        const get = (p: string) =>
          new Promise<string>((resolve, reject) => {
            const st = sess.request({ ':path': p, ':authority': 'raw.test' });
            let body = '';
            st.on('data', (b: Buffer) => (body += b.toString()));
            st.on('end', () => resolve(body));
            st.on('error', reject);
          });
        const [cut, ok] = await Promise.allSettled([get('/cut'), get('/beside-cut')]);
        t.equal(cut.status, 'rejected', 'the cut stream errors');
        t.match(String((cut as PromiseRejectedResult).reason), /NGHTTP2_INTERNAL_ERROR/);
        t.same(ok, { status: 'fulfilled', value: 'GET /beside-cut body=' }, 'its neighbour on the session completes');
        t.equal(await get('/after-cut'), 'GET /after-cut body=', 'the session is still usable');
      },
    );

    t.test('h2c (prior knowledge, node:http2 on the plain port): small answers through the lane', async (t) => {
      for (const p of ['/h2c-small', '/chunked', '/dup-type']) {
        const r = await curl('raw.test', p, [], true);
        t.ok(viaLane(headOf('GET', p)), `${p} took the lane`);
        if (p === '/dup-type') {
          t.equal(r.status, 502, `${p}: a header list HTTP/2 cannot carry`);
          continue;
        }
        t.equal(r.code, 0, r.stderr);
        t.equal(r.status, 200, p);
        t.equal(r.body.toString(), p === '/chunked' ? 'hello world' : `GET ${p} body=`, `${p}: body`);
        t.ok(r.headers.includes('server: kdp'), `${p}: server`);
      }
      const head = await curl('raw.test', '/h2c-head', ['-I'], true);
      t.equal(head.status, 200, 'HEAD');
      t.ok(head.headers.includes(`content-length: ${'HEAD /h2c-head body='.length}`), 'HEAD: the length of the GET');
    });

    t.test('a 2 MiB response (flow control), Content-Length and chunked, TLS and h2c', async (t) => {
      for (const p of ['/big', '/big-chunked']) {
        for (const h2c of [false, true]) {
          const r = await curl('raw.test', p, [], h2c);
          t.equal(r.code, 0, r.stderr);
          t.equal(r.status, 200);
          t.equal(r.body.length, BIG.length, `${p} h2c=${h2c}: length`);
          t.equal(createHash('sha256').update(r.body).digest('hex'), BIG_SHA256, `${p} h2c=${h2c}: bytes`);
          t.ok(viaLane(headOf('GET', p)), `${p} h2c=${h2c} took the lane`);
        }
      }
      const head = await curl('raw.test', '/big', ['-I']);
      t.equal(head.status, 200);
      t.ok(head.headers.includes(`content-length: ${BIG.length}`), 'HEAD: the length');
      // HEAD: no DATA at all (curl -I would not read any), seen by a node:http2 client
      const sess = h2Connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
      t.teardown(() => sess.close());
      const st = sess.request({ ':method': 'HEAD', ':path': '/big', ':authority': 'raw.test' });
      const [status, bytes] = await new Promise<[number, number]>((resolve, reject) => {
        let code = 0;
        let got = 0;
        st.on('response', (h) => (code = Number(h[':status'])));
        st.on('data', (b: Buffer) => (got += b.length));
        st.on('end', () => resolve([code, got]));
        st.on('error', reject);
      });
      t.same([status, bytes], [200, 0], 'HEAD /big: 200, no DATA');
      const h2c = headOf('GET', '/big-chunked');
      t.match(h2c, /\r\nx-forwarded-proto: http\r\n/, 'h2c: the plain port scheme');
    });

    t.test('200 concurrent streams on one session (node:http2), then h2load', async (t) => {
      const sess: ClientHttp2Session = h2Connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
      t.teardown(() => sess.close());
      const one = (i: number) =>
        new Promise<string>((resolve, reject) => {
          const st = sess.request({ ':path': `/many${i}`, ':authority': 'raw.test' });
          let body = '';
          st.on('data', (b: Buffer) => (body += b.toString()));
          st.on('end', () => resolve(body));
          st.on('error', reject);
        });
      const bodies = await Promise.all(Array.from({ length: 200 }, (_, i) => one(i)));
      t.same(
        bodies,
        Array.from({ length: 200 }, (_, i) => `GET /many${i} body=`),
        'each stream got its own answer',
      );
      t.ok(be.heads.filter((h) => h.startsWith('GET /many')).every(viaLane), 'all on the lane');
      const h2load = await run(
        ['h2load', '-n', '400', '-c', '1', '-m', '50', '-H', 'host: raw.test', `https://127.0.0.1:${port}/load`],
        { allowFailure: true },
      );
      t.equal(h2load.code, 0, h2load.stderr);
      t.match(h2load.stdout, /requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed, 0 errored/);
      t.match(h2load.stdout, /status codes: 400 2xx/);
    });

    t.test(
      'a stream reset by the client mid-body: logged with the bytes sent, the session and the pool go on',
      async (t) => {
        const sess = h2Connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
        t.teardown(() => sess.close());
        const st = sess.request({ ':path': '/big', ':authority': 'raw.test', 'x-request-id': 'reset-mid-body' });
        await new Promise<void>((resolve) => st.once('data', () => resolve()));
        st.close(h2constants.NGHTTP2_CANCEL);
        await until(async () => logs.join('').includes('reset-mid-body') || undefined, {
          timeoutMs: 10_000,
          what: 'the access-log line of the reset stream',
        });
        const line = logs
          .join('')
          .split('\n')
          .find((l) => l.endsWith(' reset-mid-body'));
        // as nginx: the status that was sent (499 only when the client left before the response head), and the
        // body bytes relayed until then: flow control held the rest in the upstream socket, unread
        const sent = Number(/"GET \/big HTTP\/2\.0" 200 (\d+) /.exec(line ?? '')?.[1] ?? -1);
        t.ok(sent >= 0 && sent < BIG.length, `logged 200 with ${sent} of ${BIG.length} bytes: ${line}`);
        for (let i = 0; i < 5; i++) {
          const r = await curl('raw.test', `/after-reset${i}`);
          t.equal(r.body.toString(), `GET /after-reset${i} body=`);
        }
      },
    );

    t.test('access log and nginx_ingress_controller_requests: once per request', async (t) => {
      const metric = async () => {
        const text = await (await request(`http://127.0.0.1:${ing.ports.metrics}/metrics`)).body.text();
        const m =
          /nginx_ingress_controller_requests\{host="raw.test",status="200",method="GET",path="\/",ingress="raw",namespace="default",service="raw",canary=""\} (\d+)/.exec(
            text,
          );
        return Number(m?.[1] ?? 0);
      };
      const before = await metric();
      for (let i = 0; i < 5; i++) t.equal((await curl('raw.test', `/counted${i}`, ['-e', 'http://ref/'])).status, 200);
      await new Promise((r) => setTimeout(r, 200)); // the access log is buffered
      t.equal((await metric()) - before, 5, 'five requests, five counts');
      const lines = logs
        .join('')
        .split('\n')
        .filter((l) => l.includes('/counted'));
      t.equal(lines.length, 5, 'five access-log lines');
      t.match(
        lines[0],
        /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/counted0 HTTP\/2\.0" 200 19 "http:\/\/ref\/" "curl\/[^"]+" \d+ \d+\.\d{3} \[default-raw-80\] \[\] 127\.0\.0\.1:\d+ 19 \d+\.\d{3} 200 [0-9a-f]{32}$/,
      );
      // the general path's line for the same request (gen.test: a host of the same length), times and ids aside
      t.equal((await curl('gen.test', '/counted0', ['-e', 'http://ref/'])).status, 200);
      await new Promise((r) => setTimeout(r, 200));
      const gen = logs
        .join('')
        .split('\n')
        .filter((l) => l.includes('/counted0'))
        .at(-1)!;
      const fields = (l: string) =>
        l
          .replace(/\[[^\]]+\] "/, '[time] "')
          .replace(/ \d+\.\d{3} /g, ' T ')
          .replace(/127\.0\.0\.1:\d+/, 'UP')
          .replace(/[0-9a-f]{32}$/, 'ID');
      t.equal(fields(lines[0]!), fields(gen), 'the same access-log fields as the general path');
    });
  });
}
