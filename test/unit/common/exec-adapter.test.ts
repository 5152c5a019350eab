import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { inputText, run, runSyncQuiet, spawnChild } from '../../../src/common/exec-adapter.ts';

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

t.test('streamed input: pieces from a generator, whole and in order', async (t) => {
  const pieces = function* () {
    for (let i = 0; i < 20_000; i++) yield `line ${i} ${'x'.repeat(i % 300)}\n`;
  };
  let expected = '';
  for (const p of pieces()) expected += p;
  const res = await run(['cat'], { input: pieces() });
  t.equal(res.stdout.length, expected.length);
  t.ok(res.stdout === expected, 'the child read exactly the concatenated pieces');
  t.equal(inputText(pieces()), expected, 'inputText joins them too');
  t.equal((await run(['cat'], { input: [] })).stdout, '', 'no pieces: empty input, stdin closed');
});

t.test('streamed input follows the pipe: pieces are produced as the child reads', async (t) => {
  let produced = 0;
  const pieces = function* () {
    for (let i = 0; i < 10_000; i++) {
      produced++;
      yield 'y'.repeat(1024);
    }
  };
  // the child reads nothing for 600 ms, then everything
  const done = run(['sh', '-c', 'sleep 0.6; wc -c'], { input: pieces() });
  await new Promise((r) => setTimeout(r, 300));
  t.ok(produced < 1000, `at most a pipe's worth produced ahead of the reader (${produced} KB of 10,000)`);
  t.equal((await done).stdout.trim(), String(10_000 * 1024));
  t.equal(produced, 10_000);
});

t.test('streamed input: a piece that throws kills the child before it sees the end of its input', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kdp-exec-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // the child acts only once its stdin is complete (as `nft -f -` commits only at the end of its input)
  const argv = (mark: string) => ['sh', '-c', 'cat >/dev/null && touch "$0"', join(dir, mark)];
  const good = function* () {
    for (let i = 0; i < 100; i++) yield 'z'.repeat(4096);
  };
  await run(argv('whole'), { input: good() });
  t.ok(existsSync(join(dir, 'whole')), 'a whole input reaches its end');
  const bad = function* () {
    yield* good();
    throw new Error('render failed');
  };
  await t.rejects(run(argv('cut'), { input: bad() }), {
    code: 'KDP_EXEC_FAILED',
    message: /producing its input failed: render failed/,
  });
  t.notOk(existsSync(join(dir, 'cut')), 'the child never saw the end of a cut input');
});
