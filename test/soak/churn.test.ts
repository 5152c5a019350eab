// Churn under load (issue #9), behind `npm run test:soak`, bounded by SOAK_SECONDS (default 180).
// The whole data plane runs in a lab (`kdp up` in-process on examples/cluster plus a churn namespace): CNI,
// node agent, service proxy (nftables unless SOAK_PROXY_MODE says otherwise), DNS and ingress on every node.
// Four client loops run for the whole soak: a ClusterIP from a pod, a NodePort from the underlay, DNS lookups
// from a pod, the ingress from the underlay.
// Meanwhile the manifests change every ~2 s: a rolling update of `roll` (endpoints replaced one at a time,
// always >= 3 ready), its session affinity switched on and off, a Service deleted and recreated, an Ingress
// path added and removed. The clients of `roll` must see zero failures (a live endpoint always exists); the
// time from each manifest write to the data plane reflecting it is measured and printed (p50/p99).
//
// SOAK_MIN_SYNC_PERIOD (e.g. 100ms): the proxies' --min-sync-period instead of their default 1s.
// SOAK_PROXY_MODE (nftables, the default, iptables or userspace): the proxies' --mode.
// SOAK_SOURCE=api (`npm run test:soak:api`): the components watch an API server instead of the directory. The API
// double (test/apiserver/serve.ts) runs inside the lab's underlay namespace, on the underlay address for the
// components (their --kubeconfig) and on a unix socket for this process, which plays the control plane: it seeds
// the double with the directory's objects plus their EndpointSlices, and writes the same four kinds of change to
// the API (a rolling-update step is a Pod status update plus the EndpointSlice updates the endpoint controller
// would make). Measured: API write acknowledged -> data plane reflects it. The directory is only read at start
// (to plan the lab's nodes and pods); in this mode no file is written after that.
import t from 'tap';
import { cpSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabUp } from '../../src/up/lab-up.ts';
import { silentLogger } from '../../src/common/log.ts';
import { needsRoot } from '../helpers/gate.ts';
import { takeSnapshot } from '../../src/up/snapshot.ts';
import { ManifestsSource } from '../../src/k8s/manifests-source.ts';
import type { Lab } from '../../src/lab/lab.ts';
import { SliceController, UnixApi, objectPath, seedObjects, startDoubleInLab, writeSeed } from './api-cluster.ts';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 180);
const SOURCE = process.env.SOAK_SOURCE ?? 'manifests';
if (SOURCE !== 'manifests' && SOURCE !== 'api') throw new Error(`SOAK_SOURCE must be manifests or api, not ${SOURCE}`);
const API = SOURCE === 'api';
const PROXY_MODE = process.env.SOAK_PROXY_MODE ?? 'nftables';
if (PROXY_MODE !== 'nftables' && PROXY_MODE !== 'iptables' && PROXY_MODE !== 'userspace')
  throw new Error(`SOAK_PROXY_MODE must be nftables, iptables or userspace, not ${PROXY_MODE}`);
const EXAMPLES = fileURLToPath(new URL('../../examples/cluster', import.meta.url));

const NODE_IP: Record<string, string> = { 'node-1': '198.18.0.11', 'node-2': '198.18.0.12' };
const ROLL_A = [
  ['roll-a-0', 'node-1', '198.19.1.100'],
  ['roll-a-1', 'node-2', '198.19.2.100'],
  ['roll-a-2', 'node-1', '198.19.1.101'],
] as const;
const ROLL_B = [
  ['roll-b-0', 'node-2', '198.19.2.101'],
  ['roll-b-1', 'node-1', '198.19.1.102'],
  ['roll-b-2', 'node-2', '198.19.2.102'],
] as const;

const pod = (name: string, node: string, ip: string, ready: boolean, app = 'roll') => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'churn', labels: { app } },
  spec: {
    nodeName: node,
    containers: [{ name: 'c', image: 'busybox', ports: [{ name: 'http', containerPort: 8080 }] }],
  },
  status: {
    phase: 'Running',
    hostIP: NODE_IP[node],
    podIP: ip,
    podIPs: [{ ip }],
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
  },
});

const rollService = (affinity: boolean) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'roll', namespace: 'churn' },
  spec: {
    type: 'NodePort',
    clusterIP: '10.96.0.50',
    selector: { app: 'roll' },
    ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30050 }],
    ...(affinity ? { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 30 } } } : {}),
  },
});
const flipService = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'flip', namespace: 'churn' },
  spec: { clusterIP: '10.96.0.51', selector: { app: 'roll' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
};
const headless = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'roll-h', namespace: 'churn' },
  spec: { clusterIP: 'None', selector: { app: 'roll' }, ports: [{ name: 'http', port: 8080 }] },
};
const rollIngress = (extra: boolean) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: { name: 'roll', namespace: 'churn' },
  spec: {
    ingressClassName: 'kdp',
    rules: [
      {
        host: 'roll.example.test',
        http: {
          paths: [
            { path: '/', pathType: 'Prefix', backend: { service: { name: 'roll', port: { number: 80 } } } },
            ...(extra
              ? [
                  {
                    path: '/extra',
                    pathType: 'Exact',
                    backend: { service: { name: 'flip-target', port: { number: 80 } } },
                  },
                ]
              : []),
          ],
        },
      },
    ],
  },
});
// the Exact /extra path goes to a Service of its own (the client pod), so whether it is live shows in who answers
const flipTarget = {
  ...flipService,
  metadata: { name: 'flip-target', namespace: 'churn' },
  spec: { ...flipService.spec, clusterIP: '10.96.0.52', selector: { app: 'client' } },
};

// A client loop as a child process: new connection per request; prints {ok, fail, errs} when done.
const HTTP_LOOP = `const http=require('node:http');const [url,host,ms]=process.argv.slice(1);const t0=Date.now();const end=t0+Number(ms);let ok=0,fail=0;const errs=[];
const one=()=>new Promise((res)=>{const r=http.get(url,{agent:false,timeout:3000,headers:host?{host}:{}},(rsp)=>{rsp.resume();rsp.on('end',()=>{if(rsp.statusCode===200)ok++;else{fail++;if(errs.length<20)errs.push('status '+rsp.statusCode)}res()})});
r.on('timeout',()=>r.destroy(new Error('timeout')));r.on('error',(e)=>{fail++;if(errs.length<20)errs.push(e.message+' at '+((Date.now()-t0)/1000).toFixed(1)+'s');res()})});
(async()=>{while(Date.now()<end){await one()}process.stdout.write(JSON.stringify({ok,fail,errs})+'\\n')})();`;
const DNS_LOOP = `const {Resolver}=require('node:dns').promises;const [server,name,ms]=process.argv.slice(1);const r=new Resolver({timeout:2000,tries:1});r.setServers([server]);const t0=Date.now();const end=t0+Number(ms);let ok=0,fail=0;const errs=[];
(async()=>{while(Date.now()<end){try{const a=await r.resolve4(name);if(a.length>0)ok++;else{fail++;errs.push('empty')}}catch(e){fail++;if(errs.length<20)errs.push((e.code||e.message)+' at '+((Date.now()-t0)/1000).toFixed(1)+'s')}}process.stdout.write(JSON.stringify({ok,fail,errs})+'\\n')})();`;

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

if (needsRoot(t)) {
  t.test(
    `churn under load for ${SECONDS} s (${API ? 'components watch the API double' : 'components read the manifests directory'})`,
    { timeout: (SECONDS + 300) * 1000 },
    async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'kdp-soak-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      cpSync(EXAMPLES, dir, { recursive: true });
      const write = (file: string, objs: object[]) => {
        const tmp = join(dir, `.${file}.tmp`);
        writeFileSync(tmp, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }));
        renameSync(tmp, join(dir, file));
        return performance.now();
      };
      const remove = (file: string) => {
        rmSync(join(dir, file), { force: true });
        return performance.now();
      };
      const ready = new Map<string, boolean>([
        ...ROLL_A.map(([n]) => [n, true] as const),
        ...ROLL_B.map(([n]) => [n, false] as const),
      ]);
      const churnPods = () => [
        ...[...ROLL_A, ...ROLL_B].map(([n, node, ip]) => pod(n, node, ip, ready.get(n)!)),
        pod('client', 'node-1', '198.19.1.110', true, 'client'),
      ];
      const writePods = () =>
        write('50-churn-pods.json', [
          { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'churn' } },
          ...churnPods(),
        ]);
      writePods();
      write('51-churn-services.json', [rollService(false), headless, flipTarget]);
      write('52-flip.json', [flipService]);
      write('53-churn-ingress.json', [rollIngress(false)]);

      // API mode: the double in the underlay, seeded with the directory's objects and their EndpointSlices
      let api: UnixApi | undefined;
      let slices: SliceController | undefined;
      let componentSource: { kubeconfig: string; beforeComponents: (lab: Lab) => Promise<void> } | undefined;
      if (API) {
        const apiDir = mkdtempSync(join(tmpdir(), 'kdp-soak-api-'));
        t.teardown(() => rmSync(apiDir, { recursive: true, force: true }));
        const seed = seedObjects(dir, await takeSnapshot(new ManifestsSource({ dir, log: silentLogger })));
        writeSeed(join(apiDir, 'seed.json'), seed);
        const socket = join(apiDir, 'api.sock');
        api = new UnixApi(socket);
        t.teardown(() => api?.close());
        slices = new SliceController(api, seed);
        componentSource = {
          kubeconfig: join(apiDir, 'kubeconfig'),
          beforeComponents: async (lab) => {
            const d = await startDoubleInLab(lab, {
              node: process.execPath,
              socket,
              seedFile: join(apiDir, 'seed.json'),
              kubeconfig: join(apiDir, 'kubeconfig'),
            });
            t.comment(
              `API double in ${lab.underlay} at ${d.server} (and ${socket}), seeded with ${seed.length} objects (${seed.filter((o) => o.kind === 'EndpointSlice').length} EndpointSlices)`,
            );
          },
        };
      }

      const up = await LabUp.start({
        manifestsDir: dir,
        log: silentLogger,
        progress: (l) => t.comment(l),
        proxyMode: PROXY_MODE,
        ...(componentSource ? { componentSource } : {}),
        ...(process.env.SOAK_MIN_SYNC_PERIOD ? { proxyMinSyncPeriod: process.env.SOAK_MIN_SYNC_PERIOD } : {}),
      });
      t.teardown(() => up.stop());
      const targets = up.targets();
      const client = targets['churn/client']!;
      const underlay = targets.underlay!;
      const exec = (ns: string, argv: string[]) => up.lab.exec(ns, argv, { allowFailure: true, timeoutMs: 10_000 });
      const httpCode = async (ns: string, url: string, host?: string) =>
        (
          await exec(ns, [
            'curl',
            '-s',
            '-o',
            '/dev/null',
            '-w',
            '%{http_code}',
            '--max-time',
            '1',
            ...(host ? ['-H', `Host: ${host}`] : []),
            url,
          ])
        ).stdout.trim();
      // wait until the churn services answer before loading them
      const until = async (what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<number> => {
        const t0 = performance.now();
        while (!(await fn())) {
          if (performance.now() - t0 > ms) throw new Error(`timed out: ${what}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        return performance.now() - t0;
      };
      await until('roll via ClusterIP', async () => (await httpCode(client, 'http://10.96.0.50/')) === '200', 60_000);
      await until('flip via ClusterIP', async () => (await httpCode(client, 'http://10.96.0.51/')) === '200', 60_000);
      await until(
        'roll via ingress',
        async () => (await httpCode(underlay, `http://${NODE_IP['node-1']}/`, 'roll.example.test')) === '200',
        60_000,
      );

      const ms = SECONDS * 1000;
      const node = process.execPath;
      const loops = {
        clusterIP: up.lab.spawn(client, [node, '-e', HTTP_LOOP, 'http://10.96.0.50/', '', String(ms)]),
        nodePort: up.lab.spawn(underlay, [node, '-e', HTTP_LOOP, `http://${NODE_IP['node-2']}:30050/`, '', String(ms)]),
        dns: up.lab.spawn(client, [node, '-e', DNS_LOOP, '10.96.0.10', 'roll.churn.svc.cluster.local', String(ms)]),
        ingress: up.lab.spawn(underlay, [
          node,
          '-e',
          HTTP_LOOP,
          `http://${NODE_IP['node-1']}/`,
          'roll.example.test',
          String(ms),
        ]),
      };

      const lat: Record<string, number[]> = {
        'endpoint change -> DNS answer': [],
        'Service created -> ClusterIP answers': [],
        'Service deleted -> ClusterIP unanswered': [],
        'Ingress path added -> routed': [],
        'Ingress path removed -> gone': [],
      };
      const digIps = async () =>
        (
          await exec(client, ['dig', '+short', '+time=1', '+tries=1', '@10.96.0.10', 'roll-h.churn.svc.cluster.local'])
        ).stdout
          .trim()
          .split('\n')
          .filter(Boolean)
          .sort()
          .join(',');
      const expectedIps = () =>
        [...ROLL_A, ...ROLL_B]
          .filter(([n]) => ready.get(n))
          .map(([, , ip]) => ip)
          .sort()
          .join(',');

      // one endpoint's readiness changed: the pods file (manifests; the source's controller derives the slices), or
      // in the API the Pod's status (the kubelet) and then the slices of every Service selecting it (the endpoint
      // controller; the headless roll-h, whose DNS answer is measured, first). Returns the time of the write the data
      // plane consumes: the file rename, or the acknowledgement of roll-h's slice update.
      const endpointChange = async (podName: string): Promise<number> => {
        if (!api || !slices) return writePods();
        const pods = churnPods();
        const p = pods.find((x) => x.metadata.name === podName)!;
        await api.write('PUT', objectPath(p), p);
        const at = await slices.sync(headless, pods);
        await slices.sync(rollService(affinity), pods);
        if (flipPresent) await slices.sync(flipService, pods);
        return at;
      };
      // a Service deleted (its slices then go, as garbage collection does) or created (then its slice is published)
      const deleteFlip = async (a: UnixApi): Promise<number> => {
        const at = await a.write('DELETE', objectPath(flipService));
        await slices!.removeAll('churn', 'flip');
        return at;
      };
      const createFlip = async (a: UnixApi): Promise<number> => {
        const at = await a.write('POST', objectPath(flipService, false), flipService);
        await slices!.sync(flipService, churnPods());
        return at;
      };

      // the rolling update: each step makes one pod of the other set ready, then one of the current set not ready
      let from: readonly (readonly [string, string, string])[] = ROLL_A;
      let to: readonly (readonly [string, string, string])[] = ROLL_B;
      let idx = 0;
      let phase = 0;
      let affinity = false;
      let flipPresent = true;
      let extra = false;
      const deadline = Date.now() + ms - 3000;
      let steps = 0;
      const loopStart = Date.now();
      const actions: string[] = [];
      const note = (what: string) => actions.push(`${((Date.now() - loopStart) / 1000).toFixed(1)}s ${what}`);
      while (Date.now() < deadline) {
        const action = steps++ % 4;
        note(
          [
            'roll step',
            affinity ? 'affinity off' : 'affinity on',
            flipPresent ? 'delete flip' : 'create flip',
            extra ? 'ingress path removed' : 'ingress path added',
          ][action]!,
        );
        if (action === 0) {
          // rolling update step (two writes: new one ready, then old one not ready)
          ready.set(to[idx]![0], true);
          const t0 = await endpointChange(to[idx]![0]);
          await until('DNS shows the new endpoint', async () => (await digIps()) === expectedIps());
          lat['endpoint change -> DNS answer']!.push(performance.now() - t0);
          await new Promise((r) => setTimeout(r, 300));
          ready.set(from[idx]![0], false);
          const t1 = await endpointChange(from[idx]![0]);
          await until('DNS drops the old endpoint', async () => (await digIps()) === expectedIps());
          lat['endpoint change -> DNS answer']!.push(performance.now() - t1);
          if (++idx === 3) {
            [from, to] = [to, from];
            idx = 0;
            phase++;
          }
        } else if (action === 1) {
          affinity = !affinity;
          if (api) await api.write('PUT', objectPath(rollService(affinity)), rollService(affinity));
          else write('51-churn-services.json', [rollService(affinity), headless, flipTarget]);
        } else if (action === 2) {
          if (flipPresent) {
            const t0 = api ? await deleteFlip(api) : remove('52-flip.json');
            await until('flip refused', async () => (await httpCode(client, 'http://10.96.0.51/')) === '000');
            lat['Service deleted -> ClusterIP unanswered']!.push(performance.now() - t0);
          } else {
            const t0 = api ? await createFlip(api) : write('52-flip.json', [flipService]);
            await until('flip answers', async () => (await httpCode(client, 'http://10.96.0.51/')) === '200');
            lat['Service created -> ClusterIP answers']!.push(performance.now() - t0);
          }
          flipPresent = !flipPresent;
        } else {
          extra = !extra;
          const t0 = api
            ? await api.write('PUT', objectPath(rollIngress(extra)), rollIngress(extra))
            : write('53-churn-ingress.json', [rollIngress(extra)]);
          await until(`ingress /extra ${extra ? 'routed' : 'gone'}`, async () => {
            const r = await exec(underlay, [
              'curl',
              '-s',
              '--max-time',
              '1',
              '-H',
              'Host: roll.example.test',
              `http://${NODE_IP['node-2']}/extra`,
            ]);
            return r.stdout.includes('"name":"client"') === extra;
          });
          lat[extra ? 'Ingress path added -> routed' : 'Ingress path removed -> gone']!.push(performance.now() - t0);
        }
        await new Promise((r) => setTimeout(r, 1500));
      }

      const results: Record<string, { ok: number; fail: number; errs: string[] }> = {};
      for (const [name, p] of Object.entries(loops)) {
        await p.exited;
        results[name] = JSON.parse(p.output().trim().split('\n').pop() ?? '{}') as {
          ok: number;
          fail: number;
          errs: string[];
        };
      }
      const table = Object.entries(lat).map(
        ([what, xs]) => `${what}: n=${xs.length} p50=${pct(xs, 50).toFixed(0)} ms p99=${pct(xs, 99).toFixed(0)} ms`,
      );
      t.comment(
        `soak ${SECONDS} s, proxy mode ${PROXY_MODE}, source ${API ? 'api (components watch the API double; times are API write acknowledged -> reflected)' : 'manifests (times are file written -> reflected)'}, ${steps} churn steps, ${phase} full rolls${api ? `, ${api.writes} API writes` : ''}`,
      );
      for (const [name, r] of Object.entries(results))
        t.comment(`${name}: ${r.ok} ok, ${r.fail} failed ${r.errs.length ? JSON.stringify(r.errs.slice(0, 5)) : ''}`);
      for (const line of table) t.comment(line);
      if (Object.values(results).some((r) => r.fail > 0)) t.comment(`churn actions: ${actions.join('; ')}`);
      for (const [name, r] of Object.entries(results)) {
        t.ok(r.ok > SECONDS, `${name}: the client kept going (${r.ok} requests)`);
        t.equal(r.fail, 0, `${name}: zero failures while a live endpoint always existed`);
      }
      t.ok(phase >= 1, 'at least one complete rolling update happened');
      t.ok(
        Object.values(lat).every((xs) => xs.length > 0),
        'every kind of change was measured',
      );
    },
  );
}
