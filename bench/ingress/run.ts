// Ingress benchmark: kdp ingress (an Ingress, and the same route as a Gateway API HTTPRoute served by the same
// process on a Gateway listener) vs nginx (upstream keepalive as ingress-nginx configures it) vs HAProxy, each
// routing on Host (bench.local -> backend, anything else -> 404), at 1 and 2 workers, measured with wrk in
// the same run on loopback. The backend is nginx (1 worker) returning 200 with a 100-byte body.
// Protocols (kdp and nginx only, the same certificate, an ECDSA P-256 one made with openssl for the run):
//   http       plain HTTP/1.1, keep-alive (wrk)
//   https      HTTP/1.1 over TLS, keep-alive (wrk)
//   https-new  HTTP/1.1 over TLS, a new connection (TCP + TLS handshake) per request (wrk -H 'Connection: close')
//   h2         HTTP/2 over TLS (ALPN h2), h2load, 10 connections x 5 streams (the same 50 requests in flight)
// With `--only ...,floor` also a Node TCP relay that does no HTTP work (bench/ingress/floor-relay.ts): what any
// Node.js proxy pays per request here for its I/O alone, over plain TCP and over node:tls (rows http, https,
// https-new; it opens one upstream connection per client connection and routes nothing, so no 404 check), and a
// node:http2 server answering every stream itself (row h2, no upstream at all).
// With `--syscalls`, each target gets one more run with strace counting the system calls of its processes
// (`strace -f -c`; it slows the target, so that run's rate is not reported): calls per request, by name, and the
// TCP segments the host sent per request in that run (/proc/net/snmp OutSegs: the target's, wrk's and the
// backend's, all on loopback; nothing else should run).
// Each of the `--reps` runs measures the rows of one protocol and worker count back to back (in reverse order every
// other run); a comparison is the median over the runs of that run's ratio.
//   npm run bench:ingress -- [--reps 3] [--duration 10] [--connections 50]
//     [--only direct,kdp,gateway,nginx,nginx-ingress,haproxy,floor]
//     [--protocols http,https,https-new,h2] [--profile DIR] [--syscalls] [--node-flags=FLAGS (for kdp)]
// Two nginx references (`--only nginx,nginx-ingress`, configs in bench/ingress/nginx-refs.ts): `nginx proxy` sets
// the few proxy headers a hand-written config would, the one earlier runs compared with; `nginx, ingress-nginx's
// proxy headers` sets the ones ingress-nginx's nginx.tmpl sets (the same headers kdp sends). Every row is compared
// with both.
// Everything listens on 127.0.0.1; configs live in a temp dir that is removed at the end.
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { run, spawnChild, stopChildren } from '../../src/common/exec-adapter.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';
import { backendServer, benchCert, nginxConf, proxyServers } from './nginx-refs.ts';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    only: { type: 'string', default: 'direct,kdp,gateway,nginx,nginx-ingress,haproxy' },
    protocols: { type: 'string', default: 'http,https,https-new,h2' },
    // a directory: the kdp processes run with `node --cpu-prof` and write their profiles there on exit
    profile: { type: 'string' },
    // one more run per target under `strace -f -c`: system calls per request
    syscalls: { type: 'boolean', default: false },
    // node flags for the kdp processes (and their workers), space-separated: `--node-flags=--single-threaded-gc`
    'node-flags': { type: 'string', default: '' },
  },
  strict: true,
});
const REPS = Number(values.reps);
const only = new Set(values.only.split(','));
const PROTOCOLS = ['http', 'https', 'https-new', 'h2'] as const;
type Protocol = (typeof PROTOCOLS)[number];
const protocols = new Set(values.protocols.split(',') as Protocol[]);
for (const p of protocols) if (!PROTOCOLS.includes(p)) throw new Error(`--protocols: unknown ${p}`);
const tls = protocols.has('https') || protocols.has('https-new') || protocols.has('h2');
/** what a row is called after its program and worker count, per protocol */
const SUFFIX: Record<Protocol, string> = {
  http: '',
  https: ' HTTPS keep-alive',
  'https-new': ' HTTPS new connection per request',
  h2: ' HTTP/2 (TLS)',
};
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
// below Linux's default ephemeral range (32768-60999): a port of the run is not one a client connection of the
// machine already holds (a run that could not bind failed with EADDRINUSE)
const BASE = 20000 + Math.floor(Math.random() * 12000);
const port = (i: number) => BASE + i;

await run(
  [
    'bash',
    fileURLToPath(new URL('../../scripts/setup-system.sh', import.meta.url)),
    'core',
    'bench',
    ...(values.syscalls ? ['profile'] : []),
  ],
  { timeoutMs: 600_000 },
);
const dir = await mkdtemp(join(tmpdir(), 'kdp-bench-ingress-'));
const children: Spawned[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// the run's certificate is self-signed: checked by the proxies' answers, not by a CA
const insecure = new Agent({ connect: { rejectUnauthorized: false } });
/** Until one HTTP/2 request to 127.0.0.1:p succeeds (h2load, for a server that speaks nothing else). */
async function waitH2(p: number): Promise<void> {
  const end = Date.now() + 60_000;
  for (;;) {
    const r = await run(['h2load', '-n1', '-c1', `https://127.0.0.1:${p}/`], { allowFailure: true, timeoutMs: 10_000 });
    if (/\b1 succeeded/.test(r.stdout)) return;
    if (Date.now() > end) throw new Error(`port ${p} did not answer HTTP/2: ${r.stdout.slice(-500)}`);
    await sleep(100);
  }
}

async function waitHttp(p: number, host = 'bench.local', want = 200, scheme = 'http'): Promise<void> {
  const end = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await request(`${scheme}://127.0.0.1:${p}/`, { headers: { host }, dispatcher: insecure });
      await r.body.text();
      if (r.statusCode === want) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > end)
      throw new Error(`port ${p} did not answer ${want}: ${children.map((c) => c.output().slice(-500)).join('\n')}`);
    await sleep(100);
  }
}

async function startNginx(name: string, workers: number, body: string): Promise<Spawned> {
  const conf = join(dir, `${name}.conf`);
  await writeFile(conf, nginxConf(dir, workers, body));
  const c = spawnChild(['nginx', '-p', `${dir}/`, '-e', 'stderr', '-c', conf]);
  children.push(c);
  return c;
}

// CPU seconds (user + system) of a process and all its descendants, from /proc: the proxy's cost per request,
// which (unlike req/s) barely moves when other work shares the cores
const CLK_TCK = Number((await run(['getconf', 'CLK_TCK'])).stdout.trim()) || 100;
/** A process and all its descendants (workers), from /proc; the ones that exited are left out. */
async function treePids(pid: number): Promise<number[]> {
  const out: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    try {
      const tasks = await readdir(`/proc/${p}/task`);
      out.push(p);
      for (const task of tasks) {
        const kids = (await readFile(`/proc/${p}/task/${task}/children`, 'utf8').catch(() => '')).trim();
        if (kids) todo.push(...kids.split(/\s+/).map(Number));
      }
    } catch {
      /* exited */
    }
  }
  return out;
}
async function treeCpuSeconds(pid: number): Promise<{ user: number; sys: number }> {
  let user = 0;
  let sys = 0;
  for (const p of await treePids(pid)) {
    const stat = await readFile(`/proc/${p}/stat`, 'utf8').catch(() => '');
    if (!stat) continue;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    user += Number(f[11]) / CLK_TCK; // utime (field 14)
    sys += Number(f[12]) / CLK_TCK; // stime (field 15)
  }
  return { user, sys };
}

const backendPort = port(0);
interface Target {
  name: string;
  port: number;
  workers: number;
  pid?: number;
  protocol: Protocol;
  /** the nginx row it is compared with */
  ref?: string;
  /** the nginx row with ingress-nginx's proxy headers it is compared with too */
  ref2?: string;
  /** false: it routes nothing (the floor relay), so it has no 404 to check */
  routes?: false;
}
const targets: Target[] = [];
const nginxName = (w: number, p: Protocol) => `nginx proxy${SUFFIX[p]}, ${w} worker${w > 1 ? 's' : ''}`;
const INGRESS_NGINX = "nginx, ingress-nginx's proxy headers";
const ingressNginxName = (w: number, p: Protocol) => `${INGRESS_NGINX}${SUFFIX[p]}, ${w} worker${w > 1 ? 's' : ''}`;
/** the rows of one server: one per protocol it serves that was asked for */
function addRows(base: string, w: number, pid: number, ports: Partial<Record<Protocol, number>>): void {
  for (const p of PROTOCOLS) {
    const at = ports[p];
    if (at === undefined || !protocols.has(p)) continue;
    targets.push({
      name: `${base}${SUFFIX[p]}, ${w} worker${w > 1 ? 's' : ''}`,
      port: at,
      workers: w,
      pid,
      protocol: p,
      ref: nginxName(w, p),
      ref2: ingressNginxName(w, p),
    });
  }
}
try {
  // one certificate for every TLS server of the run
  const { crt, key } = tls ? await benchCert(dir) : { crt: '', key: '' };
  const backendChild = await startNginx('backend', 1, backendServer(backendPort));
  await waitHttp(backendPort);
  if (only.has('direct') && protocols.has('http'))
    targets.push({
      name: 'direct to backend (nginx, 1 worker)',
      port: backendPort,
      workers: 1,
      pid: backendChild.pid,
      protocol: 'http',
    });

  if (only.has('kdp') || only.has('gateway')) {
    const service = [
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'bench', namespace: 'default' },
        spec: { ports: [{ port: 80, protocol: 'TCP' }] },
      },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'bench-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'bench' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
        ports: [{ name: '', port: backendPort, protocol: 'TCP' }],
      },
    ];
    const ingress = [
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'IngressClass',
        metadata: { name: 'kdp' },
        spec: { controller: 'kdp.dev/ingress' },
      },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'Ingress',
        metadata: { name: 'bench', namespace: 'default' },
        spec: {
          ingressClassName: 'kdp',
          rules: [
            {
              host: 'bench.local',
              http: {
                paths: [
                  { path: '/', pathType: 'Prefix', backend: { service: { name: 'bench', port: { number: 80 } } } },
                ],
              },
            },
          ],
        },
      },
    ];
    // the same route as Gateway API objects: a Gateway on 127.0.0.1 (spec.addresses) and an HTTPRoute for
    // bench.local, PathPrefix / -> the Service (what `kdp ingress convert` makes of the Ingress above)
    const gateway = (listenerPort: number) => [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'GatewayClass',
        metadata: { name: 'kdp' },
        spec: { controllerName: 'kdp.dev/gateway-controller' },
      },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: 'bench', namespace: 'default' },
        spec: {
          gatewayClassName: 'kdp',
          addresses: [{ type: 'IPAddress', value: '127.0.0.1' }],
          listeners: [{ name: 'http', port: listenerPort, protocol: 'HTTP' }],
        },
      },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'bench', namespace: 'default' },
        spec: {
          parentRefs: [{ name: 'bench' }],
          hostnames: ['bench.local'],
          rules: [
            { matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'bench', port: 80 }] },
          ],
        },
      },
    ];
    for (const w of [1, 2]) {
      const p = port(10 + w);
      const gp = port(50 + w);
      // one manifests directory per process: each serves its own Gateway listener port
      const m = join(dir, `manifests-${w}`);
      await mkdir(m);
      await writeFile(
        join(m, 'bench.json'),
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'List',
          items: [...service, ...(only.has('kdp') ? ingress : []), ...(only.has('gateway') ? gateway(gp) : [])],
        }),
      );
      const child = spawnChild([
        process.execPath,
        ...values['node-flags'].split(' ').filter((f) => f !== ''),
        ...(values.profile ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : []),
        MAIN,
        '--log-level',
        'warn',
        '--log-format',
        'json',
        'ingress',
        '--manifests',
        m,
        '--bind',
        '127.0.0.1',
        '--http-port',
        String(p),
        '--https-port',
        String(port(20 + w)),
        '--healthz-port=-1',
        '--access-log',
        'off',
        '--workers',
        String(w),
        ...(tls ? ['--default-ssl-certificate', `${crt},${key}`] : []),
      ]);
      children.push(child);
      if (only.has('kdp')) {
        await waitHttp(p);
        if (tls) await waitHttp(port(20 + w), 'bench.local', 200, 'https');
        const tp = port(20 + w);
        addRows('kdp ingress', w, child.pid!, { http: p, https: tp, 'https-new': tp, h2: tp });
      }
      if (only.has('gateway')) {
        await waitHttp(gp);
        addRows('kdp Gateway (HTTPRoute)', w, child.pid!, { http: gp });
      }
    }
  }
  for (const [kind, base, httpAt, tlsAt] of [
    ['nginx', 'nginx proxy', 30, 60],
    ['nginx-ingress', INGRESS_NGINX, 80, 90],
  ] as const) {
    if (!only.has(kind)) continue;
    for (const w of [1, 2]) {
      const p = port(httpAt + w);
      const tp = port(tlsAt + w);
      const ng = await startNginx(
        `${kind}${w}`,
        w,
        proxyServers(kind, backendPort, p, tls ? { port: tp, crt, key } : undefined),
      );
      await waitHttp(p);
      if (tls) await waitHttp(tp, 'bench.local', 200, 'https');
      addRows(base, w, ng.pid!, { http: p, https: tp, 'https-new': tp, h2: tp });
    }
  }
  if (only.has('haproxy') && protocols.has('http')) {
    for (const w of [1, 2]) {
      const p = port(40 + w);
      const cfg = join(dir, `haproxy${w}.cfg`);
      await writeFile(
        cfg,
        `global
  nbthread ${w}
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
  option forwardfor
frontend fe
  bind 127.0.0.1:${p}
  acl bench hdr(host) -i bench.local
  http-request return status 404 if !bench
  http-request set-header X-Real-IP %[src]
  default_backend be
backend be
  server s1 127.0.0.1:${backendPort}
`,
      );
      const hp = spawnChild(['haproxy', '-db', '-f', cfg]);
      children.push(hp);
      await waitHttp(p);
      targets.push({
        name: `HAProxy, ${w} thread${w > 1 ? 's' : ''}`,
        port: p,
        workers: w,
        pid: hp.pid,
        protocol: 'http',
        ref: nginxName(w, 'http'),
      });
    }
  }

  if (only.has('floor')) {
    const p = port(60);
    const tp = port(70);
    const hp = port(71);
    const relay = spawnChild([
      process.execPath,
      fileURLToPath(new URL('./floor-relay.ts', import.meta.url)),
      String(p),
      String(backendPort),
      ...(tls ? [String(tp), crt, key, String(hp)] : []),
    ]);
    children.push(relay);
    await waitHttp(p);
    if (tls) await waitHttp(tp, 'bench.local', 200, 'https');
    if (tls) await waitH2(hp);
    // HTTP/2: the relay speaks no HTTP and the backend HTTP/1.1 only, so its row is a node:http2 server that
    // answers every stream itself (no upstream): below what any Node HTTP/2 proxy can cost
    for (const [proto, at, what] of [
      ['http', p, 'Node relay, no HTTP work'],
      ['https', tp, 'Node relay, no HTTP work'],
      ['https-new', tp, 'Node relay, no HTTP work'],
      ['h2', hp, 'node:http2 answering itself, no upstream'],
    ] as const) {
      if (!protocols.has(proto)) continue;
      targets.push({
        name: `${what} (floor)${SUFFIX[proto]}, 1 worker`,
        port: at,
        workers: 1,
        pid: relay.pid,
        protocol: proto,
        ref: nginxName(1, proto),
        routes: false,
      });
    }
  }

  // routing sanity: any other host gets 404 from every proxy (the floor relay routes nothing)
  for (const tg of targets)
    if (tg.port !== backendPort && tg.routes !== false)
      await waitHttp(tg.port, 'other.example', 404, tg.protocol === 'http' ? 'http' : 'https');

  const ms = (v: string, unit: string) => Number(v) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1);
  interface Measured {
    requests: number;
    rps: number;
    p50: number;
    p99: number;
    non2xx: number;
  }
  const wrk = async (tg: Target, seconds: number): Promise<Measured> => {
    const scheme = tg.protocol === 'http' ? 'http' : 'https';
    const close = tg.protocol === 'https-new' ? ['-H', 'Connection: close'] : [];
    const r = await run(
      [
        'wrk',
        '-t2',
        `-c${values.connections}`,
        `-d${seconds}s`,
        '--latency',
        '-H',
        'Host: bench.local',
        ...close,
        `${scheme}://127.0.0.1:${tg.port}/`,
      ],
      { timeoutMs: (seconds + 30) * 1000 },
    );
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
    const p50 = /\s50%\s+([\d.]+)(us|ms|s)/.exec(r.stdout);
    const p99 = /\s99%\s+([\d.]+)(us|ms|s)/.exec(r.stdout);
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(r.stdout)?.[1] ?? 0);
    const requests = Number(/(\d+) requests in/.exec(r.stdout)?.[1] ?? NaN);
    return { requests, rps, p50: p50 ? ms(p50[1]!, p50[2]!) : NaN, p99: p99 ? ms(p99[1]!, p99[2]!) : NaN, non2xx };
  };
  // h2load gives no percentiles: they come from its per-request log (start, status, duration in us)
  const H2_CONNS = Math.max(1, Math.round(Number(values.connections) / 5));
  const h2load = async (tg: Target, seconds: number): Promise<Measured> => {
    const log = join(dir, 'h2load.log');
    const r = await run(
      [
        'h2load',
        '-t2',
        `-c${H2_CONNS}`,
        '-m5',
        `-D${seconds}`,
        `--log-file=${log}`,
        '-H',
        ':authority: bench.local',
        `https://127.0.0.1:${tg.port}/`,
      ],
      { timeoutMs: (seconds + 30) * 1000 },
    );
    const rps = Number(/finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(r.stdout)?.[1] ?? NaN);
    const done = Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(r.stdout)?.[1] ?? NaN);
    const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(r.stdout);
    const failed = Number(/(\d+) failed/.exec(r.stdout)?.[1] ?? 0);
    const non2xx = failed + (codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : 0);
    const us = (await readFile(log, 'utf8'))
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => Number(l.trim().split(/\s+/).at(-1)))
      .sort((a, b) => a - b);
    await rm(log, { force: true });
    const pct = (q: number) => (us.length ? us[Math.min(us.length - 1, Math.floor(us.length * q))]! / 1000 : NaN);
    return { requests: done, rps, p50: pct(0.5), p99: pct(0.99), non2xx };
  };
  const measure = (tg: Target, seconds: number) => (tg.protocol === 'h2' ? h2load(tg, seconds) : wrk(tg, seconds));
  const results = new Map<string, (Measured & { cpuUs: number; userUs: number; sysUs: number })[]>();
  // The rows compared with one another (one protocol and worker count) run back to back, their order reversed
  // every other rep: the host's noise drifts over minutes, and a row measured next to its reference shares more of
  // it than one measured after every other row. The comparisons are medians of each rep's own ratio.
  const groupOf = (tg: Target) => `${tg.workers} ${tg.protocol}`;
  const groups = [...new Set(targets.map(groupOf))].map((g) => targets.filter((tg) => groupOf(tg) === g));
  for (let rep = 0; rep < REPS; rep++) {
    for (const tg of groups.flatMap((g) => (rep % 2 === 0 ? g : [...g].reverse()))) {
      await measure(tg, Number(values.warmup));
      const cpu0 = tg.pid ? await treeCpuSeconds(tg.pid) : { user: NaN, sys: NaN };
      const w = await measure(tg, Number(values.duration));
      const cpu1 = tg.pid ? await treeCpuSeconds(tg.pid) : { user: NaN, sys: NaN };
      const userUs = ((cpu1.user - cpu0.user) / w.requests) * 1e6;
      const sysUs = ((cpu1.sys - cpu0.sys) / w.requests) * 1e6;
      const r = { ...w, cpuUs: userUs + sysUs, userUs, sysUs };
      process.stderr.write(
        `rep ${rep + 1} ${tg.name}: ${r.rps.toFixed(0)} req/s p50 ${r.p50} ms p99 ${r.p99} ms non2xx ${r.non2xx} cpu ${r.cpuUs.toFixed(1)} us/req (user ${userUs.toFixed(1)}, sys ${sysUs.toFixed(1)})\n`,
      );
      results.set(tg.name, [...(results.get(tg.name) ?? []), r]);
    }
  }
  // --syscalls: one more run per target, its processes under `strace -f -c`: system calls per request, by name
  const syscalls = new Map<string, { perRequest: number; top: string; segments: number }>();
  /** TCP segments this network namespace has sent (/proc/net/snmp, Tcp: OutSegs) */
  const outSegs = async (): Promise<number> => {
    const tcp = (await readFile('/proc/net/snmp', 'utf8')).split('\n').filter((l) => l.startsWith('Tcp:'));
    const names = tcp[0]!.split(/\s+/);
    return Number(tcp[1]!.split(/\s+/)[names.indexOf('OutSegs')]);
  };
  if (values.syscalls)
    for (const tg of targets) {
      if (!tg.pid) continue;
      await measure(tg, Number(values.warmup));
      const file = join(dir, 'strace.txt');
      const pids = await treePids(tg.pid);
      const st = spawnChild(['strace', '-f', '-c', '-o', file, ...pids.flatMap((p) => ['-p', String(p)])]);
      children.push(st);
      // strace says "Process N attached" on stderr for each once it is in place
      const end = Date.now() + 10_000;
      while ((st.output().match(/ attached/g) ?? []).length < pids.length) {
        if (Date.now() > end) throw new Error(`strace did not attach: ${st.output().slice(-500)}`);
        await sleep(50);
      }
      const segs0 = await outSegs();
      const w = await measure(tg, Number(values.duration));
      const segments = ((await outSegs()) - segs0) / w.requests;
      st.kill('SIGINT');
      await st.exited;
      // "% time  seconds  usecs/call  calls  [errors]  syscall" rows, then "total"
      const counts: [string, number][] = [];
      for (const line of (await readFile(file, 'utf8')).split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f.length < 5 || !/^\d/.test(f[0]!) || f.at(-1) === 'total') continue;
        counts.push([f.at(-1)!, Number(f[3])]);
      }
      await rm(file, { force: true });
      counts.sort((a, b) => b[1] - a[1]);
      const total = counts.reduce((a, [, n]) => a + n, 0);
      const perRequest = (rows: [string, number][]) =>
        rows.map(([name, n]) => `${name} ${(n / w.requests).toFixed(2)}`).join(', ');
      const top = perRequest(counts.slice(0, 6));
      syscalls.set(tg.name, { perRequest: total / w.requests, top, segments });
      // the log line has every call made at least once per 100 requests (the table, the six most frequent)
      const every = perRequest(counts.filter(([, n]) => n * 100 >= w.requests));
      process.stderr.write(
        `syscalls ${tg.name}: ${(total / w.requests).toFixed(2)} per request (${every}); TCP segments sent ${segments.toFixed(2)}\n`,
      );
    }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  /** the median over reps of f(this row's rep) ÷ f(the reference's same rep) */
  const paired = (name: string, refName: string, f: (r: Measured & { cpuUs: number }) => number) => {
    const mine = results.get(name)!;
    const theirs = results.get(refName)!;
    return median(mine.map((r, i) => f(r) / f(theirs[i]!)));
  };
  const lines = [
    `wrk -t2 -c${values.connections} -d${values.duration}s --latency -H 'Host: bench.local' (HTTPS new connections: also -H 'Connection: close'); HTTP/2: h2load -t2 -c${H2_CONNS} -m5 -D${values.duration}; ${values.warmup} s warm-up, ${REPS} runs, each row next to the rows it is compared with, their order reversed every other run; req/s, p50, p99, CPU: medians; ratios: medians of each run's ratio`,
    '',
    "| target (Host-routed) | req/s (median) | p50 ms | p99 ms | req/s range | vs nginx, same protocol and workers (rps / p99) | CPU us/req (user + sys) | nginx CPU/req ÷ this | vs nginx with ingress-nginx's headers (rps / p99 / its CPU ÷ this) |",
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const tg of targets) {
    const rs = results.get(tg.name)!;
    const rps = median(rs.map((r) => r.rps));
    const p99 = median(rs.map((r) => r.p99));
    const hasRef = tg.ref !== undefined && results.has(tg.ref);
    const vs = hasRef
      ? `${paired(tg.name, tg.ref!, (r) => r.rps).toFixed(2)}x / ${paired(tg.name, tg.ref!, (r) => r.p99).toFixed(2)}x`
      : '—';
    const non = rs.reduce((a, r) => a + r.non2xx, 0);
    const cpu = median(rs.map((r) => r.cpuUs));
    const user = median(rs.map((r) => r.userUs));
    const sys = median(rs.map((r) => r.sysUs));
    const cpuVs = hasRef ? `${paired(tg.ref!, tg.name, (r) => r.cpuUs).toFixed(2)}x` : '—';
    const r2 = tg.ref2;
    const vs2 =
      r2 !== undefined && r2 !== tg.name && results.has(r2)
        ? `${paired(tg.name, r2, (r) => r.rps).toFixed(2)}x / ${paired(tg.name, r2, (r) => r.p99).toFixed(2)}x / ${paired(r2, tg.name, (r) => r.cpuUs).toFixed(2)}x`
        : '—';
    lines.push(
      `| ${tg.name} | ${rps.toFixed(0)} | ${median(rs.map((r) => r.p50)).toFixed(2)} | ${p99.toFixed(2)} | ${Math.min(...rs.map((r) => r.rps)).toFixed(0)}–${Math.max(...rs.map((r) => r.rps)).toFixed(0)} | ${vs}${non ? ` (non-2xx: ${non})` : ''} | ${cpu.toFixed(1)} (${user.toFixed(1)} + ${sys.toFixed(1)}) | ${cpuVs} | ${vs2} |`,
    );
  }
  if (syscalls.size > 0) {
    lines.push(
      '',
      `System calls per request (one more run of each target under \`strace -f -c\`, ${values.duration} s):`,
      '',
      '| target | syscalls per request | the most frequent, per request | TCP segments sent per request (all processes) |',
      '|---|---|---|---|',
    );
    for (const [name, s] of syscalls)
      lines.push(`| ${name} | ${s.perRequest.toFixed(2)} | ${s.top} | ${s.segments.toFixed(2)} |`);
  }
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  await stopChildren(children, 3000);
  await rm(dir, { recursive: true, force: true });
}
