// The manifests source on real files: edits, additions and deletions seen within 1 s; a broken file is
// reported with file:line and its last good state kept; Services with selectors get EndpointSlices from Pods.
// No root needed (files only), so no needsRoot gate.
import t from 'tap';
import { mkdtemp, rm, writeFile, rename, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestsSource } from '../../src/k8s/manifests-source.ts';
import type { Logger } from '../../src/common/log.ts';
import type { EndpointSlice, Service } from '../../src/model/types.ts';
import { listener } from '../helpers/watch.ts';

function recordingLogger(lines: Record<string, unknown>[]): Logger {
  const mk = (level: string) => (obj: object | string, msg?: string) =>
    lines.push({ level, ...(typeof obj === 'string' ? { msg: obj } : obj), ...(msg ? { msg } : {}) });
  const l: Logger = { debug: mk('debug'), info: mk('info'), warn: mk('warn'), error: mk('error'), child: () => l };
  return l;
}

async function until(cond: () => boolean, ms: number): Promise<number> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - t0;
}

const svcYaml = (port: number) => `apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.20
  selector: {app: web}
  ports: [{name: http, port: ${port}, targetPort: http}]
`;
const podYaml = (name: string, ip: string, ready = true) => `---
apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: shop, labels: {app: web}}
spec:
  nodeName: node-1
  containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]
status:
  phase: Running
  podIP: ${ip}
  conditions: [{type: Ready, status: "${ready ? 'True' : 'False'}"}]
`;

t.test('manifests source follows the directory', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kdp-manifests-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'web.yaml'), svcYaml(80) + podYaml('web-1', '198.19.1.5'));
  const logs: Record<string, unknown>[] = [];
  // a long poll interval: the 1 s bound must come from fs.watch; the poll is the fallback
  const src = new ManifestsSource({ dir, log: recordingLogger(logs), pollIntervalMs: 5000 });
  const services = new Map<string, Service>();
  const slices = new Map<string, EndpointSlice>();
  const events: string[] = [];
  const svcListener = listener(['Service'], {
    add: (s) => (services.set(s.meta.name, s), events.push(`add ${s.meta.name}`)),
    update: (o, s) => (services.set(s.meta.name, s), events.push(`update ${o.ports[0]?.port}->${s.ports[0]?.port}`)),
    delete: (s) => (services.delete(s.meta.name), events.push(`delete ${s.meta.name}`)),
    synced: () => events.push('synced'),
  });
  const sliceListener = listener(['EndpointSlice'], {
    add: (s) => slices.set(s.meta.name, s),
    update: (_o, s) => slices.set(s.meta.name, s),
    delete: (s) => slices.delete(s.meta.name),
  });
  src.watch(svcListener);
  src.watch(sliceListener);
  await src.start();
  t.teardown(() => src.stop());
  t.same(events, ['add web', 'synced']);
  const addrs = () =>
    [...slices.values()]
      .flatMap((s) => s.endpoints.filter((e) => e.conditions.ready).map((e) => `${e.addresses[0]}:${s.ports[0]?.port}`))
      .sort();
  t.same(addrs(), ['198.19.1.5:8080'], 'the controller computed the slice from the Pod');

  // an edit in place
  await writeFile(join(dir, 'web.yaml'), svcYaml(81) + podYaml('web-1', '198.19.1.5') + podYaml('web-2', '198.19.1.6'));
  const editMs = await until(() => services.get('web')?.ports[0]?.port === 81 && addrs().length === 2, 1000);
  t.ok(editMs < 1000, `edit seen in ${editMs.toFixed(0)} ms`);
  t.same(events.slice(2), ['update 80->81']);
  t.same(addrs(), ['198.19.1.5:8080', '198.19.1.6:8080']);

  // an atomic replace (how editors save): write a temp file, rename over
  await writeFile(
    join(dir, '.web.yaml.tmp'),
    svcYaml(82) + podYaml('web-1', '198.19.1.5', false) + podYaml('web-2', '198.19.1.6'),
  );
  await rename(join(dir, '.web.yaml.tmp'), join(dir, 'web.yaml'));
  const renameMs = await until(() => services.get('web')?.ports[0]?.port === 82, 1000);
  t.ok(renameMs < 1000, `rename-over seen in ${renameMs.toFixed(0)} ms`);
  await until(() => addrs().length === 1, 1000);
  t.same(addrs(), ['198.19.1.6:8080'], 'the not-ready pod is no longer ready');

  // an addition with kind: List and a legacy Endpoints
  await writeFile(
    join(dir, 'more.yml'),
    `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: legacy, namespace: shop}
  spec: {clusterIP: 10.96.0.21, ports: [{port: 53, protocol: UDP}]}
- apiVersion: v1
  kind: Endpoints
  metadata: {name: legacy, namespace: shop}
  subsets: [{addresses: [{ip: 192.0.2.53}], ports: [{port: 53, protocol: UDP}]}]
`,
  );
  const addMs = await until(() => services.has('legacy') && slices.has('legacy-legacy-0-v4'), 1000);
  t.ok(addMs < 1000, `addition seen in ${addMs.toFixed(0)} ms`);

  // a broken edit: reported with file:line, last good state kept
  await writeFile(
    join(dir, 'more.yml'),
    'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n   metadata: {name: legacy}\n',
  );
  await until(() => logs.some((l) => l.code === 'KDP_K8S_MANIFEST'), 1000);
  const report = logs.find((l) => l.code === 'KDP_K8S_MANIFEST')!;
  t.equal(report.where, 'more.yml:5', `reported at file:line (${String(report.msg)})`);
  await new Promise((r) => setTimeout(r, 100));
  t.ok(services.has('legacy') && slices.has('legacy-legacy-0-v4'), 'the last good state of the broken file is kept');

  // an invalid object: skipped with file:line, the rest of the file applies
  await writeFile(
    join(dir, 'more.yml'),
    `apiVersion: v1
kind: Service
metadata: {name: bad, namespace: shop}
spec: {clusterIP: 10.96.0.300}
---
apiVersion: v1
kind: Service
metadata: {name: good, namespace: shop}
spec: {clusterIP: 10.96.0.22}
`,
  );
  await until(() => services.has('good') && !services.has('legacy'), 1000);
  t.notOk(services.has('bad'));
  t.ok(
    logs.some((l) => l.code === 'KDP_K8S_INVALID_OBJECT' && l.where === 'more.yml:1'),
    'invalid object reported with file:line',
  );

  // a deletion
  await unlink(join(dir, 'more.yml'));
  const delMs = await until(() => !services.has('good'), 1000);
  t.ok(delMs < 1000, `deletion seen in ${delMs.toFixed(0)} ms`);
  t.ok(events.includes('delete good'));
  t.same([...svcListener.malformed, ...sliceListener.malformed], [], 'every call names its kind and key');
});

t.test('the poll fallback alone also meets 1 s', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kdp-manifests-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'a.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: one}\n');
  const src = new ManifestsSource({ dir, log: recordingLogger([]), pollIntervalMs: 500 });
  const names = new Set<string>();
  const nsListener = listener(['Namespace'], {
    add: (n) => names.add(n.meta.name),
    delete: (n) => names.delete(n.meta.name),
  });
  src.watch(nsListener);
  await src.start();
  t.teardown(() => src.stop());
  t.same([...names], ['one']);
  // a change that fs.watch may not report (a subdirectory created later, then a file in it) must still arrive
  const { mkdir } = await import('node:fs/promises');
  await mkdir(join(dir, 'sub'));
  await writeFile(join(dir, 'sub', 'b.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: two}\n');
  const ms = await until(() => names.has('two'), 1000);
  t.ok(ms < 1000, `seen in ${ms.toFixed(0)} ms`);
  t.same(nsListener.malformed, []);
});

t.test('a missing directory is a KDP_K8S_MANIFEST error', async (t) => {
  const src = new ManifestsSource({ dir: join(tmpdir(), 'kdp-no-such-dir-xyz'), log: recordingLogger([]) });
  await t.rejects(src.start(), { code: 'KDP_K8S_MANIFEST' });
});
