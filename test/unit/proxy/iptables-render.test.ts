// iptables renderer: golden restore text, partial syncs that rewrite only changed services, stale chains.
import t from 'tap';
import { buildServicePorts } from '../../../src/proxy/model.ts';
import { parseSaveChains, renderIptables, restoreText, svcChains } from '../../../src/proxy/iptables/render.ts';
import type { IptState } from '../../../src/proxy/iptables/render.ts';
import type { EndpointSlice, Service } from '../../../src/model/types.ts';
import { assertGolden } from './golden.ts';
import { goldenScenario, makeService, makeSlice } from './fixtures.ts';

const CFG = { clusterCIDRs: ['198.19.0.0/16'] };

function render(services: Service[], slices: EndpointSlice[], node = 'node1'): IptState {
  const m = new Map<string, EndpointSlice[]>();
  for (const s of slices)
    m.set(`${s.meta.namespace}/${s.serviceName}`, [...(m.get(`${s.meta.namespace}/${s.serviceName}`) ?? []), s]);
  return renderIptables(buildServicePorts(services, m, { nodeName: node, family: 'IPv4' }), 'ipv4', CFG);
}

const chainsOf = (s: IptState) => new Map([...s.tables].map(([t, c]) => [t, new Set(c.keys())]));

t.test('golden: full restore of the scenario', async (t) => {
  const { services, slices } = goldenScenario();
  const empty = new Map<string, Set<string>>();
  assertGolden(
    t,
    'iptables-node1.txt',
    restoreText(render(services, slices), { full: true, changed: new Set(), existing: empty }),
  );
  assertGolden(
    t,
    'iptables-node2.txt',
    restoreText(render(services, slices, 'node2'), { full: true, changed: new Set(), existing: empty }),
  );
});

t.test('chain names follow kube-proxy hashing and fit the 28-character limit', async (t) => {
  const { services, slices } = goldenScenario();
  const state = render(services, slices);
  for (const [, chains] of state.tables)
    for (const name of chains.keys()) t.ok(name.length <= 28 && name.startsWith('KDP-'), name);
  const m = new Map([['ns1/svc1', [slices[0]!]]]);
  const sp = buildServicePorts([services[0]!], m, { nodeName: 'node1', family: 'IPv4' })[0]!;
  t.equal(svcChains(sp).svc, 'KDP-SVC-XPGD46QRK7WJZT7O');
});

t.test('partial sync: only changed services are rewritten; stale chains deleted', async (t) => {
  const { services, slices } = goldenScenario();
  const before = render(services, slices);
  const existing = chainsOf(before);
  // web loses an endpoint; svc1 deleted
  const slices2 = slices
    .map((s) =>
      s.serviceName === 'web'
        ? makeSlice('ns2', 'web', [{ ip: '198.19.1.11', node: 'node1' }], [{ name: 'http', port: 8080 }])
        : s,
    )
    .filter((s) => s.serviceName !== 'svc1');
  const services2 = services.filter((s) => s.meta.name !== 'svc1');
  const text = restoreText(render(services2, slices2), {
    full: false,
    changed: new Set(['ns2/web', 'ns1/svc1']),
    existing,
  });
  const lines = text.split('\n');
  const declared = lines.filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]);
  t.ok(
    declared.includes('KDP-SVC-XPGD46QRK7WJZT7O') && lines.includes('-X KDP-SVC-XPGD46QRK7WJZT7O'),
    'deleted service chain flushed and removed',
  );
  const localSvc = svcChains(
    buildServicePorts(
      [services.find((s) => s.meta.name === 'local')!],
      new Map([['ns2/local', [slices.find((s) => s.serviceName === 'local')!]]]),
      { nodeName: 'node1', family: 'IPv4' },
    )[0]!,
  ).svc;
  t.notOk(declared.includes(localSvc), 'unchanged service chains not rewritten');
  t.ok(declared.includes('KDP-SERVICES'), 'KDP-SERVICES always rewritten');
  const webSeps = lines.filter((l) => l.startsWith('-X KDP-SEP-'));
  t.ok(webSeps.length >= 2, 'removed endpoint chains deleted');
  t.notOk(
    lines.some((l) => /^:(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) /.test(l)),
    'built-in chains never flushed',
  );
  const full = restoreText(render(services, slices), { full: true, changed: new Set(), existing });
  t.ok(full.includes(`:${localSvc} - [0:0]`), 'a full sync rewrites every chain');
});

t.test('iptables-save parsing finds only KDP chains', async (t) => {
  const save = `*nat\n:PREROUTING ACCEPT [0:0]\n:KDP-SERVICES - [0:0]\n:FOREIGN - [0:0]\nCOMMIT\n*filter\n:KDP-FORWARD - [0:0]\nCOMMIT\n`;
  t.same(
    [...parseSaveChains(save)].map(([k, v]) => [k, [...v]]),
    [
      ['nat', ['KDP-SERVICES']],
      ['filter', ['KDP-FORWARD']],
    ],
  );
});

t.test('affinity renders recent-module rules with the timeout', async (t) => {
  const svc = makeService('a', 's', (s) => ((s.sessionAffinity = 'ClientIP'), (s.sessionAffinityTimeoutSeconds = 42)));
  const st = renderIptables(
    buildServicePorts([svc], new Map([['a/s', [makeSlice('a', 's', [{ ip: '198.19.1.1' }, { ip: '198.19.1.2' }])]]]), {
      nodeName: 'n',
      family: 'IPv4',
    }),
    'ipv4',
    CFG,
  );
  const text = restoreText(st, { full: true, changed: new Set(), existing: new Map() });
  t.equal(text.match(/--rcheck --seconds 42 --reap/g)?.length, 2);
  t.equal(text.match(/-m recent --name KDP-SEP-\S+ --mask 255.255.255.255 --set -j DNAT/g)?.length, 2);
  t.match(text, /--probability 0.5000000000/);
});
