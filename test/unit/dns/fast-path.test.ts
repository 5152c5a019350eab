// The fast path is an optimisation inside the chain's contract: for the same query and the same state, an
// answer made from the query's bytes (respond) must equal the chain's (handle), and the log plugin must
// write the same line. Every combination of log, loadbalance and a cache that keeps or skips cluster
// names is run; with loadbalance the address records are compared as sets (both orders are shuffles).
import t from 'tap';
import type { DnsReply, DnsRequest, Next, Plugin } from '../../../src/dns/chain.ts';
import { inPluginOrder } from '../../../src/dns/chain.ts';
import type { Logger } from '../../../src/common/log.ts';
import { silentLogger } from '../../../src/common/log.ts';
import { AutopathPlugin } from '../../../src/dns/plugins/autopath.ts';
import { CachePlugin, DEFAULT_CACHE } from '../../../src/dns/plugins/cache.ts';
import { ErrorsPlugin } from '../../../src/dns/plugins/errors.ts';
import { KubernetesRecords } from '../../../src/dns/plugins/kubernetes/handler.ts';
import { KubernetesPlugin } from '../../../src/dns/plugins/kubernetes/plugin.ts';
import { DEFAULT_KUBERNETES_CONFIG } from '../../../src/dns/plugins/kubernetes/records.ts';
import { LoadbalancePlugin } from '../../../src/dns/plugins/loadbalance.ts';
import { LogPlugin } from '../../../src/dns/plugins/log.ts';
import { DnsMetrics } from '../../../src/dns/metrics.ts';
import { DnsServer } from '../../../src/dns/server.ts';
import { TYPE, decode, encodeQuery, encodeResponse } from '../../../src/dns/wire.ts';
import type { RR } from '../../../src/dns/wire.ts';
import { ep, port, slice, svc, testCluster } from './fixtures.ts';

const NOW = 1_700_000_000_000;

/** forward's stand-in: one.example 1 A, many.example 4 A, anything else NXDOMAIN with a SOA (TTL 60) */
class FakeForward implements Plugin {
  readonly name = 'forward';
  async serve(req: DnsRequest, _next: Next): Promise<DnsReply> {
    const n = req.lname;
    const count = n === 'one.example' ? 1 : n === 'many.example' ? 4 : 0;
    const answers: RR[] = Array.from({ length: count }, (_, i) => ({
      name: req.question.name,
      ttl: 60,
      type: 'A' as const,
      data: `192.0.2.${i + 1}`,
    }));
    const rcode = count > 0 ? 0 : 3;
    const raw = encodeResponse({
      id: req.id,
      flags: 0x8180,
      rcode,
      question: req.question,
      answers,
      authority:
        rcode === 3
          ? [
              {
                name: 'example',
                ttl: 60,
                type: 'SOA',
                data: {
                  mname: 'ns.example',
                  rname: 'h.example',
                  serial: 1,
                  refresh: 1,
                  retry: 1,
                  expire: 1,
                  minimum: 60,
                },
              },
            ]
          : [],
    }).wire;
    return { plugin: 'forward', rcode, aa: false, answers: [], authority: [], additional: [], raw };
  }
}

function capture(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log: Logger = {
    ...silentLogger,
    info: ((o: Record<string, unknown>, msg?: string) => void (msg === 'query' && lines.push(o))) as Logger['info'],
    child: () => log,
  };
  return { log, lines };
}

interface Setup {
  log: boolean;
  loadbalance: boolean;
  /** none; 'kubeadm': cluster.local not kept; 'all': cluster names kept too */
  cache: 'none' | 'kubeadm' | 'all';
  /** autopath @kubernetes (pods verified): walks a search path for the pod 172.17.0.40 (testns) only */
  autopath?: boolean;
}

/** a pod of testns (autopath knows it) and an address no pod has */
const POD = '172.17.0.40';
const NOT_POD = '127.0.0.1';

async function build(setup: Setup) {
  const now = { t: NOW };
  const src = testCluster();
  // several ready addresses behind one name, for loadbalance
  src.put(svc('testns', 'many', { headless: true, ports: [port('http', 80)] }));
  src.put(
    slice(
      'testns',
      'many',
      [1, 2, 3, 4].map((i) => ep([`172.17.9.${i}`])),
      [{ name: 'http', port: 80 }],
    ),
  );
  const cfg = setup.autopath ? { ...DEFAULT_KUBERNETES_CONFIG, pods: 'verified' as const } : DEFAULT_KUBERNETES_CONFIG;
  const rec = new KubernetesRecords(cfg, { now: () => NOW });
  rec.attach(src);
  await src.start();
  await rec.settled();
  const { log, lines } = capture();
  const plugins: Plugin[] = [new FakeForward(), new KubernetesPlugin(rec), new ErrorsPlugin([], { log })];
  if (setup.log) plugins.push(new LogPlugin(log));
  if (setup.loadbalance) plugins.push(new LoadbalancePlugin());
  if (setup.autopath)
    plugins.push(
      new AutopathPlugin({ zones: [''], search: [] }, { searchFunc: (n, client) => rec.autoPath(n, client) }),
    );
  if (setup.cache !== 'none') {
    const off = setup.cache === 'kubeadm' ? ['cluster.local'] : [];
    plugins.push(
      new CachePlugin(
        { ...DEFAULT_CACHE, successMaxTtl: 30, denialMaxTtl: 30, disableSuccess: off, disableDenial: off },
        { now: () => now.t },
      ),
    );
  }
  // given in a scrambled order: the chain runs them in PLUGIN_ORDER
  const chain = inPluginOrder(plugins);
  const s = new DnsServer({ host: '127.0.0.1', port: 0, log, answers: rec, blocks: [{ zones: [''], plugins: chain }] });
  return { s, now, lines, chain, rec };
}

const QUERIES: { name: string; type: number; edns?: { udpSize: number; do?: boolean } }[] = [
  { name: 'svc1.testns.svc.cluster.local', type: TYPE.A },
  { name: 'SVC1.testns.svc.cluster.local', type: TYPE.A },
  { name: 'svc1.testns.svc.cluster.local', type: TYPE.AAAA },
  { name: 'svc1.testns.svc.cluster.local', type: TYPE.A, edns: { udpSize: 1232, do: true } },
  { name: 'many.testns.svc.cluster.local', type: TYPE.A },
  { name: '_http._tcp.svc1.testns.svc.cLuStEr.LoCaL', type: TYPE.SRV },
  { name: '_http._tcp.hdls1.testns.svc.cluster.local', type: TYPE.SRV },
  { name: 'nosuch.testns.svc.cluster.local', type: TYPE.A },
  { name: '1.0.0.10.in-addr.arpa', type: TYPE.PTR },
  { name: 'one.example', type: TYPE.A },
  { name: 'many.example', type: TYPE.A },
  { name: 'many.example', type: TYPE.A, edns: { udpSize: 4096 } },
  { name: 'nowhere.example', type: TYPE.A },
  // search-path names (autopath walks them for POD): svc1.testns.svc..., one.example, all NXDOMAIN
  { name: 'svc1.testns.testns.svc.cluster.local', type: TYPE.A },
  { name: 'one.example.testns.svc.cluster.local', type: TYPE.A },
  { name: 'nosuch.name.testns.svc.cluster.local', type: TYPE.A },
];

/** a decoded answer, with address records as a sorted set when loadbalance may have reordered them */
function normal(buf: Buffer, shuffled: boolean) {
  const m = decode(buf);
  const addr = (r: RR) => r.type === 'A' || r.type === 'AAAA';
  const answers = shuffled
    ? [
        ...m.answers.filter((r) => !addr(r)),
        ...m.answers.filter(addr).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)),
      ]
    : m.answers;
  return { ...m, answers, ttlOffsets: undefined };
}

for (const autopath of [false, true])
  for (const log of [false, true])
    for (const loadbalance of [false, true])
      for (const cache of ['none', 'kubeadm', 'all'] as const) {
        const setup = { log, loadbalance, cache, autopath };
        t.test(`fast path = chain: ${JSON.stringify(setup)}`, async (t) => {
          const { s, now, lines } = await build(setup);
          let id = 100;
          // first round through the chain fills the cache and the encoded cluster answers
          for (const q of QUERIES) await s.handle(encodeQuery({ id: id++, ...q }), 'udp', NOT_POD);
          now.t += 3000; // cache entries have aged: a reused answer must age with them
          for (const client of autopath ? [NOT_POD, POD] : [NOT_POD])
            for (const proto of ['udp', 'tcp'] as const)
              for (const q of QUERIES) {
                const msg = encodeQuery({ id: id++, ...q });
                const before = lines.length;
                const fastBefore = s.fastHits + s.cacheFastHits;
                const viaChain = (await s.handle(Buffer.from(msg), proto, client))!;
                const chainLines = lines.slice(before);
                const mid = lines.length;
                const viaRespond = (await s.respond(Buffer.from(msg), proto, client))!;
                const fast = s.fastHits + s.cacheFastHits > fastBefore;
                const label = `${q.name} ${q.type}${q.edns ? ' edns' : ''} ${proto} ${client} (${fast ? 'fast' : 'chain'})`;
                if (client === POD && q.name === 'svc1.testns.testns.svc.cluster.local')
                  t.equal(decode(viaChain).answers[0]?.type, 'CNAME', `${label}: autopath answered through the chain`);
                t.same(normal(viaRespond, loadbalance), normal(viaChain, loadbalance), label);
                const strip = (l: Record<string, unknown>) => ({ ...l, ms: undefined });
                t.same(lines.slice(mid).map(strip), chainLines.map(strip), `${label}: the same log lines`);
                if (log) t.equal(chainLines.length, 1, `${label}: one log line`);
              }
          t.ok(
            s.fastHits + s.cacheFastHits > 0,
            `the fast path answered (${s.fastHits} cluster, ${s.cacheFastHits} cache)`,
          );
          // the tcp round asks what the udp round did: cache hits by the routes kept for the question bytes
          if (cache !== 'none') t.ok(s.cacheRouteHits > 0, `cache hits by route: ${s.cacheRouteHits}`);
        });
      }

t.test(
  'log and loadbalance are chain plugins: the chain runs them in PLUGIN_ORDER whatever the order given',
  async (t) => {
    const { chain } = await build({ log: true, loadbalance: true, cache: 'kubeadm', autopath: true });
    t.same(
      chain.map((p) => p.name),
      ['errors', 'log', 'loadbalance', 'autopath', 'cache', 'kubernetes', 'forward'],
    );
    t.throws(() => inPluginOrder([{ name: 'whoami', serve: async (_r, n) => n() }]), /no place in PLUGIN_ORDER/);
  },
);

t.test('loadbalance shuffles through the chain and the fast path alike', async (t) => {
  const { s } = await build({ log: false, loadbalance: true, cache: 'kubeadm' });
  const seen = { chain: new Set<string>(), fast: new Set<string>() };
  for (let i = 0; i < 40; i++) {
    const msg = encodeQuery({ id: i, name: 'many.example', type: TYPE.A });
    const first = (m: Buffer) => JSON.stringify(decode(m).answers[0]);
    seen.chain.add(first((await s.handle(Buffer.from(msg), 'udp', '127.0.0.1'))!));
    seen.fast.add(first((await s.respond(Buffer.from(msg), 'udp', '127.0.0.1'))!));
    const c = encodeQuery({ id: i, name: 'many.testns.svc.cluster.local', type: TYPE.A });
    seen.chain.add(first((await s.handle(Buffer.from(c), 'udp', '127.0.0.1'))!));
  }
  t.ok(s.cacheFastHits > 30, 'cache hits from the query bytes');
  t.ok(seen.fast.size >= 3, `the fast path puts different addresses first (${seen.fast.size} of 4)`);
  t.ok(seen.chain.size >= 6, `so does the chain, for forwarded and cluster answers (${seen.chain.size} of 8)`);
});

t.test('fast answers count into the same metric series as the chain', async (t) => {
  // the fast path keeps the series per reused answer (looked up by numbers); the chain looks them up by
  // label key: the same queries through each must give the same counters and histograms
  const text = async (fastPath: boolean) => {
    const { chain, rec } = await build({ log: false, loadbalance: false, cache: 'kubeadm' });
    const metrics = new DnsMetrics({ server: 'dns://', version: 'test' });
    const s = new DnsServer({
      host: '127.0.0.1',
      port: 0,
      log: silentLogger,
      metrics,
      answers: rec,
      blocks: [{ zones: [''], plugins: chain, fastPath }],
    });
    let id = 1;
    for (let round = 0; round < 3; round++)
      for (const proto of ['udp', 'tcp'] as const)
        for (const client of ['127.0.0.1', '::1', '::ffff:127.0.0.1'])
          for (const q of QUERIES) await s.respond(encodeQuery({ id: id++, ...q }), proto, client);
    const out = await metrics.registry.metrics();
    // durations differ between runs; their counts do not
    return {
      fast: s.fastHits + s.cacheFastHits,
      text: out.replace(/^coredns_dns_request_duration_seconds_(bucket|sum).*$/gm, ''),
    };
  };
  const fast = await text(true);
  const chain = await text(false);
  t.ok(fast.fast > 100, `the fast path answered ${fast.fast} of them`);
  t.equal(chain.fast, 0, 'none without it');
  t.equal(fast.text, chain.text);
  t.match(fast.text, /coredns_dns_requests_total\{[^}]*proto="tcp",family="2",type="SRV"\} 6/);
});
