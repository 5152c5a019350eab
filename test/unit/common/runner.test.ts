// BoundedRunner: coalescing, min interval, single flight, retry with backoff, periodic runs (fake clock).
import t from 'tap';
import { BoundedRunner } from '../../../src/common/runner.ts';
import type { RunnerClock } from '../../../src/common/runner.ts';

class FakeClock implements RunnerClock {
  t = 0;
  timers = new Map<number, { at: number; fn: () => void }>();
  #id = 0;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#id;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  /** advances time, firing due timers in order, letting promises settle between them */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flush();
      const due = [...this.timers.entries()].filter(([, v]) => v.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = end;
    await flush();
  }
}

const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
};

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
