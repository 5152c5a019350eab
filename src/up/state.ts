// The state `kdp up` leaves for `kdp exec` and `kdp status`: which namespace stands for which pod or node.
import { mkdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { KdpError } from '../common/errors.ts';
import { isAlive } from '../lab/lab.ts';

interface UpState {
  readonly pid: number;
  readonly mode: 'lab' | 'unprivileged';
  readonly runId?: string;
  readonly manifests: string;
  /** target name -> network namespace ('' = this machine, unprivileged mode) */
  readonly targets: Readonly<Record<string, string>>;
  readonly commands: readonly { what: string; argv: readonly string[] }[];
}

export function statePath(uid = process.getuid?.() ?? 0): string {
  return uid === 0 ? '/run/kdp/up.json' : join(tmpdir(), `kdp-up-${uid}.json`);
}

export function writeState(s: UpState, path = statePath()): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, JSON.stringify(s, null, 2) + '\n');
  renameSync(`${path}.tmp`, path);
}

export function removeState(path = statePath()): void {
  rmSync(path, { force: true });
}

/** The state of a running `kdp up`, or undefined (none, or its process is gone). */
export function readState(path = statePath()): UpState | undefined {
  let s: UpState;
  try {
    s = JSON.parse(readFileSync(path, 'utf8')) as UpState;
  } catch {
    return undefined;
  }
  return isAlive(s.pid) ? s : undefined;
}

/** The namespace of `target`: a pod (`ns/name` or a unique `name`), a node name, or `underlay`. */
export function resolveTarget(s: UpState, target: string): string {
  if (target in s.targets) return s.targets[target] as string;
  const byName = Object.keys(s.targets).filter((k) => k.endsWith(`/${target}`));
  if (byName.length === 1) return s.targets[byName[0] as string] as string;
  const known = Object.keys(s.targets).sort().join(', ');
  throw new KdpError(
    'KDP_USAGE',
    byName.length > 1
      ? `${target} is ambiguous: ${byName.join(', ')}`
      : `no target ${JSON.stringify(target)}; known: ${known}`,
  );
}
