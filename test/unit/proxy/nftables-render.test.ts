// nftables renderer: golden file of the full table, and diffs that take the kernel from one state to the
// next (checked by replaying scripts on an in-memory model of the nft objects we use).
import t from 'tap';
import { buildServicePorts } from '../../../src/proxy/model.ts';
import { diffScript, dumpState, fullScript, renderNft } from '../../../src/proxy/nftables/render.ts';
import type { NftState } from '../../../src/proxy/nftables/render.ts';
import { assertGolden } from './golden.ts';
import { FakeTable } from './fake-nft.ts';
import { goldenScenario, makeService, makeSlice } from './fixtures.ts';
import type { EndpointSlice, Service } from '../../../src/model/types.ts';

const CFG = { clusterCIDRs: ['198.19.0.0/16'] };
const EMPTY = { chains: new Set<string>(), sets: new Set<string>(), maps: new Set<string>() };

function render(services: Service[], slices: EndpointSlice[], node = 'node1'): NftState {
  const m = new Map<string, EndpointSlice[]>();
  for (const s of slices)
    m.set(`${s.meta.namespace}/${s.serviceName}`, [...(m.get(`${s.meta.namespace}/${s.serviceName}`) ?? []), s]);
  return renderNft(buildServicePorts(services, m, { nodeName: node, family: 'IPv4' }), 'ip', CFG);
}

t.test('golden: the full table of the scenario', async (t) => {
  const { services, slices } = goldenScenario();
  assertGolden(t, 'nftables-node1.nft', dumpState(render(services, slices)));
  assertGolden(t, 'nftables-node2.nft', dumpState(render(services, slices, 'node2')));
});

t.test('full script builds the table from nothing and reconciles an existing one', async (t) => {
  const { services, slices } = goldenScenario();
  const state = render(services, slices);
  const k = new FakeTable();
  k.apply(fullScript(state, EMPTY));
  t.equal(k.dump(), dumpState(state));
  // restart: a kernel with a stale chain and set from an old run
  k.apply([
    'add chain ip kdp service-OLD-x/y/tcp/p1',
    'add set ip kdp affinity-OLD { type ipv4_addr; }',
    'add rule ip kdp service-OLD-x/y/tcp/p1 ip saddr @affinity-OLD drop',
  ]);
  const existing = { chains: new Set(k.chains.keys()), sets: new Set(k.sets.keys()), maps: new Set(k.maps.keys()) };
  const script = fullScript(state, existing);
  t.notOk(
    script.some((l) => /^delete table|^flush table/.test(l)),
    'never flushes the table: no window without rules',
  );
  k.apply(script);
  t.equal(k.dump(), dumpState(state), 'stale objects removed, rest identical');
});

t.test('diffs: each step replays to the desired state; a one-service change sends only that service', async (t) => {
  const { services, slices } = goldenScenario();
  const k = new FakeTable();
  let prev = render(services, slices);
  k.apply(fullScript(prev, EMPTY));
  const steps: [string, Service[], EndpointSlice[]][] = [];
  // 1. an endpoint added to svc1
  const sl2 = slices.map((s) =>
    s.serviceName === 'svc1'
      ? makeSlice('ns1', 'svc1', [
          { ip: '198.19.1.10', node: 'node1' },
          { ip: '198.19.2.10', node: 'node2' },
          { ip: '198.19.2.20', node: 'node2' },
        ])
      : s,
  );
  steps.push(['endpoint added', services, sl2]);
  // 2. affinity switched on for svc1, then its timeout changed, then off
  const aff = (secs?: number) =>
    services.map((s) =>
      s.meta.name === 'svc1'
        ? makeService(
            'ns1',
            'svc1',
            (x) => (
              (x.clusterIPs = ['10.96.0.41']),
              secs ? ((x.sessionAffinity = 'ClientIP'), (x.sessionAffinityTimeoutSeconds = secs)) : undefined
            ),
          )
        : s,
    );
  steps.push(['affinity on', aff(30), sl2], ['affinity timeout changed', aff(60), sl2], ['affinity off', aff(), sl2]);
  // 3. all endpoints of web go away (reject), then come back
  const noWeb = sl2.filter((s) => s.serviceName !== 'web');
  steps.push(['web loses its endpoints', services, noWeb], ['web endpoints back', services, sl2]);
  // 4. a service deleted
  steps.push(['svc1 deleted', services.filter((s) => s.meta.name !== 'svc1'), sl2], ['everything deleted', [], []]);
  for (const [what, svcs, sls] of steps) {
    const next = render(svcs, sls);
    const diff = diffScript(prev, next);
    t.doesNotThrow(() => k.apply(diff), what);
    t.equal(k.dump(), dumpState(next), `${what}: kernel equals desired state`);
    prev = next;
  }
});

t.test('a change to one service of many touches only that service', async (t) => {
  const n = 300;
  const services = Array.from({ length: n }, (_, i) =>
    makeService('bulk', `s${i}`, (s) => void (s.clusterIPs = [`10.96.${i >> 8}.${i & 255}`])),
  );
  const slices = services.map((s, i) =>
    makeSlice('bulk', s.meta.name, [{ ip: `198.19.1.${(i % 250) + 1}` }, { ip: `198.19.2.${(i % 250) + 1}` }]),
  );
  const a = render(services, slices);
  const slices2 = slices.map((s, i) => (i === 7 ? makeSlice('bulk', 's7', [{ ip: '198.19.3.3' }]) : s));
  const diff = diffScript(a, render(services, slices2));
  t.ok(diff.length > 0 && diff.length < 12, `small diff (${diff.length} lines)`);
  const s7Hairpin = (l: string) =>
    /hairpin-endpoints \{ (198\.19\.1\.8 \. 198\.19\.1\.8|198\.19\.2\.8 \. 198\.19\.2\.8|198\.19\.3\.3 \. 198\.19\.3\.3)(, |$| \})/.test(
      l,
    );
  t.ok(
    diff.every((l) => l.includes('10.96.0.7 ') || s7Hairpin(l)),
    'every line is about bulk/s7',
    { found: diff },
  );
  t.same(
    diff.filter((l) => / chain /.test(l)),
    [],
    'a plain ClusterIP service has no chain of its own: only elements change',
    { found: diff },
  );
  const swapped = slices.map((s, i) =>
    i === 7 ? makeSlice('bulk', 's7', [{ ip: '198.19.3.3' }, { ip: '198.19.3.4' }]) : s,
  );
  const diff2 = diffScript(a, render(services, swapped));
  t.same(
    diff2.filter((l) => !/ element /.test(l)),
    [],
    'same endpoint count: only map and set elements change',
    { found: diff2 },
  );
  // a service with its own chain (affinity): a change of endpoint count refills that one chain
  const sticky = services.map((s, i) =>
    i === 7
      ? makeService(
          'bulk',
          's7',
          (x) => (
            (x.clusterIPs = ['10.96.0.7']),
            (x.sessionAffinity = 'ClientIP'),
            (x.sessionAffinityTimeoutSeconds = 30)
          ),
        )
      : s,
  );
  const diff3 = diffScript(render(sticky, slices), render(sticky, slices2));
  t.ok(
    diff3.every((l) => l.includes('bulk/s7/') || l.includes('10.96.0.7 ') || s7Hairpin(l)),
    'affinity service: every line is about bulk/s7',
    { found: diff3 },
  );
  t.same(diffScript(a, render(services, slices)), [], 'no change, nothing sent');
});
