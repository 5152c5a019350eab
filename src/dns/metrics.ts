// Prometheus metrics under the names CoreDNS operators already have dashboards for. One registry per
// server instance (no global default registry); label children are cached (the hot path only increments).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheStats } from './plugins/cache.ts';
import type { ForwardStats } from './plugins/forward.ts';

const COMMON_TYPES = new Set(['A', 'AAAA', 'CNAME', 'SOA', 'PTR', 'NS', 'MX', 'TXT', 'SRV', 'HINFO', 'NAPTR', 'DS', 'DNSKEY', 'IXFR', 'AXFR', 'ANY', 'OPT', 'HTTPS', 'SVCB']);
const SIZE_BUCKETS = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3];
const DURATION_BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

export class DnsMetrics {
  readonly registry = new Registry();
  readonly server: string;
  readonly #requests: Counter;
  readonly #responses: Counter;
  readonly #duration: Histogram;
  readonly #reqSize: Histogram;
  readonly #resSize: Histogram;
  readonly #panics: Counter;
  readonly #cacheHits: Counter;
  readonly #cacheMisses: Counter;
  readonly #cacheEntries: Gauge;
  readonly #fwdDuration: Histogram;
  readonly #fwdBroken: Counter;
  readonly #fwdRejects: Counter;
  readonly #children = new Map<string, { inc(): void } | { observe(v: number): void }>();

  constructor(opts: { server: string; version: string }) {
    this.server = opts.server;
    const r = [this.registry];
    this.#requests = new Counter({ name: 'coredns_dns_requests_total', help: 'Counter of DNS requests made per zone, protocol and family.', labelNames: ['server', 'zone', 'view', 'proto', 'family', 'type'], registers: r });
    this.#responses = new Counter({ name: 'coredns_dns_responses_total', help: 'Counter of response status codes.', labelNames: ['server', 'zone', 'view', 'rcode', 'plugin'], registers: r });
    this.#duration = new Histogram({ name: 'coredns_dns_request_duration_seconds', help: 'Histogram of the time (in seconds) each request took.', labelNames: ['server', 'zone', 'view', 'type'], buckets: DURATION_BUCKETS, registers: r });
    this.#reqSize = new Histogram({ name: 'coredns_dns_request_size_bytes', help: 'Size of the EDNS0 UDP buffer in bytes (64K for TCP).', labelNames: ['server', 'zone', 'view', 'proto'], buckets: SIZE_BUCKETS, registers: r });
    this.#resSize = new Histogram({ name: 'coredns_dns_response_size_bytes', help: 'Size of the returned response in bytes.', labelNames: ['server', 'zone', 'view', 'proto'], buckets: SIZE_BUCKETS, registers: r });
    this.#panics = new Counter({ name: 'coredns_panics_total', help: 'A metrics that counts the number of panics.', registers: r });
    const build = new Gauge({ name: 'coredns_build_info', help: 'A metric with a constant 1 value labeled by version, revision, and goversion from which CoreDNS was built.', labelNames: ['version', 'revision', 'goversion'], registers: r });
    build.labels(opts.version, 'kdp', `node${process.versions.node}`).set(1);
    this.#cacheHits = new Counter({ name: 'coredns_cache_hits_total', help: 'The count of cache hits.', labelNames: ['server', 'type', 'zones', 'view'], registers: r });
    this.#cacheMisses = new Counter({ name: 'coredns_cache_misses_total', help: 'The count of cache misses.', labelNames: ['server', 'zones', 'view'], registers: r });
    this.#cacheEntries = new Gauge({ name: 'coredns_cache_entries', help: 'The number of elements in the cache.', labelNames: ['server', 'type', 'zones', 'view'], registers: r });
    this.#fwdDuration = new Histogram({ name: 'coredns_proxy_request_duration_seconds', help: 'Histogram of the time each request took.', labelNames: ['proxy_name', 'to', 'rcode'], buckets: DURATION_BUCKETS, registers: r });
    this.#fwdBroken = new Counter({ name: 'coredns_forward_healthcheck_broken_total', help: 'Counter of the number of complete failures of the healthchecks.', registers: r });
    this.#fwdRejects = new Counter({ name: 'coredns_forward_max_concurrent_rejects_total', help: 'Counter of the number of queries rejected because the concurrent queries were at maximum.', registers: r });
  }

  #child<T>(key: string, make: () => T): T {
    let c = this.#children.get(key) as T | undefined;
    if (!c) {
      c = make();
      this.#children.set(key, c as never);
    }
    return c;
  }

  /** One request and its response, as CoreDNS's prometheus plugin records them. */
  observe(zone: string, proto: 'udp' | 'tcp', family: 4 | 6, qtype: string, rcode: string, plugin: string, reqSize: number, resSize: number, seconds: number): void {
    const type = COMMON_TYPES.has(qtype) ? qtype : 'other';
    const s = this.server;
    this.#child(`q|${zone}|${proto}|${family}|${type}`, () => this.#requests.labels(s, zone, '', proto, family === 6 ? '2' : '1', type)).inc();
    this.#child(`r|${zone}|${rcode}|${plugin}`, () => this.#responses.labels(s, zone, '', rcode, plugin)).inc();
    this.#child(`d|${zone}|${type}`, () => this.#duration.labels(s, zone, '', type)).observe(seconds);
    this.#child(`qs|${zone}|${proto}`, () => this.#reqSize.labels(s, zone, '', proto)).observe(reqSize);
    this.#child(`rs|${zone}|${proto}`, () => this.#resSize.labels(s, zone, '', proto)).observe(resSize);
  }

  panic(): void {
    this.#panics.inc();
  }

  cacheStats(zones: string): CacheStats {
    const s = this.server;
    return {
      onHit: (kind) => this.#child(`ch|${kind}`, () => this.#cacheHits.labels(s, kind, zones, '')).inc(),
      onMiss: () => this.#child('cm', () => this.#cacheMisses.labels(s, zones, '')).inc(),
      onEntries: (kind, n) => this.#cacheEntries.labels(s, kind, zones, '').set(n),
    };
  }

  forwardStats(): ForwardStats {
    return {
      onRequest: (to, rcode, seconds) => this.#fwdDuration.labels('forward', to, rcode).observe(seconds),
      onHealthcheckBroken: () => this.#fwdBroken.inc(),
      onMaxConcurrentReject: () => this.#fwdRejects.inc(),
    };
  }
}
