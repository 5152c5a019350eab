// Change trackers: the Services and EndpointSlices the proxy has been told about, and which services
// changed since the last sync. Backend-agnostic; the proxier applies them at sync time.
import type { EndpointSlice, Service } from '../model/types.ts';
import { keyOf } from '../model/types.ts';

/** Structural equality ignoring resourceVersion (an update that changes nothing needs no sync). */
function sameContent(a: unknown, b: unknown): boolean {
  return (
    JSON.stringify(a, (k, v) => (k === 'resourceVersion' ? undefined : v)) ===
    JSON.stringify(b, (k, v) => (k === 'resourceVersion' ? undefined : v))
  );
}

/** Set by the EndpointSlice controller: when the change that produced this slice version happened. */
export const TRIGGER_TIME_ANNOTATION = 'endpoints.kubernetes.io/last-change-trigger-time';

/** What take() hands over for the network-programming latency metric. */
export interface PendingTimes {
  /** trigger times (wall clock, ms since the epoch) of the slice changes in this batch that carry one */
  readonly triggers: readonly number[];
  /** when the oldest change without a trigger time was queued (performance.now ms) */
  readonly untriggeredMs: number | undefined;
}

export class ChangeTracker {
  readonly services = new Map<string, Service>();
  /** service key ("ns/name") -> slice key -> slice */
  readonly #slices = new Map<string, Map<string, EndpointSlice>>();
  /** services touched since the last take() */
  #changed = new Set<string>();
  /** when the oldest unsynced change arrived (ms, performance.now) */
  #firstPending: number | undefined;
  #now: () => number;
  #triggers: number[] = [];
  #untriggered: number | undefined;

  /** trigger times before this (wall clock) are from before we started watching: kube-proxy ignores them */
  readonly #startedWall: number;

  constructor(now: () => number = () => performance.now(), wallNow: () => number = () => Date.now()) {
    this.#now = now;
    this.#startedWall = wallNow();
  }

  #mark(key: string, trigger?: number): void {
    this.#changed.add(key);
    this.#firstPending ??= this.#now();
    if (trigger !== undefined) this.#triggers.push(trigger);
    else this.#untriggered ??= this.#now();
  }

  /** Returns true when something changed (a sync is needed). */
  updateService(old: Service | undefined, cur: Service | undefined): boolean {
    if (old && cur && sameContent(old, cur)) return false;
    const key = keyOf((cur ?? old)!.meta);
    if (cur) this.services.set(key, cur);
    else this.services.delete(key);
    this.#mark(key);
    return true;
  }

  updateSlice(old: EndpointSlice | undefined, cur: EndpointSlice | undefined): boolean {
    if (old && cur && sameContent(old, cur)) return false;
    const s = (cur ?? old)!;
    const svcKey = `${s.meta.namespace}/${s.serviceName}`;
    const sliceKey = keyOf(s.meta);
    if (old && old.serviceName !== s.serviceName) {
      const oldSvc = `${old.meta.namespace}/${old.serviceName}`;
      this.#slices.get(oldSvc)?.delete(sliceKey);
      this.#mark(oldSvc);
    }
    let m = this.#slices.get(svcKey);
    if (cur) {
      if (!m) this.#slices.set(svcKey, (m = new Map()));
      m.set(sliceKey, cur);
    } else if (m) {
      m.delete(sliceKey);
      if (m.size === 0) this.#slices.delete(svcKey);
    }
    // kube-proxy's rule: a slice version whose trigger-time annotation changed carries that time
    const tt = cur?.meta.annotations[TRIGGER_TIME_ANNOTATION];
    const trigger = tt !== undefined && tt !== old?.meta.annotations[TRIGGER_TIME_ANNOTATION] ? Date.parse(tt) : NaN;
    this.#mark(svcKey, Number.isFinite(trigger) && trigger >= this.#startedWall ? trigger : undefined);
    return true;
  }

  /** The slices of one service ("ns/name"), in a stable order. */
  slicesFor(svcKey: string): EndpointSlice[] {
    const m = this.#slices.get(svcKey);
    return m ? [...m.values()].sort((a, b) => (a.meta.name < b.meta.name ? -1 : 1)) : [];
  }

  slicesByService(): Map<string, EndpointSlice[]> {
    return new Map(
      [...this.#slices].map(([k, m]) => [k, [...m.values()].sort((a, b) => (a.meta.name < b.meta.name ? -1 : 1))]),
    );
  }

  get pending(): number {
    return this.#changed.size;
  }

  /** Hands over the changed service keys, the age of the oldest change and the latency inputs; resets them. */
  take(): { changed: Set<string>; oldestMs: number | undefined; times: PendingTimes } {
    const changed = this.#changed;
    const oldest = this.#firstPending;
    const times = { triggers: this.#triggers, untriggeredMs: this.#untriggered };
    this.#changed = new Set();
    this.#firstPending = undefined;
    this.#triggers = [];
    this.#untriggered = undefined;
    return { changed, oldestMs: oldest, times };
  }

  /** Puts changes back after a failed sync (they must be programmed by the retry). */
  restore(changed: Iterable<string>, oldestMs: number | undefined, times?: PendingTimes): void {
    for (const k of changed) this.#changed.add(k);
    if (oldestMs !== undefined) this.#firstPending = Math.min(this.#firstPending ?? oldestMs, oldestMs);
    if (times) {
      this.#triggers.push(...times.triggers);
      if (times.untriggeredMs !== undefined)
        this.#untriggered = Math.min(this.#untriggered ?? times.untriggeredMs, times.untriggeredMs);
    }
  }
}
