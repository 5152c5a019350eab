// kdp dns restart after kill -9, in the lab: time from spawning `kdp dns` (the command a supervisor would
// run again) to its first right answer for a cluster name, measured RUNS times (dig every 20 ms from the
// node's namespace). Also the bare start of the pinned Node on the same path (`node -e 0` through
// `ip netns exec`), so the share of kdp's own start is visible. Needs root (the lab).
// Usage: npm run bench:dns-restart [-- --runs 7]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Lab } from '../../src/lab/lab.ts';
import { timeToFirstAnswer, writeRestartFixture } from '../../test/helpers/dns-restart.ts';
import type { NodePlan } from '../../src/lab/plan.ts';
import { run } from '../../src/common/exec-adapter.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' } } });
const RUNS = Number(values.runs);
const dir = mkdtempSync(join(tmpdir(), 'kdp-bench-dns-restart-'));
const argv = writeRestartFixture(dir);

const lab = await Lab.create({ nodes: 1 });
try {
  const n1 = lab.nodes[0] as NodePlan;
  const startAndTime = () => timeToFirstAnswer(lab, n1, argv, 60_000, 20);
  const load0 = (await run(['cat', '/proc/loadavg'])).stdout.trim();
  const bare: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await lab.exec(n1.ns, [process.execPath, '-e', '0']);
    bare.push(performance.now() - t0);
  }
  let cur = await startAndTime();
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    cur.child.kill('SIGKILL');
    await cur.child.exited;
    cur = await startAndTime();
    ms.push(cur.ms);
    process.stderr.write(`run ${i + 1}: first answer ${Math.round(cur.ms)} ms after the restart\n`);
  }
  cur.child.kill('SIGTERM');
  await cur.child.exited;
  const load1 = (await run(['cat', '/proc/loadavg'])).stdout.trim();
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] as number;
  process.stdout.write(
    `kill -9 then restart of kdp dns (lab node, manifests source), ${RUNS} runs\n\n| measure | median | min | max |\n|---|---|---|---|\n`,
  );
  process.stdout.write(
    `| restart -> first cluster answer | ${Math.round(med(ms))} ms | ${Math.round(Math.min(...ms))} ms | ${Math.round(Math.max(...ms))} ms |\n`,
  );
  process.stdout.write(
    `| bare \`node -e 0\` via ip netns exec | ${Math.round(med(bare))} ms | ${Math.round(Math.min(...bare))} ms | ${Math.round(Math.max(...bare))} ms |\n`,
  );
  process.stdout.write(`\nloadavg before: ${load0}; after: ${load1}\n`);
} finally {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
}
