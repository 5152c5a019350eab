// The node agent: host-gw pod networking. Fed Node objects through the NodeHandler port, it keeps one
// route per other node's podCIDR via that node's InternalIP (same family), tagged `proto 199` so it
// can tell its routes from everyone else's. Nothing is programmed before the initial sync; every sync
// renders the whole desired set (pure) and applies the difference in one `ip -batch`; syncs never overlap.
import { KdpError, errorMessage } from '../common/errors.ts';
import { defaultExec } from '../common/exec-adapter.ts';
import type { Exec } from '../common/exec-adapter.ts';
import type { Logger } from '../common/log.ts';
import { silentLogger } from '../common/log.ts';
import type { NodeHandler } from '../k8s/handlers.ts';
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
  /** delay before retrying a failed sync (ms) */
  readonly retryMs?: number;
}

export class HostGwAgent implements NodeHandler {
  readonly #nodes = new Map<string, Node>();
  readonly #opts: HostGwAgentOptions;
  readonly #log: Logger;
  #synced = false;
  #running: Promise<void> | undefined;
  #dirty = false;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  syncs = 0;

  constructor(opts: HostGwAgentOptions) {
    this.#opts = opts;
    this.#log = opts.log ?? silentLogger;
  }

  onNodeAdd(node: Node): void {
    this.#nodes.set(node.meta.name, node);
    this.#kick();
  }
  onNodeUpdate(_old: Node, cur: Node): void {
    this.#nodes.set(cur.meta.name, cur);
    this.#kick();
  }
  onNodeDelete(node: Node): void {
    this.#nodes.delete(node.meta.name);
    this.#kick();
  }
  onNodesSynced(): void {
    this.#synced = true;
    this.#kick();
  }

  /** Resolves when no sync is running or pending. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#retry) clearTimeout(this.#retry);
  }

  #kick(): void {
    if (!this.#synced || this.#stopped) return;
    if (this.#running) {
      this.#dirty = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  async #loop(): Promise<void> {
    do {
      this.#dirty = false;
      try {
        const desired = desiredRoutes(this.#opts.nodeName, this.#nodes.values());
        const lines = routeBatch(await this.#opts.table.list(), desired);
        await this.#opts.table.apply(lines);
        this.syncs++;
        if (lines.length > 0)
          this.#log.info({ changes: lines.length, routes: desired.length }, 'host-gw routes synced');
      } catch (err) {
        const e = new KdpError('KDP_NODE_AGENT', `syncing host-gw routes failed: ${errorMessage(err)}`, { cause: err });
        this.#log.error({ err: e.toJSON() }, e.message);
        if (!this.#stopped) {
          if (this.#retry) clearTimeout(this.#retry);
          this.#retry = setTimeout(() => this.#kick(), this.#opts.retryMs ?? 1000);
        }
        return;
      }
    } while (this.#dirty && !this.#stopped);
  }
}
