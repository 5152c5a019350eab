// HTTP/2 in the addon (ingress/h2-session.ts, native/tcp/kdp_tcp.c): a ClientHello offering h2 gets ALPN h2 from
// the addon's TLS, and the connection's nghttp2 session runs there. Real node:http2 and raw TLS clients on
// loopback against a raw HTTP/1.1 backend: lane streams and relayed ones (bodies, the general path's routes) on
// one session, the session's limits (header list size, concurrent streams), protocol errors (GOAWAY, the server
// goes on), a client reset of a relayed upload, and the graceful close (GOAWAY, the stream in flight finishes).
// The cases follow RFC 9113 (sections 5.1.2, 6.8, 8.2.2, 10.5.1) and h2spec's generic checks.
import t from 'tap';
import { connect as h2Connect, constants as h2constants } from 'node:http2';
import type { ClientHttp2Session, IncomingHttpHeaders } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { needsRoot } from '../helpers/gate.ts';
import { loopbackIngress, rawRoute } from '../helpers/loopback-ingress.ts';
import { rawBackend } from '../helpers/raw-backend.ts';
import { fuzzSeed, rng } from '../helpers/fuzz.ts';
import { until } from '../helpers/wait.ts';
import { run } from '../../src/common/exec-adapter.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ingress, path, rule, service, slice, withAnnotations } from '../../ingress/testing/fixtures.ts';

const ALLOW = { 'nginx.ingress.kubernetes.io/whitelist-source-range': '127.0.0.0/8' };

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request on a session; rejects with the stream's error (a reset: NGHTTP2_<CODE>). */
function ask(
  sess: ClientHttp2Session,
  host: string,
  p: string,
  opts: { method?: string; body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const s = sess.request(
      {
        ':method': opts.method ?? 'GET',
        ':path': p,
        ':authority': host,
        ...(opts.body !== undefined ? { 'content-length': String(Buffer.byteLength(opts.body)) } : {}),
        ...opts.headers,
      },
      { endStream: opts.body === undefined },
    );
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    s.on('response', (h) => {
      status = Number(h[':status']);
      headers = h;
    });
    s.on('data', (b: Buffer) => chunks.push(b));
    s.on('end', () => resolve({ status, headers, body: Buffer.concat(chunks).toString() }));
    s.on('error', reject);
    if (opts.body !== undefined) s.end(opts.body);
  });
}

if (needsRoot(t, 'nothing but loopback; kept with the other ingress e2e files')) {
  t.test('HTTP/2 in the addon: one session, lane and relayed streams, limits, errors, close', async (t) => {
    const be = await rawBackend();
    t.teardown(() => new Promise((r) => be.server.close(r)));
    const src = rawRoute(be.port);
    src.put(withAnnotations(ingress('gen', [rule('gen.test', path('/', 'Prefix', 'raw'))]), ALLOW));
    // a canary by header and by cookie (decided on the request's fields) in front of a second backend
    const be2 = await rawBackend();
    t.teardown(() => new Promise((r) => be2.server.close(r)));
    src.put(service('raw2'));
    src.put(slice('raw2', ['127.0.0.1'], be2.port));
    src.put(ingress('stable', [rule('canary.test', path('/', 'Prefix', 'raw'))]));
    src.put(
      withAnnotations(ingress('canary', [rule('canary.test', path('/', 'Prefix', 'raw2'))]), {
        'nginx.ingress.kubernetes.io/canary': 'true',
        'nginx.ingress.kubernetes.io/canary-by-header': 'X-Canary',
        'nginx.ingress.kubernetes.io/canary-by-cookie': 'use_canary',
      }),
    );
    const { ing } = await loopbackIngress(t, src);
    const port = ing.ports.https;
    const url = `https://127.0.0.1:${port}`;
    // (a header list of up to 200 kB leaves the client: its own limit would refuse it before the server sees it)
    const open = () => {
      const sess = h2Connect(url, {
        rejectUnauthorized: false,
        servername: 'raw.test',
        maxSendHeaderBlockLength: 200_000,
      });
      sess.on('error', () => {});
      return sess;
    };
    /** a TLS connection offering h2 alone, for frames written by hand */
    const rawH2 = () =>
      tlsConnect({ host: '127.0.0.1', port, servername: 'raw.test', ALPNProtocols: ['h2'], rejectUnauthorized: false });
    const terminated = async () => {
      const text = await (await request(`http://127.0.0.1:${ing.ports.metrics}/metrics`)).body.text();
      const n = (by: string) =>
        Number(new RegExp(`kdp_ingress_tls_connections_total\\{terminated_by="${by}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
      return { addon: n('addon'), node: n('node') };
    };
    /** the backend saw `method url` through the lane (no Connection header: the general path's undici sends one) */
    const viaLane = (method: string, u: string) => {
      const head = be.heads.findLast((h) => h.startsWith(`${method} ${u} `));
      return head !== undefined && !/\r\nconnection:/i.test(head);
    };

    t.test('ALPN h2 from the addon; lane and relayed streams share one session', async (t) => {
      const before = await terminated();
      const sess = open();
      t.teardown(() => sess.destroy());
      await new Promise((r) => sess.once('connect', r));
      t.equal(sess.alpnProtocol, 'h2', 'ALPN h2');
      const [lane, post, gen, head] = await Promise.all([
        ask(sess, 'raw.test', '/one?a=1'),
        ask(sess, 'raw.test', '/post', { method: 'POST', body: 'hello' }),
        ask(sess, 'gen.test', '/two'),
        ask(sess, 'raw.test', '/three', { method: 'HEAD' }),
      ]);
      t.equal(lane.status, 200);
      t.equal(lane.body, 'GET /one?a=1 body=');
      t.ok(viaLane('GET', '/one?a=1'), 'the GET took the lane');
      t.equal(post.body, 'POST /post body=hello', 'the POST (a body) was relayed to the general path');
      t.notOk(viaLane('POST', '/post'), 'the POST went through the general path');
      t.equal(gen.body, 'GET /two body=');
      t.notOk(viaLane('GET', '/two'), 'the allow-listed route went through the general path');
      t.equal(head.status, 200);
      t.equal(head.body, '', 'HEAD: no body');
      t.equal(head.headers['content-length'], String('HEAD /three body='.length));
      for (const r of [lane, post, gen]) {
        t.equal(r.headers.server, 'kdp');
        t.ok(r.headers.date, 'a Date header');
      }
      const after = await terminated();
      t.equal(after.addon - before.addon, 1, 'one connection, terminated by the addon');
      t.equal(after.node - before.node, 0, 'none by node:tls');
    });

    t.test('repeated request fields and cookie crumbs: the upstream head as the general path sends it', async (t) => {
      // RFC 9113 8.2.3: cookie crumbs are joined with "; " for HTTP/1.1; other repeated fields are combined as
      // node:http2 combines them for the general path (the addon marks a list with no repeated name, the lane then
      // takes the raw list as it is)
      const sess = open();
      t.teardown(() => sess.destroy());
      /** the backend's head for `u`, names lower-cased, sorted, without the fields that vary or the paths differ in */
      const seen = (u: string) =>
        be.heads
          .findLast((h) => h.startsWith(`GET ${u} `))!
          .split('\r\n')
          .slice(1)
          .map((l) => `${l.slice(0, l.indexOf(':')).toLowerCase()}:${l.slice(l.indexOf(':') + 1).trim()}`)
          .filter((l) => !/^(x-request-id|connection|host|x-forwarded-host):/.test(l))
          .sort();
      const lists: [string, Record<string, string | string[]>][] = [
        ['/fields-unique', { 'x-a': '1', 'x-b': 'two', accept: 'text/plain', 'set-cookie': 'odd=1' }],
        ['/fields-repeated', { 'x-a': ['1', '2'], accept: ['a/b', 'c/d'], 'x-b': 'x' }],
        ['/fields-cookie', { cookie: ['a=1', 'b=2', 'c=3'], 'x-c': '3' }],
        ['/fields-xff', { 'x-forwarded-for': ['192.0.2.1', '192.0.2.2'], 'x-request-id': 'abc' }],
      ];
      for (const [u, headers] of lists) {
        const lane = await ask(sess, 'raw.test', u, { headers: headers as Record<string, string> });
        t.equal(lane.status, 200, u);
        t.ok(viaLane('GET', u), `${u}: the lane took it`);
        const laneHead = seen(u);
        await ask(sess, 'gen.test', u, { headers: headers as Record<string, string> });
        t.notOk(viaLane('GET', u), `${u}: the allow-listed route went through the general path`);
        t.same(laneHead, seen(u), `${u}: the same upstream fields`);
      }
      t.ok(seen('/fields-cookie').includes('cookie:a=1; b=2; c=3'), 'cookie crumbs joined with "; "');
      t.ok(seen('/fields-repeated').includes('x-a:1, 2'), 'a repeated field combined with ", "');
    });

    t.test('canary by header and by cookie: as the general path decides', async (t) => {
      const sess = open();
      t.teardown(() => sess.destroy());
      const cases: [string, Record<string, string | string[]>, 'stable' | 'canary'][] = [
        ['/c-none', {}, 'stable'],
        ['/c-header', { 'x-canary': 'always' }, 'canary'],
        ['/c-header-never', { 'x-canary': 'never', cookie: 'use_canary=always' }, 'stable'],
        ['/c-cookie', { cookie: 'use_canary=always' }, 'canary'],
        ['/c-crumbs', { cookie: ['a=1', 'use_canary=always'] }, 'canary'],
      ];
      for (const [u, headers, want] of cases) {
        const r = await ask(sess, 'canary.test', u, { headers: headers as Record<string, string> });
        t.equal(r.status, 200, u);
        const by = (b: typeof be) => b.heads.some((h) => h.startsWith(`GET ${u} `));
        t.ok(by(want === 'canary' ? be2 : be), `${u}: the ${want} backend`);
        t.notOk(by(want === 'canary' ? be : be2), `${u}: not the other one`);
      }
    });

    t.test('a request field whose value has a control byte is dropped; the request is served', async (t) => {
      // RFC 9110 5.5: a field value is VCHAR, obs-text, SP and HTAB; nghttp2 ignores a field with another byte (as
      // nginx's ignore_invalid_headers, on by default, does), so it can reach no HTTP/1.1 head upstream
      const sock = rawH2();
      t.teardown(() => sock.destroy());
      sock.on('error', () => {});
      const got: Buffer[] = [];
      sock.on('data', (b: Buffer) => got.push(b));
      await new Promise((res) => sock.once('secureConnect', res));
      const field = (n: string, v: Buffer | string) => {
        const name = Buffer.from(n);
        const value = Buffer.isBuffer(v) ? v : Buffer.from(v);
        return Buffer.concat([Buffer.from([0, name.length]), name, Buffer.from([value.length]), value]);
      };
      const block = Buffer.concat([
        field(':method', 'GET'),
        field(':scheme', 'https'),
        field(':path', '/ctl-byte'),
        field(':authority', 'raw.test'),
        field('x-a', Buffer.from([0x61, 0x01, 0x62])),
      ]);
      const head = Buffer.alloc(9);
      head.writeUIntBE(block.length, 0, 3);
      head[3] = 1; // HEADERS
      head[4] = 5; // END_STREAM | END_HEADERS
      head.writeUInt32BE(1, 5);
      sock.write(
        Buffer.concat([
          Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
          Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
          head,
          block,
        ]),
      );
      // an answer to stream 1 (a HEADERS or RST_STREAM frame for it), whatever it is
      await until(
        async () => {
          const all = Buffer.concat(got);
          for (let i = 0; i + 9 <= all.length; i += 9 + all.readUIntBE(i, 3))
            if ((all[i + 3] === 1 || all[i + 3] === 3) && all.readUInt32BE(i + 5) === 1) return true as const;
          return undefined;
        },
        { timeoutMs: 5000, what: 'an answer to the stream' },
      );
      const up = be.heads.find((h) => h.startsWith('GET /ctl-byte '));
      t.ok(up, 'the request reached the backend');
      t.notMatch(up ?? '', /\r\nx-a:/i, 'without the field');
      t.notOk(up?.includes('\x01'), 'no control byte in the upstream head');
      const sess = open();
      t.teardown(() => sess.destroy());
      t.equal((await ask(sess, 'raw.test', '/after-ctl')).status, 200, 'the port goes on serving');
    });

    t.test('a request header list over 64 KiB: that stream is reset, the session goes on', async (t) => {
      const sess = open();
      t.teardown(() => sess.destroy());
      const headers: Record<string, string> = {};
      for (let i = 0; i < 40; i++) headers[`x-big-${i}`] = randomBytes(1024).toString('hex');
      const big = await ask(sess, 'raw.test', '/big-headers', { headers }).then(
        () => 'answered',
        (err: Error) => err.message,
      );
      t.match(big, /NGHTTP2_ENHANCE_YOUR_CALM/, `reset by the server: ${big}`);
      t.equal((await ask(sess, 'raw.test', '/after-big')).body, 'GET /after-big body=', 'the session still works');
    });

    t.test('SETTINGS: at most 128 concurrent streams; 300 requests at once all answered', async (t) => {
      const sess = open();
      t.teardown(() => sess.destroy());
      await new Promise((r) => sess.once('remoteSettings', r));
      t.equal(sess.remoteSettings.maxConcurrentStreams, 128);
      const replies = await Promise.all(Array.from({ length: 300 }, (_, i) => ask(sess, 'raw.test', `/many${i}`)));
      t.ok(
        replies.every((r, i) => r.body === `GET /many${i} body=`),
        'each stream got its own answer',
      );
    });

    t.test('a protocol error gets GOAWAY PROTOCOL_ERROR and a close; the port keeps serving', async (t) => {
      const sock = rawH2();
      await new Promise((r, j) => sock.once('secureConnect', r).once('error', j));
      t.equal(sock.alpnProtocol, 'h2');
      const got: Buffer[] = [];
      sock.on('data', (b: Buffer) => got.push(b));
      sock.on('error', () => {});
      // the preface, then a DATA frame on stream 1, which is idle (RFC 9113 5.1: a connection error PROTOCOL_ERROR)
      sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      sock.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])); // empty SETTINGS
      sock.write(Buffer.from([0, 0, 2, 0, 1, 0, 0, 0, 1, 0x61, 0x62])); // DATA, END_STREAM, stream 1
      await new Promise((r) => sock.once('close', r));
      const all = Buffer.concat(got);
      // frames: length (3), type (1), flags (1), stream (4); GOAWAY is type 7, its error code at payload offset 4
      let goaway = -1;
      for (let i = 0; i + 9 <= all.length;) {
        const len = all.readUIntBE(i, 3);
        if (all[i + 3] === 7) goaway = all.readUInt32BE(i + 9 + 4);
        i += 9 + len;
      }
      t.equal(goaway, h2constants.NGHTTP2_PROTOCOL_ERROR, 'GOAWAY PROTOCOL_ERROR, then the connection closed');
      const sess = open();
      t.teardown(() => sess.destroy());
      t.equal((await ask(sess, 'raw.test', '/after-error')).status, 200, 'a new connection is served');
    });

    t.test('the client resets a relayed upload: the session goes on', async (t) => {
      const sess = open();
      t.teardown(() => sess.destroy());
      // the backend waits for all 200 kB it was promised; the client sends half, then resets the stream
      const s = sess.request({
        ':method': 'POST',
        ':path': '/upload',
        ':authority': 'raw.test',
        'content-length': '200000',
      });
      s.on('error', () => {});
      s.resume();
      s.write(Buffer.alloc(100_000, 1));
      await new Promise((r) => setTimeout(r, 50));
      s.close(h2constants.NGHTTP2_CANCEL);
      await new Promise((r) => s.once('close', r));
      t.equal((await ask(sess, 'raw.test', '/after-reset')).body, 'GET /after-reset body=', 'the session still works');
      const up = await ask(sess, 'raw.test', '/upload2', { method: 'POST', body: Buffer.alloc(200_000, 0x62) });
      t.equal(up.body, `POST /upload2 body=${'b'.repeat(200_000)}`, 'a 200 kB upload (past the stream window) arrives');
    });

    t.test('random frames after the preface (seeded): no crash, the port keeps serving', async (t) => {
      // 150 connections, each the preface, SETTINGS, then 1-12 frames of random type (0-10), flags, stream id (0-9)
      // and payload (0-40 random bytes, or a HEADERS block of literal fields): what nghttp2 refuses gets GOAWAY or
      // RST_STREAM, what it takes reaches the front's records; the process (this one) must live, and serve after
      const seed = fuzzSeed();
      const r = rng(seed);
      const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
        const h = Buffer.alloc(9);
        h.writeUIntBE(payload.length, 0, 3);
        h[3] = type;
        h[4] = flags;
        h.writeUInt32BE(stream, 5);
        return Buffer.concat([h, payload]);
      };
      // a HEADERS block of literal fields without indexing (RFC 7541 6.2.2), names and values of random bytes
      const literals = () => {
        const parts: Buffer[] = [];
        const n = 1 + Math.floor(r() * 5);
        for (let i = 0; i < n; i++) {
          const name = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 8) }, () => Math.floor(r() * 256)));
          const value = Buffer.from(Array.from({ length: Math.floor(r() * 12) }, () => Math.floor(r() * 256)));
          parts.push(Buffer.from([0, name.length]), name, Buffer.from([value.length]), value);
        }
        return Buffer.concat(parts);
      };
      for (let c = 0; c < 150; c++) {
        const sock = rawH2();
        sock.on('error', () => {});
        sock.on('data', () => {});
        await new Promise((res) => sock.once('secureConnect', res).once('close', res));
        const frames: Buffer[] = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))];
        const n = 1 + Math.floor(r() * 12);
        for (let i = 0; i < n; i++) {
          const type = Math.floor(r() * 11);
          const payload =
            type === 1 && r() < 0.7
              ? literals()
              : Buffer.from(Array.from({ length: Math.floor(r() * 41) }, () => Math.floor(r() * 256)));
          frames.push(frame(type, Math.floor(r() * 256), Math.floor(r() * 10), payload));
        }
        sock.write(Buffer.concat(frames));
        await new Promise((res) => setTimeout(res, 5));
        sock.destroy();
      }
      const sess = open();
      t.teardown(() => sess.destroy());
      t.equal(
        (await ask(sess, 'raw.test', '/after-fuzz')).body,
        'GET /after-fuzz body=',
        `served after (seed ${seed})`,
      );
    });

    t.test('h2load: lane and relayed streams under load, no failure', async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'kdp-h2addon-'));
      t.teardown(() => rm(dir, { recursive: true, force: true }));
      await writeFile(join(dir, 'body'), 'x'.repeat(3000));
      const h2load = (extra: string[], path: string) =>
        run(['h2load', '-c', '8', '-m', '20', '-n', '4000', '-H', ':authority: raw.test', ...extra, `${url}${path}`], {
          allowFailure: true,
        });
      const get = await h2load([], '/load');
      t.equal(get.code, 0, get.stderr);
      t.match(get.stdout, /4000 succeeded, 0 failed, 0 errored/, 'GET (the lane)');
      const post = await h2load(['-d', join(dir, 'body')], '/load-post');
      t.equal(post.code, 0, post.stderr);
      t.match(post.stdout, /4000 succeeded, 0 failed, 0 errored/, 'POST with a body (relayed)');
      t.match(post.stdout, /status codes: 4000 2xx/);
      // 2 MiB chunked bodies on 4 connections at once: the upstream reads fill the round's arena, and the sessions'
      // input left in the SSL must still be taken (it stalled when it waited for the socket to be readable again)
      const big = await run(
        ['h2load', '-c', '4', '-m', '10', '-n', '100', '-H', ':authority: raw.test', `${url}/big-chunked`],
        { allowFailure: true },
      );
      t.equal(big.code, 0, big.stderr);
      t.match(big.stdout, /100 succeeded, 0 failed, 0 errored/, '100 x 2 MiB de-chunked over 4 connections');
    });

    t.test('closing: GOAWAY, the stream in flight finishes, the session ends', async (t) => {
      const sess = open();
      const goaway = new Promise<number>((r) => sess.once('goaway', (code) => r(code)));
      const closed = new Promise((r) => sess.once('close', r));
      await ask(sess, 'raw.test', '/warm');
      const slow = ask(sess, 'raw.test', '/slow');
      await new Promise((r) => setTimeout(r, 50));
      const closing = ing.close(5000);
      t.equal(await goaway, h2constants.NGHTTP2_NO_ERROR, 'GOAWAY NO_ERROR');
      t.equal((await slow).body, 'GET /slow body=', 'the stream in flight got its whole answer');
      await closed;
      await closing;
      t.pass('the session ended and the server closed');
    });
  });
}
