// The soak's API mode (SOAK_SOURCE=api): the cluster state lives in the API double, which runs as a child
// process inside the lab's underlay namespace (TCP on the underlay address for the components, a unix socket for
// this process). The test plays the control plane: it seeds the double with the manifests directory's objects
// plus the EndpointSlices the endpoint controller would publish, and writes every later change through the unix
// socket, computing slices with the project's own pure controller (src/k8s/endpoint-controller.ts) as the
// Kubernetes EndpointSlice controller would after a Pod or Service change.
// Network safety: nothing here opens a TCP connection; the only traffic from the root namespace is HTTP over a
// unix socket (a file-system object).
import { request, Agent } from 'node:http';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { EndpointSlice } from '../../src/model/types.ts';
import { convertPod, convertService } from '../../src/k8s/convert.ts';
import { endpointSlicesFor } from '../../src/k8s/endpoint-controller.ts';
import type { Snapshot } from '../../src/up/snapshot.ts';
import type { Lab } from '../../src/lab/lab.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';

export type Obj = Record<string, unknown> & { metadata?: Record<string, unknown> };

export const SERVE = fileURLToPath(new URL('../apiserver/serve.ts', import.meta.url));

/** The objects of a manifests directory as the API would hold them (Lists flattened, files in name order). */
export function rawObjects(dir: string): Obj[] {
  const out: Obj[] = [];
  for (const f of readdirSync(dir)
    .filter((n) => /\.(ya?ml|json)$/.test(n) && !n.startsWith('.'))
    .sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      const js = doc.toJS() as Obj | null;
      if (!js || typeof js !== 'object') continue;
      if (typeof js.kind === 'string' && js.kind.endsWith('List') && Array.isArray(js.items))
        out.push(...(js.items as Obj[]));
      else out.push(js);
    }
  }
  return out;
}

/** A model EndpointSlice as a discovery.k8s.io/v1 object. */
export function sliceToRaw(s: EndpointSlice): Obj {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: s.meta.name, namespace: s.meta.namespace, labels: { ...s.meta.labels } },
    addressType: s.addressType,
    endpoints: s.endpoints.map((e) => ({
      addresses: [...e.addresses],
      conditions: { ...e.conditions },
      ...(e.hostname ? { hostname: e.hostname } : {}),
      ...(e.nodeName ? { nodeName: e.nodeName } : {}),
      ...(e.zone ? { zone: e.zone } : {}),
      ...(e.targetRef
        ? {
            targetRef: {
              kind: e.targetRef.kind,
              namespace: e.targetRef.namespace,
              name: e.targetRef.name,
              ...(e.targetRef.uid ? { uid: e.targetRef.uid } : {}),
            },
          }
        : {}),
    })),
    ports: s.ports.map((p) => ({
      name: p.name,
      port: p.port,
      protocol: p.protocol,
      ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
    })),
  };
}

/**
 * What the API holds at the start: every object of the directory (legacy Endpoints included, as the API keeps
 * them) plus the EndpointSlices of the directory's snapshot (computed for selector Services, mirrored from
 * Endpoints) that are not already explicit objects in it.
 */
export function seedObjects(dir: string, snapshot: Pick<Snapshot, 'endpointSlices'>): Obj[] {
  const raw = rawObjects(dir);
  const explicit = new Set(
    raw
      .filter((o) => o.kind === 'EndpointSlice')
      .map((o) => `${String(o.metadata?.namespace ?? 'default')}/${String(o.metadata?.name)}`),
  );
  const slices = snapshot.endpointSlices
    .filter((s) => !explicit.has(`${s.meta.namespace}/${s.meta.name}`))
    .map(sliceToRaw);
  return [...raw, ...slices];
}

export interface ApiReply {
  readonly status: number;
  readonly body: Obj;
}

/** HTTP to the double over its unix socket (keep-alive); resolves when the write is acknowledged. */
export class UnixApi {
  readonly #socketPath: string;
  readonly #agent: Agent;
  /** acknowledged writes so far */
  writes = 0;
  constructor(socketPath: string) {
    this.#socketPath = socketPath;
    this.#agent = new Agent({ keepAlive: true, maxSockets: 4 });
  }

  request(method: string, path: string, body?: unknown): Promise<ApiReply> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.#socketPath,
          agent: this.#agent,
          method,
          path,
          headers: {
            host: 'api-double',
            ...(text !== undefined
              ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }
              : {}),
          },
          timeout: 10_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const s = Buffer.concat(chunks).toString('utf8');
            let parsed: Obj;
            try {
              parsed = JSON.parse(s) as Obj;
            } catch {
              parsed = { text: s };
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer from the API double in 10 s`)));
      req.on('error', reject);
      req.end(text);
    });
  }

  /** A write that must succeed (2xx); returns performance.now() at the acknowledgement. */
  async write(method: 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<number> {
    const r = await this.request(method, path, body);
    const at = performance.now();
    if (r.status < 200 || r.status >= 300)
      throw new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    this.writes++;
    return at;
  }

  close(): void {
    this.#agent.destroy();
  }
}

const slicesPath = (ns: string, name?: string) =>
  `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices${name ? `/${name}` : ''}`;

/**
 * The endpoint controller, played by the test: from a Service and the Pods (raw API objects) it computes the
 * slices and makes the API hold exactly them (PUT the ones it has, POST new ones, DELETE the ones no longer
 * wanted). Returns the acknowledgement time of its last write.
 */
export class SliceController {
  readonly #api: UnixApi;
  /** service key -> names of the slices the API holds for it */
  readonly #names = new Map<string, Set<string>>();
  constructor(api: UnixApi, seeded: readonly Obj[]) {
    this.#api = api;
    for (const o of seeded) {
      if (o.kind !== 'EndpointSlice') continue;
      const svc = (o.metadata?.labels as Record<string, string> | undefined)?.['kubernetes.io/service-name'];
      if (!svc) continue;
      const key = `${String(o.metadata?.namespace)}/${svc}`;
      if (!this.#names.has(key)) this.#names.set(key, new Set());
      this.#names.get(key)!.add(String(o.metadata?.name));
    }
  }

  /** Publishes the slices of `service` for `pods`; returns when the last write was acknowledged. */
  async sync(service: Obj, pods: readonly Obj[]): Promise<number> {
    const svc = convertService(service);
    if (!svc.ok) throw new Error(`service: ${svc.reason}`);
    const models = pods.map((p) => convertPod(p)).flatMap((r) => (r.ok ? [r.value] : []));
    const want = endpointSlicesFor(svc.value, models).map(sliceToRaw);
    const ns = svc.value.meta.namespace;
    const key = `${ns}/${svc.value.meta.name}`;
    const have = this.#names.get(key) ?? new Set<string>();
    let at = performance.now();
    for (const s of want) {
      const name = String(s.metadata!.name);
      at = have.has(name)
        ? await this.#api.write('PUT', slicesPath(ns, name), s)
        : await this.#api.write('POST', slicesPath(ns), s);
      have.add(name);
    }
    const keep = new Set(want.map((s) => String(s.metadata!.name)));
    for (const name of [...have].filter((n) => !keep.has(n))) {
      at = await this.#api.write('DELETE', slicesPath(ns, name));
      have.delete(name);
    }
    this.#names.set(key, have);
    return at;
  }

  /** The Service is gone: its slices are deleted (what garbage collection of owned objects does). */
  async removeAll(namespace: string, service: string): Promise<number> {
    const key = `${namespace}/${service}`;
    let at = performance.now();
    for (const name of this.#names.get(key) ?? []) at = await this.#api.write('DELETE', slicesPath(namespace, name));
    this.#names.delete(key);
    return at;
  }
}

/** Path of a namespaced core or group object in the API. */
export function objectPath(o: Obj, withName = true): string {
  const apiVersion = String(o.apiVersion);
  const plural = (
    { Service: 'services', Pod: 'pods', Ingress: 'ingresses', EndpointSlice: 'endpointslices' } as Record<
      string,
      string
    >
  )[String(o.kind)];
  if (!plural) throw new Error(`objectPath: no path for ${String(o.kind)}`);
  const base = apiVersion === 'v1' ? '/api/v1' : `/apis/${apiVersion}`;
  return `${base}/namespaces/${String(o.metadata?.namespace ?? 'default')}/${plural}${withName ? `/${String(o.metadata?.name)}` : ''}`;
}

/**
 * Starts the double inside the lab's underlay namespace (TCP on the underlay address, plus the unix socket),
 * seeded from `seedFile`; writes a kubeconfig for the components pointing at it. Resolves once it listens.
 */
export async function startDoubleInLab(
  lab: Lab,
  opts: { node: string; socket: string; seedFile: string; kubeconfig: string },
): Promise<{ proc: Spawned; server: string }> {
  const host = lab.plan.underlayHost4;
  const proc = lab.spawn(lab.underlay, [
    opts.node,
    SERVE,
    '--host',
    host,
    '--socket',
    opts.socket,
    '--seed',
    opts.seedFile,
  ]);
  const end = Date.now() + 30_000;
  let port = '';
  while (!port) {
    const m = /api-double listening port=(\d+)/.exec(proc.output());
    if (m) port = m[1]!;
    else if (
      await Promise.race([proc.exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 50))])
    )
      throw new Error(`the API double exited: ${proc.output().slice(-1500)}`);
    else if (Date.now() > end) throw new Error(`the API double did not start in 30 s: ${proc.output().slice(-1500)}`);
  }
  const server = `http://${host}:${port}`;
  writeFileSync(
    opts.kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      // the client library refuses plain HTTP unless TLS verification is (vacuously) skipped
      clusters: [{ name: 'lab', cluster: { server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'soak', user: { token: 'soak-token' } }],
      contexts: [{ name: 'lab', context: { cluster: 'lab', user: 'soak' } }],
      'current-context': 'lab',
    }),
  );
  return { proc, server };
}

export function writeSeed(file: string, objs: readonly Obj[]): void {
  writeFileSync(file, JSON.stringify(objs));
}
