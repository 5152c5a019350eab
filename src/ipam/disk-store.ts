// host-local's on-disk layout, so our IPAM and the reference one can share a data directory:
// <dataDir>/<network>/<ip> holds "<containerID>\r\n<ifname>" (created O_EXCL), last_reserved_ip.<i>
// holds the last address handed out per range set, and `lock` is flock'ed around every operation.
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { KdpError } from '../common/errors.ts';
import { lockFile } from '../common/flock.ts';
import type { FileLock, Locker } from '../common/flock.ts';
import type { Allocation, IpStore } from './store.ts';

const LAST = 'last_reserved_ip.';

export class DiskStore implements IpStore {
  readonly dir: string;
  #lock: FileLock | undefined;
  readonly #locker: Locker;

  constructor(dataDir: string, network: string, locker: Locker = lockFile) {
    this.dir = join(dataDir, network);
    this.#locker = locker;
  }

  async lock(): Promise<void> {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw new KdpError('KDP_CNI_IO', `creating IPAM directory ${this.dir}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.#lock = await this.#locker(join(this.dir, 'lock'));
  }

  async unlock(): Promise<void> {
    this.#lock?.release();
    this.#lock = undefined;
  }

  async reserve(a: Allocation, rangeSetIndex: number): Promise<boolean> {
    const file = join(this.dir, a.ip);
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw new KdpError('KDP_CNI_IO', `reserving ${a.ip}: ${(err as Error).message}`, { cause: err });
    }
    try {
      writeSync(fd, `${a.containerId}\r\n${a.ifname}`);
    } catch (err) {
      // a full disk: the file exists but names nobody; remove it so the address is not lost
      closeSync(fd);
      rmSync(file, { force: true });
      throw new KdpError('KDP_CNI_IO', `reserving ${a.ip}: ${(err as Error).message}`, { cause: err });
    }
    closeSync(fd);
    try {
      writeFileSync(join(this.dir, `${LAST}${rangeSetIndex}`), a.ip);
    } catch {
      // only a hint for round robin; the reservation itself is complete
    }
    return true;
  }

  async lastReserved(rangeSetIndex: number): Promise<string | undefined> {
    try {
      return readFileSync(join(this.dir, `${LAST}${rangeSetIndex}`), 'utf8').trim() || undefined;
    } catch {
      return undefined;
    }
  }

  async allocations(): Promise<Allocation[]> {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new KdpError('KDP_CNI_IO', `reading ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
    const out: Allocation[] = [];
    for (const name of names) {
      if (name === 'lock' || name.startsWith(LAST) || name.startsWith('.')) continue;
      let text: string;
      try {
        text = readFileSync(join(this.dir, name), 'utf8');
      } catch {
        continue;
      }
      const [id = '', ifname = ''] = text.trim().split(/\r?\n/);
      out.push({ ip: name, containerId: id.trim(), ifname: ifname.trim() });
    }
    return out;
  }

  async release(ip: string): Promise<void> {
    try {
      unlinkSync(join(this.dir, ip));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new KdpError('KDP_CNI_IO', `releasing ${ip}: ${(err as Error).message}`, { cause: err });
    }
  }
}
