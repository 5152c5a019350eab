// The bridge keeps its MAC. Left alone, Linux gives a bridge the lowest MAC among its ports (a pod's host
// veth): deleting that pod changed the gateway's MAC under every other pod, which then could not reach the
// gateway until its ARP entry went stale (25-36 s). kdp-bridge creates the bridge with an explicit MAC, and
// fixes the MAC of a bridge someone else created (as the reference bridge plugin does). Both cases: two pods,
// the one whose host veth has the lowest MAC is deleted, the bridge MAC is unchanged and the other pod,
// whose ARP entry for the gateway is fresh, reaches the gateway at once.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import { bridgeConflist, freshPlugins } from '../../src/cni/testing/fixtures.ts';
import type { CniResult } from '../../src/cnispec/types.ts';

if (needsRoot(t)) {
  const bin = await freshPlugins();
  const data = mkdtempSync(join(tmpdir(), 'kdp-cni-brmac-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  t.teardown(() => rmSync(data, { recursive: true, force: true }));

  for (const premade of [false, true]) {
    t.test(
      `deleting the pod with the lowest veth MAC keeps the gateway MAC (bridge ${premade ? 'made beforehand' : 'made by kdp-bridge'})`,
      async (t) => {
        const lab = await Lab.create({ nodes: 1 });
        t.teardown(() => lab.destroy());
        const n = lab.nodes[0]!;
        const bridge = 'kdpmac0';
        if (premade) await lab.exec(n.ns, ['ip', 'link', 'add', bridge, 'type', 'bridge']);
        const list = bridgeConflist('brmac', n.podCidr4, bridge, join(data, String(premade)));
        const d = new CniDriver({ path: [bin], nodeNs: n.ns });
        const brMac = async () =>
          (
            JSON.parse((await lab.exec(n.ns, ['ip', '-j', 'link', 'show', 'dev', bridge])).stdout) as {
              address: string;
            }[]
          )[0]!.address;
        // enough pods that the bridge's lowest-port rule had something to pick from; 2 is the case
        const pods: {
          name: string;
          ns: string;
          att: { containerID: string; ifname: string; netns: string };
          res: CniResult;
        }[] = [];
        for (const name of ['a', 'b']) {
          const ns = await lab.addNamespace(`brmac-${premade ? 'p' : 'k'}-${name}`);
          const att = { containerID: `brmac-${name}`, ifname: 'eth0', netns: `/run/netns/${ns}` };
          pods.push({ name, ns, att, res: await d.add(list, att) });
        }
        t.teardown(() => Promise.all(pods.map((p) => d.del(list, p.att))));
        const gw = pods[0]!.res.ips![0]!.gateway!;
        const before = await brMac();
        const vethMacs = pods.map((p) => p.res.interfaces![1]!.mac!);
        t.notOk(vethMacs.includes(before), `the bridge MAC ${before} is none of its ports' (${vethMacs.join(', ')})`);
        // every pod talks to the gateway: their ARP caches hold the bridge MAC
        for (const p of pods) await lab.exec(p.ns, ['ping', '-c', '1', '-W', '2', gw]);
        const [gone, stays] = vethMacs[0]! < vethMacs[1]! ? [pods[0]!, pods[1]!] : [pods[1]!, pods[0]!];
        const r = await d.del(list, gone.att);
        t.same(
          r.map((x) => x.code),
          [0],
          `DEL of pod ${gone.name} (lowest veth MAC)`,
        );
        pods.splice(pods.indexOf(gone), 1);
        t.equal(await brMac(), before, 'the bridge MAC is unchanged');
        const neigh = (await lab.exec(stays.ns, ['ip', '-j', 'neigh', 'show', gw])).stdout;
        t.match(neigh, before, `pod ${stays.name}'s ARP entry for the gateway is the bridge MAC`);
        const ping = await lab.exec(stays.ns, ['ping', '-c', '1', '-W', '1', gw], { allowFailure: true });
        t.equal(
          ping.code,
          0,
          `pod ${stays.name} reaches the gateway at once (${ping.stdout.trim().split('\n').at(-2)})`,
        );
        // a third pod's ADD does not move it either (a fresh random veth MAC may be lower still)
        const ns = await lab.addNamespace(`brmac-${premade ? 'p' : 'k'}-c`);
        const att = { containerID: 'brmac-c', ifname: 'eth0', netns: `/run/netns/${ns}` };
        pods.push({ name: 'c', ns, att, res: await d.add(list, att) });
        t.equal(await brMac(), before, 'and stays after another ADD');
      },
    );
  }
}
