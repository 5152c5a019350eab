// `kdp up`: the whole data plane in one command, on the embedded default manifests.
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { KdpError } from '../../common/errors.ts';
import { isRoot } from '../../lab/lab.ts';
import { untilStopped } from '../command.ts';
import type { Command } from '../command.ts';

export const DEFAULT_MANIFESTS = fileURLToPath(new URL('../../../examples/cluster', import.meta.url));

const usage = `Usage: kdp up [--manifests DIR] [--proxy-mode nftables|iptables] [--ttl SECONDS] [--no-check]

As root: builds a lab cluster of network namespaces (one per Node in the manifests), starts every Pod through
the kdp CNI plugins with an echo server (the kube-dns pods run kdp dns), and runs the node agent, the service
proxy and the ingress controller on every node. Prints commands to try (kdp exec TARGET -- ...), checks each
once, and keeps everything up until Ctrl-C (or --ttl), then tears it all down.
Without root: the unprivileged fallback on loopback (userspace proxy NodePorts on 127.0.0.1, DNS on
127.0.0.1:5353, ingress on 127.0.0.1:8080/8443), and it says so.

  --manifests DIR   cluster state (default: examples/cluster)
  --proxy-mode M    nftables (default) or iptables
  --ttl SECONDS     tear down after this long
  --no-check        do not run the printed commands once before waiting`;

export const upCommand: Command = {
  name: 'up',
  summary: 'run the whole data plane (lab + CNI + proxy + DNS + ingress) on a manifests directory',
  usage,
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: [...argv],
      options: {
        manifests: { type: 'string', default: DEFAULT_MANIFESTS },
        'proxy-mode': { type: 'string', default: 'nftables' },
        ttl: { type: 'string' },
        'no-check': { type: 'boolean', default: false },
      },
      strict: true,
    });
    const mode = values['proxy-mode'];
    if (mode !== 'nftables' && mode !== 'iptables')
      throw new KdpError('KDP_USAGE', `--proxy-mode must be nftables or iptables, got ${mode}`);
    const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
    if (ttl !== undefined && !(ttl >= 0)) throw new KdpError('KDP_USAGE', `--ttl takes seconds, got ${values.ttl}`);
    const manifestsDir = resolve(values.manifests);
    const { writeState, removeState, readState, statePath } = await import('../../up/state.ts');
    const other = readState();
    if (other)
      throw new KdpError('KDP_USAGE', `kdp up is already running (pid ${other.pid}, ${statePath()}); stop it first`);
    const progress = (line: string) => ctx.out(`• ${line}\n`);
    // listen for Ctrl-C from the start: a signal during start-up tears down once start-up returns
    const end = new AbortController();
    const stopped = untilStopped(undefined, end.signal);
    const root = isRoot();
    let up;
    try {
      up = root
        ? await (
            await import('../../up/lab-up.ts')
          ).LabUp.start({ manifestsDir, log: ctx.log, progress, proxyMode: mode })
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
      ctx.out(`\n${ttl === undefined ? 'Ctrl-C' : `--ttl ${ttl} s or Ctrl-C`} tears everything down.\n`);
      // --ttl counts from when everything is up
      const ttlTimer = ttl === undefined ? undefined : setTimeout(() => end.abort('ttl'), ttl * 1000);
      const why = await stopped;
      clearTimeout(ttlTimer);
      ctx.log.info({ why }, 'tearing down');
    } finally {
      removeState();
      await up.stop();
    }
    ctx.out('torn down\n');
    return failed === 0 ? 0 : 1;
  },
};
