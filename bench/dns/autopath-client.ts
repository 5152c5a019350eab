// The client side of bench/dns/autopath.ts, run inside a pod: `count` lookups of `name` through glibc's
// getaddrinfo (node's dns.lookup, IPv4), which walks the pod's resolv.conf search path as any program does.
// Prints JSON: the address, latency per lookup (median, p90, in microseconds), the client's CPU time.
import { lookup } from 'node:dns/promises';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { name: { type: 'string' }, count: { type: 'string', default: '200' } } });
const name = values.name ?? 'web.other';
const count = Number(values.count);
const times: number[] = [];
let address = '';
const cpu0 = process.cpuUsage();
for (let i = 0; i < count; i++) {
  const t0 = performance.now();
  address = (await lookup(name, { family: 4 })).address;
  times.push((performance.now() - t0) * 1000);
}
const cpu = process.cpuUsage(cpu0);
times.sort((a, b) => a - b);
const at = (q: number) => Math.round(times[Math.min(times.length - 1, Math.floor(q * times.length))]!);
process.stdout.write(
  JSON.stringify({ address, medianUs: at(0.5), p90Us: at(0.9), cpuUsPerLookup: (cpu.user + cpu.system) / count }) +
    '\n',
);
