// Parsing one manifest file: multi-document, kind: List, file:line for broken files and skipped objects.
import t from 'tap';
import { parseManifest } from '../../../src/k8s/manifests-source.ts';

t.test('parse results as a table', async (t) => {
  const cases: { name: string; text: string; want: unknown }[] = [
    { name: 'empty file', text: '', want: { ok: true, kinds: [], skipped: [] } },
    { name: 'comments only', text: '# nothing\n', want: { ok: true, kinds: [], skipped: [] } },
    {
      name: 'multi-document with lines',
      text: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n# c\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n',
      want: { ok: true, kinds: ['Namespace a @1', 'Namespace b @6'], skipped: [] },
    },
    {
      name: 'kind: List items keep their own lines',
      text: 'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: b}\n',
      want: { ok: true, kinds: ['Namespace a @4', 'Namespace b @7'], skipped: [] },
    },
    {
      name: 'invalid object skipped with its line, the rest kept',
      text: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: 10.0.0.1, ports: [{port: 99999}]}\n',
      want: {
        ok: true,
        kinds: ['Namespace a @1'],
        skipped: [{ line: 5, reason: /Service s: spec.ports\[0\].port 99999 is out of range/ }],
      },
    },
    {
      name: 'non-mapping document',
      text: '- a\n- b\n',
      want: { ok: true, kinds: [], skipped: [{ line: 1, reason: /mapping/ }] },
    },
    {
      name: 'unused kinds are ignored',
      text: 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n',
      want: { ok: true, kinds: [], skipped: [] },
    },
    {
      name: 'broken YAML reports the line',
      text: 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [a\n',
      want: { ok: false, line: 5 },
    },
    {
      name: 'bad indentation',
      text: 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n labels: x\n',
      want: { ok: false, line: 5 },
    },
  ];
  for (const c of cases) {
    const r = parseManifest(c.text);
    if (r.ok)
      t.match(
        { ok: true, kinds: r.objects.map((o) => `${o.obj.kind} ${o.obj.meta.name} @${o.line}`), skipped: r.skipped },
        c.want,
        c.name,
      );
    else t.match({ ok: false, line: r.line }, c.want, `${c.name}: ${r.reason}`);
    if (r.ok) t.equal(r.objects.length, (c.want as { kinds: unknown[] }).kinds.length, `${c.name}: count`);
  }
});
