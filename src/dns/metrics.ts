// Prometheus metrics under the names CoreDNS operators already have dashboards for. One registry per
// server instance (no global default registry). The per-query metrics are plain counters and bucket
// arrays updated on the hot path and rendered by the registry at scrape time (prom-client's own
// Counter/Histogram hash their labels on every call: ~10 us a query, more than answering it).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AutopathStats } from './plugins/autopath.ts';
import type { CacheStats } from './plugins/cache.ts';
import type { ForwardStats } from './plugins/forward.ts';

const COMMON_TYPES = new Set([
  'A',
  'AAAA',
  'CNAME',
  'SOA',
  'PTR',
  'NS',
  'MX',
  'TXT',
  'SRV',
  'HINFO',
  'NAPTR',
  'DS',
  'DNSKEY',
  'IXFR',
  'AXFR',
  'ANY',
  'OPT',
  'HTTPS',
  'SVCB',
]);
const SIZE_BUCKETS = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3];
const DURATION_BUCKETS = [
  0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
];

type Labels = Record<string, string>;

interface MetricValue {
  value: number;
  labels: Labels;
  metricName?: string;
}

/** A counter family rendered from plain numbers. */
class FastCounter {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter';
  readonly aggregator = 'sum';
  readonly #children = new Map<string, { labels: Labels; value: number }>();
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }
  child(key: string, labels: () => Labels): { value: number } {
    let c = this.#children.get(key);
    if (!c) this.#children.set(key, (c = { labels: labels(), value: 0 }));
    return c;
  }
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: [...this.#children.values()].map((c) => ({ value: c.value, labels: c.labels })),
    };
  }
}

interface HistogramChild {
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** A histogram family rendered from bucket arrays. */
class FastHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly buckets: readonly number[];
  readonly #children = new Map<string, HistogramChild & { labels: Labels }>();
  constructor(name: string, help: string, buckets: readonly number[]) {
    this.name = name;
    this.help = help;
    this.buckets = buckets;
  }
  child(key: string, labels: () => Labels): HistogramChild {
    let c = this.#children.get(key);
    if (!c)
      this.#children.set(
        key,
        (c = { labels: labels(), counts: new Float64Array(this.buckets.length), sum: 0, count: 0 }),
      );
    return c;
  }
  observe(c: HistogramChild, v: number): void {
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) {
      if (v <= (b[i] as number)) {
        (c.counts as Float64Array)[i]! += 1;
        break;
      }
    }
    c.sum += v;
    c.count++;
  }
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const values: MetricValue[] = [];
    for (const c of this.#children.values()) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += c.counts[i] as number;
        values.push({ metricName: `${this.name}_bucket`, labels: { le: String(le), ...c.labels }, value: acc });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...c.labels }, value: c.count });
      values.push({ metricName: `${this.name}_sum`, labels: c.labels, value: c.sum });
      values.push({ metricName: `${this.name}_count`, labels: c.labels, value: c.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** The per-query series of one zone, protocol, family, type, rcode and plugin. */
export interface QuerySeries {
  readonly requests: { value: number };
  readonly responses: { value: number };
  readonly duration: HistogramChild;
  readonly reqSize: HistogramChild;
  readonly resSize: HistogramChild;
}

export class DnsMetrics {
  readonly registry = new Registry();
  readonly server: string;
  readonly #requests = new FastCounter(
    'coredns_dns_requests_total',
    'Counter of DNS requests made per zone, protocol and family.',
  );
  readonly #responses = new FastCounter('coredns_dns_responses_total', 'Counter of response status codes.');
  readonly #duration = new FastHistogram(
    'coredns_dns_request_duration_seconds',
    'Histogram of the time (in seconds) each request took.',
    DURATION_BUCKETS,
  );
  readonly #reqSize = new FastHistogram(
    'coredns_dns_request_size_bytes',
    'Size of the EDNS0 UDP buffer in bytes (64K for TCP).',
    SIZE_BUCKETS,
  );
  readonly #resSize = new FastHistogram(
    'coredns_dns_response_size_bytes',
    'Size of the returned response in bytes.',
    SIZE_BUCKETS,
  );
  readonly #cacheHits = new FastCounter('coredns_cache_hits_total', 'The count of cache hits.');
  readonly #cacheMisses = new FastCounter('coredns_cache_misses_total', 'The count of cache misses.');
  readonly #cachePrefetch = new FastCounter(
    'coredns_cache_prefetch_total',
    'The number of times the cache has prefetched a cached item.',
  );
  readonly #cacheStale = new FastCounter(
    'coredns_cache_served_stale_total',
    'The number of requests served from stale cache entries.',
  );
  readonly #autopath = new FastCounter('coredns_autopath_success_total', 'Counter of requests that did autopath.');
  readonly #panics: Counter;
  readonly #cacheEntries: Gauge;
  readonly #fwdDuration: Histogram;
  readonly #fwdBroken: Counter;
  readonly #fwdRejects: Counter;
  readonly #query = new Map<string, QuerySeries>();
  /** every request this process answered (kdp_dns_worker_requests_total with --workers N) */
  readonly #all: { value: number };

  constructor(opts: { server: string; version: string; worker?: number }) {
    this.server = opts.server;
    const r = [this.registry];
    for (const m of [
      this.#requests,
      this.#responses,
      this.#duration,
      this.#reqSize,
      this.#resSize,
      this.#cacheHits,
      this.#cacheMisses,
      this.#cachePrefetch,
      this.#cacheStale,
      this.#autopath,
    ])
      this.registry.registerMetric(m as never);
    // not a CoreDNS metric (CoreDNS is one process): which worker answered, summed per label by the primary
    const perWorker = new FastCounter('kdp_dns_worker_requests_total', 'Counter of DNS requests per worker process.');
    this.#all = perWorker.child('', () => ({ worker: String(opts.worker ?? 0) }));
    if (opts.worker !== undefined) this.registry.registerMetric(perWorker as never);
    this.#panics = new Counter({
      name: 'coredns_panics_total',
      help: 'A metrics that counts the number of panics.',
      registers: r,
    });
    const build = new Gauge({
      name: 'coredns_build_info',
      help: 'A metric with a constant 1 value labeled by version, revision, and goversion from which CoreDNS was built.',
      labelNames: ['version', 'revision', 'goversion'],
      registers: r,
      aggregator: 'first', // the same in every worker
    });
    build.labels(opts.version, 'kdp', `node${process.versions.node}`).set(1);
    this.#cacheEntries = new Gauge({
      name: 'coredns_cache_entries',
      help: 'The number of elements in the cache.',
      labelNames: ['server', 'type', 'zones', 'view'],
      registers: r,
    });
    this.#fwdDuration = new Histogram({
      name: 'coredns_proxy_request_duration_seconds',
      help: 'Histogram of the time each request took.',
      labelNames: ['proxy_name', 'to', 'rcode'],
      buckets: DURATION_BUCKETS,
      registers: r,
    });
    this.#fwdBroken = new Counter({
      name: 'coredns_forward_healthcheck_broken_total',
      help: 'Counter of the number of complete failures of the healthchecks.',
      registers: r,
    });
    this.#fwdRejects = new Counter({
      name: 'coredns_forward_max_concurrent_rejects_total',
      help: 'Counter of the number of queries rejected because the concurrent queries were at maximum.',
      registers: r,
    });
  }

  /** One request and its response, as CoreDNS's prometheus plugin records them. */
  observe(
    zone: string,
    proto: 'udp' | 'tcp',
    family: 4 | 6,
    qtype: string,
    rcode: string,
    plugin: string,
    reqSize: number,
    resSize: number,
    seconds: number,
  ): void {
    const key = `${zone}|${proto}|${family}|${qtype}|${rcode}|${plugin}`;
    let c = this.#query.get(key);
    if (!c) this.#query.set(key, (c = this.series(zone, proto, family, qtype, rcode, plugin)));
    this.observeSeries(c, reqSize, resSize, seconds);
  }

  /**
   * The series one kind of answer counts into, for a caller that keeps them (the fast path keeps them
   * with each reused answer: no label key to build per query).
   */
  series(zone: string, proto: 'udp' | 'tcp', family: 4 | 6, qtype: string, rcode: string, plugin: string): QuerySeries {
    const s = this.server;
    const type = COMMON_TYPES.has(qtype) ? qtype : 'other';
    const fam = family === 6 ? '2' : '1';
    return {
      requests: this.#requests.child(`${zone}|${proto}|${fam}|${type}`, () => ({
        server: s,
        zone,
        view: '',
        proto,
        family: fam,
        type,
      })),
      responses: this.#responses.child(`${zone}|${rcode}|${plugin}`, () => ({
        server: s,
        zone,
        view: '',
        rcode,
        plugin,
      })),
      duration: this.#duration.child(`${zone}|${type}`, () => ({ server: s, zone, view: '', type })),
      reqSize: this.#reqSize.child(`${zone}|${proto}`, () => ({ server: s, zone, view: '', proto })),
      resSize: this.#resSize.child(`${zone}|${proto}`, () => ({ server: s, zone, view: '', proto })),
    };
  }

  /** observe() with the series already looked up */
  observeSeries(c: QuerySeries, reqSize: number, resSize: number, seconds: number): void {
    c.requests.value++;
    c.responses.value++;
    this.#all.value++;
    this.#duration.observe(c.duration, seconds);
    this.#reqSize.observe(c.reqSize, reqSize);
    this.#resSize.observe(c.resSize, resSize);
  }

  panic(): void {
    this.#panics.inc();
  }

  cacheStats(zones: string): CacheStats {
    const s = this.server;
    const hits = {
      success: this.#cacheHits.child(`${zones}|success`, () => ({ server: s, type: 'success', zones, view: '' })),
      denial: this.#cacheHits.child(`${zones}|denial`, () => ({ server: s, type: 'denial', zones, view: '' })),
    };
    const misses = this.#cacheMisses.child(zones, () => ({ server: s, zones, view: '' }));
    const prefetch = this.#cachePrefetch.child(zones, () => ({ server: s, zones, view: '' }));
    const stale = this.#cacheStale.child(zones, () => ({ server: s, zones, view: '' }));
    return {
      onHit: (kind) => void hits[kind].value++,
      onMiss: () => void misses.value++,
      onPrefetch: () => void prefetch.value++,
      onServedStale: () => void stale.value++,
      onEntries: (kind, n) => this.#cacheEntries.labels(s, kind, zones, '').set(n),
    };
  }

  autopathStats(): AutopathStats {
    const ok = this.#autopath.child('', () => ({ server: this.server }));
    return { onSuccess: () => void ok.value++ };
  }

  forwardStats(): ForwardStats {
    return {
      onRequest: (to, rcode, seconds) => this.#fwdDuration.labels('forward', to, rcode).observe(seconds),
      onHealthcheckBroken: () => this.#fwdBroken.inc(),
      onMaxConcurrentReject: () => this.#fwdRejects.inc(),
    };
  }
}
