#!/usr/bin/env node
// kdp: the composition root. Global flags, the logger, the subcommand table; nothing else.
import { parseArgs } from 'node:util';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pkg from '../../package.json' with { type: 'json' };
import { errorMessage, isKdpError } from '../common/errors.ts';
import { LOG_LEVELS, createLogger } from '../common/log.ts';
import type { LogFormat, LogLevel } from '../common/log.ts';
import type { Command } from './command.ts';
import { labCommand } from './commands/lab.ts';
import { upCommand } from './commands/up.ts';
import { execCommand } from './commands/exec.ts';
import { statusCommand } from './commands/status.ts';
import { dnsCommand } from './commands/dns.ts';
import { proxyCommand } from './commands/proxy.ts';
import { ingressCommand } from './commands/ingress.ts';
import { cniCommand, nodeAgentCommand } from './commands/cni.ts';

export const VERSION: string = pkg.version;

export const COMMANDS: readonly Command[] = [upCommand, execCommand, statusCommand, labCommand, dnsCommand, proxyCommand, ingressCommand, cniCommand, nodeAgentCommand];

export function helpText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `kdp ${VERSION}: a Kubernetes networking data plane

Usage: kdp [global options] <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Global options:
  -h, --help              show help (kdp <command> --help for a command's)
  -V, --version           print the version
      --log-level LEVEL   ${LOG_LEVELS.join('|')} (default info)
      --log-format FORMAT json|pretty|auto (default auto: pretty on a terminal, JSON otherwise)

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
    if ((a === '--log-level' || a === '--log-format') && i + 1 < argv.length) globals.push(argv[++i] as string);
  }
  const command = argv[i];
  return command === undefined ? { globals, rest: [] } : { globals, command, rest: argv.slice(i + 1) };
}

export async function main(argv: readonly string[], out: (s: string) => void = (s) => void process.stdout.write(s)): Promise<number> {
  const { globals, command, rest } = splitArgv(argv);
  let values;
  try {
    ({ values } = parseArgs({
      args: globals,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
        'log-level': { type: 'string', default: 'info' },
        'log-format': { type: 'string', default: 'auto' },
      },
      strict: true,
    }));
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
  const cmd = COMMANDS.find((c) => c.name === command);
  if (!cmd) {
    process.stderr.write(`kdp: unknown command ${JSON.stringify(command)}\n\n${helpText()}`);
    return 2;
  }
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
