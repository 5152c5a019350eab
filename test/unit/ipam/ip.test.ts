import t from 'tap';
import {
  contains,
  formatIp,
  formatNetwork,
  lastAddress,
  network,
  parseCidr,
  parseIp,
  tryParseIp,
} from '../../../src/ipam/ip.ts';

t.test('IPv4 and IPv6 parse and format round-trip (RFC 5952 for IPv6)', async (t) => {
  for (const [input, out] of [
    ['10.1.2.3', '10.1.2.3'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['fd00:198:19:1::2', 'fd00:198:19:1::2'],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8::ffff:10.0.0.1', '2001:db8::ffff:a00:1'],
  ]) {
    t.equal(formatIp(parseIp(input!)), out, `${input} -> ${out}`);
  }
  for (const bad of ['1.2.3', '1.2.3.256', '01.2.3.4', 'fd00::1::2', '1:2:3:4:5:6:7:8:9', 'x', '', '1.2.3.4.5']) {
    t.equal(tryParseIp(bad), undefined, `${JSON.stringify(bad)} is not an address`);
  }
});

t.test('CIDRs: network, last address, containment', async (t) => {
  const c = parseCidr('198.19.1.77/24');
  t.equal(formatNetwork(c), '198.19.1.0/24');
  t.equal(formatIp({ family: 4, value: lastAddress(c) }), '198.19.1.255');
  t.ok(contains(c, parseIp('198.19.1.254')));
  t.notOk(contains(c, parseIp('198.19.2.1')));
  t.notOk(contains(c, parseIp('fd00::1')), 'families never mix');
  const v6 = parseCidr('fd00:198:19:1::/64');
  t.equal(network(v6), v6.ip);
  t.equal(formatIp({ family: 6, value: lastAddress(v6) }), 'fd00:198:19:1:ffff:ffff:ffff:ffff');
  t.throws(() => parseCidr('10.0.0.0/33'), { code: 'KDP_CNI_INVALID_CONFIG' });
  t.throws(() => parseCidr('10.0.0.0'), { code: 'KDP_CNI_INVALID_CONFIG' });
});
