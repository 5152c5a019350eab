// kdp proxy benchmarks (npm run bench:proxy), all inside a lab (network namespaces; nothing in the root
// namespace): 1) full sync and one-service change at 1k/5k/10k services x 2 endpoints (nftables,
// iptables); 2) first-connection latency to a ClusterIP with 10 vs 10,000 services per mode; 3) userspace
// load balancer throughput vs HAProxy (mode tcp) in front of the same nginx pods, driven by wrk.
// Prints JSON lines; `--only sync|latency|throughput`, `--sizes 1000,5000,10000` (nftables sync),
// `--iptables-sizes 1000` ('' skips; iptables-restore on this machine's nf_tables backend takes ~7 s for a
// 1k-service table and grows faster than linearly, so 5k/10k do not fit a 5-minute run), `--changes 7`,
// `--latency-sizes 10,10000` (nftables), `--iptables-latency-sizes 10,2000`, `--userspace-latency-sizes 10,1000`.
// `--only scale` (not in the default run): the nftables scale curve (issue #18), one proxy process per size
// so each row has its own RSS peak: `--only scale --sizes 1000,10000,50000`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import { addPod } from '../../test/helpers/pods.ts';
import type { TestPod } from '../../test/helpers/pods.ts';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    sizes: { type: 'string', default: '1000,5000,10000' },
    'iptables-sizes': { type: 'string', default: '1000' },
    changes: { type: 'string', default: '7' },
    'iptables-latency-sizes': { type: 'string', default: '10,2000' },
    'latency-sizes': { type: 'string', default: '10,10000' },
    'userspace-latency-sizes': { type: 'string', default: '10,1000' },
  },
});
const want = (k: string) => (!values.only && k !== 'scale') || (values.only ?? '').split(',').includes(k);
const emit = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');

const lab = await Lab.create({ nodes: 1 });
const tmp = mkdtempSync(join(tmpdir(), 'kdp-bench-proxy-'));
try {
  const node = lab.nodes[0]!;
  if (want('sync')) {
    for (const [mode, sizes, changes] of [
      ['nftables', values.sizes!, values.changes!],
      ['iptables', values['iptables-sizes']!, '3'],
    ] as const) {
      if (sizes === '') continue;
      const r = await lab.exec(node.ns, [process.execPath, here('./sync-worker.ts'), sizes, mode, changes], {
        timeoutMs: 1_800_000,
      });
      process.stdout.write(r.stdout);
    }
  }
  if (want('scale')) {
    for (const n of values.sizes!.split(',')) {
      const r = await lab.exec(
        node.ns,
        [process.execPath, '--expose-gc', here('./sync-worker.ts'), n, 'nftables', values.changes!, 'scale'],
        { timeoutMs: 1_800_000 },
      );
      process.stdout.write(r.stdout);
    }
  }
  const pods: TestPod[] = [];
  if (want('latency') || want('throughput')) {
    pods.push(
      await addPod(lab, node, 'client', 10),
      await addPod(lab, node, 'web1', 11),
      await addPod(lab, node, 'web2', 12),
    );
    await lab.exec(node.ns, ['ip', 'route', 'add', '10.96.0.0/15', 'via', lab.plan.underlayHost4]);
    for (const p of pods.slice(1)) {
      const dir = join(tmp, p.name);
      writeFileSync(join(tmp, `${p.name}.conf`), nginxConf(dir));
      rmSync(dir, { recursive: true, force: true });
      await lab.exec(p.ns, ['mkdir', '-p', dir]);
      lab.spawn(p.ns, ['nginx', '-c', join(tmp, `${p.name}.conf`)]);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  const startProxy = async (mode: string, n: number) => {
    const child = lab.spawn(node.ns, [
      process.execPath,
      here('./serve-worker.ts'),
      mode,
      String(n),
      pods
        .slice(1)
        .map((p) => p.ip4)
        .join(','),
    ]);
    const end = Date.now() + 600_000;
    while (!/^ready/m.test(child.output())) {
      if (Date.now() > end || child.output().includes('Error')) throw new Error(`proxy worker: ${child.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { child, syncMs: Number(/^ready (\d+)/m.exec(child.output())?.[1]) };
  };
  if (want('latency')) {
    const client = pods[0]!;
    // time from connect() to the first byte of the answer: includes the proxy's own connect in userspace mode
    const code = `const net=require('node:net');const [h,p,n]=process.argv.slice(1);const xs=[];
(async()=>{for(let i=0;i<Number(n);i++){const t=process.hrtime.bigint();await new Promise((res,rej)=>{const s=net.connect({host:h,port:Number(p)},()=>s.write('GET / HTTP/1.0\\r\\n\\r\\n'));s.once('data',()=>{xs.push(Number(process.hrtime.bigint()-t)/1e6);s.destroy();res()});s.on('error',rej)})}
xs.sort((a,b)=>a-b);console.log(JSON.stringify({p50:xs[xs.length>>1],p90:xs[Math.floor(xs.length*0.9)],mean:xs.reduce((a,b)=>a+b,0)/xs.length}))})();`;
    for (const mode of ['nftables', 'iptables', 'userspace']) {
      const sizes = (
        mode === 'userspace'
          ? values['userspace-latency-sizes']!
          : mode === 'iptables'
            ? values['iptables-latency-sizes']!
            : values['latency-sizes']!
      )
        .split(',')
        .map(Number);
      const res: Record<number, { p50: number; p90: number; mean: number }> = {};
      for (const n of sizes) {
        const { child, syncMs } = await startProxy(mode, n);
        await lab.exec(client.ns, [process.execPath, '-e', code, '10.97.0.1', '80', '200']); // warm-up
        const r = await lab.exec(client.ns, [process.execPath, '-e', code, '10.97.0.1', '80', '1000']);
        res[n] = JSON.parse(r.stdout) as { p50: number; p90: number; mean: number };
        emit({ kind: 'latency', mode, services: n, syncMs, ...res[n] });
        child.kill('SIGTERM');
        await child.exited;
      }
      const [lo, hi] = [sizes[0]!, sizes.at(-1)!];
      emit({
        kind: 'latency-ratio',
        mode,
        from: lo,
        to: hi,
        p50Ratio: +(res[hi]!.p50 / res[lo]!.p50).toFixed(3),
        meanRatio: +(res[hi]!.mean / res[lo]!.mean).toFixed(3),
      });
    }
  }
  if (want('throughput')) {
    const { child } = await startProxy('userspace', 1);
    const hcfg = join(tmp, 'haproxy.cfg');
    writeFileSync(
      hcfg,
      `global\n  maxconn 4096\n  nbthread 1\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\nfrontend f\n  bind ${node.ip4}:31080\n  default_backend b\nbackend b\n  balance roundrobin\n${pods
        .slice(1)
        .map((p, i) => `  server s${i} ${p.ip4}:8080\n`)
        .join('')}`,
    );
    const hap = lab.spawn(node.ns, ['haproxy', '-f', hcfg, '-db']);
    for (let i = 0; i < 100; i++) {
      const r = await lab.exec(
        lab.underlay,
        ['curl', '-s', '-o', '/dev/null', '--max-time', '1', `http://${node.ip4}:31080/`],
        { allowFailure: true },
      );
      if (r.code === 0) break;
      if (i === 99) throw new Error(`haproxy did not start: ${hap.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const wrk = async (port: number) => {
      const r = await lab.exec(lab.underlay, ['wrk', '-t2', '-c32', '-d5s', `http://${node.ip4}:${port}/`], {
        timeoutMs: 60_000,
      });
      return Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? 0);
    };
    await wrk(31080);
    const kdp = await wrk(30080);
    const haproxy = await wrk(31080);
    const kdp2 = await wrk(30080);
    emit({
      kind: 'throughput',
      tool: 'wrk -t2 -c32 -d5s',
      kdpUserspaceRps: Math.max(kdp, kdp2),
      haproxyTcpRps: haproxy,
      ratio: +(Math.max(kdp, kdp2) / haproxy).toFixed(3),
    });
    hap.kill('SIGTERM');
    child.kill('SIGTERM');
    await child.exited;
  }
} finally {
  await lab.destroy();
  rmSync(tmp, { recursive: true, force: true });
}

function nginxConf(dir: string): string {
  return `daemon off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents { worker_connections 1024; }\nhttp {\n  access_log off;\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;\n  fastcgi_temp_path ${dir}/fcgi;\n  uwsgi_temp_path ${dir}/uwsgi;\n  scgi_temp_path ${dir}/scgi;\n  server {\n    listen 8080;\n    location / { return 200 "ok\\n"; }\n  }\n}\n`;
}
