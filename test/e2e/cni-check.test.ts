// CHECK of kdp-bridge finds each kind of damage (its four looks run at once; the first failure in the order
// pod side, host side, rules, IPAM is reported): healthy, pod address gone, host veth off the bridge, masquerade
// rule gone, IPAM reservation gone, pod interface gone. Real plugins in a lab node.
import t from 'tap';
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import { bridgeConflist, freshPlugins, reservationFiles } from '../../src/cni/testing/fixtures.ts';

if (needsRoot(t)) {
  const bin = await freshPlugins();
  const data = mkdtempSync(join(tmpdir(), 'kdp-cni-check-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  t.teardown(() => rmSync(data, { recursive: true, force: true }));

  t.test('CHECK reports each kind of damage', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const n = lab.nodes[0]!;
    const list = bridgeConflist('chk', n.podCidr4, 'kdpchk0', data);
    const d = new CniDriver({ path: [bin], nodeNs: n.ns });
    const ns = await lab.addNamespace('chk-pod');
    const att = { containerID: 'chk-1', ifname: 'eth0', netns: `/run/netns/${ns}` };
    const res = await d.add(list, att);
    t.teardown(() => d.del(list, att));
    const hostVeth = res.interfaces![1]!.name;
    const addr = res.ips![0]!.address;
    const check = async () => {
      const r = (await d.check(list, att, res))[0]!;
      return r.code === 0 ? 'ok' : String(r.json?.msg);
    };
    t.equal(await check(), 'ok', 'healthy');

    await lab.exec(ns, ['ip', 'addr', 'del', addr, 'dev', 'eth0']);
    t.equal(await check(), `address ${addr} missing on eth0`);
    await lab.exec(ns, ['ip', 'addr', 'add', addr, 'dev', 'eth0']);
    t.equal(await check(), 'ok', 'healthy again');

    await lab.exec(n.ns, ['ip', 'link', 'set', hostVeth, 'nomaster']);
    t.equal(await check(), `host veth ${hostVeth} is not attached to kdpchk0`);
    await lab.exec(n.ns, ['ip', 'link', 'set', hostVeth, 'master', 'kdpchk0']);
    t.equal(await check(), 'ok', 'healthy again');

    const listing = (await lab.exec(n.ns, ['nft', '-a', 'list', 'chain', 'inet', 'kdp', 'postrouting'])).stdout;
    const handle = /comment "(kdp-m-[0-9a-f]{16})[^"]*" # handle (\d+)/.exec(listing);
    t.ok(handle, 'the masquerade rule is there');
    await lab.exec(n.ns, ['nft', 'delete', 'rule', 'inet', 'kdp', 'postrouting', 'handle', handle![2]!]);
    t.equal(await check(), `masquerade rule ${handle![1]} missing`);

    // two faults at once: the pod side is reported first
    await lab.exec(ns, ['ip', 'link', 'set', 'eth0', 'name', 'eth9']);
    t.equal(await check(), 'Interface name eth0 not found', 'the pod side first');
    await lab.exec(ns, ['ip', 'link', 'set', 'eth9', 'name', 'eth0']);

    const files = reservationFiles(data, 'chk');
    t.equal(files.length, 1, 'one reservation');
    for (const f of files) unlinkSync(join(data, 'chk', f));
    t.equal(await check(), `masquerade rule ${handle![1]} missing`, 'rules before IPAM');
  });
}
