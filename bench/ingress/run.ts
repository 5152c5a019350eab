// Ingress benchmark: kdp ingress (an Ingress, and the same route as a Gateway API HTTPRoute served by the same
// process on a Gateway listener) vs nginx (upstream keepalive, the ingress-nginx defaults) vs HAProxy, each
// routing on Host (bench.local -> backend, anything else -> 404), at 1 and 2 workers, measured with wrk in
// the same run on loopback. The backend is nginx (1 worker) returning 200 with a 100-byte body.
//   npm run bench:ingress -- [--reps 3] [--duration 10] [--connections 50] [--only kdp,gateway,nginx,haproxy]
// Everything listens on 127.0.0.1; configs live in a temp dir that is removed at the end.
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { run, spawnChild } from '../../src/common/exec-adapter.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    only: { type: 'string', default: 'direct,kdp,gateway,nginx,haproxy' },
  },
  strict: true,
});
const REPS = Number(values.reps);
const only = new Set(values.only.split(','));
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const BODY = 'x'.repeat(99) + '\n';
const BASE = 20000 + Math.floor(Math.random() * 20000);
const port = (i: number) => BASE + i;

await run(['bash', fileURLToPath(new URL('../../scripts/setup-system.sh', import.meta.url)), 'core', 'bench'], {
  timeoutMs: 600_000,
});
const dir = await mkdtemp(join(tmpdir(), 'kdp-bench-ingress-'));
const children: Spawned[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitHttp(p: number, host = 'bench.local', want = 200): Promise<void> {
  const end = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await request(`http://127.0.0.1:${p}/`, { headers: { host } });
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

function nginxConf(workers: number, body: string): string {
  return `worker_processes ${workers};
daemon off;
master_process on;
user root;
pid ${dir}/nginx-${Math.random().toString(36).slice(2)}.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp-body;
  proxy_temp_path ${dir}/tmp-proxy;
  fastcgi_temp_path ${dir}/tmp-fcgi;
  uwsgi_temp_path ${dir}/tmp-uwsgi;
  scgi_temp_path ${dir}/tmp-scgi;
  ${body}
}
`;
}

async function startNginx(name: string, workers: number, body: string): Promise<Spawned> {
  const conf = join(dir, `${name}.conf`);
  await writeFile(conf, nginxConf(workers, body));
  const c = spawnChild(['nginx', '-p', `${dir}/`, '-e', 'stderr', '-c', conf]);
  children.push(c);
  return c;
}

// CPU seconds (user + system) of a process and all its descendants, from /proc: the proxy's cost per request,
// which (unlike req/s) barely moves when other work shares the cores
const CLK_TCK = Number((await run(['getconf', 'CLK_TCK'])).stdout.trim()) || 100;
async function treeCpuSeconds(pid: number): Promise<number> {
  let total = 0;
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    try {
      const stat = await readFile(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
      for (const task of await readdir(`/proc/${p}/task`)) {
        const kids = (await readFile(`/proc/${p}/task/${task}/children`, 'utf8').catch(() => '')).trim();
        if (kids) todo.push(...kids.split(/\s+/).map(Number));
      }
    } catch {
      /* exited */
    }
  }
  return total;
}

const backendPort = port(0);
const targets: { name: string; port: number; workers: number; pid?: number }[] = [];
try {
  const backendChild = await startNginx(
    'backend',
    1,
    `server { listen 127.0.0.1:${backendPort}; keepalive_requests 100000; location / { return 200 "${BODY.trimEnd()}\\n"; } }`,
  );
  await waitHttp(backendPort);
  if (only.has('direct'))
    targets.push({ name: 'direct to backend (nginx, 1 worker)', port: backendPort, workers: 1, pid: backendChild.pid });

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
      ]);
      children.push(child);
      const s = w > 1 ? 's' : '';
      if (only.has('kdp')) {
        await waitHttp(p);
        targets.push({ name: `kdp ingress, ${w} worker${s}`, port: p, workers: w, pid: child.pid });
      }
      if (only.has('gateway')) {
        await waitHttp(gp);
        targets.push({ name: `kdp Gateway (HTTPRoute), ${w} worker${s}`, port: gp, workers: w, pid: child.pid });
      }
    }
  }
  if (only.has('nginx')) {
    for (const w of [1, 2]) {
      const p = port(30 + w);
      const ng = await startNginx(
        `proxy${w}`,
        w,
        `upstream bench { server 127.0.0.1:${backendPort}; keepalive 320; keepalive_requests 10000; keepalive_timeout 60s; }
  server { listen 127.0.0.1:${p} default_server; return 404; }
  server { listen 127.0.0.1:${p}; server_name bench.local;
    location / { proxy_pass http://bench; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Real-IP $remote_addr; } }`,
      );
      await waitHttp(p);
      targets.push({ name: `nginx proxy, ${w} worker${w > 1 ? 's' : ''}`, port: p, workers: w, pid: ng.pid });
    }
  }
  if (only.has('haproxy')) {
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
      targets.push({ name: `HAProxy, ${w} thread${w > 1 ? 's' : ''}`, port: p, workers: w, pid: hp.pid });
    }
  }

  // routing sanity: any other host gets 404 from every proxy
  for (const tg of targets) if (tg.port !== backendPort) await waitHttp(tg.port, 'other.example', 404);

  const ms = (v: string, unit: string) => Number(v) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1);
  const wrk = async (p: number, seconds: number) => {
    const r = await run(
      [
        'wrk',
        '-t2',
        `-c${values.connections}`,
        `-d${seconds}s`,
        '--latency',
        '-H',
        'Host: bench.local',
        `http://127.0.0.1:${p}/`,
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
  const results = new Map<string, { rps: number; p50: number; p99: number; non2xx: number; cpuUs: number }[]>();
  for (let rep = 0; rep < REPS; rep++) {
    for (const tg of targets) {
      await wrk(tg.port, Number(values.warmup));
      const cpu0 = tg.pid ? await treeCpuSeconds(tg.pid) : NaN;
      const w = await wrk(tg.port, Number(values.duration));
      const cpu1 = tg.pid ? await treeCpuSeconds(tg.pid) : NaN;
      const r = { ...w, cpuUs: ((cpu1 - cpu0) / w.requests) * 1e6 };
      process.stderr.write(
        `rep ${rep + 1} ${tg.name}: ${r.rps.toFixed(0)} req/s p50 ${r.p50} ms p99 ${r.p99} ms non2xx ${r.non2xx} cpu ${r.cpuUs.toFixed(1)} us/req\n`,
      );
      results.set(tg.name, [...(results.get(tg.name) ?? []), r]);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const nginxRps = (w: number) =>
    median((results.get(`nginx proxy, ${w} worker${w > 1 ? 's' : ''}`) ?? []).map((r) => r.rps));
  const nginxP99 = (w: number) =>
    median((results.get(`nginx proxy, ${w} worker${w > 1 ? 's' : ''}`) ?? []).map((r) => r.p99));
  const nginxCpu = (w: number) =>
    median((results.get(`nginx proxy, ${w} worker${w > 1 ? 's' : ''}`) ?? []).map((r) => r.cpuUs));
  const lines = [
    `wrk -t2 -c${values.connections} -d${values.duration}s --latency -H 'Host: bench.local', ${values.warmup} s warm-up, median of ${REPS} runs (interleaved)`,
    '',
    '| target (Host-routed) | req/s (median) | p50 ms | p99 ms | req/s range | vs nginx, same workers (rps / p99) | CPU us/req | nginx CPU/req ÷ this |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const tg of targets) {
    const rs = results.get(tg.name)!;
    const rps = median(rs.map((r) => r.rps));
    const p99 = median(rs.map((r) => r.p99));
    const vs =
      tg.port === backendPort || !results.has(`nginx proxy, ${tg.workers} worker${tg.workers > 1 ? 's' : ''}`)
        ? '—'
        : `${(rps / nginxRps(tg.workers)).toFixed(2)}x / ${(p99 / nginxP99(tg.workers)).toFixed(2)}x`;
    const non = rs.reduce((a, r) => a + r.non2xx, 0);
    const cpu = median(rs.map((r) => r.cpuUs));
    const cpuVs =
      tg.port === backendPort || !results.has(`nginx proxy, ${tg.workers} worker${tg.workers > 1 ? 's' : ''}`)
        ? '—'
        : `${(nginxCpu(tg.workers) / cpu).toFixed(2)}x`;
    lines.push(
      `| ${tg.name} | ${rps.toFixed(0)} | ${median(rs.map((r) => r.p50)).toFixed(2)} | ${p99.toFixed(2)} | ${Math.min(...rs.map((r) => r.rps)).toFixed(0)}–${Math.max(...rs.map((r) => r.rps)).toFixed(0)} | ${vs}${non ? ` (non-2xx: ${non})` : ''} | ${cpu.toFixed(1)} | ${cpuVs} |`,
    );
  }
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => Promise.race([c.exited, sleep(3000)])));
  for (const c of children) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
}
