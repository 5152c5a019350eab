// `kdp up`: the whole data plane in one command, on the embedded default manifests.
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { KdpError } from '../../common/errors.ts';
import { isRoot } from '../../lab/lab.ts';
import { isBackend } from '../../up/plan.ts';
import { parseSubnets } from './lab.ts';
import { untilStopped } from '../command.ts';
import type { Command } from '../command.ts';
import { EXIT_AFTER, TTL_EXIT_ALIAS, exitAfterMs, flagHelp, parseOnlyFlags, warnDeprecated } from '../flags.ts';
import type { FlagTable } from '../flags.ts';

export const DEFAULT_MANIFESTS = fileURLToPath(new URL('../../../examples/cluster', import.meta.url));
/** The same cluster with node-2 on the second underlay subnet (what the lab plans with --subnets 2). */
export const DEFAULT_MANIFESTS_2SUBNETS = fileURLToPath(new URL('../../../examples/cluster-2subnets', import.meta.url));

const FLAGS = {
  manifests: {
    type: 'string',
    arg: 'DIR',
    help: 'cluster state',
    defaultText: 'examples/cluster; examples/cluster-2subnets with --subnets 2',
  },
  'proxy-mode': { type: 'string', arg: 'M', default: 'nftables', help: 'nftables or iptables' },
  subnets: {
    type: 'string',
    arg: 'N',
    default: '1',
    help: 'underlay subnets of the lab: 1, or 2 routed by the underlay namespace (see kdp lab up)',
  },
  backend: {
    type: 'string',
    arg: 'B',
    help: "how the node agents reach other nodes' pods: host-gw (one subnet only), vxlan, or auto (direct on the same subnet, vxlan across)",
    defaultText: 'host-gw; auto with --subnets 2',
  },
  ...EXIT_AFTER,
  ...TTL_EXIT_ALIAS,
  'no-check': { type: 'boolean', default: false, help: 'do not run the printed commands once before waiting' },
} as const satisfies FlagTable;

const usage = `Usage: kdp up [options]

As root: builds a lab cluster of network namespaces (one per Node in the manifests), starts every Pod through
the kdp CNI plugins with an echo server (the kube-dns pods run kdp dns), and runs the node agent, the service
proxy and the ingress controller on every node. Prints commands to try (kdp exec TARGET -- ...), checks each
once, and keeps everything up until Ctrl-C (or --exit-after, counted from when everything is up), then tears
it all down.
Without root: the unprivileged fallback on loopback (userspace proxy NodePorts on 127.0.0.1, DNS on
127.0.0.1:5353, ingress on 127.0.0.1:8080/8443), and it says so.

${flagHelp(FLAGS)}`;

export const upCommand: Command = {
  name: 'up',
  summary: 'run the whole data plane (lab + CNI + proxy + DNS + ingress) on a manifests directory',
  usage,
  flags: { '': FLAGS },
  async run(argv, ctx) {
    const values = parseOnlyFlags(FLAGS, argv, warnDeprecated(ctx.log));
    const mode = values['proxy-mode'];
    if (mode !== 'nftables' && mode !== 'iptables')
      throw new KdpError('KDP_USAGE', `--proxy-mode must be nftables or iptables, got ${mode}`);
    const subnets = parseSubnets(values.subnets);
    const backend = values.backend ?? (subnets === 2 ? 'auto' : 'host-gw');
    if (!isBackend(backend))
      throw new KdpError('KDP_USAGE', `--backend must be host-gw, vxlan or auto, got ${backend}`);
    if (subnets === 2 && backend === 'host-gw')
      throw new KdpError(
        'KDP_USAGE',
        '--subnets 2 with --backend host-gw cannot work: a host-gw route needs the other node on the same link; use --backend vxlan or auto',
      );
    const exitAfter = exitAfterMs(values['exit-after']);
    const manifestsDir = resolve(values.manifests ?? (subnets === 2 ? DEFAULT_MANIFESTS_2SUBNETS : DEFAULT_MANIFESTS));
    const { writeState, removeState, readState, statePath } = await import('../../up/state.ts');
    const other = readState();
    if (other)
      throw new KdpError('KDP_USAGE', `kdp up is already running (pid ${other.pid}, ${statePath()}); stop it first`);
    const progress = (line: string) => ctx.out(`• ${line}\n`);
    // listen for Ctrl-C from the start: a signal during start-up tears down once start-up returns
    const end = new AbortController();
    const stopped = untilStopped(undefined, end.signal);
    const root = isRoot();
    if (!root && (subnets !== 1 || backend !== 'host-gw'))
      throw new KdpError(
        'KDP_USAGE',
        '--subnets and --backend need the lab, that is root (the fallback runs on loopback)',
      );
    let up;
    try {
      up = root
        ? await (
            await import('../../up/lab-up.ts')
          ).LabUp.start({ manifestsDir, log: ctx.log, progress, proxyMode: mode, subnets, backend })
        : await (await import('../../up/local-up.ts')).LocalUp.start({ manifestsDir, log: ctx.log, progress });
    } catch (err) {
      end.abort('start-up failed');
      throw err;
    }
    let failed = 0;
    try {
      const targets = 'targets' in up ? up.targets() : {};
      writeState({
        pid: process.pid,
        mode: root ? 'lab' : 'unprivileged',
        ...('lab' in up ? { runId: up.lab.plan.runId } : {}),
        manifests: manifestsDir,
        targets,
        commands: up.commands.map((c) => ({ what: c.what, argv: c.argv })),
      });
      const kdp = root ? 'kdp' : '';
      const show = (argv: readonly string[]) =>
        (root ? `${kdp} ` : '') +
        argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
      ctx.out(
        root
          ? '\nThe data plane is up. Try (kdp is ./bin/kdp):\n'
          : '\nUnprivileged fallback (not root): no lab, no kernel rules. Try:\n',
      );
      const results = values['no-check'] ? undefined : await up.check();
      up.commands.forEach((c, i) => {
        const r = results?.[i];
        ctx.out(`  # ${c.what}${r ? (r.ok ? '  [checked: ok]' : '  [checked: FAILED]') : ''}\n  ${show(c.argv)}\n`);
        if (r && !r.ok) {
          failed++;
          ctx.out(`    -> ${r.output.split('\n').slice(0, 3).join(' | ')}\n`);
        }
      });
      if (root) ctx.out(`  # what kdp sees and programmed\n  kdp status\n`);
      ctx.out(
        `\n${exitAfter === undefined ? 'Ctrl-C' : `--exit-after ${exitAfter / 1000} s or Ctrl-C`} tears everything down.\n`,
      );
      // --exit-after counts from when everything is up
      const timer = exitAfter === undefined ? undefined : setTimeout(() => end.abort('exit-after'), exitAfter);
      const why = await stopped;
      clearTimeout(timer);
      ctx.log.info({ why }, 'tearing down');
    } finally {
      removeState();
      await up.stop();
    }
    ctx.out('torn down\n');
    return failed === 0 ? 0 : 1;
  },
};
