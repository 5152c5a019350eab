// The wire codec against dns-packet (an independent implementation) and the server's in-memory path:
// EDNS sizes, truncation, FORMERR/NOTIMP/REFUSED/BADVERS, the fast path's reuse of answers, 0x20 case.
import t from 'tap';
import dnsPacket from 'dns-packet';
import { KubernetesRecords } from '../../../src/dns/plugins/kubernetes/handler.ts';
import { KubernetesPlugin } from '../../../src/dns/plugins/kubernetes/plugin.ts';
import { DEFAULT_KUBERNETES_CONFIG } from '../../../src/dns/plugins/kubernetes/records.ts';
import { DnsServer } from '../../../src/dns/server.ts';
import { FLAG, RCODE, TYPE, decode, encodeQuery, encodeResponse, readName } from '../../../src/dns/wire.ts';
import type { RR } from '../../../src/dns/wire.ts';
import { silentLogger } from '../../../src/common/log.ts';
import { isKdpError } from '../../../src/common/errors.ts';
import { ep, ns, slice, svc, port, testCluster } from './fixtures.ts';

t.test('encodeResponse is read back by dns-packet, with compression', async (t) => {
  const answers: RR[] = [
    { name: 'web.ns.svc.cluster.local', ttl: 5, type: 'A', data: '10.0.0.1' },
    { name: 'web.ns.svc.cluster.local', ttl: 5, type: 'AAAA', data: 'fd00::1' },
    {
      name: 'web.ns.svc.cluster.local',
      ttl: 5,
      type: 'SRV',
      data: { priority: 0, weight: 100, port: 80, target: 'web.ns.svc.cluster.local' },
    },
    { name: 'web.ns.svc.cluster.local', ttl: 5, type: 'CNAME', data: 'example.net' },
    { name: '1.0.0.10.in-addr.arpa', ttl: 5, type: 'PTR', data: 'web.ns.svc.cluster.local' },
    { name: 'dns-version.cluster.local', ttl: 28800, type: 'TXT', data: ['1.1.0'] },
  ];
  const authority: RR[] = [
    {
      name: 'cluster.local',
      ttl: 5,
      type: 'SOA',
      data: {
        mname: 'ns.dns.cluster.local',
        rname: 'hostmaster.cluster.local',
        serial: 7,
        refresh: 7200,
        retry: 1800,
        expire: 86400,
        minimum: 5,
      },
    },
  ];
  const { wire, truncated } = encodeResponse({
    id: 4242,
    flags: FLAG.AA,
    rcode: 0,
    question: { name: 'Web.NS.svc.cluster.local', type: TYPE.A, class: 1 },
    answers,
    authority,
    edns: { udpSize: 1232, do: false },
  });
  t.notOk(truncated);
  const p = dnsPacket.decode(wire);
  t.equal(p.id, 4242);
  t.equal(p.flag_aa, true);
  t.equal(p.answers?.length, 6);
  t.same(
    p.answers?.map((a) => [a.type, a.name]),
    [
      ['A', 'Web.NS.svc.cluster.local'],
      ['AAAA', 'Web.NS.svc.cluster.local'],
      ['SRV', 'Web.NS.svc.cluster.local'],
      ['CNAME', 'Web.NS.svc.cluster.local'],
      ['PTR', '1.0.0.10.in-addr.arpa'],
      ['TXT', 'dns-version.cluster.local'],
    ],
    'owner names compressed against the question keep its case',
  );
  t.same((p.answers?.[2] as { data: unknown }).data, {
    priority: 0,
    weight: 100,
    port: 80,
    target: 'web.ns.svc.cluster.local',
  });
  t.equal((p.answers?.[1] as { data: unknown }).data, 'fd00::1');
  t.same((p.authorities?.[0] as { data: unknown }).data, {
    mname: 'ns.dns.cluster.local',
    rname: 'hostmaster.cluster.local',
    serial: 7,
    refresh: 7200,
    retry: 1800,
    expire: 86400,
    minimum: 5,
  });
  t.equal(p.additionals?.[0]?.type, 'OPT');
  const back = decode(wire);
  // names compress case-insensitively (as miekg/dns does): the PTR target takes the question's spelling
  const want = answers.map((a, i) =>
    i < 4
      ? { ...a, name: 'Web.NS.svc.cluster.local' }
      : a.type === 'PTR'
        ? { ...a, data: 'Web.NS.svc.cluster.local' }
        : a,
  );
  t.same(back.answers, want, 'our decoder reads what we wrote');
  t.same(back.authority, authority);
  t.ok(wire.length < 300, `compressed (${wire.length} bytes)`);
  // and our decoder reads what dns-packet writes
  const theirs = dnsPacket.encode({
    type: 'query',
    id: 9,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'SRV', name: '_http._tcp.web.ns.svc.cluster.local' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: dnsPacket.DNSSEC_OK } as never],
  });
  const m = decode(theirs);
  t.same(m.questions, [{ name: '_http._tcp.web.ns.svc.cluster.local', type: TYPE.SRV, class: 1 }]);
  t.same(m.edns, { udpSize: 4096, extRcode: 0, version: 0, do: true });
});

t.test('names: compression pointers must point backwards; limits hold', async (t) => {
  const loop = Buffer.from([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
  t.throws(() => decode(loop), { code: 'KDP_DNS_MALFORMED' }, 'self pointer');
  const long = Buffer.concat([
    Buffer.alloc(12),
    ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])),
    Buffer.from([0]),
  ]);
  t.throws(() => readName(long, 12), { code: 'KDP_DNS_MALFORMED' }, 'over 255 octets');
  t.throws(() => readName(Buffer.from([5, 0x61]), 0), { code: 'KDP_DNS_MALFORMED' }, 'label past the end');
  t.same(readName(Buffer.from([1, 0x2e, 0]), 0).name, '\\.', 'a dot inside a label is escaped');
});

async function server(cfgPods: 'disabled' | 'insecure' = 'disabled') {
  const src = testCluster();
  // 100 ready endpoints behind one headless service: more than 512 bytes of answers
  src.put(svc('testns', 'big', { headless: true, ports: [port('http', 80)] }));
  src.put(
    slice(
      'testns',
      'big',
      Array.from({ length: 100 }, (_, i) => ep([`172.18.${Math.floor(i / 200)}.${(i % 200) + 1}`])),
      [{ name: 'http', port: 80 }],
    ),
  );
  src.put(ns('ns2'));
  const rec = new KubernetesRecords({ ...DEFAULT_KUBERNETES_CONFIG, pods: cfgPods });
  rec.attach(src);
  const s = new DnsServer({
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
    answers: rec,
    blocks: [{ zones: [''], plugins: [new KubernetesPlugin(rec)] }],
  });
  return { s, src, rec };
}

t.test(
  'server: before sync SERVFAIL; after sync answers; 0x20 case kept; fast path reuses and invalidates',
  async (t) => {
    const { s, src, rec } = await server();
    const q = (name: string, type: number, id = 1, edns?: { udpSize: number }) =>
      encodeQuery({ id, name, type, ...(edns ? { edns } : {}) });
    let r = decode((await s.handle(q('svc1.testns.svc.cluster.local', TYPE.A), 'udp', '127.0.0.1'))!);
    t.equal(r.rcode, RCODE.SERVFAIL, 'SERVFAIL before the initial sync');
    await src.start();
    await rec.settled();
    t.ok(rec.synced);
    const first = (await s.handle(q('sVc1.TestNs.svc.cluster.local', TYPE.A, 77), 'udp', '127.0.0.1'))!;
    r = decode(first);
    t.equal(r.id, 77);
    t.equal(r.flags & FLAG.AA, FLAG.AA, 'authoritative');
    t.same(r.answers, [{ name: 'sVc1.TestNs.svc.cluster.local', ttl: 5, type: 'A', data: '10.0.0.1' }]);
    // the second time, the encoded answer is reused: same bytes but the id; the key is the spelling (a
    // cluster answer can carry the query's spelling of the zone beyond the question: SRV targets)
    t.equal(s.fastHits, 0);
    const again = (await s.respond(q('sVc1.TestNs.svc.cluster.local', TYPE.A, 78), 'udp', '127.0.0.1'))!;
    t.equal(s.fastHits, 1, 'served by the fast path');
    const d = decode(again);
    t.equal(d.id, 78);
    t.same(d.answers, [{ name: 'sVc1.TestNs.svc.cluster.local', ttl: 5, type: 'A', data: '10.0.0.1' }]);
    t.equal(again.length, first.length);
    const other = decode((await s.respond(q('SVC1.testns.svc.cluster.local', TYPE.A, 79), 'udp', '127.0.0.1'))!);
    t.equal(s.fastHits, 1, 'another spelling takes the full path');
    t.same(
      other.answers,
      [{ name: 'SVC1.testns.svc.cluster.local', ttl: 5, type: 'A', data: '10.0.0.1' }],
      'in its own spelling',
    );
    const rdOff = q('svc1.testns.svc.cluster.local', TYPE.A, 80);
    rdOff.writeUInt16BE(0, 2);
    t.equal(decode((await s.respond(rdOff, 'udp', '127.0.0.1'))!).flags & FLAG.RD, 0, 'RD copied from the query');
    src.put(svc('testns', 'svc1', { clusterIPs: ['10.0.0.99'], ports: [port('http', 80)] }));
    await rec.settled();
    const hits = s.fastHits;
    t.same(
      decode((await s.respond(q('svc1.testns.svc.cluster.local', TYPE.A, 79), 'udp', '127.0.0.1'))!).answers,
      [{ name: 'svc1.testns.svc.cluster.local', ttl: 5, type: 'A', data: '10.0.0.99' }],
      'a change is seen at once',
    );
    t.equal(s.fastHits, hits, 'the change emptied the fast path');
    r = decode((await s.handle(q('nosuch.testns.svc.cluster.local', TYPE.A), 'udp', '127.0.0.1'))!);
    t.equal(r.rcode, RCODE.NXDOMAIN);
    t.equal(r.authority[0]?.type, 'SOA', 'SOA in authority');
  },
);

// CoreDNS (plugin/kubernetes/handler.go) keeps the query's spelling of the zone for the records it builds:
// the SRV target of `_http._tcp.svc1.testns.svc.cLuStEr.LoCaL.` is `svc1.testns.svc.cLuStEr.LoCaL.`
// (an SRV target is never compressed, so it keeps that spelling on the wire), whatever was asked before.
t.test("SRV targets keep the query's spelling of the zone, on the full path and the fast path", async (t) => {
  const { s, src, rec } = await server();
  await src.start();
  await rec.settled();
  const srv = async (name: string) =>
    decode((await s.respond(encodeQuery({ id: 3, name, type: TYPE.SRV }), 'udp', '127.0.0.1'))!);
  const targets = (m: ReturnType<typeof decode>) =>
    m.answers.map((a) => (a.type === 'SRV' ? a.data.target : a.type)).sort();
  const spellings = [
    ['_http._tcp.svc1.testns.svc.cluster.local', ['svc1.testns.svc.cluster.local']],
    ['_http._tcp.svc1.testns.svc.cLuStEr.LoCaL', ['svc1.testns.svc.cLuStEr.LoCaL']],
    ['_http._tcp.svc1.TESTNS.svc.CLUSTER.local', ['svc1.testns.svc.CLUSTER.local']],
    [
      '_http._tcp.hdls1.testns.svc.cLuStEr.LoCaL',
      ['172-17-0-23', 'web-0', 'web-1'].map((h) => `${h}.hdls1.testns.svc.cLuStEr.LoCaL`),
    ],
    [
      '_http._tcp.hdls1.testns.svc.cluster.local',
      ['172-17-0-23', 'web-0', 'web-1'].map((h) => `${h}.hdls1.testns.svc.cluster.local`),
    ],
  ] as const;
  // twice in a row, so the second round is served from reused bytes where the fast path has them
  for (const round of [1, 2])
    for (const [qname, want] of spellings) t.same(targets(await srv(qname)), want, `${qname} (round ${round})`);
  t.ok(s.fastHits > 0, `the fast path answered some (${s.fastHits})`);
});

t.test('server: EDNS sizes and truncation', async (t) => {
  const { s, src, rec } = await server();
  await src.start();
  await rec.settled();
  const name = 'big.testns.svc.cluster.local';
  const plain = decode((await s.handle(encodeQuery({ id: 5, name, type: TYPE.A }), 'udp', '127.0.0.1'))!);
  t.equal(plain.flags & FLAG.TC, FLAG.TC, 'no EDNS: 512 bytes, so TC');
  t.equal(plain.answers.length, 0);
  t.same(plain.questions[0]?.name, name);
  const edns = (await s.handle(
    encodeQuery({ id: 6, name, type: TYPE.A, edns: { udpSize: 4096 } }),
    'udp',
    '127.0.0.1',
  ))!;
  t.equal(decode(edns).answers.length, 100, 'EDNS 4096: all 100 fit');
  t.ok(edns.length <= 4096);
  const small = decode(
    (await s.handle(encodeQuery({ id: 7, name, type: TYPE.A, edns: { udpSize: 1232 } }), 'udp', '127.0.0.1'))!,
  );
  t.equal(small.flags & FLAG.TC, FLAG.TC, '100 A records (1600+ bytes) do not fit 1232 bytes');
  const tiny = decode(
    (await s.handle(encodeQuery({ id: 8, name, type: TYPE.A, edns: { udpSize: 100 } }), 'udp', '127.0.0.1'))!,
  );
  t.equal(tiny.flags & FLAG.TC, FLAG.TC, 'EDNS sizes below 512 count as 512');
  t.ok(tiny.edns, 'OPT echoed');
  const tcp = decode((await s.handle(encodeQuery({ id: 9, name, type: TYPE.A }), 'tcp', '127.0.0.1'))!);
  t.equal(tcp.answers.length, 100, 'TCP: everything');
  t.equal(tcp.flags & FLAG.TC, 0);
});

t.test('server: malformed and unusual queries', async (t) => {
  const { s, src, rec } = await server();
  await src.start();
  await rec.settled();
  t.equal(await s.handle(Buffer.from([1, 2, 3]), 'udp', '127.0.0.1'), undefined, 'shorter than a header: dropped');
  const resp = encodeQuery({ id: 1, name: 'a', type: 1 });
  resp.writeUInt16BE(resp.readUInt16BE(2) | FLAG.QR, 2);
  t.equal(await s.handle(resp, 'udp', '127.0.0.1'), undefined, 'a response is never answered');
  const bad = Buffer.from([0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f, 0x61]);
  let r = decode((await s.handle(bad, 'udp', '127.0.0.1'))!);
  t.equal(r.rcode, RCODE.FORMERR, 'bad question: FORMERR');
  t.equal(r.id, 0xabcd);
  const two = Buffer.from([0, 1, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 0x61, 0, 0, 1, 0, 1, 1, 0x62, 0, 0, 1, 0, 1]);
  t.equal(decode((await s.handle(two, 'udp', '127.0.0.1'))!).rcode, RCODE.FORMERR, 'two questions: FORMERR');
  const none = Buffer.from([0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  t.equal(decode((await s.handle(none, 'udp', '127.0.0.1'))!).rcode, RCODE.FORMERR, 'no question: FORMERR');
  const notify = encodeQuery({ id: 2, name: 'cluster.local', type: TYPE.SOA });
  notify.writeUInt16BE(notify.readUInt16BE(2) | (4 << 11), 2);
  t.equal(decode((await s.handle(notify, 'udp', '127.0.0.1'))!).rcode, RCODE.NOTIMP, 'opcode NOTIFY: NOTIMP');
  t.equal(
    decode((await s.handle(encodeQuery({ id: 3, name: 'cluster.local', type: TYPE.AXFR }), 'tcp', '127.0.0.1'))!).rcode,
    RCODE.REFUSED,
    'AXFR: REFUSED',
  );
  const chaos = encodeQuery({ id: 4, name: 'version.bind', type: TYPE.TXT });
  chaos.writeUInt16BE(3, chaos.length - 2);
  t.equal(decode((await s.handle(chaos, 'udp', '127.0.0.1'))!).rcode, RCODE.REFUSED, 'class CH: REFUSED');
  const v1 = encodeQuery({ id: 5, name: 'svc1.testns.svc.cluster.local', type: TYPE.A, edns: { udpSize: 1232 } });
  v1.writeUInt8(1, v1.length - 5); // EDNS version 1
  r = decode((await s.handle(v1, 'udp', '127.0.0.1'))!);
  t.equal(r.rcode, RCODE.BADVERS, 'EDNS version 1: BADVERS');
  r = decode((await s.handle(encodeQuery({ id: 6, name: 'example.com', type: TYPE.A }), 'udp', '127.0.0.1'))!);
  t.equal(r.rcode, RCODE.SERVFAIL, 'nothing after kubernetes: SERVFAIL');
  t.ok(isKdpError(new Error('x')) === false);
});
