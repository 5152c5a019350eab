// nftables renderer: golden file of the full table, and diffs that take the kernel from one state to the
// next (checked by replaying scripts on an in-memory model of the nft objects we use).
import t from 'tap';
import { buildServicePorts } from '../../../src/proxy/model.ts';
import { diffScript, dumpState, fullScript, renderNft } from '../../../src/proxy/nftables/render.ts';
import type { NftState } from '../../../src/proxy/nftables/render.ts';
import { assertGolden } from './golden.ts';
import { goldenScenario, makeService, makeSlice } from './fixtures.ts';
import type { EndpointSlice, Service } from '../../../src/model/types.ts';

const CFG = { clusterCIDRs: ['198.19.0.0/16'] };
const EMPTY = { chains: new Set<string>(), sets: new Set<string>(), maps: new Set<string>() };

function render(services: Service[], slices: EndpointSlice[], node = 'node1'): NftState {
  const m = new Map<string, EndpointSlice[]>();
  for (const s of slices) m.set(`${s.meta.namespace}/${s.serviceName}`, [...(m.get(`${s.meta.namespace}/${s.serviceName}`) ?? []), s]);
  return renderNft(buildServicePorts(services, m, { nodeName: node, family: 'IPv4' }), 'ip', CFG);
}

/** Replays the nft commands we emit on an in-memory table; throws where the kernel would refuse. */
class FakeTable {
  chains = new Map<string, { def?: string; rules: string[] }>();
  sets = new Map<string, string>();
  maps = new Map<string, { def: string; elements: Map<string, string> }>();
  apply(lines: string[]): void {
    for (const line of lines) {
      let m: RegExpExecArray | null;
      if (/^add table /.test(line)) continue;
      if ((m = /^add chain ip kdp (\S+)(?: (\{.*\}))?$/.exec(line))) {
        if (!this.chains.has(m[1]!)) this.chains.set(m[1]!, { ...(m[2] ? { def: m[2] } : {}), rules: [] });
      } else if ((m = /^flush chain ip kdp (\S+)$/.exec(line))) {
        const c = this.chains.get(m[1]!);
        if (!c) throw new Error(`flush of missing chain: ${line}`);
        c.rules = [];
      } else if ((m = /^delete chain ip kdp (\S+)$/.exec(line))) {
        if (this.chains.get(m[1]!)?.rules.length) throw new Error(`delete of non-empty chain: ${line}`);
        for (const [n, c] of this.chains) if (c.rules.some((r) => r.includes(`goto ${m![1]}`) || r.includes(`jump ${m![1]}`))) throw new Error(`chain in use by ${n}: ${line}`);
        for (const mp of this.maps.values()) for (const v of mp.elements.values()) if (v === `goto ${m[1]}`) throw new Error(`chain in use by a map: ${line}`);
        this.chains.delete(m[1]!);
      } else if ((m = /^add rule ip kdp (\S+) (.*)$/.exec(line))) {
        const c = this.chains.get(m[1]!);
        if (!c) throw new Error(`rule in missing chain: ${line}`);
        for (const ref of m[2]!.matchAll(/(?:goto|jump) (\S+?)(?:,| |$)/g)) if (!this.chains.has(ref[1]!)) throw new Error(`rule refers to missing chain ${ref[1]}`);
        for (const ref of m[2]!.matchAll(/@(\S+)/g)) if (!this.sets.has(ref[1]!) && !this.maps.has(ref[1]!)) throw new Error(`rule refers to missing set ${ref[1]}`);
        c.rules.push(m[2]!);
      } else if ((m = /^add set ip kdp (\S+) (\{.*\})$/.exec(line))) {
        this.sets.set(m[1]!, m[2]!);
      } else if ((m = /^delete set ip kdp (\S+)$/.exec(line))) {
        for (const [n, c] of this.chains) if (c.rules.some((r) => r.includes(`@${m![1]} `))) throw new Error(`set in use by ${n}: ${line}`);
        this.sets.delete(m[1]!);
      } else if ((m = /^add map ip kdp (\S+) (\{.*\})$/.exec(line))) {
        if (!this.maps.has(m[1]!)) this.maps.set(m[1]!, { def: m[2]!, elements: new Map() });
      } else if ((m = /^flush map ip kdp (\S+)$/.exec(line))) {
        this.maps.get(m[1]!)!.elements.clear();
      } else if ((m = /^(add|delete) element ip kdp (\S+) \{ (.*) \}$/.exec(line))) {
        const mp = this.maps.get(m[2]!)!;
        for (const e of m[3]!.split(', ')) {
          const [k, v] = e.split(' : ') as [string, string | undefined];
          if (m[1] === 'add') {
            if (mp.elements.has(k)) throw new Error(`element exists: ${k}`);
            const target = /goto (\S+)/.exec(v ?? '')?.[1];
            if (target && !this.chains.has(target)) throw new Error(`element refers to missing chain ${target}`);
            mp.elements.set(k, v!);
          } else {
            if (!mp.elements.delete(k)) throw new Error(`no such element: ${k}`);
          }
        }
      } else throw new Error(`unknown line: ${line}`);
    }
  }
  dump(): string {
    return dumpState({ family: 'ip', chains: this.chains, sets: this.sets, maps: this.maps });
  }
}

t.test('golden: the full table of the scenario', async (t) => {
  const { services, slices } = goldenScenario();
  assertGolden(t, 'nftables-node1.nft', dumpState(render(services, slices)));
  assertGolden(t, 'nftables-node2.nft', dumpState(render(services, slices, 'node2')));
});

t.test('full script builds the table from nothing and reconciles an existing one', async (t) => {
  const { services, slices } = goldenScenario();
  const state = render(services, slices);
  const k = new FakeTable();
  k.apply(fullScript(state, EMPTY));
  t.equal(k.dump(), dumpState(state));
  // restart: a kernel with a stale chain and set from an old run
  k.apply(['add chain ip kdp service-OLD-x/y/tcp/p1', 'add set ip kdp affinity-OLD { type ipv4_addr; }', 'add rule ip kdp service-OLD-x/y/tcp/p1 ip saddr @affinity-OLD drop']);
  const existing = { chains: new Set(k.chains.keys()), sets: new Set(k.sets.keys()), maps: new Set(k.maps.keys()) };
  const script = fullScript(state, existing);
  t.notOk(script.some((l) => /^delete table|^flush table/.test(l)), 'never flushes the table: no window without rules');
  k.apply(script);
  t.equal(k.dump(), dumpState(state), 'stale objects removed, rest identical');
});

t.test('diffs: each step replays to the desired state; a one-service change sends only that service', async (t) => {
  const { services, slices } = goldenScenario();
  const k = new FakeTable();
  let prev = render(services, slices);
  k.apply(fullScript(prev, EMPTY));
  const steps: [string, Service[], EndpointSlice[]][] = [];
  // 1. an endpoint added to svc1
  const sl2 = slices.map((s) => (s.serviceName === 'svc1' ? makeSlice('ns1', 'svc1', [{ ip: '198.19.1.10', node: 'node1' }, { ip: '198.19.2.10', node: 'node2' }, { ip: '198.19.2.20', node: 'node2' }]) : s));
  steps.push(['endpoint added', services, sl2]);
  // 2. affinity switched on for svc1, then its timeout changed, then off
  const aff = (secs?: number) => services.map((s) => (s.meta.name === 'svc1' ? makeService('ns1', 'svc1', (x) => ((x.clusterIPs = ['10.96.0.41']), secs ? ((x.sessionAffinity = 'ClientIP'), (x.sessionAffinityTimeoutSeconds = secs)) : undefined)) : s));
  steps.push(['affinity on', aff(30), sl2], ['affinity timeout changed', aff(60), sl2], ['affinity off', aff(), sl2]);
  // 3. all endpoints of web go away (reject), then come back
  const noWeb = sl2.filter((s) => s.serviceName !== 'web');
  steps.push(['web loses its endpoints', services, noWeb], ['web endpoints back', services, sl2]);
  // 4. a service deleted
  steps.push(['svc1 deleted', services.filter((s) => s.meta.name !== 'svc1'), sl2], ['everything deleted', [], []]);
  for (const [what, svcs, sls] of steps) {
    const next = render(svcs, sls);
    const diff = diffScript(prev, next);
    t.doesNotThrow(() => k.apply(diff), what);
    t.equal(k.dump(), dumpState(next), `${what}: kernel equals desired state`);
    prev = next;
  }
});

t.test('a change to one service of many touches only that service', async (t) => {
  const n = 300;
  const services = Array.from({ length: n }, (_, i) => makeService('bulk', `s${i}`, (s) => void (s.clusterIPs = [`10.96.${i >> 8}.${i & 255}`])));
  const slices = services.map((s, i) => makeSlice('bulk', s.meta.name, [{ ip: `198.19.1.${(i % 250) + 1}` }, { ip: `198.19.2.${(i % 250) + 1}` }]));
  const a = render(services, slices);
  const slices2 = slices.map((s, i) => (i === 7 ? makeSlice('bulk', 's7', [{ ip: '198.19.3.3' }]) : s));
  const diff = diffScript(a, render(services, slices2));
  t.ok(diff.length > 0 && diff.length < 12, `small diff (${diff.length} lines)`);
  t.ok(diff.every((l) => l.includes('bulk/s7/') || l.includes('10.96.0.7 ')), 'every line is about bulk/s7');
  t.same(diffScript(a, render(services, slices)), [], 'no change, nothing sent');
});
