// The IPAM storage port: the allocator sees only this. Implementations: disk-store.ts (host-local's
// on-disk layout, flock), testing/memory-store.ts (unit tests).
export interface Allocation {
  readonly ip: string;
  readonly containerId: string;
  readonly ifname: string;
}

export interface IpStore {
  /** exclusive lock around every read-modify-write (blocks until obtained) */
  lock(): Promise<void>;
  unlock(): Promise<void>;
  /** records ip for the attachment; false when the ip is taken already */
  reserve(a: Allocation, rangeSetIndex: number): Promise<boolean>;
  lastReserved(rangeSetIndex: number): Promise<string | undefined>;
  /** every allocation on record (entries whose owner cannot be read have empty containerId) */
  allocations(): Promise<Allocation[]>;
  release(ip: string): Promise<void>;
}
