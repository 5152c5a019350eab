// Recording what a cluster-state source (or a bare Store) delivers through watch(), for the tests of the
// sources themselves: a StoreListener for some kinds that turns changed(kind, key, previous, current) into
// add(obj) / update(previous, current) / delete(last) calls typed by kind, and notes every call whose
// envelope is malformed (a kind it did not declare, an object of another kind, a key that is not the
// object's, neither previous nor current) so a test can assert there is none.
import type { StoreListener } from '../../src/k8s/store.ts';
import type { ClusterObject, Kind, ObjectOf } from '../../src/model/types.ts';
import { keyOf } from '../../src/model/types.ts';

export interface Callbacks<K extends Kind> {
  add?(obj: ObjectOf<K>): void;
  update?(previous: ObjectOf<K>, current: ObjectOf<K>): void;
  delete?(last: ObjectOf<K>): void;
  synced?(kind: K): void;
}

export interface RecordingListener extends StoreListener {
  /** calls that broke the listener envelope, one line each (empty when the source behaved) */
  readonly malformed: string[];
}

/** Checks one changed() call's envelope; returns what is wrong with it, or undefined. */
export function envelopeProblem(
  kinds: readonly Kind[],
  kind: Kind,
  key: string,
  previous: ClusterObject | undefined,
  current: ClusterObject | undefined,
): string | undefined {
  if (!kinds.includes(kind)) return `${kind} ${key}: a kind the listener did not declare`;
  if (previous === undefined && current === undefined) return `${kind} ${key}: neither previous nor current`;
  for (const o of [previous, current]) {
    if (o === undefined) continue;
    if (o.kind !== kind) return `${kind} ${key}: carries a ${o.kind}`;
    if (keyOf(o.meta) !== key) return `${kind} ${key}: carries the object ${keyOf(o.meta)}`;
  }
  return undefined;
}

/** A StoreListener for `kinds` calling `cb` per change; pass it to source.watch() before start(). */
export function listener<K extends Kind>(kinds: readonly K[], cb: Callbacks<K>): RecordingListener {
  const malformed: string[] = [];
  return {
    kinds,
    malformed,
    changed(kind, key, previous, current) {
      const problem = envelopeProblem(kinds, kind, key, previous, current);
      if (problem) {
        malformed.push(problem);
        return;
      }
      if (previous === undefined) cb.add?.(current as ObjectOf<K>);
      else if (current === undefined) cb.delete?.(previous as ObjectOf<K>);
      else cb.update?.(previous as ObjectOf<K>, current as ObjectOf<K>);
    },
    synced(kind) {
      if (!(kinds as readonly Kind[]).includes(kind))
        malformed.push(`${kind}: synced for a kind the listener did not declare`);
      else cb.synced?.(kind as K);
    },
  };
}
