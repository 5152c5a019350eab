// Slots of the shared endpoint maps (see render.ts): each service port's endpoint list owns one slot,
// i.e. one block of keys in one of the `endpoints-N` maps. The backend keeps one allocator per table so
// a service port keeps its slot while it exists (a change to its endpoints then rewrites only its map
// elements). A released slot becomes free only at `commit()`, after the transaction that stopped using
// it, so one transaction never deletes and re-adds the same key for two different services.
import type { SlotOf } from './render.ts';

export class SlotAllocator {
  readonly #byKey = new Map<string, number>();
  /** free slots below `#next`, lowest first */
  #free: number[] = [];
  #next = 0;
  #pending: string[] = [];

  /** The slot of `key`, allocated on first use. */
  readonly slotOf: SlotOf = (key) => {
    let s = this.#byKey.get(key);
    if (s === undefined) {
      s = this.#free.length > 0 ? this.#free.shift()! : this.#next++;
      this.#byKey.set(key, s);
    }
    return s;
  };

  /** The slot `key` holds; throws when it holds none (rendering again what the kernel has must not allocate). */
  readonly heldSlot: SlotOf = (key) => {
    const s = this.#byKey.get(key);
    if (s === undefined) throw new Error(`slot ${key} is not allocated`);
    return s;
  };

  /** `key` is no longer used once the current transaction is applied. */
  release(key: string): void {
    this.#pending.push(key);
  }

  /** The transaction went through: released keys give their slots back. */
  commit(): void {
    for (const key of this.#pending) {
      const s = this.#byKey.get(key);
      if (s === undefined) continue;
      this.#byKey.delete(key);
      this.#free.push(s);
    }
    this.#pending = [];
    this.#free.sort((a, b) => a - b);
  }
}
