// The DNS server's two UDP transports (src/dns/udp.ts) on real loopback sockets: 'mmsg' (the native addon,
// recvmmsg/sendmmsg in batches) and 'dgram' (node:dgram). The addon must be built (npm test builds it: this
// file fails, not skips, without it). Both must behave the same: the sender's address as the handler sees it
// (IPv4, IPv6, IPv4 on a dual-stack socket), answers now and answers later, bursts longer than one batch,
// answers to the port each query came from, bind errors with their errno code, SO_REUSEPORT, close with
// answers still pending. Then `kdp dns` itself on each transport: bursts of cluster queries over IPv4 and
// IPv6, first through the full path (answered later), then through the fast path (answered in the batch).
// The other DNS e2e files run on the default ('auto': mmsg when built).
import t from 'tap';
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { silentLogger } from '../../src/common/log.ts';
import { parseCorefile } from '../../src/dns/corefile.ts';
import { startDns } from '../../src/dns/dns.ts';
import { loadNative, nativeUnavailable, openUdp } from '../../src/dns/udp.ts';
import type { UdpEndpoint, UdpIo, UdpReply } from '../../src/dns/udp.ts';
import { TYPE, decode, encodeQuery } from '../../src/dns/wire.ts';
import { svc, testCluster } from '../unit/dns/fixtures.ts';

const IOS: readonly UdpIo[] = ['mmsg', 'dgram'];

async function client(type: 'udp4' | 'udp6', host: string): Promise<Socket> {
  const s = createSocket(type);
  await new Promise<void>((r) => s.bind(0, host, () => r()));
  return s;
}

/** sends every datagram at once, then collects answers until all arrived (or `waitMs` passed) */
async function burst(s: Socket, port: number, to: string, msgs: Buffer[], waitMs = 5_000): Promise<Buffer[]> {
  const got: Buffer[] = [];
  const want = msgs.length;
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      s.removeListener('message', on);
      resolve();
    }, waitMs);
    const on = (m: Buffer) => {
      got.push(m);
      if (got.length >= want) {
        clearTimeout(timer);
        s.removeListener('message', on);
        resolve();
      }
    };
    s.on('message', on);
  });
  for (const m of msgs) s.send(m, port, to);
  await done;
  return got;
}

t.test('the native addon is built and loads; bad arguments are errors, not crashes', async (t) => {
  t.equal(nativeUnavailable(), '', 'native/build/kdp_udp.node loads (npm test builds it: scripts/build-native.ts)');
  const none = { port: 0, reusePort: false, onDatagram: () => undefined, onError: () => {} };
  await t.rejects(openUdp('mmsg', { ...none, host: 'localhost' }), { code: 'EINVAL' }, 'a host that is not an IP');
  await t.rejects(openUdp('mmsg', { ...none, host: '192.0.2.1' }), { code: 'EADDRNOTAVAIL' }, 'an address not ours');
  const n = loadNative()!;
  t.throws(() => n.sendTo({}, Buffer.alloc(1), Buffer.alloc(28)), { code: 'EINVAL' }, 'not a socket handle');
  const ep = await openUdp('mmsg', { ...none, host: '127.0.0.1' });
  await ep.close();
});

for (const io of IOS) {
  t.test(`udp endpoint over ${io}`, async (t) => {
    const seen = new Set<string>();
    // a datagram starting with 'L' is answered later (after a timer), any other at once; the answer is the
    // query with the sender's address as the handler saw it appended
    const onDatagram = (msg: Buffer, from: string, later: () => UdpReply): Buffer | undefined => {
      seen.add(from);
      const answer = Buffer.concat([msg, Buffer.from(` ${from}`)]);
      if (msg[0] !== 0x4c) return answer;
      const reply = later();
      setTimeout(() => reply(answer), 5);
      return undefined;
    };
    const errors: Error[] = [];
    const ep: UdpEndpoint = await openUdp(io, {
      host: '::',
      port: 0,
      reusePort: false,
      onDatagram,
      onError: (e) => errors.push(e),
    });
    t.teardown(() => ep.close());
    t.equal(ep.io, io);
    t.ok(ep.port > 0, 'bound to a kernel-chosen port');

    const v4 = await client('udp4', '127.0.0.1');
    const v6 = await client('udp6', '::1');
    t.teardown(() => {
      v4.close();
      v6.close();
    });
    // 200 datagrams at once (more than one batch of 32), half answered now, half later
    const msgs = Array.from({ length: 200 }, (_, i) => Buffer.from(`${i % 2 ? 'L' : 'N'}${i}`));
    for (const [s, to, expect] of [
      [v4, '127.0.0.1', '::ffff:127.0.0.1'],
      [v6, '::1', '::1'],
    ] as const) {
      const got = (await burst(s, ep.port, to, msgs)).map(String);
      t.equal(got.length, 200, `all 200 answered (${to})`);
      t.same(
        new Set(got),
        new Set(msgs.map((m) => `${m} ${expect}`)),
        `each answer is its query's, with the sender ${expect}`,
      );
    }
    t.same([...seen].sort(), ['::1', '::ffff:127.0.0.1'], 'the sender as node:dgram reports it');

    // answers go to the port each query came from: two sockets of one address interleaved
    const a = await client('udp4', '127.0.0.1');
    const b = await client('udp4', '127.0.0.1');
    t.teardown(() => {
      a.close();
      b.close();
    });
    const [ga, gb] = await Promise.all([
      burst(a, ep.port, '127.0.0.1', [Buffer.from('Na'), Buffer.from('La')]),
      burst(b, ep.port, '127.0.0.1', [Buffer.from('Nb'), Buffer.from('Lb')]),
    ]);
    t.same(ga.map((m) => String(m).slice(0, 2)).sort(), ['La', 'Na'], 'socket a gets its own answers');
    t.same(gb.map((m) => String(m).slice(0, 2)).sort(), ['Lb', 'Nb'], 'socket b gets its own answers');

    // the port is taken: the errno code, as node:dgram gives it
    await t.rejects(
      openUdp(io, { host: '::', port: ep.port, reusePort: false, onDatagram, onError: () => {} }),
      { code: 'EADDRINUSE' },
      'a second bind without SO_REUSEPORT',
    );
    // SO_REUSEPORT: two endpoints on one port, both answer some of 64 senders
    const r1 = await openUdp(io, { host: '127.0.0.1', port: 0, reusePort: true, onDatagram, onError: () => {} });
    t.teardown(() => r1.close());
    let second = 0;
    const r2 = await openUdp(io, {
      host: '127.0.0.1',
      port: r1.port,
      reusePort: true,
      onDatagram: (m) => {
        second++;
        return m;
      },
      onError: () => {},
    });
    t.teardown(() => r2.close());
    const senders = await Promise.all(Array.from({ length: 64 }, () => client('udp4', '127.0.0.1')));
    t.teardown(() => senders.forEach((s) => s.close()));
    const answered = await Promise.all(senders.map((s) => burst(s, r1.port, '127.0.0.1', [Buffer.from('Nx')])));
    t.equal(answered.flat().length, 64, 'every sender answered');
    t.ok(second > 0 && second < 64, `the kernel spread the senders over both sockets (${second} of 64 on the second)`);

    // close with answers pending: the late answers are dropped, nothing throws, the port is free again
    const late = await client('udp4', '127.0.0.1');
    t.teardown(() => late.close());
    const pending = await openUdp(io, { host: '127.0.0.1', port: 0, reusePort: false, onDatagram, onError: () => {} });
    const lateGot = burst(late, pending.port, '127.0.0.1', [Buffer.from('L1'), Buffer.from('L2')], 300);
    await new Promise((r) => setTimeout(r, 1));
    await pending.close();
    await pending.close(); // twice is harmless
    t.ok((await lateGot).length <= 2);
    await new Promise((r) => setTimeout(r, 50)); // the late replies fire after the close
    const again = await openUdp(io, {
      host: '127.0.0.1',
      port: pending.port,
      reusePort: false,
      onDatagram,
      onError: () => {},
    });
    await again.close();
    t.same(errors, [], 'no socket errors');
  });

  t.test(`kdp dns over ${io}: bursts of cluster queries, full path then fast path, IPv4 and IPv6`, async (t) => {
    const src = testCluster();
    const N = 150;
    for (let i = 0; i < N; i++)
      src.put(svc('burst', `s${i}`, { clusterIPs: [`10.77.${i >> 8}.${i & 255}`], ipFamilies: ['IPv4'] }));
    const dns = await startDns(src, parseCorefile('.:53 {\n  kubernetes cluster.local\n}'), {
      log: silentLogger,
      version: 'test',
      host: '',
      port: 0,
      healthAddr: '',
      readyAddr: '',
      metricsAddr: '',
      lameduckMs: 0,
      udpIo: io,
    });
    t.teardown(() => dns.close());
    await dns.synced;
    t.same([...dns.udpIo.values()], [io], `the server uses ${io}`);
    const p = [...dns.ports.values()][0]!;
    const v4 = await client('udp4', '127.0.0.1');
    const v6 = await client('udp6', '::1');
    t.teardown(() => {
      v4.close();
      v6.close();
    });
    let id = 1;
    for (const round of ['full path', 'fast path']) {
      for (const [s, to] of [
        [v4, '127.0.0.1'],
        [v6, '::1'],
      ] as const) {
        const asked = new Map<number, number>();
        const msgs: Buffer[] = [];
        for (let i = 0; i < N; i++) {
          asked.set(id, i);
          msgs.push(encodeQuery({ id: id++, name: `s${i}.burst.svc.cluster.local`, type: TYPE.A }));
        }
        // plus names that do not exist: NXDOMAIN
        for (let i = 0; i < 10; i++) {
          asked.set(id, -1);
          msgs.push(encodeQuery({ id: id++, name: `nope${i}.burst.svc.cluster.local`, type: TYPE.A }));
        }
        const got = (await burst(s, p, to, msgs)).map((b) => decode(b));
        t.equal(got.length, msgs.length, `${round}, ${to}: every query answered`);
        let right = 0;
        for (const m of got) {
          const i = asked.get(m.id);
          asked.delete(m.id);
          if (i === undefined) continue;
          if (i < 0) right += m.rcode === 3 && m.answers.length === 0 ? 1 : 0;
          else
            right +=
              m.rcode === 0 &&
              m.questions[0]?.name === `s${i}.burst.svc.cluster.local` &&
              m.answers[0]?.data === `10.77.${i >> 8}.${i & 255}`
                ? 1
                : 0;
        }
        t.equal(right, msgs.length, `${round}, ${to}: each answer matches its query (id, name, address, rcode)`);
      }
    }
  });
}
