// An in-memory model of the nft objects the proxy uses (table `ip kdp`): replays the scripts we emit and
// throws where the kernel would refuse them (missing chain or set, element that exists, chain in use).
import { dumpState } from '../../../src/proxy/nftables/render.ts';

export /** Replays the nft commands we emit on an in-memory table; throws where the kernel would refuse. */
class FakeTable {
  chains = new Map<string, { def?: string; rules: string[] }>();
  sets = new Map<string, string>();
  setElements = new Map<string, Set<string>>();
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
        for (const [n, c] of this.chains)
          if (c.rules.some((r) => r.includes(`goto ${m![1]}`) || r.includes(`jump ${m![1]}`)))
            throw new Error(`chain in use by ${n}: ${line}`);
        for (const mp of this.maps.values())
          for (const v of mp.elements.values())
            if (v === `goto ${m[1]}`) throw new Error(`chain in use by a map: ${line}`);
        this.chains.delete(m[1]!);
      } else if ((m = /^add rule ip kdp (\S+) (.*)$/.exec(line))) {
        const c = this.chains.get(m[1]!);
        if (!c) throw new Error(`rule in missing chain: ${line}`);
        for (const ref of m[2]!.matchAll(/(?:goto|jump) (\S+?)(?:,| |$)/g))
          if (!this.chains.has(ref[1]!)) throw new Error(`rule refers to missing chain ${ref[1]}`);
        for (const ref of m[2]!.matchAll(/@(\S+)/g))
          if (!this.sets.has(ref[1]!) && !this.maps.has(ref[1]!))
            throw new Error(`rule refers to missing set ${ref[1]}`);
        c.rules.push(m[2]!);
      } else if ((m = /^add set ip kdp (\S+) (\{.*\})$/.exec(line))) {
        if (!this.sets.has(m[1]!)) this.sets.set(m[1]!, m[2]!);
      } else if ((m = /^flush set ip kdp (\S+)$/.exec(line))) {
        if (!this.sets.has(m[1]!)) throw new Error(`flush of missing set: ${line}`);
        this.setElements.delete(m[1]!);
      } else if ((m = /^delete set ip kdp (\S+)$/.exec(line))) {
        for (const [n, c] of this.chains)
          if (c.rules.some((r) => r.split(' ').includes(`@${m![1]}`))) throw new Error(`set in use by ${n}: ${line}`);
        this.sets.delete(m[1]!);
        this.setElements.delete(m[1]!);
      } else if ((m = /^(add|delete) element ip kdp (\S+) \{ (.*) \}$/.exec(line)) && this.sets.has(m[2]!)) {
        let el = this.setElements.get(m[2]!);
        if (!el) this.setElements.set(m[2]!, (el = new Set()));
        for (const k of m[3]!.split(', ')) {
          if (m[1] === 'add') {
            if (el.has(k)) throw new Error(`element exists: ${k}`);
            el.add(k);
          } else if (!el.delete(k)) throw new Error(`no such element: ${k}`);
        }
      } else if ((m = /^add map ip kdp (\S+) (\{.*\})$/.exec(line))) {
        if (!this.maps.has(m[1]!)) this.maps.set(m[1]!, { def: m[2]!, elements: new Map() });
      } else if ((m = /^flush map ip kdp (\S+)$/.exec(line))) {
        this.maps.get(m[1]!)!.elements.clear();
      } else if ((m = /^(add|delete) element ip kdp (\S+) \{ (.*) \}$/.exec(line))) {
        const mp = this.maps.get(m[2]!);
        if (!mp) throw new Error(`element of missing map: ${line}`);
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
  /** The endpoints a chain's `dnat ... numgen ... map @endpoints-*` rule balances over ("ip . port", in order). */
  endpointsOf(chain: string): string[] {
    const rule = this.chains.get(chain)?.rules.find((r) => r.includes(' dnat '));
    const m = rule && /numgen random mod (\d+)(?: offset (\d+))? map @(\S+)/.exec(rule);
    if (!m) throw new Error(`no map-based dnat rule in ${chain}`);
    const base = Number(m[2] ?? 0);
    return Array.from({ length: Number(m[1]) }, (_, i) => {
      const v = this.maps.get(m[3]!)?.elements.get(String(base + i));
      if (v === undefined) throw new Error(`${chain}: key ${base + i} missing in ${m[3]}`);
      return v;
    });
  }

  /** The endpoints a ClusterIP balances over: through a shared `lb-*` chain or the service's own chain. */
  clusterIPBackends(vip: string, proto: string, port: number): string[] {
    const verdict = this.maps.get('cluster-ips')?.elements.get(`${vip} . ${proto} . ${port}`);
    const chain = /^goto (\S+)$/.exec(verdict ?? '')?.[1];
    if (!chain) throw new Error(`no cluster-ips element for ${vip} . ${proto} . ${port}`);
    const lb = /^lb-(\w+)-(\d+)$/.exec(chain);
    if (!lb) return this.endpointsOf(chain);
    return Array.from({ length: Number(lb[2]) }, (_, i) => {
      const v = this.maps.get(`cluster-endpoints-${lb[1]}`)?.elements.get(`${vip} . ${port} . ${i}`);
      if (v === undefined) throw new Error(`${vip}: endpoint ${i} missing`);
      return v;
    });
  }

  /** The names objects have, as `nft -j list chains|sets|maps` would report them. */
  listJson(what: 'chains' | 'sets' | 'maps'): string {
    const names = what === 'chains' ? this.chains.keys() : what === 'sets' ? this.sets.keys() : this.maps.keys();
    return JSON.stringify({
      nftables: [...names].map((name) => ({ [what.slice(0, -1)]: { family: 'ip', table: 'kdp', name } })),
    });
  }

  dump(): string {
    return dumpState({
      family: 'ip',
      chains: this.chains,
      sets: this.sets,
      maps: this.maps,
      setElements: this.setElements,
    });
  }
}
