// The proxy model: which services are ignored, endpoint categorisation, deterministic names.
import t from 'tap';
import { buildServicePorts, hashName, ignoredService, usable } from '../../../src/proxy/model.ts';
import { goldenScenario, makeService, makeSlice } from './fixtures.ts';

const slicesBy = (slices: ReturnType<typeof goldenScenario>['slices']) => {
  const m = new Map<string, typeof slices>();
  for (const s of slices)
    m.set(`${s.meta.namespace}/${s.serviceName}`, [...(m.get(`${s.meta.namespace}/${s.serviceName}`) ?? []), s]);
  return m;
};

t.test('hash names match kube-proxy (base32 of sha256)', async (t) => {
  t.equal(hashName('ns1/svc1:p80tcp', 16), 'XPGD46QRK7WJZT7O');
  t.equal(hashName('ns1/svc1:p80tcp10.180.0.1:80', 16), 'SXIVWICOYRO3J4NJ');
});

t.test("headless, ExternalName and other proxies' services are ignored", async (t) => {
  t.ok(ignoredService(makeService('a', 'h', (s) => ((s.headless = true), (s.clusterIPs = [])))));
  t.ok(ignoredService(makeService('a', 'e', (s) => ((s.type = 'ExternalName'), (s.clusterIPs = [])))));
  t.ok(
    ignoredService(
      makeService('a', 'l', (s) => (s.meta = { ...s.meta, labels: { 'service.kubernetes.io/headless': '' } })),
    ),
  );
  const named = makeService(
    'a',
    'n',
    (s) => (s.meta = { ...s.meta, labels: { 'service.kubernetes.io/service-proxy-name': 'kdp' } }),
  );
  t.ok(ignoredService(named));
  t.notOk(ignoredService(named, 'kdp'), 'served when the proxy has that name');
  t.notOk(ignoredService(makeService('a', 'plain')));
});

t.test('ready endpoints first; serving-terminating only when none is ready', async (t) => {
  const ep = (ip: string, ready: boolean, serving: boolean, terminating: boolean) => ({
    ip,
    port: 80,
    ready,
    serving,
    terminating,
    local: false,
  });
  t.same(
    usable([ep('a', true, true, false), ep('b', false, true, true)]).map((e) => e.ip),
    ['a'],
  );
  t.same(
    usable([ep('a', false, false, true), ep('b', false, true, true)]).map((e) => e.ip),
    ['b'],
  );
  t.same(usable([ep('a', false, false, false)]), []);
});

t.test('service ports carry categorised endpoints per family', async (t) => {
  const { services, slices } = goldenScenario();
  const ports = buildServicePorts(services, slicesBy(slices), { nodeName: 'node1', family: 'IPv4' });
  t.same(
    ports.map((p) => p.id),
    ['ns1/noeps:', 'ns1/svc1:p80', 'ns2/dns:dns', 'ns2/local:http', 'ns2/remote:http', 'ns2/web:http', 'ns3/term:p80'],
  );
  const web = ports.find((p) => p.id === 'ns2/web:http')!;
  t.equal(web.affinitySeconds, 600);
  t.same(
    web.clusterEndpoints.map((e) => e.ip),
    ['198.19.1.11', '198.19.2.11'],
    'not-ready endpoint left out',
  );
  const local = ports.find((p) => p.id === 'ns2/local:http')!;
  t.same(
    local.localEndpoints.map((e) => e.ip),
    ['198.19.1.12'],
  );
  t.equal(local.healthCheckNodePort, 32044);
  const term = ports.find((p) => p.id === 'ns3/term:p80')!;
  t.same(
    term.clusterEndpoints.map((e) => e.ip),
    ['198.19.1.20'],
    'terminating but serving, as no endpoint is ready',
  );
  t.same(
    buildServicePorts(services, slicesBy(slices), { nodeName: 'node1', family: 'IPv6' }),
    [],
    'no IPv6 cluster IPs',
  );
  const v6 = buildServicePorts(
    [makeService('a', 'six', (s) => ((s.clusterIPs = ['10.96.0.9', 'fd00:96::9']), (s.ipFamilies = ['IPv4', 'IPv6'])))],
    slicesBy([
      makeSlice('a', 'six', [{ ip: 'fd00:198:19:1::10' }]),
      makeSlice('a', 'six', [{ ip: '198.19.1.10' }], undefined, 'six-v4'),
    ]),
    { nodeName: 'node1', family: 'IPv6' },
  );
  t.same(
    v6.map((p) => [p.clusterIP, p.endpoints.map((e) => e.ip)]),
    [['fd00:96::9', ['fd00:198:19:1::10']]],
  );
});
