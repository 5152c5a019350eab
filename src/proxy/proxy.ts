// Composition of the service proxy: a backend for the mode, the proxier subscribed to a ClusterSource,
// conntrack cleanup, the health and metrics servers. `startProxy` returns once the first sync is done.
import type { Server } from 'node:http';
import { KdpError } from '../common/errors.ts';
import type { Exec } from '../common/exec-adapter.ts';
import type { Logger } from '../common/log.ts';
import type { ClusterSource } from '../k8s/source.ts';
import type { IPFamily } from '../model/types.ts';
import type { ProxyBackend } from './backend.ts';
import { ConntrackTool } from './conntrack.ts';
import { HealthCheckServers, startHealthServer, startMetricsServer } from './healthz.ts';
import { ProxyMetrics } from './metrics.ts';
import { NftablesBackend } from './nftables/backend.ts';
import { NftSession } from '../netlink/nft-session.ts';
import { IptablesBackend } from './iptables/backend.ts';
import { Proxier } from './proxier.ts';
import { UserspaceBackend } from './userspace/backend.ts';

import type { ProxyMode } from './modes.ts';
export { MODES } from './modes.ts';
export type { ProxyMode } from './modes.ts';

export interface ProxyConfig {
  readonly mode: ProxyMode;
  readonly nodeName: string;
  readonly families: readonly IPFamily[];
  readonly clusterCIDRs: readonly string[];
  readonly minSyncIntervalMs: number;
  readonly syncPeriodMs: number;
  readonly proxyName?: string;
  readonly masqueradeAll?: boolean;
  readonly nodePortAddresses?: readonly string[];
  /** host:port, or undefined to not serve */
  readonly healthz?: { host: string; port: number };
  readonly metrics?: { host: string; port: number };
  /** where healthCheckNodePort servers listen (default all addresses); undefined healthz disables them too */
  readonly healthCheckHost?: string;
  /** userspace mode: install redirect rules for ClusterIPs (default: when running as root) */
  readonly privileged?: boolean;
}

interface RunningProxy {
  readonly proxier: Proxier;
  readonly metrics: ProxyMetrics;
  stop(): Promise<void>;
}

export function makeBackend(cfg: ProxyConfig, exec: Exec, log: Logger): ProxyBackend {
  const common = {
    clusterCIDRs: cfg.clusterCIDRs,
    ...(cfg.masqueradeAll ? { masqueradeAll: true } : {}),
    ...(cfg.nodePortAddresses ? { nodePortAddresses: cfg.nodePortAddresses } : {}),
  };
  switch (cfg.mode) {
    case 'nftables':
      return new NftablesBackend({ exec, config: common, log, runner: new NftSession() });
    case 'iptables':
      return new IptablesBackend({ exec, config: common, log, families: cfg.families });
    case 'userspace':
      return new UserspaceBackend({
        exec,
        log,
        privileged: cfg.privileged ?? process.getuid?.() === 0,
        clusterCIDRs: cfg.clusterCIDRs,
      });
    default:
      throw new KdpError('KDP_PROXY_CONFIG', `unknown proxy mode ${String(cfg.mode)}`);
  }
}

/** Whether NodePorts are to be served on 127.0.0.1 (an IPv4 loopback address or range among the NodePort addresses). */
function localhostNodePorts(nodePortAddresses: readonly string[] | undefined): boolean {
  return (nodePortAddresses ?? []).some((a) => a.startsWith('127.'));
}

/** Starts the proxy on `source` (subscribes, starts the source, waits for the first sync). */
export async function startProxy(
  source: ClusterSource,
  cfg: ProxyConfig,
  deps: { exec: Exec; log: Logger; backend?: ProxyBackend },
): Promise<RunningProxy> {
  const log = deps.log.child({ component: 'proxy', mode: cfg.mode });
  const metrics = new ProxyMetrics();
  const backend = deps.backend ?? makeBackend(cfg, deps.exec, log);
  const hc = cfg.healthz ? new HealthCheckServers({ host: cfg.healthCheckHost ?? '::', log }) : undefined;
  const proxier: Proxier = new Proxier({
    source: source,
    backend,
    nodeName: cfg.nodeName,
    families: cfg.families,
    ...(cfg.proxyName ? { proxyName: cfg.proxyName } : {}),
    minSyncIntervalMs: cfg.minSyncIntervalMs,
    syncPeriodMs: cfg.syncPeriodMs,
    // userspace mode keeps its own UDP sessions (and may run without the right to touch conntrack)
    ...(cfg.mode === 'userspace' ? {} : { conntrack: new ConntrackTool(deps.exec, log) }),
    metrics,
    log,
    onSynced: () => void hc?.update(proxier.healthChecks()),
  });
  const servers: Server[] = [];
  try {
    if (cfg.healthz)
      servers.push(
        await startHealthServer({
          ...cfg.healthz,
          status: () => proxier.status(),
          timeoutMs: Math.max(2 * cfg.syncPeriodMs, 10_000),
          nodeName: cfg.nodeName,
        }),
      );
    if (cfg.metrics)
      servers.push(
        await startMetricsServer({
          ...cfg.metrics,
          metrics: () => metrics.registry.metrics(),
          contentType: metrics.registry.contentType,
          mode: cfg.mode,
        }),
      );
    if (cfg.mode !== 'userspace' && localhostNodePorts(cfg.nodePortAddresses)) {
      // like kube-proxy: DNAT of 127.0.0.1:<nodePort> to a pod needs the kernel to route 127/8 sources off
      // the host. This is the node's network namespace (the one the proxy runs in), never another.
      await deps.exec.run(['sysctl', '-q', '-w', 'net.ipv4.conf.all.route_localnet=1']);
      log.info({}, 'NodePorts on 127.0.0.1: set net.ipv4.conf.all.route_localnet=1');
    }
    await source.start();
    await proxier.settled();
  } catch (err) {
    await proxier.stop();
    await hc?.close();
    await backend.close?.();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    throw err;
  }
  log.info({ status: proxier.status() }, 'proxy running');
  return {
    proxier,
    metrics,
    async stop() {
      await proxier.stop();
      await hc?.close();
      for (const s of servers) s.closeAllConnections();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      await backend.close?.();
    },
  };
}

/** `kdp proxy cleanup`: removes every object any kdp proxy mode made, and nothing else. */
export async function cleanupAll(exec: Exec, log: Logger): Promise<void> {
  await new NftablesBackend({ exec, config: { clusterCIDRs: [] }, log }).cleanup();
  await new IptablesBackend({ exec, config: { clusterCIDRs: [] }, log, families: ['IPv4', 'IPv6'] }).cleanup();
  await new UserspaceBackend({ exec, log, privileged: true }).cleanup();
}
