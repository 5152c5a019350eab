// Where the Kubernetes source finds its configuration: --kubeconfig, KUBECONFIG, ~/.kube/config; a clear error otherwise.
import t from 'tap';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKubeConfig } from '../../../src/k8s/kube-source.ts';

const cfg = (server: string) =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'c',
    clusters: [{ name: 'k', cluster: { server } }],
    users: [{ name: 'u', user: { token: 't' } }],
    contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
  });

t.test('kubeconfig resolution order', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kdp-kc-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const saved = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG };
  t.teardown(() => {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  });
  process.env.HOME = join(dir, 'home');
  delete process.env.KUBECONFIG;
  await mkdir(join(dir, 'home', '.kube'), { recursive: true });
  await writeFile(join(dir, 'flag'), cfg('https://flag.example:6443'));
  await writeFile(join(dir, 'env'), cfg('https://env.example:6443'));

  t.throws(
    () => loadKubeConfig(),
    { code: 'KDP_K8S_CONFIG', message: /no Kubernetes configuration found/ },
    'nothing configured is an error, not localhost:8080',
  );
  t.throws(() => loadKubeConfig({ kubeconfig: join(dir, 'missing') }), { code: 'KDP_K8S_CONFIG' });
  await writeFile(join(dir, 'home', '.kube', 'config'), cfg('https://home.example:6443'));
  t.equal(loadKubeConfig().getCurrentCluster()?.server, 'https://home.example:6443', '~/.kube/config');
  process.env.KUBECONFIG = join(dir, 'env');
  t.equal(
    loadKubeConfig().getCurrentCluster()?.server,
    'https://env.example:6443',
    'KUBECONFIG wins over ~/.kube/config',
  );
  t.equal(
    loadKubeConfig({ kubeconfig: join(dir, 'flag') }).getCurrentCluster()?.server,
    'https://flag.example:6443',
    '--kubeconfig wins over KUBECONFIG',
  );
});
