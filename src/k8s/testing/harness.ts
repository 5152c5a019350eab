// The one harness every consumer's tests run on: a FakeSource (a real Store underneath) and a FakeClock
// driving the controller kernel, plus the retry check every consumer must pass.
import { silentLogger } from '../../common/log.ts';
import { FakeClock, flush } from '../../common/testing/fake-clock.ts';
import { Controller } from '../controller.ts';
import type { ControllerOptions, Reconciler } from '../controller.ts';
import { FakeSource } from './fake-source.ts';

export { FakeClock, flush, FakeSource };

interface Harness {
  readonly source: FakeSource;
  readonly clock: FakeClock;
  /** a controller on this harness's source and clock */
  controller(r: Reconciler, opts?: Partial<ControllerOptions>): Controller;
}

export function harness(): Harness {
  const source = new FakeSource();
  const clock = new FakeClock();
  return {
    source,
    clock,
    controller: (r, opts = {}) => new Controller(source, r, { log: silentLogger, clock, ...opts }),
  };
}

/**
 * Drives a consumer whose adapter fails `failures` times and records when (fake-clock ms) each attempt
 * started, until one succeeds or `horizonMs` passes. `attempts` reads how many attempts the adapter saw.
 */
export async function attemptTimes(
  h: Harness,
  attempts: () => number,
  horizonMs: number,
  stepMs = 50,
): Promise<number[]> {
  const times: number[] = [];
  let seen = attempts();
  for (let t = 0; t <= horizonMs; t += stepMs) {
    await h.clock.advance(stepMs);
    const n = attempts();
    for (; seen < n; seen++) times.push(h.clock.t);
  }
  return times;
}
