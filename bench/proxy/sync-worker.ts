// Runs INSIDE a lab node namespace (started by bench/proxy/run.ts): full-sync and one-service-change
// times of the nftables and iptables modes at several cluster sizes, through the real proxier (change
// tracking, model building, rendering, the kernel). Prints one JSON line per result.
import { defaultExec } from '../../src/common/exec-adapter.ts';
import { silentLogger } from '../../src/common/log.ts';
import { FakeSource } from '../../src/k8s/testing/fake-source.ts';
import { NftablesBackend } from '../../src/proxy/nftables/backend.ts';
import { NftSession } from '../../src/netlink/nft-session.ts';
import { IptablesBackend } from '../../src/proxy/iptables/backend.ts';
import type { ProxyBackend } from '../../src/proxy/backend.ts';
import { Proxier } from '../../src/proxy/proxier.ts';
import { ProxyMetrics } from '../../src/proxy/metrics.ts';
import { endpointIPs, service, slice } from './gen.ts';
import { cpuMs, cpuSplitMs, rssMb } from './cpu.ts';

const sizes = (process.argv[2] ?? '1000,5000,10000').split(',').map(Number);
const modes = (process.argv[3] ?? 'nftables,iptables').split(',');
const changes = Number(process.argv[4] ?? 7);
/** the row's kind ('sync'; 'scale' when run.ts starts one worker per size, so the peak RSS is that size's) */
const kind = process.argv[5] ?? 'sync';
const cfg = { clusterCIDRs: ['198.16.0.0/12'] };
const gc = (globalThis as { gc?: () => void }).gc;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

for (const mode of modes) {
  for (const n of sizes) {
    const backend: ProxyBackend =
      mode === 'nftables'
        ? new NftablesBackend({ exec: defaultExec, config: cfg, log: silentLogger, runner: new NftSession() })
        : new IptablesBackend({ exec: defaultExec, config: cfg, log: silentLogger, families: ['IPv4'] });
    await backend.cleanup();
    const src = new FakeSource();
    for (let i = 0; i < n; i++) {
      src.put(service(i));
      src.put(slice(`svc${i}`, endpointIPs(i, 2)));
    }
    // the proxier's own sync-duration metric (kube-proxy's definition: one SyncProxyRules run, without the
    // delivery of the 2n watch events that precede it)
    const metrics = new ProxyMetrics();
    const fullSum = async () =>
      (await metrics.syncFullDuration.get()).values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
    const proxier = new Proxier({
      source: src,
      backend,
      nodeName: 'node-1',
      families: ['IPv4'],
      minSyncIntervalMs: 0,
      log: silentLogger,
      metrics,
    });
    let t0 = performance.now();
    let c0 = cpuMs();
    const s0 = cpuSplitMs();
    await src.start();
    // the 2n watch events are delivered (store, controller queue, change tracker) before the sync runs
    const delivered = cpuSplitMs().self - s0.self;
    await proxier.settled();
    const full = performance.now() - t0;
    const fullCpu = cpuMs() - c0;
    const s1 = cpuSplitMs();
    const fullSync = (await fullSum()) * 1000;
    const rssSynced = rssMb().rss;
    // what stays resident: the store, the proxier's models, the backend's mirror (garbage collected first)
    gc?.();
    const rssAfterGc = gc ? rssMb().rss : undefined;
    const heapAfterGc = gc ? Math.round(process.memoryUsage().heapUsed / 2 ** 20) : undefined;
    const one: number[] = [];
    const oneCpu: number[] = [];
    const oneNft: number[] = [];
    for (let g = 1; g <= changes; g++) {
      const idx = Math.floor((n * g) / (changes + 1));
      t0 = performance.now();
      c0 = cpuMs();
      const n0 = cpuSplitMs().children;
      src.put(slice(`svc${idx}`, endpointIPs(idx, 2, g), g));
      await proxier.settled();
      one.push(performance.now() - t0);
      oneCpu.push(cpuMs() - c0);
      oneNft.push(cpuSplitMs().children - n0);
    }
    // a full resync with everything in place (restart, periodic resync)
    t0 = performance.now();
    c0 = cpuMs();
    proxier.requestFullSync();
    await proxier.settled();
    const fullAgain = performance.now() - t0;
    const fullAgainCpu = cpuMs() - c0;
    const fullSyncAgain = (await fullSum()) * 1000 - fullSync;
    const peak = rssMb().peak;
    await proxier.stop();
    await backend.cleanup();
    await backend.close?.();
    process.stdout.write(
      JSON.stringify({
        kind,
        mode,
        services: n,
        endpoints: 2,
        fullMs: Math.round(full),
        fullSyncMs: Math.round(fullSync),
        fullAgainMs: Math.round(fullAgain),
        fullSyncAgainMs: Math.round(fullSyncAgain),
        oneChangeMsMedian: +median(one).toFixed(1),
        oneChangeMs: one.map((x) => +x.toFixed(1)),
        cpuMs: {
          full: Math.round(fullCpu),
          fullAgain: Math.round(fullAgainCpu),
          oneChangeMedian: Math.round(median(oneCpu)),
          fullProxy: Math.round(s1.self - s0.self),
          fullProxyEvents: Math.round(delivered),
          fullNft: Math.round(s1.children - s0.children),
          // nft's share of a change: its CPU is counted in 10 ms ticks, so the mean of the changes
          oneChangeNftMean: Math.round(oneNft.reduce((a, b) => a + b, 0) / oneNft.length),
        },
        // MB of this process (the proxy; nft children not included): after the first sync, after a GC, and
        // the peak of the whole run (VmHWM: meaningful per size only with one process per size, as in 'scale')
        rssMb: { synced: rssSynced, afterGc: rssAfterGc, heapAfterGc, peak },
      }) + '\n',
    );
  }
}
