// DNS benchmark: queries per second with dnsperf, kdp dns side by side with dnsmasq serving the same
// names in the same run, plus the wire-library comparison (dns-packet, dns2 naive responders).
// Loopback only; servers pinned to CPU 1 (one worker), dnsperf to CPU 0.
//
// Workloads: hits      = A of 300 cluster service names
//            negative  = half AAAA NODATA of those names, half NXDOMAIN (search-path style names)
//            forward   = A of 100 outside names, forwarded to an upstream dnsmasq and then cached
//
// First bench/dns/codec.ts (CPU per query of the answer path without sockets), then dnsperf.
// Usage: npm run bench:dns [-- --seconds 5 --runs 1]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { run, spawnChild } from '../../src/common/exec-adapter.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '1' },
    clients: { type: 'string', default: '10' },
  },
});
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

async function start(name: string, argv: string[], ready: RegExp | (() => Promise<boolean>)): Promise<Spawned> {
  const child = spawnChild(['taskset', '-c', '1', ...argv]);
  children.push(child);
  const end = Date.now() + 90_000;
  for (;;) {
    if (typeof ready === 'function' ? await ready() : ready.test(child.output())) return child;
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

/** user+system CPU seconds a process has used so far (clock ticks of 10 ms) */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = (await run(['cat', `/proc/${pid}/stat`])).stdout;
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function dnsperf(
  port: number,
  queries: string,
  pid: number,
): Promise<{ qps: number; lost: number; latencyMs: number; cpuUsPerQuery: number }> {
  const c0 = await cpuSeconds(pid);
  const r = await run(
    [
      'taskset',
      '-c',
      '0',
      'dnsperf',
      '-s',
      '127.0.0.1',
      '-p',
      String(port),
      '-d',
      join(dir, queries),
      '-c',
      values.clients as string,
      '-l',
      String(SECONDS),
      '-q',
      '200',
    ],
    { timeoutMs: (SECONDS + 30) * 1000 },
  );
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN);
  const latencyMs = Number(/Average Latency \(s\):\s+([\d.]+)/.exec(r.stdout)?.[1] ?? NaN) * 1000;
  const completed = Number(/Queries completed:\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN);
  const cpuUsPerQuery = (((await cpuSeconds(pid)) - c0) * 1e6) / completed;
  return { qps, lost, latencyMs, cpuUsPerQuery };
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
  const k1 = await start('kdp dns', kdpArgs(PORTS.kdp, []), answers(PORTS.kdp));
  servers.push({ name: 'kdp dns (own codec + fast path)', port: PORTS.kdp, workloads: all, pid: k1.pid });
  const k2 = await start('kdp dns --no-fast-path', kdpArgs(PORTS.kdpSlow, ['--no-fast-path']), answers(PORTS.kdpSlow));
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

  // warm the caches of the forward workload
  for (const s of servers)
    if (s.workloads.includes('forward'))
      await run(['dnsperf', '-s', '127.0.0.1', '-p', String(s.port), '-d', join(dir, 'q-forward'), '-n', '1'], {
        allowFailure: true,
      });

  const load = (await run(['cat', '/proc/loadavg'])).stdout.trim();
  const rows: string[] = [];
  const results: Record<string, Record<string, number[]>> = {};
  const cpu: Record<string, Record<string, number[]>> = {};
  for (let r = 0; r < RUNS; r++) {
    for (const w of all) {
      for (const s of servers) {
        if (!s.workloads.includes(w)) continue;
        const m = await dnsperf(s.port, `q-${w}`, s.pid);
        ((results[s.name] ??= {})[w] ??= []).push(m.qps);
        ((cpu[s.name] ??= {})[w] ??= []).push(m.cpuUsPerQuery);
        process.stderr.write(
          `run ${r + 1} ${w.padEnd(8)} ${s.name.padEnd(46)} ${Math.round(m.qps).toString().padStart(7)} qps  lost ${m.lost}  avg ${m.latencyMs.toFixed(2)} ms  server CPU ${m.cpuUsPerQuery.toFixed(2)} us/query\n`,
        );
      }
    }
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] as number;
  const ref = results['dnsmasq 2.90 (hosts file, cache)'] ?? {};
  rows.push(
    `| server | ${all.map((w) => `${w} qps (x dnsmasq)`).join(' | ')} |`,
    `|---|${all.map(() => '---').join('|')}|`,
  );
  for (const s of servers) {
    rows.push(
      `| ${s.name} | ${all
        .map((w) => {
          const v = results[s.name]?.[w];
          if (!v) return '-';
          const q = median(v);
          return `${Math.round(q / 100) / 10}k (${(q / median(ref[w] ?? [q])).toFixed(2)})`;
        })
        .join(' | ')} |`,
    );
  }
  const cref = cpu['dnsmasq 2.90 (hosts file, cache)'] ?? {};
  rows.push(
    '',
    `| server | ${all.map((w) => `${w}: server CPU us/query (dnsmasq / kdp ratio)`).join(' | ')} |`,
    `|---|${all.map(() => '---').join('|')}|`,
  );
  for (const s of servers) {
    rows.push(
      `| ${s.name} | ${all
        .map((w) => {
          const v = cpu[s.name]?.[w];
          if (!v) return '-';
          const c = median(v);
          return `${c.toFixed(2)} (${(median(cref[w] ?? [c]) / c).toFixed(2)})`;
        })
        .join(' | ')} |`,
    );
  }
  const load2 = (await run(['cat', '/proc/loadavg'])).stdout.trim();
  process.stdout.write(
    `dnsperf -c ${values.clients} -l ${SECONDS}, ${RUNS} run(s), median; servers on CPU 1, dnsperf on CPU 0; loadavg before: ${load}, after: ${load2}\n\n${rows.join('\n')}\n`,
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
