// The autopath plugin: the cases of CoreDNS plugin/autopath (autopath_test.go, setup_test.go) and
// plugin/kubernetes autopath.go, in kdp's chain; expected records in zone-file notation.
import t from 'tap';
import dnsPacket from 'dns-packet';
import type { DnsReply, DnsRequest, Plugin } from '../../../src/dns/chain.ts';
import { inPluginOrder, runChain } from '../../../src/dns/chain.ts';
import { silentLogger } from '../../../src/common/log.ts';
import { parseCorefile } from '../../../src/dns/corefile.ts';
import { startDns } from '../../../src/dns/dns.ts';
import { DnsMetrics } from '../../../src/dns/metrics.ts';
import { DnsServer } from '../../../src/dns/server.ts';
import { AutopathPlugin, cnamer, firstInSearchPath, parseResolvSearch } from '../../../src/dns/plugins/autopath.ts';
import { KubernetesRecords } from '../../../src/dns/plugins/kubernetes/handler.ts';
import { KubernetesPlugin } from '../../../src/dns/plugins/kubernetes/plugin.ts';
import { DEFAULT_KUBERNETES_CONFIG } from '../../../src/dns/plugins/kubernetes/records.ts';
import { TYPE, decode, encodeQuery, encodeResponse } from '../../../src/dns/wire.ts';
import type { RR } from '../../../src/dns/wire.ts';
import { formatRR } from '../../../src/dns/zone-text.ts';
import { pod, testCluster } from './fixtures.ts';

const SOA: RR = {
  name: 'example.org',
  ttl: 1800,
  type: 'SOA',
  data: {
    mname: 'example.org',
    rname: 'example.org',
    serial: 1502165581,
    refresh: 14400,
    retry: 3600,
    expire: 604800,
    minimum: 14400,
  },
};

/** CoreDNS's nextHandler: NOERROR `<qname> 3600 IN A 127.0.0.53`, NXDOMAIN with a SOA, SERVFAIL (unwritten) for other names */
function nextHandler(mm: Record<string, 0 | 3>, asked: string[] = [], raw = false): Plugin {
  return {
    name: 'forward',
    async serve(req: DnsRequest): Promise<DnsReply> {
      asked.push(req.question.name);
      const rcode = mm[req.question.name];
      if (rcode === undefined)
        return { plugin: 'forward', rcode: 2, aa: false, answers: [], authority: [], additional: [] };
      const answers: RR[] = rcode === 0 ? [{ name: req.question.name, ttl: 3600, type: 'A', data: '127.0.0.53' }] : [];
      const authority = rcode === 3 ? [SOA] : [];
      if (!raw) return { plugin: 'forward', rcode, aa: false, answers, authority, additional: [] };
      const wire = encodeResponse({
        id: req.id,
        flags: 0x0180,
        rcode,
        question: req.question,
        answers,
        authority,
      }).wire;
      return { plugin: 'forward', rcode, aa: false, answers: [], authority: [], additional: [], raw: wire };
    },
  };
}

function request(name: string, client = '192.0.2.1', type: number = TYPE.A): DnsRequest {
  return {
    id: 7,
    flags: 0x0100,
    question: { name, type, class: 1 },
    lname: name.toLowerCase(),
    qtype: type === TYPE.A ? 'A' : 'SRV',
    proto: 'udp',
    client,
  };
}

/** The answer section of a reply (structured or whole message) in zone-file notation, in order. */
function answerText(r: DnsReply): string[] {
  return (r.raw ? decode(r.raw).answers : r.answers).map(formatRR);
}

function newTestAutoPath(raw = false, asked: string[] = [], onSuccess?: () => void): Plugin[] {
  const ap = new AutopathPlugin(
    { zones: [''], search: ['example.org', 'example.com', 'com', ''] },
    onSuccess ? { stats: { onSuccess } } : {},
  );
  return [ap, nextHandler({ 'b.example.org': 3, 'b.com': 0, 'a.example.com': 0 }, asked, raw)];
}

for (const raw of [false, true])
  t.test(`search path expansion (CoreDNS TestAutoPath), ${raw ? 'whole messages' : 'records'} from next`, async (t) => {
    let ok = 0;
    const asked: string[] = [];
    const chain = newTestAutoPath(raw, asked, () => ok++);
    const b = await runChain(chain, request('b.example.org'));
    t.equal(b.rcode, 0);
    t.equal(b.plugin, 'autopath');
    t.same(
      answerText(b),
      ['b.example.org. 3600 IN CNAME b.com.', 'b.com. 3600 IN A 127.0.0.53'],
      'the CNAME sits before the answer',
    );
    t.same(asked, ['b.example.org', 'b.example.com', 'b.com'], 'walked the search path in order');
    if (raw) t.equal(decode(b.raw!).questions[0]?.name, 'b.example.org', 'the question is the one asked');
    const a = await runChain(chain, request('a.example.com'));
    t.same(
      answerText(a),
      ['a.example.com. 3600 IN A 127.0.0.53'],
      'no search path expansion outside the first element',
    );
    t.equal(a.plugin, 'forward');
    t.equal(ok, 1, 'coredns_autopath_success_total counts the expanded answer only');
  });

t.test('every step unwritten (CoreDNS TestAutoPathNoAnswer): no client write, SERVFAIL', async (t) => {
  const r = await runChain(newTestAutoPath(), request('c.example.org'));
  t.equal(r.rcode, 2);
  t.same(r.answers, []);
});

t.test('every step NXDOMAIN: the first reply as it was, the client walks its search path', async (t) => {
  let ok = 0;
  const asked: string[] = [];
  const chain = [
    new AutopathPlugin({ zones: [''], search: ['example.org', 'com', ''] }, { stats: { onSuccess: () => ok++ } }),
    nextHandler({ 'x.example.org': 3, 'x.com': 3, x: 3 }, asked),
  ];
  const r = await runChain(chain, request('x.example.org'));
  t.equal(r.rcode, 3);
  t.same(answerText(r), []);
  t.same(r.authority.map(formatRR), [formatRR(SOA)]);
  t.same(asked, ['x.example.org', 'x.com', 'x']);
  t.equal(ok, 0);
});

t.test('an error ends the walk (CoreDNS returns the error of a step at once)', async (t) => {
  const asked: string[] = [];
  const chain: Plugin[] = [
    new AutopathPlugin({ zones: [''], search: ['example.org', 'com', ''] }),
    {
      name: 'forward',
      async serve(req: DnsRequest): Promise<DnsReply> {
        asked.push(req.question.name);
        return { plugin: 'forward', rcode: 2, aa: false, answers: [], authority: [], additional: [], error: 'timeout' };
      },
    },
  ];
  const r = await runChain(chain, request('x.example.org'));
  t.same([r.rcode, r.error], [2, 'timeout']);
  t.same(asked, ['x.example.org']);
});

t.test('firstInSearchPath (CoreDNS TestInSearchPath)', async (t) => {
  const search = ['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local'];
  t.equal(firstInSearchPath('google.com', search), false);
  t.equal(firstInSearchPath('a.default.svc.cluster.local', search), true);
  t.equal(firstInSearchPath('a.b.svc.cluster.local', search), false);
  // CoreDNS: true, then TrimZone overshoots and the query gets SERVFAIL; kdp passes the name on (docs/dns.md)
  t.equal(firstInSearchPath('default.svc.cluster.local', search), false);
});

t.test(
  'cnamer: a CNAME to the first record another name owns, with its TTL; none when all are the name asked',
  async (t) => {
    const a = (name: string, ttl = 5): RR => ({ name, ttl, type: 'A', data: '10.0.0.1' });
    t.same(cnamer([a('x.svc.cluster.local', 30)], 'x').map(formatRR), [
      'x. 30 IN CNAME x.svc.cluster.local.',
      'x.svc.cluster.local. 30 IN A 10.0.0.1',
    ]);
    t.same(cnamer([a('X')], 'x').map(formatRR), ['X. 5 IN A 10.0.0.1']);
    t.same(cnamer([], 'x'), []);
  },
);

t.test('parseResolvSearch: the last search or domain line wins (miekg ClientConfigFromFile)', async (t) => {
  // CoreDNS setup_test.go's resolv.conf
  t.same(parseResolvSearch('nameserver 1.2.3.4\ndomain foo.com\nsearch bar.com baz.com\noptions ndots:5\n'), [
    'bar.com',
    'baz.com',
  ]);
  t.same(parseResolvSearch('search a.example\ndomain Foo.COM.\n'), ['foo.com']);
  t.same(parseResolvSearch('# search x\n; search y\nnameserver 1.1.1.1\n'), []);
});

t.test('autopath in the Corefile (CoreDNS TestSetupAutoPath)', async (t) => {
  const one = (line: string, keys = '.') => parseCorefile(`${keys} {\n  ${line}\n}\n`)[0]!.autopath;
  t.match(one('autopath @kubernetes'), { zones: [''], from: { plugin: 'kubernetes' } });
  t.match(one('autopath @kubernetes', 'cluster.local example.org'), { zones: ['cluster.local', 'example.org'] });
  t.match(one('autopath example.org @kubernetes'), { zones: ['example.org'], from: { plugin: 'kubernetes' } });
  t.match(one('autopath /etc/my-resolv.conf'), { zones: [''], from: { file: '/etc/my-resolv.conf' } });
  t.throws(() => one('autopath'), {
    code: 'KDP_DNS_CONFIG',
    message: /Corefile:2: autopath: no resolv-conf specified/,
  });
  t.throws(() => one('autopath ""'), { code: 'KDP_DNS_CONFIG', message: /failed to parse/ });
  t.throws(() => one('autopath @erratic'), { message: /erratic does not implement the AutoPather interface/ });
  t.throws(() => one('autopath 10.0.0.0/8 @kubernetes'), { message: /CIDR zones are not supported/ });
  t.throws(() => one('autopath @kubernetes\n  autopath @kubernetes'), { message: /only be used once/ });
});

t.test('a resolv.conf search path; a file that cannot be read is a config error at start', async (t) => {
  const opts = {
    log: silentLogger,
    version: 't',
    host: '127.0.0.1',
    port: 0,
    healthAddr: '',
    readyAddr: '',
    metricsAddr: '',
  };
  const files: Record<string, string> = { '/r.conf': 'search bar.com baz.com\n' };
  const readFile = (p: string) => {
    const f = files[p];
    if (f === undefined) throw new Error(`ENOENT: ${p}`);
    return f;
  };
  await t.rejects(startDns(testCluster(), parseCorefile('.:53 {\n  autopath kubernetes\n}\n'), { ...opts, readFile }), {
    code: 'KDP_DNS_CONFIG',
    message: /Corefile:2: autopath: failed to parse "kubernetes": ENOENT/,
  });
  const dns = await startDns(testCluster(), parseCorefile('.:53 {\n  autopath /r.conf\n}\n'), { ...opts, readFile });
  t.teardown(() => dns.close());
  const text = await dns.metrics.registry.metrics();
  t.match(text, /coredns_autopath_success_total/, 'the metric is registered');
});

// ------------------------------------------------------------------ @kubernetes
async function cluster(pods: 'verified' | 'insecure' = 'verified') {
  const src = testCluster();
  src.put(pod('other', 'p-other', '172.17.0.41'));
  src.put({ ...pod('other', 'done', '172.17.0.42'), phase: 'Succeeded' });
  src.put({
    ...pod('testns', 'going', '172.17.0.43'),
    meta: { ...pod('testns', 'going', '').meta, deletionTimestamp: '2026-01-01T00:00:00Z' },
  });
  src.put(pod('testns', 'v6', 'fd00:172::40'));
  const rec = new KubernetesRecords({ ...DEFAULT_KUBERNETES_CONFIG, pods }, {});
  rec.attach(src);
  await src.start();
  await rec.settled();
  return rec;
}

t.test('the kubernetes search path (CoreDNS kubernetes AutoPath): from the asking pod, pods verified', async (t) => {
  const rec = await cluster();
  const host = ['corp.example'];
  t.same(rec.autoPath('x.testns.svc.cluster.local', '172.17.0.40', host), [
    'testns.svc.cluster.local',
    'svc.cluster.local',
    'cluster.local',
    'corp.example',
    '',
  ]);
  t.same(
    rec.autoPath('x.other.svc.cluster.local', '::ffff:172.17.0.41')?.[0],
    'other.svc.cluster.local',
    'v4-mapped source',
  );
  t.same(
    rec.autoPath('x.testns.svc.cluster.local', 'fd00:172:0::40')?.[0],
    'testns.svc.cluster.local',
    'a v6 pod address',
  );
  t.equal(rec.autoPath('x.testns.svc.cluster.local', '192.0.2.9'), undefined, 'no pod has the address');
  t.equal(rec.autoPath('x.other.svc.cluster.local', '172.17.0.42'), undefined, 'a finished pod is not asked for');
  t.equal(rec.autoPath('x.testns.svc.cluster.local', '172.17.0.43'), undefined, 'a pod being deleted is not asked for');
  t.equal(rec.autoPath('google.com', '172.17.0.40'), undefined, 'not in a kubernetes zone');
  const insecure = await cluster('insecure');
  t.equal(insecure.autoPath('x.testns.svc.cluster.local', '172.17.0.40'), undefined, 'pods insecure: no autopath');
  rec.stop();
  insecure.stop();
});

t.test('autopath @kubernetes through the chain: foo.bar answered in one query', async (t) => {
  const rec = await cluster();
  t.teardown(() => rec.stop());
  let ok = 0;
  const asked: string[] = [];
  const chain = inPluginOrder([
    new KubernetesPlugin(rec),
    new AutopathPlugin(
      { zones: [''], search: [] },
      { searchFunc: (n, c) => rec.autoPath(n, c), stats: { onSuccess: () => ok++ } },
    ),
    nextHandler({ 'one.example': 0 }, asked),
  ]);
  // svc1 in testns asked from a pod of `other` as `svc1.testns` + its first search domain
  const r = await runChain(chain, request('svc1.testns.other.svc.cluster.local', '172.17.0.41'));
  t.equal(r.rcode, 0);
  t.same(r.answers.map(formatRR), [
    'svc1.testns.other.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.',
    'svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1',
  ]);
  t.equal(r.generation, undefined, 'an autopath answer depends on the client: never reused by question');
  // an out-of-cluster name: the last step (the name as asked) goes to forward
  const f = await runChain(chain, request('one.example.other.svc.cluster.local', '172.17.0.41'));
  t.same(answerText(f), [
    'one.example.other.svc.cluster.local. 3600 IN CNAME one.example.',
    'one.example. 3600 IN A 127.0.0.53',
  ]);
  t.same(asked, ['one.example'], 'forward saw only the name outside the cluster zone');
  t.equal(ok, 2);
  // not a pod: normal behaviour, NXDOMAIN from the kubernetes plugin
  const n = await runChain(chain, request('svc1.testns.other.svc.cluster.local', '192.0.2.9'));
  t.same([n.rcode, n.plugin, n.answers.length], [3, 'kubernetes', 0]);
  t.equal(ok, 2);
});

t.test('the server answers autopath queries through the chain, counted and labelled autopath', async (t) => {
  const rec = await cluster();
  t.teardown(() => rec.stop());
  const metrics = new DnsMetrics({ server: 'dns://', version: 't' });
  const ap = new AutopathPlugin(
    { zones: [''], search: [] },
    { searchFunc: (n, c) => rec.autoPath(n, c), stats: metrics.autopathStats() },
  );
  const s = new DnsServer({
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
    metrics,
    answers: rec,
    blocks: [{ zones: [''], plugins: inPluginOrder([new KubernetesPlugin(rec), ap]) }],
  });
  const q = encodeQuery({ id: 9, name: 'svc1.testns.testns.svc.cluster.local', type: TYPE.A });
  const fromPod = decode((await s.respond(Buffer.from(q), 'udp', '172.17.0.40'))!);
  t.same(fromPod.answers.map(formatRR), [
    'svc1.testns.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.',
    'svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1',
  ]);
  t.equal(fromPod.questions[0]?.name, 'svc1.testns.testns.svc.cluster.local');
  const other = decode((await s.respond(Buffer.from(q), 'udp', '192.0.2.9'))!);
  t.same([other.rcode, other.answers.length], [3, 0], 'not a pod: NXDOMAIN');
  const text = await metrics.registry.metrics();
  t.match(text, /coredns_autopath_success_total\{server="dns:\/\/"\} 1\n/);
  t.match(text, /coredns_dns_responses_total\{[^}]*rcode="NOERROR",plugin="autopath"\} 1\n/);
});

t.test('a whole message with compressed names in MX rdata keeps them right under the question asked', async (t) => {
  // what an upstream sends for `example.com MX`: the exchange is a pointer to the question's name
  const upstream = (req: DnsRequest): Buffer => {
    const q = encodeQuery({ id: req.id, name: req.question.name, type: TYPE.MX });
    const head = Buffer.from(q.subarray(0, 12));
    head.writeUInt16BE(0x8180, 2);
    head.writeUInt16BE(1, 6); // one answer
    head.writeUInt16BE(0, 10);
    const question = q.subarray(12, q.length - (q.readUInt16BE(10) ? 11 : 0));
    const mx = Buffer.from([0xc0, 0x0c, 0, 15, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 0, 10, 0xc0, 0x0c]);
    return Buffer.concat([head, question, mx]);
  };
  const chain: Plugin[] = [
    new AutopathPlugin({ zones: [''], search: ['ns.svc.cluster.local', ''] }),
    {
      name: 'forward',
      async serve(req: DnsRequest): Promise<DnsReply> {
        if (req.lname !== 'example.com')
          return { plugin: 'forward', rcode: 3, aa: false, answers: [], authority: [], additional: [] };
        return {
          plugin: 'forward',
          rcode: 0,
          aa: false,
          answers: [],
          authority: [],
          additional: [],
          raw: upstream(req),
        };
      },
    },
  ];
  const r = await runChain(chain, request('example.com.ns.svc.cluster.local', '192.0.2.1', TYPE.MX));
  const m = dnsPacket.decode(r.raw!);
  t.same(
    m.answers?.map((a) => [a.name, a.type, a.type === 'MX' ? a.data : (a as { data: unknown }).data]),
    [
      ['example.com.ns.svc.cluster.local', 'CNAME', 'example.com'],
      ['example.com', 'MX', { preference: 10, exchange: 'example.com' }],
    ],
  );
});
