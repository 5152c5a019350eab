// The policy agent itself, on the upstream model's lab (netpol-harness.ts), with real packets:
//   - fail closed: an agent that has not synced yet (its source never answers) installs a closed table: new
//     forwarded connections from and to pods are dropped, node -> local pod stays open (kubelet probes); a
//     restart while a denied probe loop runs lets zero probes through and breaks no allowed flow (the table
//     stays across the restart and the re-sync replaces it atomically);
//   - changes apply to new connections within 1 s: a policy, a pod's labels, a namespace's labels, a pod's IP;
//   - Service traffic is judged at the endpoint pod after the proxy's DNAT (ClusterIP and NodePort);
//   - same-node traffic across the bridge is policed (the agent turns bridge-nf-call-iptables on);
//   - metrics: sync duration, rules, per-policy drop counters.
import t from 'tap';
import type { Test } from 'tap';
import { loadavg } from 'node:os';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needsRoot } from '../helpers/gate.ts';
import { PROBE } from '../helpers/pods.ts';
import { CLI, NetpolLab, policyAgentArgv } from './netpol-harness.ts';
import type { ModelPod } from './netpol-harness.ts';

const SVC_CIDR = '10.96.0.0/16';

function netpol(ns: string, name: string, spec: object): object {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: ns, name }, spec };
}

/** x/a accepts ingress only from the peers given (TCP 80). */
const allowTo = (peers: object[]) =>
  netpol('x', 'allow-to-a', {
    podSelector: { matchLabels: { pod: 'a' } },
    policyTypes: ['Ingress'],
    ingress: [{ from: peers, ports: [{ port: 80, protocol: 'TCP' }] }],
  });

const denyAllIngressX = netpol('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress'] });

if (needsRoot(t)) {
  const nl = await NetpolLab.create(t, 'agent');
  const [n1, n2] = nl.lab.nodes as [(typeof nl.lab.nodes)[0], (typeof nl.lab.nodes)[0]];
  const P = (k: string) => nl.pod(k);

  /** One TCP probe from -> to:port; true when it connected. */
  const tcp = async (from: ModelPod, host: string, port = 80, timeoutMs = 1000) =>
    (await nl.probeFrom(from, [{ proto: 'tcp', host, port, timeoutMs }]))[0] === 'connected';

  /** A TCP connect from a lab namespace that is no pod (a node, the underlay). */
  const connectFrom = async (ns: string, host: string, port: number) =>
    /^connected/.test(
      (await nl.lab.exec(ns, [...PROBE, 'connect', host, String(port), '1000'], { allowFailure: true })).stdout,
    );

  /**
   * Applies `change` (a manifest write) and probes each from -> to every 50 ms until a probe gives its `want`: per
   * probe, the ms from the write to the start of the first probe that saw the new verdict (a probe's own timeout
   * is not part of the agent's delay); Infinity after 10 s.
   */
  async function flipTimes(
    change: () => void,
    probes: readonly { from: ModelPod; to: () => string; want: boolean }[],
  ): Promise<number[]> {
    const t0 = Date.now();
    change();
    return Promise.all(
      probes.map(async ({ from, to, want }) => {
        for (;;) {
          const started = Date.now();
          if ((await tcp(from, to(), 80, 250)) === want) return started - t0;
          if (Date.now() - t0 > 10_000) return Infinity;
          await new Promise((r) => setTimeout(r, 50));
        }
      }),
    );
  }
  const flipTime = async (change: () => void, from: ModelPod, to: () => string, want: boolean) =>
    (await flipTimes(change, [{ from, to, want }]))[0]!;

  /**
   * The 1 s promise of issue #15, asserted while the machine is not overloaded: on the shared 2-core box at a load
   * of 20+ a node process gets a sliver of a core (as in overlay-auto.test.ts), so above a load of 4 the figure is
   * recorded and only a gross regression (5 s) fails.
   */
  function within1s(t: Test, what: string, ms: number): void {
    const load = loadavg()[0]!;
    const bound = load < 4 ? 1000 : 5000;
    t.comment(`${what}: ${ms} ms (load ${load.toFixed(1)})`);
    t.ok(ms <= bound, `${what} within ${bound} ms: ${ms} ms at load ${load.toFixed(1)}`);
  }

  t.test('policies are enforced on same-node (bridged) and cross-node (routed) traffic', async (t) => {
    const before = await nl.mark();
    nl.writePolicies([denyAllIngressX]);
    await nl.waitSynced(before);
    // x/a and x/c are on node-1 with y/b and z/a; x/b on node-2 with y/a
    t.equal(P('x/a').node, n1);
    t.equal(P('y/b').node, n1);
    t.equal(P('y/a').node, n2);
    t.notOk(await tcp(P('y/b'), P('x/a').ip), 'same node, across the bridge: denied');
    t.notOk(await tcp(P('y/a'), P('x/a').ip), 'across nodes: denied');
    t.ok(await tcp(P('x/a'), P('y/b').ip), 'egress from x is not isolated');
    t.ok(await tcp(P('y/a'), P('y/b').ip), 'other namespaces are open');
    const sysctl = await nl.lab.exec(n1.ns, ['sysctl', '-n', 'net.bridge.bridge-nf-call-iptables']);
    t.equal(sysctl.stdout.trim(), '1', 'bridged frames reach the inet forward hook (br_netfilter)');
    t.ok(await connectFrom(n1.ns, P('x/a').ip, 80), 'node -> local pod (kubelet probes) is not policed');
    const m = await nl.metrics(n1);
    t.match(m, /^kdp_policy_sync_duration_seconds_count [1-9]/m, 'sync duration histogram');
    t.match(m, /^kdp_policy_rules [1-9]/m, 'rules programmed');
    t.match(m, /^kdp_policy_sets [1-9]/m, 'sets and maps programmed');
    t.match(m, /^kdp_policy_selected_pods 2$/m, 'x/a and x/c, the pods of x on node-1, are governed');
    t.match(m, /^kdp_policy_drop_packets\{[^}]*policy="[^"]*deny-all[^"]*"\} [1-9]/m, 'the policy counted its drops');
  });

  t.test('bridged traffic is policed even when bridge-nf-call-iptables was off: the agent turns it on', async (t) => {
    await nl.stopAgent(n1);
    await nl.lab.exec(n1.ns, ['sysctl', '-q', '-w', 'net.bridge.bridge-nf-call-iptables=0']);
    await nl.startAgent(n1);
    const v = await nl.lab.exec(n1.ns, ['sysctl', '-n', 'net.bridge.bridge-nf-call-iptables']);
    t.equal(v.stdout.trim(), '1');
    t.notOk(await tcp(P('y/b'), P('x/a').ip), 'same node, across the bridge: still denied');
  });

  t.test('fail closed: no window for a denied flow across agent restarts', async (t) => {
    let before = await nl.mark();
    nl.writePolicies([]);
    await nl.waitSynced(before);
    before = await nl.mark();
    nl.writePolicies([denyAllIngressX]);
    await nl.waitSynced(before);
    let stop = false;
    const counts = { deniedOk: 0, denied: 0, allowedFail: 0, allowed: 0 };
    // denied: y/b -> x/a (same node), y/a -> x/c (cross node); allowed: y/a -> y/b, x/a -> z/b
    const loop = (async () => {
      while (!stop) {
        const [d1, d2, a1, a2] = await Promise.all([
          tcp(P('y/b'), P('x/a').ip, 80, 300),
          tcp(P('y/a'), P('x/c').ip, 80, 300),
          tcp(P('y/a'), P('y/b').ip, 80, 3000),
          tcp(P('x/a'), P('z/b').ip, 80, 3000),
        ]);
        counts.denied += 2;
        counts.deniedOk += Number(d1) + Number(d2);
        counts.allowed += 2;
        counts.allowedFail += Number(!a1) + Number(!a2);
      }
    })();
    // a crash (SIGKILL) on node-1 and a clean stop on node-2, each followed by a new agent
    await nl.stopAgent(n1, 'SIGKILL');
    await nl.stopAgent(n2, 'SIGTERM');
    const kept = await nl.lab.exec(n1.ns, ['nft', 'list', 'table', 'inet', 'kdp-policy'], { allowFailure: true });
    t.equal(kept.code, 0, 'the table outlives the agent');
    await new Promise((r) => setTimeout(r, 1000));
    await Promise.all([nl.startAgent(n1), nl.startAgent(n2)]);
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await loop;
    t.ok(counts.denied >= 8, `the denied loop ran (${counts.denied} probes)`);
    t.equal(counts.deniedOk, 0, 'zero denied probes got through');
    t.equal(counts.allowedFail, 0, `no allowed probe failed (${counts.allowed} probes)`);
  });

  t.test(
    'fail closed: before its first sync a fresh agent opens nothing, the node still reaches its pods',
    async (t) => {
      await Promise.all([nl.stopAgent(n1), nl.stopAgent(n2)]);
      await nl.lab.exec(n1.ns, [process.execPath, CLI, 'policy-agent', 'cleanup']);
      t.ok(await tcp(P('y/b'), P('x/a').ip), 'no table: open');
      // an API server that never answers: the agent starts, closes the table and waits for its first list
      const kubeconfig = join(nl.dir, '..', `kdp-netpol-unreachable-${process.pid}.yaml`);
      writeFileSync(
        kubeconfig,
        [
          'apiVersion: v1',
          'kind: Config',
          'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]',
          'users: [{name: u, user: {token: x}}]',
          'contexts: [{name: c, context: {cluster: c, user: u}}]',
          'current-context: c',
        ].join('\n'),
      );
      t.teardown(() => rmSync(kubeconfig, { force: true }));
      const blind = nl.lab.spawn(
        n1.ns,
        policyAgentArgv(n1, ['--kubeconfig', kubeconfig], { clusterCidr: nl.lab.plan.clusterCidr4, metrics: '' }),
      );
      const end = Date.now() + 60_000;
      while (!/policy table closed until the first sync/.test(blind.output())) {
        if (Date.now() > end) throw new Error(`the agent did not close the table: ${blind.output()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      t.notOk(await tcp(P('y/b'), P('x/a').ip), 'same node: closed');
      t.notOk(await tcp(P('y/a'), P('x/c').ip), 'into node-1 from node-2: closed');
      t.notOk(await tcp(P('x/a'), P('z/b').ip), 'out of node-1: closed');
      t.ok(await tcp(P('x/b'), P('y/a').ip), 'node-2 (its agent stopped, its table kept) is as it was');
      t.ok(await connectFrom(n1.ns, P('x/a').ip, 80), 'node-1 -> its pod x/a: still reachable (kubelet probes)');
      blind.kill('SIGKILL');
      await blind.exited;
      await Promise.all([nl.startAgent(n1), nl.startAgent(n2)]);
      t.ok((await tcp(P('y/b'), P('x/c').ip, 80, 2000)) === false, 'synced: deny-all in x holds');
      t.ok(await tcp(P('x/a'), P('z/b').ip, 80, 2000), 'synced: the rest is open again');
    },
  );

  t.test('changes apply to new connections within 1 s', async (t) => {
    const before = await nl.mark();
    nl.resetLabels();
    nl.writePolicies([]);
    await nl.waitSynced(before);
    // a policy
    const policyMs = await flipTime(
      () => nl.writePolicies([denyAllIngressX]),
      P('y/a'),
      () => P('x/a').ip,
      false,
    );
    within1s(t, 'a new policy denies', policyMs);
    // a pod's labels: x/a accepts pods labelled role=client from any namespace
    const byPod = allowTo([{ namespaceSelector: {}, podSelector: { matchLabels: { role: 'client' } } }]);
    let mark = await nl.mark();
    nl.writePolicies([byPod]);
    await nl.waitSynced(mark);
    t.notOk(await tcp(P('y/c'), P('x/a').ip));
    const labelMs = await flipTime(
      () => nl.setPodLabels('y/c', { pod: 'c', role: 'client' }),
      P('y/c'),
      () => P('x/a').ip,
      true,
    );
    within1s(t, 'a pod label change allows', labelMs);
    // a namespace's labels
    const byNs = allowTo([{ namespaceSelector: { matchLabels: { team: 'blue' } } }]);
    mark = await nl.mark();
    nl.writePolicies([byNs]);
    await nl.waitSynced(mark);
    t.notOk(await tcp(P('z/b'), P('x/a').ip));
    const nsMs = await flipTime(
      () => nl.setNamespaceLabels('z', { ns: 'z', team: 'blue' }),
      P('z/b'),
      () => P('x/a').ip,
      true,
    );
    within1s(t, 'a namespace label change allows', nsMs);
    // a pod's IP: y/c (allowed by its labels) comes back with another address, and a new pod takes its old one
    // (z/b, no role label, on the same node): until the Pods are written the agents still know the old address as
    // y/c's, so the newcomer is let in (as in any cluster before the API server has the new pod); once written, y/c
    // is allowed on its new address and the reused address is denied
    mark = await nl.mark();
    nl.setNamespaceLabels('z', { ns: 'z' });
    nl.writePolicies([byPod]);
    await nl.waitSynced(mark);
    t.ok(await tcp(P('y/c'), P('x/a').ip, 80, 2000), 'y/c role=client: allowed');
    t.notOk(await tcp(P('z/b'), P('x/a').ip), 'z/b: denied');
    const old = P('y/c').ip;
    const fresh = old.replace(/\.\d+$/, '.200');
    await nl.changeIp('y/c', fresh);
    await nl.changeIp('z/b', old);
    t.equal(P('y/c').ip, fresh);
    t.equal(P('z/b').ip, old, "z/b has y/c's old address");
    t.notOk(await tcp(P('y/c'), P('x/a').ip), 'the new address is not in the policy yet');
    t.ok(await tcp(P('z/b'), P('x/a').ip, 80, 2000), 'the reused address still counts as y/c until the Pods change');
    const [ipMs, reusedMs] = await flipTimes(
      () => nl.writeCluster(),
      [
        { from: P('y/c'), to: () => P('x/a').ip, want: true },
        { from: P('z/b'), to: () => P('x/a').ip, want: false },
      ],
    );
    within1s(t, "a pod's new IP is allowed", ipMs!);
    within1s(t, 'a reused IP (a new pod without the label) is denied', reusedMs!);
    mark = await nl.mark();
    nl.resetLabels();
    nl.writePolicies([]);
    await nl.waitSynced(mark);
  });

  t.test('Service traffic is judged at the endpoint pod after DNAT (ClusterIP, NodePort)', async (t) => {
    // kdp proxy on both nodes; a Service for x/a (ClusterIP 10.96.0.80, NodePort 30080)
    await Promise.all(
      nl.lab.nodes.map((n) => nl.lab.exec(n.ns, ['ip', 'route', 'add', SVC_CIDR, 'via', nl.lab.plan.underlayHost4])),
    );
    writeFileSync(
      join(nl.dir, 'svc.json'),
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { namespace: 'x', name: 's-x-a' },
        spec: {
          type: 'NodePort',
          clusterIP: '10.96.0.80',
          clusterIPs: ['10.96.0.80'],
          selector: { pod: 'a' },
          ports: [{ name: 'tcp-80', protocol: 'TCP', port: 80, targetPort: 80, nodePort: 30080 }],
        },
      }),
    );
    const proxies = nl.lab.nodes.map((n) =>
      nl.lab.spawn(n.ns, [
        process.execPath,
        CLI,
        '--log-format',
        'json',
        'proxy',
        '--mode',
        'nftables',
        '--manifests',
        nl.dir,
        '--node-name',
        n.name,
        '--cluster-cidr',
        nl.lab.plan.clusterCidr4,
        '--min-sync-period',
        '0s',
        '--healthz-bind-address',
        '',
        '--metrics-bind-address',
        '',
      ]),
    );
    t.teardown(() => proxies.forEach((p) => p.kill('SIGKILL')));
    const end = Date.now() + 60_000;
    while (!proxies.every((p) => /^ready$/m.test(p.output()))) {
      if (Date.now() > end) throw new Error(`kdp proxy did not start: ${proxies.map((p) => p.output()).join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const vip = '10.96.0.80';
    // open: the VIP works from everywhere
    for (const k of ['x/b', 'y/b', 'y/a'])
      t.ok(await waitTrue(() => tcp(P(k), vip, 80, 1000)), `${k} -> ClusterIP: allowed (no policy)`);
    // x/a accepts only pods of its own namespace
    let mark = await nl.mark();
    nl.writePolicies([allowTo([{ podSelector: {} }])]);
    await nl.waitSynced(mark);
    t.ok(await tcp(P('x/b'), vip, 80, 2000), 'x/b -> ClusterIP -> x/a: allowed, as to the pod');
    t.notOk(await tcp(P('y/b'), vip), 'y/b -> ClusterIP -> x/a (same node): denied, as to the pod');
    t.notOk(await tcp(P('y/a'), vip), 'y/a -> ClusterIP -> x/a (across nodes): denied, as to the pod');
    // NodePort from the underlay (an outside client) to node-1, where x/a runs: the forward hook sees the
    // client's own address (the proxy's masquerade comes after, in postrouting)
    const outside = () => connectFrom(nl.lab.underlay, n1.ip4, 30080);
    t.notOk(await outside(), 'underlay -> NodePort -> x/a: denied (not a pod of x)');
    mark = await nl.mark();
    nl.writePolicies([allowTo([{ podSelector: {} }, { ipBlock: { cidr: `${nl.lab.plan.underlayHost4}/32` } }])]);
    await nl.waitSynced(mark);
    t.ok(await waitTrue(outside), 'underlay -> NodePort -> x/a: allowed by its ipBlock');
    t.notOk(await tcp(P('y/b'), vip), 'y/b -> ClusterIP still denied');
    mark = await nl.mark();
    nl.writePolicies([]);
    await nl.waitSynced(mark);
  });
}

t.test('a sync sent as a difference leaves the kernel with exactly the full table', async (t) => {
  // the agent's own path (incremental compile and render, deltas through the nft -i session) in a scratch
  // namespace of its own, checked after every change against the from-scratch script applied in full
  if (!needsRoot(t)) return;
  const { Lab } = await import('../../src/lab/lab.ts');
  const { FakeSource } = await import('../../src/k8s/testing/fake-source.ts');
  const { Controller } = await import('../../src/k8s/controller.ts');
  const { silentLogger } = await import('../../src/common/log.ts');
  const { NftPolicyTable, PolicyAgent } = await import('../../src/policy/agent.ts');
  const { incrementalRender, renderForNode } = await import('../../src/policy/sync.ts');
  const gen = await import('../../bench/policy/gen.ts');
  const lab = await Lab.create({ nodes: 1 });
  t.teardown(() => lab.destroy());
  const ns = lab.nodes[0]!.ns;
  // the table's content, order-free: one entry per rule, declaration or element
  const content = async () =>
    (await lab.exec(ns, ['nft', 'list', 'table', 'inet', 'kdp-policy'])).stdout
      .split(/[\n,]/)
      .map((l) =>
        l
          .trim()
          .replace(/ ?\}$/, '')
          .replace(/^elements = \{ ?/, '')
          .trim(),
      )
      .filter(Boolean)
      .sort()
      .join('\n');
  const table = new NftPolicyTable({ argvPrefix: ['ip', 'netns', 'exec', ns] });
  t.teardown(() => table.close());
  const src = new FakeSource();
  for (const o of [...gen.namespaces(), ...gen.pods().slice(0, 40), gen.allowClient()]) src.put(o);
  for (let i = 0; i < 60; i++) src.put(gen.policy(i));
  const agent = new PolicyAgent({
    nodeName: 'node-1',
    table,
    render: incrementalRender(),
    podCidrs: ['198.19.0.0/16'],
  });
  await agent.start();
  const ctl = new Controller(src, agent, { log: silentLogger });
  t.teardown(() => ctl.stop());
  await src.start();
  await ctl.settled();
  t.equal(agent.lastApply, 'full', 'the first sync replaces the closed table');
  const pods = gen.pods();
  const changes: [string, () => void][] = [
    ['a policy changes its ports and except', () => src.put(gen.policy(12, 1))],
    ['a policy goes', () => src.remove('NetworkPolicy', 'ns-7/np-7')],
    ['it comes back', () => src.put(gen.policy(7))],
    ['a pod changes labels', () => src.put({ ...pods[13]!, meta: { ...pods[13]!.meta, labels: { app: 'zz' } } })],
    ['a pod goes', () => src.remove('Pod', 'ns-3/p23')],
    ['a pod comes', () => src.put(pods[45]!)],
    ['a pod changes its IP', () => src.put({ ...pods[14]!, podIPs: ['198.19.1.250'] })],
    [
      'a namespace changes its labels',
      () => {
        const n = gen.namespaces()[4]!;
        src.put({ ...n, meta: { ...n.meta, labels: { ...n.meta.labels, team: 't9' } } });
      },
    ],
  ];
  for (const [what, change] of changes) {
    change();
    await ctl.settled();
    const got = await content();
    const scratch = renderForNode(src.view, 'node-1', 'kdp-policy').script;
    t.equal(agent.last!.script, scratch, `${what}: the incremental render is the from-scratch one`);
    await lab.exec(ns, ['nft', '-f', '-'], { input: scratch });
    t.equal(agent.lastApply, 'delta', `${what}: sent as a difference`);
    t.equal(got, await content(), `${what}: the kernel holds the full script's table`);
  }
});

async function waitTrue(fn: () => Promise<boolean>, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}
