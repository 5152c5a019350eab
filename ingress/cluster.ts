// Several worker processes (`kdp ingress --workers N`, node:cluster): the primary serves /healthz and
// /metrics on 10254 for all of them. /metrics asks every worker for its registry over the cluster IPC
// channel (prom-client's AggregatorRegistry) and sums counters and histograms per label set; gauges use the
// aggregator declared on them (metrics.ts). /healthz is 200 once every live worker has installed its first
// route table. Dead workers are forked again (not while stopping). What a worker must not get through its
// environment (the default certificate's private key: /proc/<pid>/environ, crash reports and child processes
// would carry it) it asks for over the same IPC channel (configFromPrimary).
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry } from 'prom-client';
import type { Logger } from '../src/common/log.ts';
import { WorkerSlots } from '../src/common/worker-slots.ts';
import type { IngressMetrics } from './metrics.ts';

const READY = 'kdp-ingress:ready';
const CONFIG_REQUEST = 'kdp-ingress:config?';
const CONFIG = 'kdp-ingress:config';

/**
 * Worker side: the primary's WorkerSetOptions.config, asked for over the IPC channel; undefined when this
 * process is not a cluster worker. Rejects if the primary does not answer within timeoutMs.
 */
export function configFromPrimary<T>(timeoutMs = 10_000): Promise<T | undefined> {
  const send = process.send?.bind(process);
  if (!cluster.isWorker || !send) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type?: string; config?: T }) => {
      if (m?.type !== CONFIG) return;
      done();
      resolve(m.config);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no configuration from the ingress primary within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      process.off('message', onMessage);
    };
    process.on('message', onMessage);
    send({ type: CONFIG_REQUEST });
  });
}

/** Worker side: answer the primary's metric requests from this instance's registry; say when serving. */
export function joinPrimary(metrics: IngressMetrics): void {
  if (!cluster.isWorker) return;
  AggregatorRegistry.setRegistries(metrics.registry);
  new AggregatorRegistry(); // installs the worker's IPC listener for the primary's requests
  process.send?.({ type: READY });
}

interface WorkerSetOptions {
  readonly count: number;
  /** each worker's environment additions: nothing secret (see config) */
  readonly env: (index: number) => NodeJS.ProcessEnv;
  /** handed to every worker that asks (configFromPrimary) over its IPC channel, e.g. key material */
  readonly config?: unknown;
  readonly log: Logger;
  /** /healthz and /metrics for all workers; undefined or < 0: none */
  readonly metricsPort?: number;
  readonly bind?: string;
  /** min milliseconds between two forks of the same slot after it died */
  readonly restartDelayMs?: number;
}

export class WorkerSet {
  readonly #opts: WorkerSetOptions;
  readonly #slots: WorkerSlots;
  readonly #ready = new Set<Worker>();
  readonly #aggregator = new AggregatorRegistry();
  #health: Server | undefined;
  /** a worker exited non-zero while not stopping (it is forked again; the primary still exits 1 at the end) */
  #crashed = false;
  /** aborted when every worker failed before serving */
  readonly allFailed: AbortSignal;

  constructor(opts: WorkerSetOptions) {
    this.#opts = opts;
    this.#slots = new WorkerSlots({
      ...opts,
      what: 'ingress worker',
      attach: (w) =>
        w.on('message', (m: { type?: string }) => {
          if (m?.type === READY) {
            this.#ready.add(w);
            this.#slots.served(w);
          } else if (m?.type === CONFIG_REQUEST && w.isConnected()) w.send({ type: CONFIG, config: opts.config });
        }),
      exited: (w, code) => {
        this.#ready.delete(w);
        if (!this.#slots.stopping) this.#crashed ||= code !== 0;
      },
    });
    this.allFailed = this.#slots.allFailed;
  }

  /** a worker failed before serving, or exited non-zero */
  get failed(): boolean {
    return this.#slots.failed || this.#crashed;
  }

  /** forks after a worker died (for tests and logs) */
  get restarts(): number {
    return this.#slots.restarts;
  }

  async start(): Promise<{ metrics?: number }> {
    this.#slots.start();
    if (this.#opts.metricsPort === undefined || this.#opts.metricsPort < 0) return {};
    const health = createServer((req, res) => {
      if (req.url === '/healthz') {
        const ok = this.ready;
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
      } else if (req.url === '/metrics') {
        this.#aggregator.clusterMetrics().then(
          (text) => res.writeHead(200, { 'content-type': this.#aggregator.contentType }).end(text),
          (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
        );
      } else res.writeHead(404).end();
    });
    this.#health = health;
    await new Promise<void>((r, j) =>
      health.once('error', j).listen(this.#opts.metricsPort, this.#opts.bind ?? '::', () => r()),
    );
    return { metrics: (health.address() as AddressInfo).port };
  }

  /** every live worker has its first route table installed */
  get ready(): boolean {
    const live = this.#slots.live();
    return live.length > 0 && live.every((w) => this.#ready.has(w));
  }

  /** SIGTERM to every worker (each drains on its own), then waits for them to exit. */
  async stop(): Promise<void> {
    await this.#slots.stop();
    const h = this.#health;
    if (h) await new Promise((r) => (h.closeAllConnections(), h.close(r)));
  }
}
