// CNI plugin latency: kdp (kdp-bridge + in-process kdp-host-local), run as a fresh Node process per
// call ("kdp exec") and forwarded to a warm `kdp cni serve` by the Perl thin client ("kdp serve"), against the reference plugins
// (Debian containernetworking-plugins: bridge + host-local) in the same lab node, same harness, same
// run, interleaved pod by pod so load drift hits both alike. Each sample is the wall time of one plugin
// exec (`ip netns exec NODE plugin`, config on stdin), as a runtime sees it.
//   npm run bench:cni            (PODS=30 by default; needs root). Verbs: ADD, CHECK (prevResult = the ADD result), DEL.
// Prints a markdown table (p50/p95 per verb and implementation, and kdp/reference ratios) and writes
// bench/cni/results/latest.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/common/exec-adapter.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import { startBenchNode } from './node.ts';
import type { Conflist } from '../../src/cnispec/runtime.ts';

const PODS = Number(process.env.PODS ?? 30);
const IFNAME: Record<string, string> = {
  kdp: 'eth0',
  'kdp-serve': 'eth1',
  reference: 'eth2',
  'kdp-serve-plain': 'eth3',
};
const REF = '/usr/lib/cni';
const OUT = fileURLToPath(new URL('./results/', import.meta.url));

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

const bench = await startBenchNode('kdp-cni-bench');
try {
  const { lab, node: n, bin, data } = bench;
  const common = { isGateway: true, ipMasq: true, hairpinMode: true };
  const impls: { name: string; list: Conflist; type: string; driver: CniDriver }[] = [
    {
      name: 'kdp',
      type: 'kdp-bridge',
      driver: new CniDriver({ path: [bin], nodeNs: n.ns, env: { KDP_CNI_SOCKET: join(data, 'no-server.sock') } }),
      list: {
        cniVersion: '1.0.0',
        name: 'benchkdp',
        plugins: [
          {
            type: 'kdp-bridge',
            bridge: 'kdpb0',
            ...common,
            ipam: { type: 'kdp-host-local', ranges: [[{ subnet: '198.19.1.0/26' }]], dataDir: data },
          },
        ],
      },
    },
    {
      name: 'kdp-serve',
      type: 'kdp-bridge',
      driver: new CniDriver({ path: [bin], nodeNs: n.ns, env: { KDP_CNI_SOCKET: bench.sockets.serve } }),
      list: {
        cniVersion: '1.0.0',
        name: 'benchserve',
        plugins: [
          {
            type: 'kdp-bridge',
            bridge: 'kdpb1',
            ...common,
            ipam: { type: 'kdp-host-local', ranges: [[{ subnet: '198.19.1.64/26' }]], dataDir: data },
          },
        ],
      },
    },
    {
      name: 'kdp-serve-plain',
      type: 'kdp-bridge',
      driver: new CniDriver({ path: [bin], nodeNs: n.ns, env: { KDP_CNI_SOCKET: bench.sockets.plain } }),
      list: {
        cniVersion: '1.0.0',
        name: 'benchplain',
        plugins: [
          {
            type: 'kdp-bridge',
            bridge: 'kdpb2',
            ...common,
            ipam: { type: 'kdp-host-local', ranges: [[{ subnet: '198.19.2.0/26' }]], dataDir: data },
          },
        ],
      },
    },
    {
      name: 'reference',
      type: 'bridge',
      driver: new CniDriver({ path: [REF], nodeNs: n.ns }),
      list: {
        cniVersion: '1.0.0',
        name: 'benchref',
        plugins: [
          {
            type: 'bridge',
            bridge: 'refb0',
            ...common,
            ipam: { type: 'host-local', ranges: [[{ subnet: '198.19.1.128/25' }]], dataDir: data },
          },
        ],
      },
    },
  ];
  const samples: Record<string, Record<string, number[]>> = {};
  for (const i of impls) samples[i.name] = { ADD: [], CHECK: [], DEL: [], VERSION: [], VERSION_NODE: [] };
  const added = new Map<string, unknown>(); // `${impl}-${pod}` -> ADD result (CHECK's prevResult)
  const pods: string[] = [];
  for (let p = 0; p < PODS; p++) pods.push(await lab.addNamespace(`bench-${p}`));
  const load0 = loadavg()[0]!;
  // warm-up: one ADD/DEL each (page cache, compile cache)
  for (const i of impls) {
    const conf = CniDriver.pluginConfig(i.list, i.list.plugins[0]!, {});
    await i.driver.invoke(i.type, {
      command: 'ADD',
      containerId: `warm-${i.name}`,
      ifname: 'eth9',
      netns: `/run/netns/${pods[0]}`,
      stdin: conf,
    });
    await i.driver.invoke(i.type, {
      command: 'DEL',
      containerId: `warm-${i.name}`,
      ifname: 'eth9',
      netns: `/run/netns/${pods[0]}`,
      stdin: conf,
    });
  }
  for (const [p, ns] of pods.entries()) {
    for (const i of p % 2 === 0 ? impls : [...impls].reverse()) {
      const conf = CniDriver.pluginConfig(i.list, i.list.plugins[0]!, {});
      const r = await i.driver.invoke(i.type, {
        command: 'ADD',
        containerId: `${i.name}-${p}`,
        ifname: IFNAME[i.name]!,
        netns: `/run/netns/${ns}`,
        stdin: conf,
      });
      if (r.code !== 0) throw new Error(`${i.name} ADD failed: ${r.stdout} ${r.stderr}`);
      samples[i.name]!.ADD!.push(r.ms);
      added.set(`${i.name}-${p}`, r.json);
      const v = await i.driver.invoke(i.type, { command: 'VERSION', stdin: '{"cniVersion":"1.0.0"}' });
      samples[i.name]!.VERSION!.push(v.ms);
    }
  }
  // CHECK of every attachment, with its ADD result as prevResult (as a runtime calls it)
  for (const [p, ns] of pods.entries()) {
    for (const i of p % 2 === 0 ? impls : [...impls].reverse()) {
      const conf = CniDriver.pluginConfig(i.list, i.list.plugins[0]!, {}, added.get(`${i.name}-${p}`));
      const r = await i.driver.invoke(i.type, {
        command: 'CHECK',
        containerId: `${i.name}-${p}`,
        ifname: IFNAME[i.name]!,
        netns: `/run/netns/${ns}`,
        stdin: conf,
      });
      if (r.code !== 0) throw new Error(`${i.name} CHECK failed: ${r.stdout} ${r.stderr}`);
      samples[i.name]!.CHECK!.push(r.ms);
    }
  }
  for (const [p, ns] of pods.entries()) {
    for (const i of p % 2 === 0 ? impls : [...impls].reverse()) {
      const conf = CniDriver.pluginConfig(i.list, i.list.plugins[0]!, {});
      const r = await i.driver.invoke(i.type, {
        command: 'DEL',
        containerId: `${i.name}-${p}`,
        ifname: IFNAME[i.name]!,
        netns: `/run/netns/${ns}`,
        stdin: conf,
      });
      if (r.code !== 0) throw new Error(`${i.name} DEL failed: ${r.stdout}`);
      samples[i.name]!.DEL!.push(r.ms);
    }
  }
  // Back to back: the warm server refills its waiting children once idle, which costs CPU right after each
  // call; above, other implementations' calls sit between two served ADDs. Here the same implementation's ADDs
  // follow each other with no gap (blocks serve, ref, ref, serve of BURST/2 ADDs each), so the next ADD pays
  // whatever the refill still costs; DELs likewise.
  const BURST = Math.min(PODS, 16) & ~1; // even: blocks of BURST/2
  const burst: Record<string, Record<string, number[]>> = {
    'kdp-serve': { ADD: [], DEL: [] },
    reference: { ADD: [], DEL: [] },
  };
  for (const verb of ['ADD', 'DEL'] as const) {
    for (const [b, name] of ['kdp-serve', 'reference', 'reference', 'kdp-serve'].entries()) {
      const i = impls.find((x) => x.name === name)!;
      const conf = CniDriver.pluginConfig(i.list, i.list.plugins[0]!, {});
      const half = BURST / 2;
      for (let k = 0; k < half; k++) {
        const p = (b < 2 ? 0 : 1) * half + k; // each implementation's two blocks use different pods
        const r = await i.driver.invoke(i.type, {
          command: verb,
          containerId: `burst-${name}-${p}`,
          ifname: name === 'reference' ? 'eth6' : 'eth5',
          netns: `/run/netns/${pods[p]}`,
          stdin: conf,
        });
        if (r.code !== 0) throw new Error(`${name} burst ${verb} failed: ${r.stdout} ${r.stderr}`);
        burst[name]![verb]!.push(r.ms);
      }
    }
  }
  // kdp's VERSION through Node itself (what the sh preamble saves a runtime), for the record
  for (let k = 0; k < Math.min(PODS, 15); k++) {
    const t0 = performance.now();
    await run([process.execPath, join(bin, 'kdp-bridge')], {
      input: '{"cniVersion":"1.0.0"}',
      env: { PATH: process.env.PATH, CNI_COMMAND: 'VERSION' },
    });
    samples.kdp!.VERSION_NODE!.push(performance.now() - t0);
  }
  const load1 = loadavg()[0]!;
  const rows: string[] = [];
  const result: Record<string, unknown> = { pods: PODS, loadavg: [load0, load1], date: new Date().toISOString() };
  const f = (x: number) => x.toFixed(1);
  for (const verb of ['ADD', 'CHECK', 'DEL', 'VERSION']) {
    const st = (name: string) => ({ p50: pct(samples[name]![verb]!, 50), p95: pct(samples[name]![verb]!, 95) });
    const line = {
      verb,
      kdp: st('kdp'),
      kdpServe: st('kdp-serve'),
      kdpServePlain: st('kdp-serve-plain'),
      reference: st('reference'),
    };
    result[verb] = line;
    const ratio = (a: { p50: number; p95: number }) =>
      `**${(a.p50 / line.reference.p50).toFixed(2)}** / ${(a.p95 / line.reference.p95).toFixed(2)}`;
    rows.push(
      `| ${verb} | ${f(line.reference.p50)} / ${f(line.reference.p95)} | ${f(line.kdp.p50)} / ${f(line.kdp.p95)} | ${ratio(line.kdp)} | ${f(line.kdpServe.p50)} / ${f(line.kdpServe.p95)} | ${ratio(line.kdpServe)} | ${ratio(line.kdpServePlain)} |`,
    );
  }
  const bst = (name: string, verb: string) => ({
    p50: pct(burst[name]![verb]!, 50),
    p95: pct(burst[name]![verb]!, 95),
  });
  const burstRows = ['ADD', 'DEL'].map((verb) => {
    const s = bst('kdp-serve', verb);
    const r = bst('reference', verb);
    result[`BURST_${verb}`] = { kdpServe: s, reference: r };
    return `| ${verb} back to back | ${f(r.p50)} / ${f(r.p95)} | ${f(s.p50)} / ${f(s.p95)} | **${(s.p50 / r.p50).toFixed(2)}** / ${(s.p95 / r.p95).toFixed(2)} |`;
  });
  const vn = samples.kdp!.VERSION_NODE!;
  result.VERSION_NODE = { p50: pct(vn, 50), p95: pct(vn, 95) };
  const table = [
    `PODS=${PODS}, loadavg ${load0.toFixed(1)} -> ${load1.toFixed(1)}`,
    '',
    '| verb | reference p50 / p95 (ms) | kdp exec p50 / p95 (ms) | kdp exec / ref | kdp serve p50 / p95 (ms) | kdp serve / ref | serve --no-prespawn / ref |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `| ${BURST} calls, no gap | reference p50 / p95 (ms) | kdp serve p50 / p95 (ms) | kdp serve / ref |`,
    '|---|---|---|---|',
    ...burstRows,
    '',
    `kdp VERSION answered by Node instead of the sh preamble: p50 ${pct(vn, 50).toFixed(1)} ms, p95 ${pct(vn, 95).toFixed(1)} ms`,
  ].join('\n');
  process.stdout.write(table + '\n');
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, 'latest.json'), JSON.stringify({ ...result, samples, burst }, null, 2) + '\n');
} finally {
  await bench.close();
}
