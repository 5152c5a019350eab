// One measured initial sync in a fresh process (so memory deltas are the sync's own):
//   node --expose-gc bench/cluster-state/child.ts <kdp|informer> <kubeconfig>
// kdp      : our KubeSource (paginated raw lists -> model conversion -> store -> a listener)
// informer : the client library's own informers (makeInformer = ListWatch + ObjectCache) over its typed list calls
// Prints one JSON line: { impl, ms (wall), cpuMs (this process's user+sys during the sync), rssDeltaMB, heapDeltaMB, services, slices }.
import { CoreV1Api, DiscoveryV1Api, makeInformer } from '@kubernetes/client-node';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { KubeSource, loadKubeConfig } from '../../src/k8s/kube-source.ts';
import { silentLogger } from '../../src/common/log.ts';

const [impl, kubeconfig] = process.argv.slice(2);
if ((impl !== 'kdp' && impl !== 'informer') || !kubeconfig) {
  console.error('usage: child.ts <kdp|informer> <kubeconfig>');
  process.exit(2);
}
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const kc = loadKubeConfig({ kubeconfig });

function settle(): NodeJS.MemoryUsage {
  gc!();
  gc!();
  return process.memoryUsage();
}

const before = settle();
const t0 = performance.now();
const c0 = process.cpuUsage();
let services = 0;
let slices = 0;
let stop: () => Promise<void>;
if (impl === 'kdp') {
  const src = new KubeSource({ kubeConfig: kc, log: silentLogger });
  src.watch({
    kinds: ['Service', 'EndpointSlice'],
    changed: (kind, _key, previous) => {
      if (previous !== undefined) return;
      if (kind === 'Service') services++;
      else slices++;
    },
    synced: () => {},
  });
  await src.start();
  stop = () => src.stop();
} else {
  const core = kc.makeApiClient(CoreV1Api);
  const disc = kc.makeApiClient(DiscoveryV1Api);
  const si = makeInformer<V1Service>(kc, '/api/v1/services', () => core.listServiceForAllNamespaces());
  const ei = makeInformer<V1EndpointSlice>(kc, '/apis/discovery.k8s.io/v1/endpointslices', () =>
    disc.listEndpointSliceForAllNamespaces(),
  );
  si.on('add', () => void services++);
  ei.on('add', () => void slices++);
  await Promise.all([si.start(), ei.start()]);
  stop = async () => {
    await si.stop();
    await ei.stop();
  };
}
const ms = performance.now() - t0;
const cpu = process.cpuUsage(c0);
const after = settle();
const MB = 1024 * 1024;
console.log(
  JSON.stringify({
    impl,
    ms: Math.round(ms),
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    rssDeltaMB: +((after.rss - before.rss) / MB).toFixed(1),
    heapDeltaMB: +((after.heapUsed - before.heapUsed) / MB).toFixed(1),
    services,
    slices,
  }),
);
await stop();
process.exit(0);
