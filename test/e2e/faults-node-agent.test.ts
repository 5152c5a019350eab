// Process faults, node agent: `kdp node-agent` killed with SIGKILL. Its host-gw routes stay in the kernel, so
// pod-to-pod traffic across nodes keeps flowing while it is dead; a Node added while it is dead is routed
// after restart, the existing route is neither duplicated nor flapped, and a later deletion still applies.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';
import { needsRoot } from '../helpers/gate.ts';
import { addPod } from '../helpers/pods.ts';
import { waitFor } from '../../src/cni/testing/fixtures.ts';

const KDP = fileURLToPath(new URL('../../bin/kdp', import.meta.url));
const nodeYaml = (name: string, cidr: string, ip: string) =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    spec: { podCIDR: cidr, podCIDRs: [cidr] },
    status: { addresses: [{ type: 'InternalIP', address: ip }], conditions: [{ type: 'Ready', status: 'True' }] },
  });

if (needsRoot(t)) {
  t.test('kill -9 of kdp node-agent', async (t) => {
    const lab = await Lab.create({ nodes: 2 });
    t.teardown(() => lab.destroy());
    const [n1, n2] = [lab.nodes[0]!, lab.nodes[1]!];
    const dir = mkdtempSync(join(tmpdir(), 'kdp-agent-faults-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'node-1.json'), nodeYaml('node-1', n1.podCidr4, n1.ip4));
    writeFileSync(join(dir, 'node-2.json'), nodeYaml('node-2', n2.podCidr4, n2.ip4));
    const a = await addPod(lab, n1, 'a', 10);
    const b = await addPod(lab, n2, 'b', 10);
    // node-2's way back is static here; node-1's routes come from the agent under test
    await lab.exec(n2.ns, ['ip', 'route', 'add', n1.podCidr4, 'via', n1.ip4]);
    const routes = async () =>
      (await lab.exec(n1.ns, ['ip', 'route', 'show', 'proto', '199'])).stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => l.trim())
        .sort();
    const start = (): Spawned =>
      lab.spawn(n1.ns, [
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
        '120',
      ]);
    let agent = start();
    t.teardown(() => agent.kill('SIGKILL'));
    await waitFor(
      'the route to node-2 pods',
      async () => ((await routes()).some((r) => r.startsWith(`${n2.podCidr4} via ${n2.ip4}`)) ? true : undefined),
      60_000,
    );
    const before = await routes();

    // pings across nodes while the agent dies and stays dead
    const ping = lab.spawn(a.ns, ['ping', '-n', '-i', '0.2', '-c', '20', '-W', '1', b.ip4]);
    await new Promise((r) => setTimeout(r, 600));
    agent.kill('SIGKILL');
    await agent.exited;
    t.same(await routes(), before, 'the routes stay in the kernel after SIGKILL');
    // a Node joins while the agent is dead
    writeFileSync(join(dir, 'node-3.json'), nodeYaml('node-3', '198.19.3.0/24', '198.18.0.13'));
    await ping.exited;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(ping.output());
    t.ok(m, `ping summary: ${ping.output().slice(-200)}`);
    t.equal(m?.[1], m?.[2], `no packet lost across nodes while the agent was killed (${m?.[0]})`);

    agent = start();
    await waitFor(
      'the route to the node added while dead',
      async () => ((await routes()).some((r) => r.startsWith('198.19.3.0/24 via 198.18.0.13')) ? true : undefined),
      60_000,
    );
    await waitFor(
      'the restarted agent synced',
      () => (agent.output().includes('node agent synced') ? true : undefined),
      60_000,
    );
    const after = await routes();
    t.equal(after.length, 2, `exactly two routes, nothing duplicated: ${JSON.stringify(after)}`);
    t.ok(after.includes(before[0]!), 'the existing route is unchanged');
    rmSync(join(dir, 'node-3.json'));
    await waitFor(
      'the deletion applied by the restarted agent',
      async () => ((await routes()).length === 1 ? true : undefined),
      60_000,
    );
    t.same(await routes(), before, 'back to the original route set');
  });
}
