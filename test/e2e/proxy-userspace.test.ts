// userspace mode in the lab: the in-process load balancer behind nft redirect rules (as root) and on
// NodePorts (also unprivileged); affinity on/off live, UDP sessions moving to the new backend, a rolling
// update under load with zero failed requests (connect retries), cleanup.
import t from 'tap';
import { chmodSync } from 'node:fs';
import { needsRoot } from '../helpers/gate.ts';
import {
  CLI,
  ProxyLab,
  affinityLive,
  udpMoves,
  baseServices,
  etpLocalNoLocalEndpoint,
  healthCheckNodePortCounts,
  kubeProxyUrls,
  runFlows,
} from './proxy-harness.ts';
import type { SvcSpec } from './proxy-harness.ts';

if (needsRoot(t)) {
  t.test('userspace mode', async (t) => {
    const pl = await ProxyLab.create(t, 'userspace');
    t.teardown(() => pl.stopProxy());
    const { a, b1, b2, c1, c2 } = pl.pods;
    const base = baseServices(pl);
    for (const s of base) pl.apply(s);
    await pl.startProxy();
    const n1 = pl.n1.ip4;

    await t.test('packet-flow table (userspace semantics: the proxy is the client of the endpoint)', (t) =>
      runFlows(t, pl, [
        {
          name: 'ClusterIP from a pod: both endpoints',
          from: 'pod',
          url: 'http://10.96.0.10/',
          backends: ['b1', 'c1'],
          all: true,
          tries: 8,
        },
        {
          name: 'ClusterIP from the node',
          from: 'node',
          url: 'http://10.96.0.10/',
          backends: ['b1', 'c1'],
          all: true,
          tries: 8,
        },
        {
          name: 'NodePort from the underlay',
          from: 'underlay',
          url: `http://${n1}:30080/`,
          backends: ['b1', 'c1'],
          all: true,
          tries: 8,
          client: 'masqueraded',
        },
        {
          name: 'NodePort with externalTrafficPolicy Local: local endpoint only',
          from: 'underlay',
          url: `http://${n1}:30081/`,
          backends: ['b2'],
          tries: 4,
        },
        {
          name: 'NodePort Local without a local endpoint: not served (refused)',
          from: 'underlay',
          connect: [n1, 30082],
          expect: 'refused',
        },
        {
          name: 'healthCheckNodePort: 200 with a local endpoint',
          from: 'underlay',
          url: `http://${n1}:32081/`,
          status: 200,
        },
        { name: 'healthCheckNodePort: 503 without', from: 'underlay', url: `http://${n1}:32082/`, status: 503 },
        { name: 'no endpoints: REJECT from a pod', from: 'pod', connect: ['10.96.0.20', 80], expect: 'refused' },
        { name: 'no endpoints: REJECT from the node', from: 'node', connect: ['10.96.0.20', 80], expect: 'refused' },
        {
          name: 'no endpoints: NodePort refused from the underlay',
          from: 'underlay',
          connect: [n1, 30090],
          expect: 'refused',
        },
        {
          name: 'serving-terminating endpoint used when none is ready',
          from: 'pod',
          url: 'http://10.96.0.22/',
          backends: ['b1'],
          tries: 3,
        },
        {
          name: 'ClientIP affinity: one backend',
          from: 'pod',
          url: 'http://10.96.0.30/',
          backends: ['b1', 'c1'],
          tries: 8,
          sticky: true,
        },
      ]),
    );

    // round robin: 6 tries reach both backends
    await t.test('session affinity switched off and on live', (t) => affinityLive(t, pl, base, { off: 6, on: 8 }));

    await t.test('UDP: a client on the same flow reaches the new backend at once', async (t) => {
      await udpMoves(t, pl, 'session to the removed endpoint dropped (b1 is still up)');
    });

    await t.test('UDP through a ClusterIP answers a connected client from ClusterIP:port', async (t) => {
      // from the node the redirect goes to 127.0.0.1, from a pod to the address of its host-side interface, while
      // the route back to the pod carries `src <node address>`: a reply from any other address is discarded
      t.equal(await pl.udpConnected(pl.n1.ns, '10.96.0.53', 53, 'node'), 'b2 node', 'from the node');
      t.equal(await pl.udpConnected(a.ns, '10.96.0.53', 53, 'pod'), 'b2 pod', 'from a pod');
    });

    await t.test('external IP and load-balancer IP of a Local service', async (t) => {
      // two off-node clients route the documentation range to node-1: the underlay host and node-2
      await pl.lab.exec(pl.lab.underlay, ['ip', 'route', 'add', '203.0.113.0/24', 'via', pl.n1.ip4]);
      await pl.lab.exec(pl.n2.ns, ['ip', 'route', 'add', '203.0.113.0/24', 'via', pl.n1.ip4]);
      await etpLocalNoLocalEndpoint(t, pl, { nodePorts: false, clientKept: false });
    });

    await t.test('healthCheckNodePort: ready local endpoints only, distinct over all ports', (t) =>
      healthCheckNodePortCounts(t, pl),
    );

    await t.test('kube-proxy URLs', (t) => kubeProxyUrls(t, pl));

    await t.test('rolling update under load: zero failed requests', async (t) => {
      const roll: SvcSpec = { name: 'roll', clusterIP: '10.96.0.60', endpoints: [{ pod: b1 }, { pod: c1 }] };
      await pl.synced(pl.apply(roll));
      const load = pl.loadLoop('http://10.96.0.60/', 5000);
      await new Promise((r) => setTimeout(r, 400));
      await pl.synced(pl.apply({ ...roll, endpoints: [{ pod: b1 }, { pod: c1 }, { pod: b2 }] }));
      await pl.synced(
        pl.apply({
          ...roll,
          endpoints: [{ pod: b1, ready: false, serving: true, terminating: true }, { pod: c1 }, { pod: b2 }],
        }),
      );
      pl.echo.get('b1')!.kill('SIGKILL');
      await pl.synced(pl.apply({ ...roll, endpoints: [{ pod: c1 }, { pod: b2 }, { pod: c2 }] }));
      await pl.synced(
        pl.apply({
          ...roll,
          endpoints: [{ pod: c1, ready: false, serving: true, terminating: true }, { pod: b2 }, { pod: c2 }],
        }),
      );
      pl.echo.get('c1')!.kill('SIGKILL');
      await pl.synced(pl.apply({ ...roll, endpoints: [{ pod: b2 }, { pod: c2 }] }));
      await load.exited;
      const res = JSON.parse(load.output().trim().split('\n').pop() ?? '{}') as {
        ok: number;
        fail: number;
        errs: string[];
        seen: Record<string, number>;
      };
      t.equal(res.fail, 0, `no failed request (${res.ok} ok; errors: ${res.errs?.join('; ')})`);
      t.ok(res.ok > 50, `the loop ran (${res.ok} requests)`);
      t.ok((res.seen.b2 ?? 0) > 0 && (res.seen.c2 ?? 0) > 0, `new endpoints served: ${JSON.stringify(res.seen)}`);
    });

    await t.test('unprivileged: NodePorts served by a proxy running as nobody', async (t) => {
      chmodSync(pl.dir, 0o755);
      const child = pl.lab.spawn(pl.n2.ns, [
        'setpriv',
        '--reuid',
        '65534',
        '--regid',
        '65534',
        '--clear-groups',
        process.execPath,
        CLI,
        '--log-format',
        'json',
        'proxy',
        '--mode',
        'userspace',
        '--manifests',
        pl.dir,
        '--node-name',
        pl.n2.name,
        '--healthz-bind-address',
        '',
        '--metrics-bind-address',
        '',
        '--min-sync-period',
        '0s',
      ]);
      const end = Date.now() + 60_000; // as startProxy: a loaded 2-core box takes seconds to load the CLI (no compile cache for nobody)
      while (!/^ready$/m.test(child.output()) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      t.match(child.output(), /^ready$/m, 'started without root');
      // `local` (externalTrafficPolicy Local) has c2 on node-2 (b1 and c1 were stopped by the rolling update)
      const r = await pl.http(pl.lab.underlay, `http://${pl.n2.ip4}:30081/`);
      t.equal(r.name, 'c2', `NodePort answered by the local endpoint (${r.error ?? ''})`);
      const nft = await pl.lab.exec(pl.n2.ns, ['nft', 'list', 'tables']);
      t.notMatch(nft.stdout, /kdp/, 'no rules programmed without root');
      child.kill('SIGTERM');
      await child.exited;
    });

    await t.test('kdp proxy cleanup removes the redirect table', async (t) => {
      await pl.stopProxy();
      t.match((await pl.lab.exec(pl.n1.ns, ['nft', 'list', 'tables'])).stdout, /kdp-userspace/);
      await pl.lab.exec(pl.n1.ns, [process.execPath, CLI, '--log-format', 'json', 'proxy', 'cleanup']);
      t.notMatch((await pl.lab.exec(pl.n1.ns, ['nft', 'list', 'tables'])).stdout, /kdp/);
    });
  });
}
