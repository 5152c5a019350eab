// The Kubernetes source against the API double, over real loopback sockets with the real client library:
// list+watch, synced, (previous, current) updates, invalid objects skipped, only declared kinds watched; and a
// randomized run of 1,000 mutations interleaved with abrupt disconnects, 410s (ERROR events, HTTP 410 on
// watch, evicted history) and injected 500s, after which the listener's state equals the double's, with no
// duplicate add, no update or delete of an unknown object, and every update's and delete's `previous` equal
// to what the listener held. No root needed (loopback and files only), so no needsRoot gate.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiDouble } from '../apiserver/server.ts';
import type { ApiDoubleOptions, Obj } from '../apiserver/server.ts';
import type { Test } from 'tap';
import { KubeSource, loadKubeConfig } from '../../src/k8s/kube-source.ts';
import { openSource } from '../../src/k8s/open-source.ts';
import { convertKind } from '../../src/k8s/convert.ts';
import { sameObject } from '../../src/k8s/store.ts';
import type { StoreListener } from '../../src/k8s/store.ts';
import { silentLogger } from '../../src/common/log.ts';
import type { Logger } from '../../src/common/log.ts';
import type { ClusterObject, Kind } from '../../src/model/types.ts';
import { KINDS, keyOf } from '../../src/model/types.ts';
import { rng } from '../helpers/fuzz.ts';
import { envelopeProblem, listener } from '../helpers/watch.ts';

const CRT = Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n').toString('base64');
const KEY = Buffer.from('-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n').toString('base64');

function recordingLogger(lines: Record<string, unknown>[]): Logger {
  const mk = (level: string) => (obj: object | string, msg?: string) =>
    lines.push({ level, ...(typeof obj === 'string' ? { msg: obj } : obj), ...(msg ? { msg } : {}) });
  const l: Logger = { debug: mk('debug'), info: mk('info'), warn: mk('warn'), error: mk('error'), child: () => l };
  return l;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A listener that mirrors the state of the kinds it declares (every kind by default) and records violations
 * of the listener contract: no duplicate add, an update only of a held key with `previous` the object last
 * delivered and something changed, a delete only of a held key with `previous` the object last delivered,
 * synced once per kind; and every call names a declared kind and the key of the object it carries.
 */
class Mirror implements StoreListener {
  readonly kinds: readonly Kind[];
  readonly state = new Map<Kind, Map<string, ClusterObject>>(KINDS.map((k) => [k, new Map()]));
  readonly violations: string[] = [];
  readonly syncedKinds = new Set<Kind>();
  adds = 0;
  updates = 0;
  deletes = 0;

  constructor(kinds: readonly Kind[] = KINDS) {
    this.kinds = kinds;
  }

  changed(kind: Kind, k: string, previous: ClusterObject | undefined, current: ClusterObject | undefined): void {
    const problem = envelopeProblem(this.kinds, kind, k, previous, current);
    if (problem) {
      this.violations.push(problem);
      return;
    }
    const m = this.state.get(kind)!;
    const held = m.get(k);
    if (previous === undefined) {
      this.adds++;
      if (held) this.violations.push(`duplicate add ${kind} ${k}`);
      m.set(k, current!);
    } else if (current !== undefined) {
      this.updates++;
      if (!held) this.violations.push(`update of unknown ${kind} ${k}`);
      else if (held !== previous)
        this.violations.push(`update of ${kind} ${k} with a previous that is not the last delivered object`);
      if (sameObject(previous, current)) this.violations.push(`no-op update of ${kind} ${k}`);
      m.set(k, current);
    } else {
      this.deletes++;
      if (!held) this.violations.push(`delete of unknown ${kind} ${k}`);
      else if (held !== previous)
        this.violations.push(`delete of ${kind} ${k} with a previous that is not the last delivered object`);
      m.delete(k);
    }
  }

  synced(kind: Kind): void {
    if (!this.kinds.includes(kind)) this.violations.push(`synced ${kind}, a kind not declared`);
    if (this.syncedKinds.has(kind)) this.violations.push(`synced twice ${kind}`);
    this.syncedKinds.add(kind);
  }
}

/** The model state the double holds: every object converted; invalid ones and non-TLS Secrets are absent. */
function expectedState(api: ApiDouble, kind: Kind): Map<string, ClusterObject> {
  const out = new Map<string, ClusterObject>();
  for (const raw of api.list(kind)) {
    if (kind === 'Secret' && raw.type !== 'kubernetes.io/tls') continue;
    const r = convertKind(kind, raw);
    if (r.ok) out.set(keyOf(r.value.meta), r.value);
  }
  return out;
}

function diff(want: Map<string, ClusterObject>, got: Map<string, ClusterObject>): string[] {
  const out: string[] = [];
  for (const [k, w] of want) {
    const g = got.get(k);
    if (!g) out.push(`missing ${k}`);
    else if (!sameObject(w, g)) out.push(`stale ${k}`);
  }
  for (const k of got.keys()) if (!want.has(k)) out.push(`extra ${k}`);
  return out;
}

async function setup(t: Test, opts: ApiDoubleOptions = {}): Promise<{ api: ApiDouble; kubeconfig: string }> {
  const api = await ApiDouble.start(opts);
  t.teardown(() => api.close());
  const dir = await mkdtemp(join(tmpdir(), 'kdp-kube-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return { api, kubeconfig: await api.writeKubeconfig(join(dir, 'kubeconfig')) };
}

// ---------------------------------------------------------------- generators
function makeObject(kind: Kind, name: string, ns: string, v: number, invalid = false): Obj {
  const md = { name, ...(ns ? { namespace: ns } : {}), labels: { v: String(v) } };
  switch (kind) {
    case 'Service':
      return {
        metadata: md,
        spec: {
          clusterIP: `10.96.${v % 250}.${(v * 7) % 250}`,
          selector: { app: name },
          ports: [{ name: 'http', port: invalid ? 70000 : 80 + (v % 100), targetPort: 'http' }],
        },
      };
    case 'EndpointSlice':
      return {
        metadata: { ...md, labels: { ...md.labels, 'kubernetes.io/service-name': name } },
        addressType: 'IPv4',
        endpoints: [{ addresses: [invalid ? 'fd00::1' : `198.19.1.${v % 250}`], conditions: { ready: v % 3 !== 0 } }],
        ports: [{ name: 'http', port: 8080 }],
      };
    case 'Pod':
      return {
        metadata: md,
        spec: { nodeName: 'node-1', containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }] }] },
        status: {
          phase: 'Running',
          podIP: `198.19.2.${v % 250}`,
          conditions: [{ type: 'Ready', status: v % 2 ? 'True' : 'False' }],
        },
      };
    case 'Node':
      return {
        metadata: md,
        spec: { podCIDR: invalid ? '198.19.1.0/33' : `198.19.${v % 250}.0/24` },
        status: { addresses: [{ type: 'InternalIP', address: `198.18.0.${v % 250}` }] },
      };
    case 'Namespace':
      return { metadata: md };
    case 'Ingress':
      return {
        metadata: md,
        spec: {
          rules: [
            {
              host: `h${v}.example`,
              http: {
                paths: [
                  {
                    path: '/',
                    pathType: 'Prefix',
                    backend: { service: { name: 'web', port: { number: invalid ? 0 : 80 } } },
                  },
                ],
              },
            },
          ],
        },
      };
    case 'IngressClass':
      return { metadata: md, spec: { controller: `kdp.dev/c${v}` } };
    case 'Secret':
      // every fifth Secret is Opaque: never delivered (the source filters server-side on type)
      return {
        metadata: md,
        type: v % 5 === 0 ? 'Opaque' : 'kubernetes.io/tls',
        data: { 'tls.crt': CRT, 'tls.key': KEY },
      };
    case 'NetworkPolicy':
      return {
        metadata: md,
        spec: {
          podSelector: { matchLabels: { app: name } },
          ingress: [
            { from: [{ ipBlock: { cidr: '10.0.0.0/16', except: [invalid ? '10.1.0.0/24' : '10.0.1.0/24'] } }] },
          ],
        },
      };
    case 'AdminNetworkPolicy':
      return {
        metadata: md,
        spec: {
          priority: invalid ? 1001 : v % 1000,
          subject: { namespaces: {} },
          egress: [{ name: 'deny', action: 'Deny', to: [{ networks: ['198.19.0.0/16'] }] }],
        },
      };
    case 'BaselineAdminNetworkPolicy':
      // only the one named "default" is valid
      return {
        metadata: md,
        spec: {
          subject: { namespaces: {} },
          ingress: [{ action: invalid ? 'Pass' : 'Deny', from: [{ namespaces: {} }] }],
        },
      };
    case 'GatewayClass':
      return { metadata: md, spec: { controllerName: invalid ? '' : `kdp.dev/c${v}` } };
    case 'Gateway':
      return {
        metadata: md,
        spec: { gatewayClassName: 'kdp', listeners: [{ name: 'http', protocol: 'HTTP', port: invalid ? 0 : 80 }] },
      };
    case 'HTTPRoute':
    case 'GRPCRoute':
      return {
        metadata: md,
        spec: {
          parentRefs: [{ name: 'gw' }],
          rules: [{ backendRefs: [{ name: 'web', port: 80, weight: invalid ? -1 : v % 5 }] }],
        },
      };
    case 'ReferenceGrant':
      return {
        metadata: md,
        spec: {
          from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: invalid ? '' : `n${v}` }],
          to: [{ group: '', kind: 'Service' }],
        },
      };
  }
}

// ---------------------------------------------------------------- tests
t.test('list, watch, (previous, current), synced, invalid objects, only declared kinds', async (t) => {
  const { api, kubeconfig } = await setup(t, { bookmarkIntervalMs: 100 });
  api.create('Namespace', { metadata: { name: 'shop' } });
  api.create('Service', makeObject('Service', 'web', 'shop', 1));
  api.create('Service', makeObject('Service', 'bad', 'shop', 2, true));
  api.create('Secret', makeObject('Secret', 'tls', 'shop', 1));
  api.create('Secret', makeObject('Secret', 'opaque', 'shop', 5));
  const logs: Record<string, unknown>[] = [];
  const src = new KubeSource({
    kubeConfig: loadKubeConfig({ kubeconfig }),
    log: recordingLogger(logs),
    backoff: { initialMs: 20, maxMs: 200 },
  });
  const mirror = new Mirror(['Service', 'Secret']);
  src.watch(mirror);
  await src.start();
  t.teardown(() => src.stop());
  t.same(
    [...mirror.syncedKinds].sort(),
    ['Secret', 'Service'],
    'synced once per declared kind, before start() resolves',
  );
  t.same([...mirror.state.get('Service')!.keys()], ['shop/web'], 'the invalid Service is skipped');
  t.ok(
    logs.some((l) => l.code === 'KDP_K8S_INVALID_OBJECT' && l.key === 'shop/bad' && /70000/.test(String(l.reason))),
    'and logged with its reason',
  );
  t.same([...mirror.state.get('Secret')!.keys()], ['shop/tls'], 'only TLS Secrets');
  const watched = () => new Set(api.requests.filter((r) => r.watch).map((r) => r.path));
  await until(() => watched().size >= 2, 2000, 'watches open');
  await new Promise((r) => setTimeout(r, 100));
  t.same([...watched()].sort(), ['/api/v1/secrets', '/api/v1/services'], 'only declared kinds are watched');

  const updates: string[] = [];
  const late = listener(['Service'], { update: (o, n) => updates.push(`${o.ports[0]!.port}->${n.ports[0]!.port}`) });
  src.watch(late);
  const cur = api.get('Service', 'shop', 'web')!;
  api.update('Service', {
    ...cur,
    spec: { ...(cur.spec as Obj), ports: [{ name: 'http', port: 8080, targetPort: 'http' }] },
  });
  await until(() => updates.length === 1, 2000, 'update delivered');
  t.same(updates, ['81->8080'], 'update carries (previous, current)');
  // a no-op write (same content, new resourceVersion) is not delivered
  api.update('Service', {
    ...api.get('Service', 'shop', 'web')!,
    metadata: { ...api.get('Service', 'shop', 'web')!.metadata, resourceVersion: undefined },
  });
  // an update that makes the object invalid removes it
  api.update('Service', makeObject('Service', 'web', 'shop', 3, true));
  await until(() => !mirror.state.get('Service')!.has('shop/web'), 2000, 'invalid update removes');
  t.same(updates, ['81->8080'], 'no-op update dropped');
  api.update('Service', makeObject('Service', 'web', 'shop', 4));
  api.remove('Secret', 'shop', 'tls');
  await until(
    () => mirror.state.get('Service')!.has('shop/web') && mirror.state.get('Secret')!.size === 0,
    2000,
    'add back and delete',
  );
  t.same(mirror.violations, []);
  t.same(late.malformed, [], 'a listener added after start() gets well-formed calls');
});

t.test('HTTP 500 on the first list is retried; start() resolves after the retry', async (t) => {
  const { api, kubeconfig } = await setup(t);
  api.create('Node', makeObject('Node', 'node-1', '', 1));
  api.failNext(3, 500, 'list');
  const logs: Record<string, unknown>[] = [];
  const src = new KubeSource({
    kubeConfig: loadKubeConfig({ kubeconfig }),
    log: recordingLogger(logs),
    backoff: { initialMs: 10, maxMs: 50 },
  });
  const mirror = new Mirror(['Node']);
  src.watch(mirror);
  await src.start();
  t.teardown(() => src.stop());
  t.equal(mirror.state.get('Node')!.size, 1);
  t.equal(logs.filter((l) => l.code === 'KDP_K8S_API').length, 3, 'each failure logged with KDP_K8S_API');
  t.equal(src.counts('Node')!.errors, 3);
});

t.test('openSource picks the Kubernetes source from --kubeconfig, the manifests source from a directory', async (t) => {
  const { api, kubeconfig } = await setup(t);
  api.create('Namespace', { metadata: { name: 'one' } });
  const src = openSource({ kubeconfig, log: silentLogger });
  t.equal(src.constructor.name, 'LazyKubeSource', 'the client library is loaded on start()');
  const names: string[] = [];
  src.watch(listener(['Namespace'], { add: (n) => names.push(n.meta.name) }));
  await src.start();
  await src.stop();
  t.same(names, ['one']);
  const prev = process.env.KUBECONFIG;
  process.env.KUBECONFIG = join(tmpdir(), 'kdp-no-such-kubeconfig');
  t.teardown(() => (prev === undefined ? delete process.env.KUBECONFIG : (process.env.KUBECONFIG = prev)));
  await t.rejects(openSource({ kubeconfig: join(tmpdir(), 'kdp-no-such-kubeconfig'), log: silentLogger }).start(), {
    code: 'KDP_K8S_CONFIG',
  });
  t.equal(openSource({ manifestsDir: tmpdir(), log: silentLogger }).constructor.name, 'ManifestsSource');
});

t.test(
  'randomized: 1,000 mutations with disconnects, 410s and 500s; final state equal, no duplicate events',
  async (t) => {
    const seed = Number(process.env.KDP_SEED ?? Date.now() % 1_000_000);
    t.comment(`seed ${seed} (rerun with KDP_SEED=${seed})`);
    const rand = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    // a short history: a watch that reconnects after many writes finds its version evicted (410)
    const { api, kubeconfig } = await setup(t, { bookmarkIntervalMs: 50, historyLimit: 40 });
    const kinds: Kind[] = [...KINDS];
    const namespaces = ['a', 'b'];
    let v = 0;
    for (const kind of kinds) {
      for (let i = 0; i < 5; i++) {
        const namespaced =
          kind !== 'Node' && kind !== 'Namespace' && kind !== 'IngressClass' && kind !== 'GatewayClass';
        api.create(kind, makeObject(kind, `${kind.toLowerCase()}-${i}`, namespaced ? pick(namespaces) : '', ++v));
      }
    }
    const src = new KubeSource({
      kubeConfig: loadKubeConfig({ kubeconfig }),
      log: silentLogger,
      backoff: { initialMs: 5, maxMs: 100 },
      watchTimeoutSeconds: [2, 4],
    });
    const mirror = new Mirror();
    src.watch(mirror);
    await src.start();
    t.teardown(() => src.stop());
    t.equal(mirror.syncedKinds.size, KINDS.length, 'every kind synced');

    const faults = { disconnect: 0, expire: 0, watch500: 0, watch410: 0, list500: 0, evict: 0 };
    const mutations = { create: 0, update: 0, delete: 0, invalid: 0 };
    for (let i = 0; i < 1000; i++) {
      const kind = pick(kinds);
      const namespaced = kind !== 'Node' && kind !== 'Namespace' && kind !== 'IngressClass' && kind !== 'GatewayClass';
      const existing = api.list(kind);
      const op =
        existing.length < 3
          ? 'create'
          : existing.length > 12
            ? pick(['update', 'delete'] as const)
            : pick(['create', 'update', 'update', 'delete'] as const);
      const invalid = rand() < 0.03;
      if (invalid) mutations.invalid++;
      if (op === 'create') {
        const name = `${kind.toLowerCase()}-${1000 + i}`;
        api.create(kind, makeObject(kind, name, namespaced ? pick(namespaces) : '', ++v, invalid));
      } else {
        const o = pick(existing);
        const md = o.metadata as { name: string; namespace?: string };
        if (op === 'update') api.update(kind, makeObject(kind, md.name, md.namespace ?? '', ++v, invalid));
        else api.remove(kind, md.namespace, md.name);
      }
      mutations[op]++;
      const f = rand();
      if (f < 0.03) faults.disconnect += api.disconnectWatches() > 0 ? 1 : 0;
      else if (f < 0.04) faults.expire += api.expireWatches() > 0 ? 1 : 0;
      else if (f < 0.05) {
        api.failNext(2, 500, 'watch');
        api.disconnectWatches();
        faults.watch500++;
      } else if (f < 0.055) {
        api.failNext(1, 410, 'watch');
        api.disconnectWatches();
        faults.watch410++;
      } else if (f < 0.06) {
        api.failNext(1, 500, 'list');
        api.expireWatches();
        faults.list500++;
      }
      // let the client run now and then, so events, reconnects and mutations interleave
      if (rand() < 0.3) await new Promise((r) => setTimeout(r, Math.floor(rand() * 4)));
      // a burst while watches are down evicts their versions from the short history
      if (rand() < 0.01) {
        api.disconnectWatches();
        for (let j = 0; j < 45; j++) {
          if (api.get('Namespace', undefined, 'burst'))
            api.update('Namespace', { metadata: { name: 'burst', labels: { j: String(j) } } });
          else api.create('Namespace', { metadata: { name: 'burst' } });
        }
        faults.evict++;
      }
    }
    t.comment(`mutations ${JSON.stringify(mutations)}; faults ${JSON.stringify(faults)}`);

    const settled = () => KINDS.every((k) => diff(expectedState(api, k), mirror.state.get(k)!).length === 0);
    try {
      await until(settled, 15_000, 'the listener converges on the double state');
    } catch {
      // report what differs
    }
    for (const k of KINDS)
      t.same(diff(expectedState(api, k), mirror.state.get(k)!), [], `${k}: listener state equals the double's`);
    t.same(
      mirror.violations,
      [],
      'no duplicate add, no update/delete of unknown objects, previous is the last delivered object, no no-op updates',
    );
    const totals = KINDS.map((k) => src.counts(k)!).reduce((a, c) => ({
      lists: a.lists + c.lists,
      watches: a.watches + c.watches,
      relists: a.relists + c.relists,
      errors: a.errors + c.errors,
    }));
    t.comment(
      `reflectors ${JSON.stringify(totals)}; events adds=${mirror.adds} updates=${mirror.updates} deletes=${mirror.deletes}`,
    );
    t.ok(totals.relists > 0, 'relists happened (410 paths exercised)');
    t.ok(totals.errors > 0, 'watch errors happened and were retried');
    t.ok(api.stats.injectedFailures > 0, 'injected failures were served');
  },
);

t.test('an optional CRD the API server does not serve (404) lists as empty, then appears once served', async (t) => {
  const { api, kubeconfig } = await setup(t, { bookmarkIntervalMs: 100 });
  api.create('AdminNetworkPolicy', makeObject('AdminNetworkPolicy', 'guard', '', 7));
  // the first two lists of ANPs answer 404 as when the CRD is not installed
  api.failNext(2, 404, (q) => q.path.endsWith('/adminnetworkpolicies') && !q.watch);
  const logs: Record<string, unknown>[] = [];
  const src = new KubeSource({
    kubeConfig: loadKubeConfig({ kubeconfig }),
    log: recordingLogger(logs),
    backoff: { initialMs: 20, maxMs: 200 },
  });
  const mirror = new Mirror(['AdminNetworkPolicy', 'NetworkPolicy']);
  src.watch(mirror);
  await src.start();
  t.teardown(() => src.stop());
  t.same([...mirror.syncedKinds].sort(), ['AdminNetworkPolicy', 'NetworkPolicy'], 'synced although not served');
  t.same([...mirror.state.get('AdminNetworkPolicy')!.keys()], [], 'no ANP while the CRD is not served');
  t.ok(
    logs.some((l) => /not served/.test(String(l.msg))),
    'logged',
  );
  await until(() => mirror.state.get('AdminNetworkPolicy')!.size === 1, 5000, 'the ANP after the CRD appears');
  t.same([...mirror.state.get('AdminNetworkPolicy')!.keys()], ['guard']);
  t.same(mirror.violations, []);
});
