// Composition: server blocks (from a Corefile or flags) + a ClusterSource -> running DNS servers and the
// /health, /ready and /metrics endpoints. The source is started in the background: until its initial
// sync the kubernetes zones answer SERVFAIL and /ready says 503.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { errorMessage } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { ClusterSource } from '../k8s/handlers.ts';
import type { DnsReply, DnsRequest, Next, Plugin } from './chain.ts';
import type { BlockConfig } from './corefile.ts';
import { DnsMetrics } from './metrics.ts';
import { CachePlugin } from './plugins/cache.ts';
import { ErrorsPlugin } from './plugins/errors.ts';
import { DEFAULT_FORWARD, ForwardPlugin, resolveUpstreams } from './plugins/forward.ts';
import { KubernetesRecords } from './plugins/kubernetes/handler.ts';
import { KubernetesPlugin } from './plugins/kubernetes/plugin.ts';
import { DnsServer } from './server.ts';
import type { AnswerSource, ServerBlock } from './server.ts';
import { TYPE, encodeQuery } from './wire.ts';

export interface DnsOptions {
  readonly log: Logger;
  readonly version: string;
  /** listen address for DNS (default: every address, IPv6 and IPv4) */
  readonly host?: string;
  /** overrides the port of every server block (tests: 0) */
  readonly port?: number;
  /** override the plugins' addresses ('' disables) */
  readonly healthAddr?: string;
  readonly readyAddr?: string;
  readonly metricsAddr?: string;
  /** override health's lameduck (tests: 0) */
  readonly lameduckMs?: number;
  /** how to read resolv.conf files named by forward */
  readonly readFile?: (path: string) => string;
  /** the reuse of encoded cluster answers (on by default) */
  readonly fastPath?: boolean;
}

export interface RunningDns {
  /** DNS port per server block port (config port -> bound port) */
  readonly ports: ReadonlyMap<number, number>;
  readonly healthPort?: number;
  readonly readyPort?: number;
  readonly metricsPort?: number;
  readonly metrics: DnsMetrics;
  readonly records: readonly KubernetesRecords[];
  /** resolves when the source's initial sync finished */
  readonly synced: Promise<void>;
  close(): Promise<void>;
}

function splitAddr(addr: string, defHost: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(addr);
  const host = m ? (m[1] as string) : addr;
  const port = m ? Number(m[2]) : 0;
  return { host: host === '' ? defHost : host === 'localhost' ? '127.0.0.1' : host.replace(/^\[|\]$/g, ''), port };
}

async function listenHttp(addr: string, handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; port: number }> {
  const { host, port } = splitAddr(addr, '0.0.0.0');
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const a = server.address();
  return { server, port: typeof a === 'object' && a ? a.port : port };
}

/** The loop plugin: notices its own probe query coming back through forward (a resolver loop). */
class LoopPlugin implements Plugin {
  readonly name = 'loop';
  readonly probe: string;
  seen = 0;
  readonly #log: Logger;
  constructor(zone: string, log: Logger) {
    const r = () => randomBytes(8).readBigUInt64BE().toString();
    this.probe = `${r()}.${r()}${zone === '' ? '' : '.' + zone}`;
    this.#log = log;
  }
  async serve(req: DnsRequest, next: Next): Promise<DnsReply> {
    if (req.lname === this.probe && req.qtype === 'HINFO') {
      this.seen++;
      if (this.seen > 2) {
        this.#log.error({ probe: this.probe }, 'Loop detected: forwarding sends our own queries back to us; fix the upstream (resolv.conf)');
        return { plugin: this.name, rcode: 2, aa: false, answers: [], authority: [], additional: [] };
      }
    }
    return next();
  }
  ready(): boolean {
    return this.seen <= 2;
  }
}

export async function startDns(source: ClusterSource, blocks: readonly BlockConfig[], opts: DnsOptions): Promise<RunningDns> {
  const log = opts.log;
  const metrics = new DnsMetrics({ server: 'dns://', version: opts.version });
  const records: KubernetesRecords[] = [];
  const plugins: Plugin[] = [];
  const loops: { plugin: LoopPlugin; port: number; zone: string }[] = [];
  const byPort = new Map<number, ServerBlock[]>();
  for (const b of blocks) {
    const chain: Plugin[] = [];
    for (const what of b.ignored) log.warn({ zones: b.zones, port: b.port }, `Corefile option accepted but not applied: ${what}`);
    // errors only looks at what the rest of the chain answered; it never answers itself
    if (b.errors) chain.push(new ErrorsPlugin(b.consolidate, { log }));
    if (b.loop) {
      const lp = new LoopPlugin(b.zones[0] ?? '', log);
      loops.push({ plugin: lp, port: b.port, zone: b.zones[0] ?? '' });
      chain.push(lp);
    }
    const cache = b.cache ? new CachePlugin(b.cache, { stats: metrics.cacheStats(b.cache.zones.map((z) => (z === '' ? '.' : z + '.')).join(',')) }) : undefined;
    if (cache) chain.push(cache);
    if (b.kubernetes) {
      const rec = new KubernetesRecords(b.kubernetes);
      rec.subscribeTo(source);
      records.push(rec);
      chain.push(new KubernetesPlugin(rec));
    }
    if (b.forward) {
      const upstreams = resolveUpstreams(b.forward.to, opts.readFile);
      chain.push(
        new ForwardPlugin(
          { ...DEFAULT_FORWARD, from: b.forward.from, upstreams, except: b.forward.except, policy: b.forward.policy, maxFails: b.forward.maxFails, healthCheckMs: b.forward.healthCheckMs, forceTcp: b.forward.forceTcp, maxConcurrent: b.forward.maxConcurrent },
          { log, stats: metrics.forwardStats() },
        ),
      );
    }
    plugins.push(...chain);
    const port = opts.port ?? b.port;
    const list = byPort.get(port) ?? [];
    // the cache answers first in the chain (only errors, which never answers, and loop come before it),
    // so its hits can be served from the query's bytes
    list.push({ zones: b.zones, plugins: chain, loadbalance: b.loadbalance, queryLog: b.log, ...(cache && opts.fastPath !== false ? { cache, loop: b.loop } : {}) });
    byPort.set(port, list);
  }
  // one change signal over all kubernetes plugins, for the fast path
  let gen = 0;
  const answers: AnswerSource | undefined =
    records.length === 0 || opts.fastPath === false
      ? undefined
      : {
          get generation() {
            return gen + records.reduce((s, r) => s + r.generation, 0);
          },
          onChange(fn) {
            const offs = records.map((r) => r.onChange(fn));
            return () => offs.forEach((o) => o());
          },
        };
  const servers: DnsServer[] = [];
  const https: Server[] = [];
  const ports = new Map<number, number>();
  const closeAll = async () => {
    await Promise.all([...servers.map((s) => s.close()), ...https.map((h) => new Promise<void>((r) => h.close(() => r())))]);
    await Promise.all(plugins.map((p) => p.close?.()));
  };
  try {
    for (const [port, list] of byPort) {
      const s = new DnsServer({ host: opts.host ?? '', port, blocks: list, log, metrics, ...(answers ? { answers } : {}) });
      servers.push(s);
      ports.set(port, await s.start());
    }
    const first = blocks[0];
    const healthAddr = opts.healthAddr ?? first?.health?.addr;
    const readyAddr = opts.readyAddr ?? blocks.find((b) => b.ready)?.ready?.addr;
    const metricsAddr = opts.metricsAddr ?? blocks.find((b) => b.prometheus)?.prometheus?.addr;
    let closing = false;
    let healthPort: number | undefined;
    let readyPort: number | undefined;
    let metricsPort: number | undefined;
    if (healthAddr) {
      const h = await listenHttp(healthAddr, (req, res) => {
        if (req.url !== '/health') return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
      });
      https.push(h.server);
      healthPort = h.port;
    }
    if (readyAddr) {
      const h = await listenHttp(readyAddr, (req, res) => {
        if (req.url !== '/ready') return void res.writeHead(404).end();
        const notReady = plugins.filter((p) => p.ready && !p.ready()).map((p) => p.name);
        if (closing || notReady.length > 0) res.writeHead(503, { 'content-type': 'text/plain' }).end([...new Set(notReady)].join(',') || 'shutting down');
        else res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
      });
      https.push(h.server);
      readyPort = h.port;
    }
    if (metricsAddr) {
      const h = await listenHttp(metricsAddr, (req, res) => {
        if (req.url !== '/metrics') return void res.writeHead(404).end();
        metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
          (err) => res.writeHead(500).end(errorMessage(err)),
        );
      });
      https.push(h.server);
      metricsPort = h.port;
    }
    const synced = source.start().then(
      () => {
        for (const r of records) r.markSynced();
        log.info({}, 'cluster state synced');
      },
      (err) => {
        log.error({ err: errorMessage(err) }, 'cluster source failed to start; kubernetes zones answer SERVFAIL');
        throw err;
      },
    );
    synced.catch(() => {});
    for (const l of loops) sendLoopProbes(l.plugin, ports.get(opts.port ?? l.port) ?? 53, opts.host ?? '');
    log.info({ dns: Object.fromEntries(ports), healthPort, readyPort, metricsPort }, 'kdp dns listening');
    const lameduckMs = opts.lameduckMs ?? first?.health?.lameduckMs ?? 0;
    return {
      ports, metrics, records, synced,
      ...(healthPort !== undefined ? { healthPort } : {}),
      ...(readyPort !== undefined ? { readyPort } : {}),
      ...(metricsPort !== undefined ? { metricsPort } : {}),
      async close() {
        closing = true;
        if (lameduckMs > 0) await new Promise((r) => setTimeout(r, lameduckMs));
        gen++;
        await closeAll();
        await source.stop();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** Sends the loop plugin's HINFO probe to ourselves once; seeing it more than twice means a loop. */
function sendLoopProbes(p: LoopPlugin, port: number, host: string): void {
  const target = host === '' || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const sock = createSocket(target.includes(':') ? 'udp6' : 'udp4');
  sock.on('error', () => sock.close());
  sock.on('message', () => {});
  sock.send(encodeQuery({ id: 1, name: p.probe, type: TYPE.HINFO }), port, target, () => setTimeout(() => sock.close(), 2500).unref());
}
