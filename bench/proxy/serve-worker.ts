// Runs INSIDE a lab node namespace: a proxy (in-process, real backend) holding N-1 dummy services plus the
// measured ones, then waits for SIGTERM. Used by run.ts for the first-connection latency and throughput runs.
//   serve-worker.ts MODE N TARGET_IPS   (TARGET_IPS: comma-separated pod IPs serving :8080)
import { defaultExec } from '../../src/common/exec-adapter.ts';
import { silentLogger } from '../../src/common/log.ts';
import { FakeSource } from '../../src/k8s/testing/fake-source.ts';
import { makeBackend } from '../../src/proxy/proxy.ts';
import type { ProxyMode } from '../../src/proxy/modes.ts';
import { Proxier } from '../../src/proxy/proxier.ts';
import { endpointIPs, service, slice } from './gen.ts';

const [mode = 'nftables', nS = '10', targets = ''] = process.argv.slice(2);
const n = Number(nS);
const src = new FakeSource();
for (let i = 0; i < n - 1; i++) {
  src.put(service(i));
  src.put(slice(`svc${i}`, endpointIPs(i, 2)));
}
// the measured service sorts last (worst case for iptables' linear KDP-SERVICES chain)
const target = service(0, 'zzz-target', '10.97.0.1');
src.put({
  ...target,
  type: 'NodePort',
  ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }],
});
src.put(slice('zzz-target', targets.split(',').filter(Boolean)));
const cfg = {
  mode: mode as ProxyMode,
  nodeName: 'node-1',
  families: ['IPv4'] as const,
  clusterCIDRs: ['198.19.0.0/16'],
  minSyncIntervalMs: 0,
  syncPeriodMs: 0,
};
const backend = makeBackend({ ...cfg, families: ['IPv4'] }, defaultExec, silentLogger);
await backend.cleanup();
const proxier = new Proxier({
  source: src,
  backend,
  nodeName: 'node-1',
  families: ['IPv4'],
  minSyncIntervalMs: 0,
  log: silentLogger,
});
const t0 = performance.now();
await src.start();
await proxier.settled();
process.stdout.write(`ready ${Math.round(performance.now() - t0)}\n`);
await new Promise<void>((r) => process.once('SIGTERM', () => r()));
await proxier.stop();
await backend.close?.();
await backend.cleanup();
process.exit(0);
