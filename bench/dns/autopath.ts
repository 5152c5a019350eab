// autopath benchmark (issue #18): what a pod's lookup of a short name costs with and without
// `autopath @kubernetes`. In a lab (root): kdp dns in the node's namespace (pods verified), a pod with the
// kubelet's resolv.conf (search ns.svc.cluster.local svc.cluster.local cluster.local, ndots:5) runs
// bench/dns/autopath-client.ts: glibc lookups in a loop. Per name and setting: queries the server received
// per lookup (its coredns_dns_requests_total), lookup latency (median, p90), the client's and the server's
// CPU time per lookup; medians of --runs runs.
// Names: web.other (2 search steps without autopath), web.other.svc.cluster.local (4 steps) and
// outside.example (4 steps, the last answered by the upstream dnsmasq through forward).
// --host-search a,b: search domains of the server's own resolv.conf (autopath walks them too, through forward).
// Usage: npm run bench:dns-autopath [-- --count 500 --runs 3 --host-search corp.example]
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isRoot } from '../../src/lab/lab.ts';
import { autopathLab } from '../../test/helpers/dns-autopath.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '500' },
    runs: { type: 'string', default: '3' },
    'host-search': { type: 'string', default: '' },
  },
});
const COUNT = Number(values.count);
const RUNS = Number(values.runs);
const CLIENT = fileURLToPath(new URL('./autopath-client.ts', import.meta.url));
const NAMES = ['web.other', 'web.other.svc.cluster.local', 'outside.example'];

/** user + system CPU of a process, in microseconds (clock ticks of 10 ms) */
function cpuUs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

if (!isRoot()) {
  process.stderr.write('bench:dns-autopath needs root (a lab of network namespaces)\n');
  process.exit(1);
}
const load0 = loadavg()
  .map((x) => x.toFixed(2))
  .join(' ');
const hostSearch = values['host-search'].split(',').filter(Boolean);
const l = await autopathLab({ hostSearch });
const rows: string[] = [];
try {
  for (const autopath of [false, true]) {
    const dns = await l.start(autopath);
    for (const name of NAMES) {
      const runs: { q: number; med: number; p90: number; ccpu: number; scpu: number }[] = [];
      // one warm-up run (JIT, caches), then the measured ones
      for (let r = 0; r <= RUNS; r++) {
        const c0 = await l.counters();
        const s0 = cpuUs(dns.pid);
        const res = await l.lab.exec(l.client.ns, [process.execPath, CLIENT, '--name', name, '--count', String(COUNT)]);
        const s1 = cpuUs(dns.pid);
        const c1 = await l.counters();
        const out = JSON.parse(res.stdout) as {
          address: string;
          medianUs: number;
          p90Us: number;
          cpuUsPerLookup: number;
        };
        if (out.address !== (name === 'outside.example' ? '203.0.113.7' : '10.96.0.10'))
          throw new Error(`${name}: wrong address ${out.address}`);
        if (r > 0)
          runs.push({
            q: (c1.requests - c0.requests) / COUNT,
            med: out.medianUs,
            p90: out.p90Us,
            ccpu: out.cpuUsPerLookup,
            scpu: (s1 - s0) / COUNT,
          });
      }
      const m = (k: keyof (typeof runs)[number]) => median(runs.map((x) => x[k]));
      rows.push(
        `| ${name} | ${autopath ? 'autopath @kubernetes' : 'no autopath'} | ${m('q').toFixed(2)} | ${m('med')} | ${m('p90')} | ${m('ccpu').toFixed(0)} | ${m('scpu').toFixed(0)} |`,
      );
    }
    await l.stop(dns);
  }
} finally {
  await l.destroy();
}
const load1 = loadavg()
  .map((x) => x.toFixed(2))
  .join(' ');
process.stdout.write(
  `autopath: ${COUNT} glibc lookups per run, ${RUNS} runs (median); server search domains: ${hostSearch.join(',') || 'none'}; loadavg before ${load0}, after ${load1}\n\n` +
    '| name | server | queries per lookup | latency median us | latency p90 us | client CPU us/lookup | server CPU us/lookup |\n' +
    '|---|---|---|---|---|---|---|\n' +
    rows.join('\n') +
    '\n',
);
