// Upstream connections: one undici Pool (keep-alive) per endpoint origin, shared across route-table
// versions; endpoint choice by round robin or a sticky cookie. Pools no table references are closed
// gracefully (in-flight requests finish) when a new table is installed.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Pool } from 'undici';
import type * as Undici from 'undici';
import type { Upstream } from './types.ts';

// undici (~0.1-0.3 s to load) serves only the general path (bodies, HTTP/2, HTTPS backends...); it is loaded
// after the ports are open (preloadUpstreamLibrary) or on first use, so a restart serves sooner
const require = createRequire(import.meta.url);
let undici: typeof Undici | undefined;
function poolClass(): typeof Pool {
  undici ??= require('undici') as typeof Undici;
  return undici.Pool;
}

/** Loads the upstream HTTP library now (called once serving has started). */
export function preloadUpstreamLibrary(): void {
  poolClass();
}

export interface PoolSettings {
  /** connections per endpoint (ingress-nginx keeps 320 idle per worker across all upstreams) */
  readonly connections: number;
  readonly keepAliveTimeoutMs: number;
}

export const DEFAULT_POOL_SETTINGS: PoolSettings = { connections: 128, keepAliveTimeoutMs: 60_000 };

export class PoolCache {
  readonly #pools = new Map<string, Pool>();
  readonly #settings: PoolSettings;
  constructor(settings: PoolSettings = DEFAULT_POOL_SETTINGS) {
    this.#settings = settings;
  }

  get(endpoint: string, https: boolean, connectTimeoutMs: number): Pool {
    const id = `${https ? 'https' : 'http'}://${endpoint}|${connectTimeoutMs}`;
    let p = this.#pools.get(id);
    if (!p) {
      const PoolCtor = poolClass();
      p = new PoolCtor(`${https ? 'https' : 'http'}://${endpoint}`, {
        connections: this.#settings.connections,
        keepAliveTimeout: this.#settings.keepAliveTimeoutMs,
        keepAliveMaxTimeout: this.#settings.keepAliveTimeoutMs,
        pipelining: 1,
        connect: { timeout: connectTimeoutMs, ...(https ? { rejectUnauthorized: false } : {}) },
      });
      this.#pools.set(id, p);
    }
    return p;
  }

  /** Closes (gracefully) the pools of endpoints not in `live` (a set of `ip:port`). */
  retain(live: ReadonlySet<string>): void {
    for (const [id, p] of this.#pools) {
      const endpoint = id.slice(id.indexOf('://') + 3, id.lastIndexOf('|'));
      if (!live.has(endpoint)) {
        this.#pools.delete(id);
        p.close().catch(() => {});
      }
    }
  }

  get size(): number {
    return this.#pools.size;
  }

  async close(): Promise<void> {
    const all = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(all.map((p) => p.destroy().catch(() => {})));
  }
}

/** Round-robin cursors per upstream name (survive table swaps). */
export class RoundRobin {
  readonly #cursor = new Map<string, number>();
  next(u: Upstream): string {
    const n = this.#cursor.get(u.name) ?? 0;
    this.#cursor.set(u.name, (n + 1) % 1_000_000_007);
    return u.endpoints[n % u.endpoints.length]!;
  }
}

/** The sticky-cookie value of an endpoint: a short stable hash (the address is not disclosed). */
export function affinityValue(endpoint: string): string {
  return createHash('sha1').update(endpoint).digest('hex').slice(0, 16);
}

export function endpointForCookie(u: Upstream, value: string): string | undefined {
  for (const e of u.endpoints) if (affinityValue(e) === value) return e;
  return undefined;
}

/** The value of cookie `name` in a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    if (part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
