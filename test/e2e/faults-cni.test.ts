// CNI faults beyond the kill -9 during ADD of cni-concurrency: a plugin killed during DEL (a repeated DEL
// finishes the job), the pod's netns gone before DEL, an ADD/DEL storm on one node, and a full disk under the
// IPAM data directory (the spec's error, no half-written reservation, the address reusable once freed).
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Lab } from '../../src/lab/lab.ts';
import { run } from '../../src/common/exec-adapter.ts';
import { needsRoot } from '../helpers/gate.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import type { Conflist } from '../../src/cnispec/runtime.ts';
import { bridgeConflist, freshPlugins, reservationFiles } from '../../src/cni/testing/fixtures.ts';
import { fuzzSeed, rng } from '../helpers/fuzz.ts';

if (needsRoot(t)) {
  t.setTimeout(600_000);
  const bin = await freshPlugins();
  const data = mkdtempSync(join(tmpdir(), 'kdp-cni-faults-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  t.teardown(() => rmSync(data, { recursive: true, force: true }));
  const list = (name: string, subnet: string): Conflist => bridgeConflist(name, subnet, 'kdpf0', data);
  const ipFiles = (net: string) => reservationFiles(data, net);
  const leftovers = async (lab: Lab, ns: string) => {
    const links = await lab.exec(ns, ['ip', '-j', 'link', 'show', 'master', 'kdpf0'], { allowFailure: true });
    const rules = await lab.exec(ns, ['nft', 'list', 'table', 'inet', 'kdp'], { allowFailure: true });
    return {
      ports: links.code === 0 ? (JSON.parse(links.stdout || '[]') as unknown[]).length : 0,
      rules: [...rules.stdout.matchAll(/comment "kdp-m-/g)].length,
    };
  };

  t.test('DEL killed mid-way, netns gone before DEL, ADD/DEL storm: nothing leaks', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const node = lab.nodes[0]!;
    const d = new CniDriver({ path: [bin], nodeNs: node.ns, timeoutMs: 120_000 });
    const conf = list('faults', '198.19.1.0/24');
    const stdin = CniDriver.pluginConfig(conf, conf.plugins[0]!, {});
    const r = rng(fuzzSeed() + 6);

    // 1. SIGKILL during DEL, then the runtime's retry
    const pods = await Promise.all(Array.from({ length: 8 }, (_, i) => lab.addNamespace(`fd-${i}`)));
    for (const [i, ns] of pods.entries())
      await d.add(conf, { containerID: `fd-${i}`, ifname: 'eth0', netns: `/run/netns/${ns}` });
    const outcomes = await Promise.all(
      pods.map(async (ns, i) => {
        const child = spawn('ip', ['netns', 'exec', node.ns, join(bin, 'kdp-bridge')], {
          stdio: ['pipe', 'ignore', 'ignore'],
          env: {
            PATH: process.env.PATH,
            CNI_COMMAND: 'DEL',
            CNI_CONTAINERID: `fd-${i}`,
            CNI_NETNS: `/run/netns/${ns}`,
            CNI_IFNAME: 'eth0',
            CNI_PATH: bin,
          },
        });
        child.stdin.end(stdin);
        const exited = new Promise<string>((res) => child.on('exit', (code, sig) => res(sig ?? `exit ${code}`)));
        await sleep(Math.floor(r() * 500));
        child.kill('SIGKILL');
        return exited;
      }),
    );
    t.comment(`DEL outcomes: ${outcomes.join(', ')}`);
    await sleep(300);
    for (const [i, ns] of pods.entries()) {
      const res = await d.invoke('kdp-bridge', {
        command: 'DEL',
        containerId: `fd-${i}`,
        ifname: 'eth0',
        netns: `/run/netns/${ns}`,
        stdin,
      });
      t.equal(res.code, 0, `retried DEL fd-${i} succeeds (${res.stdout.trim()})`);
    }
    t.same(ipFiles('faults'), [], 'no reservation left after killed DELs and their retries');
    t.same(await leftovers(lab, node.ns), { ports: 0, rules: 0 }, 'no veth, no rule left');

    // 2. the pod's network namespace is gone before DEL (the runtime tore the sandbox down first)
    const gone = await lab.addNamespace('fd-gone');
    await d.add(conf, { containerID: 'fd-gone', ifname: 'eth0', netns: `/run/netns/${gone}` });
    await run(['ip', 'netns', 'delete', gone]);
    const del = await d.invoke('kdp-bridge', {
      command: 'DEL',
      containerId: 'fd-gone',
      ifname: 'eth0',
      netns: `/run/netns/${gone}`,
      stdin,
    });
    t.equal(del.code, 0, `DEL with the netns gone succeeds (${del.stdout.trim()})`);
    t.same(ipFiles('faults'), [], 'its address is released');
    t.same(
      await leftovers(lab, node.ns),
      { ports: 0, rules: 0 },
      'its masquerade rule is removed (the reference bridge leaks it)',
    );

    // 3. storm: 16 containers, ADD and DEL interleaved concurrently; odd ones stay
    const storm = await Promise.all(Array.from({ length: 16 }, (_, i) => lab.addNamespace(`fs-${i}`)));
    const ops = storm.map(async (ns, i) => {
      const add = await d.invoke('kdp-bridge', {
        command: 'ADD',
        containerId: `fs-${i}`,
        ifname: 'eth0',
        netns: `/run/netns/${ns}`,
        stdin,
      });
      if (i % 2 === 0) {
        const dl = await d.invoke('kdp-bridge', {
          command: 'DEL',
          containerId: `fs-${i}`,
          ifname: 'eth0',
          netns: `/run/netns/${ns}`,
          stdin,
        });
        return { i, add: add.code, del: dl.code, ip: undefined };
      }
      return {
        i,
        add: add.code,
        del: 0,
        ip: (add.json as { ips?: { address: string }[] } | undefined)?.ips?.[0]?.address,
      };
    });
    const res = await Promise.all(ops);
    t.same(
      res.filter((x) => x.add !== 0 || x.del !== 0),
      [],
      'every ADD and DEL of the storm succeeded',
    );
    const kept = res.filter((x) => x.ip !== undefined).map((x) => x.ip);
    t.equal(new Set(kept).size, 8, '8 distinct addresses for the 8 kept containers');
    const owners = ipFiles('faults')
      .map((f) => readFileSync(join(data, 'faults', f), 'utf8').split('\r\n')[0])
      .sort();
    t.same(
      owners,
      res
        .filter((x) => x.i % 2 === 1)
        .map((x) => `fs-${x.i}`)
        .sort(),
      'exactly the kept containers hold a reservation',
    );
    t.same(await leftovers(lab, node.ns), { ports: 8, rules: 8 }, 'and exactly their veths and rules exist');
  });

  t.test('IPAM data directory on a full disk: the spec error, nothing half-written, reusable once freed', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'kdp-ipam-full-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    // a private mount namespace: the tmpfs exists only for the helper and disappears with it
    const helper = fileURLToPath(new URL('../helpers/ipam-disk-full.ts', import.meta.url));
    const out = await run(
      ['unshare', '--mount', '--propagation', 'private', '--', process.execPath, helper, bin, dir],
      { timeoutMs: 120_000 },
    );
    const r = JSON.parse(out.stdout.trim().split('\n').pop()!) as {
      first: { code: number; stdout: string };
      full: { code: number; stdout: string };
      files: { f: string; size: number; text: string }[];
      retry: { code: number; stdout: string };
      del: { code: number };
    };
    t.equal(r.first.code, 0, 'an ADD with room succeeds');
    t.not(r.full.code, 0, 'an ADD on the full disk fails');
    const err = JSON.parse(r.full.stdout) as { code: number; msg: string };
    t.equal(err.code, 5, `with the spec's I/O error code 5 (${err.msg})`);
    const reservations = r.files.filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f.f));
    t.same(
      reservations.map((f) => f.text.split('\r\n')[0]),
      ['first'],
      'no half-written reservation for the failed ADD',
    );
    t.equal(r.retry.code, 0, `once space is freed the same container gets an address (${r.retry.stdout.trim()})`);
    t.equal(r.del.code, 0, 'and releases it');
    t.same(readdirSync(dir), [], 'the tmpfs was private to the helper: nothing under the directory here');
  });
}
