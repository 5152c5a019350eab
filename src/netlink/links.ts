// Link and address plumbing through `ip` (iproute2) child processes. The plugin runs in the node's
// namespace; pod-side work runs in a child that enters the pod netns (`nsenter --net=PATH`). Pure
// builders of `ip -batch` lines are kept apart from the few functions that run them.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { defaultExec } from '../common/exec-adapter.ts';
import type { Exec, ExecResult } from '../common/exec-adapter.ts';

/** 16 hex digits identifying one attachment (container id + ifname): names veths, tags rules. */
export function attachmentHash(containerId: string, ifname: string): string {
  return createHash('sha256').update(`${containerId}\0${ifname}`).digest('hex').slice(0, 16);
}

/** The host-side veth of an attachment: deterministic, so DEL finds it without prevResult or netns. */
export function hostVethName(containerId: string, ifname: string): string {
  return `kdp${attachmentHash(containerId, ifname).slice(0, 8)}`;
}

export const HOST_VETH_RE = /^kdp[0-9a-f]{8}$/;

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = ((b[0] as number) & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Interface names of the current network namespace (from /proc/net/dev, which follows the netns). */
export function localLinks(): Set<string> {
  const text = readFileSync('/proc/net/dev', 'utf8');
  const out = new Set<string>();
  for (const line of text.split('\n').slice(2)) {
    const name = line.split(':')[0]?.trim();
    if (name) out.add(name);
  }
  return out;
}

export function netnsExists(path: string): boolean {
  return path !== '' && existsSync(path);
}

export function setSysctl(key: string, value: string): void {
  writeFileSync(`/proc/sys/${key.replaceAll('.', '/')}`, value);
}

/**
 * argv prefix running `ip` inside the netns at `path`: `ip -n NAME` for a namespace under /run/netns (one
 * exec: ip enters it itself), else `nsenter --net=PATH ip` (`ip -n` only takes names from /run/netns).
 */
export function ipIn(path: string): string[] {
  const m = /^(?:\/var)?\/run\/netns\/([^/]+)$/.exec(path);
  return m ? ['ip', '-n', m[1] as string] : ['nsenter', `--net=${path}`, 'ip'];
}

export class IpRunner {
  readonly #exec: Exec;
  constructor(exec: Exec = defaultExec) {
    this.#exec = exec;
  }

  /** `ip -batch -` in the current namespace. */
  batch(lines: readonly string[], allowFailure = false): Promise<ExecResult> {
    return this.#exec.run(['ip', '-batch', '-'], { input: lines.join('\n') + '\n', allowFailure });
  }

  /** `ip -batch -` inside the netns at path. */
  batchIn(netns: string, lines: readonly string[], allowFailure = false): Promise<ExecResult> {
    return this.#exec.run([...ipIn(netns), '-batch', '-'], { input: lines.join('\n') + '\n', allowFailure });
  }

  run(args: readonly string[], allowFailure = false): Promise<ExecResult> {
    return this.#exec.run(['ip', ...args], { allowFailure });
  }

  runIn(netns: string, args: readonly string[], allowFailure = false): Promise<ExecResult> {
    return this.#exec.run([...ipIn(netns), ...args], { allowFailure });
  }
}
