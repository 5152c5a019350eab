// How long a process waited for a CPU: the kernel's run-queue delay of its main thread (/proc/PID/schedstat, the
// second field, in ns: time runnable but not running). On the shared 2-core box a timed start or apply can spend
// most of its wall-clock time queued behind other processes; that share is the machine's, not the program's.

import { readFileSync } from 'node:fs';

/** ms the main thread of PID has waited runnable for a CPU so far; undefined when the kernel does not say. */
export function runQueueMs(pid: number): number | undefined {
  try {
    const ns = Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
    return Number.isFinite(ns) ? ns / 1e6 : undefined;
  } catch {
    return undefined;
  }
}
