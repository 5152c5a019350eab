// The proxy's view of the cluster: one ServicePortInfo per (service, port, IP family), with its endpoints
// already filtered and categorised. Built by a pure function from the Services and EndpointSlices the
// tracker holds, so both renderers (nftables, iptables) and the userspace balancer share the semantics.
import { createHash } from 'node:crypto';
import type { EndpointSlice, IPFamily, Protocol, Service } from '../model/types.ts';
import { keyOf } from '../model/types.ts';
import { categorizeEndpoints } from './topology.ts';
import type { TopologyEndpoint, TopologyMode } from './topology.ts';

const LABEL_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
const LABEL_HEADLESS = 'service.kubernetes.io/headless';

/** An endpoint of a service port as the proxy sees it: address, conditions, locality, topology hints. */
export type ProxyEndpoint = TopologyEndpoint;

export interface ServicePortInfo {
  /** "ns/name:portName" (kube-proxy's ServicePortName) */
  readonly id: string;
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
  readonly protocol: Protocol;
  readonly family: IPFamily;
  readonly clusterIP: string;
  readonly port: number;
  readonly nodePort?: number;
  readonly externalIPs: readonly string[];
  readonly loadBalancerIPs: readonly string[];
  readonly sourceRanges: readonly string[];
  /** seconds; undefined: no session affinity */
  readonly affinitySeconds?: number;
  readonly externalLocal: boolean;
  readonly internalLocal: boolean;
  readonly healthCheckNodePort?: number;
  /** every endpoint of the port, sorted by ip:port */
  readonly endpoints: readonly ProxyEndpoint[];
  /**
   * what Cluster-policy traffic goes to: the ready ones (narrowed to this node's or zone's by topology hints,
   * topology.ts), or the serving-terminating ones when none is ready anywhere; empty only when nothing is usable
   */
  readonly clusterEndpoints: readonly ProxyEndpoint[];
  /** what Local-policy traffic goes to: the node-local ready ones, else the node-local serving-terminating ones */
  readonly localEndpoints: readonly ProxyEndpoint[];
  /** the topology hints in force for clusterEndpoints on this node (absent: none, every endpoint is used) */
  readonly topology?: Exclude<TopologyMode, ''>;
}

interface ModelOptions {
  readonly nodeName: string;
  readonly family: IPFamily;
  /** the value of service.kubernetes.io/service-proxy-name this proxy serves (default: only unlabelled services) */
  readonly proxyName?: string;
  /** this node's topology.kubernetes.io/zone label (topology hints; default: none) */
  readonly zone?: string;
}

export function isV6(ip: string): boolean {
  return ip.includes(':');
}

/** Whether kube-proxy semantics say this proxy ignores the service. */
export function ignoredService(svc: Service, proxyName?: string): boolean {
  if (svc.type === 'ExternalName' || svc.headless) return true;
  if (LABEL_HEADLESS in svc.meta.labels) return true;
  const want = svc.meta.labels[LABEL_PROXY_NAME];
  if (want !== undefined && want !== proxyName) return true;
  return svc.clusterIPs.length === 0;
}

/** Shared by every empty list of the model (a big cluster has 50k services without external IPs). */
const NONE: readonly never[] = Object.freeze([]);

/** ready endpoints; when there are none, the serving and terminating ones (KEP-1669). */
export function usable(eps: readonly ProxyEndpoint[]): readonly ProxyEndpoint[] {
  // the common cases keep no copy: all ready (the list itself), none at all
  if (eps.every((e) => e.ready)) return eps.length > 0 ? eps : NONE;
  const ready = eps.filter((e) => e.ready);
  if (ready.length > 0) return ready;
  const st = eps.filter((e) => e.serving && e.terminating);
  return st.length > 0 ? st : NONE;
}

function familyOf(ip: string): IPFamily {
  return isV6(ip) ? 'IPv6' : 'IPv4';
}

/** Builds the service ports of one IP family. Pure; output sorted by id. */
export function buildServicePorts(
  services: Iterable<Service>,
  slicesByService: ReadonlyMap<string, readonly EndpointSlice[]>,
  opts: ModelOptions,
): ServicePortInfo[] {
  const out: ServicePortInfo[] = [];
  for (const svc of services) {
    if (ignoredService(svc, opts.proxyName)) continue;
    const clusterIP = svc.clusterIPs.find((ip) => familyOf(ip) === opts.family);
    if (clusterIP === undefined) continue;
    const key = keyOf(svc.meta);
    const slices = (slicesByService.get(key) ?? []).filter((s) => s.addressType === opts.family);
    for (const sp of svc.ports) {
      const byAddr = new Map<string, ProxyEndpoint>();
      for (const slice of slices) {
        const ep = slice.ports.find((p) => p.name === sp.name && p.protocol === sp.protocol);
        if (!ep) continue;
        for (const e of slice.endpoints) {
          for (const ip of e.addresses.slice(0, 1)) {
            const k = `${ip}:${ep.port}`;
            const cand: ProxyEndpoint = {
              ip,
              port: ep.port,
              ready: e.conditions.ready,
              serving: e.conditions.serving,
              terminating: e.conditions.terminating,
              local: e.nodeName !== undefined && e.nodeName === opts.nodeName,
              ...(e.hints?.forZones.length ? { zoneHints: e.hints.forZones } : {}),
              ...(e.hints?.forNodes.length ? { nodeHints: e.hints.forNodes } : {}),
            };
            const prev = byAddr.get(k);
            // the same address in two slices (a slice being replaced): the ready copy wins
            if (!prev || (!prev.ready && cand.ready)) byAddr.set(k, cand);
          }
        }
      }
      const endpoints = [...byAddr.values()].sort((a, b) => cmpEndpoint(a, b));
      const fam = (ips: readonly string[]) =>
        ips.length === 0 ? NONE : ips.filter((ip) => familyOf(ip) === opts.family);
      const nodePort =
        sp.nodePort !== undefined && (svc.type === 'NodePort' || svc.type === 'LoadBalancer') ? sp.nodePort : undefined;
      const externalIPs = fam(svc.externalIPs);
      const loadBalancerIPs = svc.type === 'LoadBalancer' ? fam(svc.loadBalancerIPs) : NONE;
      const externallyAccessible = nodePort !== undefined || externalIPs.length + loadBalancerIPs.length > 0;
      // topology only when some endpoint carries a hint: without any, categorizeEndpoints gives what usable()
      // gives, and usable() shares lists instead of copying them (50k services)
      const topo = endpoints.some((e) => e.zoneHints !== undefined || e.nodeHints !== undefined)
        ? categorizeEndpoints(
            endpoints,
            {
              internalLocal: svc.internalTrafficPolicy === 'Local',
              externalLocal: svc.externalTrafficPolicy === 'Local',
              externallyAccessible,
            },
            opts.nodeName,
            opts.zone ?? '',
          )
        : undefined;
      const info: ServicePortInfo = {
        id: `${key}:${sp.name}`,
        namespace: svc.meta.namespace,
        name: svc.meta.name,
        portName: sp.name,
        protocol: sp.protocol,
        family: opts.family,
        clusterIP,
        port: sp.port,
        ...(nodePort !== undefined ? { nodePort } : {}),
        externalIPs,
        loadBalancerIPs,
        sourceRanges:
          svc.type === 'LoadBalancer' && svc.loadBalancerSourceRanges.length > 0
            ? svc.loadBalancerSourceRanges.filter((r) => familyOf(r) === opts.family)
            : NONE,
        ...(svc.sessionAffinity === 'ClientIP' ? { affinitySeconds: svc.sessionAffinityTimeoutSeconds } : {}),
        externalLocal:
          svc.externalTrafficPolicy === 'Local' &&
          (svc.type === 'NodePort' || svc.type === 'LoadBalancer' || svc.externalIPs.length > 0),
        internalLocal: svc.internalTrafficPolicy === 'Local',
        ...(svc.healthCheckNodePort !== undefined && svc.externalTrafficPolicy === 'Local'
          ? { healthCheckNodePort: svc.healthCheckNodePort }
          : {}),
        endpoints,
        // a set the port never uses is still filled (ready, else serving-terminating): the modes read "none
        // usable anywhere" (REJECT) from an empty clusterEndpoints
        clusterEndpoints: topo?.cluster ?? usable(endpoints),
        localEndpoints: topo?.local ?? usable(endpoints.filter((e) => e.local)),
        ...(topo && topo.mode !== '' ? { topology: topo.mode } : {}),
      };
      out.push(info);
    }
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.protocol < b.protocol ? -1 : 1));
}

function cmpEndpoint(a: ProxyEndpoint, b: ProxyEndpoint): number {
  const ka = `${a.ip}:${a.port}`;
  const kb = `${b.ip}:${b.port}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** base32(sha256(s)), upper case, first n characters: deterministic kernel-object names. */
export function hashName(s: string, n: number): string {
  const digest = createHash('sha256').update(s).digest();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < n) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length >= n) break;
  }
  return out;
}

/** Service ports whose traffic the proxy must route through the given endpoint sets (for conntrack). */
export function vips(sp: ServicePortInfo): string[] {
  return [sp.clusterIP, ...sp.externalIPs, ...sp.loadBalancerIPs];
}
