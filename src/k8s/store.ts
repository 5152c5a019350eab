// The store every source shares: the last converted object per (kind, key), and the dispatch of changes to
// subscribers with the handler contract of handlers.ts. A source only says "this is the object now"
// (upsert), "it is gone" (remove) or "this is the whole list" (replace, after a list or relist); the store
// turns that into Add / Update(old, new) / Delete calls, drops updates that change nothing the model
// carries (resourceVersion aside), and never adds a key twice or deletes a key it does not hold.
import type { ClusterObject, Kind } from '../model/types.ts';
import { KINDS, keyOf } from '../model/types.ts';
import type { Logger } from '../common/log.ts';
import { errorMessage } from '../common/errors.ts';
import { dispatch, dispatchSynced, handlesKind } from './handlers.ts';
import type { Handlers } from './handlers.ts';

/** Deep equality of plain model values (objects, arrays, primitives), optionally ignoring one meta field. */
export function sameModel(a: unknown, b: unknown): boolean {
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

export class Store {
  readonly #objects = new Map<Kind, Map<string, ClusterObject>>(KINDS.map((k) => [k, new Map()]));
  readonly #synced = new Set<Kind>();
  readonly #subs = new Set<Handlers>();
  readonly #log: Logger;
  #stopped = false;

  constructor(opts: { log: Logger }) {
    this.#log = opts.log;
  }

  subscribe(h: Handlers): () => void {
    this.#subs.add(h);
    return () => {
      this.#subs.delete(h);
    };
  }

  /** Kinds at least one subscriber handles: the only ones a source needs to watch. */
  wantedKinds(): Kind[] {
    return KINDS.filter((k) => [...this.#subs].some((h) => handlesKind(h, k)));
  }

  /** No handler is called after stop(). */
  stop(): void {
    this.#stopped = true;
  }

  get(kind: Kind, key: string): ClusterObject | undefined {
    return this.#objects.get(kind)!.get(key);
  }

  list(kind: Kind): ClusterObject[] {
    return [...this.#objects.get(kind)!.values()];
  }

  isSynced(kind: Kind): boolean {
    return this.#synced.has(kind);
  }

  /** The object as it is now: an Add, an Update (unless nothing changed) or nothing. */
  upsert(obj: ClusterObject): void {
    const m = this.#objects.get(obj.kind)!;
    const key = keyOf(obj.meta);
    const old = m.get(key);
    // a no-op keeps the held object, so the next update's `old` is exactly what consumers last saw
    if (old !== undefined && sameObject(old, obj)) return;
    m.set(key, obj);
    if (old === undefined) this.#emit('Add', obj);
    else this.#emit('Update', obj, old);
  }

  /** The object is gone: a Delete with the last state we held (nothing when we held none). */
  remove(kind: Kind, key: string): void {
    const m = this.#objects.get(kind)!;
    const old = m.get(key);
    if (old === undefined) return;
    m.delete(key);
    this.#emit('Delete', old);
  }

  /**
   * The complete current list of one kind (initial list, relist, manifests reload): deletes what is no longer
   * there, then upserts the rest. Marks the kind synced (and tells subscribers) the first time.
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
    for (const h of this.#subs) {
      if (!handlesKind(h, kind)) continue;
      try {
        dispatchSynced(h, kind);
      } catch (err) {
        this.#log.error({ err: errorMessage(err), kind }, 'a synced handler threw; continuing');
      }
    }
  }

  #emit(verb: 'Add' | 'Update' | 'Delete', obj: ClusterObject, old?: ClusterObject): void {
    if (this.#stopped) return;
    for (const h of this.#subs) {
      // a throwing consumer must not stop the watch or starve the other consumers
      try {
        dispatch(h, verb, obj, old);
      } catch (err) {
        this.#log.error(
          { err: errorMessage(err), kind: obj.kind, key: keyOf(obj.meta), verb },
          'a handler threw; continuing',
        );
      }
    }
  }
}
