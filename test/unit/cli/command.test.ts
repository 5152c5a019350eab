import t from 'tap';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnChild } from '../../../src/common/exec-adapter.ts';

const COMMAND = fileURLToPath(new URL('../../../src/cli/command.ts', import.meta.url));

t.test('untilStopped keeps a process with nothing else to do alive until a signal', async (t) => {
  const child = spawnChild([
    process.execPath,
    '--input-type=module',
    '-e',
    `import { untilStopped } from ${JSON.stringify(COMMAND)}; console.log('waiting'); console.log('stopped by', await untilStopped());`,
  ]);
  t.teardown(() => child.kill('SIGKILL'));
  const end = Date.now() + 10_000;
  while (!child.output().includes('waiting') && Date.now() < end) await sleep(20);
  await sleep(300);
  const early = await Promise.race([child.exited.then(() => 'exited'), sleep(10).then(() => 'running')]);
  t.equal(early, 'running', 'still running with an empty event loop');
  child.kill('SIGTERM');
  t.equal(await child.exited, 0);
  t.match(child.output(), /stopped by SIGTERM/);
});

t.test('untilStopped ends after its ttl', async (t) => {
  const child = spawnChild([
    process.execPath,
    '--input-type=module',
    '-e',
    `import { untilStopped } from ${JSON.stringify(COMMAND)}; console.log('stopped by', await untilStopped(100));`,
  ]);
  t.equal(await child.exited, 0);
  t.match(child.output(), /stopped by ttl/);
});
