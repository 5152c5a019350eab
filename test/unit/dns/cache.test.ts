// The cache plugin with a fake clock and a fake next plugin: positive and negative entries, TTL caps and
// aging, the capacity bound, disabled zones, no caching of SERVFAIL.
import t from 'tap';
import { CachePlugin, DEFAULT_CACHE } from '../../../src/dns/plugins/cache.ts';
import type { CacheConfig } from '../../../src/dns/plugins/cache.ts';
import { LoadbalancePlugin } from '../../../src/dns/plugins/loadbalance.ts';
import type { DnsReply, DnsRequest, Plugin } from '../../../src/dns/chain.ts';
import { reply } from '../../../src/dns/chain.ts';
import { DnsMetrics } from '../../../src/dns/metrics.ts';
import { DnsServer } from '../../../src/dns/server.ts';
import {
  FLAG,
  RCODE,
  TYPE,
  addressRun,
  decode,
  encodeQuery,
  encodeResponse,
  shuffleRun,
  withClientOpt,
} from '../../../src/dns/wire.ts';
import type { RR } from '../../../src/dns/wire.ts';
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

t.test('positive and negative entries, aging, caps, capacity', async (t) => {
  let now = 1_000_000;
  const c = new CachePlugin(
    { ...DEFAULT_CACHE, successCap: 3, successMaxTtl: 60, denialMaxTtl: 10 },
    { now: () => now },
  );
  let calls = 0;
  const upstream = (name: string, rcode = 0): Promise<DnsReply> => {
    calls++;
    const soa = {
      name: 'example',
      ttl: 300,
      type: 'SOA' as const,
      data: { mname: 'a', rname: 'b', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 30 },
    };
    const wire = encodeResponse({
      id: 999,
      flags: 0,
      rcode,
      question: { name, type: TYPE.A, class: 1 },
      ...(rcode === 0 ? { answers: [{ name, ttl: 100, type: 'A', data: '192.0.2.1' }] } : { authority: [soa] }),
    }).wire;
    return Promise.resolve(reply('forward', rcode, { raw: wire }));
  };
  const r1 = await c.serve(req('a.example'), () => upstream('a.example'));
  t.equal(calls, 1);
  now += 10_000;
  const r2 = await c.serve(req('A.example', 7), () => upstream('a.example'));
  t.equal(calls, 1, 'hit (names are case-insensitive)');
  t.ok(r2.cacheHit);
  t.notOk(r1.cacheHit);
  const m = decode(r2.raw!);
  t.equal(m.id, 7, 'id of the new query');
  t.equal(m.answers[0]?.ttl, 50, 'TTL = what is left of the 60 s entry (CoreDNS: capped, then aged)');
  now += 51_000;
  await c.serve(req('a.example'), () => upstream('a.example'));
  t.equal(calls, 2, 'expired at the 60 s cap (upstream said 100)');
  // negative: NXDOMAIN capped at denialMaxTtl 10 (SOA minimum 30)
  await c.serve(req('nx.example'), () => upstream('nx.example', 3));
  await c.serve(req('nx.example'), () => upstream('nx.example', 3));
  t.equal(calls, 3, 'negative hit');
  now += 11_000;
  await c.serve(req('nx.example'), () => upstream('nx.example', 3));
  t.equal(calls, 4, 'negative entry expired at 10 s');
  // SERVFAIL is cached for `servfail` (CoreDNS default 5 s)
  await c.serve(req('sf.example'), () => upstream('sf.example', 2));
  const sf = await c.serve(req('sf.example'), () => upstream('sf.example', 2));
  t.equal(calls, 5, 'SERVFAIL cached');
  t.equal(sf.rcode, 2);
  now += 5_000;
  await c.serve(req('sf.example'), () => upstream('sf.example', 2));
  t.equal(calls, 6, 'for 5 s');
  // capacity: 3 success entries, least recently used goes
  for (const n of ['b', 'c', 'd', 'e']) await c.serve(req(`${n}.example`), () => upstream(`${n}.example`));
  t.equal(c.size.success, 3, 'bounded');
  const before = calls;
  await c.serve(req('e.example'), () => upstream('e.example'));
  t.equal(calls, before, 'the newest is kept');
  await c.serve(req('a.example'), () => upstream('a.example'));
  t.equal(calls, before + 1, 'the oldest was evicted');
});

t.test('disabled zones and struct answers', async (t) => {
  const c = new CachePlugin({ ...DEFAULT_CACHE, disableSuccess: ['cluster.local'], disableDenial: ['cluster.local'] });
  let calls = 0;
  const k = () => {
    calls++;
    return Promise.resolve(
      reply('kubernetes', 0, {
        aa: true,
        answers: [{ name: 'web.ns.svc.cluster.local', ttl: 30, type: 'A', data: '10.0.0.1' }],
      }),
    );
  };
  await c.serve(req('web.ns.svc.cluster.local'), k);
  await c.serve(req('web.ns.svc.cluster.local'), k);
  t.equal(calls, 2, 'cluster.local is not cached');
  const o = () => {
    calls++;
    return Promise.resolve(reply('x', 0, { answers: [{ name: 'web.example', ttl: 30, type: 'A', data: '10.0.0.1' }] }));
  };
  await c.serve(req('web.example'), o);
  const hit = await c.serve(req('web.example'), o);
  t.equal(calls, 3, 'other zones are');
  t.equal(decode(hit.raw!).answers[0]?.ttl, 30);
});

// ---------------------------------------------------------------- the wire fast path of cache hits
// A DnsServer with cache -> fake upstream (a plugin answering with whole messages, as forward does).

function upstreamPlugin(counter: { n: number }, opts: { addrs?: number; rcode?: number; ttl?: number } = {}): Plugin {
  return {
    name: 'forward',
    async serve(r: DnsRequest): Promise<DnsReply> {
      counter.n++;
      const n = opts.addrs ?? 1;
      const rcode = opts.rcode ?? 0;
      const soa = {
        name: 'example',
        ttl: 300,
        type: 'SOA' as const,
        data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 60 },
      };
      const answers: RR[] =
        rcode === 0
          ? Array.from({ length: n }, (_, i) => ({
              name: r.question.name,
              ttl: opts.ttl ?? 100,
              type: 'A' as const,
              data: `192.0.2.${i + 1}`,
            }))
          : [];
      // as an upstream answers our forwarded query: with its own OPT record
      const wire = encodeResponse({
        id: 4321,
        flags: FLAG.QR | FLAG.RA | (r.flags & FLAG.RD),
        rcode,
        question: r.question,
        answers,
        authority: rcode === 0 ? [] : [soa],
        edns: { udpSize: 4096, do: false },
      }).wire;
      return reply('forward', rcode, { raw: withClientOpt(wire, r.edns ? { do: r.edns.do } : undefined) });
    },
  };
}

function cacheServer(now: { t: number }, up: Plugin, cfg: Partial<CacheConfig> = {}, loadbalance = false) {
  const metrics = new DnsMetrics({ server: 'dns://', version: 'test' });
  const cache = new CachePlugin({ ...DEFAULT_CACHE, ...cfg }, { now: () => now.t, stats: metrics.cacheStats('.') });
  const s = new DnsServer({
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
    metrics,
    blocks: [{ zones: [''], plugins: loadbalance ? [new LoadbalancePlugin(), cache, up] : [cache, up] }],
  });
  return { s, cache, metrics };
}

const query = (name: string, id: number, edns?: { udpSize: number; do?: boolean }) =>
  encodeQuery({ id, name, type: TYPE.A, ...(edns ? { edns } : {}) });

t.test("cache hits from the wire: TTL decay, the client's case, id, EDNS", async (t) => {
  const now = { t: 5_000_000 };
  const calls = { n: 0 };
  const { s, metrics } = cacheServer(now, upstreamPlugin(calls), { successMaxTtl: 60 });
  const first = decode((await s.respond(query('www.example.org', 1), 'udp', '127.0.0.1'))!);
  t.equal(calls.n, 1);
  t.equal(first.answers[0]?.ttl, 100, 'a miss passes the upstream TTL through');
  t.notOk(first.edns, "no OPT in the answer to a query without one (the upstream's OPT is removed)");
  t.equal(s.cacheFastHits, 0);

  now.t += 7_400;
  const wire = (await s.respond(query('WwW.ExAmPlE.oRg', 2), 'udp', '127.0.0.1'))!;
  const hit = decode(wire);
  t.equal(calls.n, 1, 'served from the cache');
  t.equal(s.cacheFastHits, 1, 'straight from the query bytes');
  t.equal(hit.id, 2);
  t.equal(hit.questions[0]?.name, 'WwW.ExAmPlE.oRg', 'the question as this client spelled it');
  t.equal(hit.answers[0]?.name, 'WwW.ExAmPlE.oRg', "owner names point at the question, so they keep the client's case");
  t.equal(hit.answers[0]?.ttl, 53, 'TTL = entry lifetime (60, the cap) - 7 s elapsed');
  t.equal(hit.flags & FLAG.RD, FLAG.RD, 'RD copied from the query');
  t.notOk(hit.edns);

  now.t += 30_000;
  const e = decode((await s.respond(query('www.example.org', 3, { udpSize: 1232, do: false }), 'udp', '127.0.0.1'))!);
  t.equal(calls.n, 1, 'EDNS and plain queries share the entry (same DO bit)');
  t.equal(e.answers[0]?.ttl, 23, 'decays further');
  t.same(e.edns, { udpSize: 1232, version: 0, do: false, extRcode: 0 }, 'our OPT for an EDNS client');

  const d = decode((await s.respond(query('www.example.org', 4, { udpSize: 1232, do: true }), 'udp', '127.0.0.1'))!);
  t.equal(calls.n, 2, 'DO set: its own entry');
  t.equal(d.edns?.do, true);

  now.t += 22_000;
  const late = decode((await s.respond(query('www.example.org', 5), 'udp', '127.0.0.1'))!);
  t.equal(late.answers[0]?.ttl, 1, '59.4 s after: 1 s left');
  now.t += 600;
  await s.respond(query('www.example.org', 6), 'udp', '127.0.0.1');
  t.equal(calls.n, 3, 'expired after 60 s');

  const text = await metrics.registry.metrics();
  t.match(
    text,
    /coredns_cache_hits_total\{server="dns:\/\/",type="success",zones="\.",view=""\} 3/,
    'hits from the wire path are counted',
  );
  t.match(text, /coredns_cache_misses_total\{[^}]*\} 3/);
  t.match(
    text,
    /coredns_dns_responses_total\{server="dns:\/\/",zone="\.",view="",rcode="NOERROR",plugin="cache"\} 3/,
    'and answered by plugin cache',
  );
});

t.test('cache hits from the wire: negative entries, truncation, loadbalance, keepttl-free aging of SOA', async (t) => {
  const now = { t: 9_000_000 };
  const calls = { n: 0 };
  const { s } = cacheServer(now, upstreamPlugin(calls, { rcode: RCODE.NXDOMAIN }), { denialMaxTtl: 30 });
  await s.respond(query('nope.example', 1), 'udp', '127.0.0.1');
  now.t += 10_000;
  const nx = decode((await s.respond(query('NOPE.example', 2), 'udp', '127.0.0.1'))!);
  t.equal(calls.n, 1);
  t.equal(s.cacheFastHits, 1);
  t.equal(nx.rcode, RCODE.NXDOMAIN);
  t.equal(nx.authority[0]?.type, 'SOA');
  t.equal(nx.authority[0]?.ttl, 20, 'SOA TTL = min(300, minimum 60, cap 30) - 10 s');

  // 40 addresses: 12 + 16 + 40 * 16 = 668 bytes > 512: the wire path declines, the full path truncates
  const big = { n: 0 };
  const b = cacheServer(now, upstreamPlugin(big, { addrs: 40 }));
  await b.s.respond(query('big.example', 1, { udpSize: 4096 }), 'udp', '127.0.0.1');
  const cut = decode((await b.s.respond(query('big.example', 2), 'udp', '127.0.0.1'))!);
  t.equal(big.n, 1, 'the entry is there');
  t.equal(b.s.cacheFastHits, 0, 'but does not fit 512 bytes');
  t.equal(cut.flags & FLAG.TC, FLAG.TC, 'TC set for the plain UDP client');
  t.equal(cut.answers.length, 0);
  const tcp = decode((await b.s.respond(query('big.example', 3), 'tcp', '127.0.0.1'))!);
  t.equal(tcp.answers.length, 40, 'complete over TCP');
  t.equal(b.s.cacheFastHits, 1);
  const large = decode((await b.s.respond(query('big.example', 4, { udpSize: 1232 }), 'udp', '127.0.0.1'))!);
  t.equal(large.answers.length, 40, 'complete for an EDNS client with room');

  // capacity bound holds for wire entries
  const c = cacheServer(now, upstreamPlugin({ n: 0 }), { successCap: 2 });
  for (const n of ['a', 'b', 'c']) await c.s.respond(query(`${n}.example`, 1), 'udp', '127.0.0.1');
  t.equal(c.cache.size.success, 2);
});

t.test(
  'cache hits by question bytes: a spelling answered once skips the name; expiry, replacement, reload',
  async (t) => {
    const now = { t: 3_000_000 };
    let addr = '192.0.2.1';
    let calls = 0;
    const up: Plugin = {
      name: 'forward',
      async serve(r: DnsRequest) {
        calls++;
        const wire = encodeResponse({
          id: 1,
          flags: FLAG.QR | FLAG.RA | FLAG.RD,
          rcode: 0,
          question: r.question,
          answers: [{ name: r.question.name, ttl: 100, type: 'A', data: addr }],
        }).wire;
        return reply('forward', 0, { raw: withClientOpt(wire, r.edns ? { do: r.edns.do } : undefined) });
      },
    };
    const { s } = cacheServer(now, up, { successMaxTtl: 60 });
    const ask = async (name: string, id: number, edns?: { udpSize: number; do?: boolean }) =>
      (await s.respond(query(name, id, edns), 'udp', '127.0.0.1'))!;
    await ask('www.example.org', 1);
    await ask('www.example.org', 2);
    t.equal(s.cacheFastHits, 1, 'the first hit reads the name from the bytes');
    t.equal(s.cacheRouteHits, 0);
    now.t += 2_000;
    const routed = await ask('www.example.org', 3);
    t.equal(s.cacheRouteHits, 1, 'the same bytes again: by the route kept for them');
    t.same(routed, (await s.handle(query('www.example.org', 3), 'udp', '127.0.0.1'))!, "the same bytes as the chain's");
    t.equal(decode(routed).answers[0]?.ttl, 58, 'aged');
    await ask('WWW.example.org', 4);
    t.equal(s.cacheRouteHits, 1, 'another spelling has no route yet');
    const spelled = decode(await ask('WWW.example.org', 5));
    t.equal(s.cacheRouteHits, 2, 'then it has its own');
    t.equal(spelled.answers[0]?.name, 'WWW.example.org', "the client's spelling");
    const plainEdns = decode(await ask('www.example.org', 6, { udpSize: 1232 }));
    t.equal(calls, 1, 'EDNS without DO shares the plain entry');
    t.equal(plainEdns.edns?.do, false);
    await ask('www.example.org', 7, { udpSize: 1232, do: true });
    t.equal(calls, 2, 'DO: its own entry, not the route of the plain spelling');
    t.equal(decode(await ask('www.example.org', 8, { udpSize: 1232, do: true })).edns?.do, true);

    // expiry and a new upstream answer: the route finds whatever entry the cache holds now
    addr = '192.0.2.99';
    now.t += 60_000;
    const hits = s.cacheRouteHits;
    const fresh = decode(await ask('www.example.org', 9));
    t.equal(calls, 3, 'expired: asked again');
    t.equal(s.cacheRouteHits, hits, 'a route to an expired entry is a miss');
    const after = decode(await ask('www.example.org', 10));
    t.equal(s.cacheRouteHits, hits + 1);
    t.same(
      [fresh.answers[0], after.answers[0]].map((a) => (a?.type === 'A' ? a.data : '')),
      ['192.0.2.99', '192.0.2.99'],
      'the new answer, through the old route',
    );

    // a reload swaps the blocks: routes point at the old cache and are dropped
    const other = new CachePlugin({ ...DEFAULT_CACHE }, { now: () => now.t });
    addr = '192.0.2.7';
    s.setBlocks([{ zones: [''], plugins: [other, up] }]);
    const reloaded = decode(await ask('www.example.org', 11));
    t.equal(calls, 4, 'the new cache is empty: asked again');
    t.same(reloaded.answers[0]?.type === 'A' && reloaded.answers[0].data, '192.0.2.7');
    t.equal(s.cacheRouteHits, hits + 1, 'no route of the old blocks was used');
  },
);

t.test('objects from a plugin are cached as wire answers too; several addresses stay shuffleable', async (t) => {
  const now = { t: 1_000 };
  let calls = 0;
  const k: Plugin = {
    name: 'kubernetes',
    async serve(r: DnsRequest) {
      calls++;
      return reply('kubernetes', 0, {
        aa: true,
        answers: [
          { name: r.question.name, ttl: 30, type: 'A', data: '10.0.0.1' },
          { name: r.question.name, ttl: 30, type: 'A', data: '10.0.0.2' },
        ],
      });
    },
  };
  const lb = cacheServer(now, k, {}, true);
  await lb.s.respond(query('two.example', 1), 'udp', '127.0.0.1');
  const again = decode((await lb.s.respond(query('two.example', 2), 'udp', '127.0.0.1'))!);
  t.equal(calls, 1);
  t.equal(lb.s.cacheFastHits, 1, 'loadbalance with several addresses: from the wire too');
  t.equal(again.answers.length, 2);
  t.equal(again.flags & FLAG.AA, FLAG.AA);
  const orders = new Set<string>();
  for (let i = 0; i < 64; i++) {
    const m = decode((await lb.s.respond(query('Two.example', 3 + i), 'udp', '127.0.0.1'))!);
    t.equal(m.answers.length, 2);
    orders.add(m.answers.map((a) => (a.type === 'A' ? `${a.name} ${a.data} ${a.ttl}` : '')).join(','));
  }
  t.same(
    [...orders].sort(),
    ['Two.example 10.0.0.1 30,Two.example 10.0.0.2 30', 'Two.example 10.0.0.2 30,Two.example 10.0.0.1 30'],
    'loadbalance: both orders, records intact (owner, address, TTL)',
  );
  const plain = cacheServer(now, k, {}, false);
  await plain.s.respond(query('two.example', 1), 'udp', '127.0.0.1');
  const w = decode((await plain.s.respond(query('TWO.example', 2), 'udp', '127.0.0.1'))!);
  t.equal(plain.s.cacheFastHits, 1, 'without loadbalance: from the wire');
  t.same(
    w.answers.map((a) => [a.name, a.type === 'A' ? a.data : '']),
    [
      ['TWO.example', '10.0.0.1'],
      ['TWO.example', '10.0.0.2'],
    ],
  );
  t.equal(w.flags & FLAG.AA, FLAG.AA);
});

t.test('loadbalance shuffles forwarded answers (whole messages) too, on a miss and from the wire', async (t) => {
  const now = { t: 1_000 };
  const calls = { n: 0 };
  const { s } = cacheServer(now, upstreamPlugin(calls, { addrs: 4 }), {}, true);
  const seen = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const m = decode(
      (await s.respond(query('many.example', i, i % 2 ? { udpSize: 1232 } : undefined), 'udp', '127.0.0.1'))!,
    );
    t.equal(m.answers.length, 4);
    seen.add(m.answers.map((a) => (a.type === 'A' ? a.data : '')).join(','));
    t.same(m.answers.map((a) => (a.type === 'A' ? a.data : '')).sort(), [
      '192.0.2.1',
      '192.0.2.2',
      '192.0.2.3',
      '192.0.2.4',
    ]);
  }
  t.equal(calls.n, 1);
  t.ok(seen.size > 4, `several orders (${seen.size} of 24)`);
});

t.test('wire helpers: addressRun after a CNAME, shuffleRun keeps records whole; withClientOpt', async (t) => {
  const q = { name: 'www.example', type: TYPE.A, class: 1 };
  const answers: RR[] = [
    { name: 'www.example', ttl: 60, type: 'CNAME', data: 'lb.example' },
    ...[1, 2, 3].map((i) => ({ name: 'lb.example', ttl: 60, type: 'A' as const, data: `198.51.100.${i}` })),
  ];
  const wire = encodeResponse({
    id: 1,
    flags: FLAG.RA,
    rcode: 0,
    question: q,
    answers,
    edns: { udpSize: 4096, do: false },
  }).wire;
  const m = decode(wire);
  const run = addressRun(m, wire);
  t.same(run && { count: run.count, size: run.size }, { count: 3, size: 16 }, 'the three A records after the CNAME');
  const out = Buffer.from(wire);
  shuffleRun(out, run!, (n) => n - 1 - (n > 1 ? 1 : 0)); // a fixed permutation
  const back = decode(out);
  t.same(back.answers[0], m.answers[0], 'the CNAME stays first');
  t.same(
    back.answers
      .slice(1)
      .map((a) => (a.type === 'A' ? `${a.name} ${a.data}` : ''))
      .sort(),
    ['lb.example 198.51.100.1', 'lb.example 198.51.100.2', 'lb.example 198.51.100.3'],
  );
  t.notSame(back.answers.slice(1), m.answers.slice(1), 'in another order');
  t.equal(
    addressRun(
      decode(encodeResponse({ id: 1, flags: 0, rcode: 0, question: q, answers: answers.slice(0, 2) }).wire),
      wire,
    ),
    undefined,
    'a single address: nothing to shuffle',
  );
  const plain = withClientOpt(wire, undefined);
  t.notOk(decode(plain).edns, 'no OPT for a client without EDNS');
  t.same(decode(plain).answers, m.answers);
  t.same(
    decode(withClientOpt(wire, { do: true })).edns,
    { udpSize: 1232, version: 0, do: true, extRcode: 0 },
    "our OPT with the client's DO bit",
  );
});
