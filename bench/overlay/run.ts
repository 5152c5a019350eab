// Pod-to-pod data path, side by side in one run (issue #14): TCP throughput (iperf3, or a node:net bulk sender
// when iperf3 is missing) and request/response latency p50/p99 (bench/overlay/rr.ts, one 1-byte request at a
// time on one connection) over
//   same-node     two pods on one node (the kdp0 bridge)
//   host-gw       pods on two nodes of one subnet, `kdp node-agent --backend host-gw` (the reference)
//   vxlan         pods on two nodes of one subnet, `--backend vxlan`: the encapsulation alone
//   vxlan-routed  pods on two nodes of two subnets, `--backend vxlan`: the path host-gw cannot take (one more
//                 forwarding hop, the lab's router)
// Each lab is built by the e2e tests' harness (test/helpers/overlay.ts: real agents, real kdp CNI plugins, the
// agent's conflist MTU). The paths are measured round-robin, RUNS rounds (default 3); medians per path, ratios
// against host-gw. Needs root (network namespaces).
//   npm run bench:overlay [-- --runs 3 --seconds 4 --json FILE]
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { isRoot } from '../../src/lab/lab.ts';
import { run } from '../../src/common/exec-adapter.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';
import { OverlayCluster } from '../../test/helpers/overlay.ts';
import type { Backend, OverlayPod } from '../../test/helpers/overlay.ts';
import { waitFor } from '../../src/cni/testing/fixtures.ts';

const RR = fileURLToPath(new URL('./rr.ts', import.meta.url));
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: process.env.RUNS ?? '3' },
    seconds: { type: 'string', default: '4' },
    json: { type: 'string' },
    only: { type: 'string' },
  },
});
const RUNS = Number(values.runs);
const SECONDS = Number(values.seconds);
const IPERF_PORT = 5201;
const RR_PORT = 7001;
const SINK_PORT = 7002;

interface Path {
  readonly name: string;
  readonly cluster: OverlayCluster;
  readonly from: OverlayPod;
  readonly to: OverlayPod;
}

interface Sample {
  readonly gbps: number;
  /** Gbit moved per CPU-second of the iperf3 sender + receiver processes (the kernel's work is mostly charged to them) */
  readonly gbPerCpu: number;
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
  /** the round's RR latencies, [us, count] */
  readonly hist: readonly [number, number][];
}

async function haveIperf(): Promise<boolean> {
  const r = await run(['iperf3', '--version'], { allowFailure: true }).catch(() => undefined);
  return r?.code === 0;
}

async function cluster(backend: Backend, subnets: 1 | 2): Promise<OverlayCluster> {
  const c = await OverlayCluster.create({ nodes: 2, subnets, backend, logLevel: 'warn' });
  await c.startAgents();
  return c;
}

async function serve(c: OverlayCluster, pod: OverlayPod, iperf: boolean): Promise<Spawned[]> {
  const procs = [
    c.lab.spawn(pod.ns, [process.execPath, RR, 'server', String(RR_PORT)]),
    iperf
      ? c.lab.spawn(pod.ns, ['iperf3', '-s', '-p', String(IPERF_PORT), '--forceflush'])
      : c.lab.spawn(pod.ns, [process.execPath, RR, 'sink', String(SINK_PORT)]),
  ];
  await waitFor(
    `servers in ${pod.name}`,
    () => procs.every((p) => /ready|Server listening/.test(p.output())) || undefined,
    60_000,
  );
  return procs;
}

/** The path works (a first RR exchange answers) before it is measured: routes, neighbours and fdb are in. */
async function warm(p: Path): Promise<void> {
  await waitFor(
    `${p.name}: ${p.from.ip4} -> ${p.to.ip4}`,
    async () => {
      const r = await p.cluster.lab.exec(
        p.from.ns,
        [process.execPath, RR, 'client', p.to.ip4, String(RR_PORT), '0.2'],
        { allowFailure: true, timeoutMs: 10_000 },
      );
      return r.code === 0 || undefined;
    },
    60_000,
  );
}

async function measure(p: Path, iperf: boolean): Promise<Sample> {
  const { lab } = p.cluster;
  let gbps: number;
  let gbPerCpu = NaN;
  if (iperf) {
    const r = await lab.exec(
      p.from.ns,
      ['iperf3', '-c', p.to.ip4, '-p', String(IPERF_PORT), '-t', String(SECONDS), '-O', '1', '-J'],
      { timeoutMs: (SECONDS + 30) * 1000 },
    );
    const j = JSON.parse(r.stdout) as {
      end: {
        sum_received: { bits_per_second: number };
        cpu_utilization_percent: { host_total: number; remote_total: number };
      };
    };
    gbps = j.end.sum_received.bits_per_second / 1e9;
    const cpu = j.end.cpu_utilization_percent;
    gbPerCpu = gbps / ((cpu.host_total + cpu.remote_total) / 100);
  } else {
    const r = await lab.exec(p.from.ns, [process.execPath, RR, 'blast', p.to.ip4, String(SINK_PORT), String(SECONDS)], {
      timeoutMs: (SECONDS + 30) * 1000,
    });
    gbps = (JSON.parse(r.stdout) as { bitsPerSecond: number }).bitsPerSecond / 1e9;
  }
  const r = await lab.exec(p.from.ns, [process.execPath, RR, 'client', p.to.ip4, String(RR_PORT), String(SECONDS)], {
    timeoutMs: (SECONDS + 30) * 1000,
  });
  const rr = JSON.parse(r.stdout) as { p50: number; p99: number; mean: number; hist: [number, number][] };
  return { gbps, gbPerCpu, p50: rr.p50, p99: rr.p99, mean: rr.mean, hist: rr.hist };
}

/** A quantile of every round's RR samples pooled (the paths were measured in turn, so each saw the same load). */
function pooled(rounds: readonly Sample[], q: number): number {
  const all = new Map<number, number>();
  for (const r of rounds) for (const [us, n] of r.hist) all.set(us, (all.get(us) ?? 0) + n);
  const sorted = [...all].sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((s, [, n]) => s + n, 0);
  let seen = 0;
  for (const [us, n] of sorted) if ((seen += n) > q * total) return us;
  return NaN;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<number> {
  if (!isRoot()) {
    process.stderr.write('bench:overlay needs root (it builds network namespaces)\n');
    return 1;
  }
  const iperf = await haveIperf();
  const load0 = loadavg()[0]!;
  const clusters: OverlayCluster[] = [];
  try {
    const only = values.only?.split(',');
    const want = (n: string) => !only || only.includes(n) || n === 'host-gw';
    const [hostgw, vxlan, routed] = await Promise.all([
      cluster('host-gw', 1),
      want('vxlan') ? cluster('vxlan', 1) : undefined,
      want('vxlan-routed') ? cluster('vxlan', 2) : undefined,
    ]);
    clusters.push(hostgw, ...[vxlan, routed].filter((c): c is OverlayCluster => c !== undefined));
    const paths: Path[] = [];
    const pair = async (name: string, c: OverlayCluster, sameNode: boolean) => {
      const n1 = c.node(1);
      const from = await c.addPod(n1, sameNode ? 'same-a' : 'a', sameNode ? 20 : 10);
      const to = await c.addPod(sameNode ? n1 : c.node(2), sameNode ? 'same-b' : 'b', sameNode ? 21 : 10);
      await serve(c, to, iperf);
      paths.push({ name, cluster: c, from, to });
    };
    if (want('same-node')) await pair('same-node', hostgw, true);
    await pair('host-gw', hostgw, false);
    if (vxlan) await pair('vxlan', vxlan, false);
    if (routed) {
      if (routed.subnetOf(routed.node(1)) === routed.subnetOf(routed.node(2)))
        throw new Error('the two-subnet lab put node-1 and node-2 on one subnet');
      await pair('vxlan-routed', routed, false);
    }
    for (const p of paths) await warm(p);
    const samples = new Map<string, Sample[]>(paths.map((p) => [p.name, []]));
    for (let r = 1; r <= RUNS; r++) {
      for (const p of paths) {
        const s = await measure(p, iperf);
        samples.get(p.name)!.push(s);
        process.stderr.write(
          `run ${r} ${p.name.padEnd(13)} ${s.gbps.toFixed(2)} Gbit/s (${s.gbPerCpu.toFixed(2)} per CPU-s)  rr p50 ${s.p50.toFixed(0)} us  p99 ${s.p99.toFixed(0)} us\n`,
        );
      }
    }
    const mtu = async (p: Path) =>
      (await p.cluster.lab.exec(p.from.ns, ['cat', '/sys/class/net/eth0/mtu'])).stdout.trim();
    const rows = [];
    for (const p of paths) {
      const s = samples.get(p.name)!;
      rows.push({
        path: p.name,
        podMtu: await mtu(p),
        gbps: median(s.map((x) => x.gbps)),
        gbPerCpu: median(s.map((x) => x.gbPerCpu)),
        p50: median(s.map((x) => x.p50)),
        p99: median(s.map((x) => x.p99)),
        pooledP99: pooled(s, 0.99),
        runs: s.map(({ hist: _hist, ...rest }) => rest),
      });
    }
    const ref = rows.find((x) => x.path === 'host-gw')!;
    const load1 = loadavg()[0]!;
    const tool = iperf ? 'iperf3' : 'node:net bulk sender (iperf3 not installed)';
    process.stdout.write(
      `\nbench:overlay  ${RUNS} rounds x ${SECONDS} s, throughput by ${tool}, RR 1-byte TCP (medians; load ${load0.toFixed(1)} -> ${load1.toFixed(1)})\n\n`,
    );
    process.stdout.write(
      '| path | pod MTU | TCP throughput | vs host-gw | Gbit per CPU-s | vs host-gw | RR p50 | vs host-gw | RR p99 | vs host-gw | RR p99 pooled | vs host-gw |\n' +
        '|---|---|---|---|---|---|---|---|---|---|---|---|\n',
    );
    for (const x of rows)
      process.stdout.write(
        `| ${x.path} | ${x.podMtu} | ${x.gbps.toFixed(2)} Gbit/s | ${(x.gbps / ref.gbps).toFixed(2)}x | ${x.gbPerCpu.toFixed(2)} | ${(x.gbPerCpu / ref.gbPerCpu).toFixed(2)}x | ${x.p50.toFixed(0)} us | ${(x.p50 / ref.p50).toFixed(2)}x | ${x.p99.toFixed(0)} us | ${(x.p99 / ref.p99).toFixed(2)}x | ${x.pooledP99} us | ${(x.pooledP99 / ref.pooledP99).toFixed(2)}x |\n`,
      );
    for (const x of rows.filter((r) => r.path.startsWith('vxlan'))) {
      const tput = x.gbps / ref.gbps;
      const p99 = x.p99 / ref.p99;
      process.stdout.write(
        `${x.path}: throughput ${tput.toFixed(2)}x (target >= 0.9x: ${tput >= 0.9 ? 'met' : 'NOT met'}), ` +
          `RR p99 ${p99.toFixed(2)}x (target <= 1.2x: ${p99 <= 1.2 ? 'met' : 'NOT met'})\n`,
      );
    }
    if (values.json)
      writeFileSync(
        values.json,
        JSON.stringify({ tool, runs: RUNS, seconds: SECONDS, load: [load0, load1], rows }, null, 2),
      );
    return 0;
  } finally {
    await Promise.allSettled(clusters.map((c) => c.destroy()));
  }
}

process.exitCode = await main();
