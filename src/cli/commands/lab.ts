// `kdp lab`: build, list and sweep labs of network namespaces by hand.
import { KdpError } from '../../common/errors.ts';
import { Lab, isAlive, listNamespaces, sweep } from '../../lab/lab.ts';
import { parseNsName } from '../../lab/plan.ts';
import { untilStopped } from '../command.ts';
import type { Command, CommandContext } from '../command.ts';
import { EXIT_AFTER, TTL_EXIT_ALIAS, exitAfterMs, flagHelp, parseOnlyFlags, warnDeprecated } from '../flags.ts';
import type { FlagTable } from '../flags.ts';

const UP_FLAGS = {
  nodes: { type: 'string', arg: 'N', default: '2', help: 'node namespaces' },
  subnets: {
    type: 'string',
    arg: 'N',
    default: '1',
    help: 'underlay subnets: 1, or 2 routed by the underlay namespace (nodes alternate; host-gw cannot cross them)',
  },
  ...EXIT_AFTER,
  ...TTL_EXIT_ALIAS,
} as const satisfies FlagTable;

const LIST_FLAGS = {
  json: { type: 'boolean', default: false, help: 'as JSON' },
} as const satisfies FlagTable;

const usage = `Usage:
  kdp lab up [options]     build a lab (underlay + N node namespaces, on one or two routed subnets), print how
                           to use it, keep it until Ctrl-C (or --exit-after), then remove it
${flagHelp(UP_FLAGS, 4)}
  kdp lab list [options]   kdp namespaces on this machine, and whether their run is alive
${flagHelp(LIST_FLAGS, 4)}
  kdp lab sweep            remove the namespaces of kdp runs that are no longer alive`;

async function up(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const values = parseOnlyFlags(UP_FLAGS, argv, warnDeprecated(ctx.log));
  const nodes = Number(values.nodes);
  if (!Number.isInteger(nodes) || nodes < 1)
    throw new KdpError('KDP_USAGE', `--nodes takes a count, got ${values.nodes}`);
  const subnets = parseSubnets(values.subnets);
  const exitAfter = exitAfterMs(values['exit-after']);
  const end = new AbortController();
  const stopped = untilStopped(undefined, end.signal);
  let lab;
  try {
    lab = await Lab.create({ nodes, subnets, log: ctx.log, handleSignals: false });
  } catch (err) {
    end.abort('start-up failed');
    throw err;
  }
  try {
    const p = lab.plan;
    const rows = p.nodes.map(
      (n) =>
        `  ${n.name.padEnd(8)} ns ${n.ns.padEnd(28)} ${n.ip4.padEnd(13)} ${n.ip6.padEnd(20)} pods ${n.podCidr4}` +
        (p.subnets.length > 1 ? `  segment ${p.subnets[n.subnet]?.bridge} via ${n.gateway4}` : ''),
    );
    const [a, b] = p.nodes;
    const segments =
      p.subnets.length > 1
        ? [
            `  ${p.subnets.length} segments routed by the underlay: ` +
              p.subnets.map((s) => `${s.bridge} ${s.cidr4} ${s.cidr6} (router ${s.host4})`).join(', '),
          ]
        : [];
    ctx.out(
      [
        `lab ${p.runId}: underlay ${p.underlayNs} (bridge ${p.underlayBridge}, host ${p.underlayHost4})`,
        ...segments,
        ...rows,
        '',
        'Try (as root, in another terminal):',
        a && b
          ? `  ip netns exec ${a.ns} ping -c 2 ${b.ip4}`
          : `  ip netns exec ${p.underlayNs} ping -c 2 ${a?.ip4 ?? ''}`,
        `  ip netns exec ${p.underlayNs} ping -c 2 ${a?.ip6 ?? ''}`,
        `  ip -n ${p.underlayNs} link show master ${p.underlayBridge}`,
        '',
        exitAfter === undefined
          ? 'Ctrl-C removes the lab.'
          : `The lab is removed in ${exitAfter / 1000} s (or on Ctrl-C).`,
      ].join('\n') + '\n',
    );
    const timer = exitAfter === undefined ? undefined : setTimeout(() => end.abort('exit-after'), exitAfter);
    const why = await stopped;
    clearTimeout(timer);
    ctx.log.info({ why }, 'removing the lab');
  } finally {
    await lab.destroy();
  }
  return 0;
}

/** --subnets: 1 or 2. */
export function parseSubnets(v: string): 1 | 2 {
  if (v === '1' || v === '2') return Number(v) as 1 | 2;
  throw new KdpError('KDP_USAGE', `--subnets takes 1 or 2, got ${v}`);
}

async function list(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const values = parseOnlyFlags(LIST_FLAGS, argv);
  const rows = (await listNamespaces())
    .map((name) => ({ name, parsed: parseNsName(name) }))
    .filter((r) => r.parsed !== undefined)
    .map((r) => ({ name: r.name, runId: r.parsed!.runId, role: r.parsed!.role, alive: isAlive(r.parsed!.pid) }));
  if (values.json) ctx.out(JSON.stringify(rows, null, 2) + '\n');
  else if (rows.length === 0) ctx.out('no kdp namespaces\n');
  else
    ctx.out(
      rows.map((r) => `${r.name.padEnd(36)} run ${r.runId.padEnd(14)} ${r.alive ? 'alive' : 'left over'}`).join('\n') +
        '\n',
    );
  return 0;
}

export const labCommand: Command = {
  name: 'lab',
  summary: 'build an isolated cluster of network namespaces (needs root)',
  usage,
  flags: { up: UP_FLAGS, list: LIST_FLAGS, sweep: {} },
  async run(argv, ctx) {
    const [action, ...rest] = argv;
    switch (action) {
      case 'up':
        return up(rest, ctx);
      case 'list':
        return list(rest, ctx);
      case 'sweep': {
        parseOnlyFlags({}, rest);
        const removed = await sweep(undefined, ctx.log);
        ctx.out(removed.length === 0 ? 'nothing to sweep\n' : `removed ${removed.join(' ')}\n`);
        return 0;
      }
      default:
        throw new KdpError(
          'KDP_USAGE',
          action === undefined
            ? 'kdp lab: missing action (up, list, sweep)'
            : `kdp lab: unknown action ${JSON.stringify(action)}`,
        );
    }
  },
};
