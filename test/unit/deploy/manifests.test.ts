// Offline validation of everything under deploy/: every document is checked against the Kubernetes
// OpenAPI schema (kubernetes-models' generated validators: types, required fields, enums) and for unknown
// fields (walked against @kubernetes/client-node's generated model maps), then against kdp's own invariants.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import * as k8s from '@kubernetes/client-node';
import { COMMANDS } from '../../../src/cli/main.ts';

const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url));

interface Doc {
  file: string;
  obj: Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } };
}

function loadDocs(): Doc[] {
  const docs: Doc[] = [];
  for (const file of readdirSync(DEPLOY)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    for (const d of parseAllDocuments(readFileSync(join(DEPLOY, file), 'utf8'))) {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0]?.message}`);
      const obj = d.toJS();
      if (obj) docs.push({ file, obj });
    }
  }
  return docs;
}

/** kubernetes-models module path and class for apiVersion/kind. */
async function validator(apiVersion: string, kind: string): Promise<(o: unknown) => void> {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const path = group === '' ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${group}/${version}/${kind}`;
  const mod = (await import(path)) as Record<string, new (o: unknown) => { validate(): void }>;
  const Cls = mod[kind];
  if (!Cls) throw new Error(`no schema for ${apiVersion} ${kind}`);
  return (o) => new Cls(o).validate();
}

type AttrMap = { baseName: string; type: string }[];
const models = k8s as unknown as Record<string, { getAttributeTypeMap?: () => AttrMap }>;

/** Unknown fields, as JSON paths. */
function unknownFields(value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return;
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, arr[1] as string, `${path}[${i}]`, out));
    return;
  }
  const map = models[type]?.getAttributeTypeMap?.();
  if (!map || typeof value !== 'object') return; // primitives, maps, IntOrString, Quantity
  for (const [k, v] of Object.entries(value)) {
    const attr = map.find((a) => a.baseName === k);
    if (!attr) out.push(`${path}.${k}`);
    else unknownFields(v, attr.type, `${path}.${k}`, out);
  }
}

const docs = loadDocs();

t.test('every manifest is valid against the Kubernetes schema, with no unknown field', async (t) => {
  t.ok(docs.length >= 10, `${docs.length} documents`);
  for (const { file, obj } of docs) {
    const what = `${file}: ${obj.kind} ${obj.metadata?.name}`;
    const validate = await validator(obj.apiVersion, obj.kind);
    t.doesNotThrow(() => validate(obj), `${what} matches the schema`);
    const unknown: string[] = [];
    unknownFields(obj, `V1${obj.kind}`, '', unknown);
    t.same(unknown, [], `${what} has no unknown fields`);
  }
});

t.test('the validators catch what they should (the test can fail)', async (t) => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const ds = structuredClone(docs.find((d) => d.obj.kind === 'DaemonSet')!.obj) as Record<string, any>;
  ds.spec.template.spec.containers[0].imagePullPolicy = 7;
  await t.rejects(validator('apps/v1', 'DaemonSet').then((v) => v(ds)));
  const unknown: string[] = [];
  unknownFields(
    { spec: { template: { spec: { containers: [{ name: 'a', imagePullPolicyy: 'Always' }] } } } },
    'V1DaemonSet',
    '',
    unknown,
  );
  t.same(unknown, ['.spec.template.spec.containers[0].imagePullPolicyy']);
});

t.test('kdp invariants: namespaces, service accounts, images, commands, DNS address, least privilege', async (t) => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const byKind = (k: string) => docs.filter((d) => d.obj.kind === k).map((d) => d.obj as Record<string, any>);
  const namespaced = docs.filter(
    (d) => !['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'IngressClass'].includes(d.obj.kind),
  );
  for (const d of namespaced)
    t.equal(d.obj.metadata.namespace, 'kdp-system', `${d.obj.kind} ${d.obj.metadata.name} in kdp-system`);
  const sas = new Set(byKind('ServiceAccount').map((s) => s.metadata.name));
  const commands = new Set(COMMANDS.map((c) => c.name));
  for (const w of [...byKind('DaemonSet'), ...byKind('Deployment')]) {
    const spec = w.spec.template.spec;
    t.ok(sas.has(spec.serviceAccountName), `${w.metadata.name} runs as a ServiceAccount that exists`);
    t.same(
      w.spec.selector.matchLabels,
      Object.fromEntries(
        Object.entries(w.spec.template.metadata.labels).filter(([k]) => k in w.spec.selector.matchLabels),
      ),
      `${w.metadata.name} selector matches its pods`,
    );
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      t.match(c.image, /^kdp\/kdp:\d+\.\d+\.\d+$/, `${w.metadata.name}/${c.name} image`);
      t.ok(commands.has(c.args[0]), `${w.metadata.name}/${c.name} runs an existing kdp command (${c.args[0]})`);
    }
  }
  const dnsSvc = byKind('Service').find((s) => s.metadata.name === 'kdp-dns');
  t.equal(dnsSvc?.spec.clusterIP, '10.96.0.10', 'DNS on 10.96.0.10');
  for (const role of byKind('ClusterRole')) {
    for (const rule of role.rules) {
      t.notOk(rule.verbs.includes('*') || rule.resources.includes('*'), `${role.metadata.name}: no wildcards`);
      const writes = rule.verbs.filter((v: string) => !['get', 'list', 'watch'].includes(v));
      // the only writes: Ingress and Gateway API status (ingress controller), Node annotations (node agent's VTEP,
      // --backend vxlan|auto)
      const allowed: Record<string, { resources: string[]; verbs: string[] }[]> = {
        'kdp-ingress': [
          { resources: ['ingresses/status'], verbs: ['update', 'patch'] },
          {
            resources: ['gatewayclasses/status', 'gateways/status', 'httproutes/status', 'grpcroutes/status'],
            verbs: ['patch'],
          },
        ],
        'kdp-node': [{ resources: ['nodes'], verbs: ['patch'] }],
      };
      if (writes.length)
        t.ok(
          (allowed[role.metadata.name] ?? []).some(
            (a) => JSON.stringify(a) === JSON.stringify({ resources: rule.resources, verbs: writes }),
          ),
          `${role.metadata.name}: writes only ${JSON.stringify(allowed[role.metadata.name])}`,
        );
      t.notOk(
        rule.resources.includes('secrets') && role.metadata.name !== 'kdp-ingress',
        `${role.metadata.name}: only the ingress reads Secrets`,
      );
    }
  }
  const ing = byKind('IngressClass')[0];
  t.equal(ing?.spec.controller, 'kdp.dev/ingress', 'IngressClass names our controller');
});

t.test('the Dockerfile builds on Node 24 and copies what bin/kdp needs', async (t) => {
  const df = readFileSync(fileURLToPath(new URL('../../../Dockerfile', import.meta.url)), 'utf8');
  const froms = [...df.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  t.ok(froms.length > 0 && froms.every((f) => /^node:24[-.]/.test(f as string)), `base images ${froms.join(', ')}`);
  for (const p of ['bin', 'src', 'ingress']) t.match(df, new RegExp(`^COPY ${p} `, 'm'), `copies ${p}/`);
  t.match(df, /ENTRYPOINT \["\/app\/bin\/kdp"\]/);
});
