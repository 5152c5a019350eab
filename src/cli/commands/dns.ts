// `kdp dns`: the cluster DNS server. Reads a Corefile as-is (--corefile), or builds the kubeadm-like
// configuration from flags; cluster state from --manifests DIR or the Kubernetes API.
import cluster from 'node:cluster';
import { readFileSync, statSync } from 'node:fs';
import type { Server, ServerResponse } from 'node:http';
import { KdpError, errorMessage } from '../../common/errors.ts';
import { parseCorefile, KUBEADM_COREFILE } from '../../dns/corefile.ts';
import type { BlockConfig } from '../../dns/corefile.ts';
import { httpAddresses, listenHttp, startDns } from '../../dns/dns.ts';
import type { RunningDns } from '../../dns/dns.ts';
import { watchCorefile } from '../../dns/reload.ts';
import { DnsServer } from '../../dns/server.ts';
import { DnsWorkers, reportToPrimary } from '../../dns/workers.ts';
import { openSource } from '../../k8s/open-source.ts';
import { untilStopped } from '../command.ts';
import type { Command, CommandContext } from '../command.ts';
import { EXIT_AFTER, exitAfterMs, flagHelp, parseOnlyFlags, warnDeprecated } from '../flags.ts';
import type { FlagTable } from '../flags.ts';
import pkg from '../../../package.json' with { type: 'json' };

const CONFIG_FLAGS = {
  corefile: {
    type: 'string',
    arg: 'FILE',
    help: 'a CoreDNS Corefile, read as-is (the kubeadm default works unchanged)',
    defaultText: 'the kubeadm default Corefile, adjusted by the flags below',
  },
} as const satisfies FlagTable;

const OVERRIDE_FLAGS = {
  listen: { type: 'string', arg: 'HOST', help: 'DNS listen address', defaultText: 'all, IPv6 and IPv4' },
  port: {
    type: 'string',
    arg: 'N',
    help: 'DNS port for every server block (UDP and TCP; 0 = any free port)',
    defaultText: "the Corefile's",
  },
  zones: { type: 'string', arg: 'Z1,Z2', help: 'kubernetes zones', defaultText: "the Corefile's" },
  upstream: {
    type: 'string',
    arg: 'A,B',
    help: 'forward . to these servers (HOST or HOST:PORT) instead of /etc/resolv.conf',
  },
  'resolv-conf': { type: 'string', arg: 'FILE', help: 'forward . to the nameservers of FILE' },
  pods: { type: 'string', arg: 'MODE', help: 'disabled|insecure|verified', defaultText: "the Corefile's" },
  ttl: {
    type: 'string',
    arg: 'N',
    help: "TTL in seconds of cluster records (0..3600; the kubernetes plugin's ttl)",
    defaultText: "the Corefile's",
  },
  health: { type: 'string', arg: 'ADDR', help: "/health address ('' disables)", defaultText: "the Corefile's" },
  ready: { type: 'string', arg: 'ADDR', help: '/ready address', defaultText: "the Corefile's" },
  metrics: { type: 'string', arg: 'ADDR', help: '/metrics address', defaultText: "the Corefile's" },
  lameduck: { type: 'string', arg: 'MS', help: "delay before shutting down after SIGTERM (health's lameduck)" },
  workers: {
    type: 'string',
    arg: 'N',
    help: 'worker processes on the same DNS ports (SO_REUSEPORT, one event loop each); the primary serves /health, /ready and /metrics (summed over the workers)',
    defaultText: '1',
  },
  'udp-io': {
    type: 'string',
    arg: 'IO',
    help: 'auto|mmsg|dgram: mmsg reads and answers UDP in batches (recvmmsg/sendmmsg, the native addon); dgram is node:dgram; auto takes mmsg when the addon is built',
    defaultText: 'auto',
  },
  'no-fast-path': {
    type: 'boolean',
    help: 'every query takes the full path (no reuse of encoded cluster answers, no cache hits from the query bytes)',
  },
} as const satisfies FlagTable;

const STATE_FLAGS = {
  manifests: { type: 'string', arg: 'DIR', help: 'a directory of YAML manifests (watched)' },
  kubeconfig: {
    type: 'string',
    arg: 'FILE',
    help: 'the Kubernetes API',
    defaultText: 'KUBECONFIG, ~/.kube/config or in-cluster',
  },
  ...EXIT_AFTER,
  'ttl-run': { type: 'string', arg: 'SECONDS', help: 'will be removed', deprecated: 'exit-after' },
} as const satisfies FlagTable;

const FLAGS = { ...CONFIG_FLAGS, ...OVERRIDE_FLAGS, ...STATE_FLAGS } as const satisfies FlagTable;

const usage = `Usage: kdp dns [options]

Configuration:
${flagHelp(CONFIG_FLAGS)}

Flags (override the Corefile):
${flagHelp(OVERRIDE_FLAGS)}

Cluster state:
${flagHelp(STATE_FLAGS)}`;

/** Applies the flags to the parsed blocks (pure; unit-tested). */
export function applyFlags(blocks: BlockConfig[], v: Record<string, string | boolean | undefined>): BlockConfig[] {
  return blocks.map((b) => {
    let out: BlockConfig = { ...b };
    if (b.kubernetes) {
      let k = b.kubernetes;
      if (typeof v.zones === 'string')
        k = {
          ...k,
          zones: v.zones
            .split(',')
            .map((z) => z.toLowerCase().replace(/\.$/, ''))
            .filter(Boolean),
        };
      if (typeof v.pods === 'string') {
        if (!['disabled', 'insecure', 'verified'].includes(v.pods))
          throw new KdpError('KDP_USAGE', `--pods takes disabled|insecure|verified`);
        k = { ...k, pods: v.pods as 'disabled' };
      }
      if (typeof v.ttl === 'string') {
        const n = Number(v.ttl);
        if (!Number.isInteger(n) || n < 0 || n > 3600) throw new KdpError('KDP_USAGE', `--ttl takes 0..3600`);
        k = { ...k, ttl: n };
      }
      out = { ...out, kubernetes: k };
    }
    if (b.forward && (typeof v.upstream === 'string' || typeof v['resolv-conf'] === 'string')) {
      const to = typeof v.upstream === 'string' ? v.upstream.split(',').filter(Boolean) : [v['resolv-conf'] as string];
      out = { ...out, forward: { ...b.forward, to } };
    }
    if (b.cache && typeof v.zones === 'string' && b.kubernetes) {
      const zs = (v.zones as string).split(',').map((z) => z.toLowerCase().replace(/\.$/, ''));
      const fwd = zs.filter((z) => !z.endsWith('arpa'));
      out = { ...out, cache: { ...b.cache, disableSuccess: fwd, disableDenial: fwd } };
    }
    return out;
  });
}

async function run(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const v = parseOnlyFlags(FLAGS, argv, warnDeprecated(ctx.log));
  // a worker of `--workers N`: the primary's port, no HTTP endpoints (the primary has them), stopped by the primary
  const worker = cluster.isWorker && process.env.KDP_DNS_WORKER !== undefined ? Number(process.env.KDP_DNS_WORKER) : -1;
  if (worker >= 0) {
    reportToPrimary({ listening: false, ready: false });
    Object.assign(v, { health: '', ready: '', metrics: '', 'exit-after': undefined });
    if (process.env.KDP_DNS_PORT !== undefined) v.port = process.env.KDP_DNS_PORT;
  }
  const exitAfter = exitAfterMs(v['exit-after']);
  let text = KUBEADM_COREFILE;
  if (v.corefile) {
    try {
      text = readFileSync(v.corefile, 'utf8');
    } catch (err) {
      throw new KdpError('KDP_DNS_CONFIG', `cannot read ${v.corefile}: ${errorMessage(err)}`, { cause: err });
    }
  }
  const workers = v.workers === undefined ? 1 : Number(v.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64)
    throw new KdpError('KDP_USAGE', '--workers takes 1..64');
  const port = v.port === undefined ? undefined : Number(v.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536))
    throw new KdpError('KDP_USAGE', '--port takes 0..65535');
  const udpIo = v['udp-io'];
  if (udpIo !== undefined && udpIo !== 'auto' && udpIo !== 'mmsg' && udpIo !== 'dgram')
    throw new KdpError('KDP_USAGE', '--udp-io takes auto|mmsg|dgram');
  const start = (blocks: BlockConfig[]): Promise<RunningDns> =>
    startDns(
      openSource({
        ...(v.manifests ? { manifestsDir: v.manifests } : {}),
        ...(v.kubeconfig ? { kubeconfig: v.kubeconfig } : {}),
        log: ctx.log,
      }),
      blocks,
      {
        log: ctx.log,
        version: pkg.version,
        ...(v.listen ? { host: v.listen } : {}),
        ...(port !== undefined ? { port } : {}),
        ...(v.health !== undefined ? { healthAddr: v.health } : {}),
        ...(v.ready !== undefined ? { readyAddr: v.ready } : {}),
        ...(v.metrics !== undefined ? { metricsAddr: v.metrics } : {}),
        ...(v.lameduck !== undefined ? { lameduckMs: Number(v.lameduck) } : {}),
        ...(v['no-fast-path'] ? { fastPath: false } : {}),
        ...(udpIo !== undefined ? { udpIo } : {}),
        ...(worker >= 0 ? { reusePort: true, worker } : {}),
      },
    );
  const blocks = applyFlags(parseCorefile(text, process.env), v);
  // a manifests directory that is not there is an error now, not a server that never becomes ready
  if (v.manifests) {
    let isDir: boolean;
    try {
      isDir = statSync(v.manifests).isDirectory();
    } catch (err) {
      throw new KdpError('KDP_K8S_MANIFEST', `--manifests ${v.manifests}: ${errorMessage(err)}`, { cause: err });
    }
    if (!isDir) throw new KdpError('KDP_K8S_MANIFEST', `--manifests ${v.manifests}: not a directory`);
  }
  if (workers > 1 && cluster.isPrimary) return runPrimary(workers, blocks, port, v, exitAfter, ctx);
  let dns = await start(blocks);
  const report = () => {
    if (worker < 0) return;
    const d = dns;
    reportToPrimary({ listening: true, ready: false }, d.metrics.registry);
    d.synced.then(
      () => d === dns && reportToPrimary({ listening: true, ready: true }),
      () => {},
    );
  };
  report();
  // the cluster source rejects its start only for what retrying cannot fix (an unreadable manifests
  // directory, no usable kubeconfig); API outages are retried inside it. Such a failure stops kdp dns with
  // the error (exit 1) instead of leaving a server that is never ready.
  const stop = new AbortController();
  let failure: unknown;
  dns.synced.catch((err: unknown) => {
    failure = err;
    stop.abort('cluster source failed');
  });
  if (worker < 0)
    ctx.out(
      `kdp dns ready: dns ${[...dns.ports.values()].join(',')} health ${dns.healthPort ?? '-'} ready ${dns.readyPort ?? '-'} metrics ${dns.metricsPort ?? '-'}\n`,
    );
  // reload: a changed Corefile restarts the servers with the new configuration; a broken one is ignored
  const reload = v.corefile ? blocks.find((b) => b.reload)?.reload : undefined;
  const watcher =
    reload && v.corefile
      ? watchCorefile(v.corefile, text, reload, async (next) => {
          let nextBlocks: BlockConfig[];
          try {
            nextBlocks = applyFlags(parseCorefile(next, process.env), v);
          } catch (err) {
            ctx.log.error(
              { err: errorMessage(err) },
              'Corefile changed but does not parse; keeping the running configuration',
            );
            return;
          }
          try {
            if (await dns.reload(nextBlocks)) {
              ctx.out(`kdp dns reloaded\n`);
              return;
            }
          } catch (err) {
            ctx.log.error(
              { err: errorMessage(err) },
              'Corefile changed but cannot be applied; keeping the running configuration',
            );
            return;
          }
          // not possible in place (kubernetes blocks added or removed, or a new pod watch): restart
          await dns.close();
          dns = await start(nextBlocks);
          report();
          ctx.log.info(
            { dns: Object.fromEntries(dns.ports) },
            'Corefile changed: restarted with the new configuration',
          );
          ctx.out(`kdp dns reloaded (restarted)\n`);
        })
      : undefined;
  const why = await untilStopped(exitAfter, stop.signal);
  ctx.log.info({ why }, 'stopping');
  watcher?.stop();
  await dns.close();
  // a worker's IPC channel to the primary would keep it alive
  if (worker >= 0) cluster.worker?.disconnect();
  if (failure !== undefined) throw failure;
  return 0;
}

/**
 * The primary of `kdp dns --workers N`: forks the workers (src/dns/workers.ts) and serves /health, /ready
 * and /metrics for all of them on the Corefile's (or the flags') addresses. It binds no DNS socket; with
 * --port 0 it picks the free port once, so that every worker binds the same one.
 */
async function runPrimary(
  count: number,
  blocks: readonly BlockConfig[],
  port: number | undefined,
  v: Record<string, string | boolean | undefined>,
  exitAfter: number | undefined,
  ctx: CommandContext,
): Promise<number> {
  let dnsPort = port;
  if (port === 0) {
    const probe = new DnsServer({
      host: typeof v.listen === 'string' ? v.listen : '',
      port: 0,
      blocks: [],
      log: ctx.log,
    });
    dnsPort = await probe.start();
    await probe.close();
  } else if (port === undefined && blocks.some((b) => b.port === 0))
    throw new KdpError('KDP_USAGE', '--workers needs fixed DNS ports: a server block on port 0 (use --port)');
  const set = new DnsWorkers({
    count,
    env: (i) => ({ KDP_DNS_WORKER: String(i), ...(dnsPort !== undefined ? { KDP_DNS_PORT: String(dnsPort) } : {}) }),
    log: ctx.log,
  });
  const addrs = httpAddresses(blocks, {
    ...(typeof v.health === 'string' ? { healthAddr: v.health } : {}),
    ...(typeof v.ready === 'string' ? { readyAddr: v.ready } : {}),
    ...(typeof v.metrics === 'string' ? { metricsAddr: v.metrics } : {}),
  });
  const text = (res: ServerResponse, code: number, body: string) =>
    void res.writeHead(code, { 'content-type': 'text/plain' }).end(body);
  const handlers = {
    health: (res: ServerResponse) => (set.healthy ? text(res, 200, 'OK') : text(res, 503, 'no worker listening')),
    ready: (res: ServerResponse) => (set.ready ? text(res, 200, 'OK') : text(res, 503, 'workers')),
    metrics: (res: ServerResponse) =>
      void set.metrics().then(
        (body) => res.writeHead(200, { 'content-type': set.contentType }).end(body),
        (err: unknown) => text(res, 500, errorMessage(err)),
      ),
  };
  const http: Server[] = [];
  const ports: Record<string, number | string> = {};
  try {
    for (const kind of ['health', 'ready', 'metrics'] as const) {
      const addr = addrs[kind];
      if (!addr) continue;
      const h = await listenHttp(addr, (req, res) =>
        req.url === `/${kind}` ? handlers[kind](res) : void res.writeHead(404).end(),
      );
      http.push(h.server);
      ports[kind] = h.port;
    }
    const stop = new AbortController();
    const listening = set.start().then(
      () => true,
      () => false,
    );
    const started = await Promise.race([listening, untilStopped(undefined, stop.signal).then(() => false)]);
    stop.abort('started');
    if (!started) {
      await set.stop();
      if (set.failed)
        throw new KdpError('KDP_DNS_CONFIG', 'every dns worker failed before listening (see their errors above)');
      return 0;
    }
    const dnsPorts = dnsPort !== undefined ? [dnsPort] : [...new Set(blocks.map((b) => b.port))];
    ctx.out(
      `kdp dns ready: dns ${dnsPorts.join(',')} health ${ports.health ?? '-'} ready ${ports.ready ?? '-'} metrics ${ports.metrics ?? '-'} workers ${count}\n`,
    );
    ctx.log.info({ workers: count, pids: set.pids }, 'dns workers listening');
    const why = await untilStopped(exitAfter, set.allFailed);
    ctx.log.info({ why }, 'stopping dns workers');
    await set.stop();
  } finally {
    await Promise.all(http.map((h) => new Promise((r) => (h.closeAllConnections(), h.close(r)))));
  }
  return set.failed ? 1 : 0;
}

export const dnsCommand: Command = {
  name: 'dns',
  summary: 'cluster DNS: Kubernetes service and pod names, forwarding, cache (CoreDNS-compatible)',
  usage,
  flags: { '': FLAGS },
  run,
};
