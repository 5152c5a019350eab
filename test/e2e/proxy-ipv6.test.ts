// IPv6 through the kernel modes, for real: a dual-stack lab (pods get an IPv6 address beside their IPv4 one),
// an IPv6-only Service, `kdp proxy --ip-families ipv4,ipv6` in node-1. A pod reaches the IPv6 ClusterIP, the
// underlay reaches the NodePort on the node's IPv6 address, a Service without endpoints is refused at once (a TCP
// reset: an ICMPv6 port-unreachable reaches a connecting socket only after the SYN retry), and IPv4 keeps working.
import t from 'tap';
import { needsRoot } from '../helpers/gate.ts';
import { ProxyLab, manifest } from './proxy-harness.ts';
import type { TestPod } from '../helpers/pods.ts';

const v6Of = (p: TestPod) => p.node.podCidr6.replace(/::\/64$/, `::${p.ip4.split('.').pop()}`);

if (needsRoot(t)) {
  for (const mode of ['nftables', 'iptables']) {
    t.test(`IPv6 service traffic (${mode})`, async (t) => {
      const pl = await ProxyLab.create(t, mode);
      const { lab, n1 } = pl;
      const { a, b1, b2 } = pl.pods;
      // dual-stack pods on node-1: an IPv6 address and a default route via the node side of their veth
      for (const p of [a, b1, b2]) {
        const hostIf = `v${p.node.index}-${p.name}`.slice(0, 15);
        await lab.exec(n1.ns, ['ip', '-6', 'addr', 'add', 'fe80::1/64', 'dev', hostIf, 'nodad']);
        await lab.exec(n1.ns, ['ip', '-6', 'route', 'add', `${v6Of(p)}/128`, 'dev', hostIf]);
        await lab.exec(p.ns, ['ip', '-6', 'addr', 'add', `${v6Of(p)}/128`, 'dev', 'eth0', 'nodad']);
        await lab.exec(p.ns, ['ip', '-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0']);
      }
      await lab.exec(n1.ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
      // the service range routable from the node, as a real node's default route makes it (like the IPv4 harness)
      await lab.exec(n1.ns, ['ip', '-6', 'route', 'add', 'fd00:96::/112', 'via', lab.plan.underlayHost6]);
      const { writeFileSync } = await import('node:fs');
      const { join } = await import('node:path');
      writeFileSync(
        join(pl.dir, 'web6.json'),
        JSON.stringify(
          manifest({
            name: 'web6',
            type: 'NodePort',
            clusterIP: 'fd00:96::10',
            nodePort: 30096,
            ipv6: true,
            endpoints: [b1, b2].map((p) => ({ pod: p, address: v6Of(p) })),
          }),
        ),
      );
      writeFileSync(
        join(pl.dir, 'empty6.json'),
        JSON.stringify(manifest({ name: 'empty6', clusterIP: 'fd00:96::11', ipv6: true, endpoints: [] })),
      );
      pl.apply({ name: 'web4', clusterIP: '10.96.0.10', endpoints: [{ pod: b1 }] });
      await pl.startProxy([
        '--ip-families',
        'ipv4,ipv6',
        '--cluster-cidr',
        `198.19.0.0/16,${n1.podCidr6.replace('1::/64', '0::/48')}`,
      ]);
      t.teardown(() => pl.stopProxy());

      const seen = new Set<string>();
      for (let i = 0; i < 12; i++) {
        const r = await pl.http(a.ns, 'http://[fd00:96::10]/');
        t.ok(
          r.name === 'b1' || r.name === 'b2',
          `pod -> IPv6 ClusterIP answered by an endpoint (${r.name ?? r.error})`,
        );
        if (r.name) seen.add(r.name);
        if (i === 0)
          t.equal(
            r.client?.replace(/^\[|\]:\d+$|:\d+$/g, ''),
            v6Of(a),
            'the pod source address is kept (same-node, no masquerade)',
          );
      }
      t.same([...seen].sort(), ['b1', 'b2'], 'both IPv6 endpoints are used');
      const np = await pl.http(lab.underlay, `http://[${n1.ip6}]:30096/`);
      t.ok(
        np.name === 'b1' || np.name === 'b2',
        `underlay -> NodePort on the node's IPv6 address (${np.name ?? np.error})`,
      );
      const empty = await pl.connect(a.ns, 'fd00:96::11', 80);
      t.equal(empty, 'refused', `an IPv6 Service without endpoints is refused at once (${empty})`);
      t.equal((await pl.http(a.ns, 'http://10.96.0.10/')).name, 'b1', 'IPv4 keeps working beside it');
    });
  }
}
