// Gateway address assignment (pure): requested addresses, the pool's hash + probe, stability across calls and
// controllers, release, exhaustion, previous (status) addresses.
import t from 'tap';
import { AddressPool, DEFAULT_GATEWAY_POOL } from '../../../../ingress/gateway/addresses.ts';
import type { AddressResult } from '../../../../ingress/gateway/addresses.ts';

const addr = (r: AddressResult | undefined): string => (r?.ok ? r.address : `!${r?.ok === false ? r.reason : '?'}`);

t.test('the default pool is 127.0.10.0/24 without its network and broadcast addresses', async (t) => {
  const p = new AddressPool();
  t.equal(p.cidr, DEFAULT_GATEWAY_POOL);
  t.ok(p.has('127.0.10.1'));
  t.ok(p.has('127.0.10.254'));
  t.notOk(p.has('127.0.10.0'));
  t.notOk(p.has('127.0.10.255'));
  t.notOk(p.has('127.0.11.1'));
  t.notOk(p.has('::1'));
});

t.test('a requested IPAddress wins and is not taken from the pool', async (t) => {
  const p = new AddressPool('127.0.10.0/30'); // two pool addresses: .1 and .2
  const r = p.assign([{ key: 'a/x', requested: '127.0.10.1' }, { key: 'a/y' }, { key: 'a/z', requested: '192.0.2.7' }]);
  t.same(r.get('a/x'), { ok: true, address: '127.0.10.1', fromPool: false });
  t.equal(addr(r.get('a/y')), '127.0.10.2', 'the pool skips the requested one');
  t.same(r.get('a/z'), { ok: true, address: '192.0.2.7', fromPool: false }, 'outside the pool is fine too');
  const bad = p.assign([{ key: 'a/x', requested: 'gw.example.com' }]).get('a/x');
  t.same(bad && !bad.ok && bad.reason, 'AddressNotUsable');
});

t.test('stable: same address on every call and on another controller seeing the same Gateways', async (t) => {
  const keys = ['default/one', 'default/two', 'prod/edge', 'prod/internal', 'x/y'];
  const p1 = new AddressPool();
  const first = p1.assign(keys.map((key) => ({ key })));
  const again = p1.assign([...keys].reverse().map((key) => ({ key })));
  const other = new AddressPool().assign(keys.map((key) => ({ key })));
  for (const k of keys) {
    t.equal(addr(again.get(k)), addr(first.get(k)), `${k} keeps its address`);
    t.equal(addr(other.get(k)), addr(first.get(k)), `${k} gets the same on another controller`);
  }
  t.equal(new Set(keys.map((k) => addr(first.get(k)))).size, keys.length, 'all different');
});

t.test('a Gateway keeps its address when others come and go (probe collisions included)', async (t) => {
  const p = new AddressPool('10.9.0.0/29'); // 6 addresses: plenty of collisions
  const r1 = p.assign([{ key: 'n/b' }]);
  const b = addr(r1.get('n/b'));
  const many = ['n/a', 'n/b', 'n/c', 'n/d', 'n/e'].map((key) => ({ key }));
  const r2 = p.assign(many);
  t.equal(addr(r2.get('n/b')), b, 'n/b kept its address although newcomers may hash onto it');
  t.equal(new Set(many.map((g) => addr(r2.get(g.key)))).size, 5);
  const r3 = p.assign(many.filter((g) => g.key !== 'n/a'));
  for (const g of many.slice(1)) t.equal(addr(r3.get(g.key)), addr(r2.get(g.key)), `${g.key} unmoved`);
  // a requested address taking n/b's moves n/b (the request wins)
  const r4 = p.assign([{ key: 'n/b' }, { key: 'n/z', requested: b }]);
  t.equal(addr(r4.get('n/z')), b);
  t.not(addr(r4.get('n/b')), b);
});

t.test('a removed Gateway frees its address', async (t) => {
  const p = new AddressPool('10.9.0.0/30'); // .1 .2
  p.assign([{ key: 'n/a' }, { key: 'n/b' }]);
  const full = p.assign([{ key: 'n/a' }, { key: 'n/b' }, { key: 'n/c' }]);
  const c = full.get('n/c');
  t.same(c && !c.ok && c.reason, 'AddressNotAssigned', 'pool exhausted');
  t.match(c && !c.ok ? c.message : '', /10\.9\.0\.0\/30 has no free address/);
  const freed = p.assign([{ key: 'n/b' }, { key: 'n/c' }]);
  t.ok(freed.get('n/c')?.ok, 'n/a gone: n/c gets its address');
  t.equal(addr(freed.get('n/c')), addr(full.get('n/a')));
});

t.test('a previous address (status.addresses after a restart) is kept when in the pool and free', async (t) => {
  const p = new AddressPool();
  const r = p.assign([
    { key: 'n/a', previous: '127.0.10.77' },
    { key: 'n/b', previous: '10.0.0.1' }, // not in the pool: a fresh one
    { key: 'n/c', previous: '127.0.10.77' }, // taken by n/a
  ]);
  t.equal(addr(r.get('n/a')), '127.0.10.77');
  t.ok(addr(r.get('n/b')).startsWith('127.0.10.'));
  t.not(addr(r.get('n/c')), '127.0.10.77');
});

t.test('IPv6 pools and bad CIDRs', async (t) => {
  const p = new AddressPool('fd00:10::/120');
  const r = p.assign([{ key: 'n/a' }]);
  t.match(addr(r.get('n/a')), /^fd00:10::[0-9a-f]{1,2}$/);
  t.ok(p.has(addr(r.get('n/a'))));
  t.throws(() => new AddressPool('127.0.10.0'), { code: 'KDP_CNI_INVALID_CONFIG' });
  t.throws(() => new AddressPool('nonsense/8'));
});
