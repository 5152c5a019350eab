// The controller kernel on the harness: gating on the declared kinds, merged changes, coalescing, min
// interval, retry with backoff as a full reconcile carrying the failed changes, resync, status and metrics.
import t from 'tap';
import { Registry } from 'prom-client';
import { indexOn } from '../../../src/k8s/controller.ts';
import type { Change, Reconciler } from '../../../src/k8s/controller.ts';
import { attemptTimes, harness } from '../../../src/k8s/testing/harness.ts';
import type { StoreView } from '../../../src/k8s/store.ts';
import { testMeta, testService } from '../../../src/model/testing/builders.ts';
import type { EndpointSlice, Service } from '../../../src/model/types.ts';

const service = (o: { name: string; ports?: { port: number }[] }): Service =>
  testService('default', o.name, {
    ...(o.ports
      ? { ports: o.ports.map((p) => ({ name: '', protocol: 'TCP', port: p.port, targetPort: p.port })) }
      : {}),
  });
const endpointSlice = (o: { name: string; service: string; endpoints: EndpointSlice['endpoints'] }): EndpointSlice => ({
  kind: 'EndpointSlice',
  meta: testMeta('default', o.name),
  serviceName: o.service,
  addressType: 'IPv4',
  endpoints: o.endpoints,
  ports: [],
});

interface Call {
  changes: string[];
  full: boolean;
  services: number;
}

function recorder(kinds: Reconciler['kinds'], fail: () => boolean = () => false) {
  const calls: Call[] = [];
  const r: Reconciler = {
    name: 'test',
    kinds,
    reconcile(view: StoreView, changes: readonly Change[], full: boolean) {
      calls.push({
        changes: changes.map((c) => `${c.kind} ${c.key} ${c.previous ? 'p' : '-'}${c.current ? 'c' : '-'}`).sort(),
        full,
        services: view.list('Service').length,
      });
      if (fail()) throw new Error('adapter down');
    },
  };
  return { r, calls };
}

t.test('no reconcile before every declared kind has synced; the first one is full with the initial list', async (t) => {
  const h = harness();
  h.source.put(service({ name: 'a' }));
  const { r, calls } = recorder(['Service', 'EndpointSlice']);
  const c = h.controller(r);
  h.source.syncKinds(['Service']);
  await h.clock.advance(100);
  t.same(calls, [], 'EndpointSlices not listed yet: nothing runs');
  t.equal(c.synced, false);
  h.source.syncKinds(['EndpointSlice']);
  await h.clock.advance(1);
  t.same(calls, [{ changes: ['Service default/a -c'], full: true, services: 1 }]);
  t.equal(c.synced, true);
  await c.stop();
});

t.test('kinds it did not declare neither gate it nor reach it', async (t) => {
  const h = harness();
  const { r, calls } = recorder(['Service']);
  const c = h.controller(r);
  h.source.syncKinds(['Service']);
  await h.clock.advance(1);
  h.source.syncKinds(['EndpointSlice']);
  h.source.put(
    endpointSlice({
      name: 's-1',
      service: 's',
      endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true, serving: true, terminating: false } }],
    }),
  );
  await h.clock.advance(10);
  t.equal(calls.length, 1);
  await c.stop();
});

t.test('repeated changes of one key merge (previous kept, current latest); add+delete vanishes', async (t) => {
  const h = harness();
  const { r, calls } = recorder(['Service']);
  const c = h.controller(r, { minIntervalMs: 1000 });
  h.source.put(service({ name: 'keep' }));
  await h.source.start();
  await h.clock.advance(1);
  h.source.put(service({ name: 'keep', ports: [{ port: 81 }] }));
  h.source.put(service({ name: 'keep', ports: [{ port: 82 }] }));
  h.source.put(service({ name: 'gone' }));
  h.source.remove('Service', 'default/gone');
  h.source.put(service({ name: 'back', ports: [{ port: 1 }] }));
  await h.clock.advance(2000);
  t.equal(calls.length, 2, 'one reconcile for the whole burst');
  t.same(calls[1], { changes: ['Service default/back -c', 'Service default/keep pc'], full: false, services: 2 });
  await c.stop();
});

t.test('a change back to what the consumer last saw is dropped', async (t) => {
  const h = harness();
  const { r, calls } = recorder(['Service']);
  const c = h.controller(r, { minIntervalMs: 1000 });
  h.source.put(service({ name: 'a' }));
  await h.source.start();
  await h.clock.advance(1);
  h.source.put(service({ name: 'a', ports: [{ port: 81 }] }));
  h.source.put(service({ name: 'a' }));
  await h.clock.advance(2000);
  t.equal(calls.length, 1, 'nothing to reconcile');
  t.equal(c.status().pending, 0);
  await c.stop();
});

t.test('min interval between reconciles; one at a time', async (t) => {
  const h = harness();
  const { r, calls } = recorder(['Service']);
  const c = h.controller(r, { minIntervalMs: 500 });
  await h.source.start();
  await h.clock.advance(1);
  for (let i = 0; i < 7; i++) {
    h.source.put(service({ name: `s${i}` }));
    await h.clock.advance(100);
  }
  await h.clock.advance(1000);
  // changes at 1, 101 .. 601: the initial run at 0, then at 500 (five changes) and at 1000 (two)
  t.same(
    calls.map((c) => c.changes.length),
    [0, 5, 2],
    'three reconciles for seven changes, 500 ms apart',
  );
  await c.stop();
});

t.test('a throw is retried with backoff (1, 2, 4 s), in full, carrying the failed changes', async (t) => {
  const h = harness();
  let failing = 0;
  const { r, calls } = recorder(['Service'], () => failing-- > 0);
  const reg = new Registry();
  const c = h.controller(r, { retryMinMs: 1000, retryMaxMs: 30_000, registry: reg });
  await h.source.start();
  await h.clock.advance(1);
  t.equal(calls.length, 1);
  failing = 3;
  h.source.put(service({ name: 'x' }));
  const times = await attemptTimes(h, () => calls.length, 10_000);
  const gaps = times.slice(1).map((x, i) => Math.round((x - times[i]!) / 100) * 100);
  t.same(gaps, [1000, 2000, 4000], 'the change fails at once, then retries after 1 s, 2 s, 4 s');
  t.ok(calls.slice(2).every((x) => x.full) && !calls[1]!.full, 'retries are full');
  t.same(calls.at(-1)!.changes, ['Service default/x -c'], 'the change that failed is still handed over');
  t.equal(c.status().failures, 0);
  t.equal(c.status().failuresTotal, 3);
  t.equal(c.status().syncs, 2, 'the initial reconcile and the last retry');
  const text = await reg.metrics();
  t.match(text, /controller_runtime_reconcile_total\{controller="test",result="error"\} 3/);
  t.match(text, /controller_runtime_reconcile_total\{controller="test",result="success"\} 2/);
  t.match(text, /controller_runtime_reconcile_errors_total\{controller="test"\} 3/);
  t.match(text, /workqueue_retries_total\{name="test"\} 3/);
  t.match(text, /controller_runtime_reconcile_time_seconds_count\{controller="test"\} 2/);
  await c.stop();
});

t.test('a change arriving during a failing reconcile merges with the failed one', async (t) => {
  const h = harness();
  let n = 0;
  const calls: (readonly Change[])[] = [];
  const r: Reconciler = {
    name: 'merge',
    kinds: ['Service'],
    reconcile(_v, changes) {
      calls.push(changes);
      if (++n === 2) {
        h.source.put(service({ name: 'x', ports: [{ port: 99 }] }));
        throw new Error('fail once');
      }
    },
  };
  const c = h.controller(r);
  await h.source.start();
  await h.clock.advance(1);
  h.source.put(service({ name: 'x' }));
  await h.clock.advance(5000);
  const last = calls.at(-1)!;
  t.equal(last.length, 1);
  t.equal(last[0]!.previous, undefined, 'previous is still "new to the consumer"');
  t.equal((last[0]!.current as Service).ports[0]!.port, 99, 'current is the latest');
  await c.stop();
});

t.test('requestFull and periodic resync reconcile in full with no change', async (t) => {
  const h = harness();
  const { r, calls } = recorder(['Service']);
  const c = h.controller(r, { resyncMs: 10_000 });
  await h.source.start();
  await h.clock.advance(1);
  c.requestFull();
  await h.clock.advance(1);
  t.same(
    calls.map((x) => x.full),
    [true, true],
  );
  await h.clock.advance(10_000);
  t.same(
    calls.map((x) => x.full),
    [true, true, true],
    'resync',
  );
  await c.stop();
});

t.test('settled waits for the sync and the reconcile; status reports', async (t) => {
  const h = harness();
  const { r } = recorder(['Service']);
  const c = h.controller(r);
  let done = false;
  const p = c.settled().then(() => (done = true));
  await h.clock.advance(10);
  t.equal(done, false, 'not synced yet');
  await h.source.start();
  await h.clock.advance(1);
  await p;
  t.equal(done, true);
  const s = c.status();
  t.equal(s.synced, true);
  t.equal(s.syncs, 1);
  t.equal(s.name, 'test');
  t.ok(s.lastSuccess);
  await c.stop();
});

t.test('indexes declared by a reconciler are shared through the view', async (t) => {
  const h = harness();
  let seen: string[] = [];
  const r: Reconciler = {
    name: 'idx',
    kinds: ['EndpointSlice'],
    indexes: [indexOn('EndpointSlice', 'service', (s) => [`${s.meta.namespace}/${s.serviceName}`])],
    reconcile(view) {
      seen = view.byIndex('EndpointSlice', 'service', 'default/web').map((s) => s.meta.name);
    },
  };
  const c = h.controller(r);
  h.source.put(endpointSlice({ name: 'web-1', service: 'web', endpoints: [] }));
  h.source.put(endpointSlice({ name: 'db-1', service: 'db', endpoints: [] }));
  await h.source.start();
  await h.clock.advance(1);
  t.same(seen, ['web-1']);
  h.source.put(endpointSlice({ name: 'web-1', service: 'db', endpoints: [] }));
  await h.clock.advance(1);
  t.same(seen, [], 're-indexed on update');
  await c.stop();
});
