// The overlay node agent's pure half (flannel's vxlan backend, plus Calico's CrossSubnet choice): who each peer
// is (its VTEP identity from Node annotations), which path it takes (a direct host-gw route or VXLAN), and the
// kernel entries that follow (routes, neighbours, forwarding-database entries), diffed against what the kernel
// holds into one `ip -batch` and one `bridge -batch`. No I/O; src/node/overlay-agent.ts applies it.
//
// Per VXLAN peer, as flannel's vxlan backend programs it (flannel.1 -> kdp.<vni>):
//   route  <podCIDR> via <peer VTEP address> dev kdp.1 onlink proto 199
//   neigh  <peer VTEP address> lladdr <peer VTEP MAC> dev kdp.1 nud permanent
//   fdb    <peer VTEP MAC> dev kdp.1 dst <peer underlay IP> self permanent
// where the VTEP address is the network address of the peer's IPv4 pod CIDR (held /32 on its own kdp.1).
// IPv6 pod CIDRs go the same way over a second device kdp6.<vni> (flannel's flannel-v6.<vni>) whose local
// address is the node's IPv6 InternalIP: its own VTEP MAC, the network address of the IPv6 pod CIDR held /128,
// FDB entries with `dst <peer IPv6>`; the annotations are the `-v6` / `ipv6` twins of the IPv4 ones.
import { createHash } from 'node:crypto';
import { contains, formatIp, formatNetwork, network, parseCidr, tryParseIp } from '../ipam/ip.ts';
import type { Cidr } from '../ipam/ip.ts';
import type { Node } from '../model/types.ts';
import { ROUTE_PROTO } from './agent.ts';

export type Backend = 'host-gw' | 'vxlan' | 'auto';
export const BACKENDS: readonly Backend[] = ['host-gw', 'vxlan', 'auto'];
export type Path = 'direct' | 'vxlan';

/** kdp's own Node annotations: the VTEP MAC and the underlay (public) IP its VXLAN packets go to. */
export const ANNOTATION_VTEP_MAC = 'kdp.dev/vxlan-mac';
export const ANNOTATION_PUBLIC_IP = 'kdp.dev/public-ip';
/** flannel's, read when kdp's are absent (a cluster moving from flannel): {"VNI":1,"VtepMAC":"..."} */
export const FLANNEL_BACKEND_DATA = 'flannel.alpha.coreos.com/backend-data';
export const FLANNEL_PUBLIC_IP = 'flannel.alpha.coreos.com/public-ip';
/** the IPv6 VTEP (device kdp6.<vni>): kdp's keys, and flannel's read as fallback */
export const ANNOTATION_VTEP_MAC_V6 = 'kdp.dev/vxlan-mac-v6';
export const ANNOTATION_PUBLIC_IPV6 = 'kdp.dev/public-ipv6';
export const FLANNEL_BACKEND_V6_DATA = 'flannel.alpha.coreos.com/backend-v6-data';
export const FLANNEL_PUBLIC_IPV6 = 'flannel.alpha.coreos.com/public-ipv6';

export const DEFAULT_VNI = 1;
/** flannel's (the Linux kernel's historical default), not IANA's 4789 */
export const DEFAULT_VXLAN_PORT = 8472;
/** outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 */
export const VXLAN_OVERHEAD_V4 = 50;
/** outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14 */
export const VXLAN_OVERHEAD_V6 = 70;

export const vxlanDevice = (vni: number): string => `kdp.${vni}`;
/** the IPv6 VXLAN device (flannel's flannel-v6.<vni>) */
export const vxlanDevice6 = (vni: number): string => `kdp6.${vni}`;

const KEYS = {
  4: { mac: ANNOTATION_VTEP_MAC, ip: ANNOTATION_PUBLIC_IP, fData: FLANNEL_BACKEND_DATA, fIp: FLANNEL_PUBLIC_IP },
  6: {
    mac: ANNOTATION_VTEP_MAC_V6,
    ip: ANNOTATION_PUBLIC_IPV6,
    fData: FLANNEL_BACKEND_V6_DATA,
    fIp: FLANNEL_PUBLIC_IPV6,
  },
} as const;

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * The VTEP MAC of a node: derived from the VNI and the underlay IP (locally administered, unicast), so a
 * restarted agent keeps it and `kdp up` can write it into Node manifests without asking the kernel.
 */
export function vtepMac(vni: number, underlayIp: string): string {
  const h = createHash('sha256').update(`kdp-vxlan ${vni} ${underlayIp}`).digest();
  const b = [...h.subarray(0, 6)];
  b[0] = (b[0]! & 0xfc) | 0x02; // locally administered, unicast
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * The annotations a node publishes for its VTEPs (the agent PATCHes them; kdp up writes them into manifests):
 * the IPv4 pair, and the IPv6 pair when the node has an IPv6 underlay address.
 */
export function vtepAnnotations(vni: number, underlayIp: string, underlayIp6?: string): Record<string, string> {
  return {
    [ANNOTATION_VTEP_MAC]: vtepMac(vni, underlayIp),
    [ANNOTATION_PUBLIC_IP]: underlayIp,
    ...(underlayIp6
      ? { [ANNOTATION_VTEP_MAC_V6]: vtepMac(vni, underlayIp6), [ANNOTATION_PUBLIC_IPV6]: underlayIp6 }
      : {}),
  };
}

export type VtepParse =
  | { readonly ok: true; readonly mac: string; readonly publicIp: string; readonly from: 'kdp' | 'flannel' }
  | { readonly ok: false; readonly reason: string };

function checkMac(mac: unknown, key: string): string | undefined {
  if (typeof mac !== 'string' || !MAC.test(mac.toLowerCase()))
    return `${key}: not a MAC address: ${JSON.stringify(mac)}`;
  if (parseInt(mac.slice(0, 2), 16) & 1) return `${key}: a multicast MAC: ${mac}`;
  if (/^(00:){5}00$/.test(mac)) return `${key}: the zero MAC`;
  return undefined;
}

function checkIp(ip: string | undefined, key: string, family: 4 | 6): string | undefined {
  if (ip === undefined) return `no ${key} annotation`;
  if (tryParseIp(ip)?.family !== family) return `${key}: not an IPv${family} address: ${JSON.stringify(ip)}`;
  return undefined;
}

/**
 * A peer's VTEP identity for one family from its annotations: kdp's keys, else flannel's; a reason when absent
 * or malformed.
 */
export function parseVtep(node: Node, vni: number, family: 4 | 6 = 4): VtepParse {
  const a = node.meta.annotations;
  const K = KEYS[family];
  if (a[K.mac] !== undefined || a[K.ip] !== undefined) {
    const mac = a[K.mac];
    const bad = (mac === undefined ? `no ${K.mac} annotation` : checkMac(mac, K.mac)) ?? checkIp(a[K.ip], K.ip, family);
    return bad ? { ok: false, reason: bad } : { ok: true, mac: mac!.toLowerCase(), publicIp: a[K.ip]!, from: 'kdp' };
  }
  const FLANNEL_BACKEND_DATA = K.fData;
  const data = a[FLANNEL_BACKEND_DATA];
  if (data === undefined) return { ok: false, reason: `no ${K.mac} (or ${FLANNEL_BACKEND_DATA}) annotation` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return { ok: false, reason: `${FLANNEL_BACKEND_DATA}: not JSON: ${JSON.stringify(data.slice(0, 80))}` };
  }
  if (typeof parsed !== 'object' || parsed === null)
    return { ok: false, reason: `${FLANNEL_BACKEND_DATA}: not an object` };
  const { VNI, VtepMAC } = parsed as { VNI?: unknown; VtepMAC?: unknown };
  if (VNI !== undefined && VNI !== vni)
    return { ok: false, reason: `${FLANNEL_BACKEND_DATA}: VNI ${JSON.stringify(VNI)} is not ours (${vni})` };
  const bad = checkMac(VtepMAC, `${FLANNEL_BACKEND_DATA} VtepMAC`) ?? checkIp(a[K.fIp], K.fIp, family);
  if (bad) return { ok: false, reason: bad };
  return { ok: true, mac: (VtepMAC as string).toLowerCase(), publicIp: a[K.fIp]!, from: 'flannel' };
}

/** The VTEP address of a node: its pod CIDR's network address (flannel's lease.Subnet.IP / IPv6Subnet.IP). */
export function vtepAddress(podCidr: string): string {
  const c = parseCidr(podCidr);
  return formatIp({ family: c.family, value: network(c) });
}

export interface OverlayRoute {
  readonly dst: string;
  readonly via: string;
  /** set for VXLAN routes (`dev <vxlan> onlink`); direct routes leave the device to the kernel */
  readonly dev?: string;
}
export interface Neighbour {
  readonly ip: string;
  readonly mac: string;
}
export interface FdbEntry {
  readonly mac: string;
  readonly dst: string;
}

export interface PeerPlan {
  readonly node: string;
  readonly path: Path;
  /** the pod CIDRs routed to it (one per family) */
  readonly podCidrs: readonly string[];
  /** the next hop (direct) or the VXLAN destination (its public IP) */
  readonly underlayIp: string;
  readonly vtep?: Neighbour;
  /** dual-stack: the IPv6 pod CIDR's path when it differs in kind or target from the fields above */
  readonly path6?: Path;
  readonly underlayIp6?: string;
  readonly vtep6?: Neighbour;
  /** why one of its pod CIDRs is not routed while another is (e.g. no IPv6 VTEP annotations) */
  readonly unrouted?: string;
}

export interface Skipped {
  readonly node: string;
  readonly reason: string;
}

export interface OverlayPlan {
  readonly peers: readonly PeerPlan[];
  readonly skipped: readonly Skipped[];
  readonly routes: readonly OverlayRoute[];
  readonly neighbours: readonly Neighbour[];
  readonly fdb: readonly FdbEntry[];
  /** the IPv6 device's (kdp6.<vni>) */
  readonly neighbours6: readonly Neighbour[];
  readonly fdb6: readonly FdbEntry[];
}

export interface PlanOptions {
  readonly backend: 'vxlan' | 'auto';
  readonly vni: number;
  /** the networks of this node's underlay addresses (auto: a peer whose InternalIP is in one is direct) */
  readonly localSubnets: readonly string[];
  /** this node has an IPv6 underlay address (the kdp6.<vni> device): IPv6 pod CIDRs can go over VXLAN */
  readonly ipv6?: boolean;
}

function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const wide = a.prefix <= b.prefix ? a : b;
  const narrow = wide === a ? b : a;
  return contains(wide, { family: narrow.family, value: network(narrow) });
}

const internalIp = (n: Node, family: 4 | 6): string | undefined =>
  n.addresses.find((a) => a.type === 'InternalIP' && tryParseIp(a.address)?.family === family)?.address;

const rkey = (r: OverlayRoute) => `${r.dst} ${r.via} ${r.dev ?? ''}`;
const nkey = (n: Neighbour) => `${n.ip} ${n.mac}`;
const fkey = (f: FdbEntry) => `${f.mac} ${f.dst}`;
const byKey =
  <T>(k: (x: T) => string) =>
  (a: T, b: T) =>
    k(a).localeCompare(k(b));

/**
 * Every peer's path and the kernel entries they need. Peers are taken in name order after this node: one with
 * no pod CIDR, a malformed pod CIDR, a pod CIDR overlapping this node's or an earlier-named peer's, or (on the
 * VXLAN path) no or malformed VTEP annotations is skipped with its reason; the others are unaffected.
 */
export function planOverlay(self: string, nodes: Iterable<Node>, o: PlanOptions): OverlayPlan {
  const all = [...nodes].sort((a, b) => a.meta.name.localeCompare(b.meta.name));
  const claimed: { node: string; cidr: Cidr; text: string }[] = [];
  const me = all.find((n) => n.meta.name === self);
  for (const c of me?.podCIDRs ?? []) {
    try {
      claimed.push({ node: self, cidr: parseCidr(c), text: c });
    } catch {
      // our own bad CIDR is the CNI configuration's problem; it claims nothing here
    }
  }
  const local = o.localSubnets.flatMap((s) => {
    try {
      return [parseCidr(s)];
    } catch {
      return [];
    }
  });
  const device = vxlanDevice(o.vni);
  const device6 = vxlanDevice6(o.vni);
  const peers: PeerPlan[] = [];
  const skipped: Skipped[] = [];
  const routes: OverlayRoute[] = [];
  const neighbours: Neighbour[] = [];
  const fdb: FdbEntry[] = [];
  const neighbours6: Neighbour[] = [];
  const fdb6: FdbEntry[] = [];
  for (const n of all) {
    const name = n.meta.name;
    if (name === self) continue;
    const skip = (reason: string) => skipped.push({ node: name, reason });
    if (n.podCIDRs.length === 0) {
      skip('no podCIDR');
      continue;
    }
    const cidrs: Cidr[] = [];
    let bad: string | undefined;
    for (const text of n.podCIDRs) {
      let c: Cidr;
      try {
        c = parseCidr(text);
      } catch {
        bad = `malformed podCIDR ${JSON.stringify(text)}`;
        break;
      }
      const hit = claimed.find((x) => overlaps(x.cidr, c));
      if (hit) {
        bad = `podCIDR ${text} overlaps ${hit.node === self ? 'this node' : `node ${hit.node}`}'s ${hit.text}`;
        break;
      }
      cidrs.push(c);
    }
    if (bad) {
      skip(bad);
      continue;
    }
    // each family decides on its own: direct when auto and the peer's InternalIP of that family is on one of
    // our subnets, else VXLAN over that family's device with that family's VTEP annotations
    type Leg = { path: Path; cidr: string; underlayIp: string; vtep?: Neighbour; fdb?: FdbEntry; dev?: string };
    const legs: Leg[] = [];
    const why: string[] = [];
    for (const family of [4, 6] as const) {
      const c = cidrs.find((x) => x.family === family);
      if (!c) continue;
      const dst = formatNetwork(c);
      const ip = internalIp(n, family);
      if (o.backend === 'auto' && ip !== undefined && local.some((s) => contains(s, tryParseIp(ip)!))) {
        legs.push({ path: 'direct', cidr: dst, underlayIp: ip });
        continue;
      }
      if (family === 6 && !o.ipv6) {
        // this node's own lack of an IPv6 underlay is not news per peer unless the peer has nothing else
        if (cidrs.some((x) => x.family === 4)) continue;
        why.push(`IPv6 podCIDR ${dst}: this node has no IPv6 underlay address for VXLAN`);
        continue;
      }
      const vtep = parseVtep(n, o.vni, family);
      if (!vtep.ok) {
        why.push(`IPv${family}: ${vtep.reason}`);
        continue;
      }
      const addr = vtepAddress(dst);
      legs.push({
        path: 'vxlan',
        cidr: dst,
        underlayIp: vtep.publicIp,
        vtep: { ip: addr, mac: vtep.mac },
        fdb: { mac: vtep.mac, dst: vtep.publicIp },
        dev: family === 4 ? device : device6,
      });
    }
    if (legs.length === 0) {
      skip(why.map((w) => (cidrs.length === 1 ? w.replace(/^IPv[46]: /, '') : w)).join('; '));
      continue;
    }
    for (const c of cidrs) claimed.push({ node: name, cidr: c, text: formatNetwork(c) });
    for (const l of legs) {
      if (l.path === 'direct') routes.push({ dst: l.cidr, via: l.underlayIp });
      else {
        routes.push({ dst: l.cidr, via: l.vtep!.ip, dev: l.dev! });
        (l.dev === device ? neighbours : neighbours6).push(l.vtep!);
        (l.dev === device ? fdb : fdb6).push(l.fdb!);
      }
    }
    const [a, b] = legs;
    peers.push({
      node: name,
      path: a!.path,
      podCidrs: legs.map((l) => l.cidr),
      underlayIp: a!.underlayIp,
      ...(a!.vtep ? { vtep: a!.vtep } : {}),
      ...(b && (b.path !== a!.path || b.path === 'vxlan') ? { path6: b.path, underlayIp6: b.underlayIp } : {}),
      ...(b?.vtep ? { vtep6: b.vtep } : {}),
      ...(why.length > 0 ? { unrouted: why.join('; ') } : {}),
    });
  }
  return {
    peers,
    skipped,
    routes: routes.sort(byKey(rkey)),
    neighbours: neighbours.sort(byKey(nkey)),
    fdb: fdb.sort(byKey(fkey)),
    neighbours6: neighbours6.sort(byKey(nkey)),
    fdb6: fdb6.sort(byKey(fkey)),
  };
}

type IpState = {
  readonly routes: readonly OverlayRoute[];
  readonly neighbours: readonly Neighbour[];
  readonly neighbours6?: readonly Neighbour[];
};

/**
 * `ip -batch` lines (routes and the VXLAN devices' neighbours) turning what the kernel holds into the plan;
 * `neighbours6` are the IPv6 device's (`device6`, default kdp6.<n> for kdp.<n>).
 */
export function ipBatch(
  current: IpState,
  desired: IpState,
  device: string,
  device6 = device.replace(/^kdp\./, 'kdp6.'),
): string[] {
  const lines: string[] = [];
  const route = (r: OverlayRoute) => `${r.dst} via ${r.via}${r.dev ? ` dev ${r.dev} onlink` : ''} proto ${ROUTE_PROTO}`;
  const wantR = new Set(desired.routes.map(rkey));
  const haveR = new Set(current.routes.map(rkey));
  const wantN = new Set(desired.neighbours.map(nkey));
  const haveN = new Set(current.neighbours.map(nkey));
  for (const r of current.routes) if (!wantR.has(rkey(r))) lines.push(`route del ${route(r)}`);
  for (const n of current.neighbours) if (!wantN.has(nkey(n))) lines.push(`neigh del ${n.ip} dev ${device}`);
  for (const n of desired.neighbours)
    if (!haveN.has(nkey(n))) lines.push(`neigh replace ${n.ip} lladdr ${n.mac} dev ${device} nud permanent`);
  const wantN6 = new Set((desired.neighbours6 ?? []).map(nkey));
  const haveN6 = new Set((current.neighbours6 ?? []).map(nkey));
  for (const n of current.neighbours6 ?? []) if (!wantN6.has(nkey(n))) lines.push(`neigh del ${n.ip} dev ${device6}`);
  for (const n of desired.neighbours6 ?? [])
    if (!haveN6.has(nkey(n))) lines.push(`neigh replace ${n.ip} lladdr ${n.mac} dev ${device6} nud permanent`);
  for (const r of desired.routes) if (!haveR.has(rkey(r))) lines.push(`route replace ${route(r)}`);
  return lines;
}

/** `bridge -batch` lines for the VXLAN device's forwarding database. */
export function fdbBatch(current: readonly FdbEntry[], desired: readonly FdbEntry[], device: string): string[] {
  const want = new Set(desired.map(fkey));
  const have = new Set(current.map(fkey));
  const lines: string[] = [];
  for (const f of current) if (!want.has(fkey(f))) lines.push(`fdb del ${f.mac} dev ${device} dst ${f.dst} self`);
  for (const f of desired)
    if (!have.has(fkey(f))) lines.push(`fdb append ${f.mac} dev ${device} dst ${f.dst} self permanent`);
  return lines;
}

// ------------------------------------------------------------------ the underlay and the VXLAN device

/** One link of `ip -d -j addr show` (the fields the agent reads). */
export interface LinkJson {
  readonly ifname: string;
  readonly mtu?: number;
  readonly address?: string;
  readonly flags?: readonly string[];
  readonly linkinfo?: {
    readonly info_kind?: string;
    readonly info_data?: {
      readonly id?: number;
      readonly local?: string;
      /** iproute2 prints an IPv6 local address as local6 */
      readonly local6?: string;
      readonly link?: string;
      readonly port?: number;
      readonly learning?: boolean;
    };
  };
  readonly addr_info?: readonly {
    readonly family?: string;
    readonly local?: string;
    readonly prefixlen?: number;
    readonly scope?: string;
  }[];
}

export interface Underlay {
  readonly iface: string;
  /** the VTEP's local (public) IPv4 address */
  readonly ip: string;
  /** the IPv6 VTEP's local address (the node's IPv6 InternalIP when the interface holds it, else its first global
   *  IPv6 address); absent: no IPv6 underlay, IPv6 pod CIDRs are not carried over VXLAN */
  readonly ip6?: string;
  readonly mtu: number;
  /** the networks of the interface's global addresses (auto's "same subnet" test) */
  readonly subnets: readonly string[];
}

const globals = (l: LinkJson, family?: 'inet' | 'inet6') =>
  (l.addr_info ?? []).filter(
    (a) => a.scope === 'global' && a.local !== undefined && (family === undefined || a.family === family),
  );

/**
 * The underlay from `ip -d -j addr show`: the named interface, else the one holding `internalIp` (the node's
 * InternalIP). Its VTEP address is `internalIp` when the interface holds it, else its first global IPv4 address.
 * A reason string when there is none.
 */
export function findUnderlay(
  links: readonly LinkJson[],
  o: { iface?: string; internalIp?: string; internalIp6?: string },
): Underlay | string {
  const link = o.iface
    ? links.find((l) => l.ifname === o.iface)
    : links.find((l) => globals(l).some((a) => a.local === o.internalIp));
  if (!link)
    return o.iface
      ? `underlay interface ${o.iface} not found`
      : o.internalIp
        ? `no interface holds this node's InternalIP ${o.internalIp}`
        : 'this node has no IPv4 InternalIP (and no --underlay-iface)';
  const v4 = globals(link, 'inet');
  const ip = v4.find((a) => a.local === o.internalIp)?.local ?? v4[0]?.local;
  if (!ip) return `underlay interface ${link.ifname} has no global IPv4 address`;
  const v6 = globals(link, 'inet6');
  const ip6 = v6.find((a) => a.local === o.internalIp6)?.local ?? v6[0]?.local;
  if (!link.mtu) return `underlay interface ${link.ifname} reports no MTU`;
  const subnets = globals(link).flatMap((a) => {
    try {
      return [formatNetwork(parseCidr(`${a.local}/${a.prefixlen}`))];
    } catch {
      return [];
    }
  });
  return { iface: link.ifname, ip, ...(ip6 ? { ip6 } : {}), mtu: link.mtu, subnets };
}

export interface DeviceSpec {
  readonly name: string;
  readonly vni: number;
  readonly port: number;
  readonly local: string;
  readonly underlay: string;
  readonly mtu: number;
  readonly mac: string;
  /** the node's VTEP address, held /32 (/128 for IPv6; undefined: this node has no pod CIDR of that family yet) */
  readonly address?: string;
  /** 6: the IPv6 device (local is IPv6, the address /128 without duplicate address detection) */
  readonly family?: 4 | 6;
}

/**
 * `ip -batch` lines that make the VXLAN device match `spec`: created when missing, re-created when its VNI,
 * port, local address or underlay differ (or it is not a VXLAN device), else only MTU, MAC, address and up
 * fixed. Empty when it already matches.
 */
export function deviceBatch(current: LinkJson | undefined, spec: DeviceSpec): string[] {
  const v6 = spec.family === 6;
  const want = spec.address ? `${spec.address}/${v6 ? 128 : 32}` : undefined;
  const add = `addr add ${want} dev ${spec.name}${v6 ? ' nodad' : ''}`;
  const create = [
    `link add ${spec.name} address ${spec.mac} mtu ${spec.mtu} type vxlan id ${spec.vni} dstport ${spec.port} local ${spec.local} dev ${spec.underlay} nolearning`,
    ...(want ? [add] : []),
    `link set ${spec.name} up`,
  ];
  if (!current) return create;
  const d = current.linkinfo?.info_data;
  if (
    current.linkinfo?.info_kind !== 'vxlan' ||
    d?.id !== spec.vni ||
    d.port !== spec.port ||
    (d.local ?? d.local6) !== spec.local ||
    d.link !== spec.underlay ||
    d.learning !== false
  )
    return [`link del ${spec.name}`, ...create];
  const lines: string[] = [];
  if (current.mtu !== spec.mtu) lines.push(`link set ${spec.name} mtu ${spec.mtu}`);
  if (current.address?.toLowerCase() !== spec.mac) lines.push(`link set ${spec.name} address ${spec.mac}`);
  const have = globals(current, v6 ? 'inet6' : 'inet').map((a) => `${a.local}/${a.prefixlen}`);
  for (const a of have) if (a !== want) lines.push(`addr del ${a} dev ${spec.name}`);
  if (want && !have.includes(want)) lines.push(add);
  if (!current.flags?.includes('UP')) lines.push(`link set ${spec.name} up`);
  return lines;
}
