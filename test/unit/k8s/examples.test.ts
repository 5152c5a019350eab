// examples/cluster (the embedded default the components run on) loads cleanly and means what its README says.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { ManifestsSource } from '../../../src/k8s/manifests-source.ts';
import type { Logger } from '../../../src/common/log.ts';
import { silentLogger } from '../../../src/common/log.ts';

const dir = fileURLToPath(new URL('../../../examples/cluster', import.meta.url));

t.test('examples/cluster', async (t) => {
  const warnings: unknown[] = [];
  const log: Logger = {
    debug() {},
    info() {},
    warn: (o) => warnings.push(o),
    error: (o) => warnings.push(o),
    child: () => log,
  };
  const src = new ManifestsSource({ dir, log });
  // the manifests source loads every kind; what it holds is read from its store (the view) after start()
  await src.start();
  t.teardown(() => src.stop());
  t.same(warnings, [], 'no broken file, no skipped object');

  const nodes = src.view.list('Node');
  t.same(
    nodes.map((n) => [n.meta.name, n.podCIDRs, n.addresses.find((a) => a.type === 'InternalIP')?.address, n.ready]),
    [
      ['node-1', ['198.19.1.0/24'], '198.18.0.11', true],
      ['node-2', ['198.19.2.0/24'], '198.18.0.12', true],
    ],
  );
  const { vtepAnnotations } = await import('../../../src/node/overlay.ts');
  for (const n of nodes)
    t.match(
      n.meta.annotations,
      vtepAnnotations(1, n.addresses.find((a) => a.type === 'InternalIP')!.address),
      `${n.meta.name}: the VTEP annotations the agent derives (VNI 1), so kdp up --backend vxlan|auto can use them`,
    );
  const svcs = new Map(src.view.list('Service').map((s) => [s.meta.name, s]));
  t.same([...new Set([...svcs.values()].map((s) => (s.headless ? 'headless' : s.type)))].sort(), [
    'ClusterIP',
    'ExternalName',
    'LoadBalancer',
    'NodePort',
    'headless',
  ]);
  t.equal(src.view.list('Pod').length, 8);
  t.same(
    src.view
      .list('Namespace')
      .map((n) => n.meta.name)
      .sort(),
    ['default', 'kube-system', 'shop'],
  );

  const slices = src.view.list('EndpointSlice');
  const eps = (svc: string) =>
    slices
      .filter((s) => s.serviceName === svc)
      .flatMap((s) =>
        s.endpoints.map(
          (e) =>
            `${e.addresses[0]}:${s.ports.map((p) => p.port).join('/')}${e.conditions.ready ? '' : ' not-ready'}${e.hostname ? ` ${e.hostname}` : ''}`,
        ),
      )
      .sort();
  t.same(
    eps('web'),
    ['198.19.1.10:8080/9090', '198.19.1.11:8080/9090', '198.19.2.10:8080/9090 not-ready'],
    'named targetPorts resolved from the Pods',
  );
  t.same(eps('api'), ['198.19.1.20:8080', '198.19.2.20:8080']);
  t.same(eps('db'), ['198.19.1.30:8080 db-0', '198.19.2.30:8080 db-1'], 'headless with hostnames');
  t.same(eps('legacy'), ['198.19.2.40:8080'], 'legacy Endpoints converted');
  t.same(eps('search'), [], 'ExternalName has no endpoints');
  t.same(eps('kube-dns'), ['198.19.1.53:53/53/9153'], 'the cluster DNS service selects the kdp-dns pod');
  t.same(svcs.get('kube-dns')?.clusterIPs, ['10.96.0.10'], 'cluster DNS on the conventional address');

  const ing = src.view.list('Ingress');
  t.equal(ing.length, 1);
  const cls = src.view.list('IngressClass');
  t.match(cls, [{ meta: { name: 'kdp' }, controller: 'kdp.dev/ingress', isDefault: true }]);
  const [secret] = src.view.list('Secret');
  const cert = new X509Certificate(secret!.certPem);
  t.match(cert.subjectAltName, /DNS:shop\.example\.test/);
  t.ok(cert.checkPrivateKey(createPrivateKey(secret!.keyPem)), 'the key matches the certificate');
});

t.test('examples/cluster-2subnets is examples/cluster with node-2 on the second lab subnet', async (t) => {
  const { readFileSync, readdirSync } = await import('node:fs');
  const { planLab } = await import('../../../src/lab/plan.ts');
  const { vtepMac } = await import('../../../src/node/overlay.ts');
  const { mapNodes } = await import('../../../src/up/plan.ts');
  const two = fileURLToPath(new URL('../../../examples/cluster-2subnets', import.meta.url));
  const yaml = (d: string) => readdirSync(d).filter((f) => f.endsWith('.yaml'));
  t.same(yaml(two), yaml(dir), 'the same files');
  for (const f of yaml(dir))
    t.equal(
      readFileSync(`${two}/${f}`, 'utf8'),
      readFileSync(`${dir}/${f}`, 'utf8')
        .replaceAll('198.18.0.12', '198.18.1.12')
        .replaceAll(vtepMac(1, '198.18.0.12'), vtepMac(1, '198.18.1.12'))
        .replaceAll('"fd00:198:18::c"', '"fd00:198:18:1::c"')
        .replaceAll(vtepMac(1, 'fd00:198:18::c'), vtepMac(1, 'fd00:198:18:1::c')),
      `${f}: only node-2's addresses (and the VTEP MACs derived from them) differ`,
    );
  const src = new ManifestsSource({ dir: two, log: silentLogger });
  await src.start();
  t.teardown(() => src.stop());
  const lab2 = planLab('1-0001', 2, { subnets: 2 });
  t.same(
    [...mapNodes(src.view.list('Node'), lab2)],
    [
      ['node-1', 1],
      ['node-2', 2],
    ],
    'it follows the 2-subnet plan',
  );
  t.throws(
    () => mapNodes(src.view.list('Node'), planLab('1-0001', 2)),
    { code: 'KDP_UP_MANIFESTS' },
    'not the 1-subnet one',
  );
});
