// `kdp exec TARGET -- COMMAND...`: run a command inside a pod, node or the underlay of the running `kdp up`.
import { spawn } from 'node:child_process';
import { KdpError } from '../../common/errors.ts';
import type { Command } from '../command.ts';

const usage = `Usage: kdp exec TARGET -- COMMAND [ARG...]

TARGET is a pod (namespace/name, or a name that is unique), a node name, or "underlay" (the network
outside the cluster) of the lab that \`kdp up\` is running. The pod's /etc/resolv.conf points at the cluster DNS.`;

export const execCommand: Command = {
  name: 'exec',
  summary: 'run a command inside a pod, node or the underlay of the running kdp up',
  usage,
  flags: {},
  async run(argv) {
    const sep = argv.indexOf('--');
    const target = argv[0];
    const cmd = sep >= 0 ? argv.slice(sep + 1) : argv.slice(1);
    if (!target || target === '--' || cmd.length === 0 || (sep >= 0 && sep !== 1))
      throw new KdpError('KDP_USAGE', 'kdp exec TARGET -- COMMAND [ARG...]');
    const { readState, resolveTarget, statePath } = await import('../../up/state.ts');
    const state = readState();
    if (!state) throw new KdpError('KDP_USAGE', `no kdp up is running (${statePath()})`);
    const ns = resolveTarget(state, target);
    const full = ns === '' ? cmd : ['ip', 'netns', 'exec', ns, ...cmd];
    return new Promise<number>((resolve, reject) => {
      const child = spawn(full[0] as string, full.slice(1), { stdio: 'inherit' });
      child.on('error', (err) => reject(new KdpError('KDP_EXEC_FAILED', `${full[0]}: ${err.message}`, { cause: err })));
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
  },
};
