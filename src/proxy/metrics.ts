// kube-proxy's metric names (operators' dashboards use them), on a registry per proxy instance.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const expBuckets = (start: number, factor: number, n: number) =>
  Array.from({ length: n }, (_, i) => start * factor ** i);
const NETPROG_BUCKETS = [
  0.25,
  0.5,
  ...Array.from({ length: 59 }, (_, i) => i + 1),
  ...Array.from({ length: 12 }, (_, i) => 60 + i * 5),
  120,
  180,
  240,
  300,
];

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly syncDuration: Histogram;
  readonly syncFullDuration: Histogram;
  readonly syncPartialDuration: Histogram;
  readonly networkProgramming: Histogram;
  readonly lastSync: Gauge;
  readonly lastQueued: Gauge;
  readonly serviceChangesPending: Gauge;
  readonly serviceChangesTotal: Counter;
  readonly restoreFailures: Counter;
  readonly nftSyncFailures: Counter;
  readonly rulesLast: Gauge;

  constructor() {
    const registers = [this.registry];
    const b = expBuckets(0.001, 2, 15);
    this.syncDuration = new Histogram({
      name: 'kubeproxy_sync_proxy_rules_duration_seconds',
      help: 'SyncProxyRules latency in seconds',
      buckets: b,
      registers,
    });
    this.syncFullDuration = new Histogram({
      name: 'kubeproxy_sync_full_proxy_rules_duration_seconds',
      help: 'full SyncProxyRules latency in seconds',
      buckets: b,
      registers,
    });
    this.syncPartialDuration = new Histogram({
      name: 'kubeproxy_sync_partial_proxy_rules_duration_seconds',
      help: 'partial SyncProxyRules latency in seconds',
      buckets: b,
      registers,
    });
    this.networkProgramming = new Histogram({
      name: 'kubeproxy_network_programming_duration_seconds',
      help: 'In Cluster Network Programming Latency in seconds',
      buckets: NETPROG_BUCKETS,
      registers,
    });
    this.lastSync = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      help: 'The last time proxy rules were successfully synced',
      registers,
    });
    this.lastQueued = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
      help: 'The last time a sync of proxy rules was queued',
      registers,
    });
    this.serviceChangesPending = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_service_changes_pending',
      help: 'Pending proxy rules Service changes',
      registers,
    });
    this.serviceChangesTotal = new Counter({
      name: 'kubeproxy_sync_proxy_rules_service_changes_total',
      help: 'Cumulative proxy rules Service changes',
      registers,
    });
    this.restoreFailures = new Counter({
      name: 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total',
      help: 'Cumulative proxy iptables restore failures',
      registers,
    });
    this.nftSyncFailures = new Counter({
      name: 'kubeproxy_sync_proxy_rules_nftables_sync_failures_total',
      help: 'Cumulative proxy nftables sync failures',
      registers,
    });
    this.rulesLast = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_last_lines',
      help: 'Lines sent to the kernel by the last sync (kdp)',
      registers,
    });
  }
}
