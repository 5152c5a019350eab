import t from 'tap';
import type { Test } from 'tap';
import { COMMANDS, GLOBAL_FLAGS, helpText } from '../../../src/cli/main.ts';
import { defaultLabel, flagHelp, parseDuration, parseFlags, parseOnlyFlags } from '../../../src/cli/flags.ts';
import type { FlagTable } from '../../../src/cli/flags.ts';

/** The help of one flag: its line and the wrapped lines under it, whitespace collapsed. */
function flagBlock(help: string, name: string): string | undefined {
  const lines = help.split('\n');
  const head = new RegExp(`^\\s*(-\\w, )?--${name}( |$)`);
  const i = lines.findIndex((l) => head.test(l));
  if (i < 0) return undefined;
  let j = i + 1;
  while (j < lines.length && /^\s{6,}[^\s-]/.test(lines[j] as string) && !/^\s*--/.test(lines[j] as string)) j++;
  return lines.slice(i, j).join(' ').replace(/\s+/g, ' ');
}

function checkTable(t: Test, where: string, help: string, table: FlagTable) {
  const { values } = parseFlags(table, []);
  for (const [name, spec] of Object.entries(table)) {
    const block = flagBlock(help, name);
    if (!block) {
      t.fail(`${where}: --${name} is not in the help`);
      continue;
    }
    const d = defaultLabel(spec);
    if (d) t.ok(block.includes(`(default: ${d})`), `${where}: --${name} shows its default ${d}`);
    else t.notMatch(block, /\(default/, `${where}: --${name} claims no default`);
    if (spec.deprecated)
      t.match(block, `deprecated spelling of --${spec.deprecated}`, `${where}: --${name} deprecated`);
    // the parser's default is the one the help shows
    const parsed = (values as Record<string, unknown>)[name];
    if (spec.default !== undefined && !spec.deprecated)
      t.same(parsed, spec.default, `${where}: --${name} parsed default`);
    else t.equal(parsed, undefined, `${where}: --${name} has no parser default`);
  }
}

t.test('every command help lists each declared flag with the default the parser applies', async (t) => {
  checkTable(t, 'kdp', helpText(), GLOBAL_FLAGS);
  for (const e of COMMANDS) {
    const cmd = await e.load();
    const declared = new Set(Object.values(cmd.flags).flatMap((tb) => Object.keys(tb)));
    for (const [action, table] of Object.entries(cmd.flags)) checkTable(t, `kdp ${e.name} ${action}`, cmd.usage, table);
    // and the help mentions no flag that is not declared (no hand-written flag docs left)
    for (const m of cmd.usage.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g))
      t.ok(declared.has(m[1] as string), `kdp ${e.name}: --${m[1]} in the help is declared`);
  }
});

t.test('--ttl: exit-after everywhere it meant that, the record TTL only in kdp dns', async (t) => {
  for (const e of COMMANDS) {
    const cmd = await e.load();
    for (const [action, table] of Object.entries(cmd.flags)) {
      const ttl = table.ttl;
      if (!ttl) continue;
      if (e.name === 'dns') t.equal(ttl.deprecated, undefined, 'kdp dns --ttl is the record TTL');
      else t.equal(ttl.deprecated, 'exit-after', `kdp ${e.name} ${action}: --ttl is the old spelling of --exit-after`);
    }
  }
  const dns = await COMMANDS.find((c) => c.name === 'dns')!.load();
  t.equal(dns.flags['']!['ttl-run']!.deprecated, 'exit-after', 'kdp dns --ttl-run is the old spelling of --exit-after');
});

t.test('a deprecated spelling gives its value to the new flag, with a warning', async (t) => {
  const table = {
    'exit-after': { type: 'string', help: 'x' },
    ttl: { type: 'string', help: 'x', deprecated: 'exit-after' },
    n: { type: 'string', default: '2', help: 'n' },
  } as const satisfies FlagTable;
  const warned: string[] = [];
  const warn = (o: string, n: string) => void warned.push(`${o}->${n}`);
  t.same(parseOnlyFlags(table, ['--ttl', '30'], warn), { n: '2', 'exit-after': '30' });
  t.same(warned, ['ttl->exit-after']);
  t.same(parseOnlyFlags(table, ['--ttl=5', '--exit-after', '7s'], warn), { n: '2', 'exit-after': '7s' }, 'new wins');
  t.same(parseOnlyFlags(table, ['--exit-after', '1m'], warn), { n: '2', 'exit-after': '1m' });
  t.equal(warned.length, 2, 'no warning without the old spelling');
  t.throws(() => parseOnlyFlags(table, ['--bogus']), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });
  t.throws(() => parseOnlyFlags(table, ['stray']), { code: 'KDP_USAGE' });
  t.same(parseFlags(table, ['a', '--n', '3', 'b']).positionals, ['a', 'b']);
});

t.test('durations: units, bare seconds, bad values are usage errors', async (t) => {
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration('2m'), 120_000);
  t.equal(parseDuration('1h'), 3_600_000);
  t.equal(parseDuration('30'), 30_000, 'a bare number is seconds (the old --ttl SECONDS)');
  t.throws(() => parseDuration('soon', 'exit-after'), { code: 'KDP_USAGE', message: /--exit-after/ });
  t.throws(() => parseDuration('-1'), { code: 'KDP_USAGE' });
});

t.test('help lines wrap under the help column and show defaults once', async (t) => {
  const help = flagHelp({
    a: { type: 'string', arg: 'N', default: '1', help: 'word '.repeat(40).trim() },
    bb: { type: 'boolean', help: 'flag' },
    list: { type: 'string', multiple: true, default: ['x', 'y'], help: 'items' },
  });
  for (const l of help.split('\n')) t.ok(l.length <= 118, `line within 118 columns: ${l.length}`);
  t.match(help, /^ {2}--a N {9}word/m, 'after the longest head, --list VALUE, plus 2');
  t.match(help, /^ {16}word/m, 'continuation under the help column');
  t.match(help, /\(default: 1\)/);
  t.match(help, /items; repeatable \(default: x,y\)/);
  t.equal(help.match(/default/g)?.length, 2);
});
