// `kdp cni serve`: the installed plugin files forward ADD/CHECK/DEL to a warm kdp process for their
// network namespace; the results and the wiring are the same as without it; when the server is gone
// (SIGKILL leaves a stale socket) the plugin runs the verbs itself.
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';
import { CniDriver } from '../../src/cni/testing/driver.ts';
import type { Conflist } from '../../src/cni/testing/driver.ts';
import { freshPlugins, waitFor } from '../../src/cni/testing/fixtures.ts';

const KDP = fileURLToPath(new URL('../../bin/kdp', import.meta.url));

if (needsRoot(t)) {
  const bin = await freshPlugins();
  const data = mkdtempSync(join(tmpdir(), 'kdp-cni-serve-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  t.teardown(() => rmSync(data, { recursive: true, force: true }));

  t.test('plugins forward to kdp cni serve, and fall back when it is gone', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const n = lab.nodes[0]!;
    const list: Conflist = {
      cniVersion: '1.1.0',
      name: 'served',
      plugins: [{ type: 'kdp-bridge', bridge: 'kdps0', isGateway: true, ipMasq: true, ipam: { type: 'kdp-host-local', subnet: n.podCidr4, dataDir: data } }],
    };
    // env -u NODE_OPTIONS: tap's process hooks would otherwise load into the server
    const server = lab.spawn(n.ns, ['env', '-u', 'NODE_OPTIONS', KDP, '--log-format', 'json', 'cni', 'serve', '--ttl', '300']);
    const socket = await waitFor('the server socket', () => /"socket":"([^"]+)"/.exec(server.output())?.[1], 60_000);
    t.teardown(() => rmSync(socket, { force: true }));
    const served = () => (server.output().match(/"msg":"cni request"/g) ?? []).length;
    const d = new CniDriver({ path: [bin], nodeNs: n.ns });
    const pods = [await lab.addNamespace('served-a'), await lab.addNamespace('served-b')];
    const results = [];
    for (const [i, ns] of pods.entries()) results.push(await d.add(list, { containerID: `served-${i}`, ifname: 'eth0', netns: `/run/netns/${ns}` }));
    t.equal(served(), 2, 'both ADDs were served by the warm process');
    const ipB = results[1]!.ips![0]!.address.split('/')[0]!;
    t.match((await lab.exec(pods[0]!, ['ping', '-c', '1', '-W', '2', ipB])).stdout, /1 received/, 'the pods it wired reach each other');
    const chk = await d.check(list, { containerID: 'served-0', ifname: 'eth0', netns: `/run/netns/${pods[0]}` }, results[0]!);
    t.same(chk.map((r) => r.code), [0], 'CHECK through the server');
    const dup = await d.invoke('kdp-bridge', { command: 'ADD', containerId: 'served-0', ifname: 'eth0', netns: `/run/netns/${pods[0]}`, stdin: CniDriver.pluginConfig(list, list.plugins[0]!, {}) });
    t.equal(dup.code, 1, 'an error through the server is a non-zero exit');
    t.match(dup.json, { code: 999, msg: /already exists/ }, 'with the error JSON on stdout');
    const del0 = await d.del(list, { containerID: 'served-0', ifname: 'eth0', netns: `/run/netns/${pods[0]}` });
    t.same(del0.map((r) => r.code), [0]);
    const before = served();
    server.kill('SIGKILL');
    await server.exited;
    t.ok(existsSync(socket), 'a stale socket is left behind');
    const del1 = await d.del(list, { containerID: 'served-1', ifname: 'eth0', netns: `/run/netns/${pods[1]}` });
    t.same(del1.map((r) => r.code), [0], 'with the server gone the plugin runs DEL itself');
    const again = await d.add(list, { containerID: 'served-2', ifname: 'eth0', netns: `/run/netns/${pods[1]}` });
    t.ok(again.ips?.[0]?.address, 'and ADD');
    t.equal(served(), before, 'nothing reached the dead server');
    await d.del(list, { containerID: 'served-2', ifname: 'eth0', netns: `/run/netns/${pods[1]}` });
    const ports = (await lab.exec(n.ns, ['ip', '-j', 'link', 'show', 'master', 'kdps0'])).stdout;
    t.same(JSON.parse(ports || '[]'), [], 'no veth left');
  });
}
