// The allocation policy against the in-memory store (host-local's round-robin, gateway skipped,
// duplicates refused, exhaustion, requested IPs, release and GC).
import t from 'tap';
import { allocate, candidates, collect, release } from '../../../src/ipam/allocator.ts';
import { loadIpamConfig, parseRange } from '../../../src/ipam/config.ts';
import { formatIp } from '../../../src/ipam/ip.ts';
import { MemoryStore } from '../../../src/ipam/testing/memory-store.ts';

const cfg = (ipam: Record<string, unknown>, args: Record<string, string> = {}, extra: Record<string, unknown> = {}) =>
  loadIpamConfig({ cniVersion: '1.0.0', name: 'n', ipam: { type: 'kdp-host-local', ...ipam }, ...extra }, args);

t.test('round-robin over several ranges, wrapping, never the gateway', async (t) => {
  const set = [parseRange({ subnet: '10.0.0.0/29' }), parseRange({ subnet: '10.0.1.0/30' })];
  const all = [...candidates(set, undefined)].map((v) => formatIp({ family: 4, value: v }));
  t.same(all, ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6', '10.0.1.2']);
  const after = [...candidates(set, set[0]!.start + 4n)].map((v) => formatIp({ family: 4, value: v }));
  t.same(
    after,
    ['10.0.0.6', '10.0.1.2', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'],
    'starts after the last reserved, ends with it',
  );
});

t.test('allocate: one address per range set, round-robin after release, duplicates refused, exhaustion', async (t) => {
  const store = new MemoryStore();
  const c = cfg({ ranges: [[{ subnet: '10.0.0.0/29' }], [{ subnet: 'fd00::/125' }]] });
  const a = await allocate(c, store, 'c1', 'eth0');
  t.same(a, [
    { address: '10.0.0.2/29', gateway: '10.0.0.1' },
    { address: 'fd00::2/125', gateway: 'fd00::1' },
  ]);
  await t.rejects(allocate(c, store, 'c1', 'eth0'), { code: 'KDP_IPAM_CONFLICT', message: /duplicate allocation/ });
  t.same(
    (await allocate(c, store, 'c1', 'eth1')).map((x) => x.address),
    ['10.0.0.3/29', 'fd00::3/125'],
    'another ifname is another attachment',
  );
  t.same(await release(store, 'c1', 'eth0'), ['10.0.0.2', 'fd00::2']);
  t.same(await release(store, 'c1', 'eth0'), [], 'release is idempotent');
  t.same(
    (await allocate(c, store, 'c2', 'eth0'))[0]!.address,
    '10.0.0.4/29',
    'round-robin: a freed address is not reused at once',
  );
  for (const id of ['c3', 'c4']) await allocate(c, store, id, 'eth0');
  t.same((await allocate(c, store, 'c5', 'eth0'))[0]!.address, '10.0.0.2/29', 'wraps around to the freed address');
  await t.rejects(allocate(c, store, 'c6', 'eth0'), {
    code: 'KDP_IPAM_EXHAUSTED',
    message: /no IP addresses available in range set 0/,
  });
  t.equal(
    [...store.files.values()].filter((f) => f.containerId === 'c6').length,
    0,
    'a failed allocation keeps nothing (the v6 part is not reserved)',
  );
});

t.test('requested addresses: honoured, gateway and taken ones refused, out-of-range refused', async (t) => {
  const store = new MemoryStore();
  const c = (ip: string) => cfg({ subnet: '10.0.0.0/24' }, { IP: ip });
  t.same((await allocate(c('10.0.0.50'), store, 'a', 'eth0'))[0]!.address, '10.0.0.50/24');
  await t.rejects(allocate(c('10.0.0.50'), store, 'b', 'eth0'), {
    code: 'KDP_IPAM_CONFLICT',
    message: /not available/,
  });
  await t.rejects(allocate(c('10.0.0.1'), store, 'b', 'eth0'), { code: 'KDP_IPAM_CONFLICT', message: /gateway/ });
  await t.rejects(allocate(c('10.9.0.1'), store, 'b', 'eth0'), {
    code: 'KDP_IPAM_CONFLICT',
    message: /no configured range/,
  });
  t.same([...store.files.keys()], ['10.0.0.50'], 'failed requests reserved nothing');
  t.equal(store.last.get(0), '10.0.0.50');
});

t.test('collect keeps exactly the valid attachments', async (t) => {
  const store = new MemoryStore();
  const c = cfg({ subnet: '10.0.0.0/24' });
  for (const id of ['a', 'b', 'c']) await allocate(c, store, id, 'eth0');
  await store.reserve({ ip: '10.0.0.99', containerId: '', ifname: '' }, 0); // a file a crash left empty
  const gone = await collect(store, [{ containerID: 'b', ifname: 'eth0' }]);
  t.same(gone.sort(), ['10.0.0.2', '10.0.0.4', '10.0.0.99']);
  t.same(
    [...store.files.values()].map((f) => f.containerId),
    ['b'],
  );
});
