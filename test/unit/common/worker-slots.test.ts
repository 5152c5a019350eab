// WorkerSlots (src/common/worker-slots.ts) with real forked workers (test/helpers/worker-slots-child.ts): a worker
// that served and died is forked again, one that dies before serving leaves its slot empty, every slot empty aborts
// allFailed, stop() ends them all.
import t from 'tap';
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { WorkerSlots } from '../../../src/common/worker-slots.ts';
import { silentLogger } from '../../../src/common/log.ts';

cluster.setupPrimary({ exec: fileURLToPath(new URL('../../helpers/worker-slots-child.ts', import.meta.url)) });

const until = async (what: string, ok: () => boolean, ms = 20_000): Promise<void> => {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not within ${ms} ms: ${what}`);
};

const slotsOf = (modes: string[], restartDelayMs = 0): WorkerSlots => {
  const s: WorkerSlots = new WorkerSlots({
    count: modes.length,
    env: (i) => ({ KDP_TEST_MODE: modes[i] }),
    log: silentLogger,
    what: 'test worker',
    restartDelayMs,
    attach: (w) => w.on('message', (m: { type?: string }) => m?.type === 'up' && s.served(w)),
  });
  return s;
};

t.test('a served worker that dies is forked again; stop ends every worker', async (t) => {
  const s = slotsOf(['serve', 'serve']);
  s.start();
  await until('both serve', () => s.live().length === 2 && s.live().every((w) => s.hasServed(w)));
  const [first] = s.slots;
  const pid = first!.process.pid!;
  process.kill(pid, 'SIGKILL');
  await until('slot 0 forked again and serving', () => {
    const w = s.slots[0];
    return w !== undefined && w.process.pid !== pid && s.hasServed(w);
  });
  t.equal(s.restarts, 1, 'one restart');
  t.equal(s.failed, false, 'a crash after serving is not a start-up failure');
  t.equal(s.allFailed.aborted, false);
  const pids = s.live().map((w) => w.process.pid!);
  await s.stop();
  t.same(s.live(), [], 'no live worker after stop');
  for (const p of pids) t.throws(() => process.kill(p, 0), 'worker process gone');
});

t.test('a worker that fails before serving leaves its slot empty; all failed aborts allFailed', async (t) => {
  const mixed = slotsOf(['fail', 'serve']);
  mixed.start();
  await until('slot 0 given up', () => mixed.failed && mixed.slots[0] === undefined);
  await until('slot 1 serves', () => mixed.slots[1] !== undefined && mixed.hasServed(mixed.slots[1]!));
  t.equal(mixed.restarts, 0, 'not forked again');
  t.equal(mixed.allFailed.aborted, false, 'one slot still serves');
  await mixed.stop();

  const none = slotsOf(['fail', 'fail']);
  none.start();
  await until('every slot failed', () => none.allFailed.aborted);
  t.equal(none.failed, true);
  t.same(none.slots, [undefined, undefined]);
});
