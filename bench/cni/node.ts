// The bench node shared by bench:cni and bench:cni-trace: a one-node lab, freshly built plugins, a data dir, and
// two `kdp cni serve` in the node's namespace: the warm one (pre-spawned children and lock agents) and the same
// server with --no-prespawn (every child spawned per call), each on its own socket in the data dir.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import type { NodePlan } from '../../src/lab/plan.ts';
import { freshPlugins } from '../../src/cni/testing/fixtures.ts';

const KDP = fileURLToPath(new URL('../../bin/kdp', import.meta.url));

export interface BenchNode {
  readonly lab: Lab;
  readonly node: NodePlan;
  /** the bundled kdp plugins */
  readonly bin: string;
  /** IPAM data dir and socket dir */
  readonly data: string;
  /** the warm server's socket, and the --no-prespawn server's */
  readonly sockets: { readonly serve: string; readonly plain: string };
  /** stops both servers, removes the lab, the plugins and the data dir */
  close(): Promise<void>;
}

export async function startBenchNode(prefix: string): Promise<BenchNode> {
  const lab = await Lab.create({ nodes: 1 });
  const bin = await freshPlugins();
  const data = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const cleanup = async () => {
    await lab.destroy();
    rmSync(bin, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  };
  try {
    const node = lab.nodes[0]!;
    const sockets = { serve: join(data, 'serve.sock'), plain: join(data, 'plain.sock') };
    const serve = (extra: string[], sock: string) =>
      lab.spawn(node.ns, [
        'env',
        '-u',
        'NODE_OPTIONS',
        KDP,
        '--log-format',
        'json',
        '--log-level',
        'warn',
        'cni',
        'serve',
        ...extra,
        '--socket',
        sock,
      ]);
    const server = serve([], sockets.serve);
    const plain = serve(['--no-prespawn'], sockets.plain);
    const up = () => existsSync(sockets.serve) && existsSync(sockets.plain);
    for (let k = 0; k < 600 && !up(); k++) await new Promise((r) => setTimeout(r, 100));
    if (!up()) throw new Error(`kdp cni serve did not start: ${server.output()} ${plain.output()}`);
    return {
      lab,
      node,
      bin,
      data,
      sockets,
      close: async () => {
        server.kill('SIGTERM');
        plain.kill('SIGTERM');
        await Promise.all([server.exited, plain.exited]);
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
