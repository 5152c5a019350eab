// Benchmark: initial sync of 10,000 Services + 10,000 EndpointSlices from the API double, kdp's KubeSource
// against the client library's own informers (makeInformer: ListWatch + ObjectCache), side by side in the
// same run. Each sync runs in a fresh child process (time to synced, RSS and heap delta after GC); the
// two implementations alternate; medians of RUNS (default 5).
//   npm run bench:cluster-state            (RUNS=7 SERVICES=10000 npm run bench:cluster-state)
// Loopback only: the API double listens on 127.0.0.1:0.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiDouble } from '../../test/apiserver/server.ts';
import { endpointSliceObject, serviceObject } from './objects.ts';

const RUNS = Number(process.env.RUNS ?? 5);
const N = Number(process.env.SERVICES ?? 10_000);
const child = fileURLToPath(new URL('./child.ts', import.meta.url));

interface Sample {
  impl: string;
  ms: number;
  cpuMs: number;
  rssDeltaMB: number;
  heapDeltaMB: number;
  services: number;
  slices: number;
}

function populate(api: ApiDouble): void {
  for (let i = 0; i < N; i++) {
    api.create('Service', serviceObject(i));
    api.create('EndpointSlice', endpointSliceObject(i));
  }
}

function once(impl: string, kubeconfig: string): Promise<Sample> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', child, impl, kubeconfig],
      { timeout: 120_000, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`${impl}: ${err.message}\n${stderr}`));
        resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Sample);
      },
    );
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const api = await ApiDouble.start();
const dir = await mkdtemp(join(tmpdir(), 'kdp-bench-cs-'));
try {
  const kubeconfig = await api.writeKubeconfig(join(dir, 'kubeconfig'));
  populate(api);
  console.error(
    `load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}; API double at ${api.url} holds ${N} Services + ${N} EndpointSlices; ${RUNS} runs each, alternating`,
  );
  const samples: Record<string, Sample[]> = { kdp: [], informer: [] };
  await once('kdp', kubeconfig); // warm-up (page cache, JIT of the double)
  for (let r = 0; r < RUNS; r++) {
    for (const impl of r % 2 ? ['informer', 'kdp'] : ['kdp', 'informer']) {
      const s = await once(impl, kubeconfig);
      if (s.services !== N || s.slices !== N)
        throw new Error(`${impl} delivered ${s.services} services / ${s.slices} slices, want ${N} each`);
      samples[impl]!.push(s);
      console.error(JSON.stringify(s));
    }
  }
  const row = (impl: string) => {
    const xs = samples[impl]!;
    return {
      cpu: median(xs.map((x) => x.cpuMs)),
      ms: median(xs.map((x) => x.ms)),
      rss: median(xs.map((x) => x.rssDeltaMB)),
      heap: median(xs.map((x) => x.heapDeltaMB)),
      msMin: Math.min(...xs.map((x) => x.ms)),
      msMax: Math.max(...xs.map((x) => x.ms)),
    };
  };
  const k = row('kdp');
  const i = row('informer');
  console.log(`| implementation | time to synced, median (min–max) | client CPU | RSS delta | heap delta |`);
  console.log(`|---|---|---|---|---|`);
  console.log(
    `| client-node makeInformer ×2 (reference) | ${i.ms} ms (${i.msMin}–${i.msMax}) | ${i.cpu} ms | ${i.rss} MB | ${i.heap} MB |`,
  );
  console.log(`| kdp KubeSource | ${k.ms} ms (${k.msMin}–${k.msMax}) | ${k.cpu} ms | ${k.rss} MB | ${k.heap} MB |`);
  console.log(
    `| ratio kdp / reference | ${(k.ms / i.ms).toFixed(2)} | ${(k.cpu / i.cpu).toFixed(2)} | ${(k.rss / i.rss).toFixed(2)} | ${(k.heap / i.heap).toFixed(2)} |`,
  );
  console.log(
    `(load average at the end: ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')})`,
  );
} finally {
  await api.close();
  await rm(dir, { recursive: true, force: true });
}
