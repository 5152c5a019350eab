// Prometheus metrics with the names ingress-nginx dashboards use, in a registry per controller instance.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LABELS = ['host', 'status', 'method', 'path', 'ingress', 'namespace', 'service', 'canary'] as const;
type LabelName = (typeof LABELS)[number];

export class IngressMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<LabelName>;
  readonly duration: Histogram<LabelName>;
  readonly responseSize: Histogram<LabelName>;
  readonly lastReloadSuccessful: Gauge;
  readonly lastReloadTimestamp: Gauge;
  readonly reloads: Counter<'result'>;
  readonly rejected: Gauge;
  readonly upstreamPools: Gauge;

  constructor(opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'nginx_ingress_controller_requests', help: 'The total number of client requests', labelNames: LABELS, registers });
    this.duration = new Histogram({
      name: 'nginx_ingress_controller_request_duration_seconds',
      help: 'The request processing time in seconds (time from the first byte read from the client to the response end)',
      labelNames: LABELS,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.responseSize = new Histogram({
      name: 'nginx_ingress_controller_response_size',
      help: 'The response length (including headers) in bytes',
      labelNames: LABELS,
      buckets: [100, 1000, 10_000, 100_000, 1_000_000, 10_000_000],
      registers,
    });
    // aggregators: how the primary combines the workers' values with --workers N (counters and histograms sum)
    this.lastReloadSuccessful = new Gauge({ name: 'nginx_ingress_controller_config_last_reload_successful', help: 'Whether the last route table update succeeded (1) or not (0)', registers, aggregator: 'min' });
    this.lastReloadTimestamp = new Gauge({ name: 'nginx_ingress_controller_config_last_reload_successful_timestamp_seconds', help: 'Timestamp of the last successful route table update', registers, aggregator: 'max' });
    this.reloads = new Counter({ name: 'nginx_ingress_controller_success', help: 'Cumulative number of route table updates (no process reload is ever needed)', labelNames: ['result'], registers });
    this.rejected = new Gauge({ name: 'kdp_ingress_rejected_ingresses', help: 'Ingresses left out of the route table because of invalid values', registers, aggregator: 'max' });
    this.upstreamPools = new Gauge({ name: 'kdp_ingress_upstream_pools', help: 'Keep-alive connection pools to endpoints', registers });
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }
}
