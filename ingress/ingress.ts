// Composition of the ingress controller: source -> controller -> route table -> server, plus the
// /healthz and /metrics endpoint (ingress-nginx's port 10254). `startIngress` is what `kdp ingress` runs.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TlsIo } from './server.ts';
import type { TcpIo } from './tcp-io.ts';
import type { ClusterSource } from '../src/k8s/source.ts';
import type { Logger } from '../src/common/log.ts';
import { silentLogger } from '../src/common/log.ts';
import { BufferedAccessLog } from './access-log.ts';
import type { CompileOptions } from './compile.ts';
import { IngressController } from './controller.ts';
import type { ControllerOptions } from './controller.ts';
import { fakeCertificate } from './default-cert.ts';
import type { CertPair } from './default-cert.ts';
import { IngressMetrics } from './metrics.ts';
import { AddressPool } from './gateway/addresses.ts';
import { GatewayController } from './gateway/controller.ts';
import type { GatewayStatusWriter } from './gateway/controller.ts';
import { GatewayListeners } from './gateway/listeners.ts';
import { IngressServer } from './server.ts';
import { preloadUpstreamLibrary } from './upstream.ts';
import type { PoolSettings } from './upstream.ts';
import type { RouteTable } from './types.ts';

export interface IngressOptions {
  readonly log?: Logger;
  readonly httpPort?: number;
  readonly httpsPort?: number;
  /** /healthz and /metrics; undefined or -1 disables */
  readonly metricsPort?: number;
  readonly bind?: string;
  readonly compile?: Partial<CompileOptions>;
  readonly defaultCert?: CertPair;
  /** where access log lines go (undefined: no access log) */
  readonly accessLog?: (chunk: string) => void;
  readonly pool?: PoolSettings;
  readonly processMetrics?: boolean;
  /** SO_REUSEPORT on the HTTP/HTTPS ports (several worker processes, each with its own listening socket) */
  readonly reusePort?: boolean;
  /** the Server response header (default `kdp`) */
  readonly serverHeader?: string;
  /** request head limits (defaults: nginx's 8 KiB per line, 32 KiB in all) */
  readonly maxHeaderLine?: number;
  readonly maxHeaderSize?: number;
  /** plain TCP reads (kdp ingress --tcp-io): the native addon's batches or node's; default auto */
  readonly tcpIo?: TcpIo;
  /** HTTP/1.1 over TLS (kdp ingress --tls-io): in the addon (auto, with batched reads) or node:tls's */
  readonly tlsIo?: TlsIo;
  /** TLS session ticket keys shared by the workers of one ingress (ServerOptions.ticketKeys) */
  readonly ticketKeys?: Buffer;
  /** status.loadBalancer publishing (Kubernetes mode) */
  readonly status?: ControllerOptions['status'];
  /**
   * Gateway API serving (default on): Gateways get their address from `addresses` (a CIDR, default
   * 127.0.10.0/24) unless they name one; `status` writes the objects' status (Kubernetes mode)
   */
  readonly gateway?: {
    readonly enabled?: boolean;
    readonly addresses?: string;
    readonly status?: GatewayStatusWriter;
    /** requests in flight on a listener that goes away get this long (default 10 s) */
    readonly graceMs?: number;
  };
}

interface RunningIngress {
  readonly server: IngressServer;
  readonly controller: IngressController;
  /** the Gateway API reconciler and its listeners (undefined when Gateway API serving is off) */
  readonly gateway?: { readonly controller: GatewayController; readonly listeners: GatewayListeners };
  readonly metrics: IngressMetrics;
  readonly ports: { readonly http: number; readonly https: number; readonly metrics?: number };
  /** Graceful: requests in flight get up to `graceMs` (default 0) to finish. */
  close(graceMs?: number): Promise<void>;
}

/** Starts the controller over `source` (not yet started): listens only after the first route table is built. */
export async function startIngress(source: ClusterSource, opts: IngressOptions = {}): Promise<RunningIngress> {
  const log = opts.log ?? silentLogger;
  const metrics = new IngressMetrics({ processMetrics: opts.processMetrics ?? true });
  // the default certificate (openssl, ~0.1-0.5 s) is made while the cluster state loads; the controller's first
  // table waits in `pending` if it comes before the server exists
  const certP = opts.defaultCert ? Promise.resolve(opts.defaultCert) : fakeCertificate();
  certP.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
  // one access log for the Ingress ports and every Gateway listener
  const accessLog = opts.accessLog ? new BufferedAccessLog(opts.accessLog) : undefined;
  let server: IngressServer | undefined;
  let pending: RouteTable | undefined;
  const sink = { setTable: (t: RouteTable) => (server ? server.setTable(t) : void (pending = t)) };
  const controller = new IngressController(sink, {
    log,
    metrics,
    ...(opts.compile ? { compile: opts.compile } : {}),
    ...(opts.status ? { status: opts.status } : {}),
  });
  const unsubscribe = controller.attach(source);
  // Gateway API: its own reconciler on the same source; every Gateway (address, port) is a server of its own
  // (same lanes, same metrics, its own route table), opened and closed as Gateways come and go
  let gateway: { controller: GatewayController; listeners: GatewayListeners; detach: () => void } | undefined;
  if (opts.gateway?.enabled !== false) {
    const pool = new AddressPool(opts.gateway?.addresses);
    const listeners = new GatewayListeners(
      (l) => {
        // made on listen(): the default certificate may still be on its way when the first tables come
        let srv: IngressServer | undefined;
        let table: RouteTable | undefined;
        return {
          setTable: (t) => (srv ? srv.setTable(t) : void (table = t)),
          close: async (graceMs) => void (await srv?.close(graceMs)),
          listen: async () => {
            srv = new IngressServer({
              log,
              metrics,
              ...(accessLog ? { accessLog } : {}),
              defaultCert: await certP,
              ...(opts.pool ? { pool: opts.pool } : {}),
              ...(opts.serverHeader !== undefined ? { serverHeader: opts.serverHeader } : {}),
              ...(opts.maxHeaderLine !== undefined ? { maxHeaderLine: opts.maxHeaderLine } : {}),
              ...(opts.maxHeaderSize !== undefined ? { maxHeaderSize: opts.maxHeaderSize } : {}),
              ...(opts.tcpIo ? { tcpIo: opts.tcpIo } : {}),
              ...(opts.tlsIo ? { tlsIo: opts.tlsIo } : {}),
              ...(opts.ticketKeys ? { ticketKeys: opts.ticketKeys } : {}),
              ...(l.gateway !== undefined ? { gateway: l.gateway } : {}),
            });
            if (table) srv.setTable(table);
            // SO_REUSEPORT: the Ingress port on every address and a Gateway's address may share a port number
            await srv.listenOne(l.protocol === 'HTTP' ? 'http' : 'https', {
              httpPort: l.port,
              httpsPort: l.port,
              host: l.address,
              reusePort: true,
            });
          },
        };
      },
      { log, graceMs: opts.gateway?.graceMs ?? 10_000 },
    );
    const gc = new GatewayController(listeners, {
      log,
      metrics,
      pool,
      ...(opts.gateway?.status ? { status: opts.gateway.status } : {}),
    });
    gateway = { controller: gc, listeners, detach: gc.attach(source) };
  }
  let health: Server | undefined;
  try {
    const started = source.start();
    started.catch(() => {}); // awaited below
    const cert = await certP;
    server = new IngressServer({
      log,
      metrics,
      ...(accessLog ? { accessLog } : {}),
      defaultCert: cert,
      ...(opts.pool ? { pool: opts.pool } : {}),
      ...(opts.serverHeader !== undefined ? { serverHeader: opts.serverHeader } : {}),
      ...(opts.maxHeaderLine !== undefined ? { maxHeaderLine: opts.maxHeaderLine } : {}),
      ...(opts.maxHeaderSize !== undefined ? { maxHeaderSize: opts.maxHeaderSize } : {}),
      ...(opts.tcpIo ? { tcpIo: opts.tcpIo } : {}),
      ...(opts.tlsIo ? { tlsIo: opts.tlsIo } : {}),
      ...(opts.ticketKeys ? { ticketKeys: opts.ticketKeys } : {}),
    });
    if (pending) server.setTable(pending);
    await started;
    await controller.whenReady();
    const srv = server;
    const ports = await srv.listen({
      httpPort: opts.httpPort ?? 80,
      httpsPort: opts.httpsPort ?? 443,
      host: opts.bind ?? '::',
      // with Gateway API serving on, a Gateway listener (its own address) may take the same port number
      reusePort: (opts.reusePort ?? false) || gateway !== undefined,
    });
    let metricsPort: number | undefined;
    if (opts.metricsPort !== undefined && opts.metricsPort >= 0) {
      health = createServer((req, res) => {
        if (req.url === '/healthz') {
          res
            .writeHead(controller.ready ? 200 : 503, { 'content-type': 'text/plain' })
            .end(controller.ready ? 'ok\n' : 'not ready\n');
        } else if (req.url === '/metrics') {
          metrics.registry.metrics().then(
            (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
            () => res.writeHead(500).end(),
          );
        } else res.writeHead(404).end();
      });
      await new Promise<void>((r, j) =>
        health!.once('error', j).listen(opts.metricsPort, opts.bind ?? '::', () => r()),
      );
      metricsPort = (health.address() as AddressInfo).port;
    }
    log.info(
      { http: ports.http, https: ports.https, metrics: metricsPort, routes: controller.result?.accepted.length },
      'ingress controller serving',
    );
    setImmediate(() => {
      preloadUpstreamLibrary();
      metrics.startProcessMetrics();
    });
    return {
      server: srv,
      controller,
      metrics,
      ...(gateway ? { gateway: { controller: gateway.controller, listeners: gateway.listeners } } : {}),
      ports: { ...ports, ...(metricsPort === undefined ? {} : { metrics: metricsPort }) },
      async close(graceMs = 0) {
        controller.stop();
        unsubscribe();
        gateway?.controller.stop();
        gateway?.detach();
        await source.stop();
        health?.closeAllConnections();
        await Promise.all([
          srv.close(graceMs),
          gateway?.listeners.close(graceMs),
          health ? new Promise((r) => health!.close(r)) : undefined,
        ]);
      },
    };
  } catch (err) {
    controller.stop();
    unsubscribe();
    gateway?.controller.stop();
    gateway?.detach();
    await gateway?.listeners.close().catch(() => {});
    await source.stop().catch(() => {});
    await server?.close().catch(() => {});
    health?.close();
    throw err;
  }
}
