// The fast front's two plain-TCP transports side by side (ingress/tcp-io.ts): `kdp ingress --tcp-io batch` as a
// child process reading its plain sockets in batches through the native addon (auto's choice when it is built),
// and the same with `--tcp-io node` (node's reads in place). Each gets the same requests against a raw backend:
// keep-alive GETs; 30 clients that close after their answer and 20 that reset (no proxy socket left in
// CLOSE-WAIT); pipelined GET, POST (handed to node:http) and GET on one connection; a request sent after a
// hand-off; 12 MiB bodies to clients that stop reading while other requests run. Every other ingress and gateway
// e2e file (WebSockets, h2c, smuggling, workers...) runs in-process on auto, so on the batched transport.
// Loopback only.
import t from 'tap';
import { createHash } from 'node:crypto';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { needsRoot } from '../helpers/gate.ts';
import { kdpIngressArgv, oneRouteManifests } from '../helpers/ingress-manifests.ts';
import { freePort } from '../helpers/ports.ts';
import { exchange, stalledBody } from '../helpers/raw-http.ts';
import { chunked, HUGE, rawBackend } from '../helpers/raw-backend.ts';
import { spawnChild } from '../../src/common/exec-adapter.ts';
import {
  adopt,
  GATHER_COLON,
  GATHER_CRLF,
  GATHER_ROOM,
  gatherSpec,
  gatherString,
  gatherText,
  openTcpIo,
  writeGather,
} from '../../ingress/tcp-io.ts';
import { until } from '../helpers/wait.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const execFileP = promisify(execFile);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

if (needsRoot(t, 'nothing but loopback; kept with the other ingress e2e files')) {
  const ARENA = Buffer.allocUnsafe(65536);
  t.test('the native addon is built and loads (the batched transport is the default)', async (t) => {
    t.ok(openTcpIo(ARENA), 'ingress/tcp-io.ts opens native/build/kdp_tcp.node');
  });

  t.test(
    'a closed socket whose file a child still holds is never read under its number, now another socket',
    async (t) => {
      // A is adopted, then handed to a child as fd 3 (so its file stays open and its epoll registration stays in
      // the set after we close it), then closed here. B is connected next and gets A's descriptor number. A's peer
      // has sent bytes nobody reads, so A's stale registration keeps firing: the addon must not read the number
      // for it (that would take B's bytes for a socket that is gone).
      t.ok(openTcpIo(ARENA));
      const peers: Socket[] = [];
      // closes with unread bytes reset the other side: nothing here reads errors
      const server = createServer((s) => {
        s.on('error', () => {});
        peers.push(s);
      });
      t.teardown(() => {
        for (const p of peers) p.destroy();
        server.close();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const at = (server.address() as AddressInfo).port;
      const fdOf = (s: Socket) => (s as unknown as { _handle: { fd: number } })._handle.fd;
      const connected = async () => {
        const s = connect(at, '127.0.0.1');
        s.on('error', () => {});
        await new Promise((r) => s.once('connect', r));
        await until(async () => (peers.length > 0 ? true : undefined), { timeoutMs: 5_000, what: 'the accept' });
        return { s, peer: peers.shift()! };
      };
      const a = await connected();
      t.ok(
        adopt(
          a.s,
          () => {},
          () => {},
        ),
        'A adopted',
      );
      const fdA = fdOf(a.s);
      const holder = spawn('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', a.s] });
      t.teardown(() => holder.kill('SIGKILL'));
      await new Promise((r) => holder.once('spawn', r));
      await new Promise<void>((r) => {
        a.s.once('close', () => r());
        a.s.destroy();
      });
      const b = await connected();
      t.equal(fdOf(b.s), fdA, `B has A's descriptor number (${fdA})`);
      let gotB = '';
      t.ok(
        adopt(
          b.s,
          (n, buf) => void (gotB += buf.toString('latin1', 0, n)),
          () => {},
        ),
        'B adopted',
      );
      a.peer.write('for A, who is gone');
      await new Promise((r) => setTimeout(r, 100));
      b.peer.write('for B');
      const ok = await until(async () => (gotB === 'for B' ? true : undefined), {
        timeoutMs: 3_000,
        what: "B's bytes",
      }).catch(() => false);
      t.ok(ok, `B reads its own bytes (got ${JSON.stringify(gotB)})`);
      b.s.destroy();
    },
  );

  t.test('gathered writes: the bytes gatherText stands for, whole and in order', async (t) => {
    // writeGather against gatherText over real sockets: pieces of a Buffer of this process (the addon reads it
    // by address) and of the read the addon is delivering (by its place in the arena), strings, CRLF and ": ";
    // writes past GATHER_ROOM (made as a string instead); a peer that stops reading, so that the kernel takes
    // part of a write and node queues the rest (and the writes after it)
    t.ok(openTcpIo(ARENA));
    const peers: Socket[] = [];
    const server = createServer((s) => void peers.push(s));
    t.teardown(() => {
      for (const p of peers) p.destroy();
      server.close();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const at = (server.address() as AddressInfo).port;
    const pair = async () => {
      const s = connect(at, '127.0.0.1');
      await new Promise((r) => s.once('connect', r));
      await until(async () => (peers.length > 0 ? true : undefined), { timeoutMs: 5_000, what: 'the accept' });
      const peer = peers.shift()!;
      const chunks: Buffer[] = [];
      peer.on('data', (b: Buffer) => chunks.push(b));
      return { s, peer, got: () => Buffer.concat(chunks).toString('latin1') };
    };
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const S = ['', 'host: a\r\nx-request-id: ', 'é-latin1 ÿ', 'x'.repeat(3000)] as const;
    /** n random pieces over `src` in gatherSpec's array; the text they stand for */
    const randomSpec = (src: Buffer, n: number): string => {
      const spec = gatherSpec(n);
      for (let i = 0; i < n; i++) {
        const kind = rand(6);
        if (kind < 3) {
          const from = rand(src.length + 1);
          spec[2 * i] = from;
          spec[2 * i + 1] = from + rand(src.length - from + 1);
        } else if (kind === 3) spec[2 * i] = gatherString(rand(4) as 0 | 1 | 2 | 3);
        else spec[2 * i] = kind === 4 ? GATHER_CRLF : GATHER_COLON;
      }
      return gatherText(src, spec, n, ...S);
    };

    // 1. Buffers of this process, some writes over GATHER_ROOM, the peer reading nothing until the end: writes
    // until node queues (the kernel's buffers are full), then 100 more
    const a = await pair();
    t.ok(
      adopt(
        a.s,
        () => {},
        () => {},
      ),
      'adopted: its writes go to the addon',
    );
    a.peer.pause();
    let want = '';
    let big = 0;
    let after = 0;
    for (let w = 0; w < 20_000 && after < 100; w++) {
      if (a.s.writableLength > 0) after++;
      const src = Buffer.alloc(1 + rand(20_000));
      for (let i = 0; i < src.length; i++) src[i] = 32 + ((i * 7 + w) % 200);
      const n = 1 + rand(12);
      const text = randomSpec(src, n);
      if (text.length > GATHER_ROOM) big++;
      want += text;
      writeGather(a.s, src, n, ...S);
    }
    t.ok(a.s.writableLength > 0, `the kernel did not take it all: node queued ${a.s.writableLength} bytes`);
    t.ok(big > 0, `${big} writes over GATHER_ROOM`);
    a.peer.resume();
    await until(async () => (a.got().length >= want.length ? true : undefined), {
      timeoutMs: 10_000,
      what: 'every byte',
    });
    t.equal(a.got().length, want.length, `${want.length} bytes`);
    t.ok(a.got() === want, 'the bytes gatherText stands for, in order');

    // 2. pieces of the read being delivered (its place in the arena): each read of B echoed to C, gathered
    const b = await pair();
    const c = await pair();
    t.ok(
      adopt(
        c.s,
        () => {},
        () => {},
      ),
      'C adopted',
    );
    let echoed = '';
    t.ok(
      adopt(
        b.s,
        (len, buf) => {
          const read = len === buf.length ? buf : buf.subarray(0, len);
          const n = 1 + rand(8);
          echoed += randomSpec(read, n);
          writeGather(c.s, read, n, ...S);
        },
        () => {},
      ),
      'B adopted',
    );
    for (let w = 0; w < 50; w++) {
      const bytes = Buffer.alloc(1 + rand(3000));
      for (let i = 0; i < bytes.length; i++) bytes[i] = 65 + ((i + w) % 26);
      b.peer.write(bytes);
      await new Promise((r) => setTimeout(r, 2));
    }
    await until(async () => (echoed.length > 0 && c.got().length >= echoed.length ? true : undefined), {
      timeoutMs: 10_000,
      what: 'the echoes',
    });
    t.ok(c.got() === echoed, `${echoed.length} bytes gathered from the reads, as gatherText made them`);
    for (const x of [a, b, c]) x.s.destroy();
  });

  t.test('--tcp-io takes auto|batch|node', async (t) => {
    const bad = spawnChild([process.execPath, MAIN, 'ingress', '--manifests', tmpdir(), '--tcp-io', 'epoll']);
    t.not(await bad.exited, 0, 'an unknown value is refused');
    t.match(bad.output(), /--tcp-io takes auto\|batch\|node/);
  });

  for (const transport of ['native', 'node'] as const) {
    t.test(`plain sockets read by ${transport === 'native' ? 'the addon' : 'node'}`, async (t) => {
      const be = await rawBackend();
      t.teardown(() => new Promise((r) => be.server.close(r)));
      const dir = await mkdtemp(join(tmpdir(), 'kdp-tcpio-'));
      t.teardown(() => rm(dir, { recursive: true, force: true }));
      await writeFile(join(dir, 'm.json'), JSON.stringify(oneRouteManifests('raw', 'raw.test', be.port)));
      const port = await freePort();
      const child = spawnChild(
        kdpIngressArgv(
          { manifests: dir, http: port, https: await freePort() },
          '--healthz-port=-1',
          '--tcp-io',
          transport === 'native' ? 'batch' : 'node',
        ),
      );
      t.teardown(() => child.kill('SIGKILL'));
      const get = async (p: string) => {
        const r = await request(`http://127.0.0.1:${port}${p}`, { headers: { host: 'raw.test' } });
        return `${r.statusCode} ${await r.body.text()}`;
      };
      await until(async () => ((await get('/up').catch(() => '')) === '200 GET /up body=' ? true : undefined), {
        timeoutMs: 30_000,
        what: `kdp ingress (${transport}) serving: ${child.output().slice(-400)}`,
      });

      for (let i = 0; i < 20; i++) t.equal(await get(`/k${i}`), `200 GET /k${i} body=`);

      // clients that close after their answer: the proxy closes its side at once (the idle sweep would take
      // 75 s). Counted as the proxy's sockets on the HTTP port (ss, read-only): none left in CLOSE-WAIT (the
      // client's FIN seen, ours never sent) and no more established ones than before
      const accepted = async (state: 'established' | 'close-wait') =>
        (await execFileP('ss', ['-Htn', 'state', state, `( sport = :${port} )`])).stdout.split('\n').filter(Boolean)
          .length;
      const before = await accepted('established');
      /** none in CLOSE-WAIT and no more established than before, within 5 s; the counts as a message */
      const settled = async (what: string): Promise<[boolean, string]> => {
        const ok = await until(
          async () =>
            (await accepted('close-wait')) === 0 && (await accepted('established')) <= before ? true : undefined,
          { timeoutMs: 5_000, what },
        ).catch(() => false);
        return [
          ok,
          `${await accepted('established')} established (${before} before), ${await accepted('close-wait')} in CLOSE-WAIT`,
        ];
      };
      await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          exchange(connect(port, '127.0.0.1'), 'connect', [`GET /c${i} HTTP/1.1\r\nHost: raw.test\r\n\r\n`], {
            answers: 1,
            quietMs: 50,
          }),
        ),
      );
      const [closed, afterClose] = await settled('the proxy closing connections its clients closed');
      t.ok(closed, `proxy sockets on the HTTP port: ${afterClose}`);

      // clients that reset (RST) with half a head sent, or with a request in flight: the read error closes the
      // proxy's socket, and the proxy keeps serving
      await Promise.all(
        Array.from(
          { length: 20 },
          (_, i) =>
            new Promise<void>((resolve) => {
              const c = connect(port, '127.0.0.1');
              c.on('error', () => {});
              c.once('connect', () => {
                c.write(i % 2 ? `GET /r${i} HTTP/1.1\r\nHost: raw.test\r\n\r\n` : 'GET /half HTTP/1.1\r\nHo');
                setTimeout(() => {
                  c.resetAndDestroy();
                  resolve();
                }, 20);
              });
            }),
        ),
      );
      const [reset, afterReset] = await settled('the proxy closing connections its clients reset');
      t.ok(reset, `after resets: ${afterReset}`);
      t.equal(await get('/after-reset'), '200 GET /after-reset body=', 'still serving after the resets');

      const out = await exchange(
        connect(port, '127.0.0.1'),
        'connect',
        [
          'GET /one HTTP/1.1\r\nHost: raw.test\r\n\r\n' +
            'POST /two HTTP/1.1\r\nHost: raw.test\r\nContent-Length: 5\r\n\r\nhello' +
            'GET /three HTTP/1.1\r\nHost: raw.test\r\n\r\n',
        ],
        { answers: 3 },
      );
      t.same(
        [...out.matchAll(/(GET|POST) \/([a-z]+) body=([a-z]*)/g)].map((m) => m[0]),
        ['GET /one body=', 'POST /two body=hello', 'GET /three body='],
        'pipelined, with a hand-off to node:http in the middle',
      );

      // after a hand-off node reads the socket again: a request sent later on it is answered
      const s = connect(port, '127.0.0.1');
      t.teardown(() => s.destroy());
      let got = '';
      s.on('data', (b: Buffer) => (got += b.toString('latin1')));
      await new Promise((r) => s.once('connect', r));
      s.write('POST /first HTTP/1.1\r\nHost: raw.test\r\nContent-Length: 2\r\n\r\nab');
      await until(async () => (got.includes('POST /first body=ab') ? true : undefined), {
        timeoutMs: 10_000,
        what: 'the handed-off answer',
      });
      s.write('GET /later HTTP/1.1\r\nHost: raw.test\r\n\r\n');
      await until(async () => (got.includes('GET /later body=') ? true : undefined), {
        timeoutMs: 10_000,
        what: 'an answer to bytes sent after the hand-off',
      });
      t.pass('bytes sent after the hand-off are read by node');

      // the slow clients start reading only once 21 other requests have run (400 ms alone saw 3 in one CI run):
      // the writes to them stay backed up the whole time
      const meanwhile = () =>
        until(async () => (others > 20 ? true : undefined), { timeoutMs: 20_000, what: '21 other requests' });
      const slow = (p: string) => stalledBody(port, p, 'raw.test', (c) => t.teardown(() => c.destroy()), meanwhile);
      let stop = false;
      let others = 0;
      let wrong = 0;
      const noise = (async () => {
        while (!stop) {
          if ((await get(`/n${others}`)) !== `200 GET /n${others} body=`) wrong++;
          others++;
        }
      })();
      const [plain, framed] = await Promise.all([slow('/huge'), slow('/huge-chunked')]);
      stop = true;
      await noise;
      t.ok(sha(plain) === sha(HUGE), `Content-Length body intact (${plain.length} bytes)`);
      t.ok(sha(framed) === sha(chunked(HUGE)), 'chunked body intact');
      t.ok(others > 5, `${others} other requests meanwhile`);
      t.equal(wrong, 0, 'their answers were right');
    });
  }
}
