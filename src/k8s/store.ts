// The store every source shares: the last converted object per (kind, key), the one copy consumers read
// (StoreView, with secondary indexes), and the delivery of changes to listeners with the contract of
// source.ts. A source only says "this is the object now" (upsert), "it is gone" (remove) or "this is the
// whole list" (replace, after a list or relist); the store turns that into changed(kind, key, previous,
// current) calls (added: no previous; deleted: no current), drops updates that change nothing the model
// carries (resourceVersion aside), never adds a key twice or deletes a key it does not hold, and tells
// synced(kind) once per kind.
import type { ClusterObject, Kind, ObjectOf } from '../model/types.ts';
import { KINDS, keyOf } from '../model/types.ts';
import type { Logger } from '../common/log.ts';
import { errorMessage } from '../common/errors.ts';

/** Deep equality of plain model values (objects, arrays, primitives), optionally ignoring one meta field. */
function sameModel(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameModel(a[i], bb[i])) return false;
    return true;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  if (ak.length !== bk.length) return false;
  for (const k of ak) if (!sameModel(ao[k], bo[k])) return false;
  return true;
}

/** Equal in everything a consumer can act on: resourceVersion changes alone are no-ops. */
export function sameObject(a: ClusterObject, b: ClusterObject): boolean {
  if (a.kind !== b.kind) return false;
  return sameModel(
    { ...a, meta: { ...a.meta, resourceVersion: '' } },
    { ...b, meta: { ...b.meta, resourceVersion: '' } },
  );
}

/**
 * A read-only view of the store: the one copy of every watched object in a process. Consumers read it
 * (the controller kernel hands it to every reconcile) instead of keeping their own mirror.
 */
export interface StoreView {
  get<K extends Kind>(kind: K, key: string): ObjectOf<K> | undefined;
  /** every object of a kind, in no particular order */
  list<K extends Kind>(kind: K): readonly ObjectOf<K>[];
  /** objects of `kind` whose index `name` yields `value` (the index must have been added: addIndex) */
  byIndex<K extends Kind>(kind: K, name: string, value: string): readonly ObjectOf<K>[];
  isSynced(kind: Kind): boolean;
}

/** A secondary index (client-go's Indexer): the values an object is found under. */
export type IndexFn<K extends Kind = Kind> = (obj: ObjectOf<K>) => readonly string[];

/** Object-level changes of the kinds a listener declared (the kernel's intake). */
export interface StoreListener {
  readonly kinds: readonly Kind[];
  /** `previous` undefined: added; `current` undefined: deleted */
  changed(kind: Kind, key: string, previous: ClusterObject | undefined, current: ClusterObject | undefined): void;
  synced(kind: Kind): void;
}

interface Index {
  readonly fn: IndexFn;
  /** index value -> object key -> object */
  readonly buckets: Map<string, Map<string, ClusterObject>>;
}

export class Store implements StoreView {
  readonly #objects = new Map<Kind, Map<string, ClusterObject>>(KINDS.map((k) => [k, new Map()]));
  readonly #synced = new Set<Kind>();
  readonly #listeners = new Set<StoreListener>();
  readonly #indexes = new Map<Kind, Map<string, Index>>();
  readonly #log: Logger;
  #stopped = false;

  constructor(opts: { log: Logger }) {
    this.#log = opts.log;
  }

  /** Registers a listener for object changes of its kinds (the controller kernel); returns the unsubscribe. */
  watch(l: StoreListener): () => void {
    this.#listeners.add(l);
    return () => {
      this.#listeners.delete(l);
    };
  }

  /**
   * Adds a secondary index (idempotent by name: the first definition wins, so two consumers that need the
   * same index share it). Objects already held are indexed at once.
   */
  addIndex<K extends Kind>(kind: K, name: string, fn: IndexFn<K>): void {
    let byName = this.#indexes.get(kind);
    if (!byName) this.#indexes.set(kind, (byName = new Map()));
    if (byName.has(name)) return;
    const idx: Index = { fn: fn as unknown as IndexFn, buckets: new Map() };
    byName.set(name, idx);
    for (const [key, obj] of this.#objects.get(kind)!) this.#indexAdd(idx, key, obj);
  }

  byIndex<K extends Kind>(kind: K, name: string, value: string): readonly ObjectOf<K>[] {
    const idx = this.#indexes.get(kind)?.get(name);
    if (!idx) throw new Error(`no index ${name} on ${kind}`);
    const b = idx.buckets.get(value);
    return b ? ([...b.values()] as ObjectOf<K>[]) : [];
  }

  /** Kinds at least one listener declared: the only ones a source needs to watch. */
  wantedKinds(): Kind[] {
    return KINDS.filter((k) => [...this.#listeners].some((l) => l.kinds.includes(k)));
  }

  /** No listener is called after stop(). */
  stop(): void {
    this.#stopped = true;
  }

  get<K extends Kind>(kind: K, key: string): ObjectOf<K> | undefined {
    return this.#objects.get(kind)!.get(key) as ObjectOf<K> | undefined;
  }

  list<K extends Kind>(kind: K): ObjectOf<K>[] {
    return [...this.#objects.get(kind)!.values()] as ObjectOf<K>[];
  }

  isSynced(kind: Kind): boolean {
    return this.#synced.has(kind);
  }

  /** The object as it is now: an add, an update (unless nothing changed) or nothing. */
  upsert(obj: ClusterObject): void {
    const m = this.#objects.get(obj.kind)!;
    const key = keyOf(obj.meta);
    const old = m.get(key);
    // a no-op keeps the held object, so the next update's `previous` is exactly what listeners last saw
    if (old !== undefined && sameObject(old, obj)) return;
    m.set(key, obj);
    this.#reindex(obj.kind, key, old, obj);
    this.#emit(obj.kind, key, old, obj);
  }

  /** The object is gone: a delete with the last state we held as previous (nothing when we held none). */
  remove(kind: Kind, key: string): void {
    const m = this.#objects.get(kind)!;
    const old = m.get(key);
    if (old === undefined) return;
    m.delete(key);
    this.#reindex(kind, key, old, undefined);
    this.#emit(kind, key, old, undefined);
  }

  /**
   * The complete current list of one kind (initial list, relist, manifests reload): deletes what is no longer
   * there, then upserts the rest. Marks the kind synced (and tells listeners) the first time.
   */
  replace(kind: Kind, objs: Iterable<ClusterObject>): void {
    const incoming = new Map<string, ClusterObject>();
    for (const o of objs) incoming.set(keyOf(o.meta), o);
    const m = this.#objects.get(kind)!;
    for (const key of [...m.keys()]) if (!incoming.has(key)) this.remove(kind, key);
    for (const o of incoming.values()) this.upsert(o);
    this.markSynced(kind);
  }

  markSynced(kind: Kind): void {
    if (this.#synced.has(kind)) return;
    this.#synced.add(kind);
    if (this.#stopped) return;
    for (const l of this.#listeners) {
      if (!l.kinds.includes(kind)) continue;
      try {
        l.synced(kind);
      } catch (err) {
        this.#log.error({ err: errorMessage(err), kind }, 'a synced listener threw; continuing');
      }
    }
  }

  #indexAdd(idx: Index, key: string, obj: ClusterObject): void {
    for (const v of idx.fn(obj)) {
      let b = idx.buckets.get(v);
      if (!b) idx.buckets.set(v, (b = new Map()));
      b.set(key, obj);
    }
  }

  #reindex(kind: Kind, key: string, old: ClusterObject | undefined, cur: ClusterObject | undefined): void {
    const byName = this.#indexes.get(kind);
    if (!byName) return;
    for (const idx of byName.values()) {
      if (old)
        for (const v of idx.fn(old)) {
          const b = idx.buckets.get(v);
          b?.delete(key);
          if (b?.size === 0) idx.buckets.delete(v);
        }
      if (cur) this.#indexAdd(idx, key, cur);
    }
  }

  #emit(kind: Kind, key: string, previous: ClusterObject | undefined, current: ClusterObject | undefined): void {
    if (this.#stopped) return;
    for (const l of this.#listeners) {
      if (!l.kinds.includes(kind)) continue;
      // a throwing consumer must not stop the watch or starve the other consumers
      try {
        l.changed(kind, key, previous, current);
      } catch (err) {
        const verb = previous === undefined ? 'Add' : current === undefined ? 'Delete' : 'Update';
        this.#log.error({ err: errorMessage(err), kind, key, verb }, 'a listener threw; continuing');
      }
    }
  }
}
