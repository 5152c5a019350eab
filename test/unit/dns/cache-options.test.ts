// The cache's Corefile options applied, with a fake clock: prefetch, serve_stale (immediate and verify),
// servfail, keepttl; errors consolidate with a fake scheduler; what the Corefile parser makes of them and
// the options that are only accepted (reported, logged at startup).
import t from 'tap';
import { CachePlugin, DEFAULT_CACHE } from '../../../src/dns/plugins/cache.ts';
import type { CacheConfig } from '../../../src/dns/plugins/cache.ts';
import { ErrorsPlugin } from '../../../src/dns/plugins/errors.ts';
import type { DnsReply, DnsRequest, Plugin } from '../../../src/dns/chain.ts';
import { reply } from '../../../src/dns/chain.ts';
import { parseCorefile } from '../../../src/dns/corefile.ts';
import { DnsServer } from '../../../src/dns/server.ts';
import { FLAG, TYPE, decode, encodeQuery, encodeResponse } from '../../../src/dns/wire.ts';
import type { Logger } from '../../../src/common/log.ts';
import { silentLogger } from '../../../src/common/log.ts';

function req(name: string, id = 1): DnsRequest {
  return {
    id,
    flags: 0x100,
    question: { name, type: TYPE.A, class: 1 },
    lname: name.toLowerCase(),
    qtype: 'A',
    proto: 'udp',
    client: '127.0.0.1',
  };
}

/** An upstream stand-in: answers `addr` with `ttl`, or SERVFAIL while `down`. */
function upstream(ttl = 100) {
  const u = {
    calls: 0,
    down: false,
    addr: '192.0.2.1',
    next: (name: string) => (): Promise<DnsReply> => {
      u.calls++;
      if (u.down) return Promise.resolve(reply('forward', 2, { error: 'no healthy upstream' }));
      const wire = encodeResponse({
        id: 1,
        flags: FLAG.QR | FLAG.RA,
        rcode: 0,
        question: { name, type: TYPE.A, class: 1 },
        answers: [{ name, ttl, type: 'A', data: u.addr }],
      }).wire;
      return Promise.resolve(reply('forward', 0, { raw: wire }));
    },
  };
  return u;
}

const answer = (r: DnsReply) => {
  const m = decode(r.raw!);
  const a = m.answers[0];
  return { rcode: m.rcode, ttl: a?.ttl, addr: a?.type === 'A' ? a.data : undefined };
};
const settle = () => new Promise((r) => setImmediate(r));

function cache(cfg: Partial<CacheConfig>, now: { t: number }) {
  const counts = { prefetch: 0, stale: 0 };
  const c = new CachePlugin(
    { ...DEFAULT_CACHE, ...cfg },
    { now: () => now.t, stats: { onPrefetch: () => counts.prefetch++, onServedStale: () => counts.stale++ } },
  );
  return { c, counts };
}

t.test('prefetch: a popular entry is fetched again before it expires', async (t) => {
  const now = { t: 1_000_000 };
  const { c, counts } = cache({ prefetch: { amount: 3, durationMs: 60_000, percentage: 10 } }, now);
  const up = upstream(100);
  await c.serve(req('p.example'), up.next('p.example')); // stored: 1st query
  now.t += 50_000;
  await c.serve(req('p.example'), up.next('p.example')); // 2nd, 50 s left
  now.t += 41_000;
  await c.serve(req('p.example'), up.next('p.example')); // 3rd: popular, 9 s left <= 10% of 100
  t.equal(up.calls, 2, 'prefetched in the background');
  t.equal(counts.prefetch, 1);
  await settle();
  now.t += 2_000;
  const r = answer(await c.serve(req('p.example'), up.next('p.example')));
  t.equal(up.calls, 2, 'served from the refreshed entry');
  t.equal(r.ttl, 98, 'TTL of the refreshed entry (stored 2 s ago)');
  now.t += 200_000;
  await c.serve(req('p.example'), up.next('p.example'));
  t.equal(up.calls, 3, 'expired: a miss (no prefetch without queries)');

  // not popular: gaps of DURATION or more reset the count
  const q = cache({ prefetch: { amount: 2, durationMs: 10_000, percentage: 50 } }, now);
  const up2 = upstream(100);
  await q.c.serve(req('q.example'), up2.next('q.example'));
  now.t += 60_000;
  await q.c.serve(req('q.example'), up2.next('q.example'));
  t.equal(up2.calls, 1, '60 s gap: not popular, not prefetched although below 50%');
  now.t += 5_000;
  await q.c.serve(req('q.example'), up2.next('q.example'));
  t.equal(up2.calls, 2, 'two queries within 10 s, 35 s left <= 50%: prefetched');
  await settle();
});

t.test('prefetch: the wire fast path hands a due entry to the chain once', async (t) => {
  const now = { t: 5_000_000 };
  const { c, counts } = cache({ prefetch: { amount: 1, durationMs: 60_000, percentage: 10 } }, now);
  const up = upstream(100);
  const fwd: Plugin = { name: 'forward', serve: (r) => up.next(r.question.name)() };
  const s = new DnsServer({
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
    blocks: [{ zones: [''], plugins: [c, fwd] }],
  });
  const q = encodeQuery({ id: 7, name: 'w.example', type: TYPE.A });
  await s.respond(q, 'udp', '127.0.0.1');
  now.t += 10_000;
  await s.respond(q, 'udp', '127.0.0.1');
  t.equal(s.cacheFastHits, 1, 'fresh: from the wire');
  now.t += 85_000;
  const due = decode((await s.respond(q, 'udp', '127.0.0.1'))!);
  t.equal(due.answers[0]?.ttl, 5, 'due for prefetch: still the cached answer');
  t.equal(counts.prefetch, 1, 'and a prefetch started');
  t.equal(up.calls, 2);
  await settle();
  const after = decode((await s.respond(q, 'udp', '127.0.0.1'))!);
  t.equal(after.answers[0]?.ttl, 100, 'refreshed');
  t.equal(s.cacheFastHits, 2);
});

t.test(
  'serve_stale immediate: expired entries answered with TTL 0 while the upstream fails, refreshed when it is back',
  async (t) => {
    const now = { t: 2_000_000 };
    const { c, counts } = cache({ serveStale: { durationMs: 60_000, verify: false }, servfailTtl: 0 }, now);
    const up = upstream(10);
    await c.serve(req('s.example'), up.next('s.example'));
    up.down = true;
    now.t += 15_000;
    const stale = answer(await c.serve(req('s.example'), up.next('s.example')));
    t.same(stale, { rcode: 0, ttl: 0, addr: '192.0.2.1' }, 'stale answer, TTL 0');
    t.equal(counts.stale, 1);
    await settle();
    t.equal(up.calls, 2, 'a refresh was attempted in the background');
    t.same(
      answer(await c.serve(req('s.example'), up.next('s.example'))),
      { rcode: 0, ttl: 0, addr: '192.0.2.1' },
      'the failed refresh kept the stale entry',
    );
    await settle();
    up.down = false;
    up.addr = '192.0.2.99';
    t.equal(
      answer(await c.serve(req('s.example'), up.next('s.example'))).addr,
      '192.0.2.1',
      'immediate: the stale answer first',
    );
    await settle();
    t.same(
      answer(await c.serve(req('s.example'), up.next('s.example'))),
      { rcode: 0, ttl: 10, addr: '192.0.2.99' },
      'then the refreshed one',
    );
    // past DURATION: gone
    up.down = true;
    now.t += 10_000 + 60_000;
    const r = await c.serve(req('s.example'), up.next('s.example'));
    t.equal(r.rcode, 2, 'expired more than serve_stale DURATION ago: not served');
  },
);

t.test('serve_stale verify: the upstream first, the stale answer only when it fails', async (t) => {
  const now = { t: 3_000_000 };
  const { c, counts } = cache({ serveStale: { durationMs: 3_600_000, verify: true } }, now);
  const up = upstream(10);
  await c.serve(req('v.example'), up.next('v.example'));
  now.t += 20_000;
  up.addr = '192.0.2.50';
  t.same(
    answer(await c.serve(req('v.example'), up.next('v.example'))),
    { rcode: 0, ttl: 10, addr: '192.0.2.50' },
    'verified: the fresh answer',
  );
  now.t += 20_000;
  up.down = true;
  t.same(
    answer(await c.serve(req('v.example'), up.next('v.example'))),
    { rcode: 0, ttl: 0, addr: '192.0.2.50' },
    'upstream fails: stale',
  );
  t.equal(counts.stale, 1);
  t.equal(up.calls, 3);
});

t.test('servfail DURATION; keepttl', async (t) => {
  const now = { t: 4_000_000 };
  const off = cache({ servfailTtl: 0 }, now);
  const up = upstream();
  up.down = true;
  await off.c.serve(req('f.example'), up.next('f.example'));
  await off.c.serve(req('f.example'), up.next('f.example'));
  t.equal(up.calls, 2, 'servfail 0: never cached');
  const two = cache({ servfailTtl: 2 }, now);
  await two.c.serve(req('f.example'), up.next('f.example'));
  now.t += 1_900;
  const sf = await two.c.serve(req('f.example'), up.next('f.example'));
  t.equal(up.calls, 3, 'servfail 2s: cached');
  t.equal(sf.rcode, 2);
  t.ok(sf.cacheHit);
  now.t += 100;
  await two.c.serve(req('f.example'), up.next('f.example'));
  t.equal(up.calls, 4, 'for 2 s');

  const keep = cache({ keepTtl: true, successMaxTtl: 60 }, now);
  const up2 = upstream(100);
  await keep.c.serve(req('k.example'), up2.next('k.example'));
  now.t += 30_000;
  t.equal(
    answer(await keep.c.serve(req('k.example'), up2.next('k.example'))).ttl,
    60,
    'keepttl: not aged (the stored TTL within the 60 s cap)',
  );
  const age = cache({ successMaxTtl: 60 }, now);
  await age.c.serve(req('k.example'), up2.next('k.example'));
  now.t += 30_000;
  t.equal(answer(await age.c.serve(req('k.example'), up2.next('k.example'))).ttl, 30, 'without keepttl: aged');
  now.t += 30_000;
  await keep.c.serve(req('k.example'), up2.next('k.example'));
  t.equal(up2.calls, 3, 'keepttl entries still expire');
});

t.test('errors: SERVFAIL reasons logged; consolidate folds matching ones per DURATION', async (t) => {
  const lines: { level: string; msg: string }[] = [];
  const log = { ...silentLogger } as Logger;
  for (const level of ['error', 'warn', 'info'] as const)
    (log as unknown as Record<string, unknown>)[level] = (_o: object, msg: string) => lines.push({ level, msg });
  const timers: (() => void)[] = [];
  const e = new ErrorsPlugin([{ durationMs: 300_000, pattern: '.* no healthy upstream$', level: 'warn' }], {
    log,
    schedule: (fn) => (timers.push(fn), { cancel() {} }),
  });
  const up = upstream();
  up.down = true;
  for (let i = 0; i < 3; i++) await e.serve(req(`x${i}.example`), up.next('x.example'));
  await e.serve(req('ok.example'), () =>
    Promise.resolve(reply('forward', 2, { error: 'read udp 10.0.0.1:53: i/o timeout' })),
  );
  t.same(
    lines,
    [{ level: 'error', msg: 'SERVFAIL ok.example. A: read udp 10.0.0.1:53: i/o timeout' }],
    'one line for the error no rule matches; the others counted',
  );
  t.equal(timers.length, 1, 'one timer per window');
  timers[0]!();
  t.same(lines[1], { level: 'warn', msg: "3 errors like '.* no healthy upstream$' occurred in last 5m0s" });
  await e.serve(req('y.example'), () => Promise.resolve(reply('kubernetes', 0)));
  t.equal(lines.length, 2, 'answers without an error are not logged');
});

t.test('Corefile: the options parsed; accepted-only options reported', async (t) => {
  const [b] = parseCorefile(`.:53 {
    errors {
      consolidate 5m ".* i/o timeout$" warning
      consolidate 30s "^SERVFAIL"
      stacktrace
    }
    kubernetes cluster.local {
      kubeconfig /x y
    }
    forward . 10.0.0.1 {
      prefer_udp
      expire 20s
    }
    cache 30 {
      prefetch 10 2m 20%
      serve_stale 10m verify
      servfail 0
      keepttl
    }
  }`);
  t.same(b?.consolidate, [
    { durationMs: 300_000, pattern: '.* i/o timeout$', level: 'warn' },
    { durationMs: 30_000, pattern: '^SERVFAIL', level: 'error' },
  ]);
  t.match(b?.cache, {
    prefetch: { amount: 10, durationMs: 120_000, percentage: 20 },
    serveStale: { durationMs: 600_000, verify: true },
    servfailTtl: 0,
    keepTtl: true,
  });
  t.match(b?.ignored, [/^errors stacktrace/, /^kubernetes kubeconfig/, /^forward prefer_udp/, /^forward expire/]);
  const [d] = parseCorefile('. {\n cache {\n prefetch 2\n serve_stale\n }\n}');
  t.match(d?.cache, {
    prefetch: { amount: 2, durationMs: 60_000, percentage: 10 },
    serveStale: { durationMs: 3_600_000, verify: false },
    servfailTtl: 5,
    keepTtl: false,
  });
  t.throws(
    () => parseCorefile('. {\n cache {\n prefetch 1 5%\n }\n}'),
    { code: 'KDP_DNS_CONFIG' },
    'percentage out of range',
  );
  t.throws(() => parseCorefile('. {\n cache {\n servfail 10m\n }\n}'), { code: 'KDP_DNS_CONFIG' }, 'servfail over 5m');
  t.throws(() => parseCorefile('. {\n cache {\n serve_stale 1h later\n }\n}'), { code: 'KDP_DNS_CONFIG' });
  t.throws(
    () => parseCorefile('. {\n errors {\n consolidate 1m "(" \n }\n}'),
    { code: 'KDP_DNS_CONFIG' },
    'bad regexp',
  );
  t.throws(() => parseCorefile('. {\n errors {\n nonsense\n }\n}'), { code: 'KDP_DNS_CONFIG' });
});
