// nftables mode, pure part: the desired state of one `kdp` table (per family) as data, and the nft
// scripts that take the kernel from one state to another (full: reconcile with whatever exists, in one
// atomic transaction; diff: only what changed between two states). No I/O here.
//
// Packet path (see docs/proxy.md):
//   nat-prerouting / nat-output (dstnat) -> services:
//       daddr . l4proto . dport  vmap @service-ips        -> service-X | local-X | external-X
//       fib daddr local . l4proto . dport vmap @service-nodeports -> external-X
//   service-X: mark non-cluster sources for masquerade; affinity lookups; numgen random mod N vmap -> endpoint-X
//   endpoint-X: hairpin mark; affinity update; dnat
//   filter-* (dstnat-10): no-endpoint-services / no-endpoint-nodeports -> reject or drop; firewall-ips -> firewall-X
//   nat-postrouting (srcnat): masquerade what was marked
import type { IPFamily } from '../../model/types.ts';
import { hashName } from '../model.ts';
import type { ProxyEndpoint, ServicePortInfo } from '../model.ts';

export type NftFamily = 'ip' | 'ip6';
export const TABLE = 'kdp';

export interface NftChain {
  /** base-chain declaration, e.g. `{ type nat hook output priority -100; policy accept; }` */
  readonly def?: string;
  readonly rules: readonly string[];
}

export interface NftMap {
  readonly def: string;
  /** key -> verdict */
  readonly elements: ReadonlyMap<string, string>;
}

export interface NftState {
  readonly family: NftFamily;
  readonly chains: ReadonlyMap<string, NftChain>;
  /** set name -> declaration */
  readonly sets: ReadonlyMap<string, string>;
  readonly maps: ReadonlyMap<string, NftMap>;
}

export interface NftConfig {
  /** sources inside these are "local" (pod traffic, not masqueraded on ClusterIP) */
  readonly clusterCIDRs: readonly string[];
  /** masquerade all service traffic */
  readonly masqueradeAll?: boolean;
  /** NodePorts only on these addresses (default: every local address but loopback) */
  readonly nodePortAddresses?: readonly string[];
}

export const MASQ_MARK = '0x4000';
const MAP_SERVICE_IPS = 'service-ips';
const MAP_NODEPORTS = 'service-nodeports';
const MAP_NOEP_SERVICES = 'no-endpoint-services';
const MAP_NOEP_NODEPORTS = 'no-endpoint-nodeports';
const MAP_FIREWALL = 'firewall-ips';

export function nftFamily(f: IPFamily): NftFamily {
  return f === 'IPv4' ? 'ip' : 'ip6';
}

function proto(sp: ServicePortInfo): string {
  return sp.protocol.toLowerCase();
}

/** "ns/name/tcp/portName": readable part of the per-service object names */
function baseName(sp: ServicePortInfo): string {
  return `${sp.namespace}/${sp.name}/${proto(sp)}/${sp.portName === '' ? `p${sp.port}` : sp.portName}`;
}

function safe(s: string): string {
  return s.replace(/:/g, '.');
}

export function chainNames(sp: ServicePortInfo): { service: string; local: string; external: string; firewall: string } {
  const base = baseName(sp);
  const h = hashName(`${sp.id}${proto(sp)}`, 8);
  return { service: `service-${h}-${base}`, local: `local-${h}-${base}`, external: `external-${h}-${base}`, firewall: `firewall-${h}-${base}` };
}

export function endpointChainName(sp: ServicePortInfo, ep: ProxyEndpoint): string {
  const suffix = `${baseName(sp)}__${safe(ep.ip)}/${ep.port}`;
  return `endpoint-${hashName(`${sp.id}${proto(sp)}${ep.ip}:${ep.port}`, 8)}-${suffix}`;
}

/** The timeout is part of the name: changing it makes a new set, so no set is ever redefined in place. */
export function affinitySetName(sp: ServicePortInfo, ep: ProxyEndpoint): string {
  const suffix = `${baseName(sp)}__${safe(ep.ip)}/${ep.port}`;
  return `affinity-${hashName(`${sp.id}${proto(sp)}${ep.ip}:${ep.port}/${sp.affinitySeconds ?? 0}`, 8)}-${suffix}`;
}

function addr(family: NftFamily, ip: string): string {
  return family === 'ip6' ? `[${ip}]` : ip;
}

function renderBase(family: NftFamily, cfg: NftConfig): { chains: Map<string, NftChain>; maps: Map<string, NftMap> } {
  const a = family; // `ip daddr` / `ip6 daddr`
  const addrType = family === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
  const loopback = family === 'ip' ? '127.0.0.0/8' : '::1';
  const nodePortMatch =
    cfg.nodePortAddresses && cfg.nodePortAddresses.length > 0
      ? `${a} daddr { ${cfg.nodePortAddresses.join(', ')} }`
      : `fib daddr type local ${a} daddr != ${loopback}`;
  const chains = new Map<string, NftChain>([
    ['filter-prerouting', { def: '{ type filter hook prerouting priority -110; policy accept; }', rules: ['ct state new jump firewall-check'] }],
    ['filter-input', { def: '{ type filter hook input priority -110; policy accept; }', rules: ['ct state new jump nodeport-endpoints-check', 'ct state new jump service-endpoints-check'] }],
    ['filter-forward', { def: '{ type filter hook forward priority -110; policy accept; }', rules: ['ct state new jump service-endpoints-check'] }],
    ['filter-output', { def: '{ type filter hook output priority -110; policy accept; }', rules: ['ct state new jump service-endpoints-check', 'ct state new jump firewall-check'] }],
    ['nat-prerouting', { def: '{ type nat hook prerouting priority -100; policy accept; }', rules: ['jump services'] }],
    ['nat-output', { def: '{ type nat hook output priority -100; policy accept; }', rules: ['jump services'] }],
    ['nat-postrouting', { def: '{ type nat hook postrouting priority 100; policy accept; }', rules: ['jump masquerading'] }],
    ['services', { rules: [`${a} daddr . meta l4proto . th dport vmap @${MAP_SERVICE_IPS}`, `${nodePortMatch} meta l4proto . th dport vmap @${MAP_NODEPORTS}`] }],
    ['service-endpoints-check', { rules: [`${a} daddr . meta l4proto . th dport vmap @${MAP_NOEP_SERVICES}`] }],
    ['nodeport-endpoints-check', { rules: [`${nodePortMatch} meta l4proto . th dport vmap @${MAP_NOEP_NODEPORTS}`] }],
    ['firewall-check', { rules: [`${a} daddr . meta l4proto . th dport vmap @${MAP_FIREWALL}`] }],
    ['reject-chain', { rules: ['reject'] }],
    ['mark-for-masquerade', { rules: [`meta mark set meta mark or ${MASQ_MARK}`] }],
    ['masquerading', { rules: [`meta mark & ${MASQ_MARK} == 0 return`, `meta mark set meta mark xor ${MASQ_MARK}`, 'masquerade fully-random'] }],
  ]);
  const ipKey = `{ type ${addrType} . inet_proto . inet_service : verdict; }`;
  const portKey = '{ type inet_proto . inet_service : verdict; }';
  const maps = new Map<string, NftMap>([
    [MAP_SERVICE_IPS, { def: ipKey, elements: new Map() }],
    [MAP_NODEPORTS, { def: portKey, elements: new Map() }],
    [MAP_NOEP_SERVICES, { def: ipKey, elements: new Map() }],
    [MAP_NOEP_NODEPORTS, { def: portKey, elements: new Map() }],
    [MAP_FIREWALL, { def: ipKey, elements: new Map() }],
  ]);
  return { chains, maps };
}

/** Renders the whole desired table of one family. Pure. */
export function renderNft(ports: readonly ServicePortInfo[], family: NftFamily, cfg: NftConfig): NftState {
  const { chains, maps } = renderBase(family, cfg);
  const sets = new Map<string, string>();
  renderInto(ports, family, cfg, chains, sets, (m) => maps.get(m)!.elements as Map<string, string>);
  return { family, chains, sets, maps };
}

/** The objects of some service ports only (a fragment: maps hold just their elements). Pure. */
export function renderFragment(ports: readonly ServicePortInfo[], family: NftFamily, cfg: NftConfig): NftState {
  const chains = new Map<string, NftChain>();
  const sets = new Map<string, string>();
  const maps = new Map<string, NftMap>();
  renderInto(ports, family, cfg, chains, sets, (m) => {
    let x = maps.get(m);
    if (!x) maps.set(m, (x = { def: '', elements: new Map() }));
    return x.elements as Map<string, string>;
  });
  return { family, chains, sets, maps };
}

export const EMPTY_FRAGMENT = (family: NftFamily): NftState => ({ family, chains: new Map(), sets: new Map(), maps: new Map() });

/** The base objects plus fragments, as one state (for a full sync). */
export function mergeFragments(family: NftFamily, cfg: NftConfig, frags: Iterable<NftState>): NftState {
  const { chains, maps } = renderBase(family, cfg);
  const sets = new Map<string, string>();
  for (const f of frags) {
    for (const [k, v] of f.chains) chains.set(k, v);
    for (const [k, v] of f.sets) sets.set(k, v);
    for (const [m, x] of f.maps) for (const [k, v] of x.elements) (maps.get(m)!.elements as Map<string, string>).set(k, v);
  }
  return { family, chains, sets, maps };
}

function renderInto(
  ports: readonly ServicePortInfo[],
  family: NftFamily,
  cfg: NftConfig,
  chains: Map<string, NftChain>,
  sets: Map<string, string>,
  el: (map: string) => Map<string, string>,
): void {
  const a = family;
  const addrType = family === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
  const localCidrs = cfg.clusterCIDRs.filter((c) => (family === 'ip6') === c.includes(':'));

  for (const sp of ports) {
    const p = proto(sp);
    const names = chainNames(sp);
    const ipKey = (ip: string) => `${ip} . ${p} . ${sp.port}`;
    const npKey = sp.nodePort !== undefined ? `${p} . ${sp.nodePort}` : undefined;
    const externalIPs = [...sp.externalIPs, ...sp.loadBalancerIPs];
    const hasCluster = sp.clusterEndpoints.length > 0;
    const hasLocal = sp.localEndpoints.length > 0;

    // endpoint chains + affinity sets, for every endpoint some chain sends traffic to
    const used = new Map<string, ProxyEndpoint>();
    for (const ep of [...sp.clusterEndpoints, ...sp.localEndpoints]) used.set(`${ep.ip}:${ep.port}`, ep);
    for (const ep of used.values()) {
      const rules = [`${a} saddr ${ep.ip} jump mark-for-masquerade`];
      if (sp.affinitySeconds !== undefined) {
        const set = affinitySetName(sp, ep);
        sets.set(set, `{ type ${addrType}; flags dynamic,timeout; timeout ${sp.affinitySeconds}s; }`);
        rules.push(`update @${set} { ${a} saddr }`);
      }
      rules.push(`meta l4proto ${p} dnat to ${addr(family, ep.ip)}:${ep.port}`);
      chains.set(endpointChainName(sp, ep), { rules });
    }
    const lb = (eps: readonly ProxyEndpoint[]): string[] => {
      const rules: string[] = [];
      if (sp.affinitySeconds !== undefined) for (const ep of eps) rules.push(`${a} saddr @${affinitySetName(sp, ep)} goto ${endpointChainName(sp, ep)}`);
      rules.push(`numgen random mod ${eps.length} vmap { ${eps.map((ep, i) => `${i} : goto ${endpointChainName(sp, ep)}`).join(', ')} }`);
      return rules;
    };

    if (!hasCluster) {
      // nothing usable anywhere: REJECT everything (connection refused at once)
      for (const ip of [sp.clusterIP, ...externalIPs]) el(MAP_NOEP_SERVICES).set(ipKey(ip), 'goto reject-chain');
      if (npKey) el(MAP_NOEP_NODEPORTS).set(npKey, 'goto reject-chain');
      continue;
    }

    const masqRule =
      cfg.masqueradeAll || localCidrs.length === 0
        ? `${a} daddr ${sp.clusterIP} meta l4proto ${p} th dport ${sp.port} jump mark-for-masquerade`
        : `${a} daddr ${sp.clusterIP} meta l4proto ${p} th dport ${sp.port} ${a} saddr != { ${localCidrs.join(', ')} } jump mark-for-masquerade`;
    chains.set(names.service, { rules: [masqRule, ...lb(sp.clusterEndpoints)] });
    const needLocal = sp.internalLocal || sp.externalLocal;
    if (needLocal && hasLocal) chains.set(names.local, { rules: lb(sp.localEndpoints) });

    // ClusterIP
    if (sp.internalLocal) {
      if (hasLocal) el(MAP_SERVICE_IPS).set(ipKey(sp.clusterIP), `goto ${names.local}`);
      else el(MAP_NOEP_SERVICES).set(ipKey(sp.clusterIP), 'drop');
    } else {
      el(MAP_SERVICE_IPS).set(ipKey(sp.clusterIP), `goto ${names.service}`);
    }

    // external destinations: externalIPs, load-balancer IPs, NodePorts
    if (externalIPs.length === 0 && !npKey) continue;
    const externalUsable = !sp.externalLocal || hasLocal;
    if (!externalUsable) {
      for (const ip of externalIPs) el(MAP_NOEP_SERVICES).set(ipKey(ip), 'drop');
      if (npKey) el(MAP_NOEP_NODEPORTS).set(npKey, 'drop');
      continue;
    }
    const ext: string[] = sp.externalLocal
      ? [
          // pods reaching an external address of the service are short-circuited to the cluster-wide chain
          ...(localCidrs.length > 0 ? [`${a} saddr { ${localCidrs.join(', ')} } goto ${names.service}`] : []),
          'fib saddr type local jump mark-for-masquerade',
          `fib saddr type local goto ${names.service}`,
          `goto ${names.local}`,
        ]
      : ['jump mark-for-masquerade', `goto ${names.service}`];
    chains.set(names.external, { rules: ext });
    for (const ip of externalIPs) el(MAP_SERVICE_IPS).set(ipKey(ip), `goto ${names.external}`);
    if (npKey) el(MAP_NODEPORTS).set(npKey, `goto ${names.external}`);

    if (sp.sourceRanges.length > 0 && sp.loadBalancerIPs.length > 0) {
      chains.set(names.firewall, { rules: [`${a} saddr != { ${sp.sourceRanges.join(', ')} } drop`] });
      for (const ip of sp.loadBalancerIPs) el(MAP_FIREWALL).set(ipKey(ip), `goto ${names.firewall}`);
    }
  }
}

export interface ExistingObjects {
  readonly chains: ReadonlySet<string>;
  readonly sets: ReadonlySet<string>;
  readonly maps: ReadonlySet<string>;
}

function prefix(family: NftFamily): string {
  return `${family} ${TABLE}`;
}

function chainDecl(family: NftFamily, name: string, c: NftChain): string {
  return `add chain ${prefix(family)} ${name}${c.def ? ` ${c.def}` : ''}`;
}

function elementLines(verb: 'add' | 'delete', family: NftFamily, map: string, entries: [string, string | undefined][]): string[] {
  // batched, so 10k services are a few hundred lines, not 10k
  const out: string[] = [];
  for (let i = 0; i < entries.length; i += 500) {
    const chunk = entries.slice(i, i + 500).map(([k, v]) => (v === undefined ? k : `${k} : ${v}`));
    out.push(`${verb} element ${prefix(family)} ${map} { ${chunk.join(', ')} }`);
  }
  return out;
}

/**
 * A script that makes the kernel's table equal `next`, whatever is there now (`existing`: names listed
 * from the kernel; empty when the table is absent). One transaction: every chain is flushed and refilled,
 * every map flushed and refilled, leftovers deleted; a packet never sees a half-built table.
 */
export function fullScript(next: NftState, existing: ExistingObjects): string[] {
  const f = next.family;
  const out: string[] = [`add table ${prefix(f)}`];
  for (const [name, def] of next.sets) if (!existing.sets.has(name)) out.push(`add set ${prefix(f)} ${name} ${def}`);
  for (const [name, m] of next.maps) {
    out.push(`add map ${prefix(f)} ${name} ${m.def}`);
    if (existing.maps.has(name)) out.push(`flush map ${prefix(f)} ${name}`);
  }
  for (const [name, c] of next.chains) {
    out.push(chainDecl(f, name, c));
    if (existing.chains.has(name)) out.push(`flush chain ${prefix(f)} ${name}`);
  }
  for (const name of existing.chains) if (!next.chains.has(name)) out.push(`flush chain ${prefix(f)} ${name}`);
  for (const name of existing.sets) if (!next.sets.has(name)) out.push(`delete set ${prefix(f)} ${name}`);
  for (const name of existing.maps) if (!next.maps.has(name)) out.push(`delete map ${prefix(f)} ${name}`);
  for (const [name, c] of next.chains) for (const r of c.rules) out.push(`add rule ${prefix(f)} ${name} ${r}`);
  for (const [name, m] of next.maps) out.push(...elementLines('add', f, name, [...m.elements]));
  for (const name of existing.chains) if (!next.chains.has(name)) out.push(`delete chain ${prefix(f)} ${name}`);
  return out;
}

function sameRules(a: NftChain, b: NftChain): boolean {
  return a.def === b.def && a.rules.length === b.rules.length && a.rules.every((r, i) => r === b.rules[i]);
}

/** Only what differs between two states (the mirror of the kernel, and the desired state). */
export function diffScript(prev: NftState, next: NftState, opts: { fragment?: boolean } = {}): string[] {
  const f = next.family;
  const P = prefix(f);
  const out: string[] = [];
  const changedChains: string[] = [];
  for (const [name, def] of next.sets) if (!prev.sets.has(name)) out.push(`add set ${P} ${name} ${def}`);
  if (!opts.fragment) for (const [name, m] of next.maps) if (!prev.maps.has(name)) out.push(`add map ${P} ${name} ${m.def}`);
  for (const [name, c] of next.chains) {
    const old = prev.chains.get(name);
    if (!old) {
      out.push(chainDecl(f, name, c));
      changedChains.push(name);
    } else if (!sameRules(old, c)) {
      out.push(`flush chain ${P} ${name}`);
      changedChains.push(name);
    }
  }
  const removedChains = [...prev.chains.keys()].filter((n) => !next.chains.has(n));
  for (const name of removedChains) out.push(`flush chain ${P} ${name}`);
  // map elements: remove what left or changed value, before chains they point to go away
  const adds: [string, [string, string][]][] = [];
  const mapNames = opts.fragment ? new Set([...prev.maps.keys(), ...next.maps.keys()]) : new Set(next.maps.keys());
  for (const name of mapNames) {
    const m = next.maps.get(name) ?? { def: '', elements: new Map<string, string>() };
    const old = prev.maps.get(name)?.elements ?? new Map<string, string>();
    const del: [string, undefined][] = [];
    for (const [k, v] of old) if (m.elements.get(k) !== v) del.push([k, undefined]);
    out.push(...elementLines('delete', f, name, del));
    const add: [string, string][] = [];
    for (const [k, v] of m.elements) if (old.get(k) !== v) add.push([k, v]);
    adds.push([name, add]);
  }
  for (const name of prev.sets.keys()) if (!next.sets.has(name)) out.push(`delete set ${P} ${name}`);
  for (const name of changedChains) for (const r of next.chains.get(name)!.rules) out.push(`add rule ${P} ${name} ${r}`);
  for (const [name, add] of adds) out.push(...elementLines('add', f, name, add));
  if (!opts.fragment) for (const name of prev.maps.keys()) if (!next.maps.has(name)) out.push(`delete map ${P} ${name}`);
  for (const name of removedChains) out.push(`delete chain ${P} ${name}`);
  return out;
}

/** Canonical text of a state (for golden files): one line per object, order-insensitive comparison. */
export function dumpState(s: NftState): string {
  const lines: string[] = [];
  const P = prefix(s.family);
  for (const [name, c] of s.chains) {
    lines.push(chainDecl(s.family, name, c));
    for (const r of c.rules) lines.push(`add rule ${P} ${name} ${r}`);
  }
  for (const [name, def] of s.sets) lines.push(`add set ${P} ${name} ${def}`);
  for (const [name, m] of s.maps) {
    lines.push(`add map ${P} ${name} ${m.def}`);
    for (const [k, v] of m.elements) lines.push(`add element ${P} ${name} { ${k} : ${v} }`);
  }
  return lines.sort().join('\n') + '\n';
}
