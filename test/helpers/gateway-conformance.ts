// The Gateway API conformance suite (kubernetes-sigs/gateway-api conformance/, profile GATEWAY-HTTP) ported to kdp
// in manifests mode. The manifests are upstream's (test/fixtures/gateway-conformance, see its README), adapted
// when loaded: `{GATEWAY_CLASS_NAME}` becomes kdp's class, every Deployment becomes echo "pods" in this process
// (real sockets on loopback addresses, answering like upstream's echo-basic: path, host, method, headers,
// namespace, pod as JSON) and every selector Service gets an EndpointSlice pointing at them. The controller is
// `kdp ingress --manifests DIR --gateway-addresses POOL` as a child process; requests go through curl to the
// address each Gateway gets (status.addresses); conditions come from the status function behind `kdp status`
// (gatewayStatusOf). Every test applies its manifests, checks, and removes them, as upstream does.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { Test } from 'tap';
import { run, spawnChild } from '../../src/common/exec-adapter.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';
import { selfSigned } from '../../ingress/default-cert.ts';
import { gatewayStatus } from '../../ingress/status.ts';
import { silentLogger } from '../../src/common/log.ts';
import { ManifestsSource } from '../../src/k8s/manifests-source.ts';
import { takeSnapshot } from '../../src/up/snapshot.ts';
import { freePort } from './ports.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../fixtures/gateway-conformance/', import.meta.url));

export const CLASS = 'kdp';
export const CONTROLLER = 'kdp.dev/gateway-controller';
export const INFRA = 'gateway-conformance-infra';
export const APP = 'gateway-conformance-app-backend';
export const WEB = 'gateway-conformance-web-backend';
export const V1 = 'infra-backend-v1';
export const V2 = 'infra-backend-v2';
export const V3 = 'infra-backend-v3';

type Obj = Record<string, unknown>;

/** upstream's HTTPRouteRequestHeaderModifier cases (also HTTPRouteBackendRequestHeaderModifier's, filters on the backendRef) */
export const HEADER_MODIFIER_CASES: readonly Expect[] = [
  {
    path: '/set',
    headers: { 'Some-Other-Header': 'val' },
    got: { headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' } },
    backend: 'infra-backend-v1',
  },
  {
    path: '/set',
    headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' },
    got: { headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' } },
    backend: 'infra-backend-v1',
  },
  {
    path: '/add',
    headers: { 'Some-Other-Header': 'val' },
    got: { headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'add-appends-values' } },
    backend: 'infra-backend-v1',
  },
  {
    path: '/add',
    headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value' },
    got: { headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value,add-appends-values' } },
    backend: 'infra-backend-v1',
  },
  {
    path: '/remove',
    headers: { 'X-Header-Remove': 'val' },
    got: { absent: ['X-Header-Remove'] },
    backend: 'infra-backend-v1',
  },
  {
    path: '/multiple',
    headers: {
      'X-Header-Set-2': 'set-val-2',
      'X-Header-Add-2': 'add-val-2',
      'X-Header-Remove-2': 'remove-val-2',
      'Another-Header': 'another-header-val',
    },
    got: {
      headers: {
        'X-Header-Set-1': 'header-set-1',
        'X-Header-Set-2': 'header-set-2',
        'X-Header-Add-1': 'header-add-1',
        'X-Header-Add-2': 'add-val-2,header-add-2',
        'X-Header-Add-3': 'header-add-3',
        'Another-Header': 'another-header-val',
      },
      absent: ['X-Header-Remove-1', 'X-Header-Remove-2'],
    },
    backend: 'infra-backend-v1',
  },
  {
    path: '/case-insensitivity',
    headers: {
      'x-header-set': 'original-val-set',
      'x-header-add': 'original-val-add',
      'x-header-remove': 'original-val-remove',
      'Another-Header': 'another-header-val',
    },
    got: {
      headers: {
        'X-Header-Set': 'header-set',
        'X-Header-Add': 'original-val-add,header-add',
        'Another-Header': 'another-header-val',
      },
      absent: ['x-header-remove', 'X-Header-Remove'],
    },
    backend: 'infra-backend-v1',
  },
];

/** One request and what must come back (upstream's http.ExpectedResponse, in kdp's words). */
export interface Expect {
  readonly name?: string;
  /** Gateway `namespace/name` (default the case's) and listener port (default its first listener's) */
  readonly gateway?: string;
  readonly port?: number;
  readonly host?: string;
  readonly path: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly https?: boolean;
  /** default 200 */
  readonly status?: number | readonly number[];
  /** the pod name must start with this (a 200 without it: no backend check) */
  readonly backend?: string;
  /** default gateway-conformance-infra when backend is set */
  readonly namespace?: string;
  /** what the backend must have received (default: the request's path, method, host when set) */
  readonly got?: {
    readonly host?: string;
    readonly path?: string;
    readonly method?: string;
    readonly headers?: Readonly<Record<string, string>>;
    readonly absent?: readonly string[];
  };
  readonly respHeaders?: Readonly<Record<string, string>>;
  readonly respAbsent?: readonly string[];
  /** the Location of a redirect, in parts (unset parts: not checked) */
  readonly redirect?: {
    readonly scheme?: string;
    readonly host?: string;
    readonly port?: string;
    readonly path?: string;
  };
  /** ask the echo pod to answer with these headers (echo-basic's X-Echo-Set-Header) */
  readonly backendSets?: Readonly<Record<string, string>>;
}

export interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
  readonly observedGeneration?: number;
}

export interface ParentStatus {
  readonly parentRef: {
    readonly name: string;
    readonly namespace?: string;
    readonly sectionName?: string;
    readonly port?: number;
    readonly kind?: string;
    readonly group?: string;
  };
  readonly controllerName: string;
  readonly conditions: readonly Condition[];
}

export interface ListenerStatus {
  readonly name: string;
  readonly attachedRoutes: number;
  readonly supportedKinds?: readonly { readonly group?: string; readonly kind: string }[];
  readonly conditions: readonly Condition[];
}

export interface ObjectStatus {
  readonly key: string;
  readonly generation?: number;
  readonly conditions?: readonly Condition[];
  readonly parents?: readonly ParentStatus[];
  readonly listeners?: readonly ListenerStatus[];
  readonly addresses?: readonly (string | { readonly type?: string; readonly value: string })[];
}

export interface GatewayStatusView {
  readonly classes: readonly ObjectStatus[];
  readonly gateways: readonly ObjectStatus[];
  readonly httpRoutes: readonly ObjectStatus[];
}

/** Finds the Gateway API part of `kdp status --json` (an object with gateways and httpRoutes lists), wherever it sits. */
export function findGatewayStatus(json: unknown): GatewayStatusView | undefined {
  if (json === null || typeof json !== 'object') return undefined;
  const o = json as Obj;
  if (Array.isArray(o.gateways) && Array.isArray(o.httpRoutes))
    return {
      classes: (o.classes ?? o.gatewayClasses ?? []) as ObjectStatus[],
      gateways: o.gateways as ObjectStatus[],
      httpRoutes: o.httpRoutes as ObjectStatus[],
    };
  for (const v of Object.values(o)) {
    const f = findGatewayStatus(v);
    if (f) return f;
  }
  return undefined;
}

/**
 * The Gateway API status of a manifests directory: the component status function `kdp status` uses (the
 * compiler's conditions and reasons), with the addresses the controller gives from `pool` (--gateway-addresses;
 * `kdp status` knows only the default pool). Pools are /16s so two Gateways practically never hash to one
 * address (the controller's probe order could then differ from this fresh computation).
 */
export async function gatewayStatusOf(dir: string, pool: string): Promise<GatewayStatusView> {
  const snap = await takeSnapshot(new ManifestsSource({ dir, log: silentLogger }));
  const s = findGatewayStatus(gatewayStatus({ cluster: snap, zone: 'cluster.local', nodeName: '' }, pool));
  if (!s) throw new Error('the gateway status function returned no gateways/httpRoutes');
  return s;
}

/** The address of Gateway `key` (namespace/name) in a manifests directory served with `pool`. */
export async function gatewayAddressOf(dir: string, pool: string, key: string): Promise<string | undefined> {
  const a = (await gatewayStatusOf(dir, pool)).gateways.find((g) => g.key === key)?.addresses?.[0];
  return a === undefined ? undefined : typeof a === 'string' ? a : a.value;
}

// ---------------------------------------------------------------- echo pods

interface Captured {
  readonly path: string;
  readonly host: string;
  readonly method: string;
  readonly headers: Record<string, string[]>;
  readonly namespace: string;
  readonly pod: string;
}

class EchoPod {
  readonly servers: Server[] = [];
  readonly seen: Captured[] = [];
  readonly name: string;
  readonly namespace: string;
  readonly ip: string;
  constructor(name: string, namespace: string, ip: string) {
    this.name = name;
    this.namespace = namespace;
    this.ip = ip;
  }

  async listen(port: number): Promise<void> {
    const server = createServer((req, res) => this.#answer(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.ip, () => resolve());
    });
    this.servers.push(server);
  }

  #answer(req: IncomingMessage, res: ServerResponse): void {
    const headers: Record<string, string[]> = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const k = req.rawHeaders[i]!;
      const canon = k.toLowerCase().replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase());
      (headers[canon] ??= []).push(req.rawHeaders[i + 1]!);
    }
    const captured: Captured = {
      path: req.url ?? '',
      host: req.headers.host ?? '',
      method: req.method ?? '',
      headers,
      namespace: this.namespace,
      pod: this.name,
    };
    this.seen.push(captured);
    if (this.seen.length > 2000) this.seen.splice(0, 1000);
    const set: [string, string][] = [];
    for (const v of headers['X-Echo-Set-Header'] ?? [])
      for (const part of v.split(',')) {
        const i = part.indexOf(':');
        if (i > 0) set.push([part.slice(0, i).trim(), part.slice(i + 1).trim()]);
      }
    // echo-basic's ?delay=<duration> (1s, 500ms): answer that much later
    const delay = /[?&]delay=(\d+)(ms|s)(?:&|$)/.exec(captured.path);
    const ms = delay ? Number(delay[1]) * (delay[2] === 's' ? 1000 : 1) : 0;
    req.resume();
    req.on('end', () => setTimeout(answer, ms));
    const answer = () => {
      if (res.destroyed) return;
      const body = JSON.stringify(captured);
      res.writeHead(200, [
        ['Content-Type', 'application/json'],
        ['Content-Length', String(Buffer.byteLength(body))],
        ...set,
      ]);
      res.end(body);
    };
  }

  async close(): Promise<void> {
    for (const s of this.servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  }
}

// ---------------------------------------------------------------- curl

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly captured?: Captured;
}

function parseCurl(out: string): Answer {
  let rest = out;
  // skip interim 1xx heads
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    const head = end < 0 ? rest : rest.slice(0, end);
    const m = /^HTTP\/[\d.]+ (\d{3})/.exec(head);
    if (!m) throw new Error(`no HTTP status line in curl output: ${JSON.stringify(out.slice(0, 200))}`);
    const status = Number(m[1]);
    const body = end < 0 ? '' : rest.slice(end + 4);
    if (status >= 100 && status < 200 && status !== 101) {
      rest = body;
      continue;
    }
    const headers: Record<string, string> = {};
    for (const line of head.split('\r\n').slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      headers[k] = headers[k] === undefined ? v : `${headers[k]},${v}`;
    }
    let captured: Captured | undefined;
    try {
      const j = JSON.parse(body) as Captured;
      if (typeof j === 'object' && j !== null && typeof j.pod === 'string') captured = j;
    } catch {
      // not an echo answer
    }
    return { status, headers, body, ...(captured ? { captured } : {}) };
  }
}

// ---------------------------------------------------------------- the suite

export interface SuiteOptions {
  /** --gateway-addresses of this file's controller (files run in parallel: each has its own) */
  readonly pool: string;
  /** first three octets of this file's echo pod addresses, e.g. '127.0.31' */
  readonly podNet: string;
  /** names the file's temporary directory (kdp-gwconf-<name>-*) */
  readonly name: string;
}

export class Conformance {
  readonly dir: string;
  readonly manifests: string;
  readonly pods: EchoPod[] = [];
  #podSeq = 1;
  #child?: Spawned;
  #caFile = '';
  #applied = new Set<string>();

  readonly opts: SuiteOptions;
  readonly #t: Test;
  private constructor(t: Test, opts: SuiteOptions, dir: string) {
    this.#t = t;
    this.opts = opts;
    this.dir = dir;
    this.manifests = join(dir, 'manifests');
  }

  static async start(t: Test, opts: SuiteOptions): Promise<Conformance> {
    const c = new Conformance(t, opts, await mkdtemp(join(tmpdir(), `kdp-gwconf-${opts.name}-`)));
    t.teardown(() => c.stop());
    await mkdir(c.manifests, { recursive: true });
    await c.#secrets();
    await c.apply('base.yaml');
    const httpPort = await freePort();
    const httpsPort = await freePort();
    const healthz = await freePort();
    c.#child = spawnChild([
      process.execPath,
      MAIN,
      '--log-level',
      'info',
      'ingress',
      '--manifests',
      c.manifests,
      '--bind',
      '127.0.0.1',
      '--http-port',
      String(httpPort),
      '--https-port',
      String(httpsPort),
      '--healthz-port',
      String(healthz),
      '--access-log',
      'off',
      '--gateway-addresses',
      opts.pool,
    ]);
    await c.waitFor(
      'controller /healthz',
      async () => {
        const r = await run(
          ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${healthz}/healthz`],
          {
            allowFailure: true,
            timeoutMs: 5000,
          },
        );
        return r.stdout === '200' ? true : undefined;
      },
      90_000,
    ); // a loaded 2-core machine starts node slowly
    return c;
  }

  output(): string {
    return this.#child?.output() ?? '';
  }

  /** One upstream test as a subtest: applies its manifests, runs the body, removes them (also on failure). */
  test(name: string, files: readonly string[], body: (t: Test) => Promise<void>): Promise<unknown> {
    return this.#t.test(name, async (t) => {
      for (const f of files) await this.apply(f);
      try {
        await body(t);
      } catch (err) {
        t.fail((err as Error).message);
      } finally {
        for (const f of files) await this.remove(f);
      }
    });
  }

  async stop(): Promise<void> {
    if (this.#child) {
      this.#child.kill('SIGTERM');
      const timer = setTimeout(() => this.#child?.kill('SIGKILL'), 5000);
      await this.#child.exited;
      clearTimeout(timer);
    }
    await Promise.all(this.pods.map((p) => p.close()));
    await rm(this.dir, { recursive: true, force: true });
  }

  /** The GatewayClass, and the Secrets the upstream suite creates at start (self-signed, for the HTTPS listeners). */
  async #secrets(): Promise<void> {
    const pair = await selfSigned('gateway-conformance', ['*', '*.org', '*.wildcard.org', 'example.org']);
    const web = await selfSigned('gateway-conformance-web', ['*']);
    this.#caFile = join(this.dir, 'ca.pem');
    await writeFile(this.#caFile, pair.certPem);
    const secret = (ns: string, name: string, p: { certPem: string; keyPem: string }) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name, namespace: ns },
      data: {
        'tls.crt': Buffer.from(p.certPem).toString('base64'),
        'tls.key': Buffer.from(p.keyPem).toString('base64'),
      },
    });
    // the GatewayClass an implementation installs (the upstream suite takes its name as a flag)
    await this.#write('00-class.yaml', [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'GatewayClass',
        metadata: { name: CLASS },
        spec: { controllerName: CONTROLLER },
      },
    ]);
    await this.#write('00-secrets.yaml', [
      secret(INFRA, 'tls-validity-checks-certificate', pair),
      secret(WEB, 'certificate', web),
    ]);
  }

  async #write(file: string, objects: readonly unknown[]): Promise<void> {
    const tmp = join(this.manifests, `.${file}.tmp`);
    await writeFile(tmp, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 1));
    await rename(tmp, join(this.manifests, file.replace(/\.yaml$/, '.json')));
  }

  /** Loads an upstream manifest file, adapted (see the file comment); `edit` may change objects first. */
  async load(file: string, edit?: (o: Obj) => Obj | undefined): Promise<Obj[]> {
    const text = (await readFile(join(FIXTURES, file), 'utf8'))
      .replaceAll('{GATEWAY_CLASS_NAME}', CLASS)
      .replaceAll('{GATEWAY_CONTROLLER_NAME}', CONTROLLER);
    const docs = parseAllDocuments(text)
      .map((d) => d.toJS() as Obj | null)
      .filter((o): o is Obj => o !== null && typeof o === 'object');
    const out: Obj[] = [];
    const deployments: Obj[] = [];
    for (const raw of docs) {
      const o = edit ? edit(raw) : raw;
      if (!o) continue;
      if (o.kind === 'Deployment') deployments.push(o);
      else out.push(o);
    }
    // echo pods for every Deployment, EndpointSlices for the Services selecting them
    const podsByLabel: { labels: Record<string, string>; pods: EchoPod[] }[] = [];
    for (const d of deployments) {
      const meta = d.metadata as Obj;
      const spec = d.spec as Obj;
      const replicas = typeof spec.replicas === 'number' ? spec.replicas : 1;
      const labels = ((spec.template as Obj).metadata as Obj).labels as Record<string, string>;
      const ports = new Set<number>();
      for (const s of [...docs, ...out])
        if (s.kind === 'Service' && (s.metadata as Obj).namespace === meta.namespace && selects(s, labels))
          for (const p of ((s.spec as Obj).ports ?? []) as Obj[])
            ports.add(typeof p.targetPort === 'number' ? p.targetPort : (p.port as number));
      const pods: EchoPod[] = [];
      for (let i = 0; i < replicas; i++) {
        const pod = new EchoPod(
          `${String(meta.name)}-${hash5(String(meta.name))}-${i}`,
          String(meta.namespace),
          `${this.opts.podNet}.${this.#podSeq++}`,
        );
        for (const p of ports) await pod.listen(p);
        pods.push(pod);
        this.pods.push(pod);
      }
      podsByLabel.push({ labels, pods });
    }
    for (const s of [...out]) {
      if (s.kind !== 'Service') continue;
      const meta = s.metadata as Obj;
      const spec = s.spec as Obj;
      const sel = spec.selector as Record<string, string> | undefined;
      if (!sel) continue;
      const pods = podsByLabel
        .filter((g) => Object.entries(sel).every(([k, v]) => g.labels[k] === v))
        .flatMap((g) => g.pods);
      const live =
        pods.length > 0
          ? pods
          : this.pods.filter((p) => p.namespace === meta.namespace && p.name.startsWith(`${String(sel.app)}-`));
      out.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: `${String(meta.name)}-echo`,
          namespace: meta.namespace,
          labels: { 'kubernetes.io/service-name': meta.name },
        },
        addressType: 'IPv4',
        endpoints: live.map((p) => ({
          addresses: [p.ip],
          conditions: { ready: true },
          targetRef: { kind: 'Pod', name: p.name },
        })),
        ports: ((spec.ports ?? []) as Obj[]).map((p) => ({
          name: p.name ?? '',
          port: typeof p.targetPort === 'number' ? p.targetPort : p.port,
          protocol: p.protocol ?? 'TCP',
        })),
      });
    }
    return out;
  }

  /** Writes the (adapted) manifests of `file` into the watched directory. */
  async apply(file: string, edit?: (o: Obj) => Obj | undefined): Promise<void> {
    await this.#write(file, await this.load(file, edit));
    this.#applied.add(file);
  }

  /** Writes objects under a name of our own (for a test's edits of an applied object). */
  async applyObjects(file: string, objects: readonly Obj[]): Promise<void> {
    await this.#write(file, objects);
    this.#applied.add(file);
  }

  async remove(file: string): Promise<void> {
    await rm(join(this.manifests, file.replace(/\.yaml$/, '.json')), { force: true });
    this.#applied.delete(file);
  }

  /** Whether a pod of `prefix` received a request for `path` (with its query) since the start. */
  mirrored(prefix: string, path: string, namespace = INFRA): boolean {
    return this.podsOf(prefix, namespace).some((p) => p.seen.some((r) => r.path === path));
  }

  /** The pods of a Deployment (name prefix). */
  podsOf(prefix: string, namespace = INFRA): EchoPod[] {
    return this.pods.filter((p) => p.namespace === namespace && p.name.startsWith(`${prefix}-`));
  }

  // ------------------------------------------------------------ status

  async status(): Promise<GatewayStatusView> {
    return gatewayStatusOf(this.manifests, this.opts.pool);
  }

  /** Polls `check` (undefined = not yet) until it returns a value or `ms` pass; the last error is reported. */
  async waitFor<T>(what: string, check: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
    const end = Date.now() + ms;
    let last = '';
    for (;;) {
      try {
        const v = await check();
        if (v !== undefined) return v;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  /** status.addresses[0] of a Gateway. */
  async address(gateway: string): Promise<string> {
    return this.waitFor(`an address of Gateway ${gateway}`, async () => {
      const g = (await this.status()).gateways.find((x) => x.key === gateway);
      const a = g?.addresses?.[0];
      if (a === undefined) return undefined;
      return typeof a === 'string' ? a : a.value;
    });
  }

  /**
   * upstream's GatewayAndHTTPRoutesMustBeAccepted: each route has a parent status for the Gateway (group, kind, name,
   * namespace; the sectionName is not compared, as upstream's parentsForRouteMatch) from our controller with
   * Accepted True, and every listener of the Gateway is ResolvedRefs, Accepted and Programmed. Returns the address.
   */
  async routesAccepted(gateway: string, routes: readonly string[]): Promise<string> {
    await this.waitFor(`routes ${routes.join(', ')} accepted by ${gateway}`, async () => {
      const s = await this.status();
      for (const r of routes) {
        const rs = s.httpRoutes.find((x) => x.key === r);
        if (!rs) throw new Error(`no status for HTTPRoute ${r}`);
        const p = (rs.parents ?? []).find(
          (x) =>
            refMatches(x.parentRef, r, gateway) &&
            x.controllerName === CONTROLLER &&
            x.conditions.some((c) => c.type === 'Accepted' && c.status === 'True' && c.reason === 'Accepted'),
        );
        if (!p)
          throw new Error(`HTTPRoute ${r}: no accepted parent status for ${gateway}: ${JSON.stringify(rs.parents)}`);
        checkGeneration(rs, `HTTPRoute ${r}`, p.conditions);
      }
      const g = s.gateways.find((x) => x.key === gateway);
      if (!g) throw new Error(`no status for Gateway ${gateway}`);
      for (const l of g.listeners ?? [])
        for (const type of ['ResolvedRefs', 'Accepted', 'Programmed'])
          if (!l.conditions.some((c) => c.type === type && c.status === 'True'))
            throw new Error(
              `Gateway ${gateway} listener ${l.name}: ${type} is not True: ${JSON.stringify(l.conditions)}`,
            );
      return true;
    });
    return this.address(gateway);
  }

  /** upstream's HTTPRouteMustHaveResolvedRefsConditionsTrue */
  async resolvedRefs(route: string, gateway: string): Promise<void> {
    await this.routeCondition(route, gateway, 'ResolvedRefs', 'True');
  }

  /** A route's parent status for `gateway` has condition `type` with `status` (and `reason` when given). */
  async routeCondition(route: string, gateway: string, type: string, status: string, reason?: string): Promise<void> {
    await this.waitFor(
      `HTTPRoute ${route} ${type}=${status}${reason ? ` (${reason})` : ''} for ${gateway}`,
      async () => {
        const rs = (await this.status()).httpRoutes.find((x) => x.key === route);
        if (!rs) throw new Error(`no status for HTTPRoute ${route}`);
        const p = (rs.parents ?? []).find((x) => refMatches(x.parentRef, route, gateway));
        if (!p) throw new Error(`no parent status for ${gateway}: ${JSON.stringify(rs.parents)}`);
        const c = p.conditions.find((x) => x.type === type);
        if (!c || c.status !== status || (reason !== undefined && c.reason !== reason))
          throw new Error(`${type}: ${JSON.stringify(c)}`);
        checkGeneration(rs, `HTTPRoute ${route}`, p.conditions);
        return true;
      },
    );
  }

  /** The route has no parent status for `gateway` (upstream's HTTPRouteMustHaveNoAcceptedParents / not ours). */
  async routeNotAccepted(route: string): Promise<void> {
    await this.waitFor(`HTTPRoute ${route} without an accepted parent`, async () => {
      const rs = (await this.status()).httpRoutes.find((x) => x.key === route);
      const accepted = (rs?.parents ?? []).filter((p) =>
        p.conditions.some((c) => c.type === 'Accepted' && c.status === 'True'),
      );
      if (accepted.length > 0) throw new Error(`accepted by ${JSON.stringify(accepted.map((p) => p.parentRef))}`);
      return true;
    });
  }

  /** A Gateway condition (and optional reason). */
  async gatewayCondition(gateway: string, type: string, status: string, reason?: string): Promise<ObjectStatus> {
    return this.waitFor(`Gateway ${gateway} ${type}=${status}${reason ? ` (${reason})` : ''}`, async () => {
      const g = (await this.status()).gateways.find((x) => x.key === gateway);
      if (!g) throw new Error(`no status for Gateway ${gateway}`);
      const c = (g.conditions ?? []).find((x) => x.type === type);
      if (!c || c.status !== status || (reason !== undefined && c.reason !== reason))
        throw new Error(`${type}: ${JSON.stringify(c)}`);
      checkGeneration(g, `Gateway ${gateway}`, g.conditions ?? []);
      return g;
    });
  }

  /**
   * upstream's GatewayStatusMustHaveListeners: each listener named has the attachedRoutes count and the conditions
   * (reason '' = any reason); supportedKinds when given.
   */
  async listeners(
    gateway: string,
    want: readonly {
      name: string;
      attachedRoutes?: number;
      conditions?: readonly [type: string, status: string, reason?: string][];
      kinds?: readonly string[];
    }[],
    exact = true,
  ): Promise<void> {
    await this.waitFor(`listeners of Gateway ${gateway}`, async () => {
      const g = (await this.status()).gateways.find((x) => x.key === gateway);
      if (!g) throw new Error(`no status for Gateway ${gateway}`);
      const ls = g.listeners ?? [];
      if (exact && ls.length !== want.length) throw new Error(`${ls.length} listeners, want ${want.length}`);
      for (const w of want) {
        const l = ls.find((x) => x.name === w.name);
        if (!l) throw new Error(`no listener ${w.name}: ${JSON.stringify(ls.map((x) => x.name))}`);
        if (w.attachedRoutes !== undefined && l.attachedRoutes !== w.attachedRoutes)
          throw new Error(`listener ${w.name}: attachedRoutes ${l.attachedRoutes}, want ${w.attachedRoutes}`);
        for (const [type, status, reason] of w.conditions ?? []) {
          const c = l.conditions.find((x) => x.type === type);
          if (!c || c.status !== status || (reason !== undefined && c.reason !== reason))
            throw new Error(`listener ${w.name} ${type}: ${JSON.stringify(c)}, want ${status} ${reason ?? ''}`);
        }
        // upstream's gatewayListenersMatch: the expected kinds are present (none expected: none there)
        if (w.kinds !== undefined) {
          const got = (l.supportedKinds ?? []).map((k) => k.kind);
          const missing = w.kinds.filter((k) => !got.includes(k));
          if ((w.kinds.length === 0 && got.length > 0) || missing.length > 0)
            throw new Error(
              `listener ${w.name}: supportedKinds ${JSON.stringify(got)}, want ${JSON.stringify(w.kinds)}`,
            );
        }
      }
      return true;
    });
  }

  // ------------------------------------------------------------ requests

  async request(addr: string, port: number, e: Expect): Promise<Answer> {
    const method = e.method ?? 'GET';
    const scheme = e.https ? 'https' : 'http';
    const host = e.host ?? `${addr}:${port}`;
    const argv = ['curl', '-sS', '-i', '--max-time', '10', '--path-as-is', '-X', method];
    if (e.https) {
      const name = e.host?.replace(/:\d+$/, '') ?? addr;
      argv.push('--cacert', this.#caFile, '-k', '--resolve', `${name}:${port}:${addr}`);
      argv.push(`${scheme}://${name}:${port}${e.path}`);
      if (e.host !== undefined) argv.push('-H', `Host: ${e.host}`);
    } else {
      argv.push(`${scheme}://${addr}:${port}${e.path}`, '-H', `Host: ${host}`);
    }
    for (const [k, v] of Object.entries(e.headers ?? {})) argv.push('-H', `${k}: ${v}`);
    if (e.backendSets)
      argv.push(
        '-H',
        `X-Echo-Set-Header: ${Object.entries(e.backendSets)
          .map(([k, v]) => `${k}:${v}`)
          .join(',')}`,
      );
    if (method === 'HEAD') argv.splice(argv.indexOf('-X'), 2, '-I');
    const r = await run(argv, { allowFailure: true, timeoutMs: 15_000 });
    if (r.code !== 0) throw new Error(`curl exit ${r.code}: ${r.stderr.trim()}`);
    return parseCurl(r.stdout);
  }

  /** Why the answer does not match (undefined: it does); upstream's CompareRoundTrip. */
  static mismatch(e: Expect, a: Answer): string | undefined {
    const want = e.status ?? 200;
    const codes = typeof want === 'number' ? [want] : want;
    if (!codes.includes(a.status)) return `status ${a.status}, want ${codes.join('|')} (body ${a.body.slice(0, 120)})`;
    if (a.status === 200 || a.status === 204) {
      const c = a.captured;
      if (e.backend !== undefined || e.got !== undefined) {
        if (!c) return `no echo answer: ${a.body.slice(0, 120)}`;
        const path = e.got?.path ?? e.path;
        if (c.path !== path) return `backend got path ${c.path}, want ${path}`;
        const method = e.got?.method ?? e.method ?? 'GET';
        if (c.method !== method) return `backend got method ${c.method}, want ${method}`;
        const host = e.got?.host;
        if (host !== undefined && c.host !== host) return `backend got host ${c.host}, want ${host}`;
        if (e.backend !== undefined) {
          if (!c.pod.startsWith(e.backend)) return `served by ${c.pod}, want ${e.backend}`;
          const ns = e.namespace ?? INFRA;
          if (c.namespace !== ns) return `served in namespace ${c.namespace}, want ${ns}`;
        }
        const lower = Object.fromEntries(Object.entries(c.headers).map(([k, v]) => [k.toLowerCase(), v.join(',')]));
        for (const [k, v] of Object.entries(e.got?.headers ?? {}))
          if (lower[k.toLowerCase()] !== v) return `backend got ${k}: ${lower[k.toLowerCase()]}, want ${v}`;
        for (const k of e.got?.absent ?? [])
          if (lower[k.toLowerCase()] !== undefined) return `backend got ${k}: ${lower[k.toLowerCase()]}, want none`;
      }
      for (const [k, v] of Object.entries(e.respHeaders ?? {}))
        if (a.headers[k.toLowerCase()] !== v) return `response ${k}: ${a.headers[k.toLowerCase()]}, want ${v}`;
      for (const k of e.respAbsent ?? [])
        if (a.headers[k.toLowerCase()] !== undefined) return `response has ${k}: ${a.headers[k.toLowerCase()]}`;
    }
    if (e.redirect) {
      const loc = a.headers.location;
      if (!loc) return 'no Location header';
      let u: URL;
      try {
        u = new URL(loc);
      } catch {
        return `Location ${loc} is not an absolute URL`;
      }
      // upstream's setRedirectRequestDefaults: the scheme and path default to the request's; the host is only
      // checked when given; without a port, the Location must have none or the scheme's default
      const r = e.redirect;
      const scheme = r.scheme ?? (e.https ? 'https' : 'http');
      const path = r.path ?? e.path.split('?')[0]!;
      if (u.protocol !== `${scheme}:`) return `Location ${loc}: scheme, want ${scheme}`;
      if (r.host !== undefined && u.hostname !== r.host) return `Location ${loc}: host, want ${r.host}`;
      // URL drops a default port: compare the text after the host
      const port = /^[a-z]+:\/\/[^/:]+(?::(\d+))?/i.exec(loc)?.[1] ?? '';
      if (r.port !== undefined) {
        if (port !== r.port) return `Location ${loc}: port ${JSON.stringify(port)}, want ${r.port}`;
      } else if (port !== '' && port !== (scheme === 'https' ? '443' : '80'))
        return `Location ${loc}: port ${port}, want none or the ${scheme} default`;
      if (u.pathname !== path) return `Location ${loc}: path, want ${path}`;
    }
    return undefined;
  }

  /**
   * upstream's MakeRequestAndExpectEventuallyConsistentResponse: retried until the answer matches three times in
   * a row (or the time is up), then asserted.
   */
  async expect(t: Test, gateway: string, port: number, cases: readonly Expect[], ms = 20_000): Promise<void> {
    const addr = await this.address(gateway);
    for (const [i, e] of cases.entries()) {
      const gw = e.gateway === undefined ? addr : await this.address(e.gateway);
      const p = e.port ?? port;
      const name = e.name ?? `${i} ${e.method ?? 'GET'} ${e.host ?? ''}${e.path} -> ${e.backend ?? e.status ?? 200}`;
      const end = Date.now() + ms;
      let streak = 0;
      let why: string | undefined = 'no request made';
      while (streak < 3 && Date.now() < end) {
        try {
          why = Conformance.mismatch(e, await this.request(gw, p, e));
        } catch (err) {
          why = (err as Error).message;
        }
        streak = why === undefined ? streak + 1 : 0;
        if (why !== undefined) await new Promise((r) => setTimeout(r, 250));
      }
      t.equal(why, undefined, name);
    }
  }
}

function selects(svc: Obj, labels: Record<string, string>): boolean {
  const sel = (svc.spec as Obj | undefined)?.selector as Record<string, string> | undefined;
  return sel !== undefined && Object.entries(sel).every(([k, v]) => labels[k] === v);
}

function hash5(s: string): string {
  let h = 5381;
  for (const ch of s) h = ((h * 33) ^ ch.charCodeAt(0)) >>> 0;
  return h.toString(36).slice(0, 5).padEnd(5, 'x');
}

/** upstream's parentsForRouteMatch: group and kind set, same name; the namespace required across namespaces */
function refMatches(ref: ParentStatus['parentRef'], route: string, gateway: string): boolean {
  const [gns, gname] = gateway.split('/');
  const rns = route.split('/')[0];
  const nsOk = ref.namespace === gns || (ref.namespace === undefined && rns === gns);
  return ref.group === 'gateway.networking.k8s.io' && ref.kind === 'Gateway' && ref.name === gname && nsOk;
}

/** upstream's ConditionsHaveLatestObservedGeneration */
function checkGeneration(o: ObjectStatus, what: string, conditions: readonly Condition[]): void {
  if (o.generation === undefined) return;
  for (const c of conditions)
    if (c.observedGeneration !== o.generation)
      throw new Error(
        `${what}: condition ${c.type} observedGeneration ${c.observedGeneration}, generation ${o.generation}`,
      );
}
