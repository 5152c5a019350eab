// A second real client against the API double: kubectl (Debian kubernetes-client) must get, apply and
// delete through it, and the Kubernetes source must see what kubectl did. Loopback only; no root needed
// once kubectl is installed (scripts/setup-system.sh k8s installs it, as root, when missing).
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/common/exec-adapter.ts';
import { ApiDouble } from '../apiserver/server.ts';
import { KubeSource, loadKubeConfig } from '../../src/k8s/kube-source.ts';
import { silentLogger } from '../../src/common/log.ts';
import type { Service } from '../../src/model/types.ts';
import { listener } from '../helpers/watch.ts';

const setupScript = fileURLToPath(new URL('../../scripts/setup-system.sh', import.meta.url));

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('kubectl get, apply and delete against the API double', async (t) => {
  await run(['bash', setupScript, 'k8s'], { timeoutMs: 300_000 });
  const api = await ApiDouble.start();
  t.teardown(() => api.close());
  const dir = await mkdtemp(join(tmpdir(), 'kdp-kubectl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = await api.writeKubeconfig(join(dir, 'kubeconfig'));
  // no HOME writes: discovery cache in the temp dir; the double serves no OpenAPI, hence --validate=false
  const kubectl = (...args: string[]) =>
    run(['kubectl', '--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), '--request-timeout=10s', ...args], {
      timeoutMs: 30_000,
      env: { ...process.env, HOME: dir },
    });

  api.create('Namespace', { metadata: { name: 'shop' } });
  api.create('Service', {
    metadata: { name: 'web', namespace: 'shop' },
    spec: { clusterIP: '10.96.0.5', ports: [{ name: 'http', port: 80 }] },
  });

  const src = new KubeSource({
    kubeConfig: loadKubeConfig({ kubeconfig }),
    log: silentLogger,
    backoff: { initialMs: 20, maxMs: 200 },
  });
  const seen = new Map<string, Service>();
  const events: string[] = [];
  const svcListener = listener(['Service'], {
    add: (s) => (seen.set(s.meta.name, s), events.push(`add ${s.meta.name}`)),
    update: (_o, s) => (seen.set(s.meta.name, s), events.push(`update ${s.meta.name}`)),
    delete: (s) => (seen.delete(s.meta.name), events.push(`delete ${s.meta.name}`)),
  });
  src.watch(svcListener);
  await src.start();
  t.teardown(() => src.stop());

  const list = JSON.parse((await kubectl('get', 'services', '-n', 'shop', '-o', 'json')).stdout) as {
    items: { metadata: { name: string } }[];
  };
  t.same(
    list.items.map((i) => i.metadata.name),
    ['web'],
    'kubectl get lists',
  );
  const table = (await kubectl('get', 'svc', '-A')).stdout;
  t.match(table, /web/, 'kubectl get with short name and all namespaces');
  const one = JSON.parse((await kubectl('get', 'service', 'web', '-n', 'shop', '-o', 'json')).stdout) as {
    spec: { clusterIP: string };
  };
  t.equal(one.spec.clusterIP, '10.96.0.5', 'kubectl get one object');
  const missing = await run(
    ['kubectl', '--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), 'get', 'service', 'nope', '-n', 'shop'],
    { allowFailure: true, env: { ...process.env, HOME: dir } },
  );
  t.not(missing.code, 0);
  t.match(missing.stderr, /NotFound|not found/, 'a missing object is NotFound');

  const manifest = (port: number) => `apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop, labels: {tier: backend}}
spec:
  clusterIP: 10.96.0.6
  selector: {app: api}
  ports: [{name: http, port: ${port}, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: kdp}
spec: {controller: kdp.dev/ingress}
`;
  const file = join(dir, 'api.yaml');
  await writeFile(file, manifest(81));
  const created = await kubectl('apply', '--validate=false', '-f', file);
  t.match(created.stdout, /service\/api created/);
  t.match(created.stdout, /ingressclass.networking.k8s.io\/kdp created/);
  t.equal(
    (api.get('Service', 'shop', 'api')!.spec as { ports: { port: number }[] }).ports[0]!.port,
    81,
    'the double holds what kubectl applied',
  );
  await until(() => seen.get('api')?.ports[0]?.port === 81, 2000, 'the source sees the kubectl create');

  await writeFile(file, manifest(82));
  const configured = await kubectl('apply', '--validate=false', '-f', file);
  t.match(configured.stdout, /service\/api configured/, 'a second apply patches');
  t.match(configured.stdout, /ingressclass.networking.k8s.io\/kdp unchanged/);
  await until(() => seen.get('api')?.ports[0]?.port === 82, 2000, 'the source sees the kubectl patch');
  const labels = JSON.parse((await kubectl('get', 'svc', 'api', '-n', 'shop', '-o', 'json')).stdout) as {
    metadata: { labels: Record<string, string>; annotations: Record<string, string> };
  };
  t.equal(labels.metadata.labels.tier, 'backend');
  t.ok(
    labels.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'],
    'client-side apply keeps its annotation',
  );

  const deleted = await kubectl('delete', '-f', file, '--wait=true');
  t.match(deleted.stdout, /service "api" deleted/);
  t.equal(api.get('Service', 'shop', 'api'), undefined);
  await until(() => !seen.has('api'), 2000, 'the source sees the kubectl delete');
  t.same(events, ['add web', 'add api', 'update api', 'delete api']);
  t.same(svcListener.malformed, [], 'every call names its kind and key');
});
