// nftables mode, pure part: the desired state of one `kdp` table (per family) as data, and the nft
// scripts that take the kernel from one state to another (full: reconcile with whatever exists, in one
// atomic transaction; diff: only what changed between two states). No I/O here.
//
// Packet path (see docs/proxy.md):
//   nat-prerouting / nat-output (dstnat) -> services:
//       saddr not in @cluster-cidrs, daddr . l4proto . dport in @cluster-ips: mark for masquerade
//       daddr . l4proto . dport  vmap @cluster-ips        -> service-X | local-X       (ClusterIPs)
//       daddr . l4proto . dport  vmap @service-ips        -> external-X                (external and LB IPs)
//       fib daddr local . l4proto . dport vmap @service-nodeports -> external-X
//   lb-<proto>-N (shared; plain ClusterIP services): dnat to daddr . dport . numgen random mod N map @cluster-endpoints-<proto>
//   service-X: dnat to numgen random mod N offset B map @endpoints-S   (one shared map per shard, no chain per endpoint)
//              [ClientIP affinity only: affinity lookups; numgen vmap -> endpoint-X: affinity update; dnat]
//   filter-* (dstnat-10): no-endpoint-services / no-endpoint-nodeports -> reject or drop; firewall-ips -> firewall-X
//   nat-postrouting (srcnat): hairpin (saddr . daddr in @hairpin-endpoints after DNAT) and marked packets: masquerade
//
// Why this shape: the kernel's commit validates every jump/goto target against every set of the table, so a
// table with one chain and one anonymous map per endpoint/service is quadratic (10k services: minutes). Here
// the endpoints of all services live in ENDPOINT_SHARDS named maps, each service port owning a block of keys
// (its *slot*, see slots.ts); per-service work is one chain and one rule that looks its block up.
import type { IPFamily } from '../../model/types.ts';
import { hashName } from '../model.ts';
import type { ProxyEndpoint, ServicePortInfo } from '../model.ts';

export type NftFamily = 'ip' | 'ip6';
export const TABLE = 'kdp';

interface NftChain {
  /** base-chain declaration, e.g. `{ type nat hook output priority -100; policy accept; }` */
  readonly def?: string;
  readonly rules: readonly string[];
}

interface NftMap {
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
  /**
   * elements of sets whose content we manage (cluster-cidrs, hairpin-endpoints). Several services can
   * contribute the same element (two services with the same endpoint), so fragments' elements are
   * reference-counted by the backend, not diffed per fragment.
   */
  readonly setElements: ReadonlyMap<string, ReadonlySet<string>>;
}

/** The slot of a block of endpoint keys (see slots.ts): a small integer, unique per key within one table. */
export type SlotOf = (key: string) => number;

export interface NftConfig {
  /** sources inside these are "local" (pod traffic, not masqueraded on ClusterIP) */
  readonly clusterCIDRs: readonly string[];
  /** masquerade all service traffic */
  readonly masqueradeAll?: boolean;
  /** NodePorts only on these addresses (default: every local address but loopback) */
  readonly nodePortAddresses?: readonly string[];
}

const MASQ_MARK = '0x4000';
const MAP_CLUSTER_IPS = 'cluster-ips';
const MAP_SERVICE_IPS = 'service-ips';
const MAP_NODEPORTS = 'service-nodeports';
const MAP_NOEP_SERVICES = 'no-endpoint-services';
const MAP_NOEP_NODEPORTS = 'no-endpoint-nodeports';
const MAP_FIREWALL = 'firewall-ips';
const SET_CLUSTER_CIDRS = 'cluster-cidrs';
const SET_HAIRPIN = 'hairpin-endpoints';
const CHAIN_EXTERNAL_DROP = 'external-drop';
/**
 * Endpoint maps per protocol, `endpoints-tcp-0` .. `endpoints-tcp-63` etc. Sharded because the kernel checks
 * each element of a map against each rule bound to it; per protocol because nft 1.0.6 refuses a rule with
 * `meta l4proto tcp` that uses a map typed `th dport` once that map comes from the kernel.
 */
const ENDPOINT_SHARDS: Readonly<Record<string, number>> = { tcp: 64, udp: 16, sctp: 4 };
/** keys per slot: a service port load-balances over at most this many endpoints */
const SLOT_SIZE = 65536;

/**
 * Plain ClusterIP service ports (no affinity, no Local policy, no external address, at most this many
 * endpoints) need no chain of their own: `cluster-ips` sends them to the shared chain `lb-<proto>-<N>`,
 * which looks the endpoint up by `daddr . dport . numgen random mod N` in `cluster-endpoints-<proto>`.
 * So the table's chain count does not grow with such services (nft reads every chain before each
 * transaction: at 10k chains that alone costs ~0.1 s per sync).
 */
const LB_CHAIN_MAX = 32;

function lbChainName(protocol: string, n: number): string {
  return `lb-${protocol}-${n}`;
}

/** `goto lb-<proto>-<n>`: one string per chain, shared by every element that points there */
const lbGotos = new Map<string, string>();
function lbGoto(protocol: string, n: number): string {
  const k = `${protocol}${n}`;
  let v = lbGotos.get(k);
  if (v === undefined) lbGotos.set(k, (v = `goto ${lbChainName(protocol, n)}`));
  return v;
}

/** Which shard map and which first key a slot of a protocol stands for. */
function slotKeys(protocol: string, slot: number): { map: string; base: number } {
  const n = ENDPOINT_SHARDS[protocol]!;
  return { map: `endpoints-${protocol}-${slot % n}`, base: Math.floor(slot / n) * SLOT_SIZE };
}

/** A slot source that hands out 0, 1, 2, ... in order of first use (pure renders, golden files). */
function sequentialSlots(): SlotOf {
  const m = new Map<string, number>();
  return (key) => {
    let s = m.get(key);
    if (s === undefined) m.set(key, (s = m.size));
    return s;
  };
}

export function nftFamily(f: IPFamily): NftFamily {
  return f === 'IPv4' ? 'ip' : 'ip6';
}

/** lower-case protocol names, one string each (rendering 50k services asks 100k+ times) */
const PROTOS: Readonly<Record<string, string>> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

function proto(sp: ServicePortInfo): string {
  return PROTOS[sp.protocol] ?? sp.protocol.toLowerCase();
}

/** `cluster-endpoints-<proto>`, one string per protocol */
const clusterEndpointMaps = new Map<string, string>();
function clusterEndpointsMap(p: string): string {
  let v = clusterEndpointMaps.get(p);
  if (v === undefined) clusterEndpointMaps.set(p, (v = `cluster-endpoints-${p}`));
  return v;
}

/** "ns/name/tcp/portName": readable part of the per-service object names */
function baseName(sp: ServicePortInfo): string {
  return `${sp.namespace}/${sp.name}/${proto(sp)}/${sp.portName === '' ? `p${sp.port}` : sp.portName}`;
}

function safe(s: string): string {
  return s.replace(/:/g, '.');
}

export function chainNames(sp: ServicePortInfo): {
  service: string;
  local: string;
  external: string;
  firewall: string;
} {
  const base = baseName(sp);
  const h = hashName(`${sp.id}${proto(sp)}`, 8);
  return {
    service: `service-${h}-${base}`,
    local: `local-${h}-${base}`,
    external: `external-${h}-${base}`,
    firewall: `firewall-${h}-${base}`,
  };
}

function endpointChainName(sp: ServicePortInfo, ep: ProxyEndpoint): string {
  const suffix = `${baseName(sp)}__${safe(ep.ip)}/${ep.port}`;
  return `endpoint-${hashName(`${sp.id}${proto(sp)}${ep.ip}:${ep.port}`, 8)}-${suffix}`;
}

/** The timeout is part of the name: changing it makes a new set, so no set is ever redefined in place. */
function affinitySetName(sp: ServicePortInfo, ep: ProxyEndpoint): string {
  const suffix = `${baseName(sp)}__${safe(ep.ip)}/${ep.port}`;
  return `affinity-${hashName(`${sp.id}${proto(sp)}${ep.ip}:${ep.port}/${sp.affinitySeconds ?? 0}`, 8)}-${suffix}`;
}

function addr(family: NftFamily, ip: string): string {
  return family === 'ip6' ? `[${ip}]` : ip;
}

function localCidrsOf(family: NftFamily, cfg: NftConfig): string[] {
  return cfg.clusterCIDRs.filter((c) => (family === 'ip6') === c.includes(':'));
}

function renderBase(
  family: NftFamily,
  cfg: NftConfig,
): {
  chains: Map<string, NftChain>;
  maps: Map<string, NftMap>;
  sets: Map<string, string>;
  setElements: Map<string, Set<string>>;
} {
  const a = family; // `ip daddr` / `ip6 daddr`
  const addrType = family === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
  const loopback = family === 'ip' ? '127.0.0.0/8' : '::1';
  // NodePorts on the given addresses of this family only (127.0.0.1 among them: localhost NodePorts, which
  // need route_localnet; see proxy.ts), by default on every local address but loopback
  const npAddrs = (cfg.nodePortAddresses ?? []).filter((x) => (family === 'ip6') === x.includes(':'));
  const nodePortMatch =
    cfg.nodePortAddresses && cfg.nodePortAddresses.length > 0
      ? npAddrs.length > 0
        ? `${a} daddr { ${npAddrs.join(', ')} }`
        : undefined
      : `fib daddr type local ${a} daddr != ${loopback}`;
  const chains = new Map<string, NftChain>([
    [
      'filter-prerouting',
      {
        def: '{ type filter hook prerouting priority -110; policy accept; }',
        rules: ['ct state new jump firewall-check'],
      },
    ],
    [
      'filter-input',
      {
        def: '{ type filter hook input priority -110; policy accept; }',
        rules: ['ct state new jump nodeport-endpoints-check', 'ct state new jump service-endpoints-check'],
      },
    ],
    [
      'filter-forward',
      {
        def: '{ type filter hook forward priority -110; policy accept; }',
        rules: ['ct state new jump service-endpoints-check'],
      },
    ],
    [
      'filter-output',
      {
        def: '{ type filter hook output priority -110; policy accept; }',
        rules: ['ct state new jump service-endpoints-check', 'ct state new jump firewall-check'],
      },
    ],
    ['nat-prerouting', { def: '{ type nat hook prerouting priority -100; policy accept; }', rules: ['jump services'] }],
    ['nat-output', { def: '{ type nat hook output priority -100; policy accept; }', rules: ['jump services'] }],
    [
      'nat-postrouting',
      { def: '{ type nat hook postrouting priority 100; policy accept; }', rules: ['jump masquerading'] },
    ],
    [
      'services',
      {
        rules: [
          // ClusterIP traffic from outside the cluster CIDRs is masqueraded: one lookup, no rule per service
          `${cfg.masqueradeAll ? '' : `${a} saddr != @${SET_CLUSTER_CIDRS} `}${a} daddr . meta l4proto . th dport @${MAP_CLUSTER_IPS} meta mark set meta mark or ${MASQ_MARK}`,
          `${a} daddr . meta l4proto . th dport vmap @${MAP_CLUSTER_IPS}`,
          `${a} daddr . meta l4proto . th dport vmap @${MAP_SERVICE_IPS}`,
          ...(nodePortMatch ? [`${nodePortMatch} meta l4proto . th dport vmap @${MAP_NODEPORTS}`] : []),
        ],
      },
    ],
    ['service-endpoints-check', { rules: [`${a} daddr . meta l4proto . th dport vmap @${MAP_NOEP_SERVICES}`] }],
    [
      'nodeport-endpoints-check',
      { rules: nodePortMatch ? [`${nodePortMatch} meta l4proto . th dport vmap @${MAP_NOEP_NODEPORTS}`] : [] },
    ],
    ['firewall-check', { rules: [`${a} daddr . meta l4proto . th dport vmap @${MAP_FIREWALL}`] }],
    // IPv6 TCP gets a reset: Linux applies an ICMPv6 port-unreachable to a connecting socket only after the SYN
    // is retried (~1 s), so a plain reject there looked like a timeout, not "connection refused"
    ['reject-chain', { rules: family === 'ip6' ? ['meta l4proto tcp reject with tcp reset', 'reject'] : ['reject'] }],
    ['mark-for-masquerade', { rules: [`meta mark set meta mark or ${MASQ_MARK}`] }],
    // the verdict of @no-endpoint-* for an external destination of a Local-policy service without a local
    // endpoint: dropped, unless the node itself sends it (filter-output sees it before nat-output short-circuits it)
    [CHAIN_EXTERNAL_DROP, { rules: ['fib saddr type local return', 'drop'] }],
    [
      'masquerading',
      {
        rules: [
          // hairpin: an endpoint that reached itself through a service must see the reply come from the node
          `ct status dnat ${a} saddr . ${a} daddr @${SET_HAIRPIN} meta mark set meta mark or ${MASQ_MARK}`,
          `meta mark & ${MASQ_MARK} == 0 return`,
          `meta mark set meta mark xor ${MASQ_MARK}`,
          'masquerade fully-random',
        ],
      },
    ],
  ]);
  const ipKey = `{ type ${addrType} . inet_proto . inet_service : verdict; }`;
  const portKey = '{ type inet_proto . inet_service : verdict; }';
  const maps = new Map<string, NftMap>([
    [MAP_CLUSTER_IPS, { def: ipKey, elements: new Map() }],
    [MAP_SERVICE_IPS, { def: ipKey, elements: new Map() }],
    [MAP_NODEPORTS, { def: portKey, elements: new Map() }],
    [MAP_NOEP_SERVICES, { def: ipKey, elements: new Map() }],
    [MAP_NOEP_NODEPORTS, { def: portKey, elements: new Map() }],
    [MAP_FIREWALL, { def: ipKey, elements: new Map() }],
  ]);
  for (const [p, n] of Object.entries(ENDPOINT_SHARDS)) {
    for (let i = 0; i < n; i++)
      maps.set(`endpoints-${p}-${i}`, {
        def: `{ typeof numgen random mod 1 : ${a} daddr . ${p} dport; }`,
        elements: new Map(),
      });
    maps.set(`cluster-endpoints-${p}`, {
      def: `{ typeof ${a} daddr . ${p} dport . numgen random mod 1 : ${a} daddr . ${p} dport; }`,
      elements: new Map(),
    });
    for (let k = 1; k <= LB_CHAIN_MAX; k++) {
      chains.set(lbChainName(p, k), {
        rules: [
          `meta l4proto ${p} dnat ${a} to ${a} daddr . ${p} dport . numgen random mod ${k} map @cluster-endpoints-${p}`,
        ],
      });
    }
  }
  const sets = new Map<string, string>([
    [SET_CLUSTER_CIDRS, `{ type ${addrType}; flags interval; }`],
    [SET_HAIRPIN, `{ type ${addrType} . ${addrType}; }`],
  ]);
  const setElements = new Map<string, Set<string>>([
    [SET_CLUSTER_CIDRS, new Set(localCidrsOf(family, cfg))],
    [SET_HAIRPIN, new Set()],
  ]);
  return { chains, maps, sets, setElements };
}

/** Renders the whole desired table of one family. Pure (slots: 0, 1, ... in order unless given). */
export function renderNft(
  ports: readonly ServicePortInfo[],
  family: NftFamily,
  cfg: NftConfig,
  slots: SlotOf = sequentialSlots(),
): NftState {
  return renderGroups([{ ports, slots }], family, cfg);
}

/**
 * The whole table from groups of service ports, each with its slot source (one group per service: a full
 * sync), rendered straight into one state, without a fragment per service. `onSetElements` is told the
 * distinct managed-set elements each group contributes (the backend reference-counts them; the set it is given
 * is reused for the next group, so it is valid during the call only).
 */
export function renderGroups(
  groups: Iterable<{ readonly ports: readonly ServicePortInfo[]; readonly slots: SlotOf }>,
  family: NftFamily,
  cfg: NftConfig,
  onSetElements?: (set: string, elements: ReadonlySet<string>) => void,
): NftState {
  const { chains, maps, sets, setElements } = renderBase(family, cfg);
  const el = (m: string) => maps.get(m)!.elements as Map<string, string>;
  // one group's managed-set elements: the sets are reused, emptied after each group (so `onSetElements` may
  // read them during the call only)
  const mine = new Map<string, Set<string>>();
  const mineOf = (x: string): Set<string> => {
    let xs = mine.get(x);
    if (!xs) mine.set(x, (xs = new Set()));
    return xs;
  };
  for (const g of groups) {
    if (!onSetElements) {
      renderInto(g.ports, family, cfg, g.slots, chains, sets, el, (x) => setElements.get(x)!);
      continue;
    }
    renderInto(g.ports, family, cfg, g.slots, chains, sets, el, mineOf);
    for (const [x, keys] of mine) {
      if (keys.size === 0) continue;
      const all = setElements.get(x)!;
      for (const k of keys) all.add(k);
      onSetElements(x, keys);
      keys.clear();
    }
  }
  return { family, chains, sets, maps, setElements };
}

/** The objects of some service ports only (a fragment: maps and sets hold just their elements). Pure given `slots`. */
export function renderFragment(
  ports: readonly ServicePortInfo[],
  family: NftFamily,
  cfg: NftConfig,
  slots: SlotOf,
): NftState {
  const chains = new Map<string, NftChain>();
  const sets = new Map<string, string>();
  const maps = new Map<string, NftMap>();
  const setElements = new Map<string, Set<string>>();
  renderInto(
    ports,
    family,
    cfg,
    slots,
    chains,
    sets,
    (m) => {
      let x = maps.get(m);
      if (!x) maps.set(m, (x = { def: '', elements: new Map() }));
      return x.elements as Map<string, string>;
    },
    (s) => {
      let x = setElements.get(s);
      if (!x) setElements.set(s, (x = new Set()));
      return x;
    },
  );
  return { family, chains, sets, maps, setElements };
}

export const EMPTY_FRAGMENT = (family: NftFamily): NftState => ({
  family,
  chains: new Map(),
  sets: new Map(),
  maps: new Map(),
  setElements: new Map(),
});

/** The key of a slot: one per service port and endpoint list (cluster-wide or node-local). */
function slotKey(sp: ServicePortInfo, which: 'cluster' | 'local'): string {
  return `${sp.id}/${proto(sp)}/${which}`;
}

function renderInto(
  ports: readonly ServicePortInfo[],
  family: NftFamily,
  cfg: NftConfig,
  slots: SlotOf,
  chains: Map<string, NftChain>,
  sets: Map<string, string>,
  el: (map: string) => Map<string, string>,
  setEl: (set: string) => Set<string>,
): void {
  const a = family;
  const addrType = family === 'ip' ? 'ipv4_addr' : 'ipv6_addr';
  /** (only services with external addresses ask: not computed per plain service) */
  const hasLocalCidrs = () => localCidrsOf(family, cfg).length > 0;

  for (const sp of ports) {
    const p = proto(sp);
    if (
      sp.affinitySeconds === undefined &&
      !sp.internalLocal &&
      sp.externalIPs.length === 0 &&
      sp.loadBalancerIPs.length === 0 &&
      sp.nodePort === undefined &&
      sp.clusterEndpoints.length <= LB_CHAIN_MAX
    ) {
      // a plain ClusterIP service port (most of a big cluster): map elements only, no chain, no name to hash.
      // Hairpin: an endpoint reaching itself through the service. Through a ClusterIP only pods of this node
      // arrive here (other nodes DNAT their own pods' ClusterIP traffic), so a plain service needs its local
      // endpoints only; NodePorts and external IPs (below) can bring any pod here.
      for (const ep of sp.clusterEndpoints) if (ep.local) setEl(SET_HAIRPIN).add(`${ep.ip} . ${ep.ip}`);
      for (const ep of sp.localEndpoints) if (ep.local) setEl(SET_HAIRPIN).add(`${ep.ip} . ${ep.ip}`);
      const key = `${sp.clusterIP} . ${p} . ${sp.port}`;
      const n = sp.clusterEndpoints.length;
      if (n === 0) {
        // nothing usable anywhere: REJECT (connection refused at once)
        el(MAP_NOEP_SERVICES).set(key, 'goto reject-chain');
        continue;
      }
      el(MAP_CLUSTER_IPS).set(key, lbGoto(p, n));
      const m = el(clusterEndpointsMap(p));
      for (let i = 0; i < n; i++) {
        const ep = sp.clusterEndpoints[i]!;
        m.set(`${sp.clusterIP} . ${sp.port} . ${i}`, `${ep.ip} . ${ep.port}`);
      }
      continue;
    }
    const names = chainNames(sp);
    const ipKey = (ip: string) => `${ip} . ${p} . ${sp.port}`;
    const npKey = sp.nodePort !== undefined ? `${p} . ${sp.nodePort}` : undefined;
    const externalIPs = [...sp.externalIPs, ...sp.loadBalancerIPs];
    const hasCluster = sp.clusterEndpoints.length > 0;
    const hasLocal = sp.localEndpoints.length > 0;

    const used = new Map<string, ProxyEndpoint>();
    for (const ep of [...sp.clusterEndpoints, ...sp.localEndpoints]) used.set(`${ep.ip}:${ep.port}`, ep);
    const plain =
      sp.affinitySeconds === undefined &&
      !sp.internalLocal &&
      externalIPs.length === 0 &&
      !npKey &&
      sp.clusterEndpoints.length <= LB_CHAIN_MAX;
    for (const ep of used.values()) if (ep.local || !plain) setEl(SET_HAIRPIN).add(`${ep.ip} . ${ep.ip}`);
    // ClientIP affinity needs to know which endpoint was picked: one chain + one timeout set per endpoint
    if (sp.affinitySeconds !== undefined) {
      for (const ep of used.values()) {
        const set = affinitySetName(sp, ep);
        sets.set(set, `{ type ${addrType}; flags dynamic,timeout; timeout ${sp.affinitySeconds}s; }`);
        chains.set(endpointChainName(sp, ep), {
          rules: [`update @${set} { ${a} saddr }`, `meta l4proto ${p} dnat to ${addr(family, ep.ip)}:${ep.port}`],
        });
      }
    }
    const lb = (eps: readonly ProxyEndpoint[], which: 'cluster' | 'local'): string[] => {
      if (sp.affinitySeconds !== undefined) {
        return [
          ...eps.map((ep) => `${a} saddr @${affinitySetName(sp, ep)} goto ${endpointChainName(sp, ep)}`),
          `numgen random mod ${eps.length} vmap { ${eps.map((ep, i) => `${i} : goto ${endpointChainName(sp, ep)}`).join(', ')} }`,
        ];
      }
      const { map, base } = slotKeys(p, slots(slotKey(sp, which)));
      const list = eps.slice(0, SLOT_SIZE);
      const m = el(map);
      list.forEach((ep, i) => m.set(String(base + i), `${ep.ip} . ${ep.port}`));
      return [
        `meta l4proto ${p} dnat ${a} to numgen random mod ${list.length}${base > 0 ? ` offset ${base}` : ''} map @${map}`,
      ];
    };

    if (hasCluster && plain) {
      el(MAP_CLUSTER_IPS).set(ipKey(sp.clusterIP), `goto ${lbChainName(p, sp.clusterEndpoints.length)}`);
      const m = el(clusterEndpointsMap(p));
      sp.clusterEndpoints.forEach((ep, i) => m.set(`${sp.clusterIP} . ${sp.port} . ${i}`, `${ep.ip} . ${ep.port}`));
      continue;
    }

    if (!hasCluster) {
      // nothing usable anywhere: REJECT everything (connection refused at once)
      for (const ip of [sp.clusterIP, ...externalIPs]) el(MAP_NOEP_SERVICES).set(ipKey(ip), 'goto reject-chain');
      if (npKey) el(MAP_NOEP_NODEPORTS).set(npKey, 'goto reject-chain');
      continue;
    }

    // (ClusterIP traffic from outside the cluster is marked in `services`; external-X marks on its own)
    chains.set(names.service, { rules: lb(sp.clusterEndpoints, 'cluster') });
    const needLocal = sp.internalLocal || sp.externalLocal;
    if (needLocal && hasLocal) chains.set(names.local, { rules: lb(sp.localEndpoints, 'local') });

    // ClusterIP
    if (sp.internalLocal) {
      if (hasLocal) el(MAP_CLUSTER_IPS).set(ipKey(sp.clusterIP), `goto ${names.local}`);
      else el(MAP_NOEP_SERVICES).set(ipKey(sp.clusterIP), 'drop');
    } else {
      el(MAP_CLUSTER_IPS).set(ipKey(sp.clusterIP), `goto ${names.service}`);
    }

    // external destinations: externalIPs, load-balancer IPs, NodePorts
    if (externalIPs.length === 0 && !npKey) continue;
    const ext: string[] = sp.externalLocal
      ? [
          // Local policy (kube-proxy, the fix of Kubernetes issue 65387): traffic of this node's pods and of the
          // node itself to an external address of the service is not external traffic: it goes to the cluster-wide
          // chain, also when this node has no endpoint (as if it had gone out to the load balancer and back)
          ...(hasLocalCidrs() ? [`${a} saddr @${SET_CLUSTER_CIDRS} goto ${names.service}`] : []),
          'fib saddr type local jump mark-for-masquerade',
          `fib saddr type local goto ${names.service}`,
          ...(hasLocal ? [`goto ${names.local}`] : []),
        ]
      : ['jump mark-for-masquerade', `goto ${names.service}`];
    if (sp.externalLocal && !hasLocal) {
      // what the chain above did not short-circuit is dropped (after DNAT: the pods' and the node's own traffic
      // no longer has the external destination when the filter hooks see it, except in filter-output, which
      // runs before nat-output: there `external-drop` lets the node's own packets through to be DNATed)
      for (const ip of externalIPs) el(MAP_NOEP_SERVICES).set(ipKey(ip), `goto ${CHAIN_EXTERNAL_DROP}`);
      if (npKey) el(MAP_NOEP_NODEPORTS).set(npKey, `goto ${CHAIN_EXTERNAL_DROP}`);
    }
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

/** Elements per `add`/`delete element` line: 10k services are a few hundred lines, not 10k. */
const ELEMENTS_PER_LINE = 500;

/** `add`/`delete element` lines of `items`, ELEMENTS_PER_LINE to a line, produced one line at a time. */
function* batchLines(
  verb: 'add' | 'delete',
  family: NftFamily,
  map: string,
  items: Iterable<string>,
): Generator<string> {
  const head = `${verb} element ${prefix(family)} ${map} { `;
  let line = '';
  let n = 0;
  for (const item of items) {
    line = n === 0 ? head + item : `${line}, ${item}`;
    if (++n === ELEMENTS_PER_LINE) {
      yield `${line} }`;
      n = 0;
    }
  }
  if (n > 0) yield `${line} }`;
}

function* mapItems(elements: ReadonlyMap<string, string>): Generator<string> {
  for (const [k, v] of elements) yield `${k} : ${v}`;
}

function chunkLines(
  verb: 'add' | 'delete',
  family: NftFamily,
  map: string,
  each: (push: (item: string) => void) => void,
): string[] {
  const items: string[] = [];
  each((item) => items.push(item));
  return [...batchLines(verb, family, map, items)];
}

function elementLines(
  verb: 'add' | 'delete',
  family: NftFamily,
  map: string,
  entries: [string, string | undefined][],
): string[] {
  return chunkLines(verb, family, map, (push) => {
    for (const [k, v] of entries) push(v === undefined ? k : `${k} : ${v}`);
  });
}

/** `add`/`delete element` lines for plain set elements. */
export function setElementLines(
  verb: 'add' | 'delete',
  family: NftFamily,
  set: string,
  keys: Iterable<string>,
): string[] {
  return chunkLines(verb, family, set, (push) => {
    for (const k of keys) push(k);
  });
}

/**
 * A script that makes the kernel's table equal `next`, whatever is there now (`existing`: names listed
 * from the kernel; empty when the table is absent). One transaction: every chain is flushed and refilled,
 * every map and managed set flushed and refilled, leftovers deleted; a packet never sees a half-built table.
 * (Affinity sets are not flushed: a restart keeps the clients' affinity.)
 */
export function fullScript(next: NftState, existing: ExistingObjects): string[] {
  return [...fullScriptLines(next, existing)];
}

/**
 * fullScript's lines, produced one at a time as they are read (the backend streams them into `nft -f -`, so the
 * whole script never exists at once: at 50k services it is 8 MB of text).
 */
export function* fullScriptLines(next: NftState, existing: ExistingObjects): Generator<string> {
  const f = next.family;
  yield `add table ${prefix(f)}`;
  for (const [name, def] of next.sets) {
    if (!existing.sets.has(name)) yield `add set ${prefix(f)} ${name} ${def}`;
    else if (next.setElements.has(name)) yield `flush set ${prefix(f)} ${name}`;
  }
  for (const [name, m] of next.maps) {
    yield `add map ${prefix(f)} ${name} ${m.def}`;
    if (existing.maps.has(name)) yield `flush map ${prefix(f)} ${name}`;
  }
  for (const [name, c] of next.chains) {
    yield chainDecl(f, name, c);
    if (existing.chains.has(name)) yield `flush chain ${prefix(f)} ${name}`;
  }
  for (const name of existing.chains) if (!next.chains.has(name)) yield `flush chain ${prefix(f)} ${name}`;
  for (const [name, c] of next.chains) for (const r of c.rules) yield `add rule ${prefix(f)} ${name} ${r}`;
  for (const [name, keys] of next.setElements) yield* batchLines('add', f, name, keys);
  for (const [name, m] of next.maps) yield* batchLines('add', f, name, mapItems(m.elements));
  for (const name of existing.chains) if (!next.chains.has(name)) yield `delete chain ${prefix(f)} ${name}`;
  // sets and maps last: a stale chain may still refer to them until it is deleted above
  for (const name of existing.sets) if (!next.sets.has(name)) yield `delete set ${prefix(f)} ${name}`;
  for (const name of existing.maps) if (!next.maps.has(name)) yield `delete map ${prefix(f)} ${name}`;
}

function sameRules(a: NftChain, b: NftChain): boolean {
  return a.def === b.def && a.rules.length === b.rules.length && a.rules.every((r, i) => r === b.rules[i]);
}

/**
 * Only what differs between two states (the mirror of the kernel, and the desired state). With
 * `fragment`, the states are one service's objects: maps hold only its elements, and managed set
 * elements are left out (the caller reference-counts them across fragments).
 */
export function diffScript(prev: NftState, next: NftState, opts: { fragment?: boolean } = {}): string[] {
  const f = next.family;
  const P = prefix(f);
  const out: string[] = [];
  const changedChains: string[] = [];
  for (const [name, def] of next.sets) if (!prev.sets.has(name)) out.push(`add set ${P} ${name} ${def}`);
  if (!opts.fragment)
    for (const [name, m] of next.maps) if (!prev.maps.has(name)) out.push(`add map ${P} ${name} ${m.def}`);
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
  const setAdds: string[] = [];
  if (!opts.fragment) {
    for (const [name, keys] of next.setElements) {
      const old = prev.setElements.get(name) ?? new Set<string>();
      out.push(
        ...setElementLines(
          'delete',
          f,
          name,
          [...old].filter((k) => !keys.has(k)),
        ),
      );
      setAdds.push(
        ...setElementLines(
          'add',
          f,
          name,
          [...keys].filter((k) => !old.has(k)),
        ),
      );
    }
  }
  for (const name of changedChains)
    for (const r of next.chains.get(name)!.rules) out.push(`add rule ${P} ${name} ${r}`);
  out.push(...setAdds);
  for (const [name, add] of adds) out.push(...elementLines('add', f, name, add));
  if (!opts.fragment)
    for (const name of prev.maps.keys()) if (!next.maps.has(name)) out.push(`delete map ${P} ${name}`);
  for (const name of removedChains) out.push(`delete chain ${P} ${name}`);
  // sets after the chains that used them
  for (const name of prev.sets.keys()) if (!next.sets.has(name)) out.push(`delete set ${P} ${name}`);
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
  for (const [name, keys] of s.setElements) for (const k of keys) lines.push(`add element ${P} ${name} { ${k} }`);
  for (const [name, m] of s.maps) {
    lines.push(`add map ${P} ${name} ${m.def}`);
    for (const [k, v] of m.elements) lines.push(`add element ${P} ${name} { ${k} : ${v} }`);
  }
  return lines.sort().join('\n') + '\n';
}

/** How many endpoints each chain of an nft `list table` text balances over (for `kdp status`). */
export function programmedBackends(tableText: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of tableText.matchAll(/^\s*chain (\S+) \{([\s\S]*?)^\s*\}/gm)) {
    const body = m[2] ?? '';
    // endpoint chain names end before a space, or the `,` / `}` of a vmap (`{ 0 : goto endpoint-A, 1 : goto ... }`)
    const refs = new Set([...body.matchAll(/(?:goto|jump) (endpoint-[^\s,}]+)/g)].map((r) => r[1]));
    const mods = [...body.matchAll(/numgen random mod (\d+)/g)].map((r) => Number(r[1]));
    out.set(m[1] as string, Math.max(refs.size, ...mods, 0));
  }
  return out;
}
