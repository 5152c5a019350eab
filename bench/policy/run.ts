// kdp policy agent benchmarks (npm run bench:policy), inside a lab (network namespaces; nothing in the root
// namespace):
//   1) full sync of N NetworkPolicies x 100 pods (compile, render, nft -f through the agent on the controller
//      kernel) and one policy change (the same path), in a lab node (bench/policy/sync-worker.ts);
//   2) first-connection latency, client pod -> server pod on the same node (routed through the node's forward
//      hook), with the policy table of 0 and of N policies programmed (the server selected by a fifth of
//      them), alternating rounds; each connection is new (connect, one line echoed back, close).
// Prints JSON lines. `--only sync|latency`, `--sizes 1000`, `--changes 7`, `--conns 1500`, `--rounds 3`.
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import { addPod, startEcho } from '../../test/helpers/pods.ts';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    sizes: { type: 'string', default: '1000' },
    changes: { type: 'string', default: '7' },
    conns: { type: 'string', default: '1500' },
    rounds: { type: 'string', default: '3' },
  },
});
const want = (k: string) => !values.only || values.only.split(',').includes(k);
const emit = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const lab = await Lab.create({ nodes: 1 });
try {
  const node = lab.nodes[0]!;
  if (want('sync')) {
    const r = await lab.exec(node.ns, [process.execPath, here('./sync-worker.ts'), values.sizes!, values.changes!], {
      timeoutMs: 1_800_000,
    });
    process.stdout.write(r.stdout);
  }
  if (want('latency')) {
    // the generator's pod 0 (ns-0/client, .10) and pod 10 (ns-0/server, .20)
    const client = await addPod(lab, node, 'client', 10);
    const server = await addPod(lab, node, 'server', 20);
    await startEcho(lab, server, { tcp: [8080] });
    const loop = `const net=require('net');const [h,p,n]=process.argv.slice(1);const xs=[];
(async()=>{for(let i=0;i<Number(n);i++){const t=process.hrtime.bigint();await new Promise((res,rej)=>{const s=net.connect({host:h,port:Number(p)},()=>s.write('x\\n'));s.once('data',()=>{xs.push(Number(process.hrtime.bigint()-t)/1e6);s.destroy();res()});s.on('error',rej);s.setTimeout(3000,()=>rej(new Error('timeout')))})}
xs.sort((a,b)=>a-b);console.log(JSON.stringify({median:xs[Math.floor(xs.length/2)],p90:xs[Math.floor(xs.length*0.9)],p99:xs[Math.floor(xs.length*0.99)]}))})().catch(e=>{console.error(String(e));process.exit(1)})`;
    const measure = async () =>
      JSON.parse(
        (
          await lab.exec(client.ns, [process.execPath, '-e', loop, server.ip4, '8080', values.conns!], {
            timeoutMs: 600_000,
          })
        ).stdout,
      ) as { median: number; p90: number; p99: number };
    const program = async (n: number) => {
      const r = await lab.exec(node.ns, [process.execPath, here('./sync-worker.ts'), String(n), '0', 'keep'], {
        timeoutMs: 600_000,
      });
      return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { fullMs: number; rules: number };
    };
    const n = Number(values.sizes!.split(',').at(-1));
    const res: Record<string, { median: number[]; p99: number[] }> = {
      '0': { median: [], p99: [] },
      [n]: { median: [], p99: [] },
    };
    await measure(); // warm-up (neighbour entries, JIT)
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const size of [0, n]) {
        const p = await program(size);
        const m = await measure();
        res[size]!.median.push(m.median);
        res[size]!.p99.push(m.p99);
        emit({ kind: 'latency', round, policies: size, rules: p.rules, ...m });
      }
    }
    const m0 = median(res['0']!.median);
    const mN = median(res[n]!.median);
    emit({
      kind: 'latency-ratio',
      policies: n,
      medianMs0: +m0.toFixed(3),
      medianMsN: +mN.toFixed(3),
      ratio: +(mN / m0).toFixed(3),
      p99Ratio: +(median(res[n]!.p99) / median(res['0']!.p99)).toFixed(3),
    });
  }
} finally {
  await lab.destroy();
}
