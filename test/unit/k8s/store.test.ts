// The shared store: (previous, current) on update, no-op updates dropped, no duplicate adds, replace diffs,
// synced once; what its listeners are told.
import t from 'tap';
import { Store, sameObject } from '../../../src/k8s/store.ts';
import { silentLogger } from '../../../src/common/log.ts';
import { listener } from '../../helpers/watch.ts';
import type { RecordingListener } from '../../helpers/watch.ts';
import type { Namespace, Node } from '../../../src/model/types.ts';

const ns = (name: string, rv: string, labels: Record<string, string> = {}): Namespace => ({
  kind: 'Namespace',
  meta: { namespace: '', name, uid: name, resourceVersion: rv, labels, annotations: {} },
});

function recorder(): { calls: string[]; l: RecordingListener } {
  const calls: string[] = [];
  return {
    calls,
    l: listener(['Namespace'], {
      add: (n) => calls.push(`add ${n.meta.name}@${n.meta.resourceVersion}`),
      update: (o, n) => calls.push(`update ${o.meta.name}@${o.meta.resourceVersion}->${n.meta.resourceVersion}`),
      delete: (n) => calls.push(`delete ${n.meta.name}@${n.meta.resourceVersion}`),
      synced: () => calls.push('synced'),
    }),
  };
}

t.test('events as a table', async (t) => {
  const cases: { name: string; steps: (s: Store) => void; want: string[] }[] = [
    {
      name: 'add then update gives (previous, current)',
      steps: (s) => (s.upsert(ns('a', '1')), s.upsert(ns('a', '2', { x: 'y' }))),
      want: ['add a@1', 'update a@1->2'],
    },
    {
      name: 'resourceVersion-only change is dropped',
      steps: (s) => (s.upsert(ns('a', '1')), s.upsert(ns('a', '2'))),
      want: ['add a@1'],
    },
    { name: 'delete of an unknown key is nothing', steps: (s) => s.remove('Namespace', 'zz'), want: [] },
    {
      name: 'delete gives the last state',
      steps: (s) => (s.upsert(ns('a', '1')), s.upsert(ns('a', '3', { v: '2' })), s.remove('Namespace', 'a')),
      want: ['add a@1', 'update a@1->3', 'delete a@3'],
    },
    {
      name: 'replace diffs against what is held, synced once',
      steps: (s) => {
        s.replace('Namespace', [ns('a', '1'), ns('b', '1')]);
        s.replace('Namespace', [ns('b', '2', { l: '1' }), ns('c', '2')]);
      },
      want: ['add a@1', 'add b@1', 'synced', 'delete a@1', 'update b@1->2', 'add c@2'],
    },
    {
      name: 'stop silences everything',
      steps: (s) => (s.stop(), s.upsert(ns('a', '1')), s.markSynced('Namespace')),
      want: [],
    },
  ];
  for (const c of cases) {
    const s = new Store({ log: silentLogger });
    const r = recorder();
    s.watch(r.l);
    c.steps(s);
    t.same(r.calls, c.want, c.name);
    t.same(r.l.malformed, [], `${c.name}: every call names its kind and key`);
  }
});

t.test('kinds no listener declared are not wanted; throwing listeners do not starve others', async (t) => {
  const s = new Store({ log: silentLogger });
  const r = recorder();
  t.same(s.wantedKinds(), []);
  const unsub = s.watch(
    listener(['Namespace'], {
      add: () => {
        throw new Error('boom');
      },
    }),
  );
  s.watch(r.l);
  s.watch(listener(['Node'], { synced: () => {} }));
  t.same(s.wantedKinds(), ['Node', 'Namespace']);
  s.upsert(ns('a', '1'));
  t.same(r.calls, ['add a@1']);
  unsub();
  t.same(s.wantedKinds(), ['Node', 'Namespace']);
});

t.test('sameObject ignores resourceVersion and undefined fields only', async (t) => {
  const n1: Node = { kind: 'Node', meta: ns('n', '1').meta, podCIDRs: ['198.19.1.0/24'], addresses: [], ready: true };
  t.ok(sameObject(n1, { ...n1, meta: { ...n1.meta, resourceVersion: '9' } }));
  t.notOk(sameObject(n1, { ...n1, ready: false }));
  t.notOk(sameObject(n1, { ...n1, podCIDRs: ['198.19.2.0/24'] }));
  t.ok(sameObject(n1, { ...n1, meta: { ...n1.meta, deletionTimestamp: undefined } }));
});
