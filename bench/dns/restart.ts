// kdp dns restart after kill -9, in the lab: time from spawning `kdp dns` (the command a supervisor would
// run again) to its first right answer for a cluster name, measured RUNS times (dig every 20 ms from the
// node's namespace). Also the bare start of the pinned Node on the same path (`node -e 0` through
// `ip netns exec`), so the share of kdp's own start is visible. Needs root (the lab).
// Usage: npm run bench:dns-restart [-- --runs 7]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Lab } from '../../src/lab/lab.ts';
import type { NodePlan } from '../../src/lab/plan.ts';
import { run } from '../../src/common/exec-adapter.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' } } });
const RUNS = Number(values.runs);
const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'kdp-bench-dns-restart-'));
const manifests = join(dir, 'manifests');
mkdirSync(manifests);
writeFileSync(join(manifests, 'web.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: ns}\nspec:\n  clusterIP: 10.96.0.10\n  clusterIPs: [10.96.0.10]\n  ports: [{name: http, port: 80}]\n');
writeFileSync(join(dir, 'Corefile'), '.:53 {\n    errors\n    health 127.0.0.1:8080\n    ready 127.0.0.1:8181\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }\n    prometheus 127.0.0.1:9153\n    cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n    }\n    loadbalance\n}\n');

const lab = await Lab.create({ nodes: 1 });
try {
  const n1 = lab.nodes[0] as NodePlan;
  const argv = [process.execPath, CLI, '--log-format', 'json', 'dns', '--corefile', join(dir, 'Corefile'), '--manifests', manifests, '--lameduck', '0'];
  const startAndTime = async (): Promise<{ ms: number; child: Spawned }> => {
    const t0 = performance.now();
    const child = lab.spawn(n1.ns, argv);
    for (;;) {
      const r = await lab.exec(n1.ns, ['dig', `@${n1.ip4}`, '+short', '+tries=1', '+timeout=1', 'web.ns.svc.cluster.local'], { allowFailure: true });
      if (r.stdout.trim() === '10.96.0.10') return { ms: performance.now() - t0, child };
      if (performance.now() - t0 > 60_000) throw new Error(`no answer in 60 s: ${child.output().slice(-2000)}`);
      await new Promise((res) => setTimeout(res, 20));
    }
  };
  const load0 = (await run(['cat', '/proc/loadavg'])).stdout.trim();
  const bare: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await lab.exec(n1.ns, [process.execPath, '-e', '0']);
    bare.push(performance.now() - t0);
  }
  let cur = await startAndTime();
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    cur.child.kill('SIGKILL');
    await cur.child.exited;
    cur = await startAndTime();
    ms.push(cur.ms);
    process.stderr.write(`run ${i + 1}: first answer ${Math.round(cur.ms)} ms after the restart\n`);
  }
  cur.child.kill('SIGTERM');
  await cur.child.exited;
  const load1 = (await run(['cat', '/proc/loadavg'])).stdout.trim();
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] as number;
  process.stdout.write(`kill -9 then restart of kdp dns (lab node, manifests source), ${RUNS} runs\n\n| measure | median | min | max |\n|---|---|---|---|\n`);
  process.stdout.write(`| restart -> first cluster answer | ${Math.round(med(ms))} ms | ${Math.round(Math.min(...ms))} ms | ${Math.round(Math.max(...ms))} ms |\n`);
  process.stdout.write(`| bare \`node -e 0\` via ip netns exec | ${Math.round(med(bare))} ms | ${Math.round(Math.min(...bare))} ms | ${Math.round(Math.max(...bare))} ms |\n`);
  process.stdout.write(`\nloadavg before: ${load0}; after: ${load1}\n`);
} finally {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
}
