// The proxy's HTTP endpoints: /healthz and /livez (kube-proxy: 10256), /metrics and /proxyMode (10249), and
// one health-check server per `externalTrafficPolicy: Local` service on its healthCheckNodePort, answering
// 200 when this node has a ready local endpoint and 503 when it has none (load balancers steer by it).
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { Logger } from '../common/log.ts';
import { errorMessage } from '../common/errors.ts';
import type { HealthCheckState } from './proxier.ts';

interface ProxyStatus {
  initialized: boolean;
  syncs: number;
  pending: number;
  lastSyncOk?: number;
  lastQueued?: number;
  failures: number;
}

/** Healthy unless a change has waited longer than `timeoutMs` for a successful sync (kube-proxy's rule). */
export function isHealthy(s: ProxyStatus, now: number, timeoutMs: number): boolean {
  if (!s.initialized) return false;
  if (s.lastQueued === undefined) return true;
  const synced = s.lastSyncOk ?? 0;
  return synced >= s.lastQueued || now - s.lastQueued < timeoutMs;
}

function listen(srv: Server, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host, port }, () => {
      srv.off('error', reject);
      resolve(srv);
    });
  });
}

function close(srv: Server): Promise<void> {
  return new Promise((r) => {
    srv.closeAllConnections();
    srv.close(() => r());
  });
}

export async function startHealthServer(opts: {
  host: string;
  port: number;
  status: () => ProxyStatus;
  timeoutMs: number;
  nodeName: string;
}): Promise<Server> {
  const srv = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/healthz' && path !== '/livez') {
      res.writeHead(404).end();
      return;
    }
    const s = opts.status();
    const now = Date.now();
    const ok = isHealthy(s, now, opts.timeoutMs);
    const body = {
      lastUpdated: s.lastSyncOk ? new Date(s.lastSyncOk).toISOString() : '',
      currentTime: new Date(now).toISOString(),
      nodeEligible: true,
      node: opts.nodeName,
      ...s,
    };
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
  });
  return listen(srv, opts.host, opts.port);
}

export async function startMetricsServer(opts: {
  host: string;
  port: number;
  metrics: () => Promise<string>;
  contentType: string;
  /** answered on /proxyMode, as kube-proxy does (e2e "should check kube-proxy urls") */
  mode: string;
}): Promise<Server> {
  const srv = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/proxyMode') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(opts.mode);
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    opts.metrics().then(
      (text) => res.writeHead(200, { 'content-type': opts.contentType }).end(text),
      (err) => res.writeHead(500).end(errorMessage(err)),
    );
  });
  return listen(srv, opts.host, opts.port);
}

/** Keeps one server per healthCheckNodePort in step with the proxier's state. */
export class HealthCheckServers {
  readonly #host: string;
  readonly #log: Logger;
  readonly #servers = new Map<number, { server: Server; state: HealthCheckState }>();
  #queue: Promise<void> = Promise.resolve();

  constructor(opts: { host: string; log: Logger }) {
    this.#host = opts.host;
    this.#log = opts.log;
  }

  /** Reconciles listeners with the desired set (serialised; never throws). */
  update(states: readonly HealthCheckState[]): Promise<void> {
    this.#queue = this.#queue.then(() => this.#reconcile(states));
    return this.#queue;
  }

  async #reconcile(states: readonly HealthCheckState[]): Promise<void> {
    const want = new Map(states.map((s) => [s.healthCheckNodePort, s]));
    for (const [port, entry] of this.#servers) {
      if (!want.has(port)) {
        this.#servers.delete(port);
        await close(entry.server);
      }
    }
    for (const [port, state] of want) {
      const cur = this.#servers.get(port);
      if (cur) {
        cur.state = state;
        continue;
      }
      const entry = { server: undefined as unknown as Server, state };
      const srv = createServer((_req, res) => {
        const st = entry.state;
        const [namespace, name] = st.service.split('/');
        res
          .writeHead(st.localEndpoints > 0 ? 200 : 503, {
            'content-type': 'application/json',
            'x-content-type-options': 'nosniff',
            'x-load-balancing-endpoint-weight': String(st.localEndpoints),
          })
          .end(
            JSON.stringify({
              service: { namespace, name },
              localEndpoints: st.localEndpoints,
              serviceProxyHealthy: true,
            }) + '\n',
          );
      });
      try {
        entry.server = await listen(srv, this.#host, port);
        this.#servers.set(port, entry);
      } catch (err) {
        this.#log.warn(
          { port, service: state.service, err: errorMessage(err) },
          'health check node port cannot listen',
        );
      }
    }
  }

  async close(): Promise<void> {
    await this.#queue;
    await Promise.all([...this.#servers.values()].map((e) => close(e.server)));
    this.#servers.clear();
  }
}
