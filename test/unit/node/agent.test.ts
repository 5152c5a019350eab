// The host-gw node agent against a fake route table: desired routes, diffs, nothing before sync,
// on the controller kernel's harness (fake source, fake clock): retry with backoff after a failure.
import t from 'tap';
import { HostGwAgent, desiredRoutes, routeBatch } from '../../../src/node/agent.ts';
import type { HostGwRoute, RouteTable } from '../../../src/node/agent.ts';
import { makeNode } from '../../../src/cni/testing/fixtures.ts';
import { attemptTimes, harness } from '../../../src/k8s/testing/harness.ts';

class FakeTable implements RouteTable {
  routes: HostGwRoute[] = [];
  applied: string[][] = [];
  failNext = 0;
  async list() {
    return [...this.routes];
  }
  async apply(lines: readonly string[]) {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('RTNETLINK answers: Network is unreachable');
    }
    this.applied.push([...lines]);
    for (const l of lines) {
      const [verb, , dst, , via] = l.split(' ');
      if (verb === 'route' && l.includes(' del '))
        this.routes = this.routes.filter((r) => !(r.dst === l.split(' ')[2] && r.via === l.split(' ')[4]));
      else if (dst && via) this.routes.push({ dst, via });
    }
  }
}

const n1 = makeNode('node-1', ['10.244.1.0/24', 'fd00:1::/64'], ['192.168.0.11', 'fd00::11']);
const n2 = makeNode('node-2', ['10.244.2.0/24', 'fd00:2::/64'], ['192.168.0.12', 'fd00::12']);
const n3 = makeNode('node-3', ['10.244.3.0/24'], ['192.168.0.13']);

t.test('desired routes: other nodes only, per family, sorted', async (t) => {
  t.same(desiredRoutes('node-1', [n1, n2, n3]), [
    { dst: '10.244.2.0/24', via: '192.168.0.12' },
    { dst: '10.244.3.0/24', via: '192.168.0.13' },
    { dst: 'fd00:2::/64', via: 'fd00::12' },
  ]);
  t.same(
    desiredRoutes('node-1', [makeNode('x', ['10.1.0.0/24'], ['fd00::9'])]),
    [],
    'no InternalIP of the family: no route',
  );
  t.same(
    routeBatch(
      [
        { dst: '10.244.9.0/24', via: '192.168.0.19' },
        { dst: '10.244.2.0/24', via: '192.168.0.12' },
      ],
      [
        { dst: '10.244.2.0/24', via: '192.168.0.12' },
        { dst: '10.244.3.0/24', via: '192.168.0.13' },
      ],
    ),
    ['route del 10.244.9.0/24 via 192.168.0.19 proto 199', 'route replace 10.244.3.0/24 via 192.168.0.13 proto 199'],
  );
});

t.test('agent on the kernel: waits for sync, follows adds/updates/deletes', async (t) => {
  const table = new FakeTable();
  const h = harness();
  const agent = new HostGwAgent({ nodeName: 'node-1', table });
  const c = h.controller(agent);
  h.source.put(n1);
  h.source.put(n2);
  await h.clock.advance(10);
  t.equal(table.applied.length, 0, 'nothing before start');
  await h.source.start();
  await h.clock.advance(1);
  t.same(table.routes.map((r) => r.dst).sort(), ['10.244.2.0/24', 'fd00:2::/64']);
  h.source.put(n3);
  await h.clock.advance(1);
  t.ok(
    table.routes.some((r) => r.dst === '10.244.3.0/24'),
    'a new node gets a route',
  );
  h.source.put(makeNode('node-3', ['10.244.3.0/24'], ['192.168.0.33']));
  await h.clock.advance(1);
  t.same(
    table.routes.filter((r) => r.dst === '10.244.3.0/24'),
    [{ dst: '10.244.3.0/24', via: '192.168.0.33' }],
    'an address change moves the route',
  );
  await c.stop();
});

t.test('agent on the kernel: a failed apply changes nothing and is retried with backoff', async (t) => {
  const table = new FakeTable();
  const h = harness();
  const agent = new HostGwAgent({ nodeName: 'node-1', table });
  const c = h.controller(agent, { retryMinMs: 1000, retryMaxMs: 10_000 });
  h.source.put(n1);
  h.source.put(n2);
  await h.source.start();
  await h.clock.advance(1);
  let attempts = 0;
  const apply = table.apply.bind(table);
  table.apply = async (lines) => {
    attempts++;
    return apply(lines);
  };
  table.failNext = 3;
  h.source.remove('Node', 'node-2');
  const times = await attemptTimes(h, () => attempts, 10_000);
  t.same(
    times.slice(1).map((x, i) => Math.round((x - times[i]!) / 100) * 100),
    [1000, 2000, 4000],
    'retried after 1, 2 and 4 s',
  );
  t.notOk(
    table.routes.some((r) => r.dst.startsWith('10.244.2.')),
    'the fourth attempt removed the deleted node route',
  );
  t.equal(c.status().failuresTotal, 3);
  t.equal(c.status().failures, 0);
  await c.stop();
});
