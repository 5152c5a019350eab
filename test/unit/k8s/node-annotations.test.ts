// The overlay agent's Node annotation writer (src/k8s/node-annotations.ts) against a loopback server that
// records what the client library sends: a JSON merge patch of metadata.annotations on /api/v1/nodes/NAME, and
// a failure reported as KDP_K8S_API with the status code.
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeNodeAnnotator } from '../../../src/k8s/node-annotations.ts';
import { vtepAnnotations } from '../../../src/node/overlay.ts';

t.test('PATCH of its own Node: a merge patch of the annotations; failures carry the status', async (t) => {
  const seen: { method: string; path: string; type: string; body: unknown }[] = [];
  let status = 200;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        path: (req.url ?? '').split('?')[0]!,
        type: String(req.headers['content-type']),
        body: JSON.parse(Buffer.concat(chunks).toString() || 'null'),
      });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          status === 200 ? { kind: 'Node', metadata: { name: 'node-1' } } : { kind: 'Status', code: status },
        ),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
    ],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  const w = new KubeNodeAnnotator(kc);
  const a = vtepAnnotations(1, '198.18.0.11');
  await w.annotate('node-1', a);
  t.same(seen, [
    {
      method: 'PATCH',
      path: '/api/v1/nodes/node-1',
      type: 'application/merge-patch+json',
      body: { metadata: { annotations: a } },
    },
  ]);
  status = 403;
  await t.rejects(w.annotate('node-1', a), {
    code: 'KDP_K8S_API',
    message: /PATCH annotations of Node node-1 failed \(403\)/,
  });
});
