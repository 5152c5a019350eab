// `kdp status`: what kdp sees and programmed, as a table (or --json).
import { resolve } from 'node:path';
import type { Command } from '../command.ts';
import { flagHelp, parseOnlyFlags } from '../flags.ts';
import type { FlagTable } from '../flags.ts';

const FLAGS = {
  manifests: {
    type: 'string',
    arg: 'DIR',
    help: 'cluster state from a directory of manifests',
    defaultText: "the running kdp up's, else examples/cluster",
  },
  kubeconfig: { type: 'string', arg: 'FILE', help: 'cluster state from the Kubernetes API' },
  node: { type: 'string', arg: 'NAME', help: 'whose nft table and peers to read', defaultText: 'the first node' },
  json: { type: 'boolean', default: false, help: 'as JSON' },
} as const satisfies FlagTable;

const usage = `Usage: kdp status [options]

Cluster state: --manifests, else --kubeconfig, else the running kdp up's manifests, else examples/cluster.
Services -> ports -> endpoints (ready / serving-terminating / terminating) -> the proxy's nft chain, DNS names,
and ingress routes, and the node's peers (path: direct or VXLAN). With a running \`kdp up\` (as root) it reads
that run's manifests, counts the backends actually programmed in the first node's nft table (or --node's) and
checks the node agent's routes, neighbours and FDB entries there.

${flagHelp(FLAGS)}`;

export const statusCommand: Command = {
  name: 'status',
  summary: 'what kdp sees and programmed: services, endpoints, rules, DNS names, ingress routes',
  usage,
  flags: { '': FLAGS },
  async run(argv, ctx) {
    const values = parseOnlyFlags(FLAGS, argv);
    const { readState } = await import('../../up/state.ts');
    const { openSource } = await import('../../k8s/open-source.ts');
    const { takeSnapshot } = await import('../../up/snapshot.ts');
    const { buildStatus, renderStatus } = await import('../../status/status.ts');
    const { run } = await import('../../common/exec-adapter.ts');
    const state = readState();
    const { DEFAULT_MANIFESTS } = await import('./up.ts');
    // the running kdp up's manifests, else the embedded default, unless --kubeconfig asks for the API
    const manifests = values.manifests ?? (values.kubeconfig ? undefined : (state?.manifests ?? DEFAULT_MANIFESTS));
    const snap = await takeSnapshot(
      openSource({
        ...(manifests ? { manifestsDir: resolve(manifests) } : {}),
        ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
        log: ctx.log,
      }),
    );
    let nftTable: string | undefined;
    const nodeName = values.node ?? snap.nodes[0]?.meta.name;
    // the kernel is read only for the running kdp up's own cluster
    const sameCluster =
      state?.mode === 'lab' &&
      !values.kubeconfig &&
      (!values.manifests || resolve(values.manifests) === state.manifests);
    const ns = sameCluster && nodeName ? state.targets[nodeName] : undefined;
    let nodeKernel: { routes: string; neighbours: string; fdb: string } | undefined;
    if (ns) {
      const res = await run(['ip', 'netns', 'exec', ns, 'nft', 'list', 'table', 'ip', 'kdp'], { allowFailure: true });
      if (res.code === 0) nftTable = res.stdout;
      // the node agent's entries: routes of proto 199, neighbours and FDB entries (its VXLAN device's among them)
      const read = (argv: string[]) => run(['ip', 'netns', 'exec', ns, ...argv], { allowFailure: true });
      const [r4, r6, neigh, fdb] = await Promise.all([
        read(['ip', '-4', '-j', 'route', 'show', 'proto', '199']),
        read(['ip', '-6', '-j', 'route', 'show', 'proto', '199']),
        read(['ip', '-j', 'neigh', 'show']),
        read(['bridge', '-j', 'fdb', 'show']),
      ]);
      if (r4.code === 0) nodeKernel = { routes: r4.stdout + r6.stdout, neighbours: neigh.stdout, fdb: fdb.stdout };
    }
    const report = buildStatus(snap, {
      ...(nodeName ? { nodeName } : {}),
      ...(nftTable !== undefined ? { nftTable } : {}),
      ...(nodeKernel !== undefined ? { nodeKernel } : {}),
    });
    ctx.out(values.json ? JSON.stringify(report, null, 2) + '\n' : renderStatus(report));
    return 0;
  },
};
