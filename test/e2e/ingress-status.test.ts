// Ingress status.loadBalancer in Kubernetes mode: `kdp ingress --kubeconfig ... --publish-status-address`
// runs as a child process against the API double (list/watch), behind a recording server that takes the
// status subresource PATCHes (recorded, then applied to the double so the watch echoes them) and relays
// everything else. Also the adapter alone (src/k8s/ingress-status.ts) against a server that records and fails.
import t from 'tap';
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { needsRoot } from '../helpers/gate.ts';
import { ApiDouble, mergePatch, writeKubeconfig } from '../apiserver/server.ts';
import type { Obj } from '../apiserver/server.ts';
import { spawnChild } from '../../src/common/exec-adapter.ts';
import { loadKubeConfig } from '../../src/k8s/kube-source.ts';
import { KubeIngressStatusWriter } from '../../src/k8s/ingress-status.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const STATUS_PATH = /^\/apis\/networking\.k8s\.io\/v1\/namespaces\/([^/]+)\/ingresses\/([^/]+)\/status$/;

interface Recorded {
  readonly method: string;
  readonly path: string;
  readonly contentType: string;
  readonly body: unknown;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

/** Records status writes; `apply` decides the answer; everything else is relayed to `upstream` (or 404). */
async function recordingApi(
  apply: (ns: string, name: string, patch: Obj, res: ServerResponse) => void,
  upstream?: string,
): Promise<{ server: Server; url: string; writes: Recorded[] }> {
  const writes: Recorded[] = [];
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const m = STATUS_PATH.exec(path);
    if (m && (req.method === 'PATCH' || req.method === 'PUT')) {
      void readBody(req).then((text) => {
        const body = JSON.parse(text) as Obj;
        writes.push({ method: req.method!, path, contentType: String(req.headers['content-type']), body });
        apply(m[1]!, m[2]!, body, res);
      });
      return;
    }
    if (!upstream) return void res.writeHead(404).end();
    const u = new URL(upstream);
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

async function until(cond: () => boolean, ms: number, what: string | (() => string)): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${typeof what === 'string' ? what : what()}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const ing = (name: string, cls: string): Obj => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: { name, namespace: 'default' },
  spec: {
    ingressClassName: cls,
    rules: [
      {
        host: `${name}.test`,
        http: {
          paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }],
        },
      },
    ],
  },
});

if (needsRoot(t, 'nothing but loopback; kept with the other ingress e2e files')) {
  t.test('the adapter PATCHes the status subresource as a merge patch and reports failures', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'kdp-ingress-status-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    let fail = false;
    const api = await recordingApi((_ns, _name, patch, res) => {
      if (fail)
        return void res
          .writeHead(403, { 'content-type': 'application/json' })
          .end(JSON.stringify({ kind: 'Status', code: 403, message: 'forbidden: ingresses/status' }));
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ...ing('web', 'kdp'), ...patch }));
    });
    t.teardown(() => new Promise((r) => api.server.close(r)));
    const writer = new KubeIngressStatusWriter(
      loadKubeConfig({ kubeconfig: await writeKubeconfig(join(dir, 'kubeconfig'), api.url) }),
    );
    await writer.setLoadBalancer('shop', 'web', [{ ip: '198.18.0.11' }, { hostname: 'lb.example.com' }]);
    t.same(api.writes, [
      {
        method: 'PATCH',
        path: '/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web/status',
        contentType: 'application/merge-patch+json',
        body: { status: { loadBalancer: { ingress: [{ ip: '198.18.0.11' }, { hostname: 'lb.example.com' }] } } },
      },
    ]);
    fail = true;
    await t.rejects(writer.setLoadBalancer('shop', 'web', [{ ip: '198.18.0.11' }]), {
      code: 'KDP_K8S_API',
      message: /403/,
    });
  });

  t.test(
    'kdp ingress --kubeconfig --publish-status-address writes the status of the Ingresses it serves',
    async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'kdp-ingress-status-'));
      t.teardown(() => rm(dir, { recursive: true, force: true }));
      const double = await ApiDouble.start();
      t.teardown(() => double.close());
      double.create('IngressClass', {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'IngressClass',
        metadata: { name: 'kdp' },
        spec: { controller: 'kdp.dev/ingress' },
      });
      double.create('Ingress', ing('web', 'kdp'));
      double.create('Ingress', ing('foreign', 'other'));
      const api = await recordingApi((ns, name, patch, res) => {
        const cur = double.get('Ingress', ns, name)!;
        const next = double.update('Ingress', mergePatch(cur, patch) as Obj);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(next));
      }, double.url);
      t.teardown(() => new Promise((r) => (api.server.closeAllConnections(), api.server.close(r))));
      const kc = await writeKubeconfig(join(dir, 'kubeconfig'), api.url);
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
        '--publish-status-address',
        '198.18.0.11,ingress.example.com',
      ]);
      t.teardown(async () => {
        child.kill('SIGTERM');
        await Promise.race([child.exited, new Promise((r) => setTimeout(r, 5000))]);
        child.kill('SIGKILL');
      });
      const want = [{ ip: '198.18.0.11' }, { hostname: 'ingress.example.com' }];
      const statusOf = (name: string) =>
        (double.get('Ingress', 'default', name)?.status as { loadBalancer?: { ingress?: unknown } } | undefined)
          ?.loadBalancer?.ingress;
      // the first write comes after the CLI loaded the Kubernetes client library: at a load of 9 that took over
      // 20 s (the other CLI starts in the e2e files get 60 s); the output is read when the wait fails, not before
      await until(
        () => api.writes.length > 0,
        60_000,
        () => `a status write (output: ${child.output().slice(-800)})`,
      );
      await until(() => JSON.stringify(statusOf('web')) === JSON.stringify(want), 5000, 'the status in the API');
      t.same(statusOf('web'), want, 'status.loadBalancer.ingress of the served Ingress');
      t.equal(statusOf('foreign'), undefined, 'an Ingress of another class is left alone');
      // the watch echoes the new status: no second write
      await new Promise((r) => setTimeout(r, 1000));
      t.same(
        api.writes.map((w) => w.path),
        ['/apis/networking.k8s.io/v1/namespaces/default/ingresses/web/status'],
        'one write, not repeated after the echo',
      );
      t.equal(api.writes[0]!.contentType, 'application/merge-patch+json');
      // someone clears it: written again
      const cur = double.get('Ingress', 'default', 'web')!;
      double.update('Ingress', { ...cur, status: { loadBalancer: {} } });
      await until(() => api.writes.length === 2, 5000, 'the status rewritten after it was cleared');
      await until(() => JSON.stringify(statusOf('web')) === JSON.stringify(want), 5000, 'the status restored');
      t.pass('restored');
    },
  );
}
