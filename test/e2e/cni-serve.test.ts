// `kdp cni serve`: the installed plugin files forward ADD/CHECK/DEL to a warm kdp process for their
// network namespace; the results and the wiring are the same as without it; when the server is gone
// (SIGKILL leaves a stale socket) the plugin runs the verbs itself.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import type { Conflist } from '../../src/cnispec/runtime.ts';
import { freshPlugins, waitFor } from '../../src/cni/testing/fixtures.ts';

const KDP = fileURLToPath(new URL('../../bin/kdp', import.meta.url));

/** Every process below pid (from /proc/<pid>/task/<tid>/children). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const tid of tasks) {
      let kids: string;
      try {
        kids = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const k of kids.trim().split(/\s+/).filter(Boolean).map(Number)) {
        out.push(k);
        walk(k);
      }
    }
  };
  walk(pid);
  return out;
}

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
      plugins: [
        {
          type: 'kdp-bridge',
          bridge: 'kdps0',
          isGateway: true,
          ipMasq: true,
          ipam: { type: 'kdp-host-local', subnet: n.podCidr4, dataDir: data },
        },
      ],
    };
    // env -u NODE_OPTIONS: tap's process hooks would otherwise load into the server
    const server = lab.spawn(n.ns, [
      'env',
      '-u',
      'NODE_OPTIONS',
      KDP,
      '--log-format',
      'json',
      'cni',
      'serve',
      '--exit-after',
      '300',
    ]);
    const socket = await waitFor('the server socket', () => /"socket":"([^"]+)"/.exec(server.output())?.[1], 60_000);
    t.teardown(() => rmSync(socket, { force: true }));
    const served = () => (server.output().match(/"msg":"cni request"/g) ?? []).length;
    const d = new CniDriver({ path: [bin], nodeNs: n.ns });
    const pods = [await lab.addNamespace('served-a'), await lab.addNamespace('served-b')];
    const results = [];
    for (const [i, ns] of pods.entries())
      results.push(await d.add(list, { containerID: `served-${i}`, ifname: 'eth0', netns: `/run/netns/${ns}` }));
    t.equal(served(), 2, 'both ADDs were served by the warm process');
    // the warm path: pre-spawned children (node-side ip, pod-side setns helper, nft) and lock agents (IPAM, nft)
    const last = JSON.parse(
      server
        .output()
        .split('\n')
        .filter((l) => l.includes('"cni request"'))
        .at(-1) ?? '{}',
    ) as { prespawned?: number; lockAgents?: number };
    t.ok((last.prespawned ?? 0) >= 4, `pre-spawned children did the work (${last.prespawned} of 6 calls)`);
    t.equal(last.lockAgents, 2, 'one lock agent for the IPAM lock, one for the nft lock');
    const ipB = results[1]!.ips![0]!.address.split('/')[0]!;
    t.match(
      (await lab.exec(pods[0]!, ['ping', '-c', '1', '-W', '2', ipB])).stdout,
      /1 received/,
      'the pods it wired reach each other',
    );
    const chk = await d.check(
      list,
      { containerID: 'served-0', ifname: 'eth0', netns: `/run/netns/${pods[0]}` },
      results[0]!,
    );
    t.same(
      chk.map((r) => r.code),
      [0],
      'CHECK through the server',
    );
    const dup = await d.invoke('kdp-bridge', {
      command: 'ADD',
      containerId: 'served-0',
      ifname: 'eth0',
      netns: `/run/netns/${pods[0]}`,
      stdin: CniDriver.pluginConfig(list, list.plugins[0]!, {}),
    });
    t.equal(dup.code, 1, 'an error through the server is a non-zero exit');
    t.match(dup.json, { code: 999, msg: /already exists/ }, 'with the error JSON on stdout');
    const del0 = await d.del(list, { containerID: 'served-0', ifname: 'eth0', netns: `/run/netns/${pods[0]}` });
    t.same(
      del0.map((r) => r.code),
      [0],
    );
    const before = served();
    // the pool is refilled once the server is idle (setImmediate after the last response closes), which can
    // land after the client has its answer: wait for it rather than sample once
    const helpers = await waitFor(
      'the server to refill its helpers',
      () => {
        const d = descendants(server.pid);
        return d.length >= 4 ? d : undefined;
      },
      10_000,
    ).catch(() => descendants(server.pid));
    t.ok(helpers.length >= 4, `the server keeps helpers (${helpers.length} processes under it)`);
    server.kill('SIGKILL');
    await server.exited;
    // kill -9 of the server: its waiting children and lock agents get EOF and exit (which frees the locks)
    await waitFor(
      'the helpers to exit',
      () => (helpers.every((p) => !existsSync(`/proc/${p}`)) ? true : undefined),
      15_000,
    );
    t.pass('no helper outlives the server');
    t.ok(existsSync(socket), 'a stale socket is left behind');
    const del1 = await d.del(list, { containerID: 'served-1', ifname: 'eth0', netns: `/run/netns/${pods[1]}` });
    t.same(
      del1.map((r) => r.code),
      [0],
      'with the server gone the plugin runs DEL itself',
    );
    const again = await d.add(list, { containerID: 'served-2', ifname: 'eth0', netns: `/run/netns/${pods[1]}` });
    t.ok(again.ips?.[0]?.address, 'and ADD');
    t.equal(served(), before, 'nothing reached the dead server');
    await d.del(list, { containerID: 'served-2', ifname: 'eth0', netns: `/run/netns/${pods[1]}` });
    const ports = (await lab.exec(n.ns, ['ip', '-j', 'link', 'show', 'master', 'kdps0'])).stdout;
    t.same(JSON.parse(ports || '[]'), [], 'no veth left');
  });
}
