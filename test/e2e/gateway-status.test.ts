// Gateway API status in Kubernetes mode: `kdp ingress --kubeconfig` as a child process against the API double
// (list/watch of the Gateway API kinds), behind a server that plays the status subresource for those kinds (GET
// the object, merge PATCH with a resourceVersion precondition: 409 when stale; recorded, applied to the double so
// the watch echoes it) and relays everything else. The Gateway is served on its pool address too.
import t from 'tap';
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { needsRoot } from '../helpers/gate.ts';
import { ApiDouble, mergePatch, writeKubeconfig } from '../apiserver/server.ts';
import type { Obj } from '../apiserver/server.ts';
import { spawnChild } from '../../src/common/exec-adapter.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const STATUS =
  /^\/apis\/gateway\.networking\.k8s\.io\/v1\/(?:namespaces\/([^/]+)\/)?(gatewayclasses|gateways|httproutes|grpcroutes)\/([^/]+)\/status$/;
const KIND: Record<string, string> = {
  gatewayclasses: 'GatewayClass',
  gateways: 'Gateway',
  httproutes: 'HTTPRoute',
  grpcroutes: 'GRPCRoute',
};
const GW = 'gateway.networking.k8s.io/v1';

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

/** The status subresource of the Gateway API kinds over `double`; the rest relayed to it. */
async function statusFront(double: ApiDouble): Promise<{ server: Server; url: string; writes: string[] }> {
  const writes: string[] = [];
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const m = STATUS.exec(path);
    const json = (code: number, body: unknown) =>
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (m) {
      const kind = KIND[m[2]!]!;
      const obj = double.get(kind, m[1], m[3]!);
      if (!obj) return json(404, { kind: 'Status', code: 404, reason: 'NotFound' });
      if (req.method === 'GET') return json(200, obj);
      void readBody(req).then((text) => {
        const patch = JSON.parse(text) as Obj;
        writes.push(`${req.method} ${kind} ${m[1] ? `${m[1]}/` : ''}${m[3]} ${String(req.headers['content-type'])}`);
        const want = (patch.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
        if (want !== undefined && want !== obj.metadata!.resourceVersion)
          return json(409, { kind: 'Status', code: 409, reason: 'Conflict' });
        const next = mergePatch(obj, { status: patch.status }) as Obj;
        json(200, double.update(kind, next));
      });
      return;
    }
    const u = new URL(double.url);
    const fwd = httpRequest(
      { host: u.hostname, port: u.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    fwd.on('error', () => res.destroy());
    res.on('close', () => fwd.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, writes };
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`${what()}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Cond {
  type: string;
  status: string;
  reason: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

const route = (name: string, backend: string, path = '/'): Obj => ({
  apiVersion: GW,
  kind: 'HTTPRoute',
  metadata: { name, namespace: 'default' },
  spec: {
    parentRefs: [{ name: 'edge' }],
    rules: [{ matches: [{ path: { type: 'PathPrefix', value: path } }], backendRefs: [{ name: backend, port: 80 }] }],
  },
});

if (needsRoot(t, 'nothing but loopback; kept with the other ingress e2e files')) {
  t.test('kdp ingress --kubeconfig writes the status of GatewayClass, Gateway and HTTPRoutes', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'kdp-gw-status-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const backend = createServer((_req, res) => res.writeHead(200, { 'x-backend': 'web' }).end('web\n'));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    t.teardown(() => new Promise((r) => (backend.closeAllConnections(), backend.close(r))));
    const double = await ApiDouble.start();
    t.teardown(() => double.close());
    double.create('GatewayClass', {
      apiVersion: GW,
      kind: 'GatewayClass',
      metadata: { name: 'kdp' },
      spec: { controllerName: 'kdp.dev/gateway-controller' },
    });
    double.create('Service', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default' },
      spec: { clusterIP: '10.96.0.50', ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    });
    double.create('EndpointSlice', {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
      ports: [{ name: 'http', port: (backend.address() as AddressInfo).port, protocol: 'TCP' }],
    });
    double.create('Gateway', {
      apiVersion: GW,
      kind: 'Gateway',
      metadata: { name: 'edge', namespace: 'default' },
      spec: { gatewayClassName: 'kdp', listeners: [{ name: 'http', protocol: 'HTTP', port: 8080 }] },
    });
    double.create('HTTPRoute', route('good', 'web'));
    // a route another controller reports on too: its entry stays
    const other = {
      parentRef: { name: 'theirs' },
      controllerName: 'example.com/other',
      conditions: [
        {
          type: 'Accepted',
          status: 'True',
          reason: 'Accepted',
          message: '',
          lastTransitionTime: '2026-01-01T00:00:00Z',
        },
      ],
    };
    // (its own path: two routes with the same match, the older (or first by name) wins by the spec's precedence)
    double.create('HTTPRoute', { ...route('bad', 'missing', '/bad'), status: { parents: [other] } });
    const front = await statusFront(double);
    t.teardown(() => new Promise((r) => (front.server.closeAllConnections(), front.server.close(r))));
    const kc = await writeKubeconfig(join(dir, 'kubeconfig'), front.url);
    const net = `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}`;
    // argv as an array (exec adapter), the child on the project's Node
    const child = spawnChild([
      process.execPath,
      MAIN,
      '--log-level',
      'info',
      'ingress',
      '--kubeconfig',
      kc,
      '--bind',
      '127.0.0.1',
      '--http-port',
      '0',
      '--https-port',
      '0',
      '--healthz-port=-1',
      '--access-log',
      'off',
      '--gateway-addresses',
      `${net}.0/24`,
    ]);
    t.teardown(async () => {
      child.kill('SIGTERM');
      await Promise.race([child.exited, new Promise((r) => setTimeout(r, 5000))]);
      child.kill('SIGKILL');
    });
    const statusOf = (kind: string, ns: string | undefined, name: string) =>
      double.get(kind, ns, name)?.status as Record<string, unknown> | undefined;
    const out = () => child.output().slice(-1500);
    await until(
      () => front.writes.length >= 4,
      60_000, // the child compiles the controller first: slow on a loaded machine
      () => `four status writes (${front.writes.join(', ')}; output: ${out()})`,
    );

    const cls = statusOf('GatewayClass', undefined, 'kdp')!;
    t.match(
      (cls.conditions as Cond[]).find((c) => c.type === 'Accepted'),
      { status: 'True', reason: 'Accepted' },
    );
    const gw = statusOf('Gateway', 'default', 'edge')!;
    const address = (gw.addresses as { type: string; value: string }[])[0]!;
    t.equal(address.type, 'IPAddress');
    t.ok(address.value.startsWith(`${net}.`), `address ${address.value} from the pool`);
    const programmed = (gw.conditions as Cond[]).find((c) => c.type === 'Programmed')!;
    t.match(programmed, {
      status: 'True',
      observedGeneration: (double.get('Gateway', 'default', 'edge')!.metadata as { generation: number }).generation,
    });
    t.match(programmed.lastTransitionTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const listener = (gw.listeners as { name: string; attachedRoutes: number }[])[0]!;
    t.same([listener.name, listener.attachedRoutes], ['http', 2]);
    const bad = statusOf('HTTPRoute', 'default', 'bad')!;
    const parents = bad.parents as { controllerName: string; conditions: Cond[] }[];
    t.same(parents[0], other, "the other controller's entry is kept as it was");
    t.equal(parents[1]!.controllerName, 'kdp.dev/gateway-controller');
    t.match(
      parents[1]!.conditions.find((c) => c.type === 'ResolvedRefs'),
      { status: 'False', reason: 'BackendNotFound' },
    );
    const good = statusOf('HTTPRoute', 'default', 'good')!;
    t.match(
      (good.parents as { conditions: Cond[] }[])[0]!.conditions.find((c) => c.type === 'Accepted'),
      { status: 'True' },
    );
    t.ok(
      front.writes.every((w) => w.endsWith('application/merge-patch+json')),
      'merge patches',
    );

    // served on that address in Kubernetes mode too
    let last = '';
    await until(
      async () => {
        const r = await request(`http://${address.value}:8080/`).catch((e: Error) => {
          last = e.message;
          throw e;
        });
        last = `${r.statusCode} ${await r.body.text()}`;
        return r.headers['x-backend'] === 'web';
      },
      5000,
      () =>
        `the Gateway answering (last: ${last}; ${JSON.stringify(statusOf('HTTPRoute', 'default', 'good'))}; ${out()})`,
    );
    t.pass('served');

    // the watch echoes the writes: nothing is written again
    const n = front.writes.length;
    await new Promise((r) => setTimeout(r, 1000));
    t.equal(front.writes.length, n, 'no write repeated after the echo');

    // the route is fixed: only its status is written, its ResolvedRefs turns True
    const cur = double.get('HTTPRoute', 'default', 'bad')!;
    double.update('HTTPRoute', { ...cur, spec: route('bad', 'web', '/bad').spec } as Obj);
    await until(
      () => front.writes.length > n,
      10_000,
      () => `the fixed route's status (output: ${out()})`,
    );
    await new Promise((r) => setTimeout(r, 300));
    t.same(
      front.writes.slice(n),
      ['PATCH HTTPRoute default/bad application/merge-patch+json'],
      'only that route written',
    );
    const fixed = (statusOf('HTTPRoute', 'default', 'bad')!.parents as { conditions: Cond[] }[])[1]!;
    t.match(
      fixed.conditions.find((c) => c.type === 'ResolvedRefs'),
      { status: 'True', observedGeneration: 2 },
    );
  });
}
