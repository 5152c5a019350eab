// UDP conntrack cleanup. A UDP flow keeps its DNAT target for as long as the client keeps sending, so
// when an endpoint goes away its entries must be deleted or the client talks to a dead pod forever.
// Also, entries created while a service had no endpoints (rejected) are flushed when it gets some.
// The pure part computes the deletions; the adapter runs `conntrack -D` for each.
import type { Exec } from '../common/exec-adapter.ts';
import type { Logger } from '../common/log.ts';
import { errorMessage } from '../common/errors.ts';
import type { ServicePortInfo } from './model.ts';
import { isV6, vips } from './model.ts';

export type ConntrackDeletion =
  | { readonly kind: 'vip'; readonly vip: string; readonly port: number; readonly endpoint?: string }
  | { readonly kind: 'nodeport'; readonly nodePort: number; readonly endpoint?: string; readonly v6: boolean };

function usedIPs(sp: ServicePortInfo | undefined): Set<string> {
  if (!sp) return new Set();
  return new Set([...sp.clusterEndpoints, ...sp.localEndpoints].map((e) => e.ip));
}

const keyOf = (sp: ServicePortInfo) => `${sp.family}|${sp.id}|${sp.protocol}`;

/** The deletions that make UDP clients reach the current endpoints. Pure. */
export function staleUdpEntries(
  prev: readonly ServicePortInfo[],
  next: readonly ServicePortInfo[],
): ConntrackDeletion[] {
  const out: ConntrackDeletion[] = [];
  const nextBy = new Map(next.filter((s) => s.protocol === 'UDP').map((s) => [keyOf(s), s]));
  const prevBy = new Map(prev.filter((s) => s.protocol === 'UDP').map((s) => [keyOf(s), s]));
  for (const [k, old] of prevBy) {
    const cur = nextBy.get(k);
    if (cur === old) continue; // unchanged service (the proxier keeps its object): nothing went stale
    const keep = usedIPs(cur);
    for (const ip of usedIPs(old)) {
      if (keep.has(ip)) continue;
      for (const vip of vips(old)) out.push({ kind: 'vip', vip, port: old.port, endpoint: ip });
      if (old.nodePort !== undefined)
        out.push({ kind: 'nodeport', nodePort: old.nodePort, endpoint: ip, v6: isV6(ip) });
    }
  }
  for (const [k, cur] of nextBy) {
    const old = prevBy.get(k);
    if (cur === old) continue;
    if (usedIPs(cur).size > 0 && usedIPs(old).size === 0) {
      // was rejected (or did not exist): entries made meanwhile would blackhole the client
      for (const vip of vips(cur)) out.push({ kind: 'vip', vip, port: cur.port });
      if (cur.nodePort !== undefined) out.push({ kind: 'nodeport', nodePort: cur.nodePort, v6: cur.family === 'IPv6' });
    }
  }
  return out;
}

export function conntrackArgv(d: ConntrackDeletion): string[] {
  const v6 = d.kind === 'vip' ? isV6(d.vip) : d.v6;
  const argv = ['conntrack', '-D', '-f', v6 ? 'ipv6' : 'ipv4', '-p', 'udp'];
  if (d.kind === 'vip') argv.push('--orig-dst', d.vip, '--orig-port-dst', String(d.port));
  else argv.push('--orig-port-dst', String(d.nodePort));
  if (d.endpoint !== undefined) argv.push('--dst-nat', d.endpoint);
  return argv;
}

export interface Conntrack {
  delete(deletions: readonly ConntrackDeletion[]): Promise<void>;
}

/** Runs `conntrack -D` (exit 1 means "0 entries deleted": not an error). */
export class ConntrackTool implements Conntrack {
  readonly #exec: Exec;
  readonly #log: Logger;
  constructor(exec: Exec, log: Logger) {
    this.#exec = exec;
    this.#log = log;
  }
  async delete(deletions: readonly ConntrackDeletion[]): Promise<void> {
    for (const d of deletions) {
      try {
        const res = await this.#exec.run(conntrackArgv(d), { allowFailure: true });
        if (res.code > 1) this.#log.warn({ deletion: d, stderr: res.stderr.trim() }, 'conntrack cleanup failed');
      } catch (err) {
        this.#log.warn({ deletion: d, err: errorMessage(err) }, 'conntrack cleanup failed');
      }
    }
  }
}
