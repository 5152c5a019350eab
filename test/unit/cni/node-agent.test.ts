// The host-gw node agent against a fake route table: desired routes, diffs, nothing before sync,
// coalesced syncs, retry after a failure.
import t from 'tap';
import { HostGwAgent, desiredRoutes, routeBatch } from '../../../src/cni/node-agent.ts';
import type { HostGwRoute, RouteTable } from '../../../src/cni/node-agent.ts';
import { makeNode } from '../../../src/cni/testing/fixtures.ts';
import { FakeSource } from '../../../src/k8s/testing/fake-source.ts';

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

t.test('agent: waits for sync, follows adds/updates/deletes, retries failures', async (t) => {
  const table = new FakeTable();
  const src = new FakeSource();
  const agent = new HostGwAgent({ nodeName: 'node-1', table, retryMs: 20 });
  src.subscribe(agent);
  src.put(n1);
  src.put(n2);
  t.equal(table.applied.length, 0, 'nothing before start');
  await src.start();
  await agent.idle();
  t.same(table.routes.map((r) => r.dst).sort(), ['10.244.2.0/24', 'fd00:2::/64']);
  src.put(n3);
  await agent.idle();
  t.ok(
    table.routes.some((r) => r.dst === '10.244.3.0/24'),
    'a new node gets a route',
  );
  src.put(makeNode('node-3', ['10.244.3.0/24'], ['192.168.0.33']));
  await agent.idle();
  t.same(
    table.routes.filter((r) => r.dst === '10.244.3.0/24'),
    [{ dst: '10.244.3.0/24', via: '192.168.0.33' }],
    'an address change moves the route',
  );
  src.remove('Node', 'node-2');
  table.failNext = 1;
  await agent.idle();
  t.ok(
    table.routes.some((r) => r.dst === '10.244.2.0/24'),
    'the failed sync changed nothing',
  );
  await new Promise((r) => setTimeout(r, 100));
  await agent.idle();
  t.notOk(
    table.routes.some((r) => r.dst.startsWith('10.244.2.')),
    'the retry removed the deleted node route',
  );
  agent.stop();
});
