// Link and address plumbing through `ip` (iproute2) child processes. The plugin runs in the node's
// namespace; pod-side work runs in a child that enters the pod netns (`nsenter --net=PATH`). Pure
// builders of `ip -batch` lines are kept apart from the few functions that run them.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
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

/** net.ipv4.conf.<dev>.<key> (the device name may contain dots). */
function setIpv4ConfSysctl(dev: string, key: string, value: string): void {
  writeFileSync(`/proc/sys/net/ipv4/conf/${dev}/${key}`, value);
}

/** route_localnet on the interface that routes to `podIp`, so 127.0.0.1:hostPort can be DNATed to it. */
export function enableRouteLocalnetTowards(podIp: string): string | undefined {
  const dev = routeDevice(readFileSync('/proc/net/route', 'utf8'), podIp, endianness() === 'LE');
  if (dev && dev !== 'lo') setIpv4ConfSysctl(dev, 'route_localnet', '1');
  return dev;
}

/**
 * The interface the main IPv4 table routes `ip` through (longest prefix, then lowest metric), read from
 * /proc/net/route text (addresses in host byte order, hex); undefined when nothing matches.
 */
export function routeDevice(procNetRoute: string, ip: string, littleEndian = true): string | undefined {
  const want = ip.split('.').reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;
  const num = (hex: string) => {
    const b = Buffer.from(hex.padStart(8, '0'), 'hex');
    return (littleEndian ? b.readUInt32LE(0) : b.readUInt32BE(0)) >>> 0;
  };
  let best: { dev: string; bits: number; metric: number } | undefined;
  for (const line of procNetRoute.split('\n').slice(1)) {
    const [dev, dst, , flags, , , metric, mask] = line.trim().split(/\s+/);
    if (!dev || !dst || !mask || !flags || (parseInt(flags, 16) & 1) === 0) continue; // RTF_UP
    const m = num(mask);
    if ((want & m) >>> 0 !== num(dst)) continue;
    const bits = m.toString(2).replace(/0/g, '').length;
    const met = Number(metric);
    if (!best || bits > best.bits || (bits === best.bits && met < best.metric)) best = { dev, bits, metric: met };
  }
  return best?.dev;
}

/**
 * argv prefix running `ip` inside the netns at `path`: `ip -n NAME` for a namespace under /run/netns (one
 * exec: ip enters it itself), else `nsenter --net=PATH ip` (`ip -n` only takes names from /run/netns).
 */
export function ipIn(path: string): string[] {
  const m = /^(?:\/var)?\/run\/netns\/([^/]+)$/.exec(path);
  return m ? ['ip', '-n', m[1] as string] : ['nsenter', `--net=${path}`, 'ip'];
}

/**
 * Generous: `ip` waits for the kernel's RTNL lock, which 100 concurrent ADDs (veth creation and the move
 * into the pod netns) hold in turn; one bridge creation waited over 30 s at load average 25.
 */
const IP_TIMEOUT_MS = 150_000;

/** An Exec that can spawn a child now and write its stdin later (src/cni/warm.ts). */
interface StartableExec extends Exec {
  /** `ip -batch -` in the netns at netnsPath (argv: the equivalent command), started now, fed by finish() */
  startIpIn(
    netnsPath: string,
    argv: readonly string[],
  ): { finish(input: string, opts?: { allowFailure?: boolean; timeoutMs?: number }): Promise<ExecResult> };
}

export class IpRunner {
  readonly #exec: Exec;
  constructor(exec: Exec = defaultExec) {
    this.#exec = exec;
  }

  /** `ip -batch -` in the current namespace. */
  batch(lines: readonly string[], allowFailure = false): Promise<ExecResult> {
    return this.#exec.run(['ip', '-batch', '-'], {
      input: lines.join('\n') + '\n',
      allowFailure,
      timeoutMs: IP_TIMEOUT_MS,
    });
  }

  /**
   * `ip -batch -` inside the netns at path, spawned now when the exec can (the warm server's WarmExec.start) and
   * fed its lines by finish(): the child's start overlaps the work its lines wait for. Otherwise finish() runs
   * it then. finish([]) lets a started child exit doing nothing.
   */
  startBatchIn(netns: string): { finish(lines: readonly string[], allowFailure?: boolean): Promise<ExecResult> } {
    const argv = [...ipIn(netns), '-batch', '-'];
    const ex = this.#exec as Exec & Partial<StartableExec>;
    if (ex.startIpIn) {
      const s = ex.startIpIn(netns, argv);
      return {
        finish: (lines, allowFailure = false) =>
          s.finish(lines.length > 0 ? lines.join('\n') + '\n' : '', { allowFailure, timeoutMs: IP_TIMEOUT_MS }),
      };
    }
    return {
      finish: (lines, allowFailure = false) =>
        lines.length > 0
          ? this.batchIn(netns, lines, allowFailure)
          : Promise.resolve({ code: 0, stdout: '', stderr: '' }),
    };
  }

  /** `ip -batch -` inside the netns at path. */
  batchIn(netns: string, lines: readonly string[], allowFailure = false): Promise<ExecResult> {
    return this.#exec.run([...ipIn(netns), '-batch', '-'], {
      input: lines.join('\n') + '\n',
      allowFailure,
      timeoutMs: IP_TIMEOUT_MS,
    });
  }

  run(args: readonly string[], allowFailure = false): Promise<ExecResult> {
    return this.#exec.run(['ip', ...args], { allowFailure, timeoutMs: IP_TIMEOUT_MS });
  }
}
