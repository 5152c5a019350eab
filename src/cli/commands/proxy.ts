// `kdp proxy`: the service proxy (kube-proxy equivalent). `kdp proxy cleanup` removes what it programmed.
import { hostname } from 'node:os';
import { KdpError } from '../../common/errors.ts';
import { defaultExec } from '../../common/exec-adapter.ts';
import type { IPFamily } from '../../model/types.ts';
import { MODES } from '../../proxy/modes.ts';
import type { ProxyMode } from '../../proxy/modes.ts';
import type { ProxyConfig } from '../../proxy/proxy.ts';
import type { Command } from '../command.ts';
import { untilStopped } from '../command.ts';
import {
  EXIT_AFTER,
  TTL_EXIT_ALIAS,
  exitAfterMs,
  flagHelp,
  parseDuration,
  parseOnlyFlags,
  warnDeprecated,
} from '../flags.ts';
import type { FlagTable } from '../flags.ts';

const FLAGS = {
  mode: { type: 'string', arg: 'MODE', default: 'nftables', help: MODES.join('|') },
  manifests: { type: 'string', arg: 'DIR', help: 'cluster state from a directory of YAML manifests' },
  kubeconfig: {
    type: 'string',
    arg: 'FILE',
    help: 'cluster state from the Kubernetes API',
    defaultText: 'without --manifests: KUBECONFIG, ~/.kube/config, or the in-cluster service account',
  },
  'node-name': {
    type: 'string',
    arg: 'NAME',
    help: "this node's name (local endpoints, Local policies)",
    defaultText: 'the host name',
  },
  'cluster-cidr': {
    type: 'string',
    arg: 'CIDRS',
    default: '10.244.0.0/16',
    help: 'pod CIDRs, comma-separated: traffic from elsewhere is masqueraded',
  },
  'ip-families': { type: 'string', arg: 'LIST', default: 'ipv4', help: 'ipv4, ipv6 or ipv4,ipv6' },
  'min-sync-period': { type: 'string', arg: 'DURATION', default: '1s', help: 'minimum time between syncs' },
  'sync-period': { type: 'string', arg: 'DURATION', default: '30s', help: 'full resync period' },
  'healthz-bind-address': {
    type: 'string',
    arg: 'H:P',
    default: '0.0.0.0:10256',
    help: '/healthz ("" disables, with health-check node ports)',
  },
  'metrics-bind-address': { type: 'string', arg: 'H:P', default: '127.0.0.1:10249', help: '/metrics ("" disables)' },
  'proxy-name': {
    type: 'string',
    arg: 'NAME',
    help: 'serve services labelled service.kubernetes.io/service-proxy-name=NAME',
  },
  'masquerade-all': { type: 'boolean', default: false, help: 'SNAT all service traffic' },
  'nodeport-addresses': {
    type: 'string',
    arg: 'LIST',
    help: 'serve NodePorts only on these addresses',
    defaultText: 'every local address',
  },
  ...EXIT_AFTER,
  ...TTL_EXIT_ALIAS,
} as const satisfies FlagTable;

const USAGE = `Usage: kdp proxy [options]
       kdp proxy cleanup            remove every table/chain kdp's proxy made (nft table kdp, KDP-* chains)

Options:
${flagHelp(FLAGS)}`;

function parseHostPort(s: string): { host: string; port: number } | undefined {
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
  flags: { '': FLAGS },
  async run(argv, { log, out }) {
    // loaded here, not at import: other kdp commands do not pay for the proxy's modules
    const { cleanupAll, startProxy } = await import('../../proxy/proxy.ts');
    if (argv[0] === 'cleanup') {
      await cleanupAll(defaultExec, log);
      log.info({}, 'proxy rules removed');
      return 0;
    }
    const values = parseOnlyFlags(FLAGS, argv, warnDeprecated(log));
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
      minSyncIntervalMs: parseDuration(values['min-sync-period'], 'min-sync-period'),
      syncPeriodMs: parseDuration(values['sync-period'], 'sync-period'),
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
    const why = await untilStopped(exitAfterMs(values['exit-after']));
    log.info({ why }, 'stopping (rules stay in place; `kdp proxy cleanup` removes them)');
    await proxy.stop();
    await source.stop();
    return 0;
  },
};
