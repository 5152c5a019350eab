// The listening sockets of the Gateways: one per served (address, port), HTTP or HTTPS, each with its own route
// table (the compiler's GatewayListenerTable), so two Gateways on the same port (different addresses) never
// see each other's routes. A change of the Gateway set opens the sockets of new (address, port)s, closes
// those no Gateway has any more (requests in flight get the grace period) and swaps the table of the others
// in place (one reference assignment: no reload, no connection cut).
import type { Logger } from '../../src/common/log.ts';
import { silentLogger } from '../../src/common/log.ts';
import type { RouteTable } from '../types.ts';

export interface ListenerSpec {
  readonly address: string;
  readonly port: number;
  readonly protocol: 'HTTP' | 'HTTPS';
}

/** `HTTP 127.0.10.5:80`, `HTTPS [fd00::1]:443`. */
export function listenerId(l: ListenerSpec): string {
  const host = l.address.includes(':') ? `[${l.address}]` : l.address;
  return `${l.protocol} ${host}:${l.port}`;
}

export interface ListenerDiff<T extends ListenerSpec> {
  /** (address, port)s to open */
  readonly open: readonly T[];
  /** ids of open sockets no Gateway serves any more (closed before the opens: a port may change protocol) */
  readonly close: readonly string[];
  /** open sockets that stay: their tables are swapped */
  readonly keep: readonly T[];
  /** a second table for an (address, port) already taken in this set (another protocol, another Gateway) */
  readonly clash: readonly T[];
}

/** What to open, close and keep to go from the open sockets `current` (ids) to `desired`. Pure. */
export function diffListeners<T extends ListenerSpec>(
  current: Iterable<string>,
  desired: readonly T[],
): ListenerDiff<T> {
  const have = new Set(current);
  const open: T[] = [];
  const keep: T[] = [];
  const clash: T[] = [];
  const ports = new Set<string>();
  const want = new Set<string>();
  for (const l of desired) {
    const port = `${l.address}|${l.port}`;
    if (ports.has(port)) {
      clash.push(l);
      continue;
    }
    ports.add(port);
    const id = listenerId(l);
    want.add(id);
    (have.has(id) ? keep : open).push(l);
  }
  const close = [...have].filter((id) => !want.has(id));
  return { open, close, keep, clash };
}

/** One served (address, port): what the ingress server gives the listener manager. */
export interface ListenerServer {
  setTable(table: RouteTable): void;
  /** opens the socket; rejects (EADDRINUSE, EADDRNOTAVAIL, EACCES) when it cannot */
  listen(): Promise<void>;
  /** stops accepting; requests in flight get up to graceMs */
  close(graceMs: number): Promise<void>;
}

export interface ListenerTable extends ListenerSpec {
  readonly table: RouteTable;
  /** the Gateway (`namespace/name`) it belongs to */
  readonly gateway?: string;
}

export interface ApplyResult {
  /** listener ids open and serving after the apply */
  readonly serving: readonly string[];
  /** listener ids that could not be opened, with the reason (tried again on the next apply) */
  readonly failed: ReadonlyMap<string, string>;
}

export class GatewayListeners {
  readonly #make: (l: ListenerTable) => ListenerServer;
  readonly #log: Logger;
  readonly #graceMs: number;
  readonly #open = new Map<string, ListenerServer>();
  readonly #draining = new Set<Promise<void>>();
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(make: (l: ListenerTable) => ListenerServer, opts: { log?: Logger; graceMs?: number } = {}) {
    this.#make = make;
    this.#log = opts.log ?? silentLogger;
    this.#graceMs = opts.graceMs ?? 10_000;
  }

  /** ids of the open listeners */
  get ids(): readonly string[] {
    return [...this.#open.keys()].sort();
  }

  /** Brings the open sockets in line with `tables` (applies run one after the other, in call order). */
  apply(tables: readonly ListenerTable[]): Promise<ApplyResult> {
    const run = this.#chain.then(() => this.#apply(tables));
    this.#chain = run.catch(() => {});
    return run;
  }

  async #apply(tables: readonly ListenerTable[]): Promise<ApplyResult> {
    const failed = new Map<string, string>();
    if (this.#closed) return { serving: [], failed };
    const d = diffListeners(this.#open.keys(), tables);
    for (const l of d.keep) this.#open.get(listenerId(l))!.setTable(l.table);
    for (const id of d.close) {
      const s = this.#open.get(id)!;
      this.#open.delete(id);
      this.#log.info({ listener: id }, 'gateway listener closed');
      // close() stops listening at once (so a port that changes protocol is free for the open below); the
      // requests in flight finish on their connections meanwhile
      const p = s.close(this.#graceMs).catch(() => {});
      this.#draining.add(p);
      void p.then(() => this.#draining.delete(p));
    }
    for (const l of d.clash) failed.set(listenerId(l), 'another listener already serves this address and port');
    for (const l of d.open) {
      const id = listenerId(l);
      const s = this.#make(l);
      s.setTable(l.table);
      try {
        await s.listen();
        this.#open.set(id, s);
        this.#log.info({ listener: id }, 'gateway listener open');
      } catch (err) {
        failed.set(id, (err as Error).message);
        this.#log.warn({ listener: id, err: (err as Error).message }, 'gateway listener could not be opened');
        await s.close(0).catch(() => {});
      }
    }
    return { serving: this.ids, failed };
  }

  /** Closes every listener (requests in flight get up to graceMs). */
  async close(graceMs = 0): Promise<void> {
    this.#closed = true;
    await this.#chain;
    const all = [...this.#open.values()];
    this.#open.clear();
    await Promise.all([...all.map((s) => s.close(graceMs)), ...this.#draining]);
  }
}
