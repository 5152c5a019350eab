// Proxier with a fake backend and the in-memory source: nothing before the initial sync, coalesced syncs,
// failures retried as full syncs, health-check state; plus the UDP conntrack and userspace balancer logic.
import t from 'tap';
import { FakeSource } from '../../../src/k8s/testing/fake-source.ts';
import { attemptTimes, harness } from '../../../src/k8s/testing/harness.ts';
import { silentLogger } from '../../../src/common/log.ts';
import { Proxier } from '../../../src/proxy/proxier.ts';
import type { ProxyBackend } from '../../../src/proxy/backend.ts';
import type { ServicePortInfo } from '../../../src/proxy/model.ts';
import type { IPFamily, Node } from '../../../src/model/types.ts';
import { conntrackArgv, staleUdpEntries } from '../../../src/proxy/conntrack.ts';
import type { ConntrackDeletion } from '../../../src/proxy/conntrack.ts';
import { Balancer } from '../../../src/proxy/userspace/balancer.ts';
import { isHealthy } from '../../../src/proxy/healthz.ts';
import { renderRedirects } from '../../../src/proxy/userspace/backend.ts';
import { makeService, makeSlice } from './fixtures.ts';

class FakeBackend implements ProxyBackend {
  readonly mode = 'fake';
  calls: { full: boolean; changed: string[]; ports: ServicePortInfo[] }[] = [];
  failNext = 0;
  async sync(models: ReadonlyMap<IPFamily, readonly ServicePortInfo[]>, full: boolean, changed: ReadonlySet<string>) {
    if (this.failNext-- > 0) throw new Error('kernel says no');
    this.calls.push({ full, changed: [...changed].sort(), ports: [...(models.get('IPv4') ?? [])] });
    return { lines: 1 };
  }
  async cleanup() {}
}

function setup<B extends ProxyBackend = FakeBackend>(backend: B = new FakeBackend() as ProxyBackend as B) {
  const src = new FakeSource();
  const deletions: ConntrackDeletion[] = [];
  const proxier = new Proxier({
    source: src,
    backend,
    nodeName: 'node1',
    families: ['IPv4'],
    minSyncIntervalMs: 0,
    log: silentLogger,
    conntrack: { delete: async (d) => void deletions.push(...d) },
  });
  return { src, backend, proxier, deletions };
}

t.test('nothing is programmed before both kinds have synced; then one full sync', async (t) => {
  const { src, backend, proxier } = setup();
  src.put(makeService('a', 's1'));
  src.put(makeSlice('a', 's1', [{ ip: '198.19.1.1' }]));
  src.put(makeService('a', 'early'));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(backend.calls.length, 0, 'no sync before the source synced');
  t.equal(proxier.initialized, false);
  await src.start();
  await proxier.settled();
  t.equal(backend.calls.length, 1);
  t.equal(backend.calls[0]!.full, true, 'the first sync is full');
  t.same(backend.calls[0]!.ports.map((p) => p.id).sort(), ['a/early:p80', 'a/s1:p80']);
  await proxier.stop();
});

t.test('changes coalesce; unchanged updates cause no sync; a failure is retried as a full sync', async (t) => {
  const { src, backend, proxier } = setup();
  await src.start();
  await proxier.settled();
  const n = backend.calls.length;
  src.put(makeService('a', 'x'));
  src.put(makeService('a', 'y'));
  src.put(makeSlice('a', 'x', [{ ip: '198.19.1.2' }]));
  await proxier.settled();
  t.ok(backend.calls.length - n <= 2, 'coalesced');
  t.same(backend.calls.at(-1)!.changed.length > 0, true);
  const before = backend.calls.length;
  src.put({ ...makeService('a', 'x'), meta: { ...makeService('a', 'x').meta, resourceVersion: '99' } });
  await proxier.settled();
  t.equal(backend.calls.length, before, 'a resourceVersion bump alone needs no sync');
  backend.failNext = 1;
  proxier.requestFullSync();
  src.put(makeService('a', 'z'));
  // the retry comes after the runner's backoff (1 s)
  await proxier.settled();
  const last = backend.calls.at(-1)!;
  t.equal(last.full, true, 'retry after failure is full');
  t.ok(last.changed.includes('a/z'), 'changes of the failed sync are not lost');
  t.equal(proxier.status().failures, 0);
  await proxier.stop();
});

t.test('a full resync keeps the ports of services whose objects did not change, rebuilds the others', async (t) => {
  const { src, backend, proxier } = setup();
  for (const name of ['s1', 's2', 's3']) {
    src.put(makeService('a', name));
    src.put(makeSlice('a', name, [{ ip: `198.19.1.${name.slice(1)}` }]));
  }
  await src.start();
  await proxier.settled();
  const byName = (i: number) => new Map(backend.calls[i]!.ports.map((p) => [p.name, p]));
  const first = byName(0);
  // one service's endpoints change, another goes away, and a full sync is asked for at once: one full sync
  src.put(makeSlice('a', 's2', [{ ip: '198.19.2.2' }]));
  src.remove('Service', 'a/s3');
  proxier.requestFullSync();
  await proxier.settled();
  const last = backend.calls.at(-1)!;
  t.equal(last.full, true);
  const now = byName(backend.calls.length - 1);
  t.equal(now.get('s1'), first.get('s1'), 'unchanged: the same object');
  t.not(now.get('s2'), first.get('s2'), 'changed: rebuilt');
  t.same(
    now.get('s2')!.clusterEndpoints.map((e) => e.ip),
    ['198.19.2.2'],
  );
  t.notOk(now.has('s3'), 'deleted: gone');
  // a full sync with nothing changed rebuilds nothing
  proxier.requestFullSync();
  await proxier.settled();
  const again = byName(backend.calls.length - 1);
  t.equal(again.get('s1'), first.get('s1'));
  t.equal(again.get('s2'), now.get('s2'));
  await proxier.stop();
});

t.test('health-check state follows local endpoints', async (t) => {
  const { src, proxier } = setup();
  src.put(
    makeService(
      'a',
      'lb',
      (s) => ((s.type = 'LoadBalancer'), (s.externalTrafficPolicy = 'Local'), (s.healthCheckNodePort = 32000)),
    ),
  );
  src.put(makeSlice('a', 'lb', [{ ip: '198.19.2.1', node: 'node2' }]));
  await src.start();
  await proxier.settled();
  t.same(proxier.healthChecks(), [{ service: 'a/lb', healthCheckNodePort: 32000, localEndpoints: 0 }]);
  src.put(
    makeSlice('a', 'lb', [
      { ip: '198.19.2.1', node: 'node2' },
      { ip: '198.19.1.1', node: 'node1' },
    ]),
  );
  await proxier.settled();
  t.same(proxier.healthChecks(), [{ service: 'a/lb', healthCheckNodePort: 32000, localEndpoints: 1 }]);
  await proxier.stop();
});

t.test('health-check state counts ready local endpoints only (kube-proxy: only terminating ones -> 503)', async (t) => {
  const { src, proxier } = setup();
  src.put(
    makeService(
      'a',
      'lb',
      (s) => ((s.type = 'LoadBalancer'), (s.externalTrafficPolicy = 'Local'), (s.healthCheckNodePort = 32000)),
    ),
  );
  // the node's only local endpoint is terminating (still serving): traffic may use it, health must not
  src.put(
    makeSlice('a', 'lb', [
      { ip: '198.19.1.1', node: 'node1', ready: false, serving: true, terminating: true },
      { ip: '198.19.2.1', node: 'node2' },
    ]),
  );
  await src.start();
  await proxier.settled();
  t.same(proxier.healthChecks(), [{ service: 'a/lb', healthCheckNodePort: 32000, localEndpoints: 0 }]);
  await proxier.stop();
});

t.test('health-check state of a multi-port Service: distinct local ready endpoints over all ports', async (t) => {
  const { src, proxier } = setup();
  src.put(
    makeService('a', 'lb', (s) => {
      s.type = 'LoadBalancer';
      s.externalTrafficPolicy = 'Local';
      s.healthCheckNodePort = 32000;
      s.ports = [
        { name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 },
        { name: 'https', protocol: 'TCP', port: 443, targetPort: 8443, nodePort: 30443 },
      ];
    }),
  );
  // port http: two local pods; port https: only the first of them (a second slice) -> 2 distinct, not 1 (last port)
  src.put(
    makeSlice(
      'a',
      'lb',
      [
        { ip: '198.19.1.1', node: 'node1' },
        { ip: '198.19.1.2', node: 'node1' },
      ],
      [{ name: 'http', port: 8080 }],
      'lb-http',
    ),
  );
  src.put(makeSlice('a', 'lb', [{ ip: '198.19.1.1', node: 'node1' }], [{ name: 'https', port: 8443 }], 'lb-https'));
  await src.start();
  await proxier.settled();
  t.same(proxier.healthChecks(), [{ service: 'a/lb', healthCheckNodePort: 32000, localEndpoints: 2 }]);
  await proxier.stop();
});

t.test('UDP conntrack: removed endpoints and services that regain endpoints', async (t) => {
  const { src, proxier, deletions } = setup();
  const udp = makeService(
    'a',
    'dns',
    (s) => (
      (s.ports = [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 53, nodePort: 30053 }]),
      (s.type = 'NodePort')
    ),
  );
  src.put(udp);
  src.put(
    makeSlice('a', 'dns', [{ ip: '198.19.1.1' }, { ip: '198.19.1.2' }], [{ name: 'dns', port: 53, protocol: 'UDP' }]),
  );
  await src.start();
  await proxier.settled();
  t.same(
    deletions,
    [
      { kind: 'vip', vip: '10.96.0.10', port: 53 },
      { kind: 'nodeport', nodePort: 30053, v6: false },
    ],
    'first sync: flush entries made while there were no rules',
  );
  deletions.length = 0;
  src.put(makeSlice('a', 'dns', [{ ip: '198.19.1.2' }], [{ name: 'dns', port: 53, protocol: 'UDP' }]));
  await proxier.settled();
  t.same(deletions, [
    { kind: 'vip', vip: '10.96.0.10', port: 53, endpoint: '198.19.1.1' },
    { kind: 'nodeport', nodePort: 30053, endpoint: '198.19.1.1', v6: false },
  ]);
  t.same(conntrackArgv(deletions[0]!), [
    'conntrack',
    '-D',
    '-f',
    'ipv4',
    '-p',
    'udp',
    '--orig-dst',
    '10.96.0.10',
    '--orig-port-dst',
    '53',
    '--dst-nat',
    '198.19.1.1',
  ]);
  t.same(staleUdpEntries([], []), []);
  await proxier.stop();
});

t.test('userspace balancer: round robin, retries, affinity with timeout', async (t) => {
  let now = 0;
  const b = new Balancer(() => now);
  const A = { ip: '10.0.0.1', port: 80 };
  const B = { ip: '10.0.0.2', port: 80 };
  b.update([A, B], undefined);
  t.same(b.candidates('c')[0], A);
  t.same(b.candidates('c')[0], B);
  t.same(b.candidates('c'), [A, B], 'every endpoint is a candidate, for retries');
  b.update([A, B], 10);
  const first = b.candidates('c')[0]!;
  b.connected('c', first);
  for (let i = 0; i < 5; i++) t.same(b.candidates('c')[0], first, 'sticky');
  now += 11_000;
  const after = new Set([b.candidates('c')[0], b.candidates('c')[0]]);
  t.equal(after.size, 2, 'affinity expired');
  b.connected('d', B);
  b.update([A], 10);
  t.same(b.candidates('d')[0], A, 'sticky endpoint gone: another one');
  b.update([], undefined);
  t.same(b.candidates('x'), []);
});

t.test('userspace redirects: REJECT without endpoints, redirect with', async (t) => {
  const info = {
    id: 'a/s:',
    family: 'IPv4',
    protocol: 'TCP',
    clusterIP: '10.96.0.1',
    port: 80,
    externalIPs: [],
    loadBalancerIPs: [],
  } as unknown as ServicePortInfo;
  const lines = renderRedirects(
    [
      { info, port: 4000, hasEndpoints: true },
      { info: { ...info, clusterIP: '10.96.0.2' }, hasEndpoints: false },
    ],
    'ip',
  );
  t.ok(lines.includes('add rule ip kdp-userspace nat-prerouting ip daddr 10.96.0.1 tcp dport 80 redirect to :4000'));
  t.ok(lines.includes('add rule ip kdp-userspace filter-output ip daddr 10.96.0.2 tcp dport 80 reject'));
});

t.test('healthz: unhealthy only when a queued change waited too long', async (t) => {
  t.notOk(isHealthy({ initialized: false, syncs: 0, pending: 0, failures: 0 }, 0, 1000));
  t.ok(isHealthy({ initialized: true, syncs: 1, pending: 0, failures: 0, lastSyncOk: 10, lastQueued: 5 }, 5000, 1000));
  t.ok(isHealthy({ initialized: true, syncs: 1, pending: 1, failures: 0, lastSyncOk: 10, lastQueued: 20 }, 500, 1000));
  t.notOk(
    isHealthy({ initialized: true, syncs: 1, pending: 1, failures: 3, lastSyncOk: 10, lastQueued: 20 }, 5000, 1000),
  );
});

t.test(
  'network programming latency: from the slice trigger-time annotation, else from the first queued change',
  async (t) => {
    const { ProxyMetrics } = await import('../../../src/proxy/metrics.ts');
    const { TRIGGER_TIME_ANNOTATION } = await import('../../../src/proxy/tracker.ts');
    let wall = Date.parse('2026-11-24T03:00:00Z');
    const src = new FakeSource();
    const metrics = new ProxyMetrics();
    const proxier = new Proxier({
      source: src,
      backend: new FakeBackend(),
      nodeName: 'node1',
      families: ['IPv4'],
      minSyncIntervalMs: 0,
      log: silentLogger,
      metrics,
      wallClock: () => wall,
    });
    // a trigger time from before the proxy started (the initial list) is not taken as the change's time
    const old = makeSlice('a', 's1', [{ ip: '198.19.1.1' }]);
    src.put(makeService('a', 's1'));
    src.put({ ...old, meta: { ...old.meta, annotations: { [TRIGGER_TIME_ANNOTATION]: '2026-11-20T00:00:00Z' } } });
    await src.start();
    await proxier.settled();
    const stats = async () => {
      const v = (await metrics.networkProgramming.get()).values;
      return {
        count: v.find((x) => x.metricName?.endsWith('_count'))?.value ?? 0,
        sum: v.find((x) => x.metricName?.endsWith('_sum'))?.value ?? 0,
      };
    };
    let s = await stats();
    t.equal(s.count, 1, 'initial sync observed once');
    t.ok(s.sum < 60, `not from the 4-day-old annotation (${s.sum} s)`);
    // the API changed the endpoints 2.5 s ago (per the annotation): that is what is observed
    wall += 10_000;
    const changed = makeSlice('a', 's1', [{ ip: '198.19.1.2' }]);
    src.put({
      ...changed,
      meta: {
        ...changed.meta,
        resourceVersion: '2',
        annotations: { [TRIGGER_TIME_ANNOTATION]: new Date(wall - 2500).toISOString() },
      },
    });
    await proxier.settled();
    const before = s;
    s = await stats();
    t.equal(s.count, before.count + 1);
    t.equal(+(s.sum - before.sum).toFixed(3), 2.5, 'latency = now - last-change-trigger-time');
    // no annotation: from when the change was queued here (well under a second in this test)
    src.put(makeSlice('a', 's1', [{ ip: '198.19.1.3' }]));
    await proxier.settled();
    const before2 = s;
    s = await stats();
    t.equal(s.count, before2.count + 1);
    t.ok(s.sum - before2.sum < 1, `fallback: since the first queued change (${(s.sum - before2.sum).toFixed(4)} s)`);
    await proxier.stop();
  },
);

t.test('on the kernel harness: a failed sync is retried in full after 1, 2, 4 s and programs the change', async (t) => {
  const h = harness();
  const backend = new FakeBackend();
  const proxier = new Proxier({
    source: h.source,
    backend,
    nodeName: 'node1',
    families: ['IPv4'],
    minSyncIntervalMs: 0,
    log: silentLogger,
    clock: h.clock,
  });
  await h.source.start();
  await h.clock.advance(1);
  t.equal(backend.calls.length, 1);
  let attempts = 0;
  const sync = backend.sync.bind(backend);
  backend.sync = (...a) => {
    attempts++;
    return sync(...a);
  };
  backend.failNext = 3;
  h.source.put(makeService('a', 'late'));
  const times = await attemptTimes(h, () => attempts, 10_000);
  t.same(
    times.slice(1).map((x, i) => Math.round((x - times[i]!) / 100) * 100),
    [1000, 2000, 4000],
  );
  const last = backend.calls.at(-1)!;
  t.equal(last.full, true, 'the retry is a full sync');
  t.same(
    last.ports.map((p) => p.id),
    ['a/late:p80'],
  );
  t.equal(proxier.status().failures, 0);
  t.equal(proxier.controllerStatus().failuresTotal, 3);
  await proxier.stop();
});

t.test('UDP conntrack after a failed partial sync: the retry still flushes what the failed one removed', async (t) => {
  // the proxier compares only the rebuilt services (O(changes)); what it compares them with must be what the
  // kernel last got, not what the failed sync built
  const { src, backend, proxier, deletions } = setup();
  const udp = makeService('a', 'dns', (s) => (s.ports = [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 53 }]));
  const dnsSlice = (ips: string[]) =>
    makeSlice(
      'a',
      'dns',
      ips.map((ip) => ({ ip })),
      [{ name: 'dns', port: 53, protocol: 'UDP' }],
    );
  src.put(udp);
  src.put(dnsSlice(['198.19.1.1', '198.19.1.2']));
  src.put(makeService('a', 'other'));
  await src.start();
  await proxier.settled();
  deletions.length = 0;
  backend.failNext = 1;
  src.put(dnsSlice(['198.19.1.2']));
  await proxier.settled();
  t.equal(backend.calls.at(-1)!.full, true, 'the retry is a full sync');
  t.same(deletions, [{ kind: 'vip', vip: '10.96.0.10', port: 53, endpoint: '198.19.1.1' }]);
  deletions.length = 0;
  src.put(dnsSlice([]));
  await proxier.settled();
  t.same(deletions, [{ kind: 'vip', vip: '10.96.0.10', port: 53, endpoint: '198.19.1.2' }], 'a partial one too');
  await proxier.stop();
});

t.test('the model a backend reads on demand is the whole current one; health state follows per service', async (t) => {
  // (flattened only when read: flattening every service port per change was ~6 ms of a one-service change at
  // 50k services; the nftables backend's partial sync reads the changed services only)
  const reads: [boolean, number][] = [];
  const { src, proxier } = setup<ProxyBackend>({
    mode: 'fake',
    async sync(models, full) {
      t.same([...models.keys()], ['IPv4']);
      reads.push([full, models.get('IPv4')!.length]);
      t.equal(models.get('IPv4'), [...models.values()][0], 'flattened once');
      return { lines: 1 };
    },
    async cleanup() {},
  });
  const lb = (name: string, hc: number) =>
    makeService('a', name, (s) => {
      s.type = 'LoadBalancer';
      s.externalTrafficPolicy = 'Local';
      s.healthCheckNodePort = hc;
      s.ports = [{ name: 'p80', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: hc + 1 }];
    });
  src.put(lb('x', 32000));
  src.put(lb('y', 32100));
  src.put(makeSlice('a', 'x', [{ ip: '198.19.1.1', node: 'node1' }]));
  await src.start();
  await proxier.settled();
  t.same(
    proxier.healthChecks().map((h) => [h.service, h.localEndpoints]),
    [
      ['a/x', 1],
      ['a/y', 0],
    ],
  );
  src.put(makeSlice('a', 'y', [{ ip: '198.19.1.2', node: 'node1' }]));
  await proxier.settled();
  t.same(
    proxier.healthChecks().map((h) => [h.service, h.localEndpoints]),
    [
      ['a/x', 1],
      ['a/y', 1],
    ],
  );
  src.remove('Service', 'a/x');
  await proxier.settled();
  t.same(
    proxier.healthChecks().map((h) => h.service),
    ['a/y'],
  );
  t.same(reads, [
    [true, 2],
    [false, 2],
    [false, 1],
  ]);
  await proxier.stop();
});

t.test(
  "topology: the zone comes from this node's label; a change of it is a full sync, other node changes none",
  async (t) => {
    const { src, backend, proxier } = setup();
    const node = (name: string, zone: string | undefined, extra: Record<string, string> = {}): Node => ({
      kind: 'Node',
      meta: {
        namespace: '',
        name,
        uid: `uid-${name}`,
        resourceVersion: '1',
        labels: { ...(zone !== undefined ? { 'topology.kubernetes.io/zone': zone } : {}), ...extra },
        annotations: {},
      },
      podCIDRs: [],
      addresses: [],
      ready: true,
    });
    const slice = makeSlice('a', 's', [
      { ip: '198.19.1.1', node: 'node1' },
      { ip: '198.19.2.1', node: 'node2' },
    ]);
    src.put(makeService('a', 's'));
    src.put({
      ...slice,
      endpoints: slice.endpoints.map((e, i) => ({
        ...e,
        hints: { forZones: [i === 0 ? 'zone-a' : 'zone-b'], forNodes: [] },
      })),
    });
    src.put(node('node1', 'zone-a'));
    src.put(node('node2', 'zone-b'));
    await src.start();
    await proxier.settled();
    const eps = () => backend.calls.at(-1)!.ports[0]!.clusterEndpoints.map((e) => e.ip);
    t.same(eps(), ['198.19.1.1'], 'zone-a node: the zone-a endpoint only');
    const n = backend.calls.length;
    src.put(node('node2', 'zone-c'));
    src.put(node('node1', 'zone-a', { team: 'x' }));
    await proxier.settled();
    t.equal(backend.calls.length, n, "another node's zone, or another label of ours: no sync");
    t.equal(proxier.status().pending, 0);
    src.put(node('node1', 'zone-b'));
    await proxier.settled();
    t.equal(backend.calls.length, n + 1);
    t.equal(backend.calls.at(-1)!.full, true, 'a zone change is a full sync');
    t.same(eps(), ['198.19.2.1'], 'now the zone-b endpoint');
    src.remove('Node', 'node1');
    await proxier.settled();
    t.same(eps(), ['198.19.1.1', '198.19.2.1'], 'no Node (no zone): every endpoint');
    await proxier.stop();
  },
);
