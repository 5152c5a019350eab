// The plain-HTTP fast front (ingress/fast-front.ts) against a raw backend that answers with every framing
// a pod may use: Content-Length, chunked with trailers, until close, interim 1xx, HEAD, 204, malformed heads.
// Also: pipelined requests mixing the fast path and the node:http path on one connection, and keep-alive reuse.
import t from 'tap';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { connect as http2Connect } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { request } from 'undici';
import { needsRoot } from '../helpers/gate.ts';
import { loopbackIngress, rawRoute } from '../helpers/loopback-ingress.ts';
import { until } from '../helpers/wait.ts';
import { exchange, stalledBody } from '../helpers/raw-http.ts';
import { chunked, HUGE, rawBackend } from '../helpers/raw-backend.ts';
import { startIngress } from '../../ingress/ingress.ts';
import { forwardedAround } from '../../ingress/decide.ts';

/** Raw bytes on one plain connection: see exchange(). */
const rawExchange = (port: number, bytes: string, answers = 1) =>
  exchange(connect(port, '127.0.0.1'), 'connect', [bytes], { answers });

if (needsRoot(t, 'nothing but loopback; kept with the other ingress e2e files')) {
  t.test('fast front: framings, pipelining, keep-alive', async (t) => {
    const be = await rawBackend();
    t.teardown(() => new Promise((r) => be.server.close(r)));
    const src = rawRoute(be.port);
    const { ing, logs } = await loopbackIngress(t, src);
    const base = `http://127.0.0.1:${ing.ports.http}`;
    const get = async (p: string, method = 'GET') => {
      const r = await request(`${base}${p}`, { method: method as 'GET', headers: { host: 'raw.test' } });
      return { status: r.statusCode, headers: r.headers, text: await r.body.text(), trailers: r.trailers };
    };

    t.test('Content-Length response, headers added, upstream connection reused', async (t) => {
      const before = be.conns();
      for (let i = 0; i < 5; i++) {
        const r = await get(`/plain${i}`);
        t.equal(r.status, 200);
        t.equal(r.text, `GET /plain${i} body=`);
      }
      t.ok(be.conns() - before <= 1, `5 sequential requests over ${be.conns() - before} new upstream connection(s)`);
      const head = be.heads.at(-1)!;
      t.match(head, /^GET \/plain4 HTTP\/1\.1\r\n/);
      t.match(head, /\r\nhost: raw\.test\r\n/i);
      t.match(head, /\r\nx-forwarded-for: 127\.0\.0\.1\r\n/);
      t.match(head, /\r\nx-real-ip: 127\.0\.0\.1\r\n/);
      t.match(head, /\r\nx-request-id: [0-9a-f]{32}\r\n/);
      t.match(head, /\r\nx-forwarded-proto: http\r\n/);
      t.notMatch(head, /\r\nconnection:/i, 'hop-by-hop headers not forwarded');
    });

    t.test('chunked response relayed with its trailer', async (t) => {
      const r = await get('/chunked');
      t.equal(r.status, 200);
      t.equal(r.text, 'hello world');
      t.equal(r.trailers['x-sum'], '11');
      const again = await get('/after-chunked');
      t.equal(again.text, 'GET /after-chunked body=', 'the connection is usable after a chunked response');
    });

    t.test('response delimited by close: relayed, client connection closed', async (t) => {
      const out = await rawExchange(ing.ports.http, 'GET /until-close HTTP/1.1\r\nHost: raw.test\r\n\r\n');
      t.match(out, /^HTTP\/1\.1 200 OK\r\n/);
      t.match(out, /\r\nconnection: close\r\n/i);
      t.match(out, /\r\n\r\nall of it until close$/);
    });

    t.test('interim 103 dropped, 204 and HEAD have no body', async (t) => {
      const early = await get('/early');
      t.equal(early.status, 200);
      t.equal(early.text, 'after hints');
      const none = await get('/nocontent');
      t.equal(none.status, 204);
      t.equal(none.headers['x-empty'], 'yes');
      const out = await rawExchange(
        ing.ports.http,
        'HEAD /h HTTP/1.1\r\nHost: raw.test\r\n\r\nGET /g HTTP/1.1\r\nHost: raw.test\r\n\r\n',
        2,
      );
      const parts = out.split('HTTP/1.1 200 OK');
      t.equal(parts.length, 3, 'two responses on the connection');
      t.match(parts[1], /content-length: 13\r\nserver: kdp\r\n\r\n$/i, 'HEAD: the length, no body');
      t.match(parts[2], /\r\n\r\nGET \/g body=$/);
    });

    t.test('malformed or ambiguous upstream responses: 502', async (t) => {
      t.equal((await get('/malformed')).status, 502);
      t.equal((await get('/both-framings')).status, 502);
      const split = await get('/split-header');
      t.equal(split.status, 502, 'a bare LF inside an upstream header line is refused, not relayed');
      const r = await get('/conn-close');
      t.equal(r.text, 'bye\n', 'Connection: close from the pod is honoured');
      t.equal((await get('/after')).status, 200);
    });

    t.test('pipelined GET, POST (handed to node:http), GET on one connection: answered in order', async (t) => {
      const req =
        'GET /one HTTP/1.1\r\nHost: raw.test\r\n\r\n' +
        'POST /two HTTP/1.1\r\nHost: raw.test\r\nContent-Length: 5\r\n\r\nhello' +
        'GET /three HTTP/1.1\r\nHost: raw.test\r\n\r\n';
      const out = await rawExchange(ing.ports.http, req, 3);
      const bodies = [...out.matchAll(/(GET|POST) \/([a-z]+) body=([a-z]*)/g)].map((m) => m[0]);
      t.same(bodies, ['GET /one body=', 'POST /two body=hello', 'GET /three body='], out);
    });

    t.test('big bodies to slow readers while other requests run: every byte intact', async (t) => {
      // the front reads every socket into one shared buffer: a body write that backs up must not keep pointing
      // at it while the other connections' reads overwrite it. The slow client does not read for a while, so
      // the front's writes to it back up (its receive window stays small) while other requests run.
      // the slow clients start reading only once 21 other requests have run (a fixed wait saw too few on a loaded
      // machine): the writes to them stay backed up the whole time
      const meanwhile = () =>
        until(async () => (others > 20 ? true : undefined), { timeoutMs: 20_000, what: '21 other requests' });
      const slow = (p: string) =>
        stalledBody(ing.ports.http, p, 'raw.test', (c) => t.teardown(() => c.destroy()), meanwhile);
      let stop = false;
      let others = 0;
      let wrong = 0;
      const noise = (async () => {
        while (!stop) {
          const r = await get(`/noise${others}`);
          if (r.text !== `GET /noise${others} body=`) wrong++;
          others++;
        }
      })();
      const [plain, framed] = await Promise.all([slow('/huge'), slow('/huge-chunked')]);
      stop = true;
      await noise;
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      t.equal(plain.length, HUGE.length, 'Content-Length body: length');
      t.ok(sha(plain) === sha(HUGE), 'Content-Length body: bytes');
      // chunked framing is relayed as the backend wrote it
      t.ok(sha(framed) === sha(chunked(HUGE)), 'chunked body: bytes and framing');
      t.ok(others > 20, `${others} other requests ran meanwhile`);
      t.equal(wrong, 0, 'their answers were right');
    });

    t.test('requests split across packets and a 404 host', async (t) => {
      const s = connect(ing.ports.http, '127.0.0.1');
      t.teardown(() => s.destroy());
      let out = '';
      s.on('data', (b: Buffer) => (out += b.toString()));
      // the answers are waited for (10 s at most), not given a fixed 200 ms: a loaded machine can take longer
      const arrived = (re: RegExp) =>
        until(async () => re.test(out) || undefined, { timeoutMs: 10_000, what: String(re) }).catch(() => false);
      await new Promise((r) => s.once('connect', r));
      for (const piece of ['GE', 'T /split HTTP/1.1\r\nHo', 'st: raw.test\r', '\n\r\n']) {
        s.write(piece);
        await new Promise((r) => setTimeout(r, 30));
      }
      await arrived(/GET \/split body=$/);
      t.match(out, /GET \/split body=$/);
      s.write('GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n');
      await arrived(/HTTP\/1\.1 404 /);
      t.match(out, /HTTP\/1\.1 404 /, 'unknown host: 404 from the general path');
    });

    t.test(
      "a Server header on every answer of both lanes; the pod's is replaced (nginx: proxy_hide_header)",
      async (t) => {
        const servers = (out: string) => [...out.matchAll(/^server: (.*)\r$/gim)].map((m) => m[1]);
        const fast = await rawExchange(ing.ports.http, 'GET /server-pod HTTP/1.1\r\nHost: raw.test\r\n\r\n');
        t.match(fast, /^HTTP\/1\.1 200 /);
        t.same(servers(fast), ['kdp'], 'fast front: ours only');
        const slow = await rawExchange(
          ing.ports.http,
          'POST /server-pod HTTP/1.1\r\nHost: raw.test\r\nContent-Length: 1\r\n\r\nx',
        );
        t.match(slow, /^HTTP\/1\.1 200 /);
        t.same(servers(slow), ['kdp'], 'node:http lane: ours only');
        const notFound = await rawExchange(ing.ports.http, 'GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n');
        t.match(notFound, /^HTTP\/1\.1 404 /);
        t.same(servers(notFound), ['kdp'], '404');
        const bad = await rawExchange(ing.ports.http, 'GET /malformed HTTP/1.1\r\nHost: raw.test\r\n\r\n');
        t.match(bad, /^HTTP\/1\.1 502 /);
        t.same(servers(bad), ['kdp'], '502 from the fast front');
        const refused = await rawExchange(ing.ports.http, 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
        t.match(refused, /^HTTP\/1\.1 400 /);
        t.same(servers(refused), ['kdp'], '400 for a head llhttp refused');
      },
    );

    t.test('head limits as nginx (8 KiB a line, 32 KiB in all): 414, 400, and 20 KiB heads served', async (t) => {
      const status = (out: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0);
      const h = (n: number, size: number) =>
        Array.from({ length: n }, (_, i) => `X-H${i}: ${'a'.repeat(size)}\r\n`).join('');
      const longLine = await rawExchange(
        ing.ports.http,
        `GET /${'u'.repeat(10_000)} HTTP/1.1\r\nHost: raw.test\r\n\r\n`,
      );
      t.equal(status(longLine), 414, 'a 10 KB request line: 414');
      const hugeLine = await rawExchange(
        ing.ports.http,
        `GET /${'u'.repeat(40_000)} HTTP/1.1\r\nHost: raw.test\r\n\r\n`,
      );
      t.equal(status(hugeLine), 414, 'a 40 KB request line (over the whole-head limit too): 414');
      const longHeader = await rawExchange(ing.ports.http, `GET /h HTTP/1.1\r\nHost: raw.test\r\n${h(1, 9000)}\r\n`);
      t.equal(status(longHeader), 400, 'a 9 KB header line: 400');
      t.match(longHeader, /\r\nconnection: close\r\n/i);
      const slowLong = await rawExchange(
        ing.ports.http,
        `POST /h HTTP/1.1\r\nHost: raw.test\r\nContent-Length: 1\r\n${h(1, 9000)}\r\nx`,
      );
      t.equal(status(slowLong), 400, 'the same on the node:http lane');
      const big = await rawExchange(ing.ports.http, `GET /big HTTP/1.1\r\nHost: raw.test\r\n${h(3, 7000)}\r\n`);
      t.equal(status(big), 200, 'a 21 KB head of 7 KB lines is served (fast front)');
      const bigSlow = await rawExchange(
        ing.ports.http,
        `POST /big HTTP/1.1\r\nHost: raw.test\r\nContent-Length: 1\r\n${h(3, 7000)}\r\nx`,
      );
      t.equal(status(bigSlow), 200, 'and by node:http');
      const tooBig = await rawExchange(ing.ports.http, `GET /big HTTP/1.1\r\nHost: raw.test\r\n${h(5, 7000)}\r\n`);
      t.equal(status(tooBig), 400, 'a 35 KB head: 400');
      t.match(tooBig, /Request Header Or Cookie Too Large/);
      t.equal((await get('/after')).status, 200, 'still serving');
    });

    /** Raw bytes over TLS (ALPN http/1.1) to the HTTPS port: see exchange(). */
    const tlsExchange = (bytes: string, answers = 1) =>
      exchange(
        tlsConnect({
          port: ing.ports.https,
          host: '127.0.0.1',
          servername: 'raw.test',
          rejectUnauthorized: false,
          ALPNProtocols: ['http/1.1'],
        }),
        'secureConnect',
        [bytes],
        { answers },
      );

    t.test('the upstream head: lines as they came, dropped ones cut out, uneven ones as `name: value`', async (t) => {
      // (the head goes upstream as pieces of the client's read: tcp-io's writeGather; over TLS from the SSL's
      // plaintext; checked here against the whole text the proxy means to send)
      const lines =
        'User-Agent: t/1\r\nHost: raw.test\r\nX-Sp:   padded value  \r\nConnection: keep-alive\r\nX-Empty:\r\n' +
        'X-Tab:\tv\r\nX-Forwarded-For: 10.0.0.9\r\nAccept: */*\r\n';
      const kept = 'User-Agent: t/1\r\nX-Sp: padded value\r\nX-Empty: \r\nX-Tab: v\r\nAccept: */*\r\n';
      for (const [scheme, port, send] of [
        ['http', ing.ports.http, (b: string) => rawExchange(ing.ports.http, b)],
        ['https', ing.ports.https, (b: string) => tlsExchange(b)],
      ] as const) {
        const out = await send(`GET /exact-${scheme}?q=1 HTTP/1.1\r\n${lines}\r\n`);
        t.match(out, /^HTTP\/1\.1 200 /, `${scheme}: served`);
        const head = be.heads.findLast((h) => h.startsWith(`GET /exact-${scheme}?q=1 `))!;
        const id = /\r\nx-request-id: ([0-9a-f]{32})\r\n/.exec(head)?.[1] ?? '?';
        const [before, after] = forwardedAround(scheme, 'raw.test', '127.0.0.1', port, '10.0.0.9');
        const want = `GET /exact-${scheme}?q=1 HTTP/1.1\r\n${before}${id}${after}${kept}`.slice(0, -2);
        t.equal(head, want, `${scheme}: the head upstream, byte for byte`);
      }
    });

    t.test('HTTPS, HTTP/1.1: the fast front serves it; pipelined GET, POST (node:http over TLS), GET', async (t) => {
      const out = await tlsExchange('GET /tls-one HTTP/1.1\r\nHost: raw.test\r\n\r\n');
      t.match(out, /^HTTP\/1\.1 200 OK\r\n/);
      // the pod's head relayed as it came (node:http would add Date and Connection: keep-alive)
      t.notMatch(out, /\r\ndate:/i, 'no Date added: the fast front answered');
      t.notMatch(out, /\r\nconnection:/i);
      const head = be.heads.find((h) => h.startsWith('GET /tls-one '))!;
      t.match(head, /\r\nx-forwarded-proto: https\r\n/);
      t.match(head, new RegExp(`\\r\\nx-forwarded-port: ${ing.ports.https}\\r\\n`));
      const mixed = await tlsExchange(
        'GET /one HTTP/1.1\r\nHost: raw.test\r\n\r\n' +
          'POST /two HTTP/1.1\r\nHost: raw.test\r\nContent-Length: 5\r\n\r\nhello' +
          'GET /three HTTP/1.1\r\nHost: raw.test\r\n\r\n',
        3,
      );
      const bodies = [...mixed.matchAll(/(GET|POST) \/([a-z]+) body=([a-z]*)/g)].map((m) => m[0]);
      t.same(bodies, ['GET /one body=', 'POST /two body=hello', 'GET /three body='], mixed);
      // ALPN h2 still goes to the HTTP/2 server
      const sess = http2Connect(`https://127.0.0.1:${ing.ports.https}`, { rejectUnauthorized: false });
      t.teardown(() => sess.close());
      const st = sess.request({ ':path': '/h2', ':authority': 'raw.test' });
      const [status, text] = await new Promise<[number, string]>((resolve, reject) => {
        let code = 0;
        let body = '';
        st.on('response', (h) => (code = Number(h[':status'])));
        st.on('data', (b: Buffer) => (body += b.toString()));
        st.on('end', () => resolve([code, body]));
        st.on('error', reject);
      });
      t.equal(status, 200);
      t.equal(text, 'GET /h2 body=');
    });

    t.test('Connection: close (plain and TLS): the fast front answers, then ends the connection', async (t) => {
      const once = (tls: boolean) =>
        new Promise<{ out: string; ended: boolean }>((resolve, reject) => {
          const s = tls
            ? tlsConnect({
                port: ing.ports.https,
                host: '127.0.0.1',
                servername: 'raw.test',
                rejectUnauthorized: false,
              })
            : connect(ing.ports.http, '127.0.0.1');
          let out = '';
          const timer = setTimeout(() => (s.destroy(), resolve({ out, ended: false })), 3000);
          s.on('data', (b: Buffer) => (out += b.toString('latin1')));
          s.on('error', reject);
          s.on('end', () => (clearTimeout(timer), s.destroy(), resolve({ out, ended: true })));
          s.once(tls ? 'secureConnect' : 'connect', () =>
            // a second request after the close one is never answered
            s.write(
              'GET /bye HTTP/1.1\r\nHost: raw.test\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: raw.test\r\n\r\n',
            ),
          );
        });
      for (const tls of [false, true]) {
        const { out, ended } = await once(tls);
        t.match(out, /^HTTP\/1\.1 200 OK\r\n/, `tls ${tls}`);
        t.match(out, /\r\nconnection: close\r\n/i);
        t.notMatch(out, /\r\ndate:/i, 'no Date added: the fast front answered');
        t.match(out, /GET \/bye body=$/);
        t.ok(ended, 'the ingress ended the connection');
      }
      t.notOk(
        be.heads.some((h) => h.startsWith('GET /never ')),
        'the request after Connection: close is not forwarded',
      );
    });

    t.test('HTTPS, HTTP/1.1: the same head limits and Server header', async (t) => {
      const status = (out: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0);
      const h = (n: number, size: number) =>
        Array.from({ length: n }, (_, i) => `X-H${i}: ${'a'.repeat(size)}\r\n`).join('');
      const big = await tlsExchange(`GET /big HTTP/1.1\r\nHost: raw.test\r\n${h(3, 7000)}\r\n`);
      t.equal(status(big), 200, 'a 21 KB head is served');
      t.match(big, /\r\nserver: kdp\r\n/i);
      t.equal(status(await tlsExchange(`GET /h HTTP/1.1\r\nHost: raw.test\r\n${h(1, 9000)}\r\n`)), 400);
      t.equal(status(await tlsExchange(`GET /${'u'.repeat(10_000)} HTTP/1.1\r\nHost: raw.test\r\n\r\n`)), 414);
      t.equal(status(await tlsExchange(`GET /h HTTP/1.1\r\nHost: raw.test\r\n${h(5, 7000)}\r\n`)), 400, '35 KB');
    });

    t.test('access log and metrics for fast-path requests', async (t) => {
      await new Promise((r) => setImmediate(r));
      const line = logs
        .join('')
        .split('\n')
        .find((l) => l.includes('"GET /plain0 HTTP/1.1"'));
      t.match(
        line,
        /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/plain0 HTTP\/1\.1" 200 17 "-" "[^"]*" \d+ \d+\.\d{3} \[default-raw-80\] \[\] 127\.0\.0\.1:\d+ 17 \d+\.\d{3} 200 [0-9a-f]{32}$/,
      );
      const m = await request(`http://127.0.0.1:${ing.ports.metrics}/metrics`);
      const text = await m.body.text();
      t.match(
        text,
        /nginx_ingress_controller_requests\{host="raw.test",status="200",method="GET",path="\/",ingress="raw",namespace="default",service="raw",canary=""\} \d+/,
      );
      t.match(text, /nginx_ingress_controller_requests\{host="raw.test",status="502",method="GET"/);
    });
  });

  t.test('head limits are flags: --max-header-line / --max-header-size, and the Server header value', async (t) => {
    const be = await rawBackend();
    t.teardown(() => new Promise((r) => be.server.close(r)));
    const src = rawRoute(be.port);
    const ing = await startIngress(src, {
      httpPort: 0,
      httpsPort: 0,
      bind: '127.0.0.1',
      processMetrics: false,
      maxHeaderLine: 2048,
      maxHeaderSize: 4096,
      serverHeader: 'kdp/9.9.9',
    });
    t.teardown(() => ing.close());
    const status = (out: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0);
    const ok = await rawExchange(
      ing.ports.http,
      `GET /x HTTP/1.1\r\nHost: raw.test\r\nX-A: ${'a'.repeat(1900)}\r\n\r\n`,
    );
    t.equal(status(ok), 200);
    t.match(ok, /\r\nserver: kdp\/9\.9\.9\r\n/);
    const line = await rawExchange(
      ing.ports.http,
      `GET /x HTTP/1.1\r\nHost: raw.test\r\nX-A: ${'a'.repeat(2100)}\r\n\r\n`,
    );
    t.equal(status(line), 400);
    const uri = await rawExchange(ing.ports.http, `GET /${'u'.repeat(2100)} HTTP/1.1\r\nHost: raw.test\r\n\r\n`);
    t.equal(status(uri), 414);
    const head = await rawExchange(
      ing.ports.http,
      `GET /x HTTP/1.1\r\nHost: raw.test\r\nX-A: ${'a'.repeat(1500)}\r\nX-B: ${'a'.repeat(1500)}\r\nX-C: ${'a'.repeat(1500)}\r\n\r\n`,
    );
    t.equal(status(head), 400);
  });
}
