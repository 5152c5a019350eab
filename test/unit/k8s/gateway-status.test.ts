// The Gateway API status writer: the merge (pure) and the adapter against a loopback server that plays the
// status subresource (GET, then a JSON merge patch with the resourceVersion it read; 409 on a stale one).
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeGatewayStatusWriter, gatewayStatusPatch } from '../../../src/k8s/gateway-status.ts';

const ME = 'kdp.dev/gateway-controller';
const T0 = '2026-12-01T00:00:00Z';
const NOW = '2026-12-06T09:00:00Z';
const cond = (type: string, status: string, reason = type, extra: Record<string, unknown> = {}) => ({
  type,
  status,
  reason,
  message: '',
  observedGeneration: 2,
  ...extra,
});

t.test('conditions keep their lastTransitionTime while their status stays', async (t) => {
  const next = gatewayStatusPatch(
    'GatewayClass',
    { conditions: [cond('Accepted', 'True', 'Accepted', { lastTransitionTime: T0, observedGeneration: 1 })] },
    { conditions: [cond('Accepted', 'True')] },
    ME,
    '',
    NOW,
  );
  t.same(next, { conditions: [cond('Accepted', 'True', 'Accepted', { lastTransitionTime: T0 })] });
  const flipped = gatewayStatusPatch(
    'GatewayClass',
    next,
    { conditions: [cond('Accepted', 'False', 'InvalidParameters')] },
    ME,
    '',
    NOW,
  );
  t.equal((flipped.conditions as { lastTransitionTime: string }[])[0]!.lastTransitionTime, NOW, 'changed: now');
});

t.test('Gateway: addresses, conditions, listeners by name', async (t) => {
  const next = gatewayStatusPatch(
    'Gateway',
    {
      addresses: [{ type: 'IPAddress', value: '127.0.10.9' }],
      listeners: [{ name: 'http', conditions: [cond('Programmed', 'True', 'Programmed', { lastTransitionTime: T0 })] }],
    },
    {
      key: 'default/g',
      generation: 2,
      addresses: [{ type: 'IPAddress', value: '127.0.10.7' }],
      conditions: [cond('Accepted', 'True'), cond('Programmed', 'True')],
      listeners: [
        {
          name: 'http',
          supportedKinds: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }],
          attachedRoutes: 3,
          conditions: [cond('Programmed', 'True')],
        },
        { name: 'https', supportedKinds: [], attachedRoutes: 0, conditions: [cond('Programmed', 'False', 'Invalid')] },
      ],
    },
    ME,
    'default',
    NOW,
  );
  t.same(next.addresses, [{ type: 'IPAddress', value: '127.0.10.7' }]);
  t.notOk('key' in next || 'generation' in next, 'only status fields');
  const ls = next.listeners as { name: string; attachedRoutes: number; conditions: { lastTransitionTime: string }[] }[];
  t.same(
    ls.map((l) => [l.name, l.attachedRoutes, l.conditions[0]!.lastTransitionTime]),
    [
      ['http', 3, T0],
      ['https', 0, NOW],
    ],
  );
});

t.test("routes: other controllers' parents stay, ours are replaced (stale ones dropped)", async (t) => {
  const other = {
    parentRef: { name: 'theirs' },
    controllerName: 'example.com/other',
    conditions: [cond('Accepted', 'True')],
  };
  const stale = { parentRef: { name: 'gone' }, controllerName: ME, conditions: [cond('Accepted', 'True')] };
  const kept = {
    parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'default', name: 'g' },
    controllerName: ME,
    conditions: [cond('Accepted', 'True', 'Accepted', { lastTransitionTime: T0 })],
  };
  const next = gatewayStatusPatch(
    'HTTPRoute',
    { parents: [other, stale, { ...kept, parentRef: { name: 'g' } }] },
    {
      key: 'default/r',
      generation: 2,
      parents: [
        {
          parentRef: kept.parentRef,
          controllerName: ME,
          conditions: [cond('Accepted', 'True'), cond('ResolvedRefs', 'False', 'BackendNotFound')],
        },
      ],
    },
    ME,
    'default',
    NOW,
  );
  const parents = next.parents as {
    parentRef: { name: string };
    conditions: { type: string; lastTransitionTime: string }[];
  }[];
  t.same(
    parents.map((p) => p.parentRef.name),
    ['theirs', 'g'],
  );
  t.same(
    parents[1]!.conditions.map((c) => [c.type, c.lastTransitionTime]),
    [
      ['Accepted', T0],
      ['ResolvedRefs', NOW],
    ],
    'the same parent (defaults filled in) keeps its time',
  );
});

t.test('the adapter: GET, merge, PATCH with the resourceVersion read; nothing when unchanged', async (t) => {
  const objects = new Map<string, { metadata: { resourceVersion: string }; status?: Record<string, unknown> }>([
    ['/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/r', { metadata: { resourceVersion: '5' } }],
    ['/apis/gateway.networking.k8s.io/v1/gatewayclasses/kdp', { metadata: { resourceVersion: '7' } }],
  ]);
  const seen: string[] = [];
  let rv = 100;
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    seen.push(`${req.method} ${path}`);
    const obj = objects.get(path.replace(/\/status$/, ''));
    if (!obj || !path.endsWith('/status')) return void res.writeHead(404).end('{}');
    if (req.method === 'GET')
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(obj));
    let text = '';
    req.on('data', (c: Buffer) => (text += c));
    req.on('end', () => {
      t.equal(req.headers['content-type'], 'application/merge-patch+json');
      const body = JSON.parse(text) as { metadata: { resourceVersion: string }; status: Record<string, unknown> };
      if (body.metadata.resourceVersion !== obj.metadata.resourceVersion)
        return void res.writeHead(409, { 'content-type': 'application/json' }).end('{"kind":"Status","code":409}');
      obj.status = body.status;
      obj.metadata.resourceVersion = String(++rv);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(obj));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
    ],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  const w = new KubeGatewayStatusWriter(kc, ME, () => new Date('2026-12-06T09:00:00.123Z'));
  const route = {
    key: 'default/r',
    generation: 2,
    parents: [
      { parentRef: { name: 'g', namespace: 'default' }, controllerName: ME, conditions: [cond('Accepted', 'True')] },
    ],
  };
  await w.write('HTTPRoute', 'default/r', route);
  t.same(seen.splice(0), [
    'GET /apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/r/status',
    'PATCH /apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/r/status',
  ]);
  const st = objects.get('/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/r')!.status!;
  t.same((st.parents as { conditions: { lastTransitionTime: string }[] }[])[0]!.conditions[0]!.lastTransitionTime, NOW);
  await w.write('HTTPRoute', 'default/r', route);
  t.same(
    seen.splice(0),
    ['GET /apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/r/status'],
    'unchanged: no PATCH',
  );
  await w.write('GatewayClass', 'kdp', { key: 'kdp', generation: 1, conditions: [cond('Accepted', 'True')] });
  t.same(seen.splice(0), [
    'GET /apis/gateway.networking.k8s.io/v1/gatewayclasses/kdp/status',
    'PATCH /apis/gateway.networking.k8s.io/v1/gatewayclasses/kdp/status',
  ]);
  await t.rejects(w.write('Gateway', 'default/missing', { conditions: [] }), { code: 'KDP_K8S_API' });
});
