// Where a CPU profile's time goes: self time by function (and by category) from `.cpuprofile` files written by
// `node --cpu-prof` (e.g. `npm run bench:ingress -- --only kdp --profile DIR`).
//   node bench/profile-top.ts FILE.cpuprofile... [--top 30]
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  options: { top: { type: 'string', default: '30' } },
  allowPositionals: true,
  strict: true,
});
if (positionals.length === 0) {
  process.stderr.write('usage: node bench/profile-top.ts FILE.cpuprofile... [--top N]\n');
  process.exit(2);
}

const self = new Map<string, number>();
let total = 0;
for (const file of positionals) {
  const p = JSON.parse(await readFile(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!)!;
    const dt = p.timeDeltas[i] ?? 0;
    const f = n.callFrame;
    const where = f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  }
}
// the idle time is not CPU time: shares are of the busy samples
const idle = self.get('(idle)') ?? 0;
const busy = total - idle;
const rows = [...self].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]);
process.stdout.write(`busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s sampled\n`);
for (const [k, us] of rows.slice(0, Number(values.top)))
  process.stdout.write(`${((us / busy) * 100).toFixed(1).padStart(5)}%  ${k}\n`);
