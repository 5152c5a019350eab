// Memory benchmark (issue #13): resident memory of `kdp dns` and `kdp proxy` holding N Services (default
// 10,000), each with an EndpointSlice of 2 ready endpoints, read from a manifests directory.
//   npm run bench:memory                     (-- --services 10000 --runs 3 --only dns,proxy --mode nftables)
// Objects come from bench/cluster-state/objects.ts (50 namespaces, 2 ports a Service, explicit slices on
// node-1/node-2), plus the Namespaces and the two Nodes; no Pods (the slices are explicit, and neither
// component needs Pods for ClusterIP Services).
// - kdp dns runs in the root namespace on 127.0.0.1, port 0 (kernel-chosen), its own Corefile (kubernetes
//   plugin, cache, prometheus on 127.0.0.1; forward to a loopback port nothing queries). Ready = it answers
//   the A record of the last Service (dig to 127.0.0.1); the cache keeps no SERVFAIL (`servfail 0s`), so the
//   answers before the sync (SERVFAIL) do not delay that by the default 5 s.
// - kdp proxy programs the kernel, so it runs inside node-1 of a one-node lab (src/lab, network namespaces;
//   nothing in the root namespace), --mode nftables by default. Ready = its "ready" line (first sync done,
//   startProxy returned), checked afterwards against the ruleset (the last Service's ClusterIP is in it).
// Each component runs under `node --expose-gc --import bench/memory/settle.ts` (benchmark-only preload).
// After ready: wait --settle seconds, SIGUSR2 (two full GCs, memoryUsage written to a file), then sample
// VmRSS of /proc/PID/status --samples times 500 ms apart (median) and VmHWM (the peak, i.e. the sync).
// "CPU to ready" is the process's user+system time at ready (steadier than wall time on a shared machine).
// Each of --runs runs starts fresh processes (dns, then proxy); the table gives medians over runs.
// Cleanup on every path: the processes, the lab (destroy, plus its own exit/signal sweep), the temp dir.
// Bounded: --timeout seconds overall (default 1200), 300 s per component start.
// Side by side: --compare DIR also runs the kdp of another checkout (DIR/src/cli/main.ts, e.g. a `git worktree`
// of the commit before a change, with node_modules) in the same runs, alternating which goes first, and adds
// a ratio row (this tree / DIR) per component: the before/after comparison on a shared, noisy machine.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { run, spawnChild } from '../../src/common/exec-adapter.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';
import { Lab } from '../../src/lab/lab.ts';
import {
  clusterIPOf,
  endpointSliceObject,
  namespaceObject,
  namespaceOf,
  nodeObject,
  serviceName,
  serviceObject,
} from '../cluster-state/objects.ts';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '3' },
    only: { type: 'string', default: 'dns,proxy' },
    mode: { type: 'string', default: 'nftables' },
    settle: { type: 'string', default: '3' },
    samples: { type: 'string', default: '5' },
    timeout: { type: 'string', default: '1200' },
    compare: { type: 'string' },
  },
  strict: true,
});
const N = Number(values.services);
const RUNS = Number(values.runs);
const SETTLE_MS = Number(values.settle) * 1000;
const SAMPLES = Number(values.samples);
const NAMESPACES = 50;
const want = new Set(values.only.split(','));
const MODE = values.mode;
if (!(N > 0 && RUNS > 0 && SAMPLES > 0 && SETTLE_MS >= 0)) throw new Error('bad --services/--runs/--samples/--settle');
if (!['nftables', 'iptables', 'userspace'].includes(MODE)) throw new Error(`bad --mode ${MODE}`);

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
interface Variant {
  readonly label: string;
  readonly cli: string;
}
const VARIANTS: Variant[] = [{ label: 'this tree', cli: CLI }];
if (values.compare) {
  const other = join(resolve(values.compare), 'src', 'cli', 'main.ts');
  if (!existsSync(other)) throw new Error(`--compare: ${other} does not exist`);
  VARIANTS.push({ label: resolve(values.compare), cli: other });
}
const SETTLE = fileURLToPath(new URL('./settle.ts', import.meta.url));
const START_TIMEOUT_MS = 300_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load = () => loadavg().map((x) => x.toFixed(1));

// ---------------------------------------------------------------- cleanup on every path
const tmp = mkdtempSync(join(tmpdir(), 'kdp-bench-mem-'));
const children = new Set<Spawned>();
let lab: Lab | undefined;
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
  // the lab sweeps its namespaces synchronously on exit by itself
});
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.once(s, () => {
    console.error(`${s}: cleaning up`);
    process.exit(130);
  });
setTimeout(
  () => {
    console.error(`time bound of ${values.timeout} s hit: cleaning up`);
    process.exit(2);
  },
  Number(values.timeout) * 1000,
).unref();

// ---------------------------------------------------------------- manifests
function writeManifests(dir: string): void {
  mkdirSync(dir);
  const byNs = new Map<string, object[]>();
  for (let k = 0; k < NAMESPACES; k++) byNs.set(`ns-${k}`, [namespaceObject(`ns-${k}`)]);
  const opts = { namespaces: NAMESPACES, endpoints: 2 };
  for (let i = 0; i < N; i++)
    byNs.get(namespaceOf(i, NAMESPACES))!.push(serviceObject(i, opts), endpointSliceObject(i, opts));
  for (const [ns, items] of byNs)
    writeFileSync(join(dir, `${ns}.json`), JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  writeFileSync(
    join(dir, 'nodes.json'),
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [nodeObject('node-1', '198.18.0.11'), nodeObject('node-2', '198.18.0.12')],
    }),
  );
}

const corefile = `.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus 127.0.0.1:0
    forward . 127.0.0.1:9
    cache 30 {
       servfail 0s
    }
    loadbalance
}
`;

// ---------------------------------------------------------------- /proc
function status(pid: number): { rssKB: number; hwmKB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssKB: kb('VmRSS'), hwmKB: kb('VmHWM') };
}
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, clock ticks of 10 ms
}
/** The pid of the Node process: `ip netns exec` execs in place, but check rather than assume. */
function nodePid(pid: number, cli: string): number {
  const isKdp = (p: number) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(cli);
  if (isKdp(pid)) return pid;
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const k = kids.find((p) => p > 0 && isKdp(p));
  if (k === undefined) throw new Error(`no kdp process under pid ${pid}`);
  return k;
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Sample {
  component: string;
  variant: string;
  run: number;
  services: number;
  readyMs: number;
  cpuToReadyS: number;
  rssMB: number;
  hwmMB: number;
  heapUsedMB: number;
  /** V8 heap reserved and memory outside it (Buffers, ArrayBuffers), after the GC: where the rest of RSS is */
  heapTotalMB: number;
  externalMB: number;
  load: string[];
}

async function waitFor(what: string, child: Spawned, ok: () => Promise<boolean> | boolean): Promise<void> {
  const end = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (await ok()) return;
    if (Date.now() > end) throw new Error(`${what} not ready after ${START_TIMEOUT_MS / 1000} s:\n${child.output()}`);
    const code = await Promise.race([child.exited, sleep(100).then(() => 'running' as const)]);
    if (code !== 'running') throw new Error(`${what} exited (${String(code)}):\n${child.output()}`);
  }
}

/** After ready: settle, force GC, sample. */
async function measure(
  component: string,
  variant: string,
  r: number,
  child: Spawned,
  pid: number,
  heapFile: string,
  t0: number,
  readyAt: number,
): Promise<Sample> {
  const cpuToReadyS = cpuSeconds(pid);
  await sleep(SETTLE_MS);
  process.kill(pid, 'SIGUSR2');
  const end = Date.now() + 30_000;
  while (!existsSync(heapFile)) {
    if (Date.now() > end) throw new Error(`${component}: no heap report after SIGUSR2:\n${child.output()}`);
    await sleep(50);
  }
  await sleep(1000);
  const rss: number[] = [];
  let hwm = 0;
  for (let i = 0; i < SAMPLES; i++) {
    const s = status(pid);
    rss.push(s.rssKB);
    hwm = Math.max(hwm, s.hwmKB);
    if (i < SAMPLES - 1) await sleep(500);
  }
  const heap = JSON.parse(readFileSync(heapFile, 'utf8')) as { heapUsed: number; heapTotal: number; external: number };
  const sample: Sample = {
    component,
    variant,
    run: r,
    services: N,
    readyMs: readyAt - t0,
    cpuToReadyS,
    rssMB: +(median(rss) / 1024).toFixed(1),
    hwmMB: +(hwm / 1024).toFixed(1),
    heapUsedMB: +(heap.heapUsed / 1048576).toFixed(1),
    heapTotalMB: +(heap.heapTotal / 1048576).toFixed(1),
    externalMB: +(heap.external / 1048576).toFixed(1),
    load: load(),
  };
  console.error(JSON.stringify(sample));
  return sample;
}

async function stop(child: Spawned): Promise<void> {
  child.kill('SIGTERM');
  const code = await Promise.race([child.exited, sleep(15_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    child.kill('SIGKILL');
    await child.exited;
  }
  children.delete(child);
}

async function runDns(dir: string, r: number, v: Variant): Promise<Sample> {
  const cf = join(tmp, 'Corefile');
  writeFileSync(cf, corefile);
  const heapFile = join(tmp, `heap-dns-${r}-${VARIANTS.indexOf(v)}.json`);
  const last = N - 1;
  const qname = `${serviceName(last)}.${namespaceOf(last, NAMESPACES)}.svc.cluster.local`;
  const t0 = Date.now();
  const child = spawnChild(
    [
      process.execPath,
      '--expose-gc',
      '--import',
      SETTLE,
      v.cli,
      '--log-level',
      'warn',
      'dns',
      '--corefile',
      cf,
      '--manifests',
      dir,
      '--listen',
      '127.0.0.1',
      '--port',
      '0',
      '--health',
      '',
      '--ready',
      '',
      '--lameduck',
      '0',
    ],
    { env: { ...process.env, KDP_BENCH_HEAP_OUT: heapFile } },
  );
  children.add(child);
  try {
    let port = 0;
    await waitFor('kdp dns', child, async () => {
      port ||= Number(/kdp dns ready: dns (\d+)/.exec(child.output())?.[1] ?? 0);
      if (!port) return false;
      const res = await run(['dig', '@127.0.0.1', '-p', String(port), qname, 'A', '+short', '+time=1', '+tries=1'], {
        allowFailure: true,
        timeoutMs: 5000,
      });
      return res.stdout.trim() === clusterIPOf(last);
    });
    const readyAt = Date.now();
    return await measure('kdp dns', v.label, r, child, nodePid(child.pid, v.cli), heapFile, t0, readyAt);
  } finally {
    await stop(child);
  }
}

async function runProxy(dir: string, r: number, v: Variant): Promise<Sample> {
  lab ??= await Lab.create({ nodes: 1 });
  const node = lab.nodes[0]!;
  const heapFile = join(tmp, `heap-proxy-${r}-${VARIANTS.indexOf(v)}.json`);
  const t0 = Date.now();
  const child = lab.spawn(
    node.ns,
    [
      process.execPath,
      '--expose-gc',
      '--import',
      SETTLE,
      v.cli,
      '--log-level',
      'warn',
      'proxy',
      '--mode',
      MODE,
      '--manifests',
      dir,
      '--node-name',
      node.name,
      '--cluster-cidr',
      lab.plan.clusterCidr4,
    ],
    { env: { ...process.env, KDP_BENCH_HEAP_OUT: heapFile } },
  );
  children.add(child);
  try {
    await waitFor('kdp proxy', child, () => /^ready$/m.test(child.output()));
    const readyAt = Date.now();
    const s = await measure(`kdp proxy (${MODE})`, v.label, r, child, nodePid(child.pid, v.cli), heapFile, t0, readyAt);
    if (MODE === 'nftables') {
      // the first sync really programmed all N: the last Service's ClusterIP is in the ruleset
      const rules = await lab.exec(node.ns, ['nft', 'list', 'table', 'ip', 'kdp'], { timeoutMs: 120_000 });
      if (!rules.stdout.includes(clusterIPOf(N - 1)))
        throw new Error(`kdp proxy: ${clusterIPOf(N - 1)} is not in the ruleset after ready`);
    }
    return s;
  } finally {
    await stop(child);
    await lab.exec(node.ns, [process.execPath, v.cli, '--log-level', 'warn', 'proxy', 'cleanup'], {
      timeoutMs: 120_000,
      allowFailure: true,
    });
  }
}

try {
  const dir = join(tmp, 'manifests');
  writeManifests(dir);
  console.error(
    `load average ${load().join(' ')}; ${N} Services + ${N} EndpointSlices (2 endpoints) in ${dir}; ${RUNS} runs of ${[...want].join(', ')}`,
  );
  const samples: Sample[] = [];
  for (let r = 1; r <= RUNS; r++) {
    // with --compare, the variants alternate which goes first
    const order = r % 2 ? VARIANTS : [...VARIANTS].reverse();
    if (want.has('dns')) for (const v of order) samples.push(await runDns(dir, r, v));
    if (want.has('proxy')) for (const v of order) samples.push(await runProxy(dir, r, v));
  }
  const comps = [...new Set(samples.map((s) => s.component))];
  console.log(`\nmedians of ${RUNS} runs (load average at the end ${load().join(' ')}):\n`);
  console.log(
    `| component${VARIANTS.length > 1 ? ' | kdp' : ''} | services | RSS MB | HWM MB | heap used after GC MB | time to ready s | CPU to ready s |`,
  );
  console.log(`|---|---|---|---|---|---|---|${VARIANTS.length > 1 ? '---|' : ''}`);
  const fields: ((s: Sample) => number)[] = [
    (s) => s.rssMB,
    (s) => s.hwmMB,
    (s) => s.heapUsedMB,
    (s) => s.readyMs / 1000,
    (s) => s.cpuToReadyS,
  ];
  for (const c of comps) {
    const med = (v: Variant) => {
      const xs = samples.filter((s) => s.component === c && s.variant === v.label);
      return fields.map((f) => median(xs.map(f)));
    };
    const rows = VARIANTS.map(med);
    VARIANTS.forEach((v, k) =>
      console.log(
        `| ${c}${VARIANTS.length > 1 ? ` | ${v.label}` : ''} | ${N} | ${rows[k]!.map((x, j) => x.toFixed(j < 3 ? 1 : 2)).join(' | ')} |`,
      ),
    );
    if (VARIANTS.length > 1)
      console.log(
        `| ${c} | **ratio this tree / ${VARIANTS[1]!.label}** | ${N} | ${rows[0]!.map((x, j) => `**${(x / rows[1]![j]!).toFixed(2)}**`).join(' | ')} |`,
      );
  }
  console.log('\nruns (RSS / HWM / heap used / heap total / external MB, ready s, load):');
  for (const s of samples)
    console.log(
      `  ${s.component}${VARIANTS.length > 1 ? ` [${s.variant}]` : ''} run ${s.run}: ${s.rssMB} / ${s.hwmMB} / ${s.heapUsedMB} / ${s.heapTotalMB} / ${s.externalMB}, ${(s.readyMs / 1000).toFixed(2)} s (CPU ${s.cpuToReadyS.toFixed(2)} s), load ${s.load.join(' ')}`,
    );
} finally {
  for (const c of [...children]) await stop(c);
  await lab?.destroy();
  rmSync(tmp, { recursive: true, force: true });
}
