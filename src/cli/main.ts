#!/usr/bin/env node
// kdp: the composition root. Global flags, the logger, the subcommand table; nothing else.
import { realpathSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import { fileURLToPath } from 'node:url';
import pkg from '../../package.json' with { type: 'json' };
import { errorMessage, isKdpError } from '../common/errors.ts';
import { LOG_LEVELS, createLogger } from '../common/log.ts';
import type { LogFormat, LogLevel } from '../common/log.ts';
import type { Command } from './command.ts';
import { flagHelp, parseOnlyFlags } from './flags.ts';
import type { FlagTable } from './flags.ts';

export const VERSION: string = pkg.version;

/** The subcommand table. A command's module (and what it imports) is loaded only when it runs. */
interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  load(): Promise<Command>;
}

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'up',
    summary: 'run the whole data plane (lab + CNI + proxy + DNS + ingress) on a manifests directory',
    load: async () => (await import('./commands/up.ts')).upCommand,
  },
  {
    name: 'exec',
    summary: 'run a command inside a pod, node or the underlay of the running kdp up',
    load: async () => (await import('./commands/exec.ts')).execCommand,
  },
  {
    name: 'status',
    summary: 'what kdp sees and programmed: services, endpoints, rules, DNS names, ingress routes',
    load: async () => (await import('./commands/status.ts')).statusCommand,
  },
  {
    name: 'explain',
    summary: 'the path of one connection: service DNAT, then the policy rule that allows or denies it',
    load: async () => (await import('./commands/explain.ts')).explainCommand,
  },
  {
    name: 'proxy',
    summary: 'run the service proxy (nftables, iptables or userspace) for Services and EndpointSlices',
    load: async () => (await import('./commands/proxy.ts')).proxyCommand,
  },
  // dns: V8's on-disk compile cache (type-stripped modules included) halves the CPU of a (re)start
  {
    name: 'dns',
    summary: 'cluster DNS: Kubernetes service and pod names, forwarding, cache (CoreDNS-compatible)',
    load: async () => (enableCompileCache(), (await import('./commands/dns.ts')).dnsCommand),
  },
  {
    name: 'ingress',
    summary: 'ingress controller: layer-7 routing from Ingress objects (HTTP, HTTPS/HTTP2, WebSocket)',
    load: async () => (await import('./commands/ingress.ts')).ingressCommand,
  },
  {
    name: 'cni',
    summary: 'build or install the kdp CNI plugins (kdp-bridge, kdp-host-local, kdp-portmap)',
    load: async () => (await import('./commands/cni.ts')).cniCommand,
  },
  {
    name: 'node-agent',
    summary: 'cross-node pod networking: host-gw routes or a VXLAN overlay to the other nodes\u2019 pod CIDRs',
    load: async () => (await import('./commands/cni.ts')).nodeAgentCommand,
  },
  {
    name: 'policy-agent',
    summary: 'enforce NetworkPolicy / AdminNetworkPolicy for the pods of one node (nftables)',
    load: async () => (await import('./commands/policy.ts')).policyAgentCommand,
  },
  {
    name: 'lab',
    summary: 'build an isolated cluster of network namespaces (needs root)',
    load: async () => (await import('./commands/lab.ts')).labCommand,
  },
];

export const GLOBAL_FLAGS = {
  help: { type: 'boolean', short: 'h', help: "show help (kdp <command> --help for a command's)" },
  version: { type: 'boolean', short: 'V', help: 'print the version' },
  'log-level': { type: 'string', arg: 'LEVEL', default: 'info', help: LOG_LEVELS.join('|') },
  'log-format': {
    type: 'string',
    arg: 'FORMAT',
    default: 'auto',
    help: 'json|pretty|auto (auto: pretty on a terminal, JSON otherwise)',
  },
} as const satisfies FlagTable;

export function helpText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `kdp ${VERSION}: a Kubernetes networking data plane

Usage: kdp [global options] <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Global options:
${flagHelp(GLOBAL_FLAGS)}

Logs go to stderr, one JSON object per line; command output goes to stdout.
`;
}

/** Splits argv into global options, the command name and the command's own argv. */
export function splitArgv(argv: readonly string[]): { globals: string[]; command?: string; rest: string[] } {
  const globals: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('-')) break;
    globals.push(a);
    const spec = (GLOBAL_FLAGS as FlagTable)[a.slice(2)];
    if (a.startsWith('--') && !a.includes('=') && spec?.type === 'string' && i + 1 < argv.length)
      globals.push(argv[++i] as string);
  }
  const command = argv[i];
  return command === undefined ? { globals, rest: [] } : { globals, command, rest: argv.slice(i + 1) };
}

export async function main(
  argv: readonly string[],
  out: (s: string) => void = (s) => void process.stdout.write(s),
): Promise<number> {
  const { globals, command, rest } = splitArgv(argv);
  let values;
  try {
    values = parseOnlyFlags(GLOBAL_FLAGS, globals);
  } catch (err) {
    process.stderr.write(`kdp: ${errorMessage(err)}\n\n${helpText()}`);
    return 2;
  }
  if (values.version) {
    out(`kdp ${VERSION} (node ${process.version})\n`);
    return 0;
  }
  if (values.help || command === undefined || command === 'help') {
    if (command === undefined && !values.help) {
      process.stderr.write(helpText());
      return 2;
    }
    out(helpText());
    return 0;
  }
  const level = values['log-level'] as LogLevel;
  const format = values['log-format'] as LogFormat;
  if (!LOG_LEVELS.includes(level) || !['json', 'pretty', 'auto'].includes(format)) {
    process.stderr.write(`kdp: bad --log-level or --log-format\n`);
    return 2;
  }
  const entry = COMMANDS.find((c) => c.name === command);
  if (!entry) {
    process.stderr.write(`kdp: unknown command ${JSON.stringify(command)}\n\n${helpText()}`);
    return 2;
  }
  const cmd = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    out(`${cmd.summary}\n\n${cmd.usage}\n`);
    return 0;
  }
  const log = await createLogger({ level, format, name: `kdp-${cmd.name}` });
  try {
    return await cmd.run(rest, { log, out });
  } catch (err) {
    if (isKdpError(err, 'KDP_USAGE') || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`kdp ${cmd.name}: ${errorMessage(err)}\n\n${cmd.usage}\n`);
      return 2;
    }
    log.error({ err: isKdpError(err) ? err.toJSON() : { message: errorMessage(err) } }, errorMessage(err));
    return 1;
  }
}

function isEntryPoint(): boolean {
  const argv1 = process.argv[1];
  if (argv1 === undefined) return false;
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  process.exitCode = await main(process.argv.slice(2));
}
