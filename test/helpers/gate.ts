// Gates for root-only tests. Outside CI a test file that needs root skips with a one-line reason;
// with CI=true it must run, so a missing privilege fails the run instead of hiding behind a skip.
import type { Test } from 'tap';
import { isRoot } from '../../src/lab/lab.ts';

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

/** Returns true when the test may go on. Otherwise it has already skipped or failed `t`. */
export function needsRoot(t: Test, what = 'network namespaces'): boolean {
  if (isRoot()) return true;
  if (inCI) {
    t.fail(`this e2e test needs root (${what}) and CI=true forbids skipping it`);
    t.end();
    return false;
  }
  t.plan(0, `skip: needs root (${what}); run as root or with CI=true`);
  return false;
}
