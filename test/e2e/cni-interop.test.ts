// Interoperability with the reference plugins (Debian containernetworking-plugins in /usr/lib/cni):
// the reference bridge delegating to kdp-host-local, kdp-bridge delegating to the reference host-local,
// both on one bridge and one IPAM data directory: distinct addresses, pods reach each other, DEL releases.
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import { run } from '../../src/common/exec-adapter.ts';
import { needsRoot } from '../helpers/gate.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import type { Conflist } from '../../src/cnispec/runtime.ts';
import { freshPlugins } from '../../src/cni/testing/fixtures.ts';
import type { CniResult } from '../../src/cnispec/types.ts';

const REF = '/usr/lib/cni';

if (needsRoot(t)) {
  await run(['bash', fileURLToPath(new URL('../../scripts/setup-system.sh', import.meta.url)), 'cni'], {
    timeoutMs: 600_000,
  });
  if (!existsSync(join(REF, 'bridge'))) {
    t.fail(`reference plugins missing in ${REF}: run scripts/setup-system.sh cni`);
  } else {
    const bin = await freshPlugins();
    const data = mkdtempSync(join(tmpdir(), 'kdp-cni-data-'));
    t.teardown(() => rmSync(bin, { recursive: true, force: true }));
    t.teardown(() => rmSync(data, { recursive: true, force: true }));
    const ipam = (type: string) => ({ type, ranges: [[{ subnet: '198.19.1.0/24' }]], dataDir: data });
    // cniVersion 1.0.0: the highest the Debian 1.1.1 plugins speak
    const refBridgeOurIpam: Conflist = {
      cniVersion: '1.0.0',
      name: 'mix',
      plugins: [{ type: 'bridge', bridge: 'kdpi0', isGateway: true, ipMasq: false, ipam: ipam('kdp-host-local') }],
    };
    const ourBridgeRefIpam: Conflist = {
      cniVersion: '1.0.0',
      name: 'mix',
      plugins: [{ type: 'kdp-bridge', bridge: 'kdpi0', isGateway: true, ipMasq: true, ipam: ipam('host-local') }],
    };
    const files = () => readdirSync(join(data, 'mix')).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));

    t.test(
      'reference bridge + kdp-host-local, kdp-bridge + reference host-local, one bridge, one data dir',
      async (t) => {
        const lab = await Lab.create({ nodes: 1 });
        t.teardown(() => lab.destroy());
        const d = new CniDriver({ path: [bin, REF], nodeNs: lab.nodes[0]!.ns });
        const pods: { ns: string; cid: string; list: Conflist; r: CniResult }[] = [];
        for (const [i, list] of [refBridgeOurIpam, ourBridgeRefIpam, refBridgeOurIpam, ourBridgeRefIpam].entries()) {
          const ns = await lab.addNamespace(`mix-${i}`);
          const cid = `mix-${i}`;
          pods.push({
            ns,
            cid,
            list,
            r: await d.add(list, { containerID: cid, ifname: 'eth0', netns: `/run/netns/${ns}` }),
          });
        }
        const ips = pods.map((p) => p.r.ips![0]!.address.split('/')[0]!);
        t.equal(
          new Set(ips).size,
          4,
          `four distinct addresses from two IPAM implementations sharing a directory: ${ips.join(' ')}`,
        );
        t.same(files().sort(), [...ips].sort(), 'one file per address, named after it');
        for (const [i, p] of pods.entries())
          t.equal(
            readFileSync(join(data, 'mix', ips[i]!), 'utf8'),
            `${p.cid}\r\neth0`,
            `file of ${p.cid} in host-local's format`,
          );
        for (const [i, p] of pods.entries()) {
          const to = ips[(i + 1) % 4]!;
          const ping = await lab.exec(p.ns, ['ping', '-c', '1', '-W', '2', to]);
          t.match(ping.stdout, /1 received/, `${p.cid} (${p.list.plugins[0]!.type}) reaches ${to}`);
        }
        const chk = await d.check(
          ourBridgeRefIpam,
          { containerID: pods[1]!.cid, ifname: 'eth0', netns: `/run/netns/${pods[1]!.ns}` },
          pods[1]!.r,
        );
        t.same(
          chk.map((r) => r.code),
          [0],
          'CHECK through kdp-bridge delegates to the reference host-local',
        );
        for (const p of pods) {
          const r = await d.del(p.list, { containerID: p.cid, ifname: 'eth0', netns: `/run/netns/${p.ns}` }, p.r);
          t.same(
            r.map((x) => x.code),
            [0],
            `DEL ${p.cid}`,
          );
        }
        t.same(files(), [], 'every address released');
        const links = (await lab.exec(lab.nodes[0]!.ns, ['ip', '-j', 'link', 'show', 'master', 'kdpi0'])).stdout;
        t.same(JSON.parse(links || '[]'), [], 'no port left on the bridge');
      },
    );
  }
}
