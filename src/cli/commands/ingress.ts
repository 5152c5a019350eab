// `kdp ingress`: the ingress controller (nginx-style layer-7 routing from Ingress and Gateway API objects).
// The controller's modules are imported when it runs, after the compile cache is on: a restart (kill -9, a
// new pod) then skips the TypeScript transform and V8 compile of every module (start to serving ~2x faster).
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { enableCompileCache } from 'node:module';
import { isIP } from 'node:net';
import pkg from '../../../package.json' with { type: 'json' };
import { KdpError } from '../../common/errors.ts';
import type { IngressOptions } from '../../../ingress/ingress.ts';
import { untilStopped } from '../command.ts';
import type { Command, CommandContext } from '../command.ts';
import { flagHelp, parseOnlyFlags } from '../flags.ts';
import type { FlagTable } from '../flags.ts';
import { CONVERT_FLAGS, CONVERT_USAGE, convertCommand } from './ingress-convert.ts';

const FLAGS = {
  manifests: {
    type: 'string',
    arg: 'DIR',
    help: 'cluster state from a directory of manifests (else the Kubernetes API)',
  },
  kubeconfig: {
    type: 'string',
    arg: 'FILE',
    help: 'Kubernetes API credentials',
    defaultText: 'KUBECONFIG, ~/.kube/config, in-cluster',
  },
  'http-port': { type: 'string', arg: 'N', default: '80', help: 'plain HTTP port' },
  'https-port': { type: 'string', arg: 'N', default: '443', help: 'HTTPS port, HTTP/1.1 and HTTP/2' },
  'healthz-port': { type: 'string', arg: 'N', default: '10254', help: '/healthz and /metrics (-1 disables)' },
  bind: { type: 'string', arg: 'ADDR', default: '::', help: 'listen address (:: = every address)' },
  'ingress-class': {
    type: 'string',
    arg: 'NAME',
    default: 'kdp',
    help: 'class name honoured in the legacy kubernetes.io/ingress.class annotation',
  },
  'controller-class': {
    type: 'string',
    arg: 'NAME',
    default: 'kdp.dev/ingress',
    help: 'IngressClass spec.controller we implement',
  },
  'watch-ingress-without-class': { type: 'boolean', default: false, help: 'also serve Ingresses naming no class' },
  'default-ssl-certificate': {
    type: 'string',
    arg: 'CRT,KEY',
    help: 'PEM files of the default certificate',
    defaultText: 'a self-signed one',
  },
  'access-log': { type: 'string', arg: 'on|off', default: 'on', help: 'ingress-nginx format access log on stdout' },
  workers: {
    type: 'string',
    arg: 'N',
    default: '1',
    help: 'worker processes sharing the ports; the primary serves /healthz and /metrics (summed over the workers)',
  },
  'tcp-io': {
    type: 'string',
    arg: 'IO',
    help: 'auto|batch|node: batch reads the plain HTTP port and the upstream sockets in batches (epoll, the native addon); node is node:net; auto takes batch when the addon is built',
    defaultText: 'auto',
  },
  'tls-io': {
    type: 'string',
    arg: 'IO',
    help: 'auto|node: auto terminates TLS in the native addon (OpenSSL of node, ClientHello peeked) when reads are batched, HTTP/2 sessions included (nghttp2 of node); node leaves all TLS to node:tls and node:http2',
    defaultText: 'auto',
  },
  'upstream-connections': { type: 'string', arg: 'N', default: '128', help: 'keep-alive connections per endpoint' },
  'server-tokens': {
    type: 'boolean',
    default: false,
    help: 'Server header with the version (kdp/X.Y.Z) instead of plain "kdp" (nginx server_tokens)',
  },
  'max-header-line': {
    type: 'string',
    arg: 'BYTES',
    default: '8192',
    help: "longest request line / header line, CRLF included (nginx's large_client_header_buffers size): longer answers 414 / 400",
  },
  'max-header-size': {
    type: 'string',
    arg: 'BYTES',
    default: '32768',
    help: "largest request head in all (nginx's 4 x 8k): larger answers 400",
  },
  'shutdown-grace-period': {
    type: 'string',
    arg: 'S',
    default: '10',
    help: 'on SIGTERM, seconds requests in flight get to finish',
  },
  'publish-status-address': {
    type: 'string',
    arg: 'LIST',
    help: 'Kubernetes mode: addresses (IPs or host names, comma-separated) written to status.loadBalancer of every Ingress served',
  },
  'gateway-api': {
    type: 'string',
    arg: 'on|off',
    default: 'on',
    help: 'serve Gateway API objects (GatewayClass controllerName kdp.dev/gateway-controller) besides Ingresses',
  },
  'gateway-addresses': {
    type: 'string',
    arg: 'CIDR',
    default: '127.0.10.0/24',
    help: 'addresses for Gateways without spec.addresses (one each, stable; the address must be local to the node)',
  },
  'publish-service': {
    type: 'string',
    arg: 'NS/NAME',
    help: "Kubernetes mode: publish that Service's load-balancer IPs / externalIPs instead",
  },
} as const satisfies FlagTable;

const usage = `Usage: kdp ingress [options]
${flagHelp(FLAGS)}

${CONVERT_USAGE}`;

function int(name: string, v: string, min = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > 65535)
    throw new KdpError('KDP_USAGE', `--${name}: bad value ${JSON.stringify(v)}`);
  return n;
}

/** A request head limit in bytes: 256 B .. 1 MiB. */
function byteLimit(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 256 || n > 1024 * 1024)
    throw new KdpError('KDP_USAGE', `--${name}: bad value ${JSON.stringify(v)} (bytes, 256 to 1048576)`);
  return n;
}

const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** --publish-status-address / --publish-service -> the controller's status addresses or Service key. */
export function statusOptions(
  addressList: string | undefined,
  service: string | undefined,
): { addresses?: { ip?: string; hostname?: string }[]; publishService?: string } | undefined {
  if (addressList === undefined && service === undefined) return undefined;
  const out: { addresses?: { ip?: string; hostname?: string }[]; publishService?: string } = {};
  if (addressList !== undefined) {
    out.addresses = addressList.split(',').map((a) => {
      const v = a.trim();
      if (isIP(v)) return { ip: v };
      if (DNS_NAME.test(v)) return { hostname: v };
      throw new KdpError(
        'KDP_USAGE',
        `--publish-status-address: ${JSON.stringify(v)} is neither an IP address nor a DNS name`,
      );
    });
  }
  if (service !== undefined) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(service))
      throw new KdpError('KDP_USAGE', '--publish-service takes NAMESPACE/NAME');
    out.publishService = service;
  }
  return out;
}

async function run(argv: readonly string[], ctx: CommandContext): Promise<number> {
  if (argv[0] === 'convert') return convertCommand(argv.slice(1), ctx);
  // NODE_COMPILE_CACHE if set, else <tmpdir>/node-compile-cache; a failure only costs speed
  enableCompileCache();
  const values = parseOnlyFlags(FLAGS, argv);
  const workers = int('workers', values.workers, 1);
  const httpPort = int('http-port', values['http-port']);
  const httpsPort = int('https-port', values['https-port']);
  const metricsPort = values['healthz-port'] === '-1' ? -1 : int('healthz-port', values['healthz-port']);
  const connections = int('upstream-connections', values['upstream-connections'], 1);
  const graceS = int('shutdown-grace-period', values['shutdown-grace-period']);
  const maxHeaderLine = byteLimit('max-header-line', values['max-header-line']);
  const maxHeaderSize = byteLimit('max-header-size', values['max-header-size']);
  if (maxHeaderLine > maxHeaderSize)
    throw new KdpError('KDP_USAGE', '--max-header-line cannot be larger than --max-header-size');
  const tcpIo = values['tcp-io'] ?? 'auto';
  if (tcpIo !== 'auto' && tcpIo !== 'batch' && tcpIo !== 'node')
    throw new KdpError('KDP_USAGE', '--tcp-io takes auto|batch|node');
  if (tcpIo === 'batch') (await import('../../../ingress/tcp-io.ts')).assertTcpIo(tcpIo);
  const tlsIo = values['tls-io'] ?? 'auto';
  if (tlsIo !== 'auto' && tlsIo !== 'node') throw new KdpError('KDP_USAGE', '--tls-io takes auto|node');
  if (!['on', 'off'].includes(values['access-log'])) throw new KdpError('KDP_USAGE', '--access-log: on or off');
  if (!['on', 'off'].includes(values['gateway-api'])) throw new KdpError('KDP_USAGE', '--gateway-api: on or off');
  const gatewayApi = values['gateway-api'] === 'on';
  const gatewayPool = values['gateway-addresses'];
  if (gatewayApi) {
    const { AddressPool } = await import('../../../ingress/gateway/addresses.ts');
    try {
      new AddressPool(gatewayPool);
    } catch {
      throw new KdpError('KDP_USAGE', `--gateway-addresses: ${JSON.stringify(gatewayPool)} is not a CIDR`);
    }
  }
  // a worker gets the primary's certificate (read once, or generated once) and TLS session ticket keys (random,
  // for the primary's life: a client resumes on any worker) over IPC, never through its env
  let defaultCert: { certPem: string; keyPem: string } | undefined;
  let ticketKeys: Buffer | undefined;
  if (cluster.isWorker) {
    const { configFromPrimary } = await import('../../../ingress/cluster.ts');
    const config = await configFromPrimary<{ defaultCert: typeof defaultCert; ticketKeys?: string }>();
    defaultCert = config?.defaultCert;
    if (config?.ticketKeys) ticketKeys = Buffer.from(config.ticketKeys, 'base64');
  } else if (values['default-ssl-certificate'] !== undefined) {
    const [crt, key] = values['default-ssl-certificate'].split(',');
    if (!crt || !key) throw new KdpError('KDP_USAGE', '--default-ssl-certificate takes CRT,KEY');
    defaultCert = { certPem: await readFile(crt, 'utf8'), keyPem: await readFile(key, 'utf8') };
  }

  if (workers > 1 && cluster.isPrimary) {
    // every worker runs the whole controller (its own watch and route table) and has its own listening
    // sockets (SO_REUSEPORT); the primary serves /healthz and /metrics for all of them
    const { fakeCertificate } = await import('../../../ingress/default-cert.ts');
    const { WorkerSet } = await import('../../../ingress/cluster.ts');
    const cert = defaultCert ?? (await fakeCertificate());
    const set = new WorkerSet({
      count: workers,
      env: (i) => ({ KDP_INGRESS_WORKER: String(i) }),
      // (ingress/server.ts TICKET_KEYS_BYTES: 128)
      config: { defaultCert: cert, ticketKeys: randomBytes(128).toString('base64') },
      log: ctx.log,
      metricsPort,
      bind: values.bind,
    });
    const { metrics } = await set.start();
    ctx.log.info({ workers, metrics }, 'ingress workers started');
    const why = await untilStopped(undefined, set.allFailed);
    ctx.log.info({ why }, 'stopping ingress workers');
    await set.stop();
    return set.failed ? 1 : 0;
  }
  const publish = statusOptions(values['publish-status-address'], values['publish-service']);
  const worker = Number(process.env.KDP_INGRESS_WORKER ?? '0');
  const [{ openSource }, { startIngress }, { joinPrimary }] = await Promise.all([
    import('../../k8s/open-source.ts'),
    import('../../../ingress/ingress.ts'),
    import('../../../ingress/cluster.ts'),
  ]);
  const source = openSource({
    ...(values.manifests ? { manifestsDir: values.manifests } : {}),
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    log: ctx.log,
  });
  // status.loadBalancer: Kubernetes mode only, written by one worker; manifests have no API to write to
  let status: IngressOptions['status'];
  if (publish && values.manifests)
    ctx.log.info({}, 'manifests mode: Ingress status.loadBalancer is not written (no API server); --publish-* ignored');
  else if (publish && worker === 0) {
    const { loadKubeConfig } = await import('../../k8s/kube-source.ts');
    const { KubeIngressStatusWriter } = await import('../../k8s/ingress-status.ts');
    status = {
      writer: new KubeIngressStatusWriter(loadKubeConfig(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {})),
      ...publish,
    };
  } else if (!publish && !values.manifests && worker === 0)
    ctx.log.info({}, 'no --publish-status-address / --publish-service: Ingress status is not written');
  // Gateway API status: Kubernetes mode, one writer (worker 0); manifests mode shows it in `kdp status`
  let gatewayStatus: NonNullable<IngressOptions['gateway']>['status'];
  if (gatewayApi && !values.manifests && worker === 0) {
    const { loadKubeConfig } = await import('../../k8s/kube-source.ts');
    const { KubeGatewayStatusWriter } = await import('../../k8s/gateway-status.ts');
    const { GATEWAY_CONTROLLER_NAME } = await import('../../../ingress/gateway/types.ts');
    gatewayStatus = new KubeGatewayStatusWriter(
      loadKubeConfig(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
      GATEWAY_CONTROLLER_NAME,
    );
  }
  const ing = await startIngress(source, {
    log: ctx.log,
    httpPort,
    httpsPort,
    metricsPort: cluster.isWorker ? -1 : metricsPort,
    reusePort: workers > 1,
    bind: values.bind,
    compile: {
      className: values['ingress-class'],
      controllerName: values['controller-class'],
      watchWithoutClass: values['watch-ingress-without-class'],
    },
    ...(defaultCert ? { defaultCert } : {}),
    ...(values['access-log'] === 'on' ? { accessLog: (s: string) => void process.stdout.write(s) } : {}),
    pool: { connections, keepAliveTimeoutMs: 60_000 },
    serverHeader: values['server-tokens'] ? `kdp/${pkg.version}` : 'kdp',
    maxHeaderLine,
    maxHeaderSize,
    tcpIo,
    tlsIo,
    ...(ticketKeys ? { ticketKeys } : {}),
    ...(status ? { status } : {}),
    gateway: {
      enabled: gatewayApi,
      addresses: gatewayPool,
      graceMs: graceS * 1000,
      ...(gatewayStatus ? { status: gatewayStatus } : {}),
    },
  });
  joinPrimary(ing.metrics);
  const why = await untilStopped();
  ctx.log.info({ why, graceSeconds: graceS }, 'stopping the ingress controller');
  await ing.close(graceS * 1000);
  // a worker's IPC channel to the primary would keep it alive
  if (cluster.isWorker) cluster.worker?.disconnect();
  return 0;
}

export const ingressCommand: Command = {
  name: 'ingress',
  summary:
    'ingress controller: layer-7 routing from Ingress and Gateway API objects (HTTP, HTTPS/HTTP2, WebSocket, gRPC)',
  usage,
  flags: { '': FLAGS, convert: CONVERT_FLAGS },
  run,
};
