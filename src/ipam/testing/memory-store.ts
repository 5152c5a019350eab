// An in-memory IpStore for unit tests of the allocator.
import type { Allocation, IpStore } from '../store.ts';

export class MemoryStore implements IpStore {
  readonly files = new Map<string, Allocation>();
  readonly last = new Map<number, string>();
  locked = false;

  async lock(): Promise<void> {
    if (this.locked) throw new Error('MemoryStore: already locked');
    this.locked = true;
  }
  async unlock(): Promise<void> {
    this.locked = false;
  }
  async reserve(a: Allocation, i: number): Promise<boolean> {
    if (this.files.has(a.ip)) return false;
    this.files.set(a.ip, a);
    this.last.set(i, a.ip);
    return true;
  }
  async lastReserved(i: number): Promise<string | undefined> {
    return this.last.get(i);
  }
  async allocations(): Promise<Allocation[]> {
    return [...this.files.values()];
  }
  async release(ip: string): Promise<void> {
    this.files.delete(ip);
  }
}
