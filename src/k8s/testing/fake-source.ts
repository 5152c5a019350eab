// An in-memory ClusterSource for tests of consumers (proxy, DNS, ingress): objects are put and removed
// by hand; handlers get the same calls a real source makes. Not for e2e tests of the sources themselves.
import type { ClusterObject, Kind } from '../../model/types.ts';
import { KINDS, keyOf } from '../../model/types.ts';
import { dispatch, dispatchSynced } from '../handlers.ts';
import type { ClusterSource, Handlers } from '../handlers.ts';

export class FakeSource implements ClusterSource {
  readonly #objects = new Map<Kind, Map<string, ClusterObject>>(KINDS.map((k) => [k, new Map()]));
  readonly #subs = new Set<Handlers>();
  #started = false;

  subscribe(h: Handlers): () => void {
    this.#subs.add(h);
    return () => this.#subs.delete(h);
  }

  /** Delivers everything present as adds, then synced for every kind. */
  async start(): Promise<void> {
    this.#started = true;
    for (const kind of KINDS) {
      for (const obj of this.#objects.get(kind)!.values()) for (const h of this.#subs) dispatch(h, 'Add', obj);
      for (const h of this.#subs) dispatchSynced(h, kind);
    }
  }

  async stop(): Promise<void> {
    this.#started = false;
    this.#subs.clear();
  }

  /** Adds or replaces an object (an update when it existed). */
  put(obj: ClusterObject): void {
    const m = this.#objects.get(obj.kind)!;
    const k = keyOf(obj.meta);
    const old = m.get(k);
    m.set(k, obj);
    if (!this.#started) return;
    for (const h of this.#subs) dispatch(h, old ? 'Update' : 'Add', obj, old);
  }

  remove(kind: Kind, key: string): void {
    const m = this.#objects.get(kind)!;
    const old = m.get(key);
    if (!old) return;
    m.delete(key);
    if (!this.#started) return;
    for (const h of this.#subs) dispatch(h, 'Delete', old);
  }

  get(kind: Kind, key: string): ClusterObject | undefined {
    return this.#objects.get(kind)!.get(key);
  }

  list(kind: Kind): ClusterObject[] {
    return [...this.#objects.get(kind)!.values()];
  }
}
