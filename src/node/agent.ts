// The node agent: host-gw pod networking. A reconciler on the controller kernel reading Node objects, it
// keeps one route per other node's podCIDR via that node's InternalIP (same family), tagged `proto 199` so
// it can tell its routes from everyone else's. The kernel gates it on the Nodes' initial sync, runs one
// reconcile at a time and retries failures with backoff; each reconcile renders the whole desired set
// (pure) and applies the difference against the kernel's routes in one `ip -batch`.
import { KdpError, errorMessage } from '../common/errors.ts';
import { defaultExec } from '../common/exec-adapter.ts';
import type { Exec } from '../common/exec-adapter.ts';
import type { Logger } from '../common/log.ts';
import { silentLogger } from '../common/log.ts';
import type { Reconciler } from '../k8s/controller.ts';
import type { StoreView } from '../k8s/store.ts';
import type { Node } from '../model/types.ts';
import { formatNetwork, parseCidr, tryParseIp } from '../ipam/ip.ts';

export const ROUTE_PROTO = 199;

export interface HostGwRoute {
  readonly dst: string;
  readonly via: string;
}

const key = (r: HostGwRoute) => `${r.dst} ${r.via}`;

/** Routes this node needs: every other node's podCIDRs via its InternalIP of the same family. */
export function desiredRoutes(self: string, nodes: Iterable<Node>): HostGwRoute[] {
  const out: HostGwRoute[] = [];
  for (const n of nodes) {
    if (n.meta.name === self) continue;
    for (const cidr of n.podCIDRs) {
      let c;
      try {
        c = parseCidr(cidr);
      } catch {
        continue;
      }
      const via = n.addresses.find(
        (a) => a.type === 'InternalIP' && tryParseIp(a.address)?.family === c.family,
      )?.address;
      if (via) out.push({ dst: formatNetwork(c), via });
    }
  }
  return out.sort((a, b) => key(a).localeCompare(key(b)));
}

/** `ip -batch` lines turning `current` into `desired`. */
export function routeBatch(current: readonly HostGwRoute[], desired: readonly HostGwRoute[]): string[] {
  const want = new Set(desired.map(key));
  const have = new Set(current.map(key));
  const lines: string[] = [];
  for (const r of current) if (!want.has(key(r))) lines.push(`route del ${r.dst} via ${r.via} proto ${ROUTE_PROTO}`);
  for (const r of desired)
    if (!have.has(key(r))) lines.push(`route replace ${r.dst} via ${r.via} proto ${ROUTE_PROTO}`);
  return lines;
}

export interface RouteTable {
  list(): Promise<HostGwRoute[]>;
  apply(lines: readonly string[]): Promise<void>;
}

/** Routes of the namespace `ip` runs in; `argvPrefix` may wrap it (e.g. ['ip', 'netns', 'exec', NS]). */
export class IpRouteTable implements RouteTable {
  readonly #exec: Exec;
  readonly #prefix: readonly string[];
  constructor(exec: Exec = defaultExec, argvPrefix: readonly string[] = []) {
    this.#exec = exec;
    this.#prefix = argvPrefix;
  }

  async list(): Promise<HostGwRoute[]> {
    const out: HostGwRoute[] = [];
    for (const fam of ['-4', '-6']) {
      const res = await this.#exec.run([
        ...this.#prefix,
        'ip',
        fam,
        '-j',
        'route',
        'show',
        'proto',
        String(ROUTE_PROTO),
      ]);
      for (const r of JSON.parse(res.stdout || '[]') as { dst: string; gateway?: string }[]) {
        if (r.gateway)
          out.push({ dst: r.dst.includes('/') ? r.dst : `${r.dst}/${fam === '-4' ? 32 : 128}`, via: r.gateway });
      }
    }
    return out;
  }

  async apply(lines: readonly string[]): Promise<void> {
    if (lines.length > 0)
      await this.#exec.run([...this.#prefix, 'ip', '-batch', '-'], { input: lines.join('\n') + '\n' });
  }
}

export interface HostGwAgentOptions {
  readonly nodeName: string;
  readonly table: RouteTable;
  readonly log?: Logger;
}

/** The host-gw reconciler: run it on the controller kernel (src/k8s/controller.ts). */
export class HostGwAgent implements Reconciler {
  readonly name = 'node-agent';
  readonly kinds = ['Node'] as const;
  readonly #opts: HostGwAgentOptions;
  readonly #log: Logger;
  syncs = 0;

  constructor(opts: HostGwAgentOptions) {
    this.#opts = opts;
    this.#log = opts.log ?? silentLogger;
  }

  /** Renders every route from the Nodes in view and applies the difference to the kernel's proto-199 routes. */
  async reconcile(view: StoreView): Promise<void> {
    try {
      const desired = desiredRoutes(this.#opts.nodeName, view.list('Node'));
      const lines = routeBatch(await this.#opts.table.list(), desired);
      await this.#opts.table.apply(lines);
      this.syncs++;
      if (lines.length > 0) this.#log.info({ changes: lines.length, routes: desired.length }, 'host-gw routes synced');
    } catch (err) {
      throw new KdpError('KDP_NODE_AGENT', `syncing host-gw routes failed: ${errorMessage(err)}`, { cause: err });
    }
  }
}
