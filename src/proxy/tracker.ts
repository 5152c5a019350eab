// The proxy's change tracking on the controller kernel. The objects themselves live once, in the source's
// store (read through the kernel's view); what the proxy keeps is what kube-proxy's change trackers keep
// besides them: which services a batch of changes touches (so a partial sync rebuilds only those), and the
// times the network-programming latency metric is measured from. Backend-agnostic.
import type { Change } from '../k8s/controller.ts';
import { indexOn } from '../k8s/controller.ts';
import type { StoreView } from '../k8s/store.ts';
import type { EndpointSlice } from '../model/types.ts';

/** Set by the EndpointSlice controller: when the change that produced this slice version happened. */
export const TRIGGER_TIME_ANNOTATION = 'endpoints.kubernetes.io/last-change-trigger-time';

/** The store index the proxy finds a service's slices by: "namespace/serviceName". */
export const SLICES_BY_SERVICE = indexOn('EndpointSlice', 'proxy.service', (s) => [
  `${s.meta.namespace}/${s.serviceName}`,
]);

/** What the network-programming latency metric is measured from for one sync. */
export interface PendingTimes {
  /** trigger times (wall clock, ms since the epoch) of the slice changes in this batch that carry one */
  readonly triggers: readonly number[];
  /** when the oldest change without a trigger time was queued (performance.now ms) */
  readonly untriggeredMs: number | undefined;
}

/** The service keys ("ns/name") a change touches: a slice touches its service before and after. */
function serviceKeysOf(c: Change): string[] {
  if (c.kind === 'Service') return [c.key];
  if (c.kind !== 'EndpointSlice') return [];
  const keys = new Set<string>();
  for (const s of [c.previous, c.current] as (EndpointSlice | undefined)[])
    if (s) keys.add(`${s.meta.namespace}/${s.serviceName}`);
  return [...keys];
}

/** The services a batch of changes touches. */
export function changedServices(changes: readonly Change[]): Set<string> {
  const out = new Set<string>();
  for (const c of changes) for (const k of serviceKeysOf(c)) out.add(k);
  return out;
}

/** A service's slices from the store, in a stable order. */
export function slicesFor(view: StoreView, svcKey: string): EndpointSlice[] {
  return [...view.byIndex('EndpointSlice', SLICES_BY_SERVICE.name, svcKey)].sort((a, b) =>
    a.meta.name < b.meta.name ? -1 : 1,
  );
}

/** Latency bookkeeping, fed every queued change (the kernel's queued hook) and taken by each sync. */
export class ChangeTimes {
  #now: () => number;
  #triggers: number[] = [];
  #untriggered: number | undefined;
  /** services with a change queued since the last successful sync */
  #pending = new Set<string>();
  /** trigger times before this (wall clock) are from before we started watching: kube-proxy ignores them */
  readonly #startedWall: number;

  constructor(now: () => number = () => performance.now(), wallNow: () => number = () => Date.now()) {
    this.#now = now;
    this.#startedWall = wallNow();
  }

  /** One change as it arrived (not merged): kube-proxy's rule is per slice version. */
  queued(c: Change): void {
    for (const k of serviceKeysOf(c)) this.#pending.add(k);
    let trigger = NaN;
    if (c.kind === 'EndpointSlice' && c.current) {
      // a slice version whose trigger-time annotation changed carries that time
      const tt = (c.current as EndpointSlice).meta.annotations[TRIGGER_TIME_ANNOTATION];
      const before = (c.previous as EndpointSlice | undefined)?.meta.annotations[TRIGGER_TIME_ANNOTATION];
      if (tt !== undefined && tt !== before) trigger = Date.parse(tt);
    }
    if (Number.isFinite(trigger) && trigger >= this.#startedWall) this.#triggers.push(trigger);
    else this.#untriggered ??= this.#now();
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** Hands over the latency inputs queued so far; resets them. */
  take(): { times: PendingTimes; pending: Set<string> } {
    const out = { times: { triggers: this.#triggers, untriggeredMs: this.#untriggered }, pending: this.#pending };
    this.#triggers = [];
    this.#untriggered = undefined;
    this.#pending = new Set();
    return out;
  }

  /** Puts them back after a failed sync (the retry programs those changes). */
  restore(taken: { times: PendingTimes; pending: Set<string> }): void {
    this.#triggers.push(...taken.times.triggers);
    const u = taken.times.untriggeredMs;
    if (u !== undefined) this.#untriggered = Math.min(this.#untriggered ?? u, u);
    for (const k of taken.pending) this.#pending.add(k);
  }
}
