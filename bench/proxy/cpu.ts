// CPU time of this process and its children (reaped ones and live ones such as the `nft -i` session),
// in ms. On a loaded machine wall-clock sync times mean little; CPU time says how much work a sync is.
import { readFileSync, readdirSync } from 'node:fs';

const TICK_MS = 10; // USER_HZ = 100 on Linux

function statTimes(path: string): number[] {
  // fields after the command name (which may contain spaces) start at field 3
  const s = readFileSync(path, 'utf8');
  return s
    .slice(s.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
}

function liveChildren(): number[] {
  const pids: number[] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      pids.push(
        ...readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
      );
    } catch {
      // thread gone
    }
  }
  return pids;
}

export function cpuMs(): number {
  const { self, children } = cpuSplitMs();
  return self + children;
}

/** CPU time of this process (`self`) and of its children (`children`: `nft`, `iptables-restore`), in ms. */
export function cpuSplitMs(): { self: number; children: number } {
  const own = process.cpuUsage();
  const self = statTimes('/proc/self/stat');
  // field 16/17 (cutime/cstime) are at index 13/14 of the slice that starts at field 3
  let ticks = (self[13] ?? 0) + (self[14] ?? 0);
  for (const pid of liveChildren()) {
    try {
      const c = statTimes(`/proc/${pid}/stat`);
      ticks += (c[11] ?? 0) + (c[12] ?? 0) + (c[13] ?? 0) + (c[14] ?? 0);
    } catch {
      // exited meanwhile: counted in cutime once reaped
    }
  }
  return { self: (own.user + own.system) / 1000, children: ticks * TICK_MS };
}

/** Resident memory of this process now and its peak so far (VmRSS, VmHWM of /proc/self/status), in MB. */
export function rssMb(): { rss: number; peak: number } {
  const s = readFileSync('/proc/self/status', 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: Math.round(kb('VmRSS') / 1024), peak: Math.round(kb('VmHWM') / 1024) };
}
