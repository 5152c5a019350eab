// Prometheus metrics with the names ingress-nginx dashboards use, in a registry per controller instance.
// The per-request families are plain numbers updated on the hot path and rendered at scrape time (prom-client's
// own Counter/Histogram validate and hash the 8 labels on every call: ~1.5 us per request each, three calls a
// request); they register in the prom-client registry like any metric, so the cluster aggregation works too.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

const LABELS = ['host', 'status', 'method', 'path', 'ingress', 'namespace', 'service', 'canary'] as const;
/** Gateway API series only: the Gateway (`namespace/name`) and the route kind; left out when empty */
const GATEWAY_LABELS = ['gateway', 'route_kind'] as const;
type LabelName = (typeof LABELS)[number];
type Labels = Readonly<Record<LabelName, string>> & Partial<Readonly<Record<(typeof GATEWAY_LABELS)[number], string>>>;

interface MetricJson {
  name: string;
  help: string;
  type: string;
  aggregator: 'sum';
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

/** Same label order as the label names (a scrape shows them as prom-client would). */
function ordered(labels: Labels): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of LABELS) out[k] = labels[k];
  for (const k of GATEWAY_LABELS) {
    const v = labels[k];
    if (v) out[k] = v;
  }
  return out;
}

/** A counter family of plain numbers; `labels()` returns a child to keep (no per-call hashing). */
class FastCounter {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter';
  readonly aggregator = 'sum';
  readonly #children = new Map<string, { labels: Record<string, string>; value: number; inc(n?: number): void }>();
  constructor(name: string, help: string, registry: Registry) {
    this.name = name;
    this.help = help;
    registry.registerMetric(this as never);
  }
  labels(labels: Labels): { inc(n?: number): void } {
    const l = ordered(labels);
    const key = JSON.stringify(l);
    let c = this.#children.get(key);
    if (!c) {
      const child = { labels: l, value: 0, inc: (n = 1) => void (child.value += n) };
      this.#children.set(key, (c = child));
    }
    return c;
  }
  get(): MetricJson {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: [...this.#children.values()].map((c) => ({ value: c.value, labels: c.labels })),
    };
  }
}

/** A histogram family of bucket arrays. */
class FastHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #buckets: readonly number[];
  readonly #children = new Map<
    string,
    { labels: Record<string, string>; counts: Float64Array; sum: number; count: number; observe(v: number): void }
  >();
  constructor(name: string, help: string, buckets: readonly number[], registry: Registry) {
    this.name = name;
    this.help = help;
    this.#buckets = buckets;
    registry.registerMetric(this as never);
  }
  labels(labels: Labels): { observe(v: number): void } {
    const l = ordered(labels);
    const key = JSON.stringify(l);
    let c = this.#children.get(key);
    if (!c) {
      const b = this.#buckets;
      const child = {
        labels: l,
        counts: new Float64Array(b.length),
        sum: 0,
        count: 0,
        observe(v: number): void {
          for (let i = 0; i < b.length; i++) {
            if (v <= b[i]!) {
              child.counts[i]! += 1;
              break;
            }
          }
          child.sum += v;
          child.count++;
        },
      };
      this.#children.set(key, (c = child));
    }
    return c;
  }
  get(): MetricJson {
    const values: MetricJson['values'] = [];
    const b = this.#buckets;
    for (const c of this.#children.values()) {
      let acc = 0;
      for (let i = 0; i < b.length; i++) {
        acc += c.counts[i]!;
        values.push({ value: acc, labels: { ...c.labels, le: b[i]! }, metricName: `${this.name}_bucket` });
      }
      values.push({ value: c.count, labels: { ...c.labels, le: '+Inf' }, metricName: `${this.name}_bucket` });
      values.push({ value: c.sum, labels: c.labels, metricName: `${this.name}_sum` });
      values.push({ value: c.count, labels: c.labels, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export class IngressMetrics {
  readonly registry = new Registry();
  readonly requests: FastCounter;
  readonly duration: FastHistogram;
  readonly responseSize: FastHistogram;
  readonly lastReloadSuccessful: Gauge;
  readonly lastReloadTimestamp: Gauge;
  readonly reloads: Counter<'result'>;
  readonly rejected: Gauge;
  readonly upstreamPools: Gauge;
  readonly tlsConnections: Counter<'terminated_by'>;

  constructor(opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.requests = new FastCounter(
      'nginx_ingress_controller_requests',
      'The total number of client requests',
      this.registry,
    );
    this.duration = new FastHistogram(
      'nginx_ingress_controller_request_duration_seconds',
      'The request processing time in seconds (time from the first byte read from the client to the response end)',
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      this.registry,
    );
    this.responseSize = new FastHistogram(
      'nginx_ingress_controller_response_size',
      'The response length (including headers) in bytes',
      [100, 1000, 10_000, 100_000, 1_000_000, 10_000_000],
      this.registry,
    );
    // aggregators: how the primary combines the workers' values with --workers N (counters and histograms sum)
    this.lastReloadSuccessful = new Gauge({
      name: 'nginx_ingress_controller_config_last_reload_successful',
      help: 'Whether the last route table update succeeded (1) or not (0)',
      registers,
      aggregator: 'min',
    });
    this.lastReloadTimestamp = new Gauge({
      name: 'nginx_ingress_controller_config_last_reload_successful_timestamp_seconds',
      help: 'Timestamp of the last successful route table update',
      registers,
      aggregator: 'max',
    });
    this.reloads = new Counter({
      name: 'nginx_ingress_controller_success',
      help: 'Cumulative number of route table updates (no process reload is ever needed)',
      labelNames: ['result'],
      registers,
    });
    this.rejected = new Gauge({
      name: 'kdp_ingress_rejected_ingresses',
      help: 'Ingresses left out of the route table because of invalid values',
      registers,
      aggregator: 'max',
    });
    this.tlsConnections = new Counter({
      name: 'kdp_ingress_tls_connections_total',
      help: 'Connections on the HTTPS port by who terminated their TLS: the native addon (HTTP/1.1) or node:tls',
      labelNames: ['terminated_by'],
      registers,
    });
    this.upstreamPools = new Gauge({
      name: 'kdp_ingress_upstream_pools',
      help: 'Keep-alive connection pools to endpoints',
      registers,
    });
    this.#processMetrics = opts.processMetrics !== false;
  }

  readonly #processMetrics: boolean;
  #processStarted = false;

  /** Node process metrics (prom-client's default collectors): started once serving (they cost start-up time). */
  startProcessMetrics(): void {
    if (!this.#processMetrics || this.#processStarted) return;
    this.#processStarted = true;
    collectDefaultMetrics({ register: this.registry });
  }
}
