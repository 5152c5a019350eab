// The addon's strings made in the round (ingress/tcp-io.ts, native/tcp/kdp_tcp.c): a scanned HTTP/1 read of at most
// 2 KiB and every HTTP/2 header block reach JavaScript as strings the addon made, at most 256 a round. A round past
// that hands the rest over as bytes: the front takes the read's text with latin1Slice, the HTTP/2 session the block
// with toString. Busy rounds only reach the limit by chance, so this file lowers it to 0 (limitRoundTexts, this
// process only) and every read and header block takes those paths: plain and TLS HTTP/1.1, HTTP/2 lane and relayed
// streams, over real loopback sockets to a raw HTTP/1.1 backend.
import t from 'tap';
import { connect as h2Connect } from 'node:http2';
import type { ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { request } from 'undici';
import { limitRoundTexts } from '../../ingress/tcp-io.ts';
import { loopbackIngress, rawRoute } from '../helpers/loopback-ingress.ts';
import { rawBackend } from '../helpers/raw-backend.ts';
import { ingress, path, rule, withAnnotations } from '../../ingress/testing/fixtures.ts';

/** the upstream fields of a lane request with one field of its own (x-i), as the lane sends them (sorted) */
const LANE_FIELDS = [
  'host',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-proto',
  'x-forwarded-scheme',
  'x-i',
  'x-real-ip',
  'x-request-id',
  'x-scheme',
];
const ALLOW = { 'nginx.ingress.kubernetes.io/whitelist-source-range': '127.0.0.0/8' };

/** one HTTP/2 request (a POST when `body` is given): its status and body */
function ask(
  sess: ClientHttp2Session,
  host: string,
  p: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = sess.request(
      {
        ':method': body === undefined ? 'GET' : 'POST',
        ':path': p,
        ':authority': host,
        ...headers,
        ...(body !== undefined ? { 'content-length': String(body.length) } : {}),
      },
      { endStream: body === undefined },
    );
    if (body !== undefined) s.end(body);
    let status = 0;
    const chunks: Buffer[] = [];
    s.on('response', (h) => (status = Number(h[':status'])));
    s.on('data', (b: Buffer) => chunks.push(b));
    s.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
    s.on('error', reject);
  });
}

t.test('no strings made in the round: every read and header block takes the fallback', async (t) => {
  const before = limitRoundTexts(0);
  t.equal(before, 256, 'the addon is loaded and its limit was 256');
  t.teardown(() => void limitRoundTexts(before ?? 256));
  const be = await rawBackend();
  t.teardown(() => new Promise((r) => be.server.close(r)));
  const src = rawRoute(be.port);
  src.put(withAnnotations(ingress('gen', [rule('gen.test', path('/', 'Prefix', 'raw'))]), ALLOW));
  const { ing } = await loopbackIngress(t, src);
  /** the backend's last head for `u`, lines after the request line, lower-cased names */
  const seen = (u: string) =>
    be.heads
      .findLast((h) => h.includes(` ${u} `))
      ?.split('\r\n')
      .slice(1)
      .map((l) => l.toLowerCase());

  t.test('plain HTTP/1.1, keep-alive: the heads read from the front and from the backend', async (t) => {
    for (const u of ['/p1', '/p2?q=1', '/p3']) {
      const r = await request(`http://127.0.0.1:${ing.ports.http}${u}`, {
        headers: { host: 'raw.test', 'x-kept': 'v-é', accept: 'text/plain' },
      });
      t.equal(r.statusCode, 200, u);
      t.equal(await r.body.text(), `GET ${u} body=`, `${u}: the backend's answer`);
      t.equal(r.headers.server, 'kdp');
      t.ok(seen(u)?.includes('x-kept: v-é'), `${u}: the field went upstream as it came`);
      t.ok(
        seen(u)?.some((l) => l.startsWith('x-forwarded-for: 127.0.0.1')),
        `${u}: the front's forwarded fields were added`,
      );
    }
  });

  t.test('HTTP/1.1 over the addon TLS', async (t) => {
    const got = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: ing.ports.https,
          servername: 'raw.test',
          path: '/tls1',
          headers: { host: 'raw.test', 'x-tls': '1' },
          rejectUnauthorized: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (b: Buffer) => chunks.push(b));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        },
      );
      req.on('error', reject);
      req.end();
    });
    t.equal(got.status, 200);
    t.equal(got.body, 'GET /tls1 body=');
    t.ok(seen('/tls1')?.includes('x-tls: 1'));
  });

  t.test('HTTP/2: lane and relayed streams, header blocks as bytes', async (t) => {
    const sess = h2Connect(`https://127.0.0.1:${ing.ports.https}`, {
      rejectUnauthorized: false,
      servername: 'raw.test',
    });
    sess.on('error', () => {});
    t.teardown(() => sess.destroy());
    const many = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ask(sess, 'raw.test', `/h2-${i}`, { 'x-i': String(i) })),
    );
    many.forEach((r, i) => {
      t.equal(r.status, 200, `/h2-${i}`);
      t.equal(r.body, `GET /h2-${i} body=`);
      t.ok(seen(`/h2-${i}`)?.includes(`x-i: ${i}`), `/h2-${i}: its field went upstream`);
      t.same(
        seen(`/h2-${i}`)
          ?.map((l) => l.slice(0, l.indexOf(':')))
          .sort(),
        LANE_FIELDS,
        `/h2-${i}: the lane's upstream fields, no other`,
      );
    });
    const post = await ask(sess, 'raw.test', '/h2-post', { 'x-p': 'yes' }, 'hello');
    t.equal(post.body, 'POST /h2-post body=hello', 'a body: relayed to the general path');
    const gen = await ask(sess, 'gen.test', '/h2-gen', { cookie: 'a=1' });
    t.equal(gen.status, 200);
    t.equal(gen.body, 'GET /h2-gen body=', 'the allow-listed route');
    t.ok(seen('/h2-gen')?.includes('cookie: a=1'));
  });
});
