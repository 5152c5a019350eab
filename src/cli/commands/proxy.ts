// `kdp proxy`: the service proxy (kube-proxy equivalent). `kdp proxy cleanup` removes what it programmed.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { KdpError } from '../../common/errors.ts';
import { defaultExec } from '../../common/exec-adapter.ts';
import type { IPFamily } from '../../model/types.ts';
import { MODES } from '../../proxy/modes.ts';
import type { ProxyMode } from '../../proxy/modes.ts';
import type { ProxyConfig } from '../../proxy/proxy.ts';
import type { Command } from '../command.ts';
import { untilStopped } from '../command.ts';

const USAGE = `Usage: kdp proxy [options]
       kdp proxy cleanup            remove every table/chain kdp's proxy made (nft table kdp, KDP-* chains)

Options:
  --mode MODE                   ${MODES.join('|')} (default nftables)
  --manifests DIR               cluster state from a directory of YAML manifests
  --kubeconfig FILE             cluster state from the Kubernetes API (default without --manifests:
                                KUBECONFIG, ~/.kube/config, or the in-cluster service account)
  --node-name NAME              this node's name (local endpoints, Local policies; default: hostname)
  --cluster-cidr CIDRS          pod CIDRs, comma-separated: traffic from elsewhere is masqueraded (default 10.244.0.0/16)
  --ip-families LIST            ipv4,ipv6 (default ipv4)
  --min-sync-period DURATION    minimum time between syncs (default 1s)
  --sync-period DURATION        full resync period (default 30s)
  --healthz-bind-address H:P    /healthz (default 0.0.0.0:10256; "" disables, with health-check node ports)
  --metrics-bind-address H:P    /metrics (default 127.0.0.1:10249; "" disables)
  --proxy-name NAME             serve services labelled service.kubernetes.io/service-proxy-name=NAME
  --masquerade-all              SNAT all service traffic
  --nodeport-addresses LIST     serve NodePorts only on these addresses (default: every local address)`;

export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s.trim());
  if (!m) throw new KdpError('KDP_USAGE', `bad duration ${JSON.stringify(s)} (e.g. 500ms, 1s, 2m)`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n * 1000;
}

export function parseHostPort(s: string): { host: string; port: number } | undefined {
  if (s === '') return undefined;
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(s);
  if (!m) throw new KdpError('KDP_USAGE', `bad address ${JSON.stringify(s)} (HOST:PORT)`);
  return { host: m[1] === '' ? '0.0.0.0' : m[1]!, port: Number(m[2]) };
}

const list = (s: string | undefined) =>
  s
    ? s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)
    : [];

export const proxyCommand: Command = {
  name: 'proxy',
  summary: 'run the service proxy (nftables, iptables or userspace) for Services and EndpointSlices',
  usage: USAGE,
  async run(argv, { log, out }) {
    // loaded here, not at import: other kdp commands do not pay for the proxy's modules
    const { cleanupAll, startProxy } = await import('../../proxy/proxy.ts');
    if (argv[0] === 'cleanup') {
      await cleanupAll(defaultExec, log);
      log.info({}, 'proxy rules removed');
      return 0;
    }
    const { values } = parseArgs({
      args: [...argv],
      options: {
        mode: { type: 'string', default: 'nftables' },
        manifests: { type: 'string' },
        kubeconfig: { type: 'string' },
        'node-name': { type: 'string' },
        'cluster-cidr': { type: 'string', default: '10.244.0.0/16' },
        'ip-families': { type: 'string', default: 'ipv4' },
        'min-sync-period': { type: 'string', default: '1s' },
        'sync-period': { type: 'string', default: '30s' },
        'healthz-bind-address': { type: 'string', default: '0.0.0.0:10256' },
        'metrics-bind-address': { type: 'string', default: '127.0.0.1:10249' },
        'proxy-name': { type: 'string' },
        'masquerade-all': { type: 'boolean', default: false },
        'nodeport-addresses': { type: 'string' },
        ttl: { type: 'string' },
      },
      strict: true,
    });
    const mode = values.mode as ProxyMode;
    if (!MODES.includes(mode)) throw new KdpError('KDP_USAGE', `--mode must be one of ${MODES.join(', ')}`);
    const families = list(values['ip-families']).map((f): IPFamily => {
      if (f === 'ipv4') return 'IPv4';
      if (f === 'ipv6') return 'IPv6';
      throw new KdpError('KDP_USAGE', `bad IP family ${f}`);
    });
    const healthz = parseHostPort(values['healthz-bind-address']);
    const metrics = parseHostPort(values['metrics-bind-address']);
    const cfg: ProxyConfig = {
      mode,
      nodeName: values['node-name'] ?? hostname(),
      families,
      clusterCIDRs: list(values['cluster-cidr']),
      minSyncIntervalMs: parseDuration(values['min-sync-period']),
      syncPeriodMs: parseDuration(values['sync-period']),
      ...(values['proxy-name'] ? { proxyName: values['proxy-name'] } : {}),
      ...(values['masquerade-all'] ? { masqueradeAll: true } : {}),
      ...(values['nodeport-addresses'] ? { nodePortAddresses: list(values['nodeport-addresses']) } : {}),
      ...(healthz ? { healthz } : {}),
      ...(metrics ? { metrics } : {}),
    };
    const { openSource } = await import('../../k8s/open-source.ts');
    // --manifests DIR, else --kubeconfig FILE / KUBECONFIG / ~/.kube/config / in-cluster
    const source = openSource({
      ...(values.manifests ? { manifestsDir: values.manifests } : {}),
      ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
      log,
    });
    const proxy = await startProxy(source, cfg, { exec: defaultExec, log });
    out('ready\n');
    const why = await untilStopped(values.ttl ? parseDuration(values.ttl) : undefined);
    log.info({ why }, 'stopping (rules stay in place; `kdp proxy cleanup` removes them)');
    await proxy.stop();
    await source.stop();
    return 0;
  },
};
