// Composition: server blocks (from a Corefile or flags) + a ClusterSource -> running DNS servers and the
// /health, /ready and /metrics endpoints. The source is started in the background: until its initial
// sync the kubernetes zones answer SERVFAIL and /ready says 503.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { KdpError, errorMessage } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { ClusterSource } from '../k8s/source.ts';
import type { Plugin } from './chain.ts';
import { inPluginOrder } from './chain.ts';
import type { BlockConfig } from './corefile.ts';
import { DnsMetrics } from './metrics.ts';
import { AutopathPlugin, parseResolvSearch } from './plugins/autopath.ts';
import { CachePlugin } from './plugins/cache.ts';
import { ErrorsPlugin } from './plugins/errors.ts';
import { DEFAULT_FORWARD, ForwardPlugin, resolveUpstreams } from './plugins/forward.ts';
import { KubernetesRecords } from './plugins/kubernetes/handler.ts';
import { KubernetesPlugin } from './plugins/kubernetes/plugin.ts';
import { LoadbalancePlugin } from './plugins/loadbalance.ts';
import { LogPlugin } from './plugins/log.ts';
import { LoopPlugin } from './plugins/loop.ts';
import { DnsServer } from './server.ts';
import type { AnswerSource, ServerBlock } from './server.ts';
import { TYPE, encodeQuery } from './wire.ts';

interface DnsOptions {
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
  /** SO_REUSEPORT on every DNS socket: one of several worker processes on the same ports */
  readonly reusePort?: boolean;
  /** the UDP sockets' I/O (DnsServerOptions.udpIo) */
  readonly udpIo?: 'auto' | 'mmsg' | 'dgram';
  /** this worker's index, as the label of kdp_dns_worker_requests_total (--workers N) */
  readonly worker?: number;
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
  /** the UDP I/O each DNS port's server uses (config port -> 'mmsg' | 'dgram') */
  readonly udpIo: ReadonlyMap<number, 'mmsg' | 'dgram' | undefined>;
  /**
   * Applies a new configuration to the running server (Corefile reload): listeners on unchanged ports and
   * their open TCP connections stay, the cluster state is kept. false: it cannot be done in place (the
   * kubernetes blocks changed in number, or `pods verified` needs a pod watch); restart instead.
   * Throws (and keeps the running configuration) when the new one cannot be built.
   */
  reload(blocks: readonly BlockConfig[]): Promise<boolean>;
  close(): Promise<void>;
}

/** Where /health, /ready and /metrics listen for these blocks: the overrides, else the Corefile's plugins. */
export function httpAddresses(
  bs: readonly BlockConfig[],
  opts: Pick<DnsOptions, 'healthAddr' | 'readyAddr' | 'metricsAddr'>,
): Record<'health' | 'ready' | 'metrics', string | undefined> {
  return {
    health: opts.healthAddr ?? bs[0]?.health?.addr,
    ready: opts.readyAddr ?? bs.find((b) => b.ready)?.ready?.addr,
    metrics: opts.metricsAddr ?? bs.find((b) => b.prometheus)?.prometheus?.addr,
  };
}

function splitAddr(addr: string, defHost: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(addr);
  const host = m ? (m[1] as string) : addr;
  const port = m ? Number(m[2]) : 0;
  return { host: host === '' ? defHost : host === 'localhost' ? '127.0.0.1' : host.replace(/^\[|\]$/g, ''), port };
}

export async function listenHttp(
  addr: string,
  handler: Parameters<typeof createServer>[1],
): Promise<{ server: Server; port: number }> {
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

interface Built {
  readonly byPort: Map<number, ServerBlock[]>;
  readonly plugins: Plugin[];
  readonly records: KubernetesRecords[];
  readonly loops: { plugin: LoopPlugin; port: number }[];
}

/**
 * The plugin chains of `blocks`, grouped by port. `reuse`: the kubernetes state of the running
 * configuration, taken over in order (a reload keeps the cluster state and its source subscription).
 */
function build(
  source: ClusterSource,
  blocks: readonly BlockConfig[],
  opts: DnsOptions,
  metrics: DnsMetrics,
  reuse: readonly KubernetesRecords[] = [],
): Built {
  const log = opts.log;
  const records: KubernetesRecords[] = [];
  const plugins: Plugin[] = [];
  const loops: Built['loops'] = [];
  const byPort = new Map<number, ServerBlock[]>();
  const reconfigure: (() => void)[] = []; // applied once everything is built (a failed build changes nothing)
  try {
    for (const b of blocks) {
      const chain: Plugin[] = [];
      for (const what of b.ignored)
        log.warn({ zones: b.zones, port: b.port }, `Corefile option accepted but not applied: ${what}`);
      // the directives the block has, in any order; the chain runs them in PLUGIN_ORDER (plugin.cfg)
      if (b.errors) chain.push(new ErrorsPlugin(b.consolidate, { log }));
      if (b.log) chain.push(new LogPlugin(log));
      if (b.loadbalance) chain.push(new LoadbalancePlugin());
      if (b.loop) {
        const lp = new LoopPlugin(b.zones[0] ?? '', log);
        loops.push({ plugin: lp, port: opts.port ?? b.port });
        chain.push(lp);
      }
      if (b.cache)
        chain.push(
          new CachePlugin(b.cache, {
            stats: metrics.cacheStats(b.cache.zones.map((z) => (z === '' ? '.' : z + '.')).join(',')),
          }),
        );
      if (b.kubernetes) {
        let rec = reuse[records.length];
        if (rec) {
          const [r, k] = [rec, b.kubernetes];
          reconfigure.push(() => r.reconfigure(k));
        } else {
          rec = new KubernetesRecords(b.kubernetes, { log, registry: metrics.registry });
          rec.attach(source);
        }
        records.push(rec);
        chain.push(new KubernetesPlugin(rec));
      }
      if (b.autopath)
        chain.push(autopathPlugin(b, b.kubernetes ? records[records.length - 1] : undefined, opts, metrics));
      if (b.forward) {
        const upstreams = resolveUpstreams(b.forward.to, opts.readFile);
        chain.push(
          new ForwardPlugin(
            {
              ...DEFAULT_FORWARD,
              from: b.forward.from,
              upstreams,
              except: b.forward.except,
              policy: b.forward.policy,
              maxFails: b.forward.maxFails,
              healthCheckMs: b.forward.healthCheckMs,
              forceTcp: b.forward.forceTcp,
              maxConcurrent: b.forward.maxConcurrent,
            },
            { log, stats: metrics.forwardStats() },
          ),
        );
      }
      plugins.push(...chain);
      const port = opts.port ?? b.port;
      const list = byPort.get(port) ?? [];
      for (const z of b.zones)
        if (list.some((o) => o.zones.includes(z)))
          throw new KdpError(
            'KDP_DNS_CONFIG',
            `cannot serve dns://${z === '' ? '.' : z + '.'}:${port} - it is already defined (two server blocks on one port after --port)`,
          );
      list.push({
        zones: b.zones,
        plugins: inPluginOrder(chain),
        ...(opts.fastPath === false ? { fastPath: false } : {}),
      });
      byPort.set(port, list);
    }
  } catch (err) {
    for (const p of plugins) void p.close?.();
    throw err;
  }
  for (const fn of reconfigure) fn();
  return { byPort, plugins, records, loops };
}

/**
 * The block's autopath: the search path of a resolv.conf, or the asking pod's from the block's kubernetes
 * plugin (with the search domains of this server's /etc/resolv.conf after the cluster's, as CoreDNS does).
 */
function autopathPlugin(
  b: BlockConfig,
  rec: KubernetesRecords | undefined,
  opts: DnsOptions,
  metrics: DnsMetrics,
): AutopathPlugin {
  const spec = b.autopath!;
  const read = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const stats = metrics.autopathStats();
  if ('file' in spec.from) {
    let text: string;
    try {
      text = read(spec.from.file);
    } catch (err) {
      throw new KdpError(
        'KDP_DNS_CONFIG',
        `Corefile:${spec.line}: autopath: failed to parse ${JSON.stringify(spec.from.file)}: ${errorMessage(err)}`,
        { cause: err },
      );
    }
    return new AutopathPlugin({ zones: spec.zones, search: [...parseResolvSearch(text), ''] }, { stats });
  }
  if (!rec || b.kubernetes?.pods !== 'verified')
    opts.log.warn(
      { zones: b.zones, line: spec.line },
      rec
        ? 'autopath @kubernetes does nothing: the kubernetes plugin needs `pods verified` to know the asking pod'
        : 'autopath @kubernetes does nothing: no kubernetes plugin in this server block',
    );
  let hostSearch: string[] = [];
  try {
    hostSearch = parseResolvSearch(read('/etc/resolv.conf'));
  } catch {
    // no resolv.conf: the cluster's search path alone (CoreDNS: searchFromResolvConf returns nil)
  }
  return new AutopathPlugin(
    { zones: spec.zones, search: [] },
    { stats, searchFunc: rec ? (lname, client) => rec.autoPath(lname, client, hostSearch) : () => undefined },
  );
}

/** Whether `next` can replace `current` in place: the same kubernetes blocks, in order, needing no new watch. */
function reloadableInPlace(records: readonly KubernetesRecords[], next: readonly BlockConfig[]): boolean {
  const ks = next.filter((b) => b.kubernetes).map((b) => b.kubernetes!);
  return ks.length === records.length && ks.every((k, i) => records[i]!.canReconfigure(k));
}

export async function startDns(
  source: ClusterSource,
  blocks: readonly BlockConfig[],
  opts: DnsOptions,
): Promise<RunningDns> {
  const log = opts.log;
  const metrics = new DnsMetrics({
    server: 'dns://',
    version: opts.version,
    ...(opts.worker !== undefined ? { worker: opts.worker } : {}),
  });
  let cfg = blocks;
  let built = build(source, blocks, opts, metrics);
  // one change signal over all kubernetes plugins, for the fast path (the records survive reloads)
  let gen = 0;
  const answers: AnswerSource | undefined =
    built.records.length === 0 || opts.fastPath === false
      ? undefined
      : {
          get generation() {
            return gen + built.records.reduce((s, r) => s + r.generation, 0);
          },
          onChange(fn) {
            const offs = built.records.map((r) => r.onChange(fn));
            return () => offs.forEach((o) => o());
          },
        };
  const servers = new Map<number, DnsServer>();
  const ports = new Map<number, number>();
  const https = new Map<'health' | 'ready' | 'metrics', { addr: string; server: Server; port: number }>();
  let closing = false;
  const closeHttp = (h: { server: Server }) => new Promise<void>((r) => h.server.close(() => r()));
  const closeAll = async () => {
    await Promise.all([...[...servers.values()].map((s) => s.close()), ...[...https.values()].map(closeHttp)]);
    await Promise.all(built.plugins.map((p) => p.close?.()));
    for (const r of built.records) r.stop();
  };
  const startServer = async (port: number, list: ServerBlock[]) => {
    const s = new DnsServer({
      host: opts.host ?? '',
      port,
      blocks: list,
      log,
      metrics,
      ...(answers ? { answers } : {}),
      ...(opts.reusePort ? { reusePort: true } : {}),
      ...(opts.udpIo ? { udpIo: opts.udpIo } : {}),
    });
    await s.start();
    servers.set(port, s);
    ports.set(port, s.port);
  };
  const handlers = {
    health: (req: IncomingMessage, res: ServerResponse) => {
      if (req.url !== '/health') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
    },
    ready: (req: IncomingMessage, res: ServerResponse) => {
      if (req.url !== '/ready') return void res.writeHead(404).end();
      const notReady = built.plugins.filter((p) => p.ready && !p.ready()).map((p) => p.name);
      if (closing || notReady.length > 0)
        res.writeHead(503, { 'content-type': 'text/plain' }).end([...new Set(notReady)].join(',') || 'shutting down');
      else res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
    },
    metrics: (req: IncomingMessage, res: ServerResponse) => {
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err) => res.writeHead(500).end(errorMessage(err)),
      );
    },
  };
  /** opens, keeps or closes the /health /ready /metrics listeners for `bs` (kept when the address is the same) */
  const syncHttp = async (bs: readonly BlockConfig[]) => {
    const want = httpAddresses(bs, opts);
    for (const kind of ['health', 'ready', 'metrics'] as const) {
      const addr = want[kind];
      const have = https.get(kind);
      if (have && have.addr === addr) continue;
      if (have) {
        https.delete(kind);
        await closeHttp(have);
      }
      if (addr) {
        const h = await listenHttp(addr, handlers[kind]);
        https.set(kind, { addr, ...h });
      }
    }
  };
  const probeLoops = (loops: Built['loops']) => {
    for (const l of loops) sendLoopProbes(l.plugin, ports.get(l.port) ?? 53, opts.host ?? '');
  };
  try {
    for (const [port, list] of built.byPort) await startServer(port, list);
    await syncHttp(cfg);
    const synced = source.start().then(
      async () => {
        await Promise.all(built.records.map((r) => r.settled()));
        log.info({}, 'cluster state synced');
      },
      (err) => {
        log.error({ err: errorMessage(err) }, 'cluster source failed to start; kubernetes zones answer SERVFAIL');
        throw err;
      },
    );
    synced.catch(() => {});
    probeLoops(built.loops);
    const running: RunningDns = {
      ports,
      metrics,
      synced,
      get udpIo() {
        return new Map([...servers].map(([port, s]) => [port, s.udpIo]));
      },
      get records() {
        return built.records;
      },
      get healthPort() {
        return https.get('health')?.port;
      },
      get readyPort() {
        return https.get('ready')?.port;
      },
      get metricsPort() {
        return https.get('metrics')?.port;
      },
      async reload(next) {
        if (closing) return false;
        if (!reloadableInPlace(built.records, next)) return false;
        const old = built;
        const fresh = build(source, next, opts, metrics, old.records);
        built = fresh;
        cfg = next;
        // same port: the blocks are swapped under the listening sockets; new ports start; gone ones stop
        for (const [port, list] of fresh.byPort) {
          const s = servers.get(port);
          if (s) s.setBlocks(list);
          else await startServer(port, list);
        }
        for (const [port, s] of [...servers]) {
          if (fresh.byPort.has(port)) continue;
          servers.delete(port);
          ports.delete(port);
          await s.close();
        }
        await syncHttp(next);
        probeLoops(fresh.loops);
        // the old chains' own resources (forward health checks, timers); their in-flight queries finish
        await Promise.all(old.plugins.map((p) => p.close?.()));
        log.info({ dns: Object.fromEntries(ports) }, 'Corefile reloaded in place');
        return true;
      },
      async close() {
        closing = true;
        const lameduckMs = opts.lameduckMs ?? cfg[0]?.health?.lameduckMs ?? 0;
        if (lameduckMs > 0) await new Promise((r) => setTimeout(r, lameduckMs));
        gen++;
        await closeAll();
        await source.stop();
      },
    };
    log.info(
      {
        dns: Object.fromEntries(ports),
        healthPort: running.healthPort,
        readyPort: running.readyPort,
        metricsPort: running.metricsPort,
      },
      'kdp dns listening',
    );
    return running;
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
  sock.send(encodeQuery({ id: 1, name: p.probe, type: TYPE.HINFO }), port, target, () =>
    setTimeout(() => sock.close(), 2500).unref(),
  );
}
