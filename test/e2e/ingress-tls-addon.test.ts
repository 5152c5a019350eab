// HTTP/1.1 over TLS terminated by the native addon (native/tcp/kdp_tcp.c, ingress/tcp-io.ts): the HTTPS port
// peeks each ClientHello; well-formed ones get the addon's SSL (HTTP/2 ones: ingress-h2-addon), the rest node:tls. Real
// TLS clients (node:tls, curl) on loopback against a raw backend: big bodies to a client that stops reading,
// uploads and upgrades handed to node:http over the addon's TLS, a ClientHello split over two TCP writes, bytes
// that are not TLS, a client whose records go bad mid-connection, session resumption, the writes a new connection
// takes (tickets with the response, the last response with the close_notify), a client that leaves mid-response,
// many connections at once, and --tls-io node.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { request } from 'undici';
import { needsRoot } from '../helpers/gate.ts';
import { loopbackIngress, rawRoute } from '../helpers/loopback-ingress.ts';
import { BIG_SHA256, HUGE, rawBackend } from '../helpers/raw-backend.ts';
import { exchange, statuses } from '../helpers/raw-http.ts';
import { run } from '../../src/common/exec-adapter.ts';
import { startIngress } from '../../ingress/ingress.ts';
import { selfSigned } from '../../ingress/default-cert.ts';
import { ingress, path, rule, tlsSecret } from '../../ingress/testing/fixtures.ts';

const HUGE_SHA256 = createHash('sha256').update(HUGE).digest('hex');
/** Every status in `out`: the raw backend's bodies end without a newline, so a status line may not start one. */
const allStatuses = (out: string): number[] => [...out.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

if (needsRoot(t, 'nothing but loopback; kept with the other ingress e2e files')) {
  t.test('HTTP/1.1 over TLS in the addon', async (t) => {
    const be = await rawBackend();
    t.teardown(() => new Promise((r) => (be.server.close(r), setTimeout(r, 500))));
    const src = rawRoute(be.port);
    const { ing } = await loopbackIngress(t, src);
    const port = ing.ports.https;
    const open: Socket[] = [];
    t.teardown(() => open.forEach((s) => s.destroy()));

    const terminated = async () => {
      const text = await (await request(`http://127.0.0.1:${ing.ports.metrics}/metrics`)).body.text();
      const n = (by: string) =>
        Number(new RegExp(`kdp_ingress_tls_connections_total\\{terminated_by="${by}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
      return { addon: n('addon'), node: n('node') };
    };
    const tls = (o: ConnectionOptions = {}): TLSSocket => {
      const s = tlsConnect({
        port,
        host: '127.0.0.1',
        servername: 'raw.test',
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'],
        ...o,
      });
      open.push(s);
      return s;
    };
    /** The whole response to one GET with Connection: close, read by a client that stops reading for `stallMs`. */
    const getAll = (path: string, stallMs = 0) =>
      new Promise<{ head: string; body: Buffer; ended: boolean; error?: Error }>((resolve) => {
        const s = tls();
        const parts: Buffer[] = [];
        const finish = (ended: boolean, error?: Error) => {
          const all = Buffer.concat(parts);
          const end = all.indexOf('\r\n\r\n');
          resolve({
            head: all.toString('latin1', 0, end),
            body: all.subarray(end + 4),
            ended,
            ...(error ? { error } : {}),
          });
        };
        s.once('secureConnect', () => {
          s.write(`GET ${path} HTTP/1.1\r\nHost: raw.test\r\nConnection: close\r\n\r\n`);
          if (stallMs > 0) {
            s.pause();
            setTimeout(() => s.resume(), stallMs);
          }
        });
        s.on('data', (b: Buffer) => parts.push(b));
        s.once('end', () => finish(true));
        s.once('error', (e) => finish(false, e));
      });

    t.test("a GET is the addon's: ALPN http/1.1, TLS 1.3 and 1.2, none offered", async (t) => {
      const before = await terminated();
      for (const o of [
        {},
        { maxVersion: 'TLSv1.2' as const },
        { ALPNProtocols: [] as string[] },
        { servername: '' }, // no SNI: the default certificate
      ]) {
        const s = tls(o);
        const out = await exchange(s, 'secureConnect', ['GET /one HTTP/1.1\r\nHost: raw.test\r\n\r\n'], {
          answers: 1,
        });
        t.same(statuses(out), [200], JSON.stringify(o));
        t.match(out, /GET \/one body=$/);
      }
      const after = await terminated();
      t.equal(after.addon - before.addon, 4, 'all four terminated by the addon');
      t.equal(after.node - before.node, 0);
      const s = tls({ maxVersion: 'TLSv1.2' });
      await new Promise((r) => s.once('secureConnect', r));
      t.equal(s.getProtocol(), 'TLSv1.2');
      t.equal(s.alpnProtocol, 'http/1.1', 'ALPN answered');
      s.destroy();
      const s3 = tls({ ALPNProtocols: [] });
      await new Promise((r) => s3.once('secureConnect', r));
      t.equal(s3.getProtocol(), 'TLSv1.3');
      t.equal(s3.alpnProtocol, false, 'no ALPN offered, none answered');
      s3.destroy();
    });

    t.test('12 MiB to a client that stops reading: the body comes whole, framed as it came', async (t) => {
      const before = await terminated();
      const plain = await getAll('/huge', 600);
      t.ok(plain.ended, 'ended cleanly (close_notify)');
      t.match(plain.head, /^HTTP\/1\.1 200 /);
      t.equal(plain.body.length, HUGE.length);
      t.equal(createHash('sha256').update(plain.body).digest('hex'), HUGE_SHA256);
      const ch = await getAll('/big-chunked', 300);
      t.match(ch.head, /\r\ntransfer-encoding: chunked/i);
      const dechunked: Buffer[] = [];
      for (let p = 0; ;) {
        const eol = ch.body.indexOf('\r\n', p);
        const size = parseInt(ch.body.toString('latin1', p, eol), 16);
        if (size === 0) break;
        dechunked.push(ch.body.subarray(eol + 2, eol + 2 + size));
        p = eol + 2 + size + 2;
      }
      t.equal(createHash('sha256').update(Buffer.concat(dechunked)).digest('hex'), BIG_SHA256);
      // a body until close: its end is the TLS close_notify (OpenSSL 3 clients call an EOF without it an error)
      const untilClose = await getAll('/until-close');
      t.notOk(untilClose.error, 'no unexpected EOF');
      t.equal(untilClose.body.toString(), 'all of it until close');
      t.equal((await terminated()).addon - before.addon, 3);
    });

    t.test("POST, upload and pipelining: node:http over the addon's TLS, same connection", async (t) => {
      const body = 'p'.repeat(300_000);
      const s = tls();
      const out = await exchange(
        s,
        'secureConnect',
        [
          `POST /up HTTP/1.1\r\nHost: raw.test\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
          'GET /after HTTP/1.1\r\nHost: raw.test\r\n\r\n',
        ],
        { answers: 1, quietMs: 1000 },
      );
      t.same(allStatuses(out), [200, 200]);
      t.ok(out.includes(`POST /up body=${body}`), 'the 300 KB body relayed');
      t.match(out, /GET \/after body=$/);
      // curl, keep-alive: a POST then two GETs on one connection
      const curl = await run(
        [
          'curl',
          '-sS',
          '-k',
          '--http1.1',
          '--max-time',
          '10',
          '--resolve',
          `raw.test:${port}:127.0.0.1`,
          '-d',
          'hello',
          `https://raw.test:${port}/c1`,
          '--next',
          '-k',
          '--http1.1',
          '--resolve',
          `raw.test:${port}:127.0.0.1`,
          `https://raw.test:${port}/c2`,
          `https://raw.test:${port}/c3`,
        ],
        { allowFailure: true },
      );
      t.equal(curl.code, 0, curl.stderr);
      t.match(curl.stdout, /POST \/c1 body=hello\s*GET \/c2 body=\s*GET \/c3 body=/);
    });

    t.test('a ClientHello split over two writes goes to node:tls, and is served', async (t) => {
      // a loopback relay that holds the client's first 11 bytes back for 200 ms
      const relay = createServer((c) => {
        const up = connect(port, '127.0.0.1');
        open.push(c, up);
        let first = true;
        c.on('data', (b: Buffer) => {
          if (!first) return void up.write(b);
          first = false;
          up.write(b.subarray(0, 11));
          c.pause();
          setTimeout(() => (up.write(b.subarray(11)), c.resume()), 200);
        });
        up.pipe(c);
        c.on('error', () => up.destroy());
        up.on('error', () => c.destroy());
      });
      await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
      t.teardown(() => new Promise((r) => relay.close(r)));
      const before = await terminated();
      const s = tls({ port: (relay.address() as AddressInfo).port });
      const out = await exchange(s, 'secureConnect', ['GET /split HTTP/1.1\r\nHost: raw.test\r\n\r\n'], {
        answers: 1,
      });
      t.same(statuses(out), [200]);
      const after = await terminated();
      t.equal(after.node - before.node, 1, 'node:tls took it');
      t.equal(after.addon - before.addon, 0);
    });

    t.test('bytes that are not TLS: node:tls answers them; bad records later: the addon closes', async (t) => {
      const before = await terminated();
      const plain = connect(port, '127.0.0.1');
      open.push(plain);
      const out = await exchange(plain, 'connect', ['GET / HTTP/1.1\r\nHost: raw.test\r\n\r\n']);
      t.notMatch(out, /^HTTP\/1\.1 200/, 'no HTTP answer over a TLS port');
      t.equal((await terminated()).node - before.node, 1, 'node:tls took it');
      // a TLS connection whose next record is garbage: closed (after an alert), nothing else disturbed
      const raw = connect(port, '127.0.0.1');
      open.push(raw);
      const s = tls({ socket: raw });
      await new Promise((r) => s.once('secureConnect', r));
      const closed = new Promise((r) => raw.once('close', r));
      s.on('error', () => {});
      raw.write(Buffer.concat([Buffer.from([23, 3, 3, 0, 64]), randomBytes(64)]));
      const timer = setTimeout(() => raw.destroy(new Error('not closed by the server')), 5000);
      await closed;
      clearTimeout(timer);
      t.pass('the server closed the connection');
      const again = await getAll('/still');
      t.match(again.head, /^HTTP\/1\.1 200 /, 'still serving');
    });

    t.test('session resumption (TLS 1.3 ticket, TLS 1.2 ticket)', async (t) => {
      for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
        const first = tls({ maxVersion });
        const session = new Promise<Buffer>((resolve) => first.once('session', resolve));
        // (a TLS 1.3 ticket comes after the handshake: it is in by the time the response is)
        const out1 = await exchange(first, 'secureConnect', ['GET /first HTTP/1.1\r\nHost: raw.test\r\n\r\n'], {
          answers: 1,
        });
        t.same(statuses(out1), [200]);
        const second = tls({ maxVersion, session: await session });
        let reused: boolean | undefined;
        second.once('secureConnect', () => (reused = second.isSessionReused()));
        const out = await exchange(second, 'secureConnect', ['GET /resumed HTTP/1.1\r\nHost: raw.test\r\n\r\n'], {
          answers: 1,
        });
        t.equal(reused, true, `${maxVersion}: session reused`);
        t.same(statuses(out), [200], `${maxVersion}: served on the resumed session`);
      }
    });

    t.test('TLS 1.3 tickets go out with the response; a last response with the close_notify', async (t) => {
      // The client talks to the ingress through a relay whose socket to the ingress stays open (the server's FIN
      // is not passed on): the kernel's count of data segments that socket received (ss: data_segs_in) is the
      // number of write(2)s the ingress made to the client, each under the loopback MTU.
      const relay = createServer({ allowHalfOpen: true }, (c) => {
        const up = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
        ups.push(up);
        c.on('data', (d) => up.write(d));
        up.on('data', (d) => c.write(d));
        c.on('error', () => {});
        up.on('error', () => {});
      });
      const ups: Socket[] = [];
      t.teardown(() => (ups.forEach((s) => s.destroy()), relay.close()));
      await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
      const relayPort = (relay.address() as AddressInfo).port;
      /** data segments the ingress sent on the relay's last connection to it */
      const segments = async (): Promise<number> => {
        const up = ups.at(-1)!;
        const r = await run(['ss', '-tinH', 'src', `127.0.0.1:${up.localPort}`, 'dst', `127.0.0.1:${port}`]);
        const m = /\bdata_segs_in:(\d+)/.exec(r.stdout);
        if (!m) throw new Error(`ss: no data_segs_in for the relay's socket: ${r.stdout}`);
        return Number(m[1]);
      };
      type Version = 'TLSv1.3' | 'TLSv1.2';
      /** One connection through the relay: its response, its ticket (if one came) and whether it resumed `session`. */
      const viaRelay = (maxVersion: Version, request: string | undefined, session?: Buffer) =>
        new Promise<{ out: string; ticket: Buffer | undefined; reused: boolean; segs: number }>((resolve, reject) => {
          const s = tlsConnect({
            port: relayPort,
            host: '127.0.0.1',
            servername: 'raw.test',
            rejectUnauthorized: false,
            ALPNProtocols: ['http/1.1'],
            maxVersion,
            ...(session ? { session } : {}),
          });
          open.push(s);
          let out = '';
          let ticket: Buffer | undefined;
          let reused = false;
          const limit = setTimeout(() => reject(new Error(`no answer: ${JSON.stringify(out)}`)), 10_000);
          const finish = () => {
            clearTimeout(limit);
            segments().then((segs) => resolve({ out, ticket, reused, segs }), reject);
          };
          s.on('session', (b: Buffer) => {
            ticket = b;
            if (request === undefined) finish();
          });
          s.on('data', (d: Buffer) => {
            out += d.toString('latin1');
            // keep-alive: done once the body (the raw backend's "GET /path body=") is in
            if (request !== undefined && !request.includes('close') && out.includes(' body=')) finish();
          });
          s.on('end', finish);
          s.on('error', reject);
          s.once('secureConnect', () => {
            reused = s.isSessionReused();
            if (request !== undefined) s.write(request);
          });
        });
      const close = (p: string) => `GET ${p} HTTP/1.1\r\nHost: raw.test\r\nConnection: close\r\n\r\n`;

      // TLS 1.3, Connection: close: the server's flight, then ticket + response + close_notify in one write
      const one = await viaRelay('TLSv1.3', close('/close13'));
      t.match(one.out, /^HTTP\/1\.1 200 [^]*GET \/close13 body=$/, 'TLS 1.3 close: the response');
      t.ok(one.ticket, 'TLS 1.3 close: a session ticket');
      t.equal(one.segs, 2, 'TLS 1.3 close: 2 writes (the flight; ticket, response and close_notify)');
      const resumed = await viaRelay('TLSv1.3', close('/resumed13'), one.ticket);
      t.equal(resumed.reused, true, 'TLS 1.3: the ticket that came with the response resumes');
      t.match(resumed.out, /GET \/resumed13 body=$/);
      t.equal(resumed.segs, 2, 'TLS 1.3 resumed, close: 2 writes');
      // keep-alive: the ticket comes with the first response
      const ka = await viaRelay('TLSv1.3', 'GET /ka13 HTTP/1.1\r\nHost: raw.test\r\n\r\n');
      t.match(ka.out, /^HTTP\/1\.1 200 [^]*GET \/ka13 body=$/, 'TLS 1.3 keep-alive: the response');
      t.ok(ka.ticket, 'TLS 1.3 keep-alive: a session ticket');
      t.equal(ka.segs, 2, 'TLS 1.3 keep-alive: 2 writes (the flight; ticket and response)');
      // no request: the tickets do not wait for one (they go out on their own, ~25 ms after the handshake)
      const idle = await viaRelay('TLSv1.3', undefined);
      t.ok(idle.ticket, 'TLS 1.3, no request: a session ticket all the same');
      t.equal(idle.segs, 2, 'TLS 1.3, no request: 2 writes (the flight; the ticket)');
      t.equal((await viaRelay('TLSv1.3', close('/idle13'), idle.ticket)).reused, true, 'and it resumes');
      // TLS 1.2: its ticket is part of the handshake's last flight (not held); the last response and the
      // close_notify go out together
      const v12 = await viaRelay('TLSv1.2', close('/close12'));
      t.match(v12.out, /GET \/close12 body=$/, 'TLS 1.2 close: the response');
      t.equal(v12.segs, 3, 'TLS 1.2 close: 3 writes (2 handshake flights; response and close_notify)');
    });

    t.test('a client leaving mid-response, then 40 connections x 5 requests at once', async (t) => {
      const s = tls();
      await new Promise((r) => s.once('secureConnect', r));
      s.write('GET /huge HTTP/1.1\r\nHost: raw.test\r\n\r\n');
      await new Promise((r) => s.once('data', r));
      s.destroy();
      const conns = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          exchange(
            tls(),
            'secureConnect',
            [Array.from({ length: 5 }, (_, j) => `GET /c${i}-${j} HTTP/1.1\r\nHost: raw.test\r\n\r\n`).join('')],
            { answers: 1, quietMs: 1000 },
          ),
        ),
      );
      for (const [i, out] of conns.entries()) {
        t.same(allStatuses(out), [200, 200, 200, 200, 200], `connection ${i}`);
        t.match(out, new RegExp(`GET /c${i}-4 body=$`));
      }
    });

    t.test(
      "the addon accepts: 30 one-request connections, each client's address and the port to the backend",
      async (t) => {
        const before = await terminated();
        const seen = be.heads.length;
        const outs = await Promise.all(
          Array.from({ length: 30 }, (_, i) => getAll(`/accept-${i}`).then((r) => ({ i, ...r }))),
        );
        for (const { i, head, body, ended } of outs) {
          t.match(head, /^HTTP\/1\.1 200 /, `connection ${i}: 200`);
          t.equal(body.toString(), `GET /accept-${i} body=`, `connection ${i}: its own answer`);
          t.equal(ended, true, `connection ${i}: closed after Connection: close`);
        }
        const heads = be.heads.slice(seen).filter((h) => h.startsWith('GET /accept-'));
        t.equal(heads.length, 30, 'every request reached the backend once');
        for (const h of heads) {
          t.match(h, /\r\nx-forwarded-for: 127\.0\.0\.1\r\n/i, 'the client address (from accept)');
          t.match(h, new RegExp(`\\r\\nx-forwarded-port: ${port}\\r\\n`, 'i'), 'the HTTPS port');
        }
        const after = await terminated();
        t.equal(after.addon - before.addon, 30, 'all 30 terminated by the addon');
        t.equal(after.node, before.node, 'none by node:tls');
      },
    );
  });

  t.test("the addon's listening socket closes with the ingress; connections it accepted end", async (t) => {
    const be = await rawBackend();
    t.teardown(() => new Promise((r) => (be.server.close(r), setTimeout(r, 500))));
    const ing = await startIngress(rawRoute(be.port), {
      httpPort: 0,
      httpsPort: 0,
      metricsPort: 0,
      bind: '127.0.0.1',
      processMetrics: false,
    });
    let closed = false;
    t.teardown(() => (closed ? undefined : ing.close()));
    const port = ing.ports.https;
    const tlsOpts = { port, host: '127.0.0.1', servername: 'raw.test', rejectUnauthorized: false };
    // a kept-alive connection, idle when the ingress stops
    const s = tlsConnect({ ...tlsOpts, ALPNProtocols: ['http/1.1'] });
    const out = await exchange(s, 'secureConnect', ['GET /k HTTP/1.1\r\nHost: raw.test\r\n\r\n'], { answers: 1 });
    t.same(statuses(out), [200]);
    const ended = new Promise<boolean>((r) => (s.once('close', () => r(true)), setTimeout(() => r(false), 5000)));
    await ing.close();
    closed = true;
    t.equal(await ended, true, 'the idle connection was closed');
    const refused = await new Promise<string>((r) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => (c.destroy(), r('connected')));
      c.once('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'));
    });
    t.equal(refused, 'ECONNREFUSED', 'the HTTPS port is closed');
  });

  t.test('shared ticket keys: a session resumes under the certificate it was made with only', async (t) => {
    const be = await rawBackend();
    t.teardown(() => new Promise((r) => (be.server.close(r), setTimeout(r, 500))));
    const src = rawRoute(be.port);
    const other = await selfSigned('other.test', ['other.test'], 2);
    src.put(tlsSecret('other-tls', other.certPem, other.keyPem));
    src.put(
      ingress('other', [rule('other.test', path('/', 'Prefix', 'raw'))], (i) => {
        i.tls = [{ hosts: ['other.test'], secretName: 'other-tls' }];
      }),
    );
    const { ing } = await loopbackIngress(t, src, { ticketKeys: randomBytes(128) });
    /** a GET on a new connection: whether it resumed `session`, the certificate's fingerprint, the statuses */
    const get = async (servername: string, maxVersion: 'TLSv1.3' | 'TLSv1.2', session?: Buffer | undefined) => {
      const s = tlsConnect({
        port: ing.ports.https,
        host: '127.0.0.1',
        servername,
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'],
        maxVersion,
        ...(session ? { session } : {}),
      });
      // (a TLS 1.3 ticket comes after the handshake: it is in by the time the response is)
      const ticket = new Promise<Buffer>((resolve) => s.once('session', resolve));
      let reused = false;
      let fingerprint = '';
      s.once('secureConnect', () => {
        reused = s.isSessionReused();
        fingerprint = s.getPeerCertificate().fingerprint256;
      });
      const out = await exchange(s, 'secureConnect', [`GET /s HTTP/1.1\r\nHost: ${servername}\r\n\r\n`], {
        answers: 1,
      });
      // (a TLS 1.2 resumption may come without a new ticket)
      const late = new Promise<undefined>((r) => setTimeout(() => r(undefined), 1000));
      return { reused, fingerprint, statuses: statuses(out), ticket: await Promise.race([ticket, late]) };
    };
    const rotated = await selfSigned('other.test', ['other.test'], 2);
    for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
      const raw = await get('raw.test', maxVersion);
      t.same(raw.statuses, [200]);
      t.ok(raw.ticket, `${maxVersion}: a ticket for raw.test`);
      t.equal((await get('raw.test', maxVersion, raw.ticket)).reused, true, `${maxVersion}: resumed on its host`);
      const cross = await get('other.test', maxVersion, raw.ticket);
      t.equal(cross.reused, false, `${maxVersion}: raw.test's session not resumed on other.test`);
      t.same(cross.statuses, [200], `${maxVersion}: other.test served`);
      // the same host after its certificate changed: the old certificate's session makes a full handshake
      const before = await get('other.test', maxVersion);
      t.ok(before.ticket, `${maxVersion}: a ticket for other.test`);
      const next = maxVersion === 'TLSv1.3' ? rotated : other;
      src.put(tlsSecret('other-tls', next.certPem, next.keyPem));
      let after = await get('other.test', maxVersion);
      for (let i = 0; i < 100 && after.fingerprint === before.fingerprint; i++) {
        await new Promise((r) => setTimeout(r, 50));
        after = await get('other.test', maxVersion);
      }
      t.not(after.fingerprint, before.fingerprint, `${maxVersion}: the new certificate is served`);
      const old = await get('other.test', maxVersion, before.ticket);
      t.equal(old.reused, false, `${maxVersion}: a session of the old certificate is not resumed`);
      t.equal(old.fingerprint, after.fingerprint, `${maxVersion}: the new certificate presented to it`);
      t.same(old.statuses, [200]);
    }
  });

  t.test("--tls-io node: every TLS connection is node:tls's", async (t) => {
    const be = await rawBackend();
    t.teardown(() => new Promise((r) => (be.server.close(r), setTimeout(r, 500))));
    const src = rawRoute(be.port);
    const { ing } = await loopbackIngress(t, src, { tlsIo: 'node' });
    const s = tlsConnect({
      port: ing.ports.https,
      host: '127.0.0.1',
      servername: 'raw.test',
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    });
    const out = await exchange(s, 'secureConnect', ['GET /n HTTP/1.1\r\nHost: raw.test\r\n\r\n'], { answers: 1 });
    t.same(statuses(out), [200]);
    const text = await (await request(`http://127.0.0.1:${ing.ports.metrics}/metrics`)).body.text();
    t.notMatch(text, /kdp_ingress_tls_connections_total\{terminated_by="addon"\} [1-9]/, 'none in the addon');
  });
}
