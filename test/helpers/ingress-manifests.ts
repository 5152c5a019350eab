// The smallest manifests an ingress test or benchmark needs: IngressClass `kdp`, a Service whose one endpoint is a
// backend on 127.0.0.1:<port>, and an Ingress routing every path of one host to it.
import type { Test } from 'tap';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/**
 * `kdp ingress` on loopback serving a manifests directory, its HTTP and HTTPS ports given, access log off:
 * `global` flags go before the command (log level, format), `extra` flags after these.
 */
export function kdpIngressArgv(
  o: { manifests: string; http: number; https: number; global?: readonly string[] },
  ...extra: string[]
): string[] {
  return [
    process.execPath,
    CLI,
    ...(o.global ?? []),
    'ingress',
    '--manifests',
    o.manifests,
    '--bind',
    '127.0.0.1',
    '--http-port',
    String(o.http),
    '--https-port',
    String(o.https),
    '--access-log',
    'off',
    ...extra,
  ];
}

export function oneRouteManifests(name: string, host: string, backendPort: number): object {
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'IngressClass',
        metadata: { name: 'kdp' },
        spec: { controller: 'kdp.dev/ingress' },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace: 'default' },
        spec: { ports: [{ port: 80, protocol: 'TCP' }] },
      },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: `${name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
        ports: [{ name: '', port: backendPort, protocol: 'TCP' }],
      },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'Ingress',
        metadata: { name, namespace: 'default' },
        spec: {
          ingressClassName: 'kdp',
          rules: [
            {
              host,
              http: {
                paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name, port: { number: 80 } } } }],
              },
            },
          ],
        },
      },
    ],
  };
}

/**
 * A manifests directory with oneRouteManifests(name, host) to a backend on 127.0.0.1 that answers 200 `ok` to
 * everything; both removed at the test's teardown.
 */
export async function okBackendManifests(t: Test, name: string, host: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `kdp-${name}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const backend: Server = createServer((_req, res) => res.writeHead(200, { 'content-length': '2' }).end('ok'));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => (backend.closeAllConnections(), backend.close(r))));
  const port = (backend.address() as AddressInfo).port;
  await writeFile(join(dir, 'm.json'), JSON.stringify(oneRouteManifests(name, host, port)));
  return dir;
}
