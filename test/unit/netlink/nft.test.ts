// nft rule text for masquerade and hostPort, and finding tagged rules back in `nft -a list` output.
import t from 'tap';
import { attachmentHash, hostVethName, HOST_VETH_RE, ipIn, routeDevice } from '../../../src/netlink/links.ts';
import {
  comment,
  parseTagged,
  renderBase,
  renderDelete,
  renderMasq,
  renderPortMaps,
  tag,
} from '../../../src/netlink/nft.ts';

t.test('names derive from container id + ifname', async (t) => {
  const h = attachmentHash('abc', 'eth0');
  t.match(h, /^[0-9a-f]{16}$/);
  t.not(h, attachmentHash('abc', 'eth1'));
  t.equal(hostVethName('abc', 'eth0'), `kdp${h.slice(0, 8)}`);
  t.ok(HOST_VETH_RE.test(hostVethName('abc', 'eth0')));
  t.ok(hostVethName('x'.repeat(64), 'eth0').length <= 15, 'fits IFNAMSIZ');
});

t.test('golden rule text', async (t) => {
  const m = tag('m', '0123456789abcdef');
  t.same(renderBase()[0], 'add table inet kdp');
  t.same(renderMasq(m, 'net', ['10.0.0.5', 'fd00::5'], ['10.0.0.0/16', 'fd00::/48']), [
    'add rule inet kdp postrouting ip saddr 10.0.0.5 ip daddr != { 10.0.0.0/16, 224.0.0.0/4 } masquerade comment "kdp-m-0123456789abcdef net"',
    'add rule inet kdp postrouting ip6 saddr fd00::5 ip6 daddr != { fd00::/48, ff00::/8 } masquerade comment "kdp-m-0123456789abcdef net"',
  ]);
  const p = tag('p', '0123456789abcdef');
  const dnat4 = [
    'add rule inet kdp prerouting fib daddr type local meta nfproto ipv4 tcp dport 8080 dnat ip to 10.0.0.5:80 comment "kdp-p-0123456789abcdef net"',
    'add rule inet kdp output fib daddr type local meta nfproto ipv4 tcp dport 8080 dnat ip to 10.0.0.5:80 comment "kdp-p-0123456789abcdef net"',
  ];
  t.same(
    renderPortMaps(p, 'net', ['10.0.0.5'], [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]),
    [
      ...dnat4,
      'add rule inet kdp postrouting ip saddr 10.0.0.5 ip daddr 10.0.0.5 ct status dnat masquerade comment "kdp-p-0123456789abcdef net"',
      'add rule inet kdp postrouting ip saddr 127.0.0.0/8 ip daddr 10.0.0.5 ct status dnat masquerade comment "kdp-p-0123456789abcdef net"',
    ],
    'snat (default): hairpin and 127/8 masquerades follow the DNATs',
  );
  t.same(
    renderPortMaps(p, 'net', ['10.0.0.5'], [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }], false),
    dnat4,
    'snat false: DNAT only',
  );
  t.same(
    renderPortMaps(p, 'net', ['fd00::5'], [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]),
    [
      'add rule inet kdp prerouting fib daddr type local meta nfproto ipv6 tcp dport 8080 dnat ip6 to [fd00::5]:80 comment "kdp-p-0123456789abcdef net"',
      'add rule inet kdp output fib daddr type local ip6 daddr != ::1 meta nfproto ipv6 tcp dport 8080 dnat ip6 to [fd00::5]:80 comment "kdp-p-0123456789abcdef net"',
      'add rule inet kdp postrouting ip6 saddr fd00::5 ip6 daddr fd00::5 ct status dnat masquerade comment "kdp-p-0123456789abcdef net"',
    ],
    'IPv6: ::1 is never DNATed (no route_localnet), hairpin only',
  );
  t.same(
    renderPortMaps(p, 'net', ['10.0.0.5', 'fd00::5'], [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }], true, [
      '10.0.0.0/24',
      'fd00::/64',
    ]).filter((r) => r.includes('proto-dst')),
    [
      'add rule inet kdp postrouting ip saddr 10.0.0.0/24 ip daddr 10.0.0.5 tcp dport 80 ct original proto-dst 8080 ct status dnat masquerade comment "kdp-p-0123456789abcdef net"',
      'add rule inet kdp postrouting ip6 saddr fd00::/64 ip6 daddr fd00::5 tcp dport 80 ct original proto-dst 8080 ct status dnat masquerade comment "kdp-p-0123456789abcdef net"',
    ],
    'snat: hostPort traffic from the pod subnets is masqueraded (hairpin without bridge netfilter), per family',
  );
  t.same(
    renderPortMaps(p, 'net', ['10.0.0.5'], [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }], false, [
      '10.0.0.0/24',
    ]),
    dnat4,
    'snat false: no subnet masquerade either',
  );
  t.same(renderPortMaps(p, 'net', ['10.0.0.5'], []), [], 'no mappings, no rules');
  t.same(
    renderPortMaps(
      p,
      'net',
      ['fd00::5'],
      [{ hostPort: 53, containerPort: 5353, protocol: 'udp', hostIP: 'fd00::1' }],
    )[0],
    'add rule inet kdp prerouting ip6 daddr fd00::1 meta nfproto ipv6 udp dport 53 dnat ip6 to [fd00::5]:5353 comment "kdp-p-0123456789abcdef net"',
  );
  t.same(
    renderPortMaps(p, 'net', ['fd00::5'], [{ hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: '10.0.0.1' }]),
    [],
    'hostIP of the other family: no rule',
  );
  t.equal(comment('kdp-m-x', 'a b/c'), 'kdp-m-x a_b_c');
});

t.test('parseTagged finds chain, handle, tag and network', async (t) => {
  const listing = `table inet kdp { # handle 7
	chain postrouting { # handle 1
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.0.0.5 ip daddr != { 10.0.0.0/16, 224.0.0.0/4 } masquerade comment "kdp-m-0123456789abcdef net" # handle 4
		ip saddr 10.0.0.6 masquerade comment "someone else" # handle 5
	}
	chain prerouting { # handle 2
		fib daddr type local meta nfproto ipv4 tcp dport 8080 dnat ip to 10.0.0.5:80 comment "kdp-p-fedcba9876543210 other" # handle 9
	}
}`;
  const rules = parseTagged(listing);
  t.same(rules, [
    {
      chain: 'postrouting',
      handle: 4,
      tag: 'kdp-m-0123456789abcdef',
      kind: 'm',
      hash: '0123456789abcdef',
      network: 'net',
    },
    {
      chain: 'prerouting',
      handle: 9,
      tag: 'kdp-p-fedcba9876543210',
      kind: 'p',
      hash: 'fedcba9876543210',
      network: 'other',
    },
  ]);
  t.same(renderDelete(rules), [
    'delete rule inet kdp postrouting handle 4',
    'delete rule inet kdp prerouting handle 9',
  ]);
});

t.test('routeDevice: longest prefix of /proc/net/route, then lowest metric; ipIn', async (t) => {
  const table = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth0\t00000000\t010012C6\t0003\t0\t0\t0\t00000000\t0\t0\t0',
    'kdpbr0\t000113C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
    'slow\t000113C6\t00000000\t0001\t0\t0\t5\t00FFFFFF\t0\t0\t0',
    'down\t050113C6\t00000000\t0000\t0\t0\t0\tFFFFFFFF\t0\t0\t0',
  ].join('\n');
  t.equal(
    routeDevice(table, '198.19.1.5'),
    'kdpbr0',
    '198.19.1.0/24 beats the default route and the higher metric; a down route is ignored',
  );
  t.equal(routeDevice(table, '8.8.8.8'), 'eth0', 'default route');
  t.equal(routeDevice(table.split('\n').slice(0, 1).join('\n'), '8.8.8.8'), undefined, 'empty table');
  t.equal(routeDevice('h\nbr0\tC6130100\t0\t0001\t0\t0\t0\tFFFFFF00', '198.19.1.9', false), 'br0', 'big-endian host');
  t.same(ipIn('/run/netns/pod-a'), ['ip', '-n', 'pod-a'], 'named netns: ip -n');
  t.same(ipIn('/var/run/netns/pod-a'), ['ip', '-n', 'pod-a']);
  t.same(ipIn('/proc/123/ns/net'), ['nsenter', '--net=/proc/123/ns/net', 'ip'], 'other paths: nsenter');
});
