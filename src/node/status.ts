// The node agent's answer to `kdp status` (the status interface of src/model/status.ts): each peer of the
// report's node, the path its pods are reached by (direct host-gw route or VXLAN, as found in the kernel) and
// whether the kernel holds every entry that path needs (route; for VXLAN also the neighbour and the FDB entry
// matching the peer's VTEP annotations), or why the agent skips it; one row per family for a dual-stack peer
// (IPv6 over kdp6.<vni>). Pure.
import type { ComponentStatus } from '../model/status.ts';
import { formatNetwork, parseCidr } from '../ipam/ip.ts';
import { parseVtep, planOverlay, vtepAddress } from './overlay.ts';

export interface PeerStatus {
  readonly node: string;
  readonly podCidr: string;
  /** direct | vxlan (from the kernel's route), '' when there is none or the kernel was not checked */
  readonly path: '' | 'direct' | 'vxlan';
  /** ok | what is missing (route, neighbour, fdb); undefined: the kernel was not checked */
  readonly kernel?: string;
  /** why the agent skips this peer (bad annotation, overlapping pod CIDR), when it does */
  readonly note?: string;
}

interface RouteJson {
  dst?: string;
  gateway?: string;
  dev?: string;
}

function parseArray<T>(text: string): T[] {
  // `ip -4 -j ...; ip -6 -j ...` gives two arrays back to back
  const out: T[] = [];
  for (const chunk of text.split(/(?<=\])\s*(?=\[)/)) {
    try {
      const v = JSON.parse(chunk) as unknown;
      if (Array.isArray(v)) out.push(...(v as T[]));
    } catch {
      // not JSON: nothing read from it
    }
  }
  return out;
}

const vni = (dev: string) => Number(/^kdp\.(\d+)$/.exec(dev)?.[1] ?? 1);

export const status: ComponentStatus<readonly PeerStatus[]> = (input) => {
  const self = input.nodeName;
  const nodes = input.cluster.nodes;
  if (!self || !nodes.some((n) => n.meta.name === self)) return [];
  const k = input.nodeKernel;
  const routes = k ? parseArray<RouteJson>(k.routes) : [];
  const neighbours = k ? parseArray<{ dst?: string; dev?: string; lladdr?: string }>(k.neighbours) : [];
  const fdb = k ? parseArray<{ mac?: string; ifname?: string; dst?: string }>(k.fdb) : [];
  const dev = routes.find((r) => r.dev && /^kdp\.\d+$/.test(r.dev))?.dev ?? 'kdp.1';
  const dev6 = dev.replace(/^kdp\./, 'kdp6.');
  const plan = planOverlay(self, nodes, { backend: 'vxlan', vni: vni(dev), localSubnets: [], ipv6: true });
  const skipped = new Map(plan.skipped.map((s) => [s.node, s.reason]));
  const partly = new Map(plan.peers.flatMap((p) => (p.unrouted ? [[p.node, p.unrouted] as const] : [])));
  const out: PeerStatus[] = [];
  // one row per peer and family: its IPv4 pod CIDR (or its only one), and its IPv6 pod CIDR when it has both
  for (const n of [...nodes].sort((a, b) => a.meta.name.localeCompare(b.meta.name))) {
    if (n.meta.name === self) continue;
    let cidrs: { cidr: string; family: 4 | 6 }[] = [];
    try {
      cidrs = n.podCIDRs
        .map((x) => parseCidr(x))
        .sort((a, b) => a.family - b.family)
        .map((c) => ({ cidr: formatNetwork(c), family: c.family }));
    } catch {
      cidrs = [];
    }
    cidrs = cidrs.filter((c, i) => cidrs.findIndex((x) => x.family === c.family) === i);
    for (const { cidr, family } of cidrs.length ? cidrs : [{ cidr: '', family: 4 as const }]) {
      const d = family === 6 ? dev6 : dev;
      const route = routes.find((r) => r.dst === cidr);
      const path = !route ? '' : route.dev === d && route.gateway === (cidr && vtepAddress(cidr)) ? 'vxlan' : 'direct';
      let kernel: string | undefined;
      if (k) {
        if (!route) kernel = 'missing route';
        else if (path === 'direct') kernel = 'ok';
        else {
          const vtep = parseVtep(n, vni(dev), family);
          const missing: string[] = [];
          if (!vtep.ok) missing.push('annotation');
          else {
            const addr = vtepAddress(cidr);
            if (!neighbours.some((x) => x.dev === d && x.dst === addr && x.lladdr?.toLowerCase() === vtep.mac))
              missing.push('neighbour');
            if (!fdb.some((x) => x.ifname === d && x.mac?.toLowerCase() === vtep.mac && x.dst === vtep.publicIp))
              missing.push('fdb');
          }
          kernel = missing.length ? `missing ${missing.join(', ')}` : 'ok';
        }
      }
      // a direct peer needs no annotation: a reason is only news when the peer is not routed
      const reason = skipped.get(n.meta.name) ?? partly.get(n.meta.name);
      const note = reason && !route ? reason : undefined;
      out.push({
        node: n.meta.name,
        podCidr: cidr,
        path,
        ...(kernel !== undefined ? { kernel } : {}),
        ...(note ? { note } : {}),
      });
    }
  }
  return out;
};
