// Userspace mode, pure part: endpoint choice for one service port. Round robin over the usable endpoints;
// with ClientIP affinity a client keeps its endpoint until it has been idle for the timeout; a caller that
// failed to connect asks for the next candidate (retries go round the ring once).

export interface Target {
  readonly ip: string;
  readonly port: number;
}

const keyOf = (t: Target) => `${t.ip}|${t.port}`;

export class Balancer {
  #targets: Target[] = [];
  #next = 0;
  #affinityMs: number | undefined;
  readonly #sticky = new Map<string, { key: string; last: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Replaces the endpoint set (keeps the round-robin position and the affinity of endpoints that stay). */
  update(targets: readonly Target[], affinitySeconds: number | undefined): void {
    this.#targets = [...targets];
    this.#affinityMs = affinitySeconds === undefined ? undefined : affinitySeconds * 1000;
    if (this.#affinityMs === undefined) this.#sticky.clear();
    const alive = new Set(this.#targets.map(keyOf));
    for (const [client, s] of this.#sticky) if (!alive.has(s.key)) this.#sticky.delete(client);
    if (this.#next >= this.#targets.length) this.#next = 0;
  }

  get size(): number {
    return this.#targets.length;
  }

  targets(): readonly Target[] {
    return this.#targets;
  }

  /**
   * Candidates in the order to try them for a new connection from `clientIP`: the sticky endpoint first
   * (when affinity is on and it is still there), then round robin.
   */
  candidates(clientIP: string): Target[] {
    const n = this.#targets.length;
    if (n === 0) return [];
    const now = this.#now();
    if (this.#affinityMs !== undefined) {
      const s = this.#sticky.get(clientIP);
      if (s && now - s.last <= this.#affinityMs) {
        const i = this.#targets.findIndex((t) => keyOf(t) === s.key);
        if (i >= 0) return [...this.#targets.slice(i), ...this.#targets.slice(0, i)];
      }
    }
    const start = this.#next;
    this.#next = (this.#next + 1) % n;
    return [...this.#targets.slice(start), ...this.#targets.slice(0, start)];
  }

  /** Records the endpoint a client was connected to (affinity). */
  connected(clientIP: string, t: Target): void {
    if (this.#affinityMs === undefined) return;
    this.#sticky.set(clientIP, { key: keyOf(t), last: this.#now() });
    if (this.#sticky.size > 100_000) this.#expire();
  }

  #expire(): void {
    const now = this.#now();
    for (const [c, s] of this.#sticky) if (now - s.last > (this.#affinityMs ?? 0)) this.#sticky.delete(c);
  }
}
