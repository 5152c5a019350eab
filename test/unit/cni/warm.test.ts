// The warm server's process helpers (src/cni/warm.ts): lock agents exclude every other flock(2) user of the file
// (flock(1) here, host-local in the e2e interop), queue in order, notice a recreated file, and free the lock
// when they end; WarmExec hands a job to a waiting child with the same result a fresh spawn gives.
import t from 'tap';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/common/exec-adapter.ts';
import { LockAgents, WarmExec } from '../../../src/cni/warm.ts';

const dir = mkdtempSync(join(tmpdir(), 'kdp-warm-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Whether another process (flock(1), no waiting) could take the lock now. */
const freeForOthers = async (path: string) =>
  (await run(['flock', '-n', '-x', path, 'true'], { allowFailure: true })).code === 0;

t.test('lock agent: excludes other processes while held, queues callers in order', async (t) => {
  const locks = new LockAgents();
  t.teardown(() => locks.close());
  const path = join(dir, 'lock');
  const first = await locks.lock(path);
  t.notOk(await freeForOthers(path), 'flock(1) cannot take it while the agent holds it');
  const order: number[] = [];
  const second = locks.lock(path).then((l) => (order.push(2), l));
  const third = locks.lock(path).then((l) => (order.push(3), l));
  await new Promise((r) => setTimeout(r, 200));
  t.same(order, [], 'later callers wait');
  first.release();
  (await second).release();
  (await third).release();
  t.same(order, [2, 3], 'and get it in order');
  await new Promise((r) => setTimeout(r, 100)); // the agent acknowledges U asynchronously
  t.ok(await freeForOthers(path), 'released: another process takes it');
  t.equal(locks.size, 1, 'one agent per file');
});

t.test('lock agent: waits for a lock another process holds', async (t) => {
  const locks = new LockAgents();
  t.teardown(() => locks.close());
  const path = join(dir, 'held');
  writeFileSync(path, '');
  const holder = run(['flock', '-x', path, 'sleep', '0.5']);
  await new Promise((r) => setTimeout(r, 150));
  const t0 = performance.now();
  const l = await locks.lock(path);
  t.ok(performance.now() - t0 > 200, 'got it only after the other process let go');
  l.release();
  await holder;
});

t.test('lock agent: a recreated file gets a new agent; closing frees the lock', async (t) => {
  const locks = new LockAgents();
  const path = join(dir, 'recreated');
  (await locks.lock(path)).release();
  unlinkSync(path);
  const l = await locks.lock(path);
  t.notOk(await freeForOthers(path), 'the lock is on the new file');
  locks.close();
  let free = false;
  for (let i = 0; i < 50 && !free; i++) {
    await new Promise((r) => setTimeout(r, 50));
    free = await freeForOthers(path);
  }
  t.ok(free, 'the agent ended (EOF) and the lock went with it');
  l.release();
});

t.test('lock agent: the namespace file itself (the nft lock)', async (t) => {
  const locks = new LockAgents();
  t.teardown(() => locks.close());
  const l = await locks.lock('/proc/self/ns/net');
  t.notOk(await freeForOthers('/proc/self/ns/net'), 'flock(1) on the same namespace waits');
  l.release();
});

t.test('WarmExec: a waiting child gives the result a fresh spawn gives', async (t) => {
  const ex = new WarmExec([['cat'], ['sh', '-c', 'cat >/dev/null; echo bad >&2; exit 3']]);
  t.teardown(() => ex.close());
  t.same(
    await ex.run(['cat'], { input: 'x\n' }),
    { code: 0, stdout: 'x\n', stderr: '' },
    'not yet refilled: spawned per call',
  );
  t.equal(ex.hits, 0);
  ex.refill();
  t.same(await ex.run(['cat'], { input: 'y\n' }), { code: 0, stdout: 'y\n', stderr: '' }, 'from the pool');
  t.equal(ex.hits, 1);
  t.same(await ex.run(['cat'], { input: 'z\n' }), { code: 0, stdout: 'z\n', stderr: '' }, 'pool empty again: spawned');
  t.equal(ex.hits, 1);
  ex.refill();
  const argv = ['sh', '-c', 'cat >/dev/null; echo bad >&2; exit 3'];
  await t.rejects(
    ex.run(argv, { input: '' }),
    { code: 'KDP_EXEC_FAILED' },
    'a failing pooled child throws like a spawned one',
  );
  ex.refill();
  t.same(
    await ex.run(argv, { input: '', allowFailure: true }),
    { code: 3, stdout: '', stderr: 'bad\n' },
    'or returns its code with allowFailure',
  );
  t.equal(ex.hits, 3);
});
