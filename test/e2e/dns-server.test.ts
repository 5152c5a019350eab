// kdp dns on loopback, end to end with real `dig` and `curl`: UDP and TCP on one port, truncation and
// TCP retry, TCP pipelining, garbage survived, forwarding to an upstream (random ids and ports, TCP on
// truncation), cache hits, fast SERVFAIL with every upstream down and recovery by health check,
// /health /ready /metrics. Loopback only; the upstream is a small fake written below.
import t from 'tap';
import { createSocket } from 'node:dgram';
import type { Socket as UdpSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import type { Server } from 'node:net';
import { run } from '../../src/common/exec-adapter.ts';
import { silentLogger } from '../../src/common/log.ts';
import { parseCorefile } from '../../src/dns/corefile.ts';
import { startDns } from '../../src/dns/dns.ts';
import { FLAG, TYPE, decode, encodeQuery, encodeResponse } from '../../src/dns/wire.ts';
import type { RR } from '../../src/dns/wire.ts';
import { needsRoot } from '../helpers/gate.ts';
import { ep, port, slice, svc, testCluster } from '../unit/dns/fixtures.ts';

interface FakeUpstream {
  port: number;
  seen: { id: number; srcPort: number; name: string; proto: string }[];
  close(): Promise<void>;
}

/** answers outside.test A, big.test (TC over UDP, 60 records over TCP), anything else NXDOMAIN */
async function fakeUpstream(fixedPort = 0): Promise<FakeUpstream> {
  const seen: FakeUpstream['seen'] = [];
  const answer = (q: Buffer, proto: 'udp' | 'tcp'): Buffer => {
    const m = decode(q);
    const qq = m.questions[0]!;
    const name = qq.name.toLowerCase();
    let answers: RR[] = [];
    let rcode = 0;
    if (name.endsWith('outside.test')) answers = [{ name: qq.name, ttl: 60, type: 'A', data: '192.0.2.1' }];
    else if (name === 'big.test')
      answers = Array.from(
        { length: 60 },
        (_, i) => ({ name: qq.name, ttl: 60, type: 'A', data: `192.0.2.${i + 1}` }) as RR,
      );
    else if (name !== '') rcode = 3;
    const res = encodeResponse(
      {
        id: m.id,
        flags: FLAG.RA | (m.flags & FLAG.RD),
        rcode,
        question: qq,
        answers,
        authority:
          rcode === 3
            ? [
                {
                  name: 'test',
                  ttl: 30,
                  type: 'SOA',
                  data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 30 },
                },
              ]
            : [],
      },
      proto === 'udp' ? 512 : 65535,
    );
    return res.wire;
  };
  const udp: UdpSocket = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(fixedPort, '127.0.0.1', () => r()));
  const p = udp.address().port;
  udp.on('message', (msg, rinfo) => {
    try {
      seen.push({
        id: msg.readUInt16BE(0),
        srcPort: rinfo.port,
        name: decode(msg).questions[0]?.name ?? '',
        proto: 'udp',
      });
      udp.send(answer(msg, 'udp'), rinfo.port, rinfo.address);
    } catch {
      /* ignore */
    }
  });
  const tcp: Server = createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('error', () => {});
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        seen.push({
          id: msg.readUInt16BE(0),
          srcPort: s.remotePort ?? 0,
          name: decode(msg).questions[0]?.name ?? '',
          proto: 'tcp',
        });
        const res = answer(msg, 'tcp');
        const len = Buffer.alloc(2);
        len.writeUInt16BE(res.length);
        s.write(Buffer.concat([len, res]));
      }
    });
  });
  await new Promise<void>((r) => tcp.listen(p, '127.0.0.1', () => r()));
  return {
    port: p,
    seen,
    close: () =>
      Promise.all([
        new Promise<void>((r) => udp.close(() => r())),
        new Promise<void>((r) => tcp.close(() => r())),
      ]).then(() => undefined),
  };
}

async function dig(port: number, ...args: string[]): Promise<string> {
  const r = await run(['dig', '@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', ...args], {
    allowFailure: true,
    timeoutMs: 10_000,
  });
  return r.stdout;
}

function corefile(upPort: number, extra = ''): string {
  return `.:53 {
    errors
    health
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . 127.0.0.1:${upPort} {
       health_check 100ms
       ${extra}
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loadbalance
}`;
}

if (needsRoot(t, 'nothing but loopback; kept with the other e2e files')) {
  t.test('kdp dns on loopback: cluster names, wire behaviour, forward, cache, health endpoints', async (t) => {
    const up = await fakeUpstream();
    t.teardown(() => up.close());
    const src = testCluster();
    src.put(svc('testns', 'big', { headless: true, ports: [port('http', 80)] }));
    src.put(
      slice(
        'testns',
        'big',
        Array.from({ length: 100 }, (_, i) => ep([`172.18.0.${i + 1}`])),
        [{ name: 'http', port: 80 }],
      ),
    );
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = {
      watch: src.watch.bind(src),
      view: src.view,
      stop: src.stop.bind(src),
      start: async () => {
        await gate;
        await src.start();
      },
    };
    const dns = await startDns(slow, parseCorefile(corefile(up.port)), {
      log: silentLogger,
      version: 'test',
      host: '127.0.0.1',
      port: 0,
      healthAddr: '127.0.0.1:0',
      readyAddr: '127.0.0.1:0',
      metricsAddr: '127.0.0.1:0',
      lameduckMs: 0,
    });
    t.teardown(() => dns.close());
    const p = [...dns.ports.values()][0]!;
    const http = (port: number, path: string) =>
      run(['curl', '-s', '-o', '-', '-w', '\\n%{http_code}', `http://127.0.0.1:${port}${path}`], {
        allowFailure: true,
      });

    // before the initial sync: SERVFAIL for cluster names, /ready 503, /health 200
    t.match(await dig(p, 'svc1.testns.svc.cluster.local'), /status: SERVFAIL/);
    t.match((await http(dns.readyPort!, '/ready')).stdout, /kubernetes\n503$/);
    t.match((await http(dns.healthPort!, '/health')).stdout, /^OK\n200$/);
    release();
    await dns.synced;
    t.match((await http(dns.readyPort!, '/ready')).stdout, /^OK\n200$/);

    t.equal((await dig(p, '+short', 'svc1.testns.svc.cluster.local')).trim(), '10.0.0.1', 'A over UDP');
    t.equal(
      (await dig(p, '+short', '+tcp', 'svc1.testns.svc.cluster.local')).trim(),
      '10.0.0.1',
      'A over TCP, same port',
    );
    t.equal(
      (await dig(p, '+short', 'SRV', '_http._tcp.svc1.testns.svc.cluster.local')).trim(),
      '0 100 80 svc1.testns.svc.cluster.local.',
    );
    t.equal((await dig(p, '+short', '-x', '10.0.0.1')).trim(), 'svc1.testns.svc.cluster.local.', 'PTR');
    const nx = await dig(p, 'nosuch.testns.svc.cluster.local');
    t.match(nx, /status: NXDOMAIN/);
    t.match(
      nx,
      /AUTHORITY SECTION:\ncluster\.local\.\s+30\s+IN\s+SOA\s+ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\./,
    );
    t.match(
      await dig(p, 'AAAA', 'svc1.testns.svc.cluster.local'),
      /status: NOERROR.*\n.*ANSWER: 0, AUTHORITY: 1/,
      'NODATA',
    );
    // truncation: 100 records do not fit a UDP answer; dig retries over TCP by itself
    const tc = await dig(p, '+ignore', '+noedns', 'big.testns.svc.cluster.local');
    t.match(tc, /flags: qr aa tc rd ra;.*ANSWER: 0/, 'UDP: TC set');
    const full = await dig(p, '+noedns', 'big.testns.svc.cluster.local');
    t.match(full, /Truncated, retrying in TCP mode/);
    t.match(full, /ANSWER: 100,/, 'the TCP retry gets all 100');
    const edns = await dig(p, '+bufsize=4096', '+ignore', 'big.testns.svc.cluster.local');
    t.match(edns, /ANSWER: 100,/, 'EDNS 4096 fits them over UDP');

    // TCP pipelining: three queries in one write, three answers on the one connection
    const answers = await new Promise<number[]>((resolve, reject) => {
      const s = connect(p, '127.0.0.1');
      const frames = [1, 2, 3].map((id) => {
        const q = encodeQuery({
          id,
          name: id === 2 ? 'p.outside.test' : 'svc1.testns.svc.cluster.local',
          type: TYPE.A,
        });
        const f = Buffer.alloc(2 + q.length);
        f.writeUInt16BE(q.length);
        q.copy(f, 2);
        return f;
      });
      let buf = Buffer.alloc(0);
      const ids: number[] = [];
      s.on('connect', () => s.write(Buffer.concat(frames)));
      s.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          ids.push(decode(buf.subarray(2, 2 + buf.readUInt16BE(0))).id);
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (ids.length === 3) {
          s.destroy();
          resolve(ids);
        }
      });
      s.on('error', reject);
      setTimeout(() => reject(new Error(`pipelining: got ${ids.length} answers`)), 5000);
    });
    t.same([...answers].sort(), [1, 2, 3], 'three pipelined answers');

    // garbage over UDP and TCP does not hurt
    const g = createSocket('udp4');
    for (let i = 0; i < 50; i++)
      g.send(Buffer.from(Array.from({ length: i * 3 }, () => Math.floor(Math.random() * 256))), p, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 100));
    g.close();
    await new Promise<void>((resolve) => {
      const s = connect(p, '127.0.0.1', () => s.end(Buffer.from([0, 5, 1, 2, 3, 4, 5, 0xff, 0xff, 9])));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
    t.equal(
      (await dig(p, '+short', 'svc1.testns.svc.cluster.local')).trim(),
      '10.0.0.1',
      'still answering after garbage',
    );

    // forward: random query ids and source ports; TCP when the upstream truncates; cache
    up.seen.length = 0;
    for (let i = 0; i < 6; i++) t.equal((await dig(p, '+short', `outside.test`)).trim(), '192.0.2.1');
    t.equal(up.seen.filter((s) => s.name === 'outside.test').length, 1, 'five of six from the cache');
    for (let i = 0; i < 6; i++) await dig(p, '+short', `n${i}.nx.test`);
    const ids = new Set(up.seen.map((s) => s.id));
    const ports = new Set(up.seen.map((s) => s.srcPort));
    t.ok(ids.size >= 6 && ports.size >= 6, `random ids (${ids.size}) and source ports (${ports.size}) per query`);
    t.match(await dig(p, 'n0.nx.test'), /status: NXDOMAIN/, 'negative answer from the cache');
    t.equal(up.seen.filter((s) => s.name === 'n0.nx.test').length, 1, 'negative entry cached');
    const big = await dig(p, '+bufsize=4096', 'big.test');
    t.match(big, /ANSWER: 60,/, 'upstream truncated over UDP; forward retried over TCP');
    t.ok(up.seen.some((s) => s.name === 'big.test' && s.proto === 'tcp'));
    // the cached 60-record answer: truncated for a plain UDP client, complete over TCP and for a large EDNS
    // buffer, in the asker's case, without another upstream exchange
    const before = up.seen.length;
    t.match(
      await dig(p, '+ignore', '+noedns', 'BIG.test'),
      /flags: qr tc rd ra;.*ANSWER: 0,/s,
      'cached, too big for 512 bytes: TC',
    );
    t.match(await dig(p, '+tcp', '+noedns', 'BIG.test'), /ANSWER: 60,/, 'complete over TCP');
    const cased = await dig(p, '+bufsize=4096', '+noall', '+answer', 'bIg.TeSt');
    t.equal(cased.trim().split('\n').length, 60);
    t.ok(
      cased
        .trim()
        .split('\n')
        .every((l) => /^bIg\.TeSt\.\s+\d+\s+IN\s+A\s+192\.0\.2\.\d+$/.test(l)),
      "from the cache in the client's case",
    );
    t.equal(up.seen.length, before, 'all three from the cache');

    const metrics = (await http(dns.metricsPort!, '/metrics')).stdout;
    for (const name of [
      'coredns_dns_requests_total',
      'coredns_dns_responses_total',
      'coredns_dns_request_duration_seconds_bucket',
      'coredns_dns_request_size_bytes_bucket',
      'coredns_dns_response_size_bytes_bucket',
      'coredns_cache_hits_total',
      'coredns_cache_misses_total',
      'coredns_build_info',
      'coredns_proxy_request_duration_seconds_bucket',
    ]) {
      t.match(metrics, new RegExp(`^${name}\\{`, 'm'), name);
    }
    t.match(
      metrics,
      /coredns_dns_responses_total\{server="dns:\/\/",zone="\.",view="",rcode="NXDOMAIN",plugin="kubernetes"\} [1-9]/,
    );
    t.match(metrics, /coredns_cache_hits_total\{server="dns:\/\/",type="success",zones="\.",view=""\} 8/);
  });

  t.test('forward: fast SERVFAIL when every upstream is down; health checks bring it back', async (t) => {
    const probe = await fakeUpstream();
    const upPort = probe.port;
    await probe.close(); // nothing listens there now
    const src = testCluster();
    const dns = await startDns(src, parseCorefile(corefile(upPort, 'max_fails 2')), {
      log: silentLogger,
      version: 'test',
      host: '127.0.0.1',
      port: 0,
      healthAddr: '',
      readyAddr: '',
      metricsAddr: '',
      lameduckMs: 0,
    });
    t.teardown(() => dns.close());
    await dns.synced;
    const p = [...dns.ports.values()][0]!;
    t.match(await dig(p, 'a.down.test'), /status: SERVFAIL/);
    t.match(await dig(p, 'b.down.test'), /status: SERVFAIL/);
    // timed with one UDP query from this process (spawning dig can take longer than the answer on a loaded machine)
    const sock = createSocket('udp4');
    t.teardown(() => sock.close());
    const t0 = performance.now();
    const res = await new Promise<Buffer>((resolve) => {
      sock.once('message', (m) => resolve(m));
      sock.send(encodeQuery({ id: 4242, name: 'c.down.test', type: TYPE.A }), p, '127.0.0.1');
    });
    const ms = Math.round(performance.now() - t0);
    t.equal(res.readUInt16BE(2) & 0xf, 2, 'SERVFAIL');
    t.ok(ms < 500, `all upstreams down: SERVFAIL at once (${ms} ms from this process, no upstream tried)`);
    t.equal((await dig(p, '+short', 'svc1.testns.svc.cluster.local')).trim(), '10.0.0.1', 'cluster names unaffected');
    const back = await fakeUpstream(upPort);
    t.teardown(() => back.close());
    let ok = false;
    for (let i = 0; i < 30 && !ok; i++) {
      await new Promise((r) => setTimeout(r, 100));
      ok = (await dig(p, '+short', 'outside.test')).trim() === '192.0.2.1';
    }
    t.ok(ok, 'the upstream is used again after a health check');
  });

  t.test('reload in place: the listeners and an open TCP connection stay, the new Corefile applies', async (t) => {
    const up = await fakeUpstream();
    t.teardown(() => up.close());
    // a slow upstream for an answer in flight across the reload
    const slowUp: UdpSocket = createSocket('udp4');
    await new Promise<void>((r) => slowUp.bind(0, '127.0.0.1', () => r()));
    t.teardown(() => new Promise<void>((r) => slowUp.close(() => r())));
    slowUp.on('message', (msg, rinfo) => {
      const m = decode(msg);
      const q = m.questions[0]!;
      const res = encodeResponse({
        id: m.id,
        flags: FLAG.RA,
        rcode: 0,
        question: q,
        answers: [{ name: q.name, ttl: 60, type: 'A', data: '192.0.2.77' }],
      }).wire;
      setTimeout(() => slowUp.send(res, rinfo.port, rinfo.address), 700);
    });
    const text = (ttl: number, extra: string) => `.:53 {
    errors
    kubernetes cluster.local {
       ttl ${ttl}
    }
    forward slow.test 127.0.0.1:${slowUp.address().port}
    forward . 127.0.0.1:${up.port}
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
       ${extra}
    }
}`;
    // two forward directives in one block are not CoreDNS syntax; use two blocks instead
    const corefileAt = (ttl: number, extra = '') =>
      text(ttl, extra).replace(`    forward slow.test 127.0.0.1:${slowUp.address().port}\n`, '') +
      `\nslow.test:53 {\n    forward . 127.0.0.1:${slowUp.address().port}\n}\n`;
    const src = testCluster();
    const dns = await startDns(src, parseCorefile(corefileAt(30)), {
      log: silentLogger,
      version: 'test',
      host: '127.0.0.1',
      port: 0,
      healthAddr: '',
      readyAddr: '',
      metricsAddr: '127.0.0.1:0',
      lameduckMs: 0,
    });
    t.teardown(() => dns.close());
    await dns.synced;
    const p = [...dns.ports.values()][0]!;
    const metricsPort = dns.metricsPort;

    // one TCP connection, kept open across the reload; answers matched by id
    const conn = connect({ host: '127.0.0.1', port: p });
    await new Promise<void>((r, j) => {
      conn.once('connect', () => r());
      conn.once('error', j);
    });
    t.teardown(() => conn.destroy());
    let closed = false;
    conn.on('close', () => (closed = true));
    const waiting = new Map<number, (m: ReturnType<typeof decode>) => void>();
    let buf = Buffer.alloc(0);
    conn.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const m = decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        waiting.get(m.id)?.(m);
      }
    });
    const ask = (id: number, name: string) => {
      const q = encodeQuery({ id, name, type: TYPE.A });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(q.length);
      conn.write(Buffer.concat([len, q]));
      return new Promise<ReturnType<typeof decode>>((r) => waiting.set(id, r));
    };
    t.equal((await ask(1, 'svc1.testns.svc.cluster.local')).answers[0]?.ttl, 30, 'before: ttl 30');
    t.match(await dig(p, 'outside.test'), /outside\.test\.\s+60\s+IN\s+A\s+192\.0\.2\.1/);
    const inflight = ask(2, 'a.slow.test'); // answered 700 ms later, after the reload

    t.equal(await dns.reload(parseCorefile(corefileAt(7, 'keepttl'))), true, 'applied in place');
    t.equal([...dns.ports.values()][0], p, 'the same port (a restart would bind a new one)');
    t.equal(dns.metricsPort, metricsPort, '/metrics listener kept');
    const late = await inflight;
    t.equal(
      late.answers[0]?.type === 'A' ? late.answers[0].data : '',
      '192.0.2.77',
      'the query in flight during the reload is answered on the same connection',
    );
    t.equal(
      (await ask(3, 'svc1.testns.svc.cluster.local')).answers[0]?.ttl,
      7,
      'the same TCP connection gets the new configuration: ttl 7',
    );
    t.notOk(closed, 'the TCP connection survived');
    t.match(
      await dig(p, 'svc1.testns.svc.cluster.local'),
      /svc1\.testns\.svc\.cluster\.local\.\s+7\s+IN\s+A\s+10\.0\.0\.1/,
      'UDP too',
    );
    t.match(
      await dig(p, 'outside.test'),
      /status: NOERROR/,
      'forward still works (a new cache: the old entries went with the old chain)',
    );
    t.match(
      (await run(['curl', '-s', `http://127.0.0.1:${metricsPort}/metrics`])).stdout,
      /coredns_dns_requests_total\{[^}]*\} [1-9]/,
      'metrics kept counting',
    );

    // a Corefile that cannot be built (no upstream): the running configuration stays
    await t.rejects(
      dns.reload(parseCorefile('.:53 {\n  kubernetes cluster.local\n  forward . /nonexistent/resolv.conf\n}')),
      { code: 'KDP_DNS_CONFIG' },
    );
    t.match(
      await dig(p, 'svc1.testns.svc.cluster.local'),
      /\s+7\s+IN\s+A\s+10\.0\.0\.1/,
      'still the last good configuration',
    );
    // not possible in place: the kubernetes blocks changed in number
    t.equal(
      await dns.reload(parseCorefile('.:53 {\n  forward . 127.0.0.1:1\n}')),
      false,
      'restart needed when the kubernetes blocks change',
    );
  });
}
