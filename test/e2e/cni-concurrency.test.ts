// IPAM under load and under crashes, with the real plugin binaries in a lab node:
//   - 100 concurrent ADDs on one node get 100 distinct addresses; 100 DELs leave no file, link or rule.
//     Half of the plugin execs run the verbs in their own Node process, half forward to a warm `kdp cni
//     serve` in the node (as installed plugins do when it runs): 51 processes contend for the IPAM flock
//     instead of 100 Node starts on 2 cores (the lock sees the same contention; the machine sees half the CPU);
//   - ADDs killed with SIGKILL at spread-out moments, then GC with the surviving attachments as valid:
//     nothing of the killed ones remains, and the valid ones are untouched.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Lab } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import type { Conflist } from '../../src/cnispec/runtime.ts';
import { bridgeConflist, freshPlugins, reservationFiles, waitFor } from '../../src/cni/testing/fixtures.ts';
import { attachmentHash, hostVethName } from '../../src/netlink/links.ts';

const KDP = fileURLToPath(new URL('../../bin/kdp', import.meta.url));

if (needsRoot(t)) {
  t.setTimeout(900_000); // 200 plugin processes on 2 cores: minutes when the machine is shared
  const bin = await freshPlugins();
  const data = mkdtempSync(join(tmpdir(), 'kdp-cni-data-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  t.teardown(() => rmSync(data, { recursive: true, force: true }));

  const list = (name: string, subnet: string): Conflist => bridgeConflist(name, subnet, 'kdpc0', data);
  const ipFiles = (net: string) => reservationFiles(data, net);
  const ports = async (lab: Lab, ns: string) => {
    const r = await lab.exec(ns, ['ip', '-j', 'link', 'show', 'master', 'kdpc0'], { allowFailure: true });
    return r.code === 0 ? (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname).sort() : [];
  };
  const tags = async (lab: Lab, ns: string) => {
    const r = await lab.exec(ns, ['nft', 'list', 'table', 'inet', 'kdp'], { allowFailure: true });
    return [...(r.stdout.matchAll(/comment "kdp-m-([0-9a-f]{16})/g) ?? [])].map((m) => m[1] as string).sort();
  };
  const makePods = async (lab: Lab, prefix: string, n: number) => {
    const out: string[] = [];
    for (let i = 0; i < n; i += 20) {
      out.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(20, n - i) }, (_, j) => lab.addNamespace(`${prefix}-${i + j}`)),
        )),
      );
    }
    return out;
  };

  t.test('100 concurrent ADDs: 100 distinct IPs; 100 DELs: nothing left', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const node = lab.nodes[0]!;
    const socket = join(data, 'conc-serve.sock');
    // env -u NODE_OPTIONS: tap's process hooks would otherwise load into the server
    const server = lab.spawn(node.ns, [
      'env',
      '-u',
      'NODE_OPTIONS',
      KDP,
      '--log-format',
      'json',
      'cni',
      'serve',
      '--socket',
      socket,
    ]);
    const exec = new CniDriver({
      path: [bin],
      nodeNs: node.ns,
      timeoutMs: 300_000,
      env: { KDP_CNI_SOCKET: join(data, 'no-server.sock') },
    });
    const served = new CniDriver({ path: [bin], nodeNs: node.ns, timeoutMs: 300_000, env: { KDP_CNI_SOCKET: socket } });
    const d = (i: number) => (i % 2 === 0 ? exec : served);
    const conf = list('conc', '198.19.1.0/24');
    const pods = await makePods(lab, 'cp', 100);
    await waitFor('kdp cni serve', () => server.output().includes('listening'), 120_000);
    const servedCount = () => (server.output().match(/"msg":"cni request"/g) ?? []).length;
    const t0 = Date.now();
    const results = await Promise.all(
      pods.map((ns, i) =>
        d(i).invoke('kdp-bridge', {
          command: 'ADD',
          containerId: `conc-${i}`,
          ifname: 'eth0',
          netns: `/run/netns/${ns}`,
          stdin: CniDriver.pluginConfig(conf, conf.plugins[0]!, {}),
        }),
      ),
    );
    t.comment(`100 concurrent ADDs took ${Date.now() - t0} ms`);
    t.equal(servedCount(), 50, 'half of them were served by the warm process, half ran in their own');
    const failed = results.filter((r) => r.code !== 0);
    t.same(
      failed.map((r) => `${r.code} ${r.stdout.trim()} ${r.stderr.trim().slice(-300)}`),
      [],
      'every ADD succeeded',
    );
    const ips = results.map((r) => (r.json as { ips: { address: string }[] }).ips[0]!.address);
    t.equal(new Set(ips).size, 100, '100 distinct addresses');
    t.equal(ipFiles('conc').length, 100, '100 reservation files');
    t.equal((await ports(lab, node.ns)).length, 100, '100 ports on the bridge');
    t.equal((await tags(lab, node.ns)).length, 100, '100 masquerade rules');
    const owners = new Set(ipFiles('conc').map((f) => readFileSync(join(data, 'conc', f), 'utf8').split('\r\n')[0]));
    t.equal(owners.size, 100, 'each file names its own container');

    const t1 = Date.now();
    const dels = await Promise.all(
      pods.map((ns, i) =>
        d((i + 1) % 2).invoke('kdp-bridge', {
          command: 'DEL',
          containerId: `conc-${i}`,
          ifname: 'eth0',
          netns: `/run/netns/${ns}`,
          stdin: CniDriver.pluginConfig(conf, conf.plugins[0]!, {}),
        }),
      ),
    );
    t.comment(`100 concurrent DELs took ${Date.now() - t1} ms`);
    t.same(
      dels.filter((r) => r.code !== 0).map((r) => `${r.code} ${r.stdout.trim()} ${r.stderr.trim().slice(-300)}`),
      [],
      'every DEL succeeded (each by the other mode than its ADD)',
    );
    t.equal(servedCount(), 100, '50 DELs served');
    t.same(ipFiles('conc'), [], 'no reservation file left');
    t.same(await ports(lab, node.ns), [], 'no veth left');
    t.same(await tags(lab, node.ns), [], 'no rule left');
  });

  t.test('kill -9 during ADD at spread-out moments, then GC: nothing leaks, valid attachments stay', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const node = lab.nodes[0]!;
    const d = new CniDriver({ path: [bin], nodeNs: node.ns });
    const conf = list('crash', '198.19.2.0/24');
    const keep = await makePods(lab, 'keep', 2);
    for (const [i, ns] of keep.entries())
      await d.add(conf, { containerID: `keep-${i}`, ifname: 'eth0', netns: `/run/netns/${ns}` });
    const victims = await makePods(lab, 'kill', 12);
    const stdin = CniDriver.pluginConfig(conf, conf.plugins[0]!, {});
    const outcomes = await Promise.all(
      victims.map(async (ns, i) => {
        const child = spawn('ip', ['netns', 'exec', node.ns, join(bin, 'kdp-bridge')], {
          stdio: ['pipe', 'ignore', 'ignore'],
          env: {
            PATH: process.env.PATH,
            CNI_COMMAND: 'ADD',
            CNI_CONTAINERID: `kill-${i}`,
            CNI_NETNS: `/run/netns/${ns}`,
            CNI_IFNAME: 'eth0',
            CNI_PATH: bin,
          },
        });
        child.stdin.end(stdin);
        const exited = new Promise<string>((r) => child.on('exit', (code, sig) => r(sig ?? `exit ${code}`)));
        await sleep(25 * i + Math.floor(Math.random() * 25));
        child.kill('SIGKILL');
        return exited;
      }),
    );
    t.comment(`outcomes: ${outcomes.join(', ')}`);
    t.ok(outcomes.filter((o) => o === 'SIGKILL').length >= 3, 'ADDs were killed mid-way');
    await sleep(300); // children of the killed plugins (ip, nft) finish what they started
    const valid = keep.map((_, i) => ({ containerID: `keep-${i}`, ifname: 'eth0' }));
    const gc = await d.gc(conf, valid);
    t.same(
      gc.map((r) => [r.code, r.stdout.trim()]),
      [[0, '']],
      'GC succeeded',
    );
    const keptFiles = ipFiles('crash')
      .map((f) => readFileSync(join(data, 'crash', f), 'utf8').split('\r\n')[0])
      .sort();
    t.same(keptFiles, ['keep-0', 'keep-1'], 'only the valid attachments keep an address');
    t.same(
      await ports(lab, node.ns),
      valid.map((v) => hostVethName(v.containerID, v.ifname)).sort(),
      'only their veths remain',
    );
    t.same(
      await tags(lab, node.ns),
      valid.map((v) => attachmentHash(v.containerID, v.ifname)).sort(),
      'only their rules remain',
    );
    for (const ns of victims)
      t.notMatch((await lab.exec(ns, ['ip', '-br', 'link'])).stdout, /eth0/, `${ns}: no interface left`);
    const after = await d.add(conf, { containerID: 'after', ifname: 'eth0', netns: `/run/netns/${victims[0]}` });
    t.ok(after.ips?.[0]?.address, 'the IPAM lock is free: a new ADD succeeds');
  });
}
