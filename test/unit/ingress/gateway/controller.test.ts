// The Gateway reconciler over a FakeSource, with fake listener servers and a recording status writer: sockets
// follow the Gateways, status is written only for objects whose status changed, a listener whose socket cannot
// be opened is reported (Programmed False, Pending) and retried while the others serve.
import t from 'tap';
import { FakeSource } from '../../../../src/k8s/testing/fake-source.ts';
import { GatewayController } from '../../../../ingress/gateway/controller.ts';
import { GatewayListeners, listenerId } from '../../../../ingress/gateway/listeners.ts';
import { AddressPool } from '../../../../ingress/gateway/addresses.ts';
import { service, slice } from '../../../../ingress/testing/fixtures.ts';
import type { Gateway, GatewayClass, HTTPRoute, ObjectMeta } from '../../../../src/model/types.ts';

const meta = (namespace: string, name: string, generation = '1'): ObjectMeta => ({
  namespace,
  name,
  uid: `uid-${name}`,
  resourceVersion: generation,
  labels: {},
  annotations: {},
});
const cls: GatewayClass = {
  kind: 'GatewayClass',
  meta: meta('', 'kdp'),
  generation: 1,
  controllerName: 'kdp.dev/gateway-controller',
};
const gw = (name: string, port = 80, addresses: Gateway['addresses'] = []): Gateway => ({
  kind: 'Gateway',
  meta: meta('default', name),
  generation: 1,
  gatewayClassName: 'kdp',
  listeners: [{ name: 'http', protocol: 'HTTP', port, allowedRoutes: { namespacesFrom: 'Same', kinds: [] } }],
  addresses,
});
const route = (name: string, parent: string, backend = 'web'): HTTPRoute => ({
  kind: 'HTTPRoute',
  meta: meta('default', name),
  generation: 1,
  created: '',
  parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: parent }],
  hostnames: [],
  rules: [
    {
      matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }],
      filters: [],
      backendRefs: [{ group: '', kind: 'Service', name: backend, port: 80, weight: 1, filters: [] }],
    },
  ],
});

t.test('sockets follow Gateways; status written only when it changes; a socket failure is reported', async (t) => {
  const open = new Set<string>();
  const failing = new Set<string>();
  const listeners = new GatewayListeners((l) => ({
    setTable: () => {},
    listen: async () => {
      if (failing.has(l.address)) throw new Error('listen EADDRNOTAVAIL');
      open.add(listenerId(l));
    },
    close: async () => void open.delete(listenerId(l)),
  }));
  const writes: string[] = [];
  const controller = new GatewayController(listeners, {
    pool: new AddressPool('127.0.10.0/24'),
    minIntervalMs: 0,
    statusRetryMs: 60_000,
    status: { write: async (kind, key) => void writes.push(`${kind} ${key}`) },
  });
  const src = new FakeSource();
  src.put(cls);
  src.put(service('web'));
  src.put(slice('web', ['10.0.0.1']));
  src.put(gw('a'));
  src.put(route('r', 'a'));
  const detach = controller.attach(src);
  t.teardown(() => {
    controller.stop();
    detach();
  });
  await src.start();
  await controller.whenReady();
  const addrA = controller.result!.status.gateways[0]!.addresses[0]!.value;
  t.match(addrA, /^127\.0\.10\.\d+$/);
  t.same([...open], [`HTTP ${addrA}:80`]);
  t.same(writes.sort(), ['Gateway default/a', 'GatewayClass kdp', 'HTTPRoute default/r'].sort(), 'everything once');
  writes.length = 0;

  const settle = async (what: string, check: () => boolean) => {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
    t.ok(check(), what);
  };
  // an unrelated change (an endpoint): no status changes, no writes
  src.put(slice('web', ['10.0.0.1', '10.0.0.2']));
  await settle('reconciled', () => controller.controllerStatus()!.syncs >= 2);
  t.same(writes, [], 'nothing written when no status changed');

  // a Gateway asking for an address that is not local: its socket fails, the other one keeps serving
  failing.add('192.0.2.50');
  src.put(gw('b', 80, [{ type: 'IPAddress', value: '192.0.2.50' }]));
  await settle('b in the status', () => controller.result!.status.gateways.some((g) => g.key === 'default/b'));
  const b = controller.result!.status.gateways.find((g) => g.key === 'default/b')!;
  t.same(b.addresses, [{ type: 'IPAddress', value: '192.0.2.50' }]);
  const programmed = b.listeners[0]!.conditions.find((c) => c.type === 'Programmed')!;
  t.same([programmed.status, programmed.reason], ['False', 'Pending']);
  t.match(programmed.message, /EADDRNOTAVAIL/);
  t.same([...open], [`HTTP ${addrA}:80`], 'a still open');
  await settle('the failure counted', () => controller.controllerStatus()!.failures >= 1);
  t.match(controller.controllerStatus()!.lastError, /KDP_INGRESS_LISTEN|gateway listeners not open/);
  t.ok(writes.includes('Gateway default/b'), 'b status written');
  t.notOk(writes.includes('Gateway default/a'), 'a status unchanged: not written');

  // the address becomes usable: the kernel's retry opens it
  failing.clear();
  await settle('b open after the retry', () => open.has('HTTP 192.0.2.50:80'));
  src.remove('Gateway', 'default/a');
  await settle('a closed', () => !open.has(`HTTP ${addrA}:80`));
});
