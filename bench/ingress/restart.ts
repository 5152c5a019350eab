// Ingress start-up: time from spawning `kdp ingress --manifests DIR` to its first proxied 200, and the CPU the
// process used to get there (user + system, from /proc), over several runs; each run kills the previous process
// with SIGKILL first (the restart after kill -9 case). A bare `node -e 0` is timed too, for scale.
//   npm run bench:ingress-restart -- [--runs 7]
// Everything on 127.0.0.1; the backend is a node:http server in this process.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { oneRouteManifests } from '../../test/helpers/ingress-manifests.ts';
import { freePort } from '../../test/helpers/ports.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' } }, strict: true });
const RUNS = Number(values.runs);
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const CLK_TCK = 100;

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK; // utime stime cutime cstime
}

function get(port: number): Promise<number> {
  return new Promise((resolve) => {
    const r = request({ host: '127.0.0.1', port, path: '/', headers: { host: 'restart.test' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    r.on('error', () => resolve(0));
    r.end();
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const backend = createServer((_req, res) => res.end('ok'));
await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
const dir = await mkdtemp(join(tmpdir(), 'kdp-bench-ingress-restart-'));
try {
  await writeFile(
    join(dir, 'm.json'),
    JSON.stringify(oneRouteManifests('r', 'restart.test', (backend.address() as AddressInfo).port)),
  );
  const [http, https] = [await freePort(), await freePort()];
  const argv = [
    MAIN,
    '--log-level',
    'warn',
    'ingress',
    '--manifests',
    dir,
    '--bind',
    '127.0.0.1',
    '--http-port',
    String(http),
    '--https-port',
    String(https),
    '--healthz-port=-1',
    '--access-log',
    'off',
  ];
  const load0 = loadavg()[0]!;
  const bare: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await new Promise((r) => spawn(process.execPath, ['-e', '0']).on('exit', r));
    bare.push(performance.now() - t0);
  }
  const walls: number[] = [];
  const cpus: number[] = [];
  let prev: ReturnType<typeof spawn> | undefined;
  for (let i = 0; i <= RUNS; i++) {
    if (prev) {
      prev.kill('SIGKILL');
      await new Promise((r) => prev!.once('exit', r));
    }
    const t0 = performance.now();
    const child = spawn(process.execPath, argv, { stdio: 'ignore' });
    prev = child;
    for (;;) {
      if ((await get(http)) === 200) break;
      if (performance.now() - t0 > 60_000) throw new Error('not serving within 60 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    const wall = performance.now() - t0;
    const cpu = await cpuSeconds(child.pid!);
    // run 0 warms the compile cache (the first start after an install); it is not counted
    if (i > 0) {
      walls.push(wall);
      cpus.push(cpu * 1000);
    }
    process.stderr.write(
      `run ${i}${i === 0 ? ' (warm-up)' : ''}: first 200 after ${wall.toFixed(0)} ms, ${(cpu * 1000).toFixed(0)} ms CPU\n`,
    );
  }
  prev?.kill('SIGKILL');
  process.stdout.write(
    `kdp ingress restart (SIGKILL, then spawn) -> first proxied 200, ${RUNS} runs: median ${median(walls).toFixed(0)} ms (min ${Math.min(...walls).toFixed(0)}, max ${Math.max(...walls).toFixed(0)}); ` +
      `CPU median ${median(cpus).toFixed(0)} ms; bare node -e 0 median ${median(bare).toFixed(0)} ms; loadavg ${load0.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}\n`,
  );
} finally {
  backend.close();
  await rm(dir, { recursive: true, force: true });
}
