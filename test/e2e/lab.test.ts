// The lab for real: two nodes ping each other over the underlay (IPv4 and IPv6), nodes have no route out
// of the lab, cleanup is complete on destroy, on SIGTERM and (by the sweep) after kill -9, and the root
// namespace's links, addresses, routes and ruleset are byte-identical before and after.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Lab, listNamespaces, sweep } from '../../src/lab/lab.ts';
import { spawnChild } from '../../src/common/exec-adapter.ts';
import { needsRoot } from '../helpers/gate.ts';
import { diffSnapshots, snapshotRootNs } from '../helpers/root-ns.ts';

const KDP = fileURLToPath(new URL('../../bin/kdp', import.meta.url));

async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const runNamespaces = async (runId: string) => (await listNamespaces()).filter((n) => n.startsWith(`kdp-${runId}-`));

if (needsRoot(t)) {
  t.test('two nodes reach each other over the underlay; the root namespace is untouched', async (t) => {
    const before = await snapshotRootNs();
    const lab = await Lab.create({ nodes: 2 });
    t.teardown(() => lab.destroy());
    const [a, b] = lab.nodes;
    if (!a || !b) throw new Error('two nodes expected');
    t.same(
      (await runNamespaces(lab.plan.runId)).sort(),
      [a.ns, b.ns, lab.underlay].sort(),
      'three namespaces, all with the run prefix',
    );

    const p4 = await lab.exec(a.ns, ['ping', '-c', '2', '-i', '0.2', '-W', '2', b.ip4]);
    t.match(p4.stdout, /2 received/, 'node-1 -> node-2 over IPv4');
    const p6 = await lab.exec(b.ns, ['ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', a.ip6]);
    t.match(p6.stdout, /2 received/, 'node-2 -> node-1 over IPv6');
    const fromUnderlay = await lab.exec(lab.underlay, ['ping', '-c', '1', '-W', '2', a.ip4]);
    t.match(fromUnderlay.stdout, /1 received/, 'the underlay host reaches a node');

    // no route out: an address outside the lab is unreachable from a node, without sending anything
    const out = await lab.exec(a.ns, ['ip', 'route', 'get', '192.0.2.1'], { allowFailure: true });
    t.not(out.code, 0, 'a node has no route to a non-lab address');
    t.match(out.stderr, /unreachable/i);
    const routes = await lab.exec(a.ns, ['ip', 'route', 'show']);
    t.notMatch(routes.stdout, /default/, 'no default route in a node');

    const child = lab.spawn(a.ns, ['sleep', '60']);
    await lab.destroy();
    t.equal(await child.exited, null, 'processes inside the lab are killed');
    t.same(await runNamespaces(lab.plan.runId), [], 'every namespace removed');
    await lab.destroy(); // idempotent
    t.same(
      diffSnapshots(before, await snapshotRootNs()),
      [],
      'root namespace byte-identical (links, addrs, routes, rules, ruleset)',
    );
  });

  t.test('two subnets: nodes on different segments reach each other only through the router', async (t) => {
    const before = await snapshotRootNs();
    const lab = await Lab.create({ nodes: 3, subnets: 2 });
    t.teardown(() => lab.destroy());
    const [a, b, c] = lab.nodes;
    if (!a || !b || !c) throw new Error('three nodes expected');
    t.same([a.subnet, b.subnet, c.subnet], [0, 1, 0], 'node-1 and node-3 on segment A, node-2 on B');
    t.same(
      (await runNamespaces(lab.plan.runId)).sort(),
      [a.ns, b.ns, c.ns, lab.underlay].sort(),
      'no namespace beyond the underlay (the router) and the nodes',
    );

    // same segment: direct, TTL untouched (64); other segment: through the router, TTL 63
    const same = await lab.exec(a.ns, ['ping', '-c', '1', '-W', '2', c.ip4]);
    t.match(same.stdout, /ttl=64/, 'node-1 -> node-3 on the same segment: not routed');
    const routed = await lab.exec(a.ns, ['ping', '-c', '2', '-i', '0.2', '-W', '2', b.ip4]);
    t.match(routed.stdout, /2 received/, 'node-1 (A) -> node-2 (B) over IPv4');
    t.match(routed.stdout, /ttl=63/, 'one hop: routed by the underlay');
    const routed6 = await lab.exec(b.ns, ['ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', c.ip6]);
    t.match(routed6.stdout, /2 received/, 'node-2 (B) -> node-3 (A) over IPv6');
    t.match(routed6.stdout, /ttl=63/, 'IPv6: one hop too (hop limit 63)');
    const trace = await lab.exec(a.ns, ['ip', 'route', 'get', b.ip4]);
    t.match(trace.stdout, new RegExp(`via ${a.gateway4.replace(/\./g, '\\.')} dev eth0`), 'via the router');
    for (const n of [b, c])
      t.match(
        (await lab.exec(lab.underlay, ['ping', '-c', '1', '-W', '2', n.ip4])).stdout,
        /1 received/,
        `the underlay (the outside client) reaches ${n.name} on segment ${n.subnet} directly`,
      );

    // a remote node's pod CIDR is not reachable without an overlay: neither the node nor the router has a route
    for (const dst of ['198.19.2.1', 'fd00:198:19:2::1']) {
      const r = await lab.exec(a.ns, ['ip', 'route', 'get', dst], { allowFailure: true });
      t.not(r.code, 0, `node-1 has no route to node-2's pod CIDR (${dst})`);
      t.match(r.stderr, /unreachable/i);
    }
    // and host-gw cannot make one: the remote node is no next hop on node-1's link
    const hostGw = await lab.exec(a.ns, ['ip', 'route', 'add', '198.19.2.0/24', 'via', b.ip4], { allowFailure: true });
    t.not(hostGw.code, 0, 'a host-gw route to a node on the other segment is refused by the kernel');
    t.match(hostGw.stderr, /gateway|unreachable/i, hostGw.stderr.trim());
    const viaRouter = await lab.exec(lab.underlay, ['ip', 'route', 'get', '198.19.2.1'], { allowFailure: true });
    t.not(viaRouter.code, 0, 'the router has no route to a pod CIDR either');
    // and nothing leaves the lab
    for (const n of [a, b, c]) {
      const routes = await lab.exec(n.ns, ['ip', 'route', 'show']);
      t.notMatch(routes.stdout, /default/, `${n.name}: no default route`);
      const out = await lab.exec(n.ns, ['ip', 'route', 'get', '192.0.2.1'], { allowFailure: true });
      t.not(out.code, 0, `${n.name}: no route to a non-lab address`);
    }
    t.notMatch((await lab.exec(lab.underlay, ['ip', 'route', 'show'])).stdout, /default/, 'router: no default route');
    t.notMatch((await lab.exec(lab.underlay, ['ip', '-6', 'route', 'show'])).stdout, /default/, 'nor an IPv6 one');

    await lab.destroy();
    t.same(await runNamespaces(lab.plan.runId), [], 'every namespace removed');
    t.same(diffSnapshots(before, await snapshotRootNs()), [], 'root namespace byte-identical');
  });

  t.test('a failed build removes what it made', async (t) => {
    // a bad exec in the middle of the build: the first ip -n batch fails
    const exec = {
      run: async (argv: readonly string[], opts?: object) => {
        const { run } = await import('../../src/common/exec-adapter.ts');
        if (argv.includes('-n') && argv.includes('-batch')) return run(['sh', '-c', 'echo injected >&2; exit 1'], opts);
        return run(argv, opts);
      },
    };
    const seen = new Set(await listNamespaces());
    await t.rejects(Lab.create({ nodes: 2, exec, sweep: false }), { code: 'KDP_LAB_SETUP', message: /injected/ });
    const now = (await listNamespaces()).filter((n) => !seen.has(n) && n.startsWith(`kdp-${process.pid}-`));
    t.same(now, [], 'nothing left after a failed build');
  });

  t.test('SIGTERM to `kdp lab up` removes its lab', async (t) => {
    const child = spawnChild([KDP, '--log-format', 'json', 'lab', 'up', '--nodes', '2', '--exit-after', '60']);
    t.teardown(() => child.kill('SIGKILL'));
    const runId = await waitFor('lab ready', () => /^lab (\d+-[0-9a-f]{4}):/m.exec(child.output())?.[1]);
    t.equal((await runNamespaces(runId)).length, 3, 'lab is up');
    child.kill('SIGTERM');
    await child.exited;
    t.same(await runNamespaces(runId), [], 'SIGTERM removed every namespace');
  });

  t.test('after kill -9 the next run sweeps what was left, processes inside included', async (t) => {
    const child = spawnChild([KDP, '--log-format', 'json', 'lab', 'up', '--nodes', '1', '--exit-after', '60']);
    t.teardown(() => child.kill('SIGKILL'));
    const runId = await waitFor('lab ready', () => /^lab (\d+-[0-9a-f]{4}):/m.exec(child.output())?.[1]);
    child.kill('SIGKILL');
    await child.exited;
    const left = await runNamespaces(runId);
    t.equal(left.length, 2, 'kill -9 leaves the namespaces behind');
    const inside = spawnChild(['ip', 'netns', 'exec', left[0] as string, 'sleep', '60']);
    t.teardown(() => inside.kill('SIGKILL'));
    await sleep(100);
    const removed = await sweep();
    t.equal(await inside.exited, null, 'the process left running inside was killed');
    // Any concurrent test that builds a lab sweeps too, so another process may have removed some or all of
    // them first: what this sweep removed of this run is a subset of what was left, and none of it belonged to
    // a live run (every name carries its owner's pid).
    const mine = removed.filter((n) => n.includes(runId));
    t.ok(
      mine.every((n) => left.includes(n)),
      'sweep removes only what the killed run left',
    );
    const alive = removed.filter((n) => {
      const pid = Number(/^kdp-(\d+)-/.exec(n)?.[1]);
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    t.same(alive, [], 'sweep removes nothing of a live run');
    t.same(await runNamespaces(runId), [], 'gone');
  });
}
