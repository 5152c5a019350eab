// The Kubernetes source: list then watch each kind some listener declared, through @kubernetes/client-node
// (KubeConfig for auth and endpoints, its Watch for the stream; lists go through the same authenticated
// fetch, paginated). A reflector per kind:
//   - list (limit/continue) -> store.replace (deletes what vanished, updates what changed) -> synced;
//   - watch from the list's resourceVersion with bookmarks; every event moves the resourceVersion on;
//   - 410 Gone (an ERROR event or an HTTP status, on watch or on a continue token) -> relist;
//   - any other error or a dropped stream -> wait with jittered exponential backoff, re-watch from the last
//     resourceVersion (the library's own ListWatch gives up here; we never do until stop()).
// Objects that fail conversion are logged and treated as absent (a previously valid version is deleted).
import { HttpMethod, KubeConfig, RequestContext, Watch } from '@kubernetes/client-node';
import { fetch } from 'undici';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { ClusterObject, Kind } from '../model/types.ts';
import { keyOf } from '../model/types.ts';
import type { Logger } from '../common/log.ts';
import { KdpError, errorMessage } from '../common/errors.ts';
import type { ClusterSource } from './source.ts';
import { convertKind, TLS_SECRET_TYPE } from './convert.ts';
import type { Raw } from './convert.ts';
import { Store } from './store.ts';
import type { StoreListener } from './store.ts';

interface KindApi {
  readonly path: string;
  readonly namespaced: boolean;
  /** server-side filter: only TLS Secrets are ever listed or watched */
  readonly fieldSelector?: string;
  /** a CRD that may not be installed: a 404 lists as empty (synced) and the list is retried later */
  readonly optional?: boolean;
}

const KIND_API: Readonly<Record<Kind, KindApi>> = {
  Service: { path: '/api/v1/services', namespaced: true },
  EndpointSlice: { path: '/apis/discovery.k8s.io/v1/endpointslices', namespaced: true },
  Pod: { path: '/api/v1/pods', namespaced: true },
  Node: { path: '/api/v1/nodes', namespaced: false },
  Namespace: { path: '/api/v1/namespaces', namespaced: false },
  Ingress: { path: '/apis/networking.k8s.io/v1/ingresses', namespaced: true },
  IngressClass: { path: '/apis/networking.k8s.io/v1/ingressclasses', namespaced: false },
  Secret: { path: '/api/v1/secrets', namespaced: true, fieldSelector: `type=${TLS_SECRET_TYPE}` },
  NetworkPolicy: { path: '/apis/networking.k8s.io/v1/networkpolicies', namespaced: true },
  AdminNetworkPolicy: {
    path: '/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies',
    namespaced: false,
    optional: true,
  },
  BaselineAdminNetworkPolicy: {
    path: '/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies',
    namespaced: false,
    optional: true,
  },
  // Gateway API (CRDs)
  GatewayClass: { path: '/apis/gateway.networking.k8s.io/v1/gatewayclasses', namespaced: false, optional: true },
  Gateway: { path: '/apis/gateway.networking.k8s.io/v1/gateways', namespaced: true, optional: true },
  HTTPRoute: { path: '/apis/gateway.networking.k8s.io/v1/httproutes', namespaced: true, optional: true },
  GRPCRoute: { path: '/apis/gateway.networking.k8s.io/v1/grpcroutes', namespaced: true, optional: true },
  ReferenceGrant: { path: '/apis/gateway.networking.k8s.io/v1beta1/referencegrants', namespaced: true, optional: true },
};

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

interface KubeConfigOptions {
  /** path of a kubeconfig file (--kubeconfig); wins over everything */
  readonly kubeconfig?: string;
  /** use the in-cluster service account (token + CA under /var/run/secrets/kubernetes.io/serviceaccount) */
  readonly inCluster?: boolean;
}

/** --kubeconfig, else in-cluster when asked, else KUBECONFIG / ~/.kube/config / in-cluster (the library's default order). */
export function loadKubeConfig(opts: KubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else if (opts.inCluster) kc.loadFromCluster();
    else {
      // the library would fall back to http://localhost:8080 when nothing is configured; we say so instead
      const candidates = [
        ...(process.env.KUBECONFIG ?? '').split(delimiter).filter(Boolean),
        join(homedir(), '.kube', 'config'),
        SERVICE_ACCOUNT_TOKEN,
      ];
      if (!candidates.some((p) => existsSync(p))) {
        throw new KdpError(
          'KDP_K8S_CONFIG',
          'no Kubernetes configuration found (pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a cluster)',
          { details: { tried: candidates } },
        );
      }
      kc.loadFromDefault();
    }
  } catch (err) {
    if (err instanceof KdpError) throw err;
    throw new KdpError('KDP_K8S_CONFIG', `cannot load Kubernetes client configuration: ${errorMessage(err)}`, {
      cause: err,
      details: { ...opts },
    });
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster || !cluster.server) {
    throw new KdpError(
      'KDP_K8S_CONFIG',
      'no Kubernetes API server configured (pass --kubeconfig, set KUBECONFIG, or run in a cluster)',
      { details: { ...opts } },
    );
  }
  return kc;
}

interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
}

interface KubeSourceOptions {
  readonly kubeConfig: KubeConfig;
  readonly log: Logger;
  /** retry delays after errors: doubling from initialMs up to maxMs, with ±20 % jitter (default 500 ms .. 30 s) */
  readonly backoff?: BackoffOptions;
  /** list page size (default 500, as client-go's reflector) */
  readonly pageSize?: number;
  /** server-side watch timeout range in seconds; each watch picks one at random (default 300-600) */
  readonly watchTimeoutSeconds?: readonly [number, number];
  /** the store to fill (default: a new one); the lazy opener hands its own so `view` exists before start() */
  readonly store?: Store;
}

class Gone extends Error {}

function isGone(err: unknown): boolean {
  const e = err as { statusCode?: number; code?: number } | undefined;
  return err instanceof Gone || e?.statusCode === 410 || e?.code === 410;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

class Backoff {
  #next: number;
  readonly #opts: BackoffOptions;
  constructor(opts: BackoffOptions) {
    this.#opts = opts;
    this.#next = opts.initialMs;
  }
  reset(): void {
    this.#next = this.#opts.initialMs;
  }
  delay(): number {
    const d = this.#next * (0.8 + Math.random() * 0.4);
    this.#next = Math.min(this.#next * 2, this.#opts.maxMs);
    return Math.round(d);
  }
}

/** list + watch for one kind, forever until stopped. */
class Reflector {
  readonly #kind: Kind;
  readonly #api: KindApi;
  readonly #kc: KubeConfig;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #signal: AbortSignal;
  readonly #backoff: Backoff;
  readonly #pageSize: number;
  readonly #timeouts: readonly [number, number];
  #rv = '';
  #abortWatch: AbortController | undefined;
  readonly synced: Promise<void>;
  #resolveSynced!: () => void;
  /** counters for logs and tests */
  readonly counts = { lists: 0, watches: 0, relists: 0, errors: 0 };

  constructor(kind: Kind, kc: KubeConfig, store: Store, log: Logger, signal: AbortSignal, opts: KubeSourceOptions) {
    this.#kind = kind;
    this.#api = KIND_API[kind];
    this.#kc = kc;
    this.#store = store;
    this.#log = log.child({ kind });
    this.#signal = signal;
    this.#backoff = new Backoff(opts.backoff ?? { initialMs: 500, maxMs: 30_000 });
    this.#pageSize = opts.pageSize ?? 500;
    this.#timeouts = opts.watchTimeoutSeconds ?? [300, 600];
    this.synced = new Promise((r) => (this.#resolveSynced = r));
    signal.addEventListener('abort', () => this.#abortWatch?.abort(), { once: true });
  }

  async run(): Promise<void> {
    let needList = true;
    while (!this.#signal.aborted) {
      try {
        if (needList) {
          await this.#list();
          needList = false;
          this.#resolveSynced();
        }
        const outcome = await this.#watch();
        if (outcome === 'gone' || outcome === 'gone-at-once') {
          this.counts.relists++;
          this.#log.info({ rv: this.#rv }, 'watch expired (410 Gone); relisting');
          needList = true;
          // expired before delivering anything: back off, so list/410 cannot become a hot loop
          if (outcome === 'gone-at-once') await sleep(this.#backoff.delay(), this.#signal);
          else this.#backoff.reset();
        } else if (outcome === 'progress') {
          this.#backoff.reset();
        } else if (!this.#signal.aborted) {
          // a stream that ended without delivering anything: do not spin
          await sleep(this.#backoff.delay(), this.#signal);
        }
      } catch (err) {
        if (this.#signal.aborted) break;
        // a 410 from a watch means relist now; a 410 from the list itself (expired continue token) is retried
        // with backoff like any other error, so a server that keeps answering 410 is not hammered
        if (isGone(err) && !needList) {
          this.counts.relists++;
          this.#log.info({ rv: this.#rv, err: errorMessage(err) }, '410 Gone; relisting');
          needList = true;
          continue;
        }
        if (this.#api.optional && needList && (err as { statusCode?: number }).statusCode === 404) {
          // the CRD is not installed: nothing of this kind exists; look again later
          this.#store.replace(this.#kind, []);
          this.#resolveSynced();
          this.#log.info({ path: this.#api.path }, `${this.#kind} is not served (no CRD); treated as none`);
          await sleep(this.#backoff.delay(), this.#signal);
          continue;
        }
        this.counts.errors++;
        const delay = this.#backoff.delay();
        this.#log.warn(
          { err: errorMessage(err), code: 'KDP_K8S_API', phase: needList ? 'list' : 'watch', retryInMs: delay },
          `${needList ? 'list' : 'watch'} of ${this.#kind} failed; retrying`,
        );
        await sleep(delay, this.#signal);
      }
    }
  }

  async #get(url: URL): Promise<Raw> {
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    await this.#kc.applySecurityAuthentication(ctx);
    const res = await fetch(url, {
      method: 'GET',
      headers: ctx.getHeaders(),
      dispatcher: ctx.getDispatcher(),
      signal: this.#signal,
    });
    const text = await res.text();
    if (res.status !== 200) {
      let message = text.slice(0, 200);
      try {
        message = String((JSON.parse(text) as Raw).message ?? message);
      } catch {
        // not a Status body
      }
      throw Object.assign(
        new KdpError('KDP_K8S_API', `GET ${url.pathname} returned ${res.status}: ${message}`, {
          details: { status: res.status },
        }),
        { statusCode: res.status },
      );
    }
    return JSON.parse(text) as Raw;
  }

  #url(): URL {
    const server = this.#kc.getCurrentCluster()!.server.replace(/\/+$/, '');
    return new URL(server + this.#api.path);
  }

  async #list(): Promise<void> {
    this.counts.lists++;
    const objs: ClusterObject[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const url = this.#url();
      url.searchParams.set('limit', String(this.#pageSize));
      if (cont) url.searchParams.set('continue', cont);
      if (this.#api.fieldSelector) url.searchParams.set('fieldSelector', this.#api.fieldSelector);
      const page = await this.#get(url);
      const md = (page.metadata ?? {}) as Raw;
      for (const item of (page.items ?? []) as Raw[]) {
        const r = convertKind(this.#kind, item);
        if (r.ok) objs.push(r.value);
        else this.#invalid(item, r.reason);
      }
      cont = typeof md.continue === 'string' && md.continue !== '' ? md.continue : undefined;
      // the whole list is one snapshot at the first page's version
      if (rv === '') rv = String(md.resourceVersion ?? '');
    } while (cont && !this.#signal.aborted);
    if (this.#signal.aborted) return;
    this.#rv = rv;
    this.#store.replace(this.#kind, objs);
    this.#log.debug({ rv, count: objs.length }, 'listed');
  }

  #invalid(raw: Raw, reason: string): void {
    const md = (raw.metadata ?? {}) as Raw;
    const ns = this.#api.namespaced ? String(md.namespace ?? 'default') : '';
    const name = String(md.name ?? '');
    this.#log.warn(
      { code: 'KDP_K8S_INVALID_OBJECT', key: keyOf({ namespace: ns, name }), reason },
      `skipping invalid ${this.#kind}: ${reason}`,
    );
    // the object as it is now cannot be used: consumers must not keep acting on an older valid version
    if (name) this.#store.remove(this.#kind, keyOf({ namespace: ns, name }));
  }

  /** One watch; resolves with how it ended: 'gone' / 'gone-at-once' (relist), 'progress' (events came, re-watch), 'idle'. */
  #watch(): Promise<'gone' | 'gone-at-once' | 'progress' | 'idle'> {
    this.counts.watches++;
    const [lo, hi] = this.#timeouts;
    const query: Record<string, string | number | boolean> = {
      allowWatchBookmarks: true,
      resourceVersion: this.#rv,
      timeoutSeconds: Math.round(lo + Math.random() * (hi - lo)),
    };
    if (this.#api.fieldSelector) query.fieldSelector = this.#api.fieldSelector;
    let live = true;
    let progress = false;
    let gone = false;
    return new Promise((resolve, reject) => {
      const finish = (err: unknown): void => {
        if (!live) return;
        live = false;
        this.#abortWatch = undefined;
        if (gone || isGone(err)) return resolve(progress ? 'gone' : 'gone-at-once');
        if (this.#signal.aborted) return resolve('idle');
        // the library's inactivity timeout and clean server-side closes are normal ends of a watch
        if (err && !(err instanceof Error && err.name === 'TimeoutError') && !(err instanceof DOMException))
          return reject(err);
        if (err) this.#log.debug({ err: errorMessage(err) }, 'watch ended');
        resolve(progress ? 'progress' : 'idle');
      };
      const onEvent = (type: string, obj: Raw): void => {
        if (!live) return;
        const md = (obj?.metadata ?? {}) as Raw;
        switch (type) {
          case 'ADDED':
          case 'MODIFIED': {
            const r = convertKind(this.#kind, obj);
            if (r.ok) this.#store.upsert(r.value);
            else this.#invalid(obj, r.reason);
            break;
          }
          case 'DELETED': {
            const ns = this.#api.namespaced ? String(md.namespace ?? 'default') : '';
            this.#store.remove(this.#kind, keyOf({ namespace: ns, name: String(md.name ?? '') }));
            break;
          }
          case 'BOOKMARK':
            break;
          case 'ERROR': {
            const code = (obj as { code?: number }).code;
            if (code === 410) gone = true;
            const err = gone
              ? new Gone(String((obj as Raw).message ?? 'gone'))
              : Object.assign(new Error(`watch error: ${String((obj as Raw).message ?? JSON.stringify(obj))}`), {
                  statusCode: code,
                });
            this.#abortWatch?.abort();
            finish(err);
            return;
          }
          default:
            this.#log.warn({ type }, 'unknown watch event type; ignored');
            return;
        }
        if (typeof md.resourceVersion === 'string' && md.resourceVersion !== '') this.#rv = md.resourceVersion;
        progress = true;
      };
      new Watch(this.#kc)
        .watch(this.#api.path, query, onEvent, finish)
        .then((ctrl) => {
          if (!live || this.#signal.aborted) ctrl.abort();
          else this.#abortWatch = ctrl;
        })
        .catch(finish);
    });
  }
}

export class KubeSource implements ClusterSource {
  readonly #opts: KubeSourceOptions;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  readonly #reflectors = new Map<Kind, Reflector>();
  #running: Promise<void>[] = [];

  constructor(opts: KubeSourceOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ source: 'kubernetes' });
    this.#store = opts.store ?? new Store({ log: this.#log });
  }

  watch(l: StoreListener): () => void {
    return this.#store.watch(l);
  }

  get view(): Store {
    return this.#store;
  }

  /** Starts a reflector for every kind some listener declared; resolves when all have listed once. */
  async start(): Promise<void> {
    const kinds = this.#store.wantedKinds();
    this.#log.info({ kinds, server: this.#opts.kubeConfig.getCurrentCluster()?.server }, 'watching the Kubernetes API');
    for (const kind of kinds) {
      const r = new Reflector(kind, this.#opts.kubeConfig, this.#store, this.#log, this.#abort.signal, this.#opts);
      this.#reflectors.set(kind, r);
      this.#running.push(r.run());
    }
    await Promise.race([
      Promise.all([...this.#reflectors.values()].map((r) => r.synced)),
      new Promise<void>((resolve) => this.#abort.signal.addEventListener('abort', () => resolve(), { once: true })),
    ]);
  }

  async stop(): Promise<void> {
    this.#store.stop();
    this.#abort.abort();
    await Promise.allSettled(this.#running);
    this.#running = [];
  }

  /** Per-kind counters (lists, watches, relists, errors), for tests and diagnostics. */
  counts(kind: Kind): { lists: number; watches: number; relists: number; errors: number } | undefined {
    return this.#reflectors.get(kind)?.counts;
  }
}
