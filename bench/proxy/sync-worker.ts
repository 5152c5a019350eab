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
import { cpuMs } from './cpu.ts';

const sizes = (process.argv[2] ?? '1000,5000,10000').split(',').map(Number);
const modes = (process.argv[3] ?? 'nftables,iptables').split(',');
const changes = Number(process.argv[4] ?? 7);
const cfg = { clusterCIDRs: ['198.19.0.0/16'] };
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
    await src.start();
    await proxier.settled();
    const full = performance.now() - t0;
    const fullCpu = cpuMs() - c0;
    const fullSync = (await fullSum()) * 1000;
    const one: number[] = [];
    const oneCpu: number[] = [];
    for (let g = 1; g <= changes; g++) {
      const idx = Math.floor((n * g) / (changes + 1));
      t0 = performance.now();
      c0 = cpuMs();
      src.put(slice(`svc${idx}`, endpointIPs(idx, 2, g), g));
      await proxier.settled();
      one.push(performance.now() - t0);
      oneCpu.push(cpuMs() - c0);
    }
    // a full resync with everything in place (restart, periodic resync)
    t0 = performance.now();
    c0 = cpuMs();
    proxier.requestFullSync();
    await proxier.settled();
    const fullAgain = performance.now() - t0;
    const fullAgainCpu = cpuMs() - c0;
    const fullSyncAgain = (await fullSum()) * 1000 - fullSync;
    await proxier.stop();
    await backend.cleanup();
    await backend.close?.();
    process.stdout.write(
      JSON.stringify({
        kind: 'sync',
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
        },
      }) + '\n',
    );
  }
}
