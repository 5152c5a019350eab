// Per-query CPU cost of the answer path without sockets (process CPU time, so a loaded machine slows it
// down but does not skew it much): decode a query and encode the answer with dns-packet, with dns2, and
// kdp's server path with the kubernetes plugin, full and fast; then kdp with the chain of bench:dns's
// Corefile on its three workloads (hits, negative answers, cached forwards).
// Usage: node bench/dns/codec.ts [ITERATIONS]
import dnsPacket from 'dns-packet';
import dns2 from 'dns2';
import { FakeSource } from '../../src/k8s/testing/fake-source.ts';
import type { Service } from '../../src/model/types.ts';
import { KubernetesRecords } from '../../src/dns/plugins/kubernetes/handler.ts';
import { KubernetesPlugin } from '../../src/dns/plugins/kubernetes/plugin.ts';
import { DEFAULT_KUBERNETES_CONFIG } from '../../src/dns/plugins/kubernetes/records.ts';
import { DnsServer } from '../../src/dns/server.ts';
import { DnsMetrics } from '../../src/dns/metrics.ts';
import { FLAG, TYPE, encodeQuery, encodeResponse, withClientOpt } from '../../src/dns/wire.ts';
import { CachePlugin, DEFAULT_CACHE } from '../../src/dns/plugins/cache.ts';
import { LoadbalancePlugin } from '../../src/dns/plugins/loadbalance.ts';
import type { Plugin } from '../../src/dns/chain.ts';
import { silentLogger } from '../../src/common/log.ts';
import { ErrorsPlugin } from '../../src/dns/plugins/errors.ts';

const N = Number(process.argv[2] ?? 200_000);
const names = Array.from({ length: 300 }, (_, i) => `svc${i}.bench.svc.cluster.local`);
const ipOf = (i: number) => `10.96.${1 + (i >> 8)}.${i & 255}`;
const map = new Map(names.map((n, i) => [n, ipOf(i)]));
const queries = names.map((name, i) => encodeQuery({ id: i, name, type: TYPE.A }));

async function measure(name: string, fn: (q: Buffer) => unknown): Promise<number> {
  for (let i = 0; i < 20_000; i++) await fn(queries[i % queries.length] as Buffer);
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) await fn(queries[i % queries.length] as Buffer);
  const c = process.cpuUsage(c0);
  const us = (c.user + c.system) / N;
  process.stdout.write(`| ${name} | ${us.toFixed(2)} |\n`);
  return us;
}

const src = new FakeSource();
src.put({
  kind: 'Namespace',
  meta: { namespace: '', name: 'bench', uid: 'b', resourceVersion: '1', labels: {}, annotations: {} },
});
names.forEach((_, i) =>
  src.put({
    kind: 'Service',
    meta: { namespace: 'bench', name: `svc${i}`, uid: `u${i}`, resourceVersion: '1', labels: {}, annotations: {} },
    type: 'ClusterIP',
    clusterIPs: [ipOf(i)],
    headless: false,
    ipFamilies: ['IPv4'],
    ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 80 }],
    externalIPs: [],
    loadBalancerIPs: [],
    loadBalancerSourceRanges: [],
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 0,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    publishNotReadyAddresses: false,
  } satisfies Service),
);
const rec = new KubernetesRecords({ ...DEFAULT_KUBERNETES_CONFIG, ttl: 30 });
rec.attach(src);
await src.start();
await rec.settled();
const server = (fast: boolean) =>
  new DnsServer({
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
    metrics: new DnsMetrics({ server: 'dns://', version: 'bench' }),
    ...(fast ? { answers: rec } : {}),
    blocks: [{ zones: [''], plugins: [new KubernetesPlugin(rec)] }],
  });
const full = server(false);
const fast = server(true);

process.stdout.write(
  `${N} A queries over 300 names, CPU time per query (node ${process.version})\n\n| path | us/query |\n|---|---|\n`,
);
await measure('dns-packet 5.6: decode + Map + encode', (q) => {
  const m = dnsPacket.decode(q);
  const question = m.questions![0]!;
  return dnsPacket.encode({
    type: 'response',
    id: m.id,
    flags: dnsPacket.AUTHORITATIVE_ANSWER,
    questions: [question],
    answers: [{ type: 'A', name: question.name, ttl: 30, data: map.get(question.name.toLowerCase())! }],
  });
});
const { Packet } = dns2 as unknown as {
  Packet: {
    parse(b: Buffer): { questions: { name: string }[] };
    createResponseFromRequest(r: unknown): { answers: unknown[]; toBuffer(): Buffer };
    TYPE: { A: number };
    CLASS: { IN: number };
  };
};
await measure('dns2 3.1: parse + Map + toBuffer', (q) => {
  const req = Packet.parse(q);
  const res = Packet.createResponseFromRequest(req);
  const name = req.questions[0]!.name;
  res.answers.push({
    name,
    type: Packet.TYPE.A,
    class: Packet.CLASS.IN,
    ttl: 30,
    address: map.get(name.toLowerCase()),
  });
  return res.toBuffer();
});
await measure('kdp: full path (own codec, kubernetes plugin, metrics)', (q) => full.handle(q, 'udp', '127.0.0.1'));
await measure('kdp: fast path (reused answer bytes, metrics)', (q) => fast.respond(q, 'udp', '127.0.0.1'));

// cached forwards: the cache plugin in front of an upstream stand-in, every name already cached
const outside = Array.from({ length: 100 }, (_, i) => `host${i}.outside.example`);
const fwdQueries = outside.map((name, i) => encodeQuery({ id: i, name, type: TYPE.A }));
const upstream: Plugin = {
  name: 'forward',
  async serve(r) {
    const wire = encodeResponse({
      id: r.id,
      flags: FLAG.RA | FLAG.RD,
      rcode: 0,
      question: r.question,
      answers: [{ name: r.question.name, ttl: 300, type: 'A', data: '203.0.113.7' }],
      edns: { udpSize: 1232, do: false },
    }).wire;
    return {
      plugin: 'forward',
      rcode: 0,
      aa: false,
      answers: [],
      authority: [],
      additional: [],
      raw: withClientOpt(wire, r.edns ? { do: r.edns.do } : undefined),
    };
  },
};
const cacheServer = (fastPath: boolean) => {
  const metrics = new DnsMetrics({ server: 'dns://', version: 'bench' });
  const cache = new CachePlugin(
    { ...DEFAULT_CACHE, successMaxTtl: 30, denialMaxTtl: 30 },
    { stats: metrics.cacheStats('.') },
  );
  return new DnsServer({
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
    metrics,
    blocks: [
      { zones: [''], plugins: [new LoadbalancePlugin(), cache, upstream], ...(fastPath ? {} : { fastPath: false }) },
    ],
  });
};
for (const [label, s] of [
  ['kdp: cache hit, full path (decode, chain, cache, patched bytes)', cacheServer(false)],
  ['kdp: cache hit from the query bytes', cacheServer(true)],
] as const) {
  for (const q of fwdQueries) await s.respond(q, 'udp', '127.0.0.1');
  let i = 0;
  await measure(label, () => s.respond(fwdQueries[i++ % fwdQueries.length] as Buffer, 'udp', '127.0.0.1'));
}

// bench:dns's Corefile (run.ts): errors, loadbalance, cache 30 with cluster.local disabled (kubeadm), kubernetes
// and forward (the stand-in above, TTL 300): its three dnsperf workloads, every answer warm, one query at a time
const benchMetrics = new DnsMetrics({ server: 'dns://', version: 'bench' });
const bench = new DnsServer({
  host: '127.0.0.1',
  port: 0,
  log: silentLogger,
  metrics: benchMetrics,
  answers: rec,
  blocks: [
    {
      zones: [''],
      plugins: [
        new ErrorsPlugin([], { log: silentLogger }),
        new LoadbalancePlugin(),
        new CachePlugin(
          {
            ...DEFAULT_CACHE,
            successMaxTtl: 30,
            denialMaxTtl: 30,
            disableSuccess: ['cluster.local'],
            disableDenial: ['cluster.local'],
          },
          { stats: benchMetrics.cacheStats('.') },
        ),
        new KubernetesPlugin(rec),
        upstream,
      ],
    },
  ],
});
const workloads: [string, Buffer[]][] = [
  ['hits: A of a cluster name', queries],
  [
    // run.ts's q-negative: AAAA NODATA of the cluster names, NXDOMAIN of search-path names, both with the SOA
    'negative: AAAA NODATA / search-path NXDOMAIN',
    names.map((name, i) =>
      i % 2
        ? encodeQuery({ id: i, name, type: TYPE.AAAA })
        : encodeQuery({ id: i, name: `example${i}.com.bench.svc.cluster.local`, type: TYPE.A }),
    ),
  ],
  ['cached forward: A of an outside name', fwdQueries],
];
for (const [label, qs] of workloads) {
  for (const q of qs) await bench.respond(q, 'udp', '127.0.0.1');
  let i = 0;
  await measure(`kdp, bench:dns chain, ${label}`, () =>
    bench.respond(qs[i++ % qs.length] as Buffer, 'udp', '127.0.0.1'),
  );
}
process.stdout.write(
  `\nbench:dns chain: ${bench.fastHits} cluster answers and ${bench.cacheFastHits} cache hits from the query bytes (${bench.cacheRouteHits} by route)\n`,
);
