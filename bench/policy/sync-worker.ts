// Runs INSIDE a lab node namespace (started by bench/policy/run.ts): the policy agent on the controller kernel
// with a fake source holding N policies x 100 pods, applying to the namespace's real nft table:
//   - full sync: start to settled (compile, render, nft -f), and the render alone;
//   - one policy change: put one changed policy, until settled (compile, render, the difference through the
//     agent's `nft -i` session), several times;
//   - the parts apart: a from-scratch compile + render of the whole table (renderMs) and `nft -f` of its script
//     into the namespace alone (nftMs, with the CPU of the nft child).
// The agent runs as `kdp policy-agent` does: with incrementalRender (only what a change touches is redone).
// Prints one JSON line per size. argv: sizes (1000), changes (7).
import { Registry } from 'prom-client';
import { defaultExec } from '../../src/common/exec-adapter.ts';
import { silentLogger } from '../../src/common/log.ts';
import { Controller } from '../../src/k8s/controller.ts';
import { FakeSource } from '../../src/k8s/testing/fake-source.ts';
import { NftPolicyTable, PolicyAgent, PolicyMetrics } from '../../src/policy/agent.ts';
import { incrementalRender, renderForNode } from '../../src/policy/sync.ts';
import { cpuMs } from '../proxy/cpu.ts';
import { allowClient, clientEgress, namespaces, pods, policy } from './gen.ts';

const sizes = (process.argv[2] ?? '1000').split(',').map(Number);
const changes = Number(process.argv[3] ?? 7);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

for (const n of sizes) {
  const table = new NftPolicyTable({ exec: defaultExec });
  await table.remove();
  const src = new FakeSource();
  for (const o of [...namespaces(), ...pods(), allowClient(), clientEgress()]) src.put(o);
  for (let i = 0; i < n; i++) src.put(policy(i));
  const registry = new Registry();
  const agent = new PolicyAgent({
    nodeName: 'node-1',
    table,
    render: incrementalRender(),
    podCidrs: ['198.19.0.0/16'],
    log: silentLogger,
    metrics: new PolicyMetrics(registry, () => table.counters()),
  });
  const ctl = new Controller(src, agent, { log: silentLogger, minIntervalMs: 0 });
  // as `kdp policy-agent` does before its source starts: the table closed (this opens the agent's nft session)
  await agent.start();
  let t0 = performance.now();
  let c0 = cpuMs();
  await src.start();
  await ctl.settled();
  const full = performance.now() - t0;
  const fullCpu = cpuMs() - c0;
  const one: number[] = [];
  const oneCpu: number[] = [];
  /** this process alone (compile, render, difference): the rest of oneCpu is nft and the kernel */
  const oneSelf: number[] = [];
  const selfMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  for (let g = 1; g <= changes; g++) {
    const idx = Math.floor((n * g) / (changes + 1));
    t0 = performance.now();
    c0 = cpuMs();
    const s0 = selfMs();
    src.put(policy(idx, g));
    await ctl.settled();
    one.push(performance.now() - t0);
    oneSelf.push(selfMs() - s0);
    oneCpu.push(cpuMs() - c0);
  }
  await ctl.stop();
  // the parts apart, after the changes (the garbage of a from-scratch render is not the changes' to collect)
  t0 = performance.now();
  c0 = cpuMs();
  const rendered = renderForNode(src.view, 'node-1', 'kdp-policy');
  const script = rendered.script;
  const renderMs = performance.now() - t0;
  const renderCpu = cpuMs() - c0;
  // the whole script by `nft -f` alone (the table is replaced: same content)
  t0 = performance.now();
  c0 = cpuMs();
  await defaultExec.run(['nft', '-f', '-'], { input: script, timeoutMs: 120_000 });
  const nftMs = performance.now() - t0;
  const nftCpu = cpuMs() - c0;
  process.stdout.write(
    JSON.stringify({
      kind: 'sync',
      policies: n,
      pods: 100,
      rules: rendered.rules,
      sets: rendered.sets,
      scriptKB: Math.round(script.length / 1024),
      fullMs: Math.round(full),
      renderMs: Math.round(renderMs),
      nftMs: Math.round(nftMs),
      oneChangeMsMedian: +median(one).toFixed(1),
      oneChangeMs: one.map((x) => +x.toFixed(1)),
      cpuMs: {
        full: Math.round(fullCpu),
        render: Math.round(renderCpu),
        nft: Math.round(nftCpu),
        oneChangeMedian: Math.round(median(oneCpu)),
        oneChange: oneCpu.map((x) => Math.round(x)),
        oneChangeAgentOnly: oneSelf.map((x) => Math.round(x)),
      },
    }) + '\n',
  );
  if (process.argv[4] !== 'keep') await table.remove();
  table.close();
}
