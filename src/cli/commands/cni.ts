// `kdp cni build|install` (the plugin bundles) and `kdp node-agent` (host-gw routes from Node objects).
export { renderConflist } from '../../node/conflist.ts';
import {
  chmodSync,
  copyFileSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KdpError } from '../../common/errors.ts';
import { renderConflist } from '../../node/conflist.ts';
import { untilStopped } from '../command.ts';
import type { Command, CommandContext } from '../command.ts';

const cniUsage = `Usage:
  kdp cni build [--out DIR]          bundle kdp-bridge, kdp-host-local, kdp-portmap into DIR (default dist/cni),
                                     run by this Node binary
  kdp cni install --bin-dir DIR --conf-dir DIR [--subnet CIDR]... [--cluster-cidr CIDR]...
                  [--network NAME] [--bridge NAME] [--data-dir DIR] [--mtu N]
                                     install the plugins plus a copy of Node (DIR/kdp-node) so they run without
                                     this checkout; with --subnet also write CONF-DIR/10-NAME.conflist
                                     (kdp-bridge + kdp-portmap; one --subnet per family). The fast path is
                                     \`kdp cni serve\` running on the node (the kdp-node DaemonSet runs it; on a
                                     plain host run it as a service): the plugins forward to it and run the
                                     verbs in their own Node process only while it is not running
  kdp cni serve [--socket PATH] [--ttl SECONDS] [--no-prespawn]
                                     serve the plugins' verbs from one warm process for this network namespace
                                     (default socket /run/kdp-cni/<netns inode>.sock); the installed plugins
                                     forward to it when it listens, and run the verbs themselves otherwise.
                                     It keeps an \`ip -batch\` and an \`nft -f\` child waiting and holds the IPAM
                                     and nft flocks through Perl lock agents (needs perl; --no-prespawn: spawn
                                     every child per call instead, for comparison)`;

async function build(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: { out: { type: 'string' } }, strict: true });
  const { buildPlugins, DIST } = await import('../../../cni-plugins/build.ts');
  const files = await buildPlugins(values.out ?? DIST);
  ctx.out(files.join('\n') + '\n');
  return 0;
}

async function install(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      'bin-dir': { type: 'string' },
      'conf-dir': { type: 'string' },
      subnet: { type: 'string', multiple: true, default: [] },
      'cluster-cidr': { type: 'string', multiple: true, default: [] },
      network: { type: 'string', default: 'kdp' },
      bridge: { type: 'string', default: 'kdp0' },
      'data-dir': { type: 'string' },
      mtu: { type: 'string' },
    },
    strict: true,
  });
  const binDir = values['bin-dir'];
  const confDir = values['conf-dir'];
  if (!binDir || !confDir) throw new KdpError('KDP_USAGE', 'kdp cni install needs --bin-dir and --conf-dir');
  const mtu = values.mtu === undefined ? undefined : Number(values.mtu);
  if (mtu !== undefined && !(Number.isInteger(mtu) && mtu >= 576))
    throw new KdpError('KDP_USAGE', `bad --mtu ${values.mtu}`);
  let conflist: string | undefined;
  if (values.subnet.length > 0) {
    try {
      conflist = renderConflist({
        network: values.network,
        bridge: values.bridge,
        subnets: values.subnet,
        clusterCidrs: values['cluster-cidr'],
        ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
        ...(mtu ? { mtu } : {}),
      });
    } catch (err) {
      throw new KdpError('KDP_USAGE', (err as Error).message);
    }
  }
  mkdirSync(binDir, { recursive: true });
  mkdirSync(confDir, { recursive: true });
  const bin = realpathSync(binDir);
  const node = join(bin, 'kdp-node');
  // every file lands by rename: a runtime exec'ing a plugin meanwhile sees the old or the new one, whole
  const stage = mkdtempSync(join(bin, '.kdp-install-'));
  try {
    // a hard link when on the same file system (instant, and it outlives the checkout), else a copy
    const self = realpathSync(process.execPath);
    try {
      linkSync(self, join(stage, 'kdp-node'));
    } catch {
      copyFileSync(self, join(stage, 'kdp-node'));
      chmodSync(join(stage, 'kdp-node'), 0o755);
    }
    const { buildPlugins } = await import('../../../cni-plugins/build.ts');
    await buildPlugins(stage, node);
    const installed: string[] = [];
    for (const f of readdirSync(stage)) {
      if (f === 'package.json') continue;
      renameSync(join(stage, f), join(bin, f));
      installed.push(join(bin, f));
    }
    if (conflist) {
      const file = join(confDir, `10-${values.network}.conflist`);
      writeFileSync(`${file}.tmp`, conflist);
      renameSync(`${file}.tmp`, file);
      installed.push(file);
    }
    ctx.log.info(
      {
        files: installed,
        fastPath: 'run `kdp cni serve` on this node (the kdp-node DaemonSet does); without it each call starts Node',
      },
      'kdp CNI plugins installed',
    );
    ctx.out(installed.join('\n') + '\n');
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return 0;
}

async function serve(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      socket: { type: 'string' },
      ttl: { type: 'string' },
      'no-prespawn': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
  if (ttl !== undefined && !(ttl >= 0)) throw new KdpError('KDP_USAGE', `--ttl takes seconds, got ${values.ttl}`);
  const { startCniServer } = await import('../../cni/server.ts');
  const { bridgeVerbs } = await import('../../cni/bridge.ts');
  const { createHostLocalVerbs } = await import('../../ipam/host-local.ts');
  const { portmapVerbs } = await import('../../cni/portmap.ts');
  const server = await startCniServer({
    log: ctx.log,
    ...(values.socket ? { socketPath: values.socket } : {}),
    warm: !values['no-prespawn'],
    verbs: {
      'kdp-bridge': bridgeVerbs,
      'kdp-host-local': (warm) => createHostLocalVerbs(warm?.locks.lock),
      'kdp-portmap': portmapVerbs,
    },
  });
  ctx.log.info({ socket: server.path }, 'kdp cni serve listening');
  try {
    const why = await untilStopped(ttl === undefined ? undefined : ttl * 1000);
    ctx.log.info({ why, served: server.served() }, 'kdp cni serve stopping');
  } finally {
    await server.close();
  }
  return 0;
}

export const cniCommand: Command = {
  name: 'cni',
  summary: 'build or install the kdp CNI plugins (kdp-bridge, kdp-host-local, kdp-portmap)',
  usage: cniUsage,
  async run(argv, ctx) {
    const [action, ...rest] = argv;
    switch (action) {
      case 'build':
        return build(rest, ctx);
      case 'install':
        return install(rest, ctx);
      case 'serve':
        return serve(rest, ctx);
      default:
        throw new KdpError(
          'KDP_USAGE',
          action === undefined
            ? 'kdp cni: missing action (build, install, serve)'
            : `kdp cni: unknown action ${JSON.stringify(action)}`,
        );
    }
  },
};

const agentUsage = `Usage:
  kdp node-agent --node NAME [--manifests DIR | --kubeconfig FILE] [--ttl SECONDS]
                 [--cni-conf-dir DIR [--cluster-cidr CIDR]... [--network NAME] [--bridge NAME] [--mtu N]]
      keep host-gw routes (proto 199) in this network namespace: every other node's podCIDRs via its
      InternalIP, from Node objects (a manifests directory or the Kubernetes API); with --cni-conf-dir also
      keep DIR/10-NAME.conflist (kdp-bridge + kdp-portmap) in step with this node's own podCIDRs`;

export const nodeAgentCommand: Command = {
  name: 'node-agent',
  summary: 'program host-gw routes to the other nodes\u2019 pod CIDRs (cross-node pod networking)',
  usage: agentUsage,
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: [...argv],
      options: {
        node: { type: 'string' },
        manifests: { type: 'string' },
        kubeconfig: { type: 'string' },
        ttl: { type: 'string' },
        'cni-conf-dir': { type: 'string' },
        'cluster-cidr': { type: 'string', multiple: true, default: [] },
        network: { type: 'string', default: 'kdp' },
        bridge: { type: 'string', default: 'kdp0' },
        mtu: { type: 'string' },
      },
      strict: true,
    });
    if (!values.node) throw new KdpError('KDP_USAGE', 'kdp node-agent needs --node NAME');
    const mtu = values.mtu === undefined ? undefined : Number(values.mtu);
    if (mtu !== undefined && !(Number.isInteger(mtu) && mtu >= 576))
      throw new KdpError('KDP_USAGE', `--mtu takes an integer >= 576, got ${values.mtu}`);
    const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
    if (ttl !== undefined && !(ttl >= 0)) throw new KdpError('KDP_USAGE', `--ttl takes seconds, got ${values.ttl}`);
    const { openSource } = await import('../../k8s/open-source.ts');
    const { HostGwAgent, IpRouteTable } = await import('../../node/agent.ts');
    const source = openSource({
      log: ctx.log,
      ...(values.manifests ? { manifestsDir: values.manifests } : {}),
      ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    });
    const { Controller } = await import('../../k8s/controller.ts');
    const agent = new HostGwAgent({ nodeName: values.node, table: new IpRouteTable(), log: ctx.log });
    // route changes within a second; a failure is retried from 1 s, capped at 10 s
    const kernel = { log: ctx.log, retryMinMs: 1000, retryMaxMs: 10_000 };
    const controllers = [new Controller(source, agent, kernel)];
    if (values['cni-conf-dir']) {
      const { ConflistWriter } = await import('../../node/conflist.ts');
      const writer = new ConflistWriter({
        nodeName: values.node,
        confDir: values['cni-conf-dir'],
        network: values.network,
        bridge: values.bridge,
        clusterCidrs: values['cluster-cidr'],
        ...(mtu ? { mtu } : {}),
        log: ctx.log,
      });
      controllers.push(new Controller(source, writer, kernel));
    }
    try {
      await source.start();
      // a reconcile that keeps failing is retried by the kernel; the agent keeps running (and stoppable) meanwhile
      const stopped = untilStopped(ttl === undefined ? undefined : ttl * 1000);
      void Promise.all(controllers.map((c) => c.settled())).then(() =>
        ctx.log.info({ node: values.node, syncs: agent.syncs }, 'node agent synced'),
      );
      const why = await stopped;
      ctx.log.info({ why }, 'node agent stopping');
    } finally {
      await Promise.all(controllers.map((c) => c.stop()));
      await source.stop();
    }
    return 0;
  },
};
