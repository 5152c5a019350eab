// kdp-bridge config parsing and the pure `ip -batch` builders.
import t from 'tap';
import {
  gatewayLines,
  hostBatch,
  loadBridgeConfig,
  podBatch,
  podRoutes,
  stepsFailed,
  podAddresses,
  linkMaster,
} from '../../../src/cni/bridge.ts';
import { KdpError } from '../../../src/common/errors.ts';
import { containerIps, containerNets, portMappings } from '../../../src/cni/portmap.ts';
import type { CniRequest } from '../../../src/cnispec/types.ts';

const base = {
  cniVersion: '1.0.0',
  name: 'n',
  type: 'kdp-bridge',
  ipam: { type: 'kdp-host-local', subnet: '10.0.0.0/24' },
};

t.test('reference-compatible fields and defaults', async (t) => {
  const c = loadBridgeConfig(base);
  t.match(c, {
    bridge: 'cni0',
    isGateway: false,
    isDefaultGateway: false,
    ipMasq: false,
    hairpinMode: false,
    promiscMode: false,
    mtu: undefined,
    ipamType: 'kdp-host-local',
  });
  t.equal(loadBridgeConfig({ ...base, isDefaultGateway: true }).isGateway, true, 'isDefaultGateway implies isGateway');
  t.equal(
    loadBridgeConfig({ ...base, runtimeConfig: { mac: '0A:58:0A:00:00:02' } }).mac,
    '0a:58:0a:00:00:02',
    'mac capability',
  );
  t.equal(loadBridgeConfig(base, { MAC: '0a:58:0a:00:00:03' }).mac, '0a:58:0a:00:00:03', 'CNI_ARGS MAC=');
  t.throws(() => loadBridgeConfig({ ...base, hairpinMode: true, promiscMode: true }), {
    code: 'KDP_CNI_INVALID_CONFIG',
  });
  t.throws(() => loadBridgeConfig({ ...base, vlan: 5 }), { code: 'KDP_CNI_UNSUPPORTED_FIELD', message: /vlan=5/ });
  t.throws(() => loadBridgeConfig({ ...base, mtu: 70000 }), { code: 'KDP_CNI_INVALID_CONFIG' });
  t.throws(
    () => loadBridgeConfig({ ...base, bridge: 'kdp0123abcd' }),
    { code: 'KDP_CNI_INVALID_CONFIG' },
    'a bridge name that looks like our veths',
  );
  t.throws(() => loadBridgeConfig({ ...base, ipam: {} }), { message: /ipam.type/ });
});

t.test('host and pod batches', async (t) => {
  const cfg = loadBridgeConfig({ ...base, bridge: 'br0', isDefaultGateway: true, hairpinMode: true, mtu: 1400 });
  const req = { ifname: 'eth0', netns: '/run/netns/p' } as CniRequest;
  const ips = [
    { address: '10.0.0.5/24', gateway: '10.0.0.1' },
    { address: 'fd00::5/64', gateway: 'fd00::1' },
  ];
  t.same(hostBatch(cfg, req, 'kdp01234567', '02:00:00:00:00:01', '02:00:00:00:00:02', ips), [
    'link set br0 mtu 1400 up',
    'addr replace 10.0.0.1/24 dev br0',
    'addr replace fd00::1/64 dev br0 nodad',
    'link add kdp01234567 mtu 1400 address 02:00:00:00:00:01 type veth peer name eth0 mtu 1400 address 02:00:00:00:00:02 netns /run/netns/p',
    'link set kdp01234567 master br0 up',
    'link set kdp01234567 type bridge_slave hairpin on',
  ]);
  const routes = podRoutes(cfg, [{ dst: '192.0.2.0/24' }], ips);
  t.same(routes, [{ dst: '192.0.2.0/24' }, { dst: '0.0.0.0/0', gw: '10.0.0.1' }, { dst: '::/0', gw: 'fd00::1' }]);
  t.same(podBatch(cfg, 'eth0', ips, routes), [
    'addr add 10.0.0.5/24 dev eth0',
    'addr add fd00::5/64 dev eth0 nodad',
    'link set eth0 up',
    'route add 192.0.2.0/24 via 10.0.0.1 dev eth0',
    'route add 0.0.0.0/0 via 10.0.0.1 dev eth0',
    'route add ::/0 via fd00::1 dev eth0',
  ]);
  t.same(gatewayLines(cfg, [{ address: '10.0.0.5/24' }]), [], 'no gateway, no line');
});

t.test('portmap: mappings and container addresses from prevResult', async (t) => {
  t.same(portMappings({ runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'TCP' }] } }), [
    { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
  ]);
  t.same(portMappings({}), []);
  t.throws(() => portMappings({ runtimeConfig: { portMappings: [{ hostPort: 0, containerPort: 80 }] } }), {
    code: 'KDP_CNI_INVALID_CONFIG',
  });
  t.throws(
    () => portMappings({ runtimeConfig: { portMappings: [{ hostPort: 1, containerPort: 80, protocol: 'icmp' }] } }),
    { code: 'KDP_CNI_UNSUPPORTED_FIELD' },
  );
  const prev = {
    interfaces: [{ name: 'br0' }, { name: 'veth' }, { name: 'eth0', sandbox: '/run/netns/p' }],
    ips: [
      { address: '10.0.0.5/24', interface: 2 },
      { address: '10.9.9.9/24', interface: 0 },
    ],
  };
  t.same(containerIps(prev), ['10.0.0.5'], 'only addresses on a sandbox interface');
  t.same(containerNets(prev), ['10.0.0.0/24'], 'the network of each sandbox address (hostPort hairpin masquerade)');
  t.throws(() => containerNets({ ips: [{ address: '10.0.0.5/40' }] }), { code: 'KDP_CNI_INVALID_CONFIG' });
});

t.test('DEL/GC step failures keep their common code', async (t) => {
  const inv = new KdpError('KDP_CNI_INVALID_CONFIG', 'ipam: no ranges and no subnet');
  t.match(stepsFailed('DEL', [inv]), { code: 'KDP_CNI_INVALID_CONFIG', message: 'DEL: ipam: no ranges and no subnet' });
  t.match(stepsFailed('DEL', [inv, new KdpError('KDP_CNI_INVALID_CONFIG', 'x')]), { code: 'KDP_CNI_INVALID_CONFIG' });
  t.match(stepsFailed('GC', [inv, new Error('nft: boom')]), { code: 'KDP_CNI_FAILED', message: /^GC: .*; nft: boom$/ });
});

t.test('CHECK reads `ip addr show` and `ip link show` text (from the warm ip -batch children)', async (t) => {
  const addr = [
    '3: eth7@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default qlen 1000',
    '    link/ether b6:b5:ef:bc:e4:18 brd ff:ff:ff:ff:ff:ff link-netnsid 0',
    '    inet 10.1.2.3/24 brd 10.1.2.255 scope global eth7',
    '       valid_lft forever preferred_lft forever',
    '    inet6 fd00::5/64 scope global nodad ',
    '       valid_lft forever preferred_lft forever',
    '    inet6 fe80::b4b5:efff:febc:e418/64 scope link ',
  ].join('\n');
  t.same(podAddresses(addr), ['10.1.2.3/24', 'fd00::5/64', 'fe80::b4b5:efff:febc:e418/64']);
  t.same(podAddresses(''), []);
  const link =
    '4: kdp0000abcd@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master kdpb9 state UP mode DEFAULT group default qlen 1000\n    link/ether 5e:be:f2:91:5d:30 brd ff:ff:ff:ff:ff:ff link-netns p';
  t.equal(linkMaster(link), 'kdpb9');
  t.equal(linkMaster('4: kdp0000abcd@if3: <BROADCAST> mtu 1500 qdisc noop state DOWN mode DEFAULT'), undefined);
});
