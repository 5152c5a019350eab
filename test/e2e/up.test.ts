// kdp up end to end, as a new user would run it: as root on the lab, and unprivileged (user nobody) on
// loopback. Every command it prints is run again here, as printed, and must show what it promises.
import t from 'tap';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { run, spawnChild } from '../../src/common/exec-adapter.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';
import { listNamespaces } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';

const KDP = fileURLToPath(new URL('../../bin/kdp', import.meta.url));

async function waitOutput(child: Spawned, re: RegExp, ms: number): Promise<string> {
  const end = Date.now() + ms;
  while (!re.test(child.output())) {
    const gone = await Promise.race([child.exited.then(() => true), sleep(100).then(() => false)]);
    if (gone) throw new Error(`kdp up exited early:\n${child.output()}`);
    if (Date.now() > end) throw new Error(`timed out waiting for ${re}:\n${child.output()}`);
  }
  return child.output();
}

/** The printed commands: pairs of "# what" and the command line after it. */
function printed(out: string): { what: string; checked: string; line: string }[] {
  const lines = out.split('\n');
  const res: { what: string; checked: string; line: string }[] = [];
  lines.forEach((l, i) => {
    const m = /^ {2}# (.*?)(?: {2}\[checked: (ok|FAILED)\])?$/.exec(l);
    if (m && lines[i + 1]?.startsWith('  '))
      res.push({ what: m[1] as string, checked: m[2] ?? '', line: (lines[i + 1] as string).trim() });
  });
  return res;
}

/** Splits a printed command line the way a shell would (single quotes only, which is all kdp prints). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g))
    words.push(m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : (m[2] as string));
  return words;
}

if (needsRoot(t, 'network namespaces, CNI, nftables')) {
  t.test('kdp up as root: the lab, and every printed command works as printed', { timeout: 240_000 }, async (t) => {
    const child = spawnChild([KDP, '--log-format', 'json', 'up', '--exit-after', '200s']);
    t.teardown(() => child.kill('SIGKILL'));
    const out = await waitOutput(child, /tears everything down/, 180_000);
    const cmds = printed(out);
    t.ok(cmds.length >= 5, `${cmds.length} commands printed`);
    t.same(
      cmds.filter((c) => c.checked !== 'ok' && c.line !== 'kdp status').map((c) => c.what),
      [],
      'kdp up checked every command ok',
    );
    const runId = /lab (\d+-[0-9a-f]{4}):/.exec(out)?.[1] as string;
    for (const c of cmds) {
      const words = shellWords(c.line);
      t.equal(words[0], 'kdp', c.line);
      const res = await run([KDP, '--log-level', 'warn', ...words.slice(1)], { allowFailure: true, timeoutMs: 30_000 });
      t.equal(res.code, 0, `${c.what}: ${c.line}`);
      if (c.line === 'kdp status') {
        t.match(res.stdout, /SERVICES/);
        t.match(res.stdout, /backends in kernel/, 'status reads what the proxy programmed');
        t.notMatch(res.stdout, /shop\/web +ClusterIP.*\[0 backends in kernel\]/, 'web has backends in the kernel');
      } else t.ok(res.stdout.trim().length > 0, `${c.what}: output ${res.stdout.slice(0, 200)}`);
    }
    child.kill('SIGTERM');
    await child.exited;
    t.match(child.output(), /torn down/);
    t.same(
      (await listNamespaces()).filter((n) => n.startsWith(`kdp-${runId}-`)),
      [],
      'every lab namespace removed',
    );
    t.notOk(existsSync('/run/kdp/up.json'), 'state file removed');
    t.notOk(existsSync(`/run/kdp/${runId}`), 'run directory removed');
  });

  t.test(
    'kdp up unprivileged (user nobody): loopback fallback, says so, commands work',
    { timeout: 120_000 },
    async (t) => {
      const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'];
      const env = { PATH: process.env.PATH, HOME: '/tmp', TMPDIR: '/tmp' };
      const child = spawnChild([...asNobody, KDP, '--log-format', 'json', 'up', '--exit-after', '100s'], { env });
      t.teardown(() => child.kill('SIGKILL'));
      const out = await waitOutput(child, /tears everything down/, 90_000);
      t.match(out, /Unprivileged fallback \(not root\)/, 'it says so');
      const cmds = printed(out);
      t.ok(cmds.length >= 3, `${cmds.length} commands printed`);
      t.same(
        cmds.filter((c) => c.checked !== 'ok').map((c) => c.what),
        [],
        'every command checked ok',
      );
      for (const c of cmds) {
        const res = await run([...asNobody, ...shellWords(c.line)], { allowFailure: true, timeoutMs: 20_000, env });
        t.equal(res.code, 0, `${c.what}: ${c.line}`);
        t.ok(res.stdout.trim().length > 0, `${c.what}: ${res.stdout.slice(0, 200)}`);
      }
      child.kill('SIGTERM');
      t.equal(await child.exited, 0);
    },
  );
}
