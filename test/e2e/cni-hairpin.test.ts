// hairpinMode and hostPort from the node itself, for real in a 1-node lab:
// - a pod reaches its own hostPort through the node address (hairpin SNAT of kdp-portmap, masqueraded to
//   the bridge address: without it the pod would answer itself and the connection would hang);
// - a pod reaches itself through a Service-like virtual IP DNATed on the node with br_netfilter (bridged
//   DNAT sends the frame back out the port it came in on: only hairpin mode on the veth port allows that;
//   shown by switching it off and on);
// - 127.0.0.1:hostPort from the node namespace (route_localnet on the bridge, set inside the lab node
//   only, and the 127/8 masquerade), and ::1 is left alone.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import { freshPlugins, hairpinConflist, waitFor } from '../../src/cni/testing/fixtures.ts';
import type { CniResult } from '../../src/cnispec/types.ts';

const ECHO = fileURLToPath(new URL('../../src/lab/echo-server.ts', import.meta.url));

if (needsRoot(t)) {
  const bin = await freshPlugins();
  const data = mkdtempSync(join(tmpdir(), 'kdp-cni-hairpin-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  t.teardown(() => rmSync(data, { recursive: true, force: true }));

  t.test('hairpin and 127.0.0.1:hostPort', async (t) => {
    const rootLocalnet = readFileSync('/proc/sys/net/ipv4/conf/all/route_localnet', 'utf8');
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const n = lab.nodes[0]!;
    const list = hairpinConflist(
      'hairpin',
      'kdphp0',
      [n.podCidr4, n.podCidr6],
      [lab.plan.clusterCidr4, lab.plan.clusterCidr6],
      data,
    );
    const d = new CniDriver({ path: [bin], nodeNs: n.ns });
    const nsA = await lab.addNamespace('hairpin-a');
    const maps = { portMappings: [{ hostPort: 31080, containerPort: 8080, protocol: 'tcp' }] };
    const att = { containerID: 'hairpin-a', ifname: 'eth0', netns: `/run/netns/${nsA}` };
    const server = lab.spawn(nsA, [process.execPath, ECHO, '--name', 'pod-a', '--http', '8080']);
    const res: CniResult = await d.add(list, att, maps);
    t.teardown(() => d.del(list, att));
    const a4 = res.ips!.find((i) => !i.address.includes(':'))!;
    const a6 = res.ips!.find((i) => i.address.includes(':'))!;
    const [ip4, gw4] = [a4.address.split('/')[0]!, a4.gateway!];
    const hostVeth = res.interfaces![1]!.name;
    await waitFor('the echo server', () => server.output().includes('ready'), 120_000);

    const port = JSON.parse((await lab.exec(n.ns, ['bridge', '-d', '-j', 'link', 'show', 'dev', hostVeth])).stdout) as {
      hairpin?: boolean;
    }[];
    t.equal(port[0]?.hairpin, true, `hairpin is on for bridge port ${hostVeth}`);

    const get = async (ns: string, url: string) => {
      const r = await lab.exec(ns, ['curl', '-sS', '--max-time', '5', '-g', url], { allowFailure: true });
      return r.code === 0
        ? (JSON.parse(r.stdout) as { name: string; client: string })
        : { name: `curl exit ${r.code}: ${r.stderr.trim()}`, client: '' };
    };
    const clientIp = (c: string) => c.replace(/^::ffff:/, '').replace(/:\d+$/, '');

    // 1. hairpin hostPort: the pod -> node address:31080 -> DNAT back to itself
    const self = await get(nsA, `http://${n.ip4}:31080/`);
    t.same(
      [self.name, clientIp(self.client)],
      ['pod-a', gw4],
      'the pod reaches its own hostPort through the node address, masqueraded to the bridge address',
    );

    // 2. hairpin through a Service-like VIP, DNATed by a test-owned table (kube-proxy's role, with its
    //    hairpin masquerade) inside the lab node, with br_netfilter on in that namespace: bridged DNAT
    await lab.exec(n.ns, ['sysctl', '-q', '-w', 'net.bridge.bridge-nf-call-iptables=1']);
    const svc = [
      'table ip kdptestsvc {',
      '  chain pre { type nat hook prerouting priority dstnat - 5; policy accept;',
      `    ip daddr 10.96.0.10 tcp dport 80 dnat to ${ip4}:8080`,
      '  }',
      '  chain post { type nat hook postrouting priority srcnat - 5; policy accept;',
      `    ip saddr ${ip4} ip daddr ${ip4} ct status dnat masquerade`,
      '  }',
      '}',
    ].join('\n');
    await lab.exec(n.ns, ['nft', '-f', '-'], { input: svc + '\n' });
    // the pod needs a route to the VIP: its default route via the bridge gateway
    const viaSvc = await get(nsA, 'http://10.96.0.10/');
    t.same(
      [viaSvc.name, clientIp(viaSvc.client)],
      ['pod-a', gw4],
      'the pod reaches itself through the virtual IP (bridged DNAT, hairpin port)',
    );
    await lab.exec(n.ns, ['ip', 'link', 'set', hostVeth, 'type', 'bridge_slave', 'hairpin', 'off']);
    const noHairpin = await lab.exec(nsA, ['curl', '-sS', '--max-time', '2', 'http://10.96.0.10/'], {
      allowFailure: true,
    });
    t.not(
      noHairpin.code,
      0,
      'with hairpin off on the port, the same request fails (the bridge will not send a frame back out its ingress port)',
    );
    await lab.exec(n.ns, ['ip', 'link', 'set', hostVeth, 'type', 'bridge_slave', 'hairpin', 'on']);
    t.equal((await get(nsA, 'http://10.96.0.10/')).name, 'pod-a', 'and works again with hairpin on');
    await lab.exec(n.ns, ['nft', 'delete', 'table', 'ip', 'kdptestsvc']);

    // 3. 127.0.0.1:hostPort from the node namespace
    const lo = await get(n.ns, 'http://127.0.0.1:31080/');
    t.same(
      [lo.name, clientIp(lo.client)],
      ['pod-a', gw4],
      '127.0.0.1:31080 in the node reaches the pod, masqueraded to the bridge address',
    );
    const localnet = await lab.exec(n.ns, ['cat', '/proc/sys/net/ipv4/conf/kdphp0/route_localnet']);
    t.equal(localnet.stdout.trim(), '1', 'route_localnet is on for the bridge inside the lab node');
    t.equal(
      readFileSync('/proc/sys/net/ipv4/conf/all/route_localnet', 'utf8'),
      rootLocalnet,
      'the root namespace route_localnet is unchanged',
    );
    const node = await get(n.ns, `http://${n.ip4}:31080/`);
    t.equal(node.name, 'pod-a', 'the node address works from the node too');
    const six = await get(n.ns, `http://[${n.ip6}]:31080/`);
    t.equal(six.name, 'pod-a', `the node IPv6 address too (to ${a6.address})`);
    const v6lo = await lab.exec(n.ns, ['curl', '-sS', '--max-time', '2', '-g', 'http://[::1]:31080/'], {
      allowFailure: true,
    });
    t.not(v6lo.code, 0, '[::1]:31080 is not DNATed (IPv6 has no route_localnet)');

    // DEL removes the hairpin and 127/8 masquerades with the DNATs
    const del = await d.del(list, att);
    t.same(
      del.map((r) => r.code),
      [0, 0],
      'DEL',
    );
    const rules = await lab.exec(n.ns, ['nft', 'list', 'table', 'inet', 'kdp']);
    t.notMatch(rules.stdout, /kdp-[mp]-/, 'no tagged rule left');
    const gone = await lab.exec(n.ns, ['curl', '-sS', '--max-time', '2', 'http://127.0.0.1:31080/'], {
      allowFailure: true,
    });
    t.not(gone.code, 0, '127.0.0.1:31080 is gone after DEL');
  });
}
