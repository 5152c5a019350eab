// `kdp policy-agent --node NAME`: enforces NetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy
// for the pods of one node in its nft table `inet kdp-policy` (src/policy/agent.ts).
// `kdp policy-agent cleanup` removes that table (the agent itself never does: a restart keeps it).
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import { KdpError, errorMessage } from '../../common/errors.ts';
import { defaultExec } from '../../common/exec-adapter.ts';
import type { Command } from '../command.ts';
import { untilStopped } from '../command.ts';
import { EXIT_AFTER, exitAfterMs, flagHelp, parseDuration, parseOnlyFlags, warnDeprecated } from '../flags.ts';
import type { FlagTable } from '../flags.ts';

const FLAGS = {
  node: { type: 'string', arg: 'NAME', help: "this node's name (required): its pods are the ones enforced here" },
  manifests: { type: 'string', arg: 'DIR', help: 'cluster state from a directory of YAML manifests' },
  kubeconfig: {
    type: 'string',
    arg: 'FILE',
    help: 'cluster state from the Kubernetes API',
    defaultText: 'without --manifests: KUBECONFIG, ~/.kube/config, or the in-cluster service account',
  },
  'cluster-cidr': {
    type: 'string',
    arg: 'CIDRS',
    default: '10.244.0.0/16',
    help: 'pod CIDRs, comma-separated: until the first sync, new forwarded connections from or to them are dropped',
  },
  'min-sync-period': { type: 'string', arg: 'DURATION', default: '0s', help: 'minimum time between two syncs' },
  'sync-period': { type: 'string', arg: 'DURATION', default: '5m', help: 'full resync period (0s: never)' },
  'metrics-bind-address': {
    type: 'string',
    arg: 'H:P',
    default: '127.0.0.1:10263',
    help: '/metrics, /healthz (200 once synced) and /status ("" disables)',
  },
  'bridge-nf-call': {
    type: 'boolean',
    default: true,
    help: 'turn net.bridge.bridge-nf-call-ip(6)tables on in this namespace (same-node bridged pod traffic)',
  },
  ...EXIT_AFTER,
} as const satisfies FlagTable;

const USAGE = `Usage: kdp policy-agent --node NAME [options]
       kdp policy-agent cleanup      remove the policy table (inet kdp-policy) of this network namespace

Keeps the nft table inet kdp-policy of this network namespace in step with NetworkPolicy, AdminNetworkPolicy and
BaselineAdminNetworkPolicy for the pods of node NAME. Until its first sync it keeps the table an earlier agent left,
or installs a closed one (no new forwarded connection from or to --cluster-cidr); it never removes the table on exit.

Options:
${flagHelp(FLAGS)}`;

const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

function parseHostPort(s: string): { host: string; port: number } | undefined {
  if (s === '') return undefined;
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(s);
  if (!m) throw new KdpError('KDP_USAGE', `bad address ${JSON.stringify(s)} (HOST:PORT)`);
  return { host: m[1] === '' ? '0.0.0.0' : m[1]!, port: Number(m[2]) };
}

export const policyAgentCommand: Command = {
  name: 'policy-agent',
  summary: 'enforce NetworkPolicy / AdminNetworkPolicy for the pods of one node (nftables)',
  usage: USAGE,
  flags: { '': FLAGS },
  async run(argv, { log, out }) {
    const { NftPolicyTable, PolicyAgent, PolicyMetrics } = await import('../../policy/agent.ts');
    if (argv[0] === 'cleanup') {
      await new NftPolicyTable({ exec: defaultExec }).remove();
      log.info({}, 'policy table removed');
      return 0;
    }
    const values = parseOnlyFlags(FLAGS, argv, warnDeprecated(log));
    if (!values.node) throw new KdpError('KDP_USAGE', 'kdp policy-agent needs --node NAME');
    const podCidrs = list(values['cluster-cidr']);
    const { parseCidr } = await import('../../ipam/ip.ts');
    for (const c of podCidrs) {
      try {
        parseCidr(c);
      } catch (err) {
        throw new KdpError('KDP_USAGE', `--cluster-cidr: ${errorMessage(err)}`);
      }
    }
    const minIntervalMs = parseDuration(values['min-sync-period'], 'min-sync-period');
    const resyncMs = parseDuration(values['sync-period'], 'sync-period');
    const bind = parseHostPort(values['metrics-bind-address']);
    const { Registry } = await import('prom-client');
    const { incrementalRender } = await import('../../policy/sync.ts');
    const { Controller } = await import('../../k8s/controller.ts');
    const { openSource } = await import('../../k8s/open-source.ts');
    const registry = new Registry();
    const table = new NftPolicyTable({ exec: defaultExec });
    const metrics = new PolicyMetrics(registry, () => table.counters());
    const agent = new PolicyAgent({
      nodeName: values.node,
      table,
      render: incrementalRender(),
      podCidrs,
      log,
      metrics,
    });
    if (values['bridge-nf-call']) {
      const state = await table.enableBridgeNetfilter();
      if (state === 'missing')
        log.warn({}, 'no br_netfilter in this kernel: same-node pod traffic across a bridge is not policed');
    }
    // fail closed before the source starts: keep the table a previous agent left, or close it
    await agent.start();
    const source = openSource({
      ...(values.manifests ? { manifestsDir: values.manifests } : {}),
      ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
      log,
    });
    const ctl = new Controller(source, agent, {
      log,
      minIntervalMs,
      retryMinMs: 250,
      retryMaxMs: 10_000,
      ...(resyncMs > 0 ? { resyncMs } : {}),
      registry,
    });
    let server: Server | undefined;
    try {
      if (bind) server = await serve(bind, registry, () => ({ ...ctl.status(), node: values.node, last: agent.last }));
      await source.start();
      const stopped = untilStopped(exitAfterMs(values['exit-after']));
      void ctl.settled().then(() => {
        log.info({ node: values.node, syncs: agent.syncs }, 'policy agent synced');
        out('ready\n');
      });
      const why = await stopped;
      log.info({ why }, 'policy agent stopping (the table stays: `kdp policy-agent cleanup` removes it)');
    } finally {
      await ctl.stop();
      await source.stop();
      table.close();
      await new Promise<void>((r) => (server ? (server.closeAllConnections(), server.close(() => r())) : r()));
    }
    return 0;
  },
};

interface AgentStatus {
  readonly synced: boolean;
  readonly syncs: number;
  readonly last?: { readonly rules: number; readonly sets: number; readonly selectedPods: number };
}

function serve(bind: { host: string; port: number }, registry: Registry, status: () => AgentStatus): Promise<Server> {
  const srv = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err) => res.writeHead(500).end(errorMessage(err)),
      );
      return;
    }
    const s = status();
    const { last, ...rest } = s;
    const body = JSON.stringify({
      ...rest,
      ...(last ? { rules: last.rules, sets: last.sets, selectedPods: last.selectedPods } : {}),
    });
    if (path === '/healthz') res.writeHead(s.synced && s.syncs > 0 ? 200 : 503).end(body + '\n');
    else if (path === '/status') res.writeHead(200, { 'content-type': 'application/json' }).end(body + '\n');
    else res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host: bind.host, port: bind.port }, () => {
      srv.off('error', reject);
      resolve(srv);
    });
  });
}
