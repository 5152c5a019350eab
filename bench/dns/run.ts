// DNS benchmark: queries per second with dnsperf, kdp dns (1 worker and --workers 2) side by side with
// dnsmasq serving the same names in the same run; with --all also `kdp dns --no-fast-path` and the
// wire-library comparison (dns-packet, dns2 naive responders). Loopback only; dnsperf pinned to CPU 0,
// one-worker servers to CPU 1, `--workers 2` to CPUs 1-2 (0-1 on a 2-CPU machine: then it shares CPU 0
// with dnsperf, said in the output). Then a latency run per server at a fixed rate (dnsperf -Q, -v: every
// query's latency) for p50 / p99. A node:dgram responder that does no DNS work (it returns each query
// with QR set) gives the floor: what any Node.js server pays per datagram.
//
// Workloads: hits      = A of 300 cluster service names
//            negative  = half AAAA NODATA of those names, half NXDOMAIN (search-path style names)
//            forward   = A of 100 outside names, forwarded to an upstream dnsmasq and then cached
//
// First bench/dns/codec.ts (CPU per query of the answer path without sockets), then dnsperf.
// Usage: npm run bench:dns [-- --seconds 4 --runs 3 --latency-qps 10000 --all]   (defaults: about 3-4 min)
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { run, spawnChild } from '../../src/common/exec-adapter.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    runs: { type: 'string', default: '3' },
    clients: { type: 'string', default: '10' },
    'latency-qps': { type: 'string', default: '10000' },
    'latency-seconds': { type: 'string', default: '2' },
    all: { type: 'boolean', default: false },
  },
});
const CPUS = availableParallelism();
const WORKER_CPUS = CPUS >= 3 ? '1,2' : '0,1';
const SECONDS = Number(values.seconds);
const RUNS = Number(values.runs);
const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const NAIVE = fileURLToPath(new URL('./naive-server.ts', import.meta.url));
const CODEC = fileURLToPath(new URL('./codec.ts', import.meta.url));
const N = 300;
const BASE = 15300 + Math.floor(Math.random() * 500) * 10;
const PORTS = {
  upstream: BASE,
  dnsmasq: BASE + 1,
  kdp: BASE + 2,
  kdpSlow: BASE + 3,
  dnsPacket: BASE + 4,
  dns2: BASE + 5,
  kdp2: BASE + 6,
  floor: BASE + 7,
  kdpDgram: BASE + 8,
};

const dir = mkdtempSync(join(tmpdir(), 'kdp-bench-dns-'));
const children: Spawned[] = [];
const ipOf = (i: number) => `10.96.${1 + (i >> 8)}.${i & 255}`;

function files(): void {
  const items: object[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench' } }];
  for (let i = 0; i < N; i++)
    items.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { namespace: 'bench', name: `svc${i}` },
      spec: { clusterIP: ipOf(i), clusterIPs: [ipOf(i)], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    });
  const m = join(dir, 'manifests');
  rmSync(m, { recursive: true, force: true });
  mkdirSync(m);
  writeFileSync(join(dir, 'manifests', 'bench.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  writeFileSync(
    join(dir, 'hosts'),
    Array.from({ length: N }, (_, i) => `${ipOf(i)} svc${i}.bench.svc.cluster.local`).join('\n') + '\n',
  );
  writeFileSync(
    join(dir, 'names'),
    Array.from({ length: N }, (_, i) => `svc${i}.bench.svc.cluster.local ${ipOf(i)}`).join('\n') + '\n',
  );
  writeFileSync(
    join(dir, 'q-hits'),
    Array.from({ length: N }, (_, i) => `svc${i}.bench.svc.cluster.local A`).join('\n') + '\n',
  );
  writeFileSync(
    join(dir, 'q-negative'),
    Array.from({ length: N }, (_, i) =>
      i % 2 ? `svc${i}.bench.svc.cluster.local AAAA` : `example${i}.com.bench.svc.cluster.local A`,
    ).join('\n') + '\n',
  );
  writeFileSync(
    join(dir, 'q-forward'),
    Array.from({ length: 100 }, (_, i) => `host${i}.outside.example A`).join('\n') + '\n',
  );
  writeFileSync(
    join(dir, 'upstream.conf'),
    [
      'no-resolv',
      'no-hosts',
      'bind-interfaces',
      'listen-address=127.0.0.1',
      `port=${PORTS.upstream}`,
      'address=/outside.example/203.0.113.7',
      'local=/example/',
      'local-ttl=300',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'dnsmasq.conf'),
    [
      'no-resolv',
      'no-hosts',
      'bind-interfaces',
      'listen-address=127.0.0.1',
      `port=${PORTS.dnsmasq}`,
      `addn-hosts=${join(dir, 'hosts')}`,
      'local=/cluster.local/',
      `server=127.0.0.1#${PORTS.upstream}`,
      'cache-size=10000',
      // the Corefile's `cache 30` caps a cached answer's TTL at 30 s: the same cap here, so both servers go back
      // to the upstream as often (without it dnsmasq kept the upstream's 300 s and never refreshed in a run)
      'max-cache-ttl=30',
      'local-ttl=30',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'Corefile'),
    `.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus 127.0.0.1:0
    forward . 127.0.0.1:${PORTS.upstream} {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loadbalance
}
`,
  );
}

async function start(
  name: string,
  argv: string[],
  ready: RegExp | ((output: string) => Promise<boolean>),
  cpus = '1',
): Promise<Spawned> {
  const child = spawnChild(['taskset', '-c', cpus, ...argv]);
  children.push(child);
  const end = Date.now() + 90_000;
  for (;;) {
    if (typeof ready === 'function' ? await ready(child.output()) : ready.test(child.output())) return child;
    if (Date.now() > end) throw new Error(`${name} did not start: ${child.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const answers = (port: number) => async () =>
  (
    await run(
      ['dig', '@127.0.0.1', '-p', String(port), '+time=1', '+tries=1', '+short', 'svc1.bench.svc.cluster.local'],
      { allowFailure: true },
    )
  ).stdout.trim() === ipOf(1);

/**
 * user and system CPU seconds a process and its live descendants (the workers) have used so far (ticks of
 * 10 ms): the system part is the kernel's side of each datagram (recvmsg, sendmsg delivering on loopback,
 * wake-ups), the user part the server's own answer path
 */
function cpuTimes(pid: number): { user: number; sys: number } {
  let stat: string;
  let children: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1');
  } catch {
    return { user: 0, sys: 0 }; // gone
  }
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const t = { user: Number(f[11]) / 100, sys: Number(f[12]) / 100 };
  for (const c of children.split(' ').filter(Boolean)) {
    const ct = cpuTimes(Number(c));
    t.user += ct.user;
    t.sys += ct.sys;
  }
  return t;
}

function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.sys;
}

/** dnsperf on CPU 0 against a port for `secs` seconds */
function perf(port: number, queries: string, secs: number, extra: string[]): ReturnType<typeof run> {
  return run(
    ['taskset', '-c', '0', 'dnsperf', '-s', '127.0.0.1', '-p', String(port), '-d', join(dir, queries)].concat([
      '-c',
      values.clients as string,
      '-l',
      String(secs),
      ...extra,
    ]),
    { timeoutMs: (secs + 30) * 1000 },
  );
}

/**
 * p50 and p99 latency (ms) at a fixed offered rate (dnsperf -Q with -v prints every query's latency), and
 * the server's CPU per query at that same rate (comparable between servers: at saturation a faster server
 * reads more datagrams per wake-up, which lowers its cost per query)
 */
async function latency(
  port: number,
  queries: string,
  pid: number,
): Promise<{ p50: number; p99: number; lost: number; cpuUs: number }> {
  const c0 = cpuSeconds(pid);
  const r = await perf(port, queries, Number(values['latency-seconds']), ['-Q', values['latency-qps'] as string, '-v']);
  const ms = [...r.stdout.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? NaN;
  const lost = Number(/Queries lost:\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN);
  return { p50: at(0.5), p99: at(0.99), lost, cpuUs: ((cpuSeconds(pid) - c0) * 1e6) / ms.length };
}

async function dnsperf(
  port: number,
  queries: string,
  pid: number,
): Promise<{ qps: number; lost: number; latencyMs: number; cpuUsPerQuery: number; userUs: number; sysUs: number }> {
  const c0 = cpuTimes(pid);
  const r = await perf(port, queries, SECONDS, ['-q', '200']);
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN);
  const latencyMs = Number(/Average Latency \(s\):\s+([\d.]+)/.exec(r.stdout)?.[1] ?? NaN) * 1000;
  const completed = Number(/Queries completed:\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN);
  const c1 = cpuTimes(pid);
  const userUs = ((c1.user - c0.user) * 1e6) / completed;
  const sysUs = ((c1.sys - c0.sys) * 1e6) / completed;
  return { qps, lost, latencyMs, cpuUsPerQuery: userUs + sysUs, userUs, sysUs };
}

async function main(): Promise<void> {
  files();
  // the answer path without sockets first: CPU per query of each wire library and of kdp's paths
  process.stdout.write(
    (await run(['taskset', '-c', '1', process.execPath, CODEC, '200000'], { timeoutMs: 600_000 })).stdout + '\n',
  );
  await run(['bash', 'scripts/setup-system.sh', 'bench'], { timeoutMs: 600_000, allowFailure: true });
  await start(
    'upstream dnsmasq',
    ['dnsmasq', '-k', `--conf-file=${join(dir, 'upstream.conf')}`, `--pid-file=${join(dir, 'up.pid')}`, '--user=root'],
    async () =>
      (
        await run(
          ['dig', '@127.0.0.1', '-p', String(PORTS.upstream), '+short', '+time=1', '+tries=1', 'a.outside.example'],
          { allowFailure: true },
        )
      ).stdout.trim() === '203.0.113.7',
  );
  const servers: { name: string; port: number; workloads: string[]; pid: number }[] = [];
  const all = ['hits', 'negative', 'forward'];
  const dm = await start(
    'dnsmasq',
    ['dnsmasq', '-k', `--conf-file=${join(dir, 'dnsmasq.conf')}`, `--pid-file=${join(dir, 'dm.pid')}`, '--user=root'],
    answers(PORTS.dnsmasq),
  );
  servers.push({ name: 'dnsmasq 2.90 (hosts file, cache)', port: PORTS.dnsmasq, workloads: all, pid: dm.pid });
  const kdpArgs = (port: number, extra: string[]) => [
    process.execPath,
    CLI,
    '--log-level',
    'warn',
    'dns',
    '--corefile',
    join(dir, 'Corefile'),
    '--manifests',
    join(dir, 'manifests'),
    '--listen',
    '127.0.0.1',
    '--port',
    String(port),
    '--health',
    '',
    '--ready',
    '',
    '--lameduck',
    '0',
    ...extra,
  ];
  // batched UDP I/O (the native addon; this row fails to start without it), then the same on node:dgram
  const k1 = await start('kdp dns', kdpArgs(PORTS.kdp, ['--udp-io', 'mmsg']), answers(PORTS.kdp));
  servers.push({ name: 'kdp dns (1 worker)', port: PORTS.kdp, workloads: all, pid: k1.pid });
  const kd = await start(
    'kdp dns --udp-io dgram',
    kdpArgs(PORTS.kdpDgram, ['--udp-io', 'dgram']),
    answers(PORTS.kdpDgram),
  );
  servers.push({ name: 'kdp dns --udp-io dgram (1 worker)', port: PORTS.kdpDgram, workloads: all, pid: kd.pid });
  const kw = await start(
    'kdp dns --workers 2',
    kdpArgs(PORTS.kdp2, ['--workers', '2']),
    // every worker listening, then an answer
    async (output) => /kdp dns ready: .* workers 2/.test(output) && (await answers(PORTS.kdp2)()),
    WORKER_CPUS,
  );
  servers.push({ name: `kdp dns --workers 2 (CPUs ${WORKER_CPUS})`, port: PORTS.kdp2, workloads: all, pid: kw.pid });
  const fl = await start(
    'node:dgram floor',
    [process.execPath, NAIVE, 'floor', String(PORTS.floor), join(dir, 'names')],
    /ready/,
  );
  servers.push({
    name: 'node:dgram echo, no DNS work (the floor)',
    port: PORTS.floor,
    workloads: ['hits'],
    pid: fl.pid,
  });
  if (values.all) {
    const k2 = await start(
      'kdp dns --no-fast-path',
      kdpArgs(PORTS.kdpSlow, ['--no-fast-path']),
      answers(PORTS.kdpSlow),
    );
    servers.push({
      name: 'kdp dns --no-fast-path (own codec, full path)',
      port: PORTS.kdpSlow,
      workloads: all,
      pid: k2.pid,
    });
    const dp = await start(
      'dns-packet',
      [process.execPath, NAIVE, 'dns-packet', String(PORTS.dnsPacket), join(dir, 'names')],
      answers(PORTS.dnsPacket),
    );
    servers.push({ name: 'naive Map + dns-packet 5.6', port: PORTS.dnsPacket, workloads: ['hits'], pid: dp.pid });
    const d2 = await start(
      'dns2',
      [process.execPath, NAIVE, 'dns2', String(PORTS.dns2), join(dir, 'names')],
      answers(PORTS.dns2),
    );
    servers.push({ name: 'naive Map + dns2 3.1', port: PORTS.dns2, workloads: ['hits'], pid: d2.pid });
  }

  // warm the caches of the forward workload
  for (const s of servers)
    if (s.workloads.includes('forward'))
      await run(['dnsperf', '-s', '127.0.0.1', '-p', String(s.port), '-d', join(dir, 'q-forward'), '-n', '3'], {
        allowFailure: true,
      });

  const load = (await run(['cat', '/proc/loadavg'])).stdout.trim();
  const rows: string[] = [];
  const results: Record<string, Record<string, number[]>> = {};
  const cpu: Record<string, Record<string, number[]>> = {};
  const split: Record<string, Record<string, [number, number][]>> = {};
  for (let r = 0; r < RUNS; r++) {
    for (const w of all) {
      for (const s of servers) {
        if (!s.workloads.includes(w)) continue;
        const m = await dnsperf(s.port, `q-${w}`, s.pid);
        ((results[s.name] ??= {})[w] ??= []).push(m.qps);
        ((cpu[s.name] ??= {})[w] ??= []).push(m.cpuUsPerQuery);
        ((split[s.name] ??= {})[w] ??= []).push([m.userUs, m.sysUs]);
        process.stderr.write(
          `run ${r + 1} ${w.padEnd(8)} ${s.name.padEnd(46)} ${Math.round(m.qps).toString().padStart(7)} qps  lost ${m.lost}  avg ${m.latencyMs.toFixed(2)} ms  server CPU ${m.cpuUsPerQuery.toFixed(2)} us/query (user ${m.userUs.toFixed(2)}, system ${m.sysUs.toFixed(2)})\n`,
        );
      }
    }
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] as number;
  /** a table: one row per server, one cell per workload ('-' where the server did not run it) */
  const table = (head: (w: string) => string, cell: (name: string, w: string) => string | undefined) => {
    rows.push(`| server | ${all.map(head).join(' | ')} |`, `|---|${all.map(() => '---').join('|')}|`);
    for (const s of servers) rows.push(`| ${s.name} | ${all.map((w) => cell(s.name, w) ?? '-').join(' | ')} |`);
  };
  const ref = results['dnsmasq 2.90 (hosts file, cache)'] ?? {};
  table(
    (w) => `${w} qps (x dnsmasq)`,
    (name, w) => {
      const v = results[name]?.[w];
      if (!v) return undefined;
      const q = median(v);
      return `${Math.round(q / 100) / 10}k (${(q / median(ref[w] ?? [q])).toFixed(2)})`;
    },
  );
  const cref = cpu['dnsmasq 2.90 (hosts file, cache)'] ?? {};
  rows.push('');
  table(
    (w) => `${w}: server CPU us/query (dnsmasq / kdp ratio)`,
    (name, w) => {
      const v = cpu[name]?.[w];
      if (!v) return undefined;
      const c = median(v);
      return `${c.toFixed(2)} (${(median(cref[w] ?? [c]) / c).toFixed(2)})`;
    },
  );
  // the same CPU split into user (the server's own code) and system (the kernel's side of each datagram)
  rows.push('');
  table(
    (w) => `${w}: user / system us/query`,
    (name, w) => {
      const v = split[name]?.[w];
      return v && `${median(v.map((x) => x[0])).toFixed(2)} / ${median(v.map((x) => x[1])).toFixed(2)}`;
    },
  );
  // --workers 2 against one worker, from the same runs
  const one = results['kdp dns (1 worker)'] ?? {};
  const two = Object.entries(results).find(([n]) => n.startsWith('kdp dns --workers 2'))?.[1] ?? {};
  rows.push(
    '',
    `kdp dns --workers 2 / 1 worker, qps: ${all.map((w) => `${w} ${(median(two[w] ?? [NaN]) / median(one[w] ?? [NaN])).toFixed(2)}`).join(', ')}`,
  );
  // latency at a fixed offered rate (not saturated): every query's latency from dnsperf -v
  rows.push(
    '',
    `| server (dnsperf -Q ${values['latency-qps']} -l ${values['latency-seconds']}) | ${all.map((w) => `${w}: p50 / p99 ms (lost), CPU us/query`).join(' | ')} |`,
    `|---|${all.map(() => '---').join('|')}|`,
  );
  for (const s of servers) {
    const cells: string[] = [];
    for (const w of all) {
      if (!s.workloads.includes(w)) {
        cells.push('-');
        continue;
      }
      const l = await latency(s.port, `q-${w}`, s.pid);
      cells.push(`${l.p50.toFixed(3)} / ${l.p99.toFixed(3)} (${l.lost}), ${l.cpuUs.toFixed(2)}`);
    }
    rows.push(`| ${s.name} | ${cells.join(' | ')} |`);
  }
  const load2 = (await run(['cat', '/proc/loadavg'])).stdout.trim();
  process.stdout.write(
    `dnsperf -c ${values.clients} -l ${SECONDS}, ${RUNS} run(s), median; one-worker servers on CPU 1, --workers 2 on CPUs ${WORKER_CPUS}, dnsperf on CPU 0 (${CPUS} CPUs); server CPU counts the primary and its workers; loadavg before: ${load}, after: ${load2}\n\n${rows.join('\n')}\n`,
  );
}

const stop = () => {
  for (const c of children) c.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
  process.exit(130);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
try {
  await main();
} finally {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => c.exited.catch(() => undefined)));
  rmSync(dir, { recursive: true, force: true });
}
