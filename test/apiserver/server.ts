// An API double for tests and benchmarks: an HTTP server on 127.0.0.1:0 that speaks enough of the
// Kubernetes REST API for @kubernetes/client-node and kubectl to list, watch, get, create, update,
// patch and delete the kinds the data plane uses.
//
// Semantics it keeps (as the real API server does):
//   - one global resourceVersion counter; every write bumps it; lists carry it; objects carry theirs;
//   - paginated lists (limit/continue) served from a snapshot taken at the first page;
//   - watches stream newline-delimited JSON events over a chunked response, from a given resourceVersion
//     (history replay) or, with no version, synthetic ADDED events for the current state first;
//   - BOOKMARK events when allowWatchBookmarks is set; timeoutSeconds ends a watch cleanly;
//   - a watch from a version older than the retained history gets an ERROR event with a 410 Status;
//   - labelSelector (equality) and fieldSelector (metadata.name, metadata.namespace, type) filtering.
// Faults for tests: disconnectWatches() (abrupt socket destroy), expireWatches() (410 to every watcher,
// history compacted), compact(), failNext() (injected HTTP errors), a bounded history window.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';

export type Obj = Record<string, unknown> & { metadata?: Record<string, unknown> };

export interface ResourceDef {
  readonly kind: string;
  readonly plural: string;
  readonly singular: string;
  readonly group: string; // '' for the core group
  readonly version: string;
  readonly namespaced: boolean;
  readonly shortNames?: readonly string[];
}

export const RESOURCES: readonly ResourceDef[] = [
  {
    kind: 'Service',
    plural: 'services',
    singular: 'service',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['svc'],
  },
  {
    kind: 'Endpoints',
    plural: 'endpoints',
    singular: 'endpoints',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['ep'],
  },
  { kind: 'Pod', plural: 'pods', singular: 'pod', group: '', version: 'v1', namespaced: true, shortNames: ['po'] },
  { kind: 'Node', plural: 'nodes', singular: 'node', group: '', version: 'v1', namespaced: false, shortNames: ['no'] },
  {
    kind: 'Namespace',
    plural: 'namespaces',
    singular: 'namespace',
    group: '',
    version: 'v1',
    namespaced: false,
    shortNames: ['ns'],
  },
  { kind: 'Secret', plural: 'secrets', singular: 'secret', group: '', version: 'v1', namespaced: true },
  {
    kind: 'ConfigMap',
    plural: 'configmaps',
    singular: 'configmap',
    group: '',
    version: 'v1',
    namespaced: true,
    shortNames: ['cm'],
  },
  {
    kind: 'EndpointSlice',
    plural: 'endpointslices',
    singular: 'endpointslice',
    group: 'discovery.k8s.io',
    version: 'v1',
    namespaced: true,
  },
  {
    kind: 'Ingress',
    plural: 'ingresses',
    singular: 'ingress',
    group: 'networking.k8s.io',
    version: 'v1',
    namespaced: true,
    shortNames: ['ing'],
  },
  {
    kind: 'IngressClass',
    plural: 'ingressclasses',
    singular: 'ingressclass',
    group: 'networking.k8s.io',
    version: 'v1',
    namespaced: false,
  },
  {
    kind: 'NetworkPolicy',
    plural: 'networkpolicies',
    singular: 'networkpolicy',
    group: 'networking.k8s.io',
    version: 'v1',
    namespaced: true,
    shortNames: ['netpol'],
  },
  {
    kind: 'AdminNetworkPolicy',
    plural: 'adminnetworkpolicies',
    singular: 'adminnetworkpolicy',
    group: 'policy.networking.k8s.io',
    version: 'v1alpha1',
    namespaced: false,
    shortNames: ['anp'],
  },
  {
    kind: 'BaselineAdminNetworkPolicy',
    plural: 'baselineadminnetworkpolicies',
    singular: 'baselineadminnetworkpolicy',
    group: 'policy.networking.k8s.io',
    version: 'v1alpha1',
    namespaced: false,
    shortNames: ['banp'],
  },
  // Gateway API (CRDs)
  ...(
    [
      ['GatewayClass', 'gatewayclasses', 'v1', false],
      ['Gateway', 'gateways', 'v1', true],
      ['HTTPRoute', 'httproutes', 'v1', true],
      ['GRPCRoute', 'grpcroutes', 'v1', true],
      ['ReferenceGrant', 'referencegrants', 'v1beta1', true],
    ] as const
  ).map(([kind, plural, version, namespaced]) => ({
    kind,
    plural,
    singular: kind.toLowerCase(),
    group: 'gateway.networking.k8s.io',
    version,
    namespaced,
  })),
];

const apiVersionOf = (r: ResourceDef): string => (r.group ? `${r.group}/${r.version}` : r.version);

interface HistoryEvent {
  readonly rv: number;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: Obj;
  /** the object before a MODIFIED event (filtered watches turn selector transitions into ADDED/DELETED) */
  readonly prev?: Obj;
}

interface Watcher {
  readonly res: ServerResponse;
  readonly resource: ResourceDef;
  readonly namespace: string | undefined;
  readonly filter: (o: Obj) => boolean;
  readonly bookmarks: boolean;
  timers: NodeJS.Timeout[];
  closed: boolean;
}

interface Fault {
  count: number;
  readonly status: number;
  readonly match: (req: { method: string; path: string; watch: boolean }) => boolean;
}

export interface ApiDoubleOptions {
  /** events kept per resource for watch replay; older versions get 410 (default 10,000) */
  readonly historyLimit?: number;
  /** interval of BOOKMARK events on watches that allow them (default 1,000 ms) */
  readonly bookmarkIntervalMs?: number;
  /** the TCP address to listen on (default 127.0.0.1; port 0, see `port`) */
  readonly host?: string;
}

export interface ApiDoubleStats {
  lists: number;
  watches: number;
  writes: number;
  injectedFailures: number;
  expiredWatches: number;
  disconnects: number;
}

function status(code: number, reason: string, message: string, details?: Record<string, unknown>): Obj {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
    ...(details ? { details } : {}),
  };
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function keyOf(ns: string | undefined, name: string): string {
  return ns ? `${ns}/${name}` : name;
}

/**
 * RFC 7386 JSON merge patch, plus enough of strategic merge patch for kubectl apply: lists that come with a
 * `$setElementOrder/<field>` directive are merged element by element on the merge key that directive names
 * (so unchanged elements the patch leaves out are kept), `$patch: delete` elements are removed, and the
 * other `$` directives are dropped.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (Array.isArray(patch))
    return patch.filter((e) => !(e && typeof e === 'object' && '$patch' in e)).map((e) => clone(e));
  if (patch === null || typeof patch !== 'object') return clone(patch);
  const out: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  const p = patch as Record<string, unknown>;
  for (const [k, v] of Object.entries(p)) {
    if (k.startsWith('$')) continue;
    if (v === null) delete out[k];
    else if (Array.isArray(v) && Array.isArray(p[`$setElementOrder/${k}`]) && Array.isArray(out[k]))
      out[k] = mergeList(out[k] as unknown[], v, p[`$setElementOrder/${k}`] as unknown[]);
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function matches(elem: unknown, key: Record<string, unknown>): boolean {
  if (!elem || typeof elem !== 'object') return false;
  return Object.entries(key).every(([k, v]) => (elem as Record<string, unknown>)[k] === v);
}

function mergeList(orig: unknown[], patch: unknown[], order: unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const key of order as Record<string, unknown>[]) {
    const pe = patch.find((e) => matches(e, key));
    if (pe && typeof pe === 'object' && (pe as Record<string, unknown>).$patch === 'delete') continue;
    const oe = orig.find((e) => matches(e, key));
    if (pe !== undefined) out.push(mergePatch(oe, pe));
    else if (oe !== undefined) out.push(clone(oe));
  }
  return out;
}

function getPath(o: unknown, path: string): unknown {
  let cur: unknown = o;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Equality-based selectors: `a=b,c!=d,e==f`, plus bare `key` / `!key` for labels. */
function parseSelector(sel: string | null, fields: boolean): (o: Obj) => boolean {
  if (!sel) return () => true;
  const terms = sel
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((term) => {
      const m = /^(!?)([^!=]+?)\s*(==|=|!=)?\s*([^=]*)$/.exec(term);
      if (!m) throw new Error(`bad selector term ${term}`);
      const [, bang, key, op, val] = m as unknown as [string, string, string, string | undefined, string];
      return (o: Obj): boolean => {
        const v = fields ? getPath(o, key!) : ((o.metadata?.labels as Record<string, string> | undefined) ?? {})[key!];
        if (!op) return bang ? v === undefined : v !== undefined;
        const eq = String(v ?? '') === val;
        return op === '!=' ? !eq : eq;
      };
    });
  return (o) => terms.every((f) => f(o));
}

export class ApiDouble {
  readonly #server: Server;
  readonly #objects = new Map<string, Map<string, Obj>>(RESOURCES.map((r) => [r.plural, new Map()]));
  readonly #history = new Map<string, HistoryEvent[]>(RESOURCES.map((r) => [r.plural, []]));
  /** watches from versions below this get 410 */
  readonly #oldestRv = new Map<string, number>(RESOURCES.map((r) => [r.plural, 0]));
  readonly #watchers = new Set<Watcher>();
  readonly #sockets = new Set<Socket>();
  readonly #snapshots = new Map<string, { items: Obj[]; rv: number; at: number }>();
  readonly #faults: Fault[] = [];
  readonly #historyLimit: number;
  readonly #bookmarkMs: number;
  #rv = 1000;
  #port = 0;
  #host = '127.0.0.1';
  /** further listeners (a unix socket) sharing the handler; closed with the main one */
  readonly #extra: Server[] = [];
  readonly stats: ApiDoubleStats = {
    lists: 0,
    watches: 0,
    writes: 0,
    injectedFailures: 0,
    expiredWatches: 0,
    disconnects: 0,
  };
  /** every request served (method, path, watch), oldest first; bounded to the last 10,000 */
  readonly requests: { method: string; path: string; watch: boolean }[] = [];

  private constructor(opts: ApiDoubleOptions) {
    this.#historyLimit = opts.historyLimit ?? 10_000;
    this.#bookmarkMs = opts.bookmarkIntervalMs ?? 1000;
    this.#server = this.#makeServer();
  }

  #makeServer(): Server {
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.#send(res, 500, status(500, 'InternalError', String(err)));
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 60_000;
    server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
    return server;
  }

  /**
   * Also serves on a unix socket (same objects, same watches): lets a process outside the network namespace
   * the double listens in drive it through the file system. Closed by close().
   */
  async listenUnix(path: string): Promise<void> {
    const server = this.#makeServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    this.#extra.push(server);
  }

  static async start(opts: ApiDoubleOptions = {}): Promise<ApiDouble> {
    const d = new ApiDouble(opts);
    await new Promise<void>((resolve, reject) => {
      d.#server.once('error', reject);
      d.#server.listen(0, opts.host ?? '127.0.0.1', () => resolve());
    });
    const addr = d.#server.address();
    d.#port = typeof addr === 'object' && addr ? addr.port : 0;
    d.#host = opts.host ?? '127.0.0.1';
    return d;
  }

  get url(): string {
    return `http://${this.#host.includes(':') ? `[${this.#host}]` : this.#host}:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** Writes a kubeconfig pointing at the double (token auth; the double accepts any). */
  writeKubeconfig(path: string): Promise<string> {
    return writeKubeconfig(path, this.url);
  }

  async close(): Promise<void> {
    for (const w of this.#watchers) this.#closeWatcher(w, false);
    for (const s of this.#sockets) s.destroy();
    await Promise.all(
      [this.#server, ...this.#extra].map((srv) => new Promise<void>((resolve) => srv.close(() => resolve()))),
    );
  }

  // ------------------------------------------------------------ state, for tests
  resource(kindOrPlural: string): ResourceDef {
    const r = RESOURCES.find((x) => x.plural === kindOrPlural || x.kind === kindOrPlural);
    if (!r) throw new Error(`the API double has no resource ${kindOrPlural}`);
    return r;
  }

  list(kind: string): Obj[] {
    return [...this.#objects.get(this.resource(kind).plural)!.values()].map((o) => clone(o));
  }

  get(kind: string, namespace: string | undefined, name: string): Obj | undefined {
    const o = this.#objects.get(this.resource(kind).plural)!.get(keyOf(namespace, name));
    return o ? clone(o) : undefined;
  }

  /** Creates an object (kind from the argument); throws when it exists. Returns the stored object. */
  create(kind: string, obj: Obj): Obj {
    const r = this.resource(kind);
    const o = this.#normalize(r, clone(obj), undefined);
    const m = this.#objects.get(r.plural)!;
    const k = keyOf(o.metadata!.namespace as string | undefined, o.metadata!.name as string);
    if (m.has(k)) throw Object.assign(new Error(`${r.kind} ${k} already exists`), { code: 409 });
    o.metadata!.uid = randomUUID();
    o.metadata!.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    o.metadata!.generation = 1;
    this.#commit(r, 'ADDED', k, o);
    return clone(o);
  }

  /** Replaces an existing object (optimistic concurrency when metadata.resourceVersion is set). */
  update(kind: string, obj: Obj): Obj {
    const r = this.resource(kind);
    const m = this.#objects.get(r.plural)!;
    const o = this.#normalize(r, clone(obj), undefined);
    const k = keyOf(o.metadata!.namespace as string | undefined, o.metadata!.name as string);
    const old = m.get(k);
    if (!old) throw Object.assign(new Error(`${r.kind} ${k} not found`), { code: 404 });
    const want = o.metadata!.resourceVersion;
    if (want !== undefined && want !== '' && want !== old.metadata!.resourceVersion)
      throw Object.assign(new Error(`${r.kind} ${k}: the object has been modified`), { code: 409 });
    o.metadata!.uid = old.metadata!.uid;
    o.metadata!.creationTimestamp = old.metadata!.creationTimestamp;
    // as the API server: metadata.generation moves only when something besides metadata and status changed
    const body = (x: Obj) => JSON.stringify({ ...x, metadata: undefined, status: undefined });
    const gen = (old.metadata!.generation as number | undefined) ?? 1;
    o.metadata!.generation = body(old) === body(o) ? gen : gen + 1;
    this.#commit(r, 'MODIFIED', k, o);
    return clone(o);
  }

  /** Deletes an object; returns its last state (undefined when it did not exist). */
  remove(kind: string, namespace: string | undefined, name: string): Obj | undefined {
    const r = this.resource(kind);
    const k = keyOf(r.namespaced ? (namespace ?? 'default') : undefined, name);
    const old = this.#objects.get(r.plural)!.get(k);
    if (!old) return undefined;
    const gone = clone(old);
    this.#commit(r, 'DELETED', k, gone);
    return gone;
  }

  // ------------------------------------------------------------ faults
  /** Destroys every watch connection abruptly (no final chunk): clients see a broken stream. */
  disconnectWatches(): number {
    let n = 0;
    for (const w of [...this.#watchers]) {
      this.#closeWatcher(w, true);
      n++;
    }
    this.stats.disconnects += n;
    return n;
  }

  /** Forgets all history: a watch from any version seen so far gets 410 Gone. */
  compact(): void {
    for (const r of RESOURCES) {
      this.#history.set(r.plural, []);
      this.#oldestRv.set(r.plural, this.#rv + 1);
    }
  }

  /** Compacts and sends every open watch an ERROR event with a 410 Status, then ends it (what etcd compaction does). */
  expireWatches(): number {
    this.compact();
    let n = 0;
    for (const w of [...this.#watchers]) {
      this.#write(w, { type: 'ERROR', object: status(410, 'Expired', 'too old resource version') });
      this.#closeWatcher(w, false);
      n++;
    }
    this.stats.expiredWatches += n;
    return n;
  }

  /** The next `count` requests that match get an HTTP error `status` with a Status body. */
  failNext(
    count: number,
    httpStatus: number,
    match: 'watch' | 'list' | 'any' | ((req: { method: string; path: string; watch: boolean }) => boolean) = 'any',
  ): void {
    const fn =
      typeof match === 'function'
        ? match
        : (q: { method: string; watch: boolean }) =>
            match === 'any' || (q.method === 'GET' && (match === 'watch') === q.watch);
    this.#faults.push({ count, status: httpStatus, match: fn });
  }

  get openWatches(): number {
    return this.#watchers.size;
  }

  // ------------------------------------------------------------ internals
  #normalize(r: ResourceDef, o: Obj, ns: string | undefined): Obj {
    o.apiVersion = apiVersionOf(r);
    o.kind = r.kind;
    const md = (o.metadata ??= {});
    if (!md.name && typeof md.generateName === 'string') md.name = `${md.generateName}${randomUUID().slice(0, 5)}`;
    if (typeof md.name !== 'string' || md.name === '')
      throw Object.assign(new Error('metadata.name is required'), { code: 422 });
    if (r.namespaced) md.namespace = (md.namespace as string | undefined) || ns || 'default';
    else delete md.namespace;
    delete md.deletionTimestamp;
    return o;
  }

  #commit(r: ResourceDef, type: HistoryEvent['type'], key: string, o: Obj): void {
    const rv = ++this.#rv;
    o.metadata!.resourceVersion = String(rv);
    const m = this.#objects.get(r.plural)!;
    const prev = m.get(key);
    if (type === 'DELETED') m.delete(key);
    else m.set(key, o);
    this.stats.writes++;
    const ev: HistoryEvent = { rv, type, object: o, ...(type === 'MODIFIED' && prev ? { prev } : {}) };
    const h = this.#history.get(r.plural)!;
    h.push(ev);
    if (h.length > this.#historyLimit) {
      const dropped = h.splice(0, h.length - this.#historyLimit);
      this.#oldestRv.set(r.plural, dropped[dropped.length - 1]!.rv + 1);
    }
    for (const w of this.#watchers) {
      if (w.resource !== r || w.closed) continue;
      const e = this.#visible(w, ev);
      if (e) this.#write(w, e);
    }
  }

  /** The event a filtered watcher sees: an object that starts or stops matching is ADDED or DELETED. */
  #visible(w: Pick<Watcher, 'namespace' | 'filter'>, ev: HistoryEvent): { type: string; object: Obj } | undefined {
    if (w.namespace && ev.object.metadata!.namespace !== w.namespace) return undefined;
    const now = w.filter(ev.object);
    if (ev.type !== 'MODIFIED' || !ev.prev) return now ? { type: ev.type, object: ev.object } : undefined;
    const before = w.filter(ev.prev);
    if (now && before) return { type: 'MODIFIED', object: ev.object };
    if (now) return { type: 'ADDED', object: ev.object };
    if (before) return { type: 'DELETED', object: ev.object };
    return undefined;
  }

  #write(w: Watcher, ev: { type: string; object: unknown }): void {
    if (w.closed) return;
    w.res.write(`${JSON.stringify(ev)}\n`);
  }

  #closeWatcher(w: Watcher, abrupt: boolean): void {
    if (w.closed) return;
    w.closed = true;
    for (const t of w.timers) clearTimeout(t);
    this.#watchers.delete(w);
    if (abrupt) w.res.socket?.destroy();
    else w.res.end();
  }

  #send(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  async #body(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://double');
    const method = req.method ?? 'GET';
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    this.requests.push({ method, path: url.pathname, watch });
    if (this.requests.length > 10_000) this.requests.splice(0, this.requests.length - 10_000);
    const fault = this.#faults.find((f) => f.count > 0 && f.match({ method, path: url.pathname, watch }));
    if (fault) {
      fault.count--;
      this.stats.injectedFailures++;
      await this.#body(req);
      return this.#send(
        res,
        fault.status,
        status(fault.status, fault.status === 410 ? 'Expired' : 'InternalError', `injected failure ${fault.status}`),
      );
    }
    const p = url.pathname.replace(/\/+$/, '') || '/';
    if (method === 'GET') {
      const disc = this.#discovery(p);
      if (disc !== undefined) return this.#send(res, 200, disc);
      if (p === '/version')
        return this.#send(res, 200, {
          major: '1',
          minor: '31',
          gitVersion: 'v1.31.0-kdp-double',
          platform: 'linux/amd64',
        });
      if (p === '/healthz' || p === '/readyz' || p === '/livez') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        return void res.end('ok');
      }
    }
    const route = this.#route(p);
    if (!route)
      return this.#send(res, 404, status(404, 'NotFound', `the server could not find the requested resource (${p})`));
    const { r, ns, name } = route;
    try {
      if (method === 'GET' && name === undefined)
        return watch ? this.#watch(req, res, r, ns, url) : this.#list(res, r, ns, url);
      if (method === 'GET') {
        const o = this.#objects.get(r.plural)!.get(keyOf(r.namespaced ? ns : undefined, name!));
        if (!o)
          return this.#send(
            res,
            404,
            status(404, 'NotFound', `${r.plural} "${name}" not found`, { name, kind: r.plural }),
          );
        return this.#send(res, 200, o);
      }
      const text = await this.#body(req);
      if (method === 'POST' && name === undefined) {
        const body = JSON.parse(text) as Obj;
        const md = (body.metadata ??= {});
        if (r.namespaced && ns) md.namespace = ns;
        return this.#send(res, 201, this.create(r.kind, body));
      }
      if (method === 'PUT' && name !== undefined) {
        const body = JSON.parse(text) as Obj;
        const md = (body.metadata ??= {});
        md.name = name;
        if (r.namespaced) md.namespace = ns ?? 'default';
        return this.#send(res, 200, this.update(r.kind, body));
      }
      if (method === 'PATCH' && name !== undefined) {
        const ctype = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const k = keyOf(r.namespaced ? (ns ?? 'default') : undefined, name);
        const old = this.#objects.get(r.plural)!.get(k);
        if (ctype === 'application/apply-patch+yaml') {
          // server-side apply, simplified: the applied fields are merged over the object (or create it)
          const body = JSON.parse(text) as Obj; // kubectl sends JSON, which is YAML
          if (!old)
            return this.#send(
              res,
              201,
              this.create(r.kind, {
                ...body,
                metadata: { ...body.metadata, name, ...(r.namespaced ? { namespace: ns } : {}) },
              }),
            );
          const merged = mergePatch(old, body) as Obj;
          merged.metadata!.resourceVersion = old.metadata!.resourceVersion;
          return this.#send(res, 200, this.update(r.kind, merged));
        }
        if (ctype !== 'application/merge-patch+json' && ctype !== 'application/strategic-merge-patch+json') {
          return this.#send(
            res,
            415,
            status(415, 'UnsupportedMediaType', `the double does not support patch type ${ctype}`),
          );
        }
        if (!old)
          return this.#send(
            res,
            404,
            status(404, 'NotFound', `${r.plural} "${name}" not found`, { name, kind: r.plural }),
          );
        const merged = mergePatch(old, JSON.parse(text)) as Obj;
        merged.metadata = { ...(merged.metadata ?? {}), name, resourceVersion: old.metadata!.resourceVersion };
        if (r.namespaced) merged.metadata.namespace = old.metadata!.namespace;
        return this.#send(res, 200, this.update(r.kind, merged));
      }
      if (method === 'DELETE' && name !== undefined) {
        const gone = this.remove(r.kind, ns, name);
        if (!gone)
          return this.#send(
            res,
            404,
            status(404, 'NotFound', `${r.plural} "${name}" not found`, { name, kind: r.plural }),
          );
        return this.#send(res, 200, gone);
      }
      return this.#send(res, 405, status(405, 'MethodNotAllowed', `${method} is not supported here`));
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (typeof code === 'number') {
        const reason =
          code === 409
            ? /already exists/.test(String((err as Error).message))
              ? 'AlreadyExists'
              : 'Conflict'
            : code === 404
              ? 'NotFound'
              : 'Invalid';
        return this.#send(res, code, status(code, reason, (err as Error).message, { name, kind: r.plural }));
      }
      if (err instanceof SyntaxError)
        return this.#send(res, 400, status(400, 'BadRequest', `body is not JSON: ${err.message}`));
      throw err;
    }
  }

  #discovery(p: string): unknown {
    if (p === '/api')
      return {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: this.url.slice('http://'.length) }],
      };
    const groups = [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))];
    if (p === '/apis') {
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: groups.map((g) => ({
          name: g,
          versions: [{ groupVersion: `${g}/v1`, version: 'v1' }],
          preferredVersion: { groupVersion: `${g}/v1`, version: 'v1' },
        })),
      };
    }
    const gv =
      p === '/api/v1'
        ? 'v1'
        : p.startsWith('/apis/') && p.split('/').length === 4
          ? p.slice('/apis/'.length)
          : undefined;
    if (gv === undefined) return undefined;
    const rs = RESOURCES.filter((r) => apiVersionOf(r) === gv);
    if (rs.length === 0) return undefined;
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: gv,
      resources: rs.map((r) => ({
        name: r.plural,
        singularName: r.singular,
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
        ...(r.shortNames ? { shortNames: r.shortNames } : {}),
      })),
    };
  }

  #route(p: string): { r: ResourceDef; ns: string | undefined; name: string | undefined } | undefined {
    let rest: string[];
    let gv: string;
    if (p.startsWith('/api/v1/')) {
      gv = 'v1';
      rest = p.slice('/api/v1/'.length).split('/');
    } else if (p.startsWith('/apis/')) {
      const parts = p.slice('/apis/'.length).split('/');
      if (parts.length < 3) return undefined;
      gv = `${parts[0]}/${parts[1]}`;
      rest = parts.slice(2);
    } else return undefined;
    rest = rest.map(decodeURIComponent);
    const byPlural = (pl: string | undefined) => RESOURCES.find((r) => r.plural === pl && apiVersionOf(r) === gv);
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const r = byPlural(rest[2]);
      if (!r || !r.namespaced || rest.length > 4) return undefined;
      return { r, ns: rest[1], name: rest[3] };
    }
    const r = byPlural(rest[0]);
    if (!r || rest.length > 2) return undefined;
    return { r, ns: undefined, name: rest[1] };
  }

  #filter(r: ResourceDef, ns: string | undefined, url: URL): (o: Obj) => boolean {
    const labels = parseSelector(url.searchParams.get('labelSelector'), false);
    const fields = parseSelector(url.searchParams.get('fieldSelector'), true);
    return (o) => (!ns || !r.namespaced || o.metadata!.namespace === ns) && labels(o) && fields(o);
  }

  #list(res: ServerResponse, r: ResourceDef, ns: string | undefined, url: URL): void {
    this.stats.lists++;
    const limit = Number(url.searchParams.get('limit') ?? 0);
    const cont = url.searchParams.get('continue');
    let snap: { items: Obj[]; rv: number; at: number };
    let offset = 0;
    if (cont) {
      const [id, off] = Buffer.from(cont, 'base64url').toString().split(':');
      const s = this.#snapshots.get(id ?? '');
      if (!s) return this.#send(res, 410, status(410, 'Expired', 'the provided continue parameter is too old'));
      snap = s;
      offset = Number(off);
    } else {
      const filter = this.#filter(r, ns, url);
      // insertion order (the real server sorts by key; clients must not depend on either)
      const items = [...this.#objects.get(r.plural)!.values()].filter(filter);
      snap = { items, rv: this.#rv, at: Date.now() };
    }
    const end = limit > 0 ? Math.min(offset + limit, snap.items.length) : snap.items.length;
    const metadata: Record<string, unknown> = { resourceVersion: String(snap.rv) };
    if (end < snap.items.length) {
      let id = [...this.#snapshots.entries()].find(([, s]) => s === snap)?.[0];
      if (!id) {
        id = randomUUID();
        this.#snapshots.set(id, snap);
        // continue tokens live a minute
        setTimeout(() => this.#snapshots.delete(id!), 60_000).unref();
      }
      metadata.continue = Buffer.from(`${id}:${end}`).toString('base64url');
      metadata.remainingItemCount = snap.items.length - end;
    }
    // the serialized page: items are stored immutably (writes replace them), so no copy is needed
    const text = `{"kind":"${r.kind}List","apiVersion":"${apiVersionOf(r)}","metadata":${JSON.stringify(metadata)},"items":[${snap.items
      .slice(offset, end)
      .map((o) => JSON.stringify(o))
      .join(',')}]}`;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  #watch(req: IncomingMessage, res: ServerResponse, r: ResourceDef, ns: string | undefined, url: URL): void {
    this.stats.watches++;
    const filter = this.#filter(r, ns, url);
    const rvParam = url.searchParams.get('resourceVersion') ?? '';
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Transfer-Encoding': 'chunked',
      'Cache-Control': 'no-cache',
    });
    res.flushHeaders();
    const w: Watcher = {
      res,
      resource: r,
      namespace: r.namespaced ? ns : undefined,
      filter,
      bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true',
      timers: [],
      closed: false,
    };
    const fromRv = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (fromRv !== undefined && (Number.isNaN(fromRv) || fromRv < this.#oldestRv.get(r.plural)! - 1)) {
      this.stats.expiredWatches++;
      res.end(
        `${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${rvParam} (${this.#oldestRv.get(r.plural)! - 1})`) })}\n`,
      );
      return;
    }
    this.#watchers.add(w);
    if (fromRv === undefined) {
      // "any version": the current state as synthetic ADDED events, then changes
      for (const o of this.#objects.get(r.plural)!.values())
        if (filter(o) && (!w.namespace || o.metadata!.namespace === w.namespace))
          this.#write(w, { type: 'ADDED', object: o });
    } else {
      for (const ev of this.#history.get(r.plural)!) {
        if (ev.rv <= fromRv) continue;
        const e = this.#visible(w, ev);
        if (e) this.#write(w, e);
      }
    }
    if (w.bookmarks) {
      const tick = (): void => {
        this.#write(w, {
          type: 'BOOKMARK',
          object: {
            kind: r.kind,
            apiVersion: apiVersionOf(r),
            metadata: { resourceVersion: String(this.#rv), annotations: { 'k8s.io/initial-events-end': 'true' } },
          },
        });
        w.timers[0] = setTimeout(tick, this.#bookmarkMs);
      };
      w.timers[0] = setTimeout(tick, this.#bookmarkMs);
    }
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? 0);
    if (timeout > 0) w.timers.push(setTimeout(() => this.#closeWatcher(w, false), timeout * 1000));
    req.on('close', () => this.#closeWatcher(w, false));
    res.on('close', () => this.#closeWatcher(w, false));
    // a client that vanished mid-write: the watch is over, nothing to report
    res.on('error', () => this.#closeWatcher(w, true));
  }
}

/** Writes a kubeconfig for `server` (token auth; the doubles and test fronts accept any token). */
export async function writeKubeconfig(path: string, server: string): Promise<string> {
  const cfg = {
    apiVersion: 'v1',
    kind: 'Config',
    // the client library refuses plain HTTP unless TLS verification is (vacuously) skipped
    clusters: [{ name: 'double', cluster: { server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'tester', user: { token: 'double-token' } }],
    contexts: [{ name: 'double', context: { cluster: 'double', user: 'tester', namespace: 'default' } }],
    'current-context': 'double',
  };
  await writeFile(path, JSON.stringify(cfg, null, 2));
  return path;
}
