// Runs once after the whole tap suite: the root namespace must be byte-identical to the snapshot taken
// before it, and no kdp namespace of a finished run may remain. Exits non-zero otherwise (tap fails the run).
import { readFileSync } from 'node:fs';
import { isAlive, isRoot, listNamespaces } from '../src/lab/lab.ts';
import { leftovers } from '../src/lab/plan.ts';
import { diffSnapshots, snapshotRootNs } from './helpers/root-ns.ts';
import type { RootSnapshot } from './helpers/root-ns.ts';

const before = JSON.parse(readFileSync('.tap/root-ns-before.json', 'utf8')) as RootSnapshot;
const diffs = diffSnapshots(before, await snapshotRootNs());
let failed = false;
for (const d of diffs) {
  failed = true;
  console.error(`root namespace changed during the suite: ${d.kind}\n--- before\n${d.before}\n--- after\n${d.after}`);
}
if (isRoot()) {
  const stale = leftovers(await listNamespaces(), isAlive);
  if (stale.length > 0) {
    failed = true;
    console.error(`the suite left network namespaces behind: ${stale.join(' ')}`);
  }
}
if (failed) process.exit(1);
console.log('# root namespace unchanged by the suite; no namespace left behind');
