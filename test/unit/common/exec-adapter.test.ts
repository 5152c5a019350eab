import t from 'tap';
import { run, runSyncQuiet, spawnChild } from '../../../src/common/exec-adapter.ts';

t.test('argv is passed as is, never through a shell', async (t) => {
  const res = await run(['printf', '%s|', 'a b', '$(echo no)', ';', '*']);
  t.equal(res.stdout, 'a b|$(echo no)|;|*|');
  t.equal(res.code, 0);
});

t.test('stdin input', async (t) => {
  t.equal((await run(['cat'], { input: 'line1\nline2\n' })).stdout, 'line1\nline2\n');
});

t.test('failure is a coded error with the tail of stderr', async (t) => {
  await t.rejects(run(['sh', '-c', 'echo boom >&2; exit 3']), { code: 'KDP_EXEC_FAILED', message: /exit 3: boom/ });
  const res = await run(['sh', '-c', 'exit 4'], { allowFailure: true });
  t.equal(res.code, 4);
  await t.rejects(run(['kdp-no-such-command-xyz']), { code: 'KDP_EXEC_FAILED', message: /command not found/ });
  await t.rejects(run([]), { code: 'KDP_INTERNAL' });
});

t.test('timeout kills the child', async (t) => {
  const t0 = Date.now();
  await t.rejects(run(['sleep', '5'], { timeoutMs: 200 }), { code: 'KDP_EXEC_TIMEOUT' });
  t.ok(Date.now() - t0 < 3000);
});

t.test('runSyncQuiet returns the status and never throws', async (t) => {
  t.equal(runSyncQuiet(['true']), 0);
  t.equal(runSyncQuiet(['sh', '-c', 'exit 7']), 7);
  t.equal(runSyncQuiet(['kdp-no-such-command-xyz']), 1);
});

t.test('spawnChild keeps output and reports exit', async (t) => {
  const c = spawnChild(['sh', '-c', 'echo hello; echo err >&2; exit 2']);
  t.equal(await c.exited, 2);
  t.match(c.output(), /hello/);
  t.match(c.output(), /err/);
  const s = spawnChild(['sleep', '10']);
  s.kill();
  t.equal(await s.exited, null, 'killed by a signal');
  const missing = spawnChild(['kdp-no-such-command-xyz']);
  t.equal(await missing.exited, null);
  t.match(missing.output(), /spawn error/);
});
