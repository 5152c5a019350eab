// The bench's probes, run inside lab pods (node:net only):
//   node bench/overlay/rr.ts server PORT                         echo every byte back (request/response peer)
//   node bench/overlay/rr.ts client HOST PORT SECONDS [SIZE]     one connection, one SIZE-byte request at a time
//                                                                (netperf TCP_RR style); prints JSON latencies (us):
//                                                                n, p50, p99, mean and hist (sparse [us, count]
//                                                                pairs, 1-us buckets) so rounds can be pooled
//   node bench/overlay/rr.ts sink PORT                           read and drop (bulk receiver)
//   node bench/overlay/rr.ts blast HOST PORT SECONDS             one connection writing 64 KiB chunks as fast as
//                                                                the socket takes them; prints JSON {bitsPerSecond}
// The bulk pair is the throughput fallback when iperf3 is not installed. Servers print "ready" once listening.
import { createServer, connect } from 'node:net';
import type { Socket } from 'node:net';

const [mode, a = '', b = '', c = '', d = ''] = process.argv.slice(2);

function listen(port: number, onConn: (s: Socket) => void): void {
  const srv = createServer((s) => {
    s.setNoDelay(true);
    s.on('error', () => {});
    onConn(s);
  });
  srv.listen({ port, host: '::' }, () => process.stdout.write('ready\n'));
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
}

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

if (mode === 'server') {
  listen(Number(a), (s) => s.on('data', (buf) => s.write(buf)));
} else if (mode === 'sink') {
  listen(Number(a), (s) => s.on('data', () => {}));
} else if (mode === 'client') {
  const seconds = Number(c);
  const size = Number(d || '1');
  const req = Buffer.alloc(size, 0x61);
  const samples: number[] = [];
  const s = connect({ host: a, port: Number(b) });
  s.setNoDelay(true);
  let t0 = 0n;
  let got = 0;
  let warm = true;
  const start = Date.now();
  const send = () => {
    got = 0;
    t0 = process.hrtime.bigint();
    s.write(req);
  };
  s.on('connect', send);
  s.on('data', (buf) => {
    got += buf.length;
    if (got < size) return;
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    const el = Date.now() - start;
    // the first half second warms up the path (neighbour entries, JIT): not counted
    if (warm && el >= 500) warm = false;
    if (!warm) samples.push(us);
    if (el < seconds * 1000 + 500) send();
    else {
      s.end();
      const sorted = Float64Array.from(samples).sort();
      const hist = new Map<number, number>();
      for (const us of samples) hist.set(Math.round(us), (hist.get(Math.round(us)) ?? 0) + 1);
      process.stdout.write(
        JSON.stringify({
          n: sorted.length,
          p50: quantile(sorted, 0.5),
          p99: quantile(sorted, 0.99),
          mean: samples.reduce((x, y) => x + y, 0) / samples.length,
          hist: [...hist].sort((x, y) => x[0] - y[0]),
        }) + '\n',
      );
    }
  });
  s.on('error', (err) => {
    process.stderr.write(`rr client: ${err.message}\n`);
    process.exit(1);
  });
} else if (mode === 'blast') {
  const seconds = Number(c);
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  const s = connect({ host: a, port: Number(b) });
  let bytes = 0;
  let t0 = 0;
  s.on('connect', () => {
    t0 = performance.now();
    const pump = () => {
      while (performance.now() - t0 < seconds * 1000) {
        bytes += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end(() => {
        const secs = (performance.now() - t0) / 1000;
        process.stdout.write(JSON.stringify({ bitsPerSecond: (bytes * 8) / secs }) + '\n');
        s.destroy();
      });
    };
    pump();
  });
  s.on('error', (err) => {
    process.stderr.write(`blast: ${err.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write(
    'usage: rr.ts server PORT | client HOST PORT SECONDS [SIZE] | sink PORT | blast HOST PORT SECONDS\n',
  );
  process.exit(2);
}
