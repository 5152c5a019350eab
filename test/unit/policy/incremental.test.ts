// The incremental compile and render (PolicyCompiler fed the reconcile's changes, the renderer's per-pod cache) give
// exactly what a from-scratch compile and render give, after every step of a random sequence of changes: policies
// (NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy) added, removed and edited, pod labels, pod IPs,
// pods added and removed, namespace labels, node addresses. Seeded: a failure names its seed and step.
import t from 'tap';
import type { Change } from '../../../src/k8s/controller.ts';
import type {
  AdminNetworkPolicy,
  AdminPolicyRule,
  BaselineAdminNetworkPolicy,
  ClusterObject,
  Kind,
  LabelSelector,
  Namespace,
  NetworkPolicy,
  NetworkPolicyRule,
  Node,
  Pod,
} from '../../../src/model/types.ts';
import { keyOf } from '../../../src/model/types.ts';
import { compilePolicies, PolicyCompiler } from '../../../src/policy/compile.ts';
import { renderNft } from '../../../src/policy/nft.ts';
import type { PolicyInput } from '../../../src/policy/types.ts';
import { meta } from './fixtures.ts';

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

const sel = (m: Record<string, string>): LabelSelector => ({ matchLabels: m, matchExpressions: [] });
const NS = ['a', 'b', 'c'];

/** Random objects of a small cluster (two nodes, dual-stack pods, named ports, every policy kind). */
function generator(r: (n: number) => number) {
  const labels = () => ({ app: `x${r(3)}`, ...(r(2) ? { role: `r${r(2)}` } : {}) });
  const someSel = () => (r(4) === 0 ? sel({}) : r(2) ? sel({ app: `x${r(3)}` }) : sel({ role: `r${r(2)}` }));
  const nsSel = () => (r(3) === 0 ? sel({}) : sel({ team: `t${r(2)}` }));
  const port = (egress: boolean) =>
    r(3) === 0
      ? { protocol: 'TCP' as const, port: r(2) ? 'http' : 'dns' }
      : r(2)
        ? { protocol: 'TCP' as const, port: 80 + r(4), ...(r(3) === 0 ? { endPort: 90 } : {}) }
        : { protocol: (egress ? 'UDP' : 'SCTP') as 'UDP' | 'SCTP', port: 5000 + r(3) };
  const npRule = (egress: boolean): NetworkPolicyRule => ({
    peers: Array.from({ length: r(3) }, () =>
      r(4) === 0
        ? { ipBlock: { cidr: `10.9.${r(4)}.0/24`, except: r(2) ? [`10.9.0.${16 * r(4)}/28`] : [] } }
        : r(2)
          ? { podSelector: someSel() }
          : { namespaceSelector: nsSel(), ...(r(2) ? { podSelector: someSel() } : {}) },
    ),
    ports: Array.from({ length: r(3) }, () => port(egress)),
  });
  const adminRule = (i: number, egress: boolean, baseline: boolean): AdminPolicyRule => {
    const actions = baseline ? (['Allow', 'Deny'] as const) : (['Allow', 'Deny', 'Pass'] as const);
    const peer = () => {
      const k = r(egress ? 4 : 2);
      if (k === 2) return { nodes: sel(r(2) ? {} : { zone: `z${r(2)}` }) };
      if (k === 3) return { networks: [`10.8.${r(4)}.0/24`, 'fd00:8::/64'] };
      return { pods: { namespaceSelector: nsSel(), ...(r(2) ? { podSelector: someSel() } : {}) } };
    };
    return {
      name: `rule-${i}`,
      action: actions[r(actions.length)]!,
      peers: Array.from({ length: 1 + r(2) }, peer),
      ...(r(3) === 0 ? {} : { ports: [r(3) === 0 ? { port: 'http' } : { protocol: 'TCP' as const, port: 80 + r(4) }] }),
    };
  };
  return {
    namespace: (name: string): Namespace => ({ kind: 'Namespace', meta: meta('', name, { team: `t${r(2)}` }) }),
    node: (i: number): Node => ({
      kind: 'Node',
      meta: meta('', `n${i}`, { zone: `z${r(2)}` }),
      podCIDRs: [],
      addresses: [{ type: 'InternalIP', address: `192.168.0.${1 + r(20)}` }],
      ready: true,
    }),
    pod: (i: number, name = `p${i}`, ns = NS[i % NS.length]!): Pod => ({
      kind: 'Pod',
      meta: meta(ns, name, labels()),
      nodeName: `n${r(2)}`,
      hostNetwork: false,
      containerPorts: [
        { name: 'http', containerPort: r(2) ? 8080 : 8081, protocol: 'TCP' },
        ...(r(2) ? [{ name: 'dns', containerPort: 53, protocol: 'UDP' as const }] : []),
      ],
      phase: 'Running',
      podIPs:
        r(3) === 0 ? [`10.244.0.${10 + r(200)}`, `fd00::${(10 + r(200)).toString(16)}`] : [`10.244.0.${10 + r(200)}`],
      ready: true,
    }),
    np: (name: string, ns = NS[r(NS.length)]!): NetworkPolicy => {
      const types = [['Ingress'], ['Egress'], ['Ingress', 'Egress']][r(3)] as ('Ingress' | 'Egress')[];
      return {
        kind: 'NetworkPolicy',
        meta: meta(ns, name),
        podSelector: someSel(),
        policyTypes: types,
        ingress: types.includes('Ingress') ? Array.from({ length: r(3) }, () => npRule(false)) : [],
        egress: types.includes('Egress') ? Array.from({ length: r(3) }, () => npRule(true)) : [],
      };
    },
    anp: (name: string): AdminNetworkPolicy => ({
      kind: 'AdminNetworkPolicy',
      meta: meta('', name),
      priority: r(4),
      subject: { namespaceSelector: nsSel(), ...(r(2) ? { podSelector: someSel() } : {}) },
      ingress: Array.from({ length: r(3) }, (_, i) => adminRule(i, false, false)),
      egress: Array.from({ length: r(3) }, (_, i) => adminRule(i, true, false)),
    }),
    banp: (): BaselineAdminNetworkPolicy => ({
      kind: 'BaselineAdminNetworkPolicy',
      meta: meta('', 'default'),
      subject: { namespaceSelector: nsSel() },
      ingress: Array.from({ length: r(3) }, (_, i) => adminRule(i, false, true)),
      egress: Array.from({ length: r(3) }, (_, i) => adminRule(i, true, true)),
    }),
  };
}

/** The cluster as a store: put/remove give the Change the controller would hand the reconciler. */
class World {
  readonly objs = new Map<string, ClusterObject>();
  put(o: ClusterObject): Change {
    const key = `${o.kind} ${keyOf(o.meta)}`;
    const previous = this.objs.get(key);
    this.objs.set(key, o);
    return { kind: o.kind, key: keyOf(o.meta), previous, current: o } as Change;
  }
  remove(kind: Kind, key: string): Change | undefined {
    const previous = this.objs.get(`${kind} ${key}`);
    if (!previous) return undefined;
    this.objs.delete(`${kind} ${key}`);
    return { kind, key, previous, current: undefined } as Change;
  }
  of<K extends Kind>(kind: K): Extract<ClusterObject, { kind: K }>[] {
    return [...this.objs.values()].filter((o): o is Extract<ClusterObject, { kind: K }> => o.kind === kind);
  }
  input(): PolicyInput {
    return {
      pods: this.of('Pod'),
      namespaces: this.of('Namespace'),
      nodes: this.of('Node'),
      networkPolicies: this.of('NetworkPolicy'),
      adminNetworkPolicies: this.of('AdminNetworkPolicy'),
      baselineAdminNetworkPolicies: this.of('BaselineAdminNetworkPolicy'),
    };
  }
}

for (const seed of [1, 2, 3, 4, 5, 6]) {
  t.test(`seed ${seed}: incremental == from scratch after each of 60 random changes`, async (t) => {
    const r = rng(seed);
    const g = generator(r);
    const w = new World();
    for (const n of NS) w.put(g.namespace(n));
    for (const i of [0, 1]) w.put(g.node(i));
    for (let i = 0; i < 12; i++) w.put(g.pod(i));
    for (let i = 0; i < 8; i++) w.put(g.np(`np${i}`));
    for (let i = 0; i < 2; i++) w.put(g.anp(`anp${i}`));
    w.put(g.banp());
    const compiler = new PolicyCompiler();
    const opts = { node: 'n1' };
    compiler.compile(w.input(), opts);
    let mismatches = 0;
    for (let step = 0; step < 60; step++) {
      const pick = <T>(xs: readonly T[]): T => xs[r(xs.length)]!;
      const pods = w.of('Pod');
      const changes: (Change | undefined)[] = [];
      // one to three changes per reconcile (the kernel merges what arrives together)
      for (let k = 0, n = 1 + r(3); k < n; k++) {
        const what = r(12);
        const p = pick(pods);
        if (what === 0) changes.push(w.put(g.np(`np${r(12)}`)));
        else if (what === 1 || what === 2) {
          const np = w.of('NetworkPolicy')[0] && pick(w.of('NetworkPolicy'));
          if (np && what === 1) changes.push(w.remove('NetworkPolicy', keyOf(np.meta)));
          else if (np) changes.push(w.put(g.np(np.meta.name, np.meta.namespace)));
        } else if (what === 3)
          changes.push(r(3) ? w.put(g.anp(`anp${r(3)}`)) : w.remove('AdminNetworkPolicy', `anp${r(3)}`));
        else if (what === 4) changes.push(r(3) ? w.put(g.banp()) : w.remove('BaselineAdminNetworkPolicy', 'default'));
        else if (what === 5 && p) changes.push(w.put({ ...p, meta: { ...p.meta, labels: g.pod(0).meta.labels } }));
        else if (what === 6 && p) changes.push(w.put({ ...p, podIPs: g.pod(0).podIPs }));
        else if (what === 7 && p) changes.push(w.put({ ...p, containerPorts: g.pod(0).containerPorts }));
        else if (what === 8) changes.push(w.put(g.namespace(pick(NS))));
        else if (what === 9) changes.push(w.put(g.pod(r(20), `q${r(6)}`)));
        else if (what === 10 && p) changes.push(w.remove('Pod', keyOf(p.meta)));
        else changes.push(w.put(g.node(r(2))));
      }
      const input = w.input();
      const inc = compiler.compile(
        input,
        opts,
        changes.filter((c): c is Change => c !== undefined),
      );
      const full = compilePolicies(input, opts);
      const same =
        JSON.stringify(inc) === JSON.stringify(full) &&
        renderNft(inc, { table: 't' }) === renderNft(full, { table: 't' });
      if (!same) {
        mismatches++;
        t.fail(`step ${step}: incremental differs (${changes.map((c) => c && `${c.kind} ${c.key}`).join(', ')})`);
        break;
      }
    }
    t.equal(mismatches, 0, 'every step agreed');
  });
}

t.test('untouched pods keep their compiled object (what lets the renderer reuse their elements)', async (t) => {
  const g = generator(rng(9));
  const w = new World();
  for (const n of NS) w.put(g.namespace(n));
  for (let i = 0; i < 12; i++) w.put({ ...g.pod(i), nodeName: 'n1' });
  w.put({ ...g.np('only-a', 'a'), podSelector: sel({}) });
  w.put({ ...g.np('only-b', 'b'), podSelector: sel({}) });
  const c = new PolicyCompiler();
  const before = c.compile(w.input(), { node: 'n1' });
  const change = w.put({ ...g.np('only-a', 'a'), podSelector: sel({}) });
  const after = c.compile(w.input(), { node: 'n1' }, [change]);
  for (const p of after.pods) {
    const old = before.pods.find((x) => x.key === p.key);
    if (p.namespace === 'b' || p.namespace === 'c') t.equal(p, old, `${p.key}: the same object`);
  }
  t.notOk(
    after.pods.filter((p) => p.namespace === 'a').some((p) => p === before.pods.find((x) => x.key === p.key)),
    'the pods of a were compiled again',
  );
  t.equal(JSON.stringify(after), JSON.stringify(compilePolicies(w.input(), { node: 'n1' })));
});
