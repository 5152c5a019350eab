// renderNft: compiled policies -> one `nft -f` script that replaces the table atomically (declare, delete and
// re-create it in one transaction: no packet ever sees a half-written table). Pure. Layout (docs/policy.md):
//
//   chain forward (hook forward, priority filter, policy accept)
//     ct state established,related accept        replies and later packets of allowed connections
//     ip saddr vmap @egress4 / ip6 saddr vmap @egress6    local source pod -> jump to its egress chain
//     ip daddr vmap @ingress4 / ip6 daddr vmap @ingress6  local destination pod -> jump to its ingress chain
//   chain <pod>-<dir>      AdminNetworkPolicy rules in order: Allow -> return (this direction allows), Deny ->
//                          counter + drop, Pass -> goto <pod>-<dir>-np; the end falls into <pod>-<dir>-np
//   chain <pod>-<dir>-np   isolated by NetworkPolicy: lookups in the pod's union sets -> return, else counter +
//                          drop; not isolated: BaselineAdminNetworkPolicy rules in order, then return (allow)
//
// A union's sets: `-x4`/`-x6` a hash set of `address . protocol . port` for peers of one address on one port (pods:
// most elements); `-p4`/`-p6` concatenated interval sets for address ranges (ipBlocks) and port ranges; `-a4`/`-a6`
// address interval sets for rules of every port. The interval sets are split into BUCKETS sets by a hash of the
// address block an element starts in (suffix `-1`..`-3`), so that a change updates the elements of the buckets of
// the addresses it names: the kernel's concatenated interval set pays per element update in proportion to its size,
// a hash set does not.
//
// Every lookup is a set or map lookup: the cost per packet depends on the admin rules selecting the pod (and at most
// 1 + 2 x BUCKETS lookups per family for a union), never on the number of NetworkPolicies, pods or peers. Names are
// derived from the pod key by a hash (readable in comments).
//
// Pods whose unions hold the same compiled rules share one group of union sets, named after the first of them
// (unionsOf): a change updates each set once, not once per replica.
//
// Incremental by construction: a pod's sets, chains and map elements depend on its CompiledPod and the name of its
// union group alone, so they are rendered once per (CompiledPod object, group name) (a WeakMap; the incremental
// compiler of compile.ts hands back the same object for a pod no change touched) and the table is assembled from
// those parts; elements are cached per group of rules and per address bucket. Disjoint intervals are cut by a
// sweep over the address bounds, on fixed-width hex keys (addr.ts), not bigints.
import { createHash } from 'node:crypto';
import type { IPFamily, Protocol } from '../model/types.ts';
import { ipKey, keyElement, keyPred, keySucc } from './addr.ts';
import { blockItem, plainItem } from './delta.ts';
import type { Item, Parsed } from './delta.ts';
import type { CompiledPod, CompiledPolicies, CompiledRule, Direction, RenderOptions, Tier } from './types.ts';

const TIER_PREFIX: Readonly<Record<Tier, string>> = {
  AdminNetworkPolicy: 'anp',
  NetworkPolicy: 'np',
  BaselineAdminNetworkPolicy: 'banp',
};

/** The named counter of a policy (packets it dropped); the node agent's drop metrics read these. */
export function counterName(tier: Tier, key: string): string {
  // namespaces and names are DNS-1123 (no '_'): `np_<ns>_<name>` cannot collide
  return `${TIER_PREFIX[tier]}_${key.replace('/', '_')}`;
}

/** Parses `nft list counters` / `nft list table` text: counter name -> packets. */
export function parseCounters(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const re = /counter\s+([A-Za-z0-9_.\-/]+)\s*\{\s*packets\s+(\d+)/g;
  for (const m of text.matchAll(re)) out.set(m[1]!, Number(m[2]));
  return out;
}

function podTag(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 10);
}

const NFT_PROTO: Readonly<Record<Protocol, string>> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };
const PROTOS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];
const ipWord = (f: IPFamily): string => (f === 'IPv4' ? 'ip' : 'ip6');
const addrType = (f: IPFamily): string => (f === 'IPv4' ? 'ipv4_addr' : 'ipv6_addr');
const ANY_KEYS: Readonly<Record<IPFamily, { a0: string; a1: string }>> = {
  IPv4: { a0: '0'.repeat(8), a1: 'f'.repeat(8) },
  IPv6: { a0: '0'.repeat(32), a1: 'f'.repeat(32) },
};
const famOfIp = (ip: string): IPFamily => (ip.includes(':') ? 'IPv6' : 'IPv4');

type Span = { a0: string; a1: string };

/**
 * The sets of a group of rules per family: per protocol and port range (key p0 * 65536 + p1) the lists of address
 * spans (each sorted and disjoint: a rule's peers; rules with the same peers share one list), and the addresses
 * matched on every protocol and port.
 */
interface MatchSets {
  readonly rects: Record<IPFamily, Record<Protocol, Map<number, Span[][]>>>;
  readonly any: Record<IPFamily, Span[]>;
}

const emptySets = (): MatchSets => ({
  rects: {
    IPv4: { TCP: new Map(), UDP: new Map(), SCTP: new Map() },
    IPv6: { TCP: new Map(), UDP: new Map(), SCTP: new Map() },
  },
  any: { IPv4: [], IPv6: [] },
});

/**
 * The interval elements of a union are split into this many sets by a hash of the address block they start in
 * (IPv4 /16, IPv6 /32): the elements a policy change touches sit in the buckets of the addresses it names, so the
 * agent re-cuts and the kernel updates those sets only. The kernel's concatenated interval set (pipapo)
 * pays per element added or deleted in proportion to the set's size; equal peers of several policies still merge
 * (one bucket per address). A packet makes at most BUCKETS lookups per kind of interval set.
 */
const BUCKETS = 4;

function bucketOf(key: string): number {
  const block = key.slice(0, key.length === 8 ? 4 : 8);
  let h = 2166136261;
  for (let i = 0; i < block.length; i++) h = Math.imul(h ^ block.charCodeAt(i), 16777619);
  return (h >>> 0) % BUCKETS;
}

/** A rule's peers as key spans per family, once per CompiledRule object (pods share rules that do not depend on them). */
interface RuleSpans {
  readonly spans: Record<IPFamily, Span[]>;
  /** the spans of one address (pods) as element text */
  readonly singles: Record<IPFamily, string[]>;
  /** per bucket: the address ranges (ipBlocks), the single addresses, every span; each with its text (dedupe) */
  readonly ranges: Record<IPFamily, Bucketed>;
  readonly singleSpans: Record<IPFamily, Bucketed>;
  readonly all: Record<IPFamily, Bucketed>;
}
interface Bucketed {
  readonly lists: readonly Span[][];
  /** the lists as text: rules with equal peers contribute them once */
  readonly sigs: readonly string[];
}
const ruleSpans = new WeakMap<CompiledRule, RuleSpans>();

function bucketed(spans: readonly Span[]): Bucketed {
  const lists: Span[][] = Array.from({ length: BUCKETS }, () => []);
  for (const x of spans) lists[bucketOf(x.a0)]!.push(x);
  return { lists, sigs: lists.map((l) => l.map((x) => `${x.a0}-${x.a1}`).join(',')) };
}

function spansOfRule(r: CompiledRule): RuleSpans {
  const hit = ruleSpans.get(r);
  if (hit) return hit;
  const spans: Record<IPFamily, Span[]> = { IPv4: [], IPv6: [] };
  if (r.peers === 'any') for (const f of FAMILIES) spans[f].push({ ...ANY_KEYS[f] });
  // merged and sorted by the compiler (AddressSetBuilder): each family's spans are disjoint and in order
  else for (const a of r.peers) spans[a.family].push({ a0: ipKey(a.first), a1: ipKey(a.last) });
  // pod addresses (even adjacent ones, which `peers` merges into a range) and single-address ranges are singles;
  // the other ranges are ranges
  const singles: Record<IPFamily, Span[]> = { IPv4: [], IPv6: [] };
  const ranges: Record<IPFamily, Span[]> = { IPv4: [], IPv6: [] };
  if (r.peerParts) {
    for (const ip of r.peerParts.pods) {
      const k = ipKey(ip);
      singles[famOfIp(ip)].push({ a0: k, a1: k });
    }
    for (const a of r.peerParts.ranges) {
      const x = { a0: ipKey(a.first), a1: ipKey(a.last) };
      (x.a0 === x.a1 ? singles : ranges)[a.family].push(x);
    }
  } else for (const f of FAMILIES) for (const x of spans[f]) (x.a0 === x.a1 ? singles : ranges)[f].push(x);
  const out: RuleSpans = {
    spans,
    singles: {
      IPv4: singles.IPv4.map((x) => keyElement(x.a0, x.a1)),
      IPv6: singles.IPv6.map((x) => keyElement(x.a0, x.a1)),
    },
    ranges: { IPv4: bucketed(ranges.IPv4), IPv6: bucketed(ranges.IPv6) },
    singleSpans: { IPv4: bucketed(singles.IPv4), IPv6: bucketed(singles.IPv6) },
    all: { IPv4: bucketed(spans.IPv4), IPv6: bucketed(spans.IPv6) },
  };
  ruleSpans.set(r, out);
  return out;
}

/** A rule's hash set triples per family (one address, one port), once per CompiledRule object. */
const ruleTriples = new WeakMap<CompiledRule, Record<IPFamily, readonly string[]>>();
function triplesOfRule(r: CompiledRule): Record<IPFamily, readonly string[]> {
  const hit = ruleTriples.get(r);
  if (hit) return hit;
  const out: Record<IPFamily, string[]> = { IPv4: [], IPv6: [] };
  const rs = spansOfRule(r);
  if (r.ports !== 'any')
    for (const p of r.ports) {
      if (p.first !== p.last) continue;
      const tail = ` . ${NFT_PROTO[p.protocol]} . ${p.first}`;
      for (const f of FAMILIES) for (const a of rs.singles[f]) out[f].push(a + tail);
    }
  for (const pp of r.peerPorts) {
    const k = ipKey(pp.ip);
    out[famOfIp(pp.ip)].push(`${keyElement(k, k)} . ${NFT_PROTO[pp.protocol]} . ${pp.port}`);
  }
  ruleTriples.set(r, out);
  return out;
}

/** The hash set triples of a union's rules (one address, one port: a change adds and deletes only its own). */
function exactOf(rules: readonly CompiledRule[]): Record<IPFamily, Set<string>> {
  const out: Record<IPFamily, Set<string>> = { IPv4: new Set(), IPv6: new Set() };
  for (const r of rules) {
    const t = triplesOfRule(r);
    for (const f of FAMILIES) for (const e of t[f]) out[f].add(e);
  }
  return out;
}

/**
 * The interval sets' inputs of a union's rules in bucket b: address ranges on every port form, single addresses on
 * port ranges, and every address of the rules of every port.
 */
function matchSetsOf(rules: readonly CompiledRule[], b: number): MatchSets {
  const out = emptySets();
  const seen = new Set<string>();
  const rect = (f: IPFamily, proto: Protocol, k: number, list: Span[], sig: string): void => {
    if (list.length === 0) return;
    const id = `${f} ${proto} ${k} ${sig}`;
    if (seen.has(id)) return;
    seen.add(id);
    const m = out.rects[f][proto];
    const g = m.get(k);
    if (g) g.push(list);
    else m.set(k, [list]);
  };
  for (const r of rules) {
    const rs = spansOfRule(r);
    for (const f of FAMILIES) {
      if (rs.spans[f].length === 0) continue;
      if (r.ports === 'any') {
        out.any[f].push(...rs.all[f].lists[b]!);
        continue;
      }
      for (const p of r.ports) {
        const k = p.first * 65536 + p.last;
        rect(f, p.protocol, k, rs.ranges[f].lists[b]!, `r${rs.ranges[f].sigs[b]}`);
        if (p.first !== p.last) rect(f, p.protocol, k, rs.singleSpans[f].lists[b]!, `s${rs.singleSpans[f].sigs[b]}`);
      }
    }
  }
  return out;
}

/** The buckets a rule puts interval elements in (a bit each), once per CompiledRule object. */
const ruleBuckets = new WeakMap<CompiledRule, number>();
function bucketsOfRule(r: CompiledRule): number {
  let m = ruleBuckets.get(r);
  if (m !== undefined) return m;
  m = 0;
  const rs = spansOfRule(r);
  const ranged = r.ports !== 'any' && r.ports.some((p) => p.first !== p.last);
  for (let b = 0; b < BUCKETS; b++)
    for (const f of FAMILIES)
      if (
        r.ports === 'any'
          ? rs.all[f].lists[b]!.length > 0
          : rs.ranges[f].lists[b]!.length > 0 || (ranged && rs.singleSpans[f].lists[b]!.length > 0)
      )
        m |= 1 << b;
  ruleBuckets.set(r, m);
  return m;
}

const byKey = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Disjoint `address . protocol . port` elements of one protocol: the kernel's concatenated interval sets refuse
 * overlapping elements, so the union of rectangles is cut along the address axis: a sweep over the sorted address
 * bounds counts the rectangles active per distinct port range, and neighbouring slices with the same merged ports
 * are joined. O(n log n + bounds x distinct port ranges).
 */
function rectElements(groups: ReadonlyMap<number, readonly Span[][]>, proto: Protocol, out: string[]): void {
  if (groups.size === 0) return;
  // per distinct port range the union of its address spans
  const ranges = [...groups.keys()]
    .sort((x, y) => x - y)
    .map((k) => {
      const lists = groups.get(k)!;
      return {
        p0: Math.floor(k / 65536),
        p1: k % 65536,
        spans: lists.length === 1 ? lists[0]! : mergeSpans(lists.flat()),
      };
    });
  const starts: { a0: string; id: number }[] = [];
  const ends: { at: string; id: number }[] = [];
  ranges.forEach((r, id) => {
    for (const sp of r.spans) {
      starts.push({ a0: sp.a0, id });
      // a span ending at the family's last address never ends (no bound after it)
      const at = keySucc(sp.a1);
      if (at !== undefined) ends.push({ at, id });
    }
  });
  starts.sort((x, y) => byKey(x.a0, y.a0));
  ends.sort((x, y) => byKey(x.at, y.at));
  const count = new Int32Array(ranges.length);
  let si = 0;
  let ei = 0;
  let active = 0;
  let cur: { a0: string; a1: string; list: number[] } | undefined;
  const flush = (): void => {
    if (!cur) return;
    const addr = keyElement(cur.a0, cur.a1);
    const l = cur.list;
    for (let k = 0; k < l.length; k += 2)
      out.push(`${addr} . ${NFT_PROTO[proto]} . ${l[k] === l[k + 1] ? l[k] : `${l[k]}-${l[k + 1]}`}`);
    cur = undefined;
  };
  const same = (a: number[], b: number[]): boolean => a.length === b.length && a.every((x, k) => x === b[k]);
  while (si < starts.length || ei < ends.length) {
    // the next bound: the smallest of the next start and the next end
    const s0 = si < starts.length ? starts[si]!.a0 : undefined;
    const e0 = ei < ends.length ? ends[ei]!.at : undefined;
    const b = s0 === undefined ? e0! : e0 === undefined || s0 < e0 ? s0 : e0;
    for (; ei < ends.length && ends[ei]!.at === b; ei++) {
      count[ends[ei]!.id]!--;
      active--;
    }
    for (; si < starts.length && starts[si]!.a0 === b; si++) {
      count[starts[si]!.id]!++;
      active++;
    }
    if (active === 0) {
      flush();
      continue;
    }
    const ns = si < starts.length ? starts[si]!.a0 : undefined;
    const ne = ei < ends.length ? ends[ei]!.at : undefined;
    const next = ns === undefined ? ne : ne === undefined || ns < ne ? ns : ne;
    const a1 = next === undefined ? 'f'.repeat(b.length) : keyPred(next)!;
    const list: number[] = [];
    for (let i = 0; i < ranges.length; i++) {
      if (count[i] === 0) continue;
      const r = ranges[i]!;
      const n = list.length;
      if (n > 0 && r.p0 <= list[n - 1]! + 1) list[n - 1] = Math.max(list[n - 1]!, r.p1);
      else list.push(r.p0, r.p1);
    }
    if (cur && same(cur.list, list)) cur.a1 = a1;
    else {
      flush();
      cur = { a0: b, a1, list };
    }
  }
  flush();
}

/** Sorted, overlapping and adjacent spans joined. */
function mergeSpans(rs: readonly Span[]): Span[] {
  const sorted = [...rs].sort((a, b) => byKey(a.a0, b.a0));
  const merged: Span[] = [];
  for (const r of sorted) {
    const prev = merged[merged.length - 1];
    if (prev && (r.a0 <= prev.a1 || r.a0 === keySucc(prev.a1))) prev.a1 = r.a1 > prev.a1 ? r.a1 : prev.a1;
    else merged.push({ ...r });
  }
  return merged;
}

function anyElements(rs: readonly Span[]): string[] {
  return mergeSpans(rs).map((r) => keyElement(r.a0, r.a1));
}

const quote = (s: string): string => `"${s.replace(/["\\]/g, '').slice(0, 120)}"`;

/** What one pod contributes to the table: its sets and chains, and its elements of the verdict maps. */
interface PodParts {
  readonly sets: readonly Item[];
  readonly chains: readonly Item[];
  readonly jumps: readonly { readonly map: string; readonly element: string }[];
  /** rules in its chains */
  readonly rules: number;
}

/** Numbers CompiledRule objects (the key of a group of rules in the element cache). */
const ruleIds = new WeakMap<CompiledRule, number>();
let nextRuleId = 0;
const ruleId = (r: CompiledRule): number => {
  let id = ruleIds.get(r);
  if (id === undefined) ruleIds.set(r, (id = nextRuleId++));
  return id;
};
/** The elements of a union's interval sets in one bucket, per family. */
interface Ranges {
  readonly rects: Record<IPFamily, readonly string[]>;
  readonly any: Record<IPFamily, readonly string[]>;
}
/**
 * The elements of a group of rules, by the rules' identities: pods selected by the same policies hold the same
 * CompiledRule objects (compile.ts), so the second pod's sets cost a lookup. Bounded (1,024 entries each, cleared
 * when full): it serves pods rendered close together; a pod no change touched keeps its parts anyway.
 */
const exactCache = new Map<string, Record<IPFamily, readonly string[]>>();
const rangeCache = new Map<string, Ranges>();
const ELEMENT_CACHE_MAX = 1024;
const cached = <V>(m: Map<string, V>, key: string, make: () => V): V => {
  const hit = m.get(key);
  if (hit) return hit;
  const v = make();
  if (m.size >= ELEMENT_CACHE_MAX) m.clear();
  m.set(key, v);
  return v;
};

/** The hash set's elements, in the rules' order (deterministic: the compiler's order), duplicates once. */
function exactElements(rules: readonly CompiledRule[]): Record<IPFamily, readonly string[]> {
  return cached(exactCache, rules.map(ruleId).join(','), () => {
    const e = exactOf(rules);
    return { IPv4: [...e.IPv4], IPv6: [...e.IPv6] };
  });
}

/**
 * The union's interval elements per bucket; each bucket cached by the rules that put elements in it, so a change
 * re-cuts the buckets of the addresses it names and the others keep their arrays (the difference skips them).
 */
function rangeElements(rules: readonly CompiledRule[]): readonly Ranges[] {
  return Array.from({ length: BUCKETS }, (_, b) => {
    const inB = rules.filter((r) => (bucketsOfRule(r) & (1 << b)) !== 0);
    return cached(rangeCache, `${b} ${inB.map(ruleId).join(',')}`, () => {
      const { rects, any } = matchSetsOf(inB, b);
      const cut = (f: IPFamily): string[] => {
        const out: string[] = [];
        for (const proto of PROTOS) rectElements(rects[f][proto], proto, out);
        return out;
      };
      return {
        rects: { IPv4: cut('IPv4'), IPv6: cut('IPv6') },
        any: { IPv4: anyElements(any.IPv4), IPv6: anyElements(any.IPv6) },
      };
    });
  });
}

class Writer {
  readonly sets: Item[] = [];
  readonly chains: Item[] = [];
  rules = 0;
  /**
   * Lookups of a group of rules as rule lines (each ending with the verdict), declaring the sets they use unless
   * `declare` is false (another pod of a shared union declares them).
   */
  lookups(
    name: string,
    rules: readonly CompiledRule[],
    dir: Direction,
    verdict: string,
    comment: string,
    declare = true,
  ): string[] {
    const lines: string[] = [];
    const field = dir === 'egress' ? 'daddr' : 'saddr';
    const set = (set: string, f: IPFamily, head: readonly string[], els: readonly string[], match: string): void => {
      if (els.length === 0) return;
      if (declare) this.sets.push(blockItem('set', set, head, els));
      lines.push(`${ipWord(f)} ${match} @${set} ${verdict} comment ${quote(comment)}`);
    };
    const triple = `${field} . meta l4proto . th dport`;
    const type = (f: IPFamily) => `\t\ttype ${addrType(f)} . inet_proto . inet_service`;
    // the hash set: one for the union (a change adds and deletes its own elements, whatever the set's size)
    const exact = exactElements(rules);
    for (const f of FAMILIES) set(`${name}-x${f === 'IPv4' ? '4' : '6'}`, f, [type(f)], exact[f], triple);
    // the interval sets: per bucket of addresses
    rangeElements(rules).forEach((els, b) => {
      const sfx = b === 0 ? '' : `-${b}`;
      for (const f of FAMILIES) {
        const tag = f === 'IPv4' ? '4' : '6';
        set(`${name}-p${tag}${sfx}`, f, [type(f), '\t\tflags interval'], els.rects[f], triple);
        set(`${name}-a${tag}${sfx}`, f, [`\t\ttype ${addrType(f)}`, '\t\tflags interval'], els.any[f], field);
      }
    });
    return lines;
  }
  chain(name: string, comment: string, lines: readonly string[]): void {
    this.rules += lines.length;
    this.chains.push(
      plainItem(
        'chain',
        name,
        `\tchain ${name} {\n\t\tcomment ${quote(comment)}\n${lines.map((l) => `\t\t${l}`).join('\n')}\n\t}`,
      ),
    );
  }
}

function adminLines(w: Writer, base: string, rules: readonly CompiledRule[], dir: Direction, next: string): string[] {
  const lines: string[] = [];
  rules.forEach((r, i) => {
    const verdict =
      r.action === 'Allow'
        ? 'return'
        : r.action === 'Deny'
          ? `counter name ${counterName(r.tier, r.policy)} drop`
          : `goto ${next}`;
    lines.push(
      ...w.lookups(`${base}-r${i}`, [r], dir, verdict, `${TIER_PREFIX[r.tier]} ${r.policy} ${r.rule} ${r.action}`),
    );
  });
  return lines;
}

/**
 * The sets of a pod's NetworkPolicy union in one direction: pods whose unions hold the same rules (replicas selected
 * by the same policies) share one group of sets, named after the first of them and declared by it, so a policy
 * change updates each set once, not once per pod.
 */
interface UnionSets {
  readonly name: string;
  readonly declare: boolean;
}

/** The first chain of a pod's direction (the vmap's target), writing its chains; undefined: nothing to enforce. */
function podDirection(w: Writer, pod: CompiledPod, dir: Direction, union: UnionSets | undefined): string | undefined {
  const d = pod[dir];
  if (d.admin.length === 0 && d.isolatedBy.length === 0 && d.baseline.length === 0) return undefined;
  const base = `pod-${podTag(pod.key)}-${dir === 'ingress' ? 'in' : 'out'}`;
  const np = `${base}-np`;
  const npLines: string[] = [];
  if (d.isolatedBy.length > 0) {
    const u = union ?? { name: `${np}-allow`, declare: true };
    npLines.push(...w.lookups(u.name, d.allow, dir, 'return', `np union of ${d.isolatedBy.join(' ')}`, u.declare));
    npLines.push(
      `counter name ${counterName('NetworkPolicy', d.isolatedBy[0]!)} drop comment ${quote(`isolated by ${d.isolatedBy.join(' ')}`)}`,
    );
  } else {
    npLines.push(...adminLines(w, `${np}-b`, d.baseline, dir, np));
    npLines.push('return');
  }
  w.chain(np, `${pod.key} ${dir}: NetworkPolicy / baseline`, npLines);
  if (d.admin.length === 0) return np;
  w.chain(base, `${pod.key} ${dir}: AdminNetworkPolicy`, [...adminLines(w, base, d.admin, dir, np), `goto ${np}`]);
  return base;
}

const mapName = (dir: Direction, f: IPFamily): string => `${dir}${f === 'IPv4' ? '4' : '6'}`;

const partsCache = new WeakMap<CompiledPod, Map<string, PodParts>>();

/** A pod's parts of the table (a function of the CompiledPod and its union sets; cached per object). */
function podParts(pod: CompiledPod, unions: Readonly<Record<Direction, UnionSets | undefined>>): PodParts {
  const key = `${unions.egress?.name ?? ''} ${unions.egress?.declare} ${unions.ingress?.name ?? ''} ${unions.ingress?.declare}`;
  let byUnions = partsCache.get(pod);
  const hit = byUnions?.get(key);
  if (hit) return hit;
  const w = new Writer();
  const jumps: { map: string; element: string }[] = [];
  for (const dir of ['egress', 'ingress'] as const) {
    const chain = podDirection(w, pod, dir, unions[dir]);
    if (chain === undefined) continue;
    for (const ip of pod.ips) jumps.push({ map: mapName(dir, famOfIp(ip)), element: `${ip} : jump ${chain}` });
  }
  const parts: PodParts = { sets: w.sets, chains: w.chains, jumps, rules: w.rules };
  if (!byUnions) partsCache.set(pod, (byUnions = new Map()));
  // a pod's unions move only when its group's first pod comes or goes: the last few are plenty
  if (byUnions.size >= 4) byUnions.clear();
  byUnions.set(key, parts);
  return parts;
}

/** The identity of a union: its rules' object ids (pods with the same compiled rules hold the same objects). */
const unionKeys = new WeakMap<readonly CompiledRule[], string>();
function unionKey(rules: readonly CompiledRule[]): string {
  let k = unionKeys.get(rules);
  if (k === undefined) unionKeys.set(rules, (k = rules.map(ruleId).join(',')));
  return k;
}

/** Each pod's union sets per direction: the group of pods with the same union, named after its first pod. */
function unionsOf(pods: readonly CompiledPod[]): Map<CompiledPod, Record<Direction, UnionSets | undefined>> {
  const first = new Map<string, string>();
  const keyOfUnion = (p: CompiledPod, dir: Direction): string | undefined =>
    p[dir].isolatedBy.length > 0 ? `${dir} ${unionKey(p[dir].allow)}` : undefined;
  for (const p of pods)
    for (const dir of ['egress', 'ingress'] as const) {
      const k = keyOfUnion(p, dir);
      if (k === undefined) continue;
      const f = first.get(k);
      if (f === undefined || p.key < f) first.set(k, p.key);
    }
  const out = new Map<CompiledPod, Record<Direction, UnionSets | undefined>>();
  for (const p of pods) {
    const u = (dir: Direction): UnionSets | undefined => {
      const k = keyOfUnion(p, dir);
      if (k === undefined) return undefined;
      const f = first.get(k)!;
      return { name: `pod-${podTag(f)}-${dir === 'ingress' ? 'in' : 'out'}-np-allow`, declare: f === p.key };
    };
    out.set(p, { egress: u('egress'), ingress: u('ingress') });
  }
  return out;
}

/** The named counters of the policies (once per list: the compiler hands back the same list until one is added, removed or reordered). */
const counterCache = new WeakMap<CompiledPolicies['policies'], readonly Item[]>();
function countersOf(policies: CompiledPolicies['policies']): readonly Item[] {
  const hit = counterCache.get(policies);
  if (hit) return hit;
  const items = [...new Set(policies.map((p) => counterName(p.tier, p.key)))].map((c) =>
    plainItem('counter', c, `\tcounter ${c} {\n\t}`),
  );
  counterCache.set(policies, items);
  return items;
}

/** The rendered table: its objects (what delta.ts diffs), the script replacing it, and its size. */
export interface RenderedTable {
  readonly parsed: Parsed;
  /** the `nft -f` script replacing the table (written on first read) */
  readonly script: string;
  readonly rules: number;
  /** sets and maps */
  readonly sets: number;
}

export function renderTable(compiled: CompiledPolicies, opts: RenderOptions): RenderedTable {
  const t = opts.table;
  const items = new Map<string, Item>();
  const order: string[] = [];
  const put = (it: Item): void => {
    const key = `${it.kind} ${it.name}`;
    items.set(key, it);
    order.push(key);
  };
  const comment = `\tcomment "kdp policy: NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy${compiled.node ? ` on ${compiled.node}` : ''}"`;
  items.set('comment', { kind: 'comment', name: '', text: comment, head: comment, elements: [] });
  for (const c of countersOf(compiled.policies)) put(c);
  const unions = unionsOf(compiled.pods);
  const parts = compiled.pods.map((p) => podParts(p, unions.get(p)!));
  const maps: Record<string, string[]> = { egress4: [], egress6: [], ingress4: [], ingress6: [] };
  let rules = 0;
  let sets = 0;
  for (const p of parts) {
    for (const s of p.sets) put(s);
    for (const j of p.jumps) maps[j.map]!.push(j.element);
    rules += p.rules;
    sets += p.sets.length;
  }
  const vmapLines: string[] = [];
  for (const dir of ['egress', 'ingress'] as const)
    for (const f of FAMILIES) {
      const name = mapName(dir, f);
      put(blockItem('map', name, [`\t\ttype ${addrType(f)} : verdict`], maps[name]!));
      vmapLines.push(`\t\t${ipWord(f)} ${dir === 'egress' ? 'saddr' : 'daddr'} vmap @${name}`);
      sets++;
    }
  for (const p of parts) for (const c of p.chains) put(c);
  put(
    plainItem(
      'chain',
      'forward',
      `\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established,related accept\n${vmapLines.join('\n')}\n\t}`,
    ),
  );
  rules += 1 + vmapLines.length;
  const parsed: Parsed = { table: t, items, order };
  let script: string | undefined;
  return {
    parsed,
    get script() {
      script ??=
        [
          `table inet ${t} {}`,
          `delete table inet ${t}`,
          `table inet ${t} {`,
          comment,
          ...order.map((k) => items.get(k)!.text),
          '}',
        ].join('\n') + '\n';
      return script;
    },
    rules,
    sets,
  };
}

export function renderNft(compiled: CompiledPolicies, opts: RenderOptions): string {
  return renderTable(compiled, opts).script;
}
