// An in-memory ClusterSource for tests of consumers (proxy, DNS, ingress, node agent): objects are put and
// removed by hand. It is a real Store underneath, so consumers see exactly the listener calls and the view a
// real source gives them (no-op updates dropped, changed(kind, key, previous, current), synced per kind). Not
// for e2e tests of the sources themselves.
import type { ClusterObject, Kind } from '../../model/types.ts';
import { KINDS, keyOf } from '../../model/types.ts';
import { silentLogger } from '../../common/log.ts';
import type { ClusterSource } from '../source.ts';
import { Store } from '../store.ts';
import type { StoreListener } from '../store.ts';

export class FakeSource implements ClusterSource {
  readonly #store = new Store({ log: silentLogger });
  /** objects put before start(): delivered as the initial list */
  readonly #staged = new Map<Kind, Map<string, ClusterObject>>(KINDS.map((k) => [k, new Map()]));
  #started = false;

  watch(l: StoreListener): () => void {
    return this.#store.watch(l);
  }

  get view(): Store {
    return this.#store;
  }

  /** Delivers everything present as the initial list of every kind (adds, then synced). */
  async start(): Promise<void> {
    this.#started = true;
    for (const kind of KINDS) this.#store.replace(kind, this.#staged.get(kind)!.values());
  }

  /** Delivers the initial list of some kinds only (the others stay unsynced): for gating tests. */
  syncKinds(kinds: readonly Kind[]): void {
    this.#started = true;
    for (const kind of kinds) this.#store.replace(kind, this.#staged.get(kind)!.values());
  }

  async stop(): Promise<void> {
    this.#started = false;
    this.#store.stop();
  }

  /** Adds or replaces an object (an update when it existed). */
  put(obj: ClusterObject): void {
    if (this.#started && this.#store.isSynced(obj.kind)) this.#store.upsert(obj);
    else this.#staged.get(obj.kind)!.set(keyOf(obj.meta), obj);
  }

  remove(kind: Kind, key: string): void {
    if (this.#started && this.#store.isSynced(kind)) this.#store.remove(kind, key);
    else this.#staged.get(kind)!.delete(key);
  }

  list(kind: Kind): ClusterObject[] {
    return this.#started && this.#store.isSynced(kind) ? this.#store.list(kind) : [...this.#staged.get(kind)!.values()];
  }
}
