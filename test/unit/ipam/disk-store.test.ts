// The on-disk store in a temp dir: host-local's layout and the flock (the `flock` program locks our
// open file description; a second locker waits until the first closes it).
import t from 'tap';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskStore } from '../../../src/ipam/disk-store.ts';
import { lockFile } from '../../../src/common/flock.ts';

const dir = mkdtempSync(join(tmpdir(), 'kdp-ipam-unit-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('files named after the IP, "id\\r\\nifname", last_reserved_ip.N, lock', async (t) => {
  const s = new DiskStore(dir, 'net1');
  await s.lock();
  t.ok(await s.reserve({ ip: '10.0.0.2', containerId: 'abc', ifname: 'eth0' }, 0));
  t.notOk(
    await s.reserve({ ip: '10.0.0.2', containerId: 'other', ifname: 'eth0' }, 0),
    'O_EXCL: a taken address is refused',
  );
  t.ok(await s.reserve({ ip: 'fd00::2', containerId: 'abc', ifname: 'eth0' }, 1));
  await s.unlock();
  t.equal(readFileSync(join(dir, 'net1', '10.0.0.2'), 'utf8'), 'abc\r\neth0');
  t.equal(await s.lastReserved(0), '10.0.0.2');
  t.equal(await s.lastReserved(1), 'fd00::2');
  t.same(readdirSync(join(dir, 'net1')).sort(), [
    '10.0.0.2',
    'fd00::2',
    'last_reserved_ip.0',
    'last_reserved_ip.1',
    'lock',
  ]);
  writeFileSync(join(dir, 'net1', '10.0.0.9'), 'legacy-id');
  t.same((await s.allocations()).map((a) => [a.ip, a.containerId, a.ifname]).sort(), [
    ['10.0.0.2', 'abc', 'eth0'],
    ['10.0.0.9', 'legacy-id', ''],
    ['fd00::2', 'abc', 'eth0'],
  ]);
  await s.release('10.0.0.2');
  await s.release('10.0.0.2');
  t.same((await s.allocations()).length, 2, 'release is idempotent');
});

t.test('flock: exclusive, released on close', async (t) => {
  const path = join(dir, 'lockfile');
  const first = await lockFile(path);
  let second = false;
  const p = lockFile(path).then((l) => {
    second = true;
    return l;
  });
  await new Promise((r) => setTimeout(r, 300));
  t.notOk(second, 'the second locker waits');
  first.release();
  const l2 = await p;
  t.ok(second, 'and gets the lock once the first releases it');
  l2.release();
  await t.rejects(lockFile(join(dir, 'no-such-dir', 'lock')), { code: 'KDP_CNI_IO' });
});
