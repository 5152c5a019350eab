// Small pure parts of the ingress: access-log format, cookies and affinity, sizes, controller sync gating.
import t from 'tap';
import { formatAccessLine, timeLocal } from '../../../ingress/access-log.ts';
import { affinityValue, cookieValue, endpointForCookie, RoundRobin } from '../../../ingress/upstream.ts';
import { AnnotationError, parseSize } from '../../../ingress/annotations.ts';
import { IngressController } from '../../../ingress/controller.ts';
import { FakeSource } from '../../../src/k8s/testing/fake-source.ts';
import { attemptTimes, harness } from '../../../src/k8s/testing/harness.ts';
import {
  ingress,
  ingressClass,
  path,
  rule,
  service,
  slice,
  withAnnotations,
} from '../../../ingress/testing/fixtures.ts';
import type { RouteTable } from '../../../ingress/types.ts';
import { resolve } from '../../../ingress/match.ts';

t.test('access log line in ingress-nginx default format', async (t) => {
  const d = new Date(Date.UTC(2026, 10, 24, 1, 2, 3));
  t.equal(timeLocal(d), '24/Nov/2026:01:02:03 +0000');
  const line = formatAccessLine(
    {
      remoteAddr: '198.18.0.1',
      method: 'GET',
      url: '/a?b=1',
      httpVersion: '1.1',
      status: 200,
      bodyBytesSent: 612,
      referer: undefined,
      userAgent: 'curl/7.88.1 "quoted"',
      requestLength: 78,
      requestTime: 0.0042,
      upstreamName: 'default-web-80',
      alternativeUpstreamName: '',
      upstreamAddr: '198.19.1.10:8080',
      upstreamResponseLength: '612',
      upstreamResponseTime: '0.004',
      upstreamStatus: '200',
      requestId: '0123456789abcdef0123456789abcdef',
    },
    d,
  );
  t.equal(
    line,
    '198.18.0.1 - - [24/Nov/2026:01:02:03 +0000] "GET /a?b=1 HTTP/1.1" 200 612 "-" "curl/7.88.1 \\x22quoted\\x22" 78 0.004 [default-web-80] [] 198.19.1.10:8080 612 0.004 200 0123456789abcdef0123456789abcdef',
  );
});

t.test('cookies, affinity values, round robin', async (t) => {
  t.equal(cookieValue('a=1; INGRESSCOOKIE=abc; b=2', 'INGRESSCOOKIE'), 'abc');
  t.equal(cookieValue('a=1', 'INGRESSCOOKIE'), undefined);
  t.equal(cookieValue(undefined, 'x'), undefined);
  const u = {
    name: 'ns-svc-80',
    namespace: 'ns',
    service: 'svc',
    port: '80',
    endpoints: ['10.0.0.1:80', '10.0.0.2:80'],
  };
  t.match(affinityValue('10.0.0.1:80'), /^[0-9a-f]{16}$/);
  t.equal(endpointForCookie(u, affinityValue('10.0.0.2:80')), '10.0.0.2:80');
  t.equal(endpointForCookie(u, affinityValue('10.0.0.3:80')), undefined, 'a cookie for a gone endpoint is ignored');
  const rr = new RoundRobin();
  t.same([rr.next(u), rr.next(u), rr.next(u)], ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.1:80']);
});

t.test('nginx sizes', async (t) => {
  t.equal(parseSize('x', '0'), 0);
  t.equal(parseSize('x', '1024'), 1024);
  t.equal(parseSize('x', '8k'), 8192);
  t.equal(parseSize('x', '1m'), 1048576);
  t.equal(parseSize('x', '2G'), 2 * 1024 ** 3);
  t.throws(() => parseSize('x', '1.5m'), { message: /expected a size/ });
  t.throws(() => parseSize('x', '1m; x'), { message: /expected a size/ });
  t.ok(new AnnotationError('x') instanceof Error);
});

t.test(
  'controller: nothing before every kind synced, then coalesced swaps; a bad edit leaves the rest serving',
  async (t) => {
    const tables: RouteTable[] = [];
    const src = new FakeSource();
    const ctl = new IngressController({ setTable: (tb) => void tables.push(tb) }, { minIntervalMs: 0 });
    ctl.attach(src);
    src.put(ingressClass());
    src.put(service('web'));
    src.put(slice('web', ['10.0.0.1']));
    src.put(ingress('a', [rule('a.test', path('/', 'Prefix', 'web'))]));
    await new Promise((r) => setTimeout(r, 20));
    t.equal(tables.length, 0, 'not started: nothing installed');
    await src.start();
    await ctl.whenReady();
    t.equal(tables.length, 1, 'one table for the whole initial list');
    const first = resolve(tables[0]!, 'a.test', '/');
    t.same(first.kind === 'route' && first.match.route.upstream.endpoints, ['10.0.0.1:8080']);
    src.put(slice('web', ['10.0.0.1', '10.0.0.2']));
    src.put(ingress('b', [rule('b.test', path('/', 'Prefix', 'web'))]));
    await new Promise((r) => setTimeout(r, 20));
    t.equal(tables.length, 2, 'two events, one swap');
    src.put(
      withAnnotations(ingress('a', [rule('a.test', path('/', 'Prefix', 'web'))]), {
        'nginx.ingress.kubernetes.io/proxy-body-size': 'huge',
      }),
    );
    await new Promise((r) => setTimeout(r, 20));
    const last = tables.at(-1)!;
    t.equal(resolve(last, 'a.test', '/').kind, 'none', 'the Ingress with the bad value is out');
    t.equal(resolve(last, 'b.test', '/').kind, 'route', 'the other still serves');
    t.match(ctl.result?.rejected, [{ ingress: 'default/a', reason: /proxy-body-size/ }]);
    ctl.stop();
  },
);

t.test('controller publishes status.loadBalancer for the Ingresses it serves, once', async (t) => {
  const writes: string[] = [];
  const src = new FakeSource();
  const ctl = new IngressController(
    { setTable: () => {} },
    {
      minIntervalMs: 0,
      status: {
        writer: { setLoadBalancer: async (ns, name, lb) => void writes.push(`${ns}/${name} ${JSON.stringify(lb)}`) },
        addresses: [{ ip: '198.18.0.11' }],
      },
    },
  );
  ctl.attach(src);
  src.put(ingressClass());
  src.put(ingress('ours', [rule('a.test', path('/', 'Prefix', 'web'))]));
  src.put(ingress('theirs', [rule('b.test', path('/', 'Prefix', 'web'))], (i) => (i.ingressClassName = 'other')));
  src.put(
    ingress('done', [rule('c.test', path('/', 'Prefix', 'web'))], (i) => (i.loadBalancer = [{ ip: '198.18.0.11' }])),
  );
  await src.start();
  await ctl.whenReady();
  src.put(ingress('ours', [rule('a.test', path('/x', 'Prefix', 'web'))]));
  await new Promise((r) => setTimeout(r, 20));
  t.same(writes, ['default/ours [{"ip":"198.18.0.11"}]'], 'only ours, only when different, not repeated');
  ctl.stop();
});

t.test('controller publishes the addresses of --publish-service, and follows them', async (t) => {
  const writes: string[] = [];
  const src = new FakeSource();
  const ctl = new IngressController(
    { setTable: () => {} },
    {
      minIntervalMs: 0,
      status: {
        writer: { setLoadBalancer: async (ns, name, lb) => void writes.push(`${ns}/${name} ${JSON.stringify(lb)}`) },
        publishService: 'kdp-system/kdp-ingress',
      },
    },
  );
  ctl.attach(src);
  src.put(ingressClass());
  src.put(ingress('ours', [rule('a.test', path('/', 'Prefix', 'web'))]));
  const svc = service('kdp-ingress', 80, 'kdp-system');
  src.put(svc);
  await src.start();
  await ctl.whenReady();
  await new Promise((r) => setTimeout(r, 20));
  t.same(writes, [], 'no address known yet: nothing written');
  src.put({ ...svc, loadBalancerIPs: ['203.0.113.7'], externalIPs: ['203.0.113.8', '203.0.113.7'] });
  await new Promise((r) => setTimeout(r, 20));
  t.same(writes, ['default/ours [{"ip":"203.0.113.7"},{"ip":"203.0.113.8"}]']);
  ctl.stop();
});

t.test('--publish-status-address / --publish-service parsing', async (t) => {
  const { statusOptions } = await import('../../../src/cli/commands/ingress.ts');
  t.equal(statusOptions(undefined, undefined), undefined);
  t.same(statusOptions('198.18.0.11, 2001:db8::1,lb.example.com', undefined), {
    addresses: [{ ip: '198.18.0.11' }, { ip: '2001:db8::1' }, { hostname: 'lb.example.com' }],
  });
  t.same(statusOptions(undefined, 'kdp-system/kdp-ingress'), { publishService: 'kdp-system/kdp-ingress' });
  t.throws(() => statusOptions('not an address!', undefined), { code: 'KDP_USAGE' });
  t.throws(() => statusOptions(undefined, 'noslash'), { code: 'KDP_USAGE' });
});

t.test('controller on the kernel harness: a failed install is retried after 1, 2, 4 s', async (t) => {
  const h = harness();
  let attempts = 0;
  let failing = 3;
  const tables: RouteTable[] = [];
  const ctl = new IngressController(
    {
      setTable: (tb) => {
        attempts++;
        if (failing-- > 0) throw new Error('server not ready');
        tables.push(tb);
      },
    },
    { minIntervalMs: 0, clock: h.clock },
  );
  ctl.attach(h.source);
  h.source.put(ingressClass());
  h.source.put(service('web'));
  h.source.put(slice('web', ['10.0.0.1']));
  h.source.put(ingress('a', [rule('a.test', path('/', 'Prefix', 'web'))]));
  await h.source.start();
  const times = await attemptTimes(h, () => attempts, 10_000);
  t.same(
    times.slice(1).map((x, i) => Math.round((x - times[i]!) / 100) * 100),
    [1000, 2000, 4000],
  );
  t.equal(tables.length, 1, 'installed by the fourth attempt');
  t.equal(ctl.ready, true);
  t.equal(ctl.controllerStatus()?.failuresTotal, 3);
  ctl.stop();
});

t.test('controller logs once why an Ingress is not served', async (t) => {
  const lines: string[] = [];
  const rec = (level: string) => (obj: object | string, msg?: string) =>
    void lines.push(`${level} ${msg ?? ''} ${typeof obj === 'string' ? obj : JSON.stringify(obj)}`);
  const log = { debug: () => {}, info: rec('info'), warn: rec('warn'), error: rec('error'), child: () => log };
  const src = new FakeSource();
  const ctl = new IngressController({ setTable: () => {} }, { minIntervalMs: 0, log });
  ctl.attach(src);
  src.put(ingressClass());
  src.put(ingress('theirs', [rule('b.test', path('/', 'Prefix', 'web'))], (i) => (i.ingressClassName = 'other')));
  await src.start();
  await ctl.whenReady();
  src.put(ingress('ours', [rule('a.test', path('/', 'Prefix', 'web'))]));
  await new Promise((r) => setTimeout(r, 20));
  src.put(ingressClass('other', 'example.com/other'));
  await new Promise((r) => setTimeout(r, 20));
  t.same(
    lines.filter((l) => l.includes('not our class')),
    [
      'info Ingress not served: not our class {"ingress":"default/theirs","reason":"spec.ingressClassName other: no IngressClass of that name"}',
      'info Ingress not served: not our class {"ingress":"default/theirs","reason":"IngressClass other belongs to controller example.com/other, not kdp.dev/ingress"}',
    ],
    'once per reason, not on every sync',
  );
  ctl.stop();
});
