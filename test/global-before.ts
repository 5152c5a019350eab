// Runs once before the whole tap suite: sweeps what crashed runs left, then records the root network
// namespace so test/global-after.ts can prove the suite left it exactly as it was.
import { mkdirSync, writeFileSync } from 'node:fs';
import { isRoot, sweep } from '../src/lab/lab.ts';
import { snapshotRootNs } from './helpers/root-ns.ts';

mkdirSync('.tap', { recursive: true });
if (isRoot()) {
  const removed = await sweep();
  if (removed.length > 0)
    console.log(`# swept ${removed.length} namespaces left by crashed runs: ${removed.join(' ')}`);
}
writeFileSync('.tap/root-ns-before.json', JSON.stringify(await snapshotRootNs(), null, 2));
