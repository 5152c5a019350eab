// `kdp ingress --manifests DIR --workers 2` with a Gateway whose listener has the same port number as the Ingress
// HTTP port: every socket has SO_REUSEPORT, so each worker binds the Ingress port on 127.0.0.1 and the Gateway's
// pool address on that same port, both answer their own routes, and connections to the Gateway address are
// accepted by both workers (seen with ss).
import t from 'tap';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { needsRoot } from '../helpers/gate.ts';
import { kdpIngressArgv, oneRouteManifests } from '../helpers/ingress-manifests.ts';
import { run, spawnChild } from '../../src/common/exec-adapter.ts';
import { freePort } from '../helpers/ports.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const GW = 'gateway.networking.k8s.io/v1';

/** One request on a new connection, kept open; resolves with the answer's first line and body. */
function requestOn(host: string, port: number, hostHeader: string): Promise<{ close: () => void; text: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, host);
    let out = '';
    s.on('error', reject);
    s.on('data', (b: Buffer) => {
      out += b.toString();
      if (/\r\n\r\n[\s\S]*(ingress|gateway)$/.test(out)) resolve({ close: () => s.destroy(), text: out });
    });
    s.write(`GET / HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n`);
  });
}

if (needsRoot(t, 'nothing but loopback; kept with the other ingress e2e files')) {
  t.test('two workers: a Gateway listener on the Ingress port number, its own address', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'kdp-gw-workers-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const backends: Server[] = [];
    const backend = async (body: string) => {
      const b = createServer((_req, res) => res.writeHead(200, { 'content-length': String(body.length) }).end(body));
      await new Promise<void>((r) => b.listen(0, '127.0.0.1', r));
      backends.push(b);
      return (b.address() as AddressInfo).port;
    };
    t.teardown(() => Promise.all(backends.map((b) => new Promise((r) => (b.closeAllConnections(), b.close(r))))));
    const ingressBackend = await backend('ingress');
    const gatewayBackend = await backend('gateway');
    const list = oneRouteManifests('ing', 'w.test', ingressBackend) as { items: object[] };
    const gw = oneRouteManifests('gw', 'unused.test', gatewayBackend) as { items: { kind: string }[] };
    const http = await freePort();
    list.items.push(
      ...gw.items.filter((i) => i.kind === 'Service' || i.kind === 'EndpointSlice'),
      {
        apiVersion: GW,
        kind: 'GatewayClass',
        metadata: { name: 'kdp' },
        spec: { controllerName: 'kdp.dev/gateway-controller' },
      },
      {
        apiVersion: GW,
        kind: 'Gateway',
        metadata: { name: 'edge', namespace: 'default' },
        spec: { gatewayClassName: 'kdp', listeners: [{ name: 'http', protocol: 'HTTP', port: http }] },
      },
      {
        apiVersion: GW,
        kind: 'HTTPRoute',
        metadata: { name: 'gw', namespace: 'default' },
        spec: { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'gw', port: 80 }] }] },
      },
    );
    await writeFile(join(dir, 'm.json'), JSON.stringify(list));
    const net = `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}`;
    // the address the pool gives default/edge (the status report computes it the same way)
    const statusOut = await run([
      process.execPath,
      MAIN,
      '--log-level',
      'silent',
      'status',
      '--manifests',
      dir,
      '--json',
    ]);
    const defaultAddr = (
      JSON.parse(statusOut.stdout) as { gateway: { gateways: { addresses: { value: string }[] }[] } }
    ).gateway.gateways[0]!.addresses[0]!.value;
    const addr = `${net}.${defaultAddr.split('.')[3]}`; // same offset in a /24 pool
    const child = spawnChild(
      kdpIngressArgv(
        { manifests: dir, http, https: await freePort(), global: ['--log-level', 'info'] },
        '--healthz-port=-1',
        '--workers',
        '2',
        '--gateway-addresses',
        `${net}.0/24`,
      ),
    );
    t.teardown(async () => {
      child.kill('SIGTERM');
      await Promise.race([child.exited, new Promise((r) => setTimeout(r, 5000))]);
      child.kill('SIGKILL');
    });
    const end = Date.now() + 60_000;
    for (;;) {
      const ok = await requestOn(addr, http, 'any.test')
        .then((c) => (c.close(), c.text.endsWith('gateway')))
        .catch(() => false);
      if (ok) break;
      if (Date.now() > end)
        throw new Error(`the Gateway on ${addr}:${http}: not serving (output: ${child.output().slice(-800)})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // both workers listen on both sockets (each logs its listener open): connections spread over both processes
    while ((child.output().match(/"msg":"gateway listener open"/g) ?? []).length < 2) {
      if (Date.now() > end) throw new Error(`two workers' Gateway listeners (output: ${child.output().slice(-800)})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const conns = await Promise.all(Array.from({ length: 16 }, () => requestOn(addr, http, 'any.test')));
    t.ok(
      conns.every((c) => c.text.startsWith('HTTP/1.1 200') && c.text.endsWith('gateway')),
      'the Gateway route',
    );
    const ss = await run(['ss', '-Htnp', 'state', 'established', `( sport = :${http} )`]);
    const pids = new Set([...ss.stdout.matchAll(/pid=(\d+)/g)].map((m) => m[1]));
    t.equal(pids.size, 2, `accepted by two processes (${[...pids].join(', ')})`);
    for (const c of conns) c.close();
    // the Ingress port, same number on 127.0.0.1: the Ingress route, not the Gateway's
    const ing = await requestOn('127.0.0.1', http, 'w.test');
    ing.close();
    t.match(ing.text, /^HTTP\/1\.1 200[\s\S]*ingress$/);
  });
}
