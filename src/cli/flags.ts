// One declaration per flag: the table a command declares gives node:util parseArgs its options and the
// help text its lines, so a default is written once. Deprecated spellings are declared in the same table
// (`deprecated: 'NEW-NAME'`): their value goes to the new flag, with a warning.
import { parseArgs } from 'node:util';
import type { ParseArgsOptionDescriptor } from 'node:util';
import { KdpError } from '../common/errors.ts';

interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  readonly short?: string;
  /** applied by the parser and shown in the help as "(default …)" */
  readonly default?: string | boolean | readonly string[];
  /** what the help says when the default is not a literal (computed or looked up at run time) */
  readonly defaultText?: string;
  /** the value's placeholder in the help, e.g. DIR, N, DURATION */
  readonly arg?: string;
  readonly help: string;
  /** an old spelling of the flag named here: its value is taken as that flag's, with a deprecation warning */
  readonly deprecated?: string;
}

export type FlagTable = Readonly<Record<string, FlagSpec>>;

type Value<S extends FlagSpec> = S['type'] extends 'boolean' ? boolean : S['multiple'] extends true ? string[] : string;
type FlagValues<T extends FlagTable> = {
  -readonly [K in keyof T]: T[K] extends { default: unknown } ? Value<T[K]> : Value<T[K]> | undefined;
};

/**
 * Parses argv against the table (strict: unknown flags and missing values throw ERR_PARSE_ARGS_*, which
 * main.ts reports as a usage error). A deprecated spelling's value becomes its new flag's unless the new
 * flag is given too; `warn` is called once per deprecated spelling used.
 */
export function parseFlags<T extends FlagTable>(
  table: T,
  argv: readonly string[],
  warn: (oldFlag: string, newFlag: string) => void = () => {},
): { values: FlagValues<T>; positionals: string[] } {
  const options: Record<string, ParseArgsOptionDescriptor> = {};
  for (const [name, s] of Object.entries(table)) {
    const o: { type: 'string' | 'boolean'; multiple?: boolean; short?: string; default?: unknown } = { type: s.type };
    if (s.multiple) o.multiple = true;
    if (s.short) o.short = s.short;
    if (s.default !== undefined && !s.deprecated) o.default = Array.isArray(s.default) ? [...s.default] : s.default;
    options[name] = o as ParseArgsOptionDescriptor;
  }
  const { values, positionals, tokens } = parseArgs({
    args: [...argv],
    options,
    strict: true,
    allowPositionals: true,
    tokens: true,
  });
  const given = new Set(tokens.flatMap((t) => (t.kind === 'option' ? [t.name] : [])));
  const v = values as Record<string, unknown>;
  for (const [name, s] of Object.entries(table)) {
    if (!s.deprecated || !given.has(name)) continue;
    warn(name, s.deprecated);
    if (!given.has(s.deprecated)) v[s.deprecated] = v[name];
    delete v[name];
  }
  return { values: v as FlagValues<T>, positionals };
}

/** Like parseFlags, for a command that takes no positional arguments. */
export function parseOnlyFlags<T extends FlagTable>(
  table: T,
  argv: readonly string[],
  warn?: (oldFlag: string, newFlag: string) => void,
): FlagValues<T> {
  const { values, positionals } = parseFlags(table, argv, warn);
  if (positionals.length > 0) throw new KdpError('KDP_USAGE', `unexpected argument ${JSON.stringify(positionals[0])}`);
  return values;
}

/** How the help shows a flag's default ("" for none). */
export function defaultLabel(s: FlagSpec): string {
  if (s.deprecated) return '';
  if (s.defaultText !== undefined) return s.defaultText;
  if (s.default === undefined || s.default === false) return '';
  if (Array.isArray(s.default)) return s.default.length === 0 ? '' : s.default.join(',');
  return s.default === '' ? '""' : String(s.default);
}

/** Help lines wrap at this column. */
const WIDTH = 118;

/** The help lines of a table: `--name ARG   help (default: X)`, wrapped under the help column. */
export function flagHelp(table: FlagTable, indent = 2): string {
  const anyShort = Object.values(table).some((s) => s.short);
  const heads = Object.entries(table).map(
    ([name, s]) =>
      `${s.short ? `-${s.short}, ` : anyShort ? '    ' : ''}--${name}${s.type === 'string' ? ` ${s.arg ?? 'VALUE'}` : ''}`,
  );
  const col = indent + Math.max(...heads.map((h) => h.length)) + 2;
  return Object.entries(table)
    .map(([, s], i) => {
      const d = defaultLabel(s);
      const text = s.deprecated
        ? `deprecated spelling of --${s.deprecated} (same value); ${s.help}`
        : `${s.help}${s.multiple ? '; repeatable' : ''}${d ? ` (default: ${d})` : ''}`;
      return (
        (' '.repeat(indent) + (heads[i] as string)).padEnd(col) + wrap(text, WIDTH - col).join('\n' + ' '.repeat(col))
      );
    })
    .join('\n');
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (const word of para.split(' ')) {
      if (line && line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    lines.push(line);
  }
  return lines;
}

/** A duration in ms from 500ms, 1.5s, 2m, 1h, or a bare number of seconds; a usage error otherwise. */
export function parseDuration(s: string, flag = 'duration'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m)
    throw new KdpError('KDP_USAGE', `--${flag}: bad duration ${JSON.stringify(s)} (e.g. 500ms, 30s, 2m, or seconds)`);
  const n = Number(m[1]);
  return n * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : m[2] === 'h' ? 3_600_000 : 1000);
}

/** The `--exit-after` flag every long-running command declares (and its old spelling `--ttl`). */
export const EXIT_AFTER = {
  'exit-after': {
    type: 'string',
    arg: 'DURATION',
    help: 'stop after this long (90s, 5m, or seconds)',
    defaultText: 'run until a signal',
  },
} as const satisfies FlagTable;

/** `--ttl` where it used to mean what --exit-after means now. */
export const TTL_EXIT_ALIAS = {
  ttl: { type: 'string', arg: 'DURATION', help: 'will be removed', deprecated: 'exit-after' },
} as const satisfies FlagTable;

/** --exit-after's value in ms, undefined when not given. */
export function exitAfterMs(v: string | undefined): number | undefined {
  return v === undefined ? undefined : parseDuration(v, 'exit-after');
}

/** The warning for a deprecated spelling, as a structured log line. */
export function warnDeprecated(log: { warn(obj: object, msg: string): void }) {
  return (oldFlag: string, newFlag: string): void =>
    log.warn({ flag: `--${oldFlag}`, use: `--${newFlag}` }, `--${oldFlag} is deprecated; use --${newFlag}`);
}
