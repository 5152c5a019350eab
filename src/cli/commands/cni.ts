// `kdp cni build|install` (the plugin bundles) and `kdp node-agent` (host-gw routes or the VXLAN overlay from Node objects).
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
import type { Server } from 'node:http';
import type { Reconciler } from '../../k8s/controller.ts';
import { KdpError } from '../../common/errors.ts';
import { renderConflist } from '../../node/conflist.ts';
import { DEFAULT_DATA_DIR } from '../../ipam/config.ts';
import { untilStopped } from '../command.ts';
import type { Command, CommandContext } from '../command.ts';
import { EXIT_AFTER, TTL_EXIT_ALIAS, exitAfterMs, flagHelp, parseOnlyFlags, warnDeprecated } from '../flags.ts';
import type { FlagTable } from '../flags.ts';

const BUILD_FLAGS = {
  out: { type: 'string', arg: 'DIR', help: 'where the bundles go', defaultText: 'dist/cni' },
} as const satisfies FlagTable;

const CONFLIST_FLAGS = {
  'cluster-cidr': {
    type: 'string',
    arg: 'CIDR',
    multiple: true,
    default: [],
    help: 'pod CIDR of the whole cluster (traffic to it is not masqueraded)',
  },
  network: { type: 'string', arg: 'NAME', default: 'kdp', help: 'network name (the conflist is 10-NAME.conflist)' },
  bridge: { type: 'string', arg: 'NAME', default: 'kdp0', help: 'bridge device of kdp-bridge' },
  mtu: { type: 'string', arg: 'N', help: 'MTU of the pod interfaces (>= 576)', defaultText: "the kernel's" },
} as const satisfies FlagTable;

const INSTALL_FLAGS = {
  'bin-dir': { type: 'string', arg: 'DIR', help: 'where the plugins and kdp-node go (required)' },
  'conf-dir': { type: 'string', arg: 'DIR', help: 'the CNI configuration directory (required)' },
  subnet: {
    type: 'string',
    arg: 'CIDR',
    multiple: true,
    default: [],
    help: "this node's pod CIDR, one per family; with it, also write CONF-DIR/10-NAME.conflist",
  },
  ...CONFLIST_FLAGS,
  'data-dir': { type: 'string', arg: 'DIR', help: "kdp-host-local's state directory", defaultText: DEFAULT_DATA_DIR },
} as const satisfies FlagTable;

const SERVE_FLAGS = {
  socket: { type: 'string', arg: 'PATH', help: 'listen here', defaultText: '/run/kdp-cni/<netns inode>.sock' },
  ...EXIT_AFTER,
  ...TTL_EXIT_ALIAS,
  'no-prespawn': {
    type: 'boolean',
    default: false,
    help: 'spawn every child per call instead of keeping them waiting (for comparison)',
  },
} as const satisfies FlagTable;

const cniUsage = `Usage:
  kdp cni build [options]      bundle kdp-bridge, kdp-host-local, kdp-portmap, run by this Node binary
${flagHelp(BUILD_FLAGS, 4)}

  kdp cni install [options]    install the plugins plus a copy of Node (BIN-DIR/kdp-node) so they run
                               without this checkout; with --subnet also write CONF-DIR/10-NAME.conflist
                               (kdp-bridge + kdp-portmap). The fast path is \`kdp cni serve\` running on the
                               node (the kdp-node DaemonSet runs it; on a plain host run it as a service):
                               the plugins forward to it and run the verbs in their own Node process only
                               while it is not running
${flagHelp(INSTALL_FLAGS, 4)}

  kdp cni serve [options]      serve the plugins' verbs from one warm process for this network namespace;
                               the installed plugins forward to it when it listens, and run the verbs
                               themselves otherwise. It keeps an \`ip -batch\` and an \`nft -f\` child waiting
                               and holds the IPAM and nft flocks through Perl lock agents (needs perl)
${flagHelp(SERVE_FLAGS, 4)}`;

async function build(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const values = parseOnlyFlags(BUILD_FLAGS, argv);
  const { buildPlugins, DIST } = await import('../../../cni-plugins/build.ts');
  const files = await buildPlugins(values.out ?? DIST);
  ctx.out(files.join('\n') + '\n');
  return 0;
}

async function install(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const values = parseOnlyFlags(INSTALL_FLAGS, argv);
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
  const values = parseOnlyFlags(SERVE_FLAGS, argv, warnDeprecated(ctx.log));
  const exitAfter = exitAfterMs(values['exit-after']);
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
    const why = await untilStopped(exitAfter);
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
  flags: { build: BUILD_FLAGS, install: INSTALL_FLAGS, serve: SERVE_FLAGS },
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

const AGENT_FLAGS = {
  node: { type: 'string', arg: 'NAME', help: "this node's name (required)" },
  manifests: { type: 'string', arg: 'DIR', help: 'Node objects from a directory of manifests' },
  kubeconfig: {
    type: 'string',
    arg: 'FILE',
    help: 'Node objects from the Kubernetes API',
    defaultText: 'without --manifests: KUBECONFIG, ~/.kube/config or in-cluster',
  },
  ...EXIT_AFTER,
  ...TTL_EXIT_ALIAS,
  'cni-conf-dir': {
    type: 'string',
    arg: 'DIR',
    help: "also keep DIR/10-NAME.conflist in step with this node's podCIDRs (the flags below)",
  },
  ...CONFLIST_FLAGS,
  backend: {
    type: 'string',
    arg: 'B',
    default: 'host-gw',
    help: 'host-gw (routes via InternalIPs, one L2 segment), vxlan (overlay), auto (direct on a shared subnet, else vxlan)',
  },
  vni: { type: 'string', arg: 'N', default: '1', help: 'VXLAN network identifier (vxlan/auto); the device is kdp.N' },
  'vxlan-port': {
    type: 'string',
    arg: 'PORT',
    default: '8472',
    help: 'VXLAN UDP port (flannel\u2019s; IANA\u2019s is 4789)',
  },
  'underlay-iface': {
    type: 'string',
    arg: 'IF',
    help: 'interface VXLAN packets leave by (vxlan/auto)',
    defaultText: "the one holding this node's InternalIP",
  },
  'metrics-bind-address': {
    type: 'string',
    arg: 'H:P',
    default: '',
    help: '/metrics: peers per path and the controller metrics ("" disables)',
  },
} as const satisfies FlagTable;

function intFlag(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max)
    throw new KdpError('KDP_USAGE', `--${name} takes an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

const agentUsage = `Usage: kdp node-agent --node NAME [options]
Keeps pod networking to the other nodes in this network namespace, from Node objects (a manifests directory or
the Kubernetes API). With --backend host-gw: every other node's podCIDRs via its InternalIP (proto 199 routes).
With --backend vxlan: a VXLAN device kdp.VNI (MTU: the underlay's - 50) and, per peer, a route, a neighbour and
an FDB entry to its VTEP (Node annotations kdp.dev/vxlan-mac and kdp.dev/public-ip, or flannel's); IPv6 pod
CIDRs over a second device kdp6.VNI (MTU: the underlay's - 70; annotations kdp.dev/vxlan-mac-v6 and
kdp.dev/public-ipv6) when the underlay has an IPv6 address; this node's
are PATCHed onto its Node (Kubernetes mode) or must be in its manifest. With --backend auto: a host-gw route to
peers on the underlay's own subnet, VXLAN to the others. With --cni-conf-dir it also keeps
DIR/10-NAME.conflist (kdp-bridge + kdp-portmap) in step with this node's own podCIDRs (vxlan/auto: MTU
defaults to the overlay's). See docs/overlay.md.

${flagHelp(AGENT_FLAGS)}`;

export const nodeAgentCommand: Command = {
  name: 'node-agent',
  summary: 'cross-node pod networking: host-gw routes or a VXLAN overlay to the other nodes\u2019 pod CIDRs',
  usage: agentUsage,
  flags: { '': AGENT_FLAGS },
  async run(argv, ctx) {
    const values = parseOnlyFlags(AGENT_FLAGS, argv, warnDeprecated(ctx.log));
    const exitAfter = exitAfterMs(values['exit-after']);
    if (!values.node) throw new KdpError('KDP_USAGE', 'kdp node-agent needs --node NAME');
    const mtu = values.mtu === undefined ? undefined : Number(values.mtu);
    if (mtu !== undefined && !(Number.isInteger(mtu) && mtu >= 576))
      throw new KdpError('KDP_USAGE', `--mtu takes an integer >= 576, got ${values.mtu}`);
    const backend = values.backend;
    if (backend !== 'host-gw' && backend !== 'vxlan' && backend !== 'auto')
      throw new KdpError('KDP_USAGE', `--backend takes host-gw, vxlan or auto, got ${JSON.stringify(backend)}`);
    if (backend !== 'host-gw' && values['cni-conf-dir'] && values['cluster-cidr'].length === 0)
      throw new KdpError(
        'KDP_USAGE',
        `--backend ${backend} with --cni-conf-dir needs --cluster-cidr: without it kdp-bridge masquerades pod traffic to other nodes (the source IP is lost)`,
      );
    const vni = intFlag('vni', values.vni, 1, 16_777_215);
    const vxlanPort = intFlag('vxlan-port', values['vxlan-port'], 1, 65_535);
    const metricsAddr = values['metrics-bind-address'];
    const metricsAt = /^\[?([^\]]*)\]?:(\d+)$/.exec(metricsAddr);
    if (metricsAddr !== '' && !metricsAt)
      throw new KdpError('KDP_USAGE', `bad --metrics-bind-address ${JSON.stringify(metricsAddr)} (HOST:PORT)`);
    const { openSource } = await import('../../k8s/open-source.ts');
    const source = openSource({
      log: ctx.log,
      ...(values.manifests ? { manifestsDir: values.manifests } : {}),
      ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    });
    const { Controller } = await import('../../k8s/controller.ts');
    const { Registry } = await import('prom-client');
    const registry = new Registry();
    let agent: { syncs: number } & Reconciler;
    let overlayMtu: (() => number | undefined) | undefined;
    let resyncMs: number | undefined;
    let writerController: { requestFull(): void } | undefined;
    if (backend === 'host-gw') {
      const { HostGwAgent, IpRouteTable } = await import('../../node/agent.ts');
      agent = new HostGwAgent({ nodeName: values.node, table: new IpRouteTable(), log: ctx.log });
    } else {
      const { OverlayAgent, IpOverlayKernel } = await import('../../node/overlay-agent.ts');
      let annotator;
      if (!values.manifests) {
        const { loadKubeConfig } = await import('../../k8s/kube-source.ts');
        const { KubeNodeAnnotator } = await import('../../k8s/node-annotations.ts');
        annotator = new KubeNodeAnnotator(loadKubeConfig(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}));
      }
      const overlay = new OverlayAgent({
        nodeName: values.node,
        backend,
        kernel: new IpOverlayKernel(),
        vni,
        port: vxlanPort,
        ...(values['underlay-iface'] ? { underlayIface: values['underlay-iface'] } : {}),
        ...(annotator ? { annotator } : {}),
        registry,
        log: ctx.log,
        onUnderlay: () => writerController?.requestFull(),
      });
      overlayMtu = () => overlay.overlayMtu;
      agent = overlay;
      // a full reconcile re-reads the kernel (repairs entries someone else removed); between them a peer's change costs one apply
      resyncMs = 60_000;
    }
    // route changes within a second; a failure is retried from 1 s, capped at 10 s
    const kernel = { log: ctx.log, retryMinMs: 1000, retryMaxMs: 10_000, registry };
    const controllers = [new Controller(source, agent, { ...kernel, ...(resyncMs ? { resyncMs } : {}) })];
    if (values['cni-conf-dir']) {
      const { ConflistWriter } = await import('../../node/conflist.ts');
      const writer = new ConflistWriter({
        nodeName: values.node,
        confDir: values['cni-conf-dir'],
        network: values.network,
        bridge: values.bridge,
        clusterCidrs: values['cluster-cidr'],
        ...(mtu ? { mtu } : overlayMtu ? { mtu: overlayMtu } : {}),
        log: ctx.log,
      });
      const wc = new Controller(source, writer, kernel);
      writerController = wc;
      controllers.push(wc);
    }
    let server: Server | undefined;
    if (metricsAt) {
      const { createServer } = await import('node:http');
      server = createServer((req, res) => {
        if (req.url !== '/metrics') {
          res.writeHead(404).end();
          return;
        }
        void registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          () => res.writeHead(500).end(),
        );
      });
      await new Promise<void>((ok, fail) => {
        server!.once('error', fail);
        server!.listen(Number(metricsAt[2]), metricsAt[1] || '0.0.0.0', () => ok());
      });
    }
    try {
      await source.start();
      // a reconcile that keeps failing is retried by the kernel; the agent keeps running (and stoppable) meanwhile
      const stopped = untilStopped(exitAfter);
      void Promise.all(controllers.map((c) => c.settled())).then(() =>
        ctx.log.info({ node: values.node, syncs: agent.syncs }, 'node agent synced'),
      );
      const why = await stopped;
      ctx.log.info({ why }, 'node agent stopping');
    } finally {
      await Promise.all(controllers.map((c) => c.stop()));
      await source.stop();
      server?.close();
    }
    return 0;
  },
};
