// The same invalid config gets the same CNI error code from ADD and from DEL (spec "Error": the code
// names the error, not the verb). DEL used to wrap an invalid IPAM config (found by its IPAM step) into
// "DEL: ..." with code 999 where ADD answered 7. Real plugins in a lab node, pod namespaces that exist.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import { freshPlugins } from '../../src/cni/testing/fixtures.ts';

if (needsRoot(t)) {
  const bin = await freshPlugins();
  const data = mkdtempSync(join(tmpdir(), 'kdp-cni-codes-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  t.teardown(() => rmSync(data, { recursive: true, force: true }));

  t.test('ADD and DEL answer the same code for the same invalid config', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const n = lab.nodes[0]!;
    const pod = await lab.addNamespace('codes-pod');
    const d = new CniDriver({ path: [bin], nodeNs: n.ns });
    const ipam = (extra: Record<string, unknown>) => ({ type: 'kdp-host-local', dataDir: data, ...extra });
    const cases: [string, Record<string, unknown>, number][] = [
      ['subnet prefix out of range', { ipam: ipam({ ranges: [[{ subnet: '10.99.0.0/99' }]] }) }, 7],
      ['IPAM without ranges', { ipam: ipam({}) }, 7],
      ['range outside its subnet', { ipam: ipam({ ranges: [[{ subnet: n.podCidr4, rangeStart: '10.1.2.3' }]] }) }, 7],
      ['bad mtu', { mtu: 'x', ipam: ipam({ ranges: [[{ subnet: n.podCidr4 }]] }) }, 7],
      ['no ipam type', {}, 7],
      ['unsupported field', { vlan: 5, ipam: ipam({ ranges: [[{ subnet: n.podCidr4 }]] }) }, 2],
    ];
    for (const [what, conf, want] of cases) {
      const stdin = JSON.stringify({
        cniVersion: '1.0.0',
        name: 'codes',
        type: 'kdp-bridge',
        bridge: 'kdpcodes0',
        ...conf,
      });
      const inv = { containerId: 'codes-1', ifname: 'eth0', netns: `/run/netns/${pod}`, stdin };
      const add = await d.invoke('kdp-bridge', { ...inv, command: 'ADD' });
      const del = await d.invoke('kdp-bridge', { ...inv, command: 'DEL' });
      t.same(
        [add.json?.code, del.json?.code],
        [want, want],
        `${what}: ADD ${String(add.json?.msg)} / DEL ${String(del.json?.msg)}`,
      );
      t.same([add.code, del.code], [1, 1], `${what}: both exit 1`);
      if (what === 'range outside its subnet')
        t.match(add.json?.msg, `is not in subnet ${n.podCidr4}`, 'names the subnet');
    }
  });
}
