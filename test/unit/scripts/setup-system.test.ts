// scripts/setup-system.sh: installs serialize (one lock around the script, then apt-get waits for dpkg's own
// lock), and the test command installs every group a test file asks for before the runner starts. The install
// test runs the real script with a fake apt-get and a fake `id` (root) on a PATH that hides kubectl, so the k8s
// group is "missing"; the fake apt-get notes every call and flags any two calls that overlap.
import t from 'tap';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../../src/common/exec-adapter.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = join(ROOT, 'scripts', 'setup-system.sh');

function scriptGroups(): string[] {
  const src = readFileSync(SCRIPT, 'utf8');
  const block = /declare -A PKGS=\(([\s\S]*?)\n\)/.exec(src)?.[1] ?? '';
  return [...block.matchAll(/\[(\w+)\]=/g)].map((m) => m[1] as string);
}

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

t.test('the test command installs every group a test file requests, before the runner', async (t) => {
  const known = scriptGroups();
  t.ok(known.includes('core') && known.includes('bench'), `groups parsed from the script: ${known.join(' ')}`);
  const requested = new Set<string>();
  for (const f of testFiles(join(ROOT, 'test'))) {
    const src = readFileSync(f, 'utf8');
    if (!src.includes('setup-system.sh')) continue;
    for (const call of src.matchAll(/run\(\s*\[\s*'bash',([^\]]*)\]/g)) {
      for (const w of (call[1] as string).matchAll(/'(\w+)'/g))
        if (known.includes(w[1] as string)) requested.add(w[1] as string);
    }
  }
  t.ok(requested.size >= 4, `groups requested by test files: ${[...requested].join(' ')}`);
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> })
    .scripts;
  const setup = scripts['setup:test'] ?? '';
  t.match(setup, /^bash scripts\/setup-system\.sh /);
  const installed = setup.split(/\s+/).slice(2);
  for (const g of requested) t.ok(installed.includes(g) || installed.includes('all'), `setup:test installs ${g}`);
  const test = scripts['test'] ?? '';
  t.ok(test.indexOf('npm run setup:test') >= 0, 'npm test runs setup:test');
  t.ok(test.indexOf('npm run setup:test') < test.indexOf('scripts/test.sh'), 'setup:test runs before the test runner');
});

t.test('two concurrent runs never overlap apt-get, the second finds the packages installed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kdp-setup-system-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'bin');
  const log = join(dir, 'apt.log');
  await run(['mkdir', bin]);
  // the tools the script and the fake apt-get use, and nothing else (kubectl stays hidden)
  for (const tool of ['find', 'head', 'sort', 'flock', 'mkdir', 'rmdir', 'sleep', 'chmod']) {
    const where = (await run(['bash', '-c', 'command -v "$1"', 'bash', tool])).stdout.trim();
    symlinkSync(where, join(bin, tool));
  }
  writeFileSync(join(bin, 'id'), '#!/bin/bash\necho 0\n');
  writeFileSync(
    join(bin, 'apt-get'),
    [
      '#!/bin/bash',
      `log=${JSON.stringify(log)}`,
      `case " $* " in *" DPkg::Lock::Timeout="*) ;; *) echo "no-dpkg-lock-timeout $*" >> "$log" ;; esac`,
      `mkdir ${JSON.stringify(join(dir, 'busy'))} 2>/dev/null || echo "OVERLAP $*" >> "$log"`,
      'echo "call $*" >> "$log"',
      'sleep 0.4',
      `if [[ " $* " == *" install "* ]]; then printf '#!/bin/bash\\n' > ${JSON.stringify(join(bin, 'kubectl'))}; chmod +x ${JSON.stringify(join(bin, 'kubectl'))}; fi`,
      `rmdir ${JSON.stringify(join(dir, 'busy'))} 2>/dev/null`,
      'exit 0',
      '',
    ].join('\n'),
  );
  chmodSync(join(bin, 'id'), 0o755);
  chmodSync(join(bin, 'apt-get'), 0o755);
  const env = { PATH: bin, KDP_SETUP_LOCK: join(dir, 'lock') };
  const runs = await Promise.all(
    [0, 1, 2].map(() => run(['/bin/bash', SCRIPT, 'k8s'], { env, allowFailure: true, timeoutMs: 30_000 })),
  );
  for (const r of runs) t.equal(r.code, 0, `setup-system exits 0 (stderr: ${r.stderr.trim()})`);
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  t.same(
    lines.filter((l) => /^(OVERLAP|no-dpkg)/.test(l)),
    [],
    'no two apt-get calls overlap, each waits for dpkg lock',
  );
  t.same(
    lines.filter((l) => / install /.test(l)),
    [lines.find((l) => / install /.test(l))],
    'kubernetes-client is installed once',
  );
  t.match(lines.find((l) => / install /.test(l)) ?? '', /install -y -qq --no-install-recommends kubernetes-client$/);
});

t.test('an unknown group is a clear error before any install', async (t) => {
  const r = await run(['bash', SCRIPT, 'core', 'nosuch'], { allowFailure: true });
  t.equal(r.code, 2);
  t.match(r.stderr, /unknown group 'nosuch'/);
});
