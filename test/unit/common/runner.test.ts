// BoundedRunner: coalescing, min interval, single flight, retry with backoff, periodic runs (fake clock).
import t from 'tap';
import { BoundedRunner } from '../../../src/common/runner.ts';
import { FakeClock } from '../../../src/common/testing/fake-clock.ts';

t.test('requests coalesce and runs respect the min interval', async (t) => {
  const clock = new FakeClock();
  const starts: number[] = [];
  const r = new BoundedRunner(async () => void starts.push(clock.now()), { minIntervalMs: 1000, clock });
  r.run();
  r.run();
  r.run();
  await clock.advance(0);
  t.same(starts, [0], 'three requests, one run');
  r.run();
  r.run();
  await clock.advance(500);
  t.same(starts, [0], 'not before the min interval');
  await clock.advance(500);
  t.same(starts, [0, 1000], 'the coalesced requests run once at the interval');
  await clock.advance(5000);
  t.same(starts, [0, 1000], 'nothing without requests');
});

t.test('runs never overlap; a request during a run runs again afterwards', async (t) => {
  const clock = new FakeClock();
  let active = 0;
  let maxActive = 0;
  let release: (() => void) | undefined;
  let runs = 0;
  const r = new BoundedRunner(
    async () => {
      runs++;
      active++;
      maxActive = Math.max(maxActive, active);
      await new Promise<void>((res) => (release = res));
      active--;
    },
    { minIntervalMs: 0, clock },
  );
  r.run();
  await clock.advance(0);
  t.equal(runs, 1);
  r.run();
  r.run();
  await clock.advance(100);
  t.equal(runs, 1, 'second run waits for the first');
  release!();
  await clock.advance(0);
  t.equal(runs, 2, 'then runs once');
  release!();
  await clock.advance(0);
  t.equal(maxActive, 1);
  await r.idle();
});

t.test('failures retry with exponential backoff, capped; success resets', async (t) => {
  const clock = new FakeClock();
  const starts: number[] = [];
  let fail = 3;
  const errors: number[] = [];
  const r = new BoundedRunner(
    async () => {
      starts.push(clock.now());
      if (fail-- > 0) throw new Error('boom');
    },
    { minIntervalMs: 10, retryMinMs: 100, retryMaxMs: 300, clock, onError: (_e, n) => errors.push(n) },
  );
  r.run();
  await clock.advance(1000);
  t.same(starts, [0, 100, 300, 600], 'retries after 100, 200, then the 300 cap');
  t.same(errors, [1, 2, 3]);
  t.equal(r.failures, 0);
});

t.test('periodic runs with maxInterval; stop ends everything', async (t) => {
  const clock = new FakeClock();
  const starts: number[] = [];
  const r = new BoundedRunner(async () => void starts.push(clock.now()), {
    minIntervalMs: 0,
    maxIntervalMs: 1000,
    clock,
  });
  r.run();
  await clock.advance(2500);
  t.same(starts, [0, 1000, 2000]);
  await r.stop();
  r.run();
  await clock.advance(5000);
  t.same(starts, [0, 1000, 2000], 'no runs after stop');
});
