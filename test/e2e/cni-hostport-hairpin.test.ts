// Pod B -> gateway:hostPort (and node address:hostPort) of pod A on the same bridge, with and without
// bridge netfilter. After the hostPort DNAT, A's reply goes to B on the same bridge: with
// bridge-nf-call-iptables=0 (a node without br_netfilter) it is bridged straight back, never un-NATed, and B
// drops it. kdp-portmap therefore masquerades hostPort traffic from the pod's own subnet (as the reference
// portmap does with snat), so the reply comes back through the node in both settings. The sysctl is set in
// the lab node's namespace only (per namespace since Linux 5.3); without br_netfilter at all only the
// "off" case exists, and that is the one tested.
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
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
  const data = mkdtempSync(join(tmpdir(), 'kdp-cni-hphp-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  t.teardown(() => rmSync(data, { recursive: true, force: true }));

  t.test('pod B reaches pod A through gateway:hostPort and node:hostPort, bridge netfilter on and off', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const n = lab.nodes[0]!;
    const list = hairpinConflist(
      'hphp',
      'kdphphp0',
      [n.podCidr4, n.podCidr6],
      [lab.plan.clusterCidr4, lab.plan.clusterCidr6],
      data,
    );
    const d = new CniDriver({ path: [bin], nodeNs: n.ns });
    const [nsA, nsB] = [await lab.addNamespace('hphp-a'), await lab.addNamespace('hphp-b')];
    const attA = { containerID: 'hphp-a', ifname: 'eth0', netns: `/run/netns/${nsA}` };
    const attB = { containerID: 'hphp-b', ifname: 'eth0', netns: `/run/netns/${nsB}` };
    const server = lab.spawn(nsA, [process.execPath, ECHO, '--name', 'pod-a', '--http', '8080']);
    const maps = { portMappings: [{ hostPort: 31090, containerPort: 8080, protocol: 'tcp' }] };
    const resA: CniResult = await d.add(list, attA, maps);
    t.teardown(() => d.del(list, attA, undefined, maps));
    const resB: CniResult = await d.add(list, attB);
    t.teardown(() => d.del(list, attB));
    const gw = (r: CniResult, v6: boolean) => r.ips!.find((i) => i.address.includes(':') === v6)!.gateway!;
    await waitFor('the echo server', () => server.output().includes('ready'), 120_000);

    const get = async (url: string) => {
      const r = await lab.exec(nsB, ['curl', '-sS', '--max-time', '3', '-g', url], { allowFailure: true });
      return r.code === 0
        ? (JSON.parse(r.stdout) as { name: string; client: string })
        : { name: `curl exit ${r.code}: ${r.stderr.trim()}`, client: '' };
    };
    const clientIp = (c: string) =>
      c
        .replace(/^::ffff:/, '')
        .replace(/:\d+$/, '')
        .replace(/^\[|\]$/g, '');
    const brnf = existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables');
    const settings = brnf ? ['0', '1'] : ['absent'];
    t.comment(`br_netfilter ${brnf ? 'loaded: both settings' : 'not loaded: bridge netfilter is off'}`);
    for (const s of settings) {
      if (s !== 'absent')
        for (const k of ['iptables', 'ip6tables'])
          await lab.exec(n.ns, ['sysctl', '-q', '-w', `net.bridge.bridge-nf-call-${k}=${s}`]);
      for (const [what, url, via] of [
        ['gateway', `http://${gw(resB, false)}:31090/`, gw(resA, false)],
        ['node address', `http://${n.ip4}:31090/`, gw(resA, false)],
        ['IPv6 gateway', `http://[${gw(resB, true)}]:31090/`, gw(resA, true)],
      ] as const) {
        const r = await get(url);
        t.same(
          [r.name, clientIp(r.client)],
          ['pod-a', via],
          `bridge-nf-call=${s}: pod B -> ${what}:31090 reaches pod A, masqueraded to the bridge address`,
        );
      }
    }
  });
}
