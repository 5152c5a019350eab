// Golden files, compared order-insensitively (sorted lines). UPDATE_GOLDEN=1 rewrites them.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Test } from 'tap';

export function goldenPath(name: string): string {
  return new URL(`../../golden/proxy/${name}`, import.meta.url).pathname;
}

const sorted = (s: string) =>
  s
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .sort();

export function assertGolden(t: Test, name: string, actual: string): void {
  const path = goldenPath(name);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) {
    if (process.env.UPDATE_GOLDEN !== '1') t.fail(`golden file ${name} missing; wrote it (run again, review it)`);
    writeFileSync(path, sorted(actual).join('\n') + '\n');
    return;
  }
  t.same(sorted(actual), sorted(readFileSync(path, 'utf8')), `matches golden ${name} (order-insensitive)`);
}
