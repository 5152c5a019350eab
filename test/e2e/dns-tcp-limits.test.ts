// kdp dns over real TCP on loopback: per-connection read and idle deadlines (CoreDNS's server has a 3 s
// read and a 10 s idle timeout; bytes that trickle in extend neither), and a full connection table makes
// room by closing the longest-idle connection instead of refusing new clients. Counts and timeouts are
// scaled down (a 60-connection table, 600 ms read, 1500 ms idle) so the file stays short.
import t from 'tap';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { silentLogger } from '../../src/common/log.ts';
import { KubernetesRecords } from '../../src/dns/plugins/kubernetes/handler.ts';
import { KubernetesPlugin } from '../../src/dns/plugins/kubernetes/plugin.ts';
import { DEFAULT_KUBERNETES_CONFIG } from '../../src/dns/plugins/kubernetes/records.ts';
import { DnsServer } from '../../src/dns/server.ts';
import { TYPE, decode, encodeQuery } from '../../src/dns/wire.ts';
import { needsRoot } from '../helpers/gate.ts';
import { testCluster } from '../unit/dns/fixtures.ts';

const MAX = 60;
const READ_MS = 600;
const IDLE_MS = 1500;

async function server(readMs = READ_MS, idleMs = IDLE_MS): Promise<DnsServer> {
  const src = testCluster();
  const rec = new KubernetesRecords(DEFAULT_KUBERNETES_CONFIG);
  rec.attach(src);
  await src.start();
  await rec.settled();
  const s = new DnsServer({
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
    blocks: [{ zones: [''], plugins: [new KubernetesPlugin(rec)] }],
    maxTcpConnections: MAX,
    tcpReadTimeoutMs: readMs,
    tcpIdleMs: idleMs,
  });
  await s.start();
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function open(port: number): Promise<Socket & { closedAt?: number }> {
  const c: Socket & { closedAt?: number } = connect({ host: '127.0.0.1', port });
  c.on('error', () => {});
  c.on('close', () => (c.closedAt = performance.now()));
  await new Promise<void>((r, j) => {
    c.once('connect', () => r());
    c.once('error', j);
  });
  return c;
}

const frame = (q: Buffer) => Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
const QUERY = frame(encodeQuery({ id: 42, name: 'svc1.testns.svc.cluster.local', type: TYPE.A }));

/** one query on `c`: the answer's first A record, or 'closed' / 'no answer' within `ms` */
function ask(c: Socket, ms = 2000): Promise<string> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => resolve('no answer'), ms);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        clearTimeout(timer);
        const a = decode(buf.subarray(2, 2 + buf.readUInt16BE(0))).answers[0];
        resolve(a?.type === 'A' ? a.data : 'empty');
      }
    });
    c.once('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
    c.write(QUERY);
  });
}

/** sends `bytes` one at a time every `everyMs` until the connection closes or they run out */
function trickle(c: Socket & { closedAt?: number }, bytes: Buffer, everyMs: number): { stop(): void } {
  let i = 0;
  const timer = setInterval(() => {
    if (c.destroyed || c.closedAt !== undefined || i >= bytes.length) return clearInterval(timer);
    c.write(bytes.subarray(i, i + 1));
    i++;
  }, everyMs);
  return { stop: () => clearInterval(timer) };
}

if (needsRoot(t, 'nothing but loopback; kept with the other e2e files')) {
  t.test('a client sending a byte now and then is closed at the read deadline', async (t) => {
    const s = await server();
    t.teardown(() => s.close());
    const c = await open(s.port);
    t.teardown(() => c.destroy());
    const t0 = performance.now();
    const tr = trickle(c, QUERY, 150); // a whole query would take ~8 s at this pace
    t.teardown(() => tr.stop());
    for (let i = 0; i < 60 && c.closedAt === undefined; i++) await sleep(100);
    t.ok(c.closedAt !== undefined, 'closed');
    const after = (c.closedAt ?? performance.now()) - t0;
    t.ok(after < READ_MS + 1200, `closed ${Math.round(after)} ms after connecting (read deadline ${READ_MS} ms)`);
    t.ok(after >= READ_MS - 50, 'not before the deadline');
  });

  t.test('after an answer, the next query must arrive whole within the idle deadline', async (t) => {
    const s = await server();
    t.teardown(() => s.close());
    const c = await open(s.port);
    t.teardown(() => c.destroy());
    t.equal(await ask(c), '10.0.0.1', 'a first query is answered');
    t.equal(await ask(c), '10.0.0.1', 'and a second one on the same connection');
    const t0 = performance.now();
    const tr = trickle(c, QUERY, 150);
    t.teardown(() => tr.stop());
    for (let i = 0; i < 60 && c.closedAt === undefined; i++) await sleep(100);
    const after = (c.closedAt ?? performance.now()) - t0;
    t.ok(c.closedAt !== undefined && after < IDLE_MS + 1200, `closed ${Math.round(after)} ms into the trickle`);
  });

  t.test(`with ${MAX} connections held (trickling or idle), a new TCP query is answered`, async (t) => {
    // deadlines of 30 s here: the table is what this test is about, and with the 600 ms read deadline a loaded
    // machine (load 9) took longer to open the 60 connections, so the first ones were closed by their deadline
    // before the table was full
    const s = await server(30_000, 30_000);
    t.teardown(() => s.close());
    const held: (Socket & { closedAt?: number })[] = [];
    const trickles: { stop(): void }[] = [];
    t.teardown(() => {
      for (const tr of trickles) tr.stop();
      for (const c of held) c.destroy();
    });
    // half of them trickle a query a byte at a time, half connect and send nothing
    for (let i = 0; i < MAX; i++) {
      const c = await open(s.port);
      held.push(c);
      if (i % 2 === 0) trickles.push(trickle(c, QUERY, 100));
    }
    await sleep(100);
    t.equal(held.filter((c) => c.closedAt !== undefined).length, 0, `all ${MAX} connections open`);
    const fresh = await open(s.port);
    t.teardown(() => fresh.destroy());
    t.equal(await ask(fresh, 1000), '10.0.0.1', 'the new connection is answered');
    await sleep(100);
    const closed = held.filter((c) => c.closedAt !== undefined);
    t.equal(closed.length, 1, 'one held connection made room');
    t.equal(held.indexOf(closed[0]!) % 2, 1, 'an idle one (nothing sent), not one with a message half-read');
    t.equal(held.indexOf(closed[0]!), 1, 'the longest-idle one');
    // several more: each is answered, each replaces one held connection
    for (let i = 0; i < 5; i++) {
      const c = await open(s.port);
      held.push(c);
      t.equal(await ask(c, 1000), '10.0.0.1', `new connection ${i + 2} answered`);
    }
  });
}
