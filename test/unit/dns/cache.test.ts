// The cache plugin with a fake clock and a fake next plugin: positive and negative entries, TTL caps and
// aging, the capacity bound, disabled zones, no caching of SERVFAIL.
import t from 'tap';
import { CachePlugin, DEFAULT_CACHE } from '../../../src/dns/plugins/cache.ts';
import type { DnsReply, DnsRequest } from '../../../src/dns/chain.ts';
import { reply } from '../../../src/dns/chain.ts';
import { TYPE, decode, encodeResponse } from '../../../src/dns/wire.ts';

function req(name: string, id = 1): DnsRequest {
  return { id, flags: 0x100, question: { name, type: TYPE.A, class: 1 }, lname: name.toLowerCase(), qtype: 'A', proto: 'udp', client: '127.0.0.1' };
}

t.test('positive and negative entries, aging, caps, capacity', async (t) => {
  let now = 1_000_000;
  const c = new CachePlugin({ ...DEFAULT_CACHE, successCap: 3, successMaxTtl: 60, denialMaxTtl: 10 }, { now: () => now });
  let calls = 0;
  const upstream = (name: string, rcode = 0): Promise<DnsReply> => {
    calls++;
    const soa = { name: 'example', ttl: 300, type: 'SOA' as const, data: { mname: 'a', rname: 'b', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 30 } };
    const wire = encodeResponse({ id: 999, flags: 0, rcode, question: { name, type: TYPE.A, class: 1 }, ...(rcode === 0 ? { answers: [{ name, ttl: 100, type: 'A', data: '192.0.2.1' }] } : { authority: [soa] }) }).wire;
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
  t.equal(m.answers[0]?.ttl, 90, 'TTL aged by 10 s');
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
  // SERVFAIL is not cached
  await c.serve(req('sf.example'), () => upstream('sf.example', 2));
  await c.serve(req('sf.example'), () => upstream('sf.example', 2));
  t.equal(calls, 6);
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
    return Promise.resolve(reply('kubernetes', 0, { aa: true, answers: [{ name: 'web.ns.svc.cluster.local', ttl: 30, type: 'A', data: '10.0.0.1' }] }));
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
  t.equal(hit.answers[0]?.ttl, 30);
});
