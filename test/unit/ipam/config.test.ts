import t from 'tap';
import { loadIpamConfig, parseRange } from '../../../src/ipam/config.ts';
import { formatIp } from '../../../src/ipam/ip.ts';

const conf = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0',
  name: 'net',
  ipam: { type: 'kdp-host-local', ...ipam },
  ...extra,
});
const ip4 = (v: bigint) => formatIp({ family: 4, value: v });

t.test('range defaults follow host-local: gateway .1, start .1 (gateway skipped), end broadcast-1', async (t) => {
  const r = parseRange({ subnet: '10.1.0.0/24' });
  t.same([ip4(r.gateway), ip4(r.start), ip4(r.end)], ['10.1.0.1', '10.1.0.1', '10.1.0.254']);
  const v6 = parseRange({ subnet: 'fd00::/120' });
  t.equal(formatIp({ family: 6, value: v6.end }), 'fd00::ff', 'IPv6 has no broadcast');
  const custom = parseRange({
    subnet: '10.1.0.0/24',
    rangeStart: '10.1.0.100',
    rangeEnd: '10.1.0.110',
    gateway: '10.1.0.254',
  });
  t.same([ip4(custom.start), ip4(custom.end), ip4(custom.gateway)], ['10.1.0.100', '10.1.0.110', '10.1.0.254']);
});

t.test('invalid ranges are config errors (CNI code 7)', async (t) => {
  const bad: [string, Record<string, unknown>][] = [
    ['/31 too small', { subnet: '10.0.0.0/31' }],
    ['/32 too small', { subnet: '10.0.0.0/32' }],
    ['host bits set', { subnet: '10.0.0.1/24' }],
    ['rangeStart outside', { subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }],
    ['start after end', { subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.5' }],
    ['gateway of the other family', { subnet: '10.0.0.0/24', gateway: 'fd00::1' }],
  ];
  for (const [what, r] of bad) t.throws(() => parseRange(r), { code: 'KDP_CNI_INVALID_CONFIG' }, what);
  t.throws(() => loadIpamConfig(conf({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.0.0.128/25' }]] })), {
    code: 'KDP_CNI_INVALID_CONFIG',
    message: /overlap/,
  });
  t.throws(() => loadIpamConfig(conf({ ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] })), {
    message: /mixes/,
  });
  t.throws(() => loadIpamConfig(conf({})), { message: /no ranges and no subnet/ });
  t.throws(() => loadIpamConfig({ cniVersion: '1.0.0', name: '../x', ipam: { subnet: '10.0.0.0/24' } }), {
    message: /valid name/,
  });
});

t.test('legacy subnet, dual-stack range sets, routes, dataDir, requested IPs from three places', async (t) => {
  const legacy = loadIpamConfig(conf({ subnet: '10.2.0.0/16', routes: [{ dst: '0.0.0.0/0' }] }));
  t.equal(legacy.rangeSets.length, 1);
  t.same(legacy.routes, [{ dst: '0.0.0.0/0' }]);
  t.equal(legacy.dataDir, '/var/lib/cni/networks');
  const dual = loadIpamConfig(
    conf(
      { ranges: [[{ subnet: '10.2.0.0/24' }], [{ subnet: 'fd00::/64' }]], dataDir: '/tmp/x' },
      { args: { cni: { ips: ['10.2.0.9'] } }, runtimeConfig: { ips: ['fd00::9/64'] } },
    ),
    { IP: '10.2.0.10' },
  );
  t.equal(dual.rangeSets.length, 2);
  t.same(dual.requested.map((i) => formatIp(i)).sort(), ['10.2.0.10', '10.2.0.9', 'fd00::9']);
  const override = loadIpamConfig(
    conf({ subnet: '10.2.0.0/24' }, { runtimeConfig: { ipRanges: [[{ subnet: '10.9.0.0/24' }]] } }),
  );
  t.equal(ip4(override.rangeSets[0]![0]!.gateway), '10.9.0.1', 'runtimeConfig.ipRanges replaces ranges');
});
