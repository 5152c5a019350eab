// The CLI for real: `kdp cni install` puts self-contained plugins (plus a Node copy) and a conflist in
// place, and they work in a lab node; `kdp node-agent` inside a node namespace follows Node manifests.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import { run } from '../../src/common/exec-adapter.ts';
import { needsRoot } from '../helpers/gate.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import type { Conflist } from '../../src/cnispec/runtime.ts';
import { waitFor } from '../../src/cni/testing/fixtures.ts';

const KDP = fileURLToPath(new URL('../../bin/kdp', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');

const nodeYaml = (name: string, cidr: string, ip: string) => `apiVersion: v1
kind: Node
metadata:
  name: ${name}
spec:
  podCIDR: ${cidr}
  podCIDRs: [${cidr}]
status:
  addresses: [{type: InternalIP, address: ${ip}}]
  conditions: [{type: Ready, status: "True"}]
`;

if (needsRoot(t)) {
  const work = mkdtempSync(join(tmpdir(), 'kdp-cni-cli-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));

  t.test('kdp cni install: plugins that run without the checkout, and a working conflist', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const n = lab.nodes[0]!;
    const bin = join(work, 'opt-cni-bin');
    const conf = join(work, 'etc-cni-net.d');
    const res = await run(
      [
        KDP,
        '--log-level',
        'warn',
        'cni',
        'install',
        '--bin-dir',
        bin,
        '--conf-dir',
        conf,
        '--subnet',
        n.podCidr4,
        '--cluster-cidr',
        lab.plan.clusterCidr4,
        '--data-dir',
        join(work, 'data'),
        '--bridge',
        'kdpcli0',
      ],
      { timeoutMs: 300_000 },
    );
    t.match(res.stdout, /kdp-bridge/);
    for (const f of ['kdp-node', 'kdp-bridge', 'kdp-host-local', 'kdp-portmap'])
      t.ok(existsSync(join(bin, f)), `${f} installed`);
    const plugin = readFileSync(join(bin, 'kdp-bridge'), 'utf8');
    t.ok(plugin.includes(`exec "${join(bin, 'kdp-node')}"`), 'the plugin runs the Node copy next to it');
    t.notOk(plugin.includes(REPO), 'and refers to nothing in the checkout');
    const list = JSON.parse(readFileSync(join(conf, '10-kdp.conflist'), 'utf8')) as Conflist;
    t.same(
      list.plugins.map((p) => p.type),
      ['kdp-bridge', 'kdp-portmap'],
    );
    const d = new CniDriver({ path: [bin], nodeNs: n.ns });
    const ver = await d.invoke('kdp-bridge', { command: 'VERSION', stdin: '{"cniVersion":"1.0.0"}' });
    t.match(ver.json, { supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    const pod = await lab.addNamespace('cli-pod');
    const r = await d.add(list, { containerID: 'cli', ifname: 'eth0', netns: `/run/netns/${pod}` });
    const gw = r.ips![0]!.gateway!;
    t.match(
      (await lab.exec(pod, ['ping', '-c', '1', '-W', '2', gw])).stdout,
      /1 received/,
      'the installed plugins wire a pod',
    );
    t.same(
      (await d.del(list, { containerID: 'cli', ifname: 'eth0', netns: `/run/netns/${pod}` }, r)).map((x) => x.code),
      [0, 0],
    );
    const bad = await run([KDP, 'cni', 'install', '--bin-dir', bin], { allowFailure: true, timeoutMs: 300_000 });
    t.equal(bad.code, 2, 'usage error without --conf-dir');
  });

  t.test('kdp node-agent in a node namespace follows Node manifests', async (t) => {
    const lab = await Lab.create({ nodes: 2 });
    t.teardown(() => lab.destroy());
    const [n1, n2] = [lab.nodes[0]!, lab.nodes[1]!];
    const dir = join(work, 'manifests');
    rmSync(dir, { recursive: true, force: true });
    await run(['mkdir', '-p', dir]);
    writeFileSync(join(dir, 'node-1.yaml'), nodeYaml('node-1', n1.podCidr4, n1.ip4));
    writeFileSync(join(dir, 'node-2.yaml'), nodeYaml('node-2', n2.podCidr4, n2.ip4));
    // `env -u NODE_OPTIONS`: tap's process hooks, injected into every child, would own SIGTERM in the agent
    const agent = lab.spawn(n1.ns, [
      'env',
      '-u',
      'NODE_OPTIONS',
      KDP,
      '--log-format',
      'json',
      'node-agent',
      '--node',
      'node-1',
      '--manifests',
      dir,
      '--exit-after',
      '60',
    ]);
    const routes = async () => (await lab.exec(n1.ns, ['ip', 'route', 'show', 'proto', '199'])).stdout;
    await waitFor(
      'the route to node-2 pods',
      async () => ((await routes()).includes(`${n2.podCidr4} via ${n2.ip4}`) ? true : undefined),
      60_000,
    );
    t.notMatch(await routes(), n1.podCidr4, 'no route to its own pod CIDR');
    writeFileSync(join(dir, 'node-3.yaml'), nodeYaml('node-3', '198.19.3.0/24', '198.18.0.13'));
    await waitFor(
      'the route to a new node',
      async () => ((await routes()).includes('198.19.3.0/24 via 198.18.0.13') ? true : undefined),
      60_000,
    );
    rmSync(join(dir, 'node-2.yaml'));
    await waitFor(
      'the deleted node route gone',
      async () => (!(await routes()).includes(n2.podCidr4) ? true : undefined),
      60_000,
    );
    t.pass('routes follow added and deleted Nodes');
    await waitFor(
      'the agent ready for signals',
      () => (agent.output().includes('node agent synced') ? true : undefined),
      60_000,
    );
    agent.kill('SIGTERM');
    const code = await agent.exited;
    t.equal(code, 0, 'exits cleanly on SIGTERM', { code, output: agent.output().slice(-2000) });
  });
}
