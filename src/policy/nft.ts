// renderNft: compiled policies -> one `nft -f` script that replaces the table atomically (declare, delete and
// re-create it in one transaction: no packet ever sees a half-written table). Pure. Layout (docs/policy.md):
//
//   chain forward (hook forward, priority filter, policy accept)
//     ct state established,related accept        replies and later packets of allowed connections
//     ip saddr vmap @egress4 / ip6 saddr vmap @egress6    local source pod -> jump to its egress chain
//     ip daddr vmap @ingress4 / ip6 daddr vmap @ingress6  local destination pod -> jump to its ingress chain
//   chain <pod>-<dir>      AdminNetworkPolicy rules in order: Allow -> return (this direction allows), Deny ->
//                          counter + drop, Pass -> goto <pod>-<dir>-np; the end falls into <pod>-<dir>-np
//   chain <pod>-<dir>-np   isolated by NetworkPolicy: one lookup in the pod's union set (address . protocol . port,
//                          plus an address-only set for rules of every port) -> return, else counter + drop;
//                          not isolated: BaselineAdminNetworkPolicy rules in order, then return (allow)
//
// Every lookup is a set or map lookup: the cost per packet depends on the admin rules selecting the pod, never on
// the number of NetworkPolicies, pods or peers. Names are derived from the pod key by a hash (readable in comments).
import { createHash } from 'node:crypto';
import type { IPFamily, Protocol } from '../model/types.ts';
import { bigToIp, ipToBig, rangeElement } from './addr.ts';
import type {
  AddressRange,
  CompiledPod,
  CompiledPolicies,
  CompiledRule,
  Direction,
  RenderOptions,
  Tier,
} from './types.ts';

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
const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];
const ipWord = (f: IPFamily): string => (f === 'IPv4' ? 'ip' : 'ip6');
const addrType = (f: IPFamily): string => (f === 'IPv4' ? 'ipv4_addr' : 'ipv6_addr');
const ANY: Readonly<Record<IPFamily, AddressRange>> = {
  IPv4: { family: 'IPv4', first: '0.0.0.0', last: '255.255.255.255' },
  IPv6: { family: 'IPv6', first: '::', last: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' },
};

interface Rect {
  readonly family: IPFamily;
  readonly protocol: Protocol;
  readonly a0: bigint;
  readonly a1: bigint;
  readonly p0: number;
  readonly p1: number;
}

/** The sets of a group of rules: address . protocol . port rectangles, and addresses for every protocol/port. */
interface MatchSets {
  readonly rects: Rect[];
  readonly any: AddressRange[];
}

function matchSetsOf(rules: readonly CompiledRule[]): MatchSets {
  const rects: Rect[] = [];
  const any: AddressRange[] = [];
  for (const r of rules) {
    const peers = r.peers === 'any' ? FAMILIES.map((f) => ANY[f]) : r.peers;
    if (r.ports === 'any') any.push(...peers);
    else
      for (const a of peers)
        for (const p of r.ports)
          rects.push({
            family: a.family,
            protocol: p.protocol,
            a0: ipToBig(a.first),
            a1: ipToBig(a.last),
            p0: p.first,
            p1: p.last,
          });
    for (const pp of r.peerPorts) {
      const n = ipToBig(pp.ip);
      rects.push({
        family: pp.ip.includes(':') ? 'IPv6' : 'IPv4',
        protocol: pp.protocol,
        a0: n,
        a1: n,
        p0: pp.port,
        p1: pp.port,
      });
    }
  }
  return { rects, any };
}

function mergePortList(ps: [number, number][]): [number, number][] {
  const s = [...ps].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const p of s) {
    const prev = out[out.length - 1];
    if (prev && p[0] <= prev[1] + 1) prev[1] = Math.max(prev[1], p[1]);
    else out.push([p[0], p[1]]);
  }
  return out;
}

/**
 * Disjoint `address . protocol . port` elements for one family: the kernel's concatenated interval sets refuse
 * overlapping elements, so the union of rectangles is cut along the address axis first.
 */
function rectElements(rects: readonly Rect[], family: IPFamily): string[] {
  const out: string[] = [];
  for (const proto of ['TCP', 'UDP', 'SCTP'] as const) {
    const rs = rects.filter((r) => r.family === family && r.protocol === proto);
    if (rs.length === 0) continue;
    const bounds = [...new Set(rs.flatMap((r) => [r.a0, r.a1 + 1n]))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let cur: { a0: bigint; a1: bigint; ports: string; list: [number, number][] } | undefined;
    const flush = (): void => {
      if (!cur) return;
      const addr = rangeElement({ family, first: bigToIp(cur.a0, family), last: bigToIp(cur.a1, family) });
      for (const [p0, p1] of cur.list) out.push(`${addr} . ${NFT_PROTO[proto]} . ${p0 === p1 ? p0 : `${p0}-${p1}`}`);
      cur = undefined;
    };
    for (let i = 0; i + 1 < bounds.length; i++) {
      const a0 = bounds[i]!;
      const a1 = bounds[i + 1]! - 1n;
      const list = mergePortList(rs.filter((r) => r.a0 <= a0 && r.a1 >= a1).map((r) => [r.p0, r.p1]));
      const ports = JSON.stringify(list);
      if (list.length === 0) {
        flush();
        continue;
      }
      if (cur && cur.ports === ports && cur.a1 + 1n === a0) cur.a1 = a1;
      else {
        flush();
        cur = { a0, a1, ports, list };
      }
    }
    flush();
  }
  return out;
}

function anyElements(any: readonly AddressRange[], family: IPFamily): string[] {
  const rs = any.filter((a) => a.family === family).map((a) => ({ a0: ipToBig(a.first), a1: ipToBig(a.last) }));
  rs.sort((a, b) => (a.a0 < b.a0 ? -1 : a.a0 > b.a0 ? 1 : 0));
  const merged: { a0: bigint; a1: bigint }[] = [];
  for (const r of rs) {
    const prev = merged[merged.length - 1];
    if (prev && r.a0 <= prev.a1 + 1n) prev.a1 = r.a1 > prev.a1 ? r.a1 : prev.a1;
    else merged.push({ ...r });
  }
  return merged.map((r) => rangeElement({ family, first: bigToIp(r.a0, family), last: bigToIp(r.a1, family) }));
}

const quote = (s: string): string => `"${s.replace(/["\\]/g, '').slice(0, 120)}"`;

class Writer {
  readonly sets: string[] = [];
  readonly chains: string[] = [];
  /** lookups of a group of rules as rule lines (each ending with the verdict), declaring the sets they use */
  lookups(name: string, rules: readonly CompiledRule[], dir: Direction, verdict: string, comment: string): string[] {
    const { rects, any } = matchSetsOf(rules);
    const lines: string[] = [];
    const field = dir === 'egress' ? 'daddr' : 'saddr';
    for (const f of FAMILIES) {
      const tag = f === 'IPv4' ? '4' : '6';
      const re = rectElements(rects, f);
      if (re.length > 0) {
        this.sets.push(
          `\tset ${name}-p${tag} {\n\t\ttype ${addrType(f)} . inet_proto . inet_service\n\t\tflags interval\n\t\telements = {\n${re.map((e) => `\t\t\t${e},`).join('\n')}\n\t\t}\n\t}`,
        );
        lines.push(
          `${ipWord(f)} ${field} . meta l4proto . th dport @${name}-p${tag} ${verdict} comment ${quote(comment)}`,
        );
      }
      const ae = anyElements(any, f);
      if (ae.length > 0) {
        this.sets.push(
          `\tset ${name}-a${tag} {\n\t\ttype ${addrType(f)}\n\t\tflags interval\n\t\telements = {\n${ae.map((e) => `\t\t\t${e},`).join('\n')}\n\t\t}\n\t}`,
        );
        lines.push(`${ipWord(f)} ${field} @${name}-a${tag} ${verdict} comment ${quote(comment)}`);
      }
    }
    return lines;
  }
  chain(name: string, comment: string, lines: readonly string[]): void {
    this.chains.push(
      `\tchain ${name} {\n\t\tcomment ${quote(comment)}\n${lines.map((l) => `\t\t${l}`).join('\n')}\n\t}`,
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

/** The first chain of a pod's direction (the vmap's target), writing its chains; undefined: nothing to enforce. */
function podDirection(w: Writer, pod: CompiledPod, dir: Direction): string | undefined {
  const d = pod[dir];
  if (d.admin.length === 0 && d.isolatedBy.length === 0 && d.baseline.length === 0) return undefined;
  const base = `pod-${podTag(pod.key)}-${dir === 'ingress' ? 'in' : 'out'}`;
  const np = `${base}-np`;
  const npLines: string[] = [];
  if (d.isolatedBy.length > 0) {
    npLines.push(...w.lookups(`${np}-allow`, d.allow, dir, 'return', `np union of ${d.isolatedBy.join(' ')}`));
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

export function renderNft(compiled: CompiledPolicies, opts: RenderOptions): string {
  const t = opts.table;
  const w = new Writer();
  const maps: Record<Direction, Record<IPFamily, string[]>> = {
    ingress: { IPv4: [], IPv6: [] },
    egress: { IPv4: [], IPv6: [] },
  };
  for (const pod of compiled.pods)
    for (const dir of ['egress', 'ingress'] as const) {
      const chain = podDirection(w, pod, dir);
      if (chain === undefined) continue;
      for (const ip of pod.ips) maps[dir][ip.includes(':') ? 'IPv6' : 'IPv4'].push(`${ip} : jump ${chain}`);
    }
  const counters = [...new Set(compiled.policies.map((p) => counterName(p.tier, p.key)))];
  const out: string[] = [];
  out.push(`table inet ${t} {}`, `delete table inet ${t}`, `table inet ${t} {`);
  out.push(
    `\tcomment "kdp policy: NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy${compiled.node ? ` on ${compiled.node}` : ''}"`,
  );
  for (const c of counters) out.push(`\tcounter ${c} {\n\t}`);
  out.push(...w.sets);
  const vmapLines: string[] = [];
  for (const dir of ['egress', 'ingress'] as const)
    for (const f of FAMILIES) {
      const name = `${dir}${f === 'IPv4' ? '4' : '6'}`;
      const els = maps[dir][f];
      out.push(
        `\tmap ${name} {\n\t\ttype ${addrType(f)} : verdict\n${els.length > 0 ? `\t\telements = {\n${els.map((e) => `\t\t\t${e},`).join('\n')}\n\t\t}\n` : ''}\t}`,
      );
      vmapLines.push(`\t\t${ipWord(f)} ${dir === 'egress' ? 'saddr' : 'daddr'} vmap @${name}`);
    }
  out.push(...w.chains);
  out.push(
    `\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established,related accept\n${vmapLines.join('\n')}\n\t}`,
  );
  out.push('}');
  return out.join('\n') + '\n';
}
