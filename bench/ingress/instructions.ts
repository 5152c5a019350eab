// User-space instructions per request: kdp ingress (one worker) against the two nginx references
// (bench/ingress/nginx-refs.ts, one process each), counted by valgrind's callgrind over a fixed number of requests.
// Unlike CPU time, the count does not move with whatever else shares the cores: two runs of the same tree agree to
// ~0.1%, so a change's effect can be read from one run (`--trees BEFORE,AFTER` counts several kdp trees side by
// side). It counts user space only (the kernel's side of the system calls is not in it) and instructions, not
// cycles: a figure to compare builds of the same program and to see how far from nginx's the work is, not a time.
// Each target runs under callgrind with instrumentation off; per protocol, --warmup requests (default N) warm it
// up (the JIT), then instrumentation is on for N more (h2load: 10 connections; HTTP/1.1 and HTTPS keep-alive with
// --h1, HTTP/2 with 5 streams per connection; https-new: HTTPS with --h1 and 'Connection: close', so each request
// is a new TCP connection and TLS handshake, which h2load resumes as wrk does in bench:ingress). The backend is
// nginx (1 worker, not under valgrind).
//   npm run bench:ingress-instructions -- [--requests 20000] [--warmup N] [--protocols http,https,https-new,h2]
//     [--only kdp,nginx,nginx-ingress]
//     [--trees DIR,...]   (default: this tree; each tree needs its node_modules)
//     [--keep DIR]        (copy callgrind's dump files there, for callgrind_annotate: where the instructions go;
//                          kdp then runs with --perf-basic-prof and its JIT-compiled functions are named in them)
//     [--cache-sim]       (callgrind's cache model too: per request, the misses of the first-level instruction and
//                          data caches (reads, writes) and of a 1 MiB second level (this host's L2 per core) in a
//                          second table; a model without prefetching, deterministic as the instruction count)
//     [--node-flags=FLAGS] (node flags for kdp, space-separated, e.g. --node-flags=--min-semi-space-size=16)
// Everything listens on 127.0.0.1; configs and callgrind's files live in a temp dir removed at the end.
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { run, spawnChild, stopChildren } from '../../src/common/exec-adapter.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';
import { oneRouteManifests } from '../../test/helpers/ingress-manifests.ts';
import { freePort } from '../../test/helpers/ports.ts';
import { backendServer, benchCert, nginxConf, proxyServers } from './nginx-refs.ts';
import type { NginxRef } from './nginx-refs.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '20000' },
    // requests per protocol before counting (default: --requests); kdp's JIT is still compiling after 20,000 of a
    // protocol run first (its count ~15% higher than after more)
    warmup: { type: 'string' },
    protocols: { type: 'string', default: 'http,https,h2' },
    only: { type: 'string', default: 'kdp,nginx,nginx-ingress' },
    trees: { type: 'string' },
    keep: { type: 'string' },
    'cache-sim': { type: 'boolean', default: false },
    // (--min-semi-space-size: under callgrind a request takes ~50x its time, so V8 sees a low allocation rate and
    // may shrink the young generation; two trees that allocate differently can then differ more in how often they
    // collect it than in what they run)
    'node-flags': { type: 'string', default: '' },
  },
  strict: true,
});
const N = Number(values.requests);
const WARMUP = Number(values.warmup ?? values.requests);
type Protocol = 'http' | 'https' | 'https-new' | 'h2';
const protocols = values.protocols.split(',') as Protocol[];
for (const p of protocols)
  if (!['http', 'https', 'https-new', 'h2'].includes(p)) throw new Error(`--protocols: unknown ${p}`);
const only = new Set(values.only.split(','));
const here = fileURLToPath(new URL('../..', import.meta.url));
const trees = (values.trees ?? here).split(',').map((t) => resolve(t));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

await run(['bash', join(here, 'scripts/setup-system.sh'), 'core', 'bench', 'profile'], { timeoutMs: 600_000 });
const dir = await mkdtemp(join(tmpdir(), 'kdp-bench-instructions-'));
if (values.keep) await mkdir(values.keep, { recursive: true });
const children: Spawned[] = [];

/** h2load against the target: N requests, all answered 2xx, else it throws. */
async function load(p: { http: number; https: number }, protocol: Protocol, n = N): Promise<void> {
  const url = protocol === 'http' ? `http://127.0.0.1:${p.http}/` : `https://127.0.0.1:${p.https}/`;
  const r = await run(
    [
      'h2load',
      ...(protocol === 'h2' ? ['-m5'] : ['--h1']),
      ...(protocol === 'https-new' ? ['-H', 'Connection: close'] : []),
      `-n${n}`,
      '-c10',
      '-H',
      ':authority: bench.local',
      url,
    ],
    { timeoutMs: 900_000, allowFailure: true },
  );
  if (!new RegExp(`\\b${n} succeeded`).test(r.stdout)) throw new Error(`h2load ${url}: ${r.stdout.slice(-400)}`);
}

/** Until a request to the target is answered 200 (a valgrind start takes tens of seconds). */
async function waitUp(p: { http: number; https: number }, child: Spawned): Promise<void> {
  const end = Date.now() + 180_000;
  for (;;) {
    const r = await run(
      ['h2load', '--h1', '-n1', '-c1', '-H', ':authority: bench.local', `http://127.0.0.1:${p.http}/`],
      {
        allowFailure: true,
        timeoutMs: 10_000,
      },
    );
    if (/\b1 succeeded/.test(r.stdout)) return;
    if (Date.now() > end) throw new Error(`target did not start: ${child.output().slice(-800)}`);
    await sleep(500);
  }
}

/**
 * callgrind knows JIT-compiled code by its address only: the kept dump file gets the function names of node's perf
 * map (/tmp/perf-PID.map, written under --perf-basic-prof; removed at the end).
 */
const perfMaps = new Set<string>();
async function nameJitCode(file: string, pid: string): Promise<void> {
  const mapFile = join(tmpdir(), `perf-${pid}.map`);
  const text = await readFile(mapFile, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  const entries = text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [start, size, ...name] = l.split(' ');
      return { start: parseInt(start!, 16), end: parseInt(start!, 16) + parseInt(size!, 16), name: name.join(' ') };
    })
    .sort((a, b) => a.start - b.start);
  const named = (addr: number): string | undefined => {
    let lo = 0;
    let hi = entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const e = entries[mid]!;
      if (addr < e.start) hi = mid - 1;
      else if (addr >= e.end) lo = mid + 1;
      else return e.name;
    }
    return undefined;
  };
  const out = (await readFile(file, 'utf8')).replace(
    /^(c?fn=\(\d+\)) 0x([0-9a-f]+)$/gm,
    (line, head: string, hex: string) => {
      const name = named(parseInt(hex, 16));
      return name === undefined ? line : `${head} ${name} @${hex}`;
    },
  );
  await writeFile(file, out);
}

/**
 * callgrind's "totals:" over the dump files of `label` written since the last call (dumping zeroes the counters):
 * the instructions, and with --cache-sim the other events by name (Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw).
 */
const seen = new Set<string>();
const events = new Map<string, Map<Protocol, Map<string, number>>>();
async function dumpedTotal(label: string, protocol: Protocol): Promise<number> {
  const byEvent = new Map<string, number>();
  for (const f of await readdir(dir)) {
    if (!f.startsWith(`cg.${label}.`) || seen.has(f)) continue;
    seen.add(f);
    if (values.keep) {
      await copyFile(join(dir, f), join(values.keep, f));
      if (label.startsWith('kdp')) await nameJitCode(join(values.keep, f), f.split('.')[2]!);
    }
    const text = await readFile(join(dir, f), 'utf8');
    const names = /^events: (.*)$/m.exec(text)?.[1]?.split(' ') ?? [];
    const counts = /^totals: (.*)$/m.exec(text)?.[1]?.split(' ').map(Number) ?? [];
    for (const [i, e] of names.entries()) byEvent.set(e, (byEvent.get(e) ?? 0) + (counts[i] ?? 0));
  }
  if (!events.has(label)) events.set(label, new Map());
  events.get(label)!.set(protocol, byEvent);
  return byEvent.get('Ir') ?? 0;
}

try {
  const tls = protocols.some((p) => p !== 'http');
  const { crt, key } = tls ? await benchCert(dir) : { crt: '', key: '' };
  const backendPort = await freePort();
  await writeFile(join(dir, 'backend.conf'), nginxConf(dir, 1, backendServer(backendPort)));
  children.push(spawnChild(['nginx', '-p', `${dir}/`, '-e', 'stderr', '-c', join(dir, 'backend.conf')]));

  interface Target {
    name: string;
    label: string;
    argv: string[];
    ports: { http: number; https: number };
  }
  const targets: Target[] = [];
  const valgrind = (label: string) => [
    'valgrind',
    '--tool=callgrind',
    '--instr-atstart=no',
    // V8 writes and rewrites machine code in memory
    '--smc-check=all-non-file',
    `--callgrind-out-file=${join(dir, `cg.${label}.%p`)}`,
    ...(values['cache-sim'] ? ['--cache-sim=yes', `--LL=${1024 * 1024},16,64`] : []),
  ];
  if (only.has('kdp'))
    for (const [i, tree] of trees.entries()) {
      const label = `kdp${i}`;
      const ports = { http: await freePort(), https: await freePort() };
      const m = join(dir, `manifests-${i}`);
      await mkdir(m, { recursive: true });
      await writeFile(join(m, 'bench.json'), JSON.stringify(oneRouteManifests('bench', 'bench.local', backendPort)));
      targets.push({
        name: trees.length > 1 ? `kdp ingress, 1 worker (${tree})` : 'kdp ingress, 1 worker',
        label,
        ports,
        argv: [
          ...valgrind(label),
          process.execPath,
          ...values['node-flags'].split(' ').filter((f) => f !== ''),
          ...(values.keep ? ['--perf-basic-prof'] : []),
          join(tree, 'src/cli/main.ts'),
          '--log-level',
          'warn',
          'ingress',
          '--manifests',
          m,
          '--bind',
          '127.0.0.1',
          '--http-port',
          String(ports.http),
          '--https-port',
          String(ports.https),
          '--healthz-port=-1',
          '--access-log',
          'off',
          '--workers',
          '1',
          ...(tls ? ['--default-ssl-certificate', `${crt},${key}`] : []),
        ],
      });
    }
  for (const [kind, name] of [
    ['nginx', 'nginx proxy, 1 process'],
    ['nginx-ingress', "nginx, ingress-nginx's proxy headers, 1 process"],
  ] as [NginxRef, string][]) {
    if (!only.has(kind)) continue;
    const ports = { http: await freePort(), https: await freePort() };
    const conf = join(dir, `${kind}.conf`);
    const tlsOpt = tls ? { port: ports.https, crt, key } : undefined;
    await writeFile(conf, nginxConf(dir, 0, proxyServers(kind, backendPort, ports.http, tlsOpt)));
    targets.push({
      name,
      label: kind,
      ports,
      argv: [...valgrind(kind), 'nginx', '-p', `${dir}/`, '-e', 'stderr', '-c', conf],
    });
  }

  const results = new Map<string, Map<Protocol, number>>();
  for (const tg of targets) {
    const child = spawnChild(tg.argv);
    children.push(child);
    if (values.keep && tg.label.startsWith('kdp')) perfMaps.add(join(tmpdir(), `perf-${child.pid}.map`));
    await waitUp(tg.ports, child);
    const counts = new Map<Protocol, number>();
    for (const protocol of protocols) {
      await load(tg.ports, protocol, WARMUP); // warm-up, not counted
      await run(['callgrind_control', '-i', 'on', String(child.pid)]);
      await load(tg.ports, protocol);
      await run(['callgrind_control', '-i', 'off', String(child.pid)]);
      await run(['callgrind_control', '-d', String(child.pid)]);
      const ir = await dumpedTotal(tg.label, protocol);
      counts.set(protocol, ir / N);
      process.stderr.write(`${tg.name} ${protocol}: ${(ir / N).toFixed(0)} instructions per request\n`);
    }
    results.set(tg.name, counts);
    await stopChildren([child], 10_000);
  }

  const ref = (name: string, p: Protocol) => results.get(name)?.get(p);
  const NAMES = ['nginx proxy, 1 process', "nginx, ingress-nginx's proxy headers, 1 process"];
  const lines = [
    `callgrind, ${N} requests counted after ${WARMUP} of warm-up, per protocol (h2load -c10; HTTP/2 -m5)`,
    '',
    `| target | ${protocols.map((p) => `${p}: instructions/request (÷ nginx's, ÷ ingress-nginx headers')`).join(' | ')} |`,
    `|---|${protocols.map(() => '---').join('|')}|`,
  ];
  for (const [name, counts] of results) {
    const cells = protocols.map((p) => {
      const v = counts.get(p)!;
      const ratios = NAMES.map((r) => ref(r, p))
        .map((x) => (x === undefined ? '-' : `${(v / x).toFixed(2)}x`))
        .join(', ');
      return `${v.toFixed(0)} (${ratios})`;
    });
    lines.push(`| ${name} | ${cells.join(' | ')} |`);
  }
  if (values['cache-sim']) {
    const per = (m: Map<string, number> | undefined, e: string) => ((m?.get(e) ?? 0) / N).toFixed(1);
    lines.push(
      '',
      'cache model, misses per request: L1 instructions / L1 data reads / L1 data writes / 1 MiB L2 (instructions + data reads + data writes)',
      '',
      `| target | ${protocols.join(' | ')} |`,
      `|---|${protocols.map(() => '---').join('|')}|`,
    );
    for (const tg of targets) {
      const byProtocol = events.get(tg.label);
      const cells = protocols.map((p) => {
        const m = byProtocol?.get(p);
        return `${per(m, 'I1mr')} / ${per(m, 'D1mr')} / ${per(m, 'D1mw')} / ${per(m, 'ILmr')} + ${per(m, 'DLmr')} + ${per(m, 'DLmw')}`;
      });
      lines.push(`| ${tg.name} | ${cells.join(' | ')} |`);
    }
  }
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  await stopChildren(children, 5000);
  await rm(dir, { recursive: true, force: true });
  for (const f of perfMaps) await rm(f, { force: true });
}
