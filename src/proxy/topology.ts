// Topology-aware routing, as kube-proxy 1.34 does it (pkg/proxy/topology.go): which of a service port's
// endpoints this node's Cluster-policy and Local-policy traffic goes to. Pure; shared by every mode, which only
// ever sees the result (ServicePortInfo.clusterEndpoints / localEndpoints).
//
// The proxy reads hints, never Service.trafficDistribution: the EndpointSlice controller turns
// trafficDistribution into hints (PreferClose / PreferSameZone: forZones = the endpoint's zone; PreferSameNode:
// also forNodes = its node), and the proxy follows whatever hints the slices carry. The rules:
//   - PreferSameNode: when every ready endpoint has a node hint and at least one names this node, Cluster
//     traffic goes to the ready endpoints hinted for this node;
//   - else PreferSameZone: when every ready endpoint has a zone hint and at least one names this node's zone
//     (its topology.kubernetes.io/zone label), to the ready endpoints hinted for this zone;
//   - else (a hint missing anywhere, nothing hinted here, no zone label, no ready endpoint) no filtering.
//   - With no ready endpoint at all, the serving-terminating ones are used (KEP-1669), without topology.
//   - Local-policy traffic (internalTrafficPolicy / externalTrafficPolicy Local) ignores topology: the
//     node's own endpoints, ready ones or else serving-terminating ones.

export type TopologyMode = '' | 'PreferSameZone' | 'PreferSameNode';

export interface TopologyEndpoint {
  readonly ip: string;
  readonly port: number;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  /** on this proxy's node */
  readonly local: boolean;
  /** hints.forZones / hints.forNodes (empty or absent: no hint of that kind) */
  readonly zoneHints?: readonly string[];
  readonly nodeHints?: readonly string[];
}

export interface TopologyPolicy {
  readonly internalLocal: boolean;
  /** externalTrafficPolicy is Local (whether or not the port is reachable from outside) */
  readonly externalLocal: boolean;
  /** it has a NodePort, an external IP or a load-balancer IP */
  readonly externallyAccessible: boolean;
}

export interface Categorized<E extends TopologyEndpoint> {
  /** what Cluster-policy traffic goes to; undefined: the port never uses Cluster policy */
  readonly cluster: readonly E[] | undefined;
  /** what Local-policy traffic goes to; undefined: the port never uses Local policy */
  readonly local: readonly E[] | undefined;
  /** the union of the two (the endpoints this node can reach) */
  readonly allReachable: readonly E[];
  /** some endpoint is usable somewhere in the cluster (even if none is reachable from here) */
  readonly hasAny: boolean;
  readonly mode: TopologyMode;
}

/** kube-proxy's ServicePort.UsesClusterEndpoints: Cluster internal policy, or reachable from outside at all. */
export function usesCluster(p: TopologyPolicy): boolean {
  return !p.internalLocal || p.externallyAccessible;
}

/** kube-proxy's ServicePort.UsesLocalEndpoints. */
export function usesLocal(p: TopologyPolicy): boolean {
  return p.internalLocal || (p.externalLocal && p.externallyAccessible);
}

const has = (list: readonly string[] | undefined, v: string) => list !== undefined && list.includes(v);
const servingTerminating = (e: TopologyEndpoint) => e.serving && e.terminating;

/** The topology mode the hints allow on this node ('' = no filtering). */
export function topologyMode(eps: readonly TopologyEndpoint[], nodeName: string, zone: string): TopologyMode {
  let anyReady = false;
  let allNode = true;
  let forNode = false;
  let allZone = true;
  let forZone = false;
  for (const e of eps) {
    if (!e.ready) continue;
    anyReady = true;
    if (!e.nodeHints?.length) allNode = false;
    else if (has(e.nodeHints, nodeName)) forNode = true;
    if (!e.zoneHints?.length) allZone = false;
    else if (has(e.zoneHints, zone)) forZone = true;
  }
  if (!anyReady) return '';
  if (allNode && forNode) return 'PreferSameNode';
  // a node without a zone label has zone '': no hint names it
  if (allZone && forZone && zone !== '') return 'PreferSameZone';
  return '';
}

function availableFor(e: TopologyEndpoint, mode: TopologyMode, nodeName: string, zone: string): boolean {
  if (mode === 'PreferSameNode') return has(e.nodeHints, nodeName);
  if (mode === 'PreferSameZone') return has(e.zoneHints, zone);
  return true;
}

/** kube-proxy's CategorizeEndpoints. `zone` is this node's zone label ('' when it has none). */
export function categorizeEndpoints<E extends TopologyEndpoint>(
  eps: readonly E[],
  policy: TopologyPolicy,
  nodeName: string,
  zone: string,
): Categorized<E> {
  const wantCluster = usesCluster(policy);
  const wantLocal = usesLocal(policy);
  if (eps.length === 0)
    return {
      cluster: wantCluster ? [] : undefined,
      local: wantLocal ? [] : undefined,
      allReachable: [],
      hasAny: false,
      mode: '',
    };
  let mode: TopologyMode = '';
  let cluster: E[] | undefined;
  let hasAny = false;
  if (wantCluster) {
    mode = topologyMode(eps, nodeName, zone);
    cluster = eps.filter((e) => e.ready && availableFor(e, mode, nodeName, zone));
    // none ready anywhere (topology was already dropped when none was ready for it): serving-terminating ones
    if (cluster.length === 0) cluster = eps.filter(servingTerminating);
    hasAny = cluster.length > 0;
  }
  if (!wantLocal) return { cluster, local: undefined, allReachable: cluster ?? [], hasAny, mode };

  let localReady = false;
  let localTerminating = false;
  for (const e of eps) {
    if (e.ready) {
      hasAny = true;
      if (e.local) localReady = true;
    } else if (servingTerminating(e)) {
      hasAny = true;
      if (e.local) localTerminating = true;
    }
  }
  const local = localReady
    ? eps.filter((e) => e.local && e.ready)
    : localTerminating
      ? eps.filter((e) => e.local && servingTerminating(e))
      : [];
  if (!cluster) return { cluster: undefined, local, allReachable: local, hasAny, mode };
  // no topology and ready local endpoints: the cluster set already holds every local one
  if (mode === '' && !(localTerminating && !localReady)) return { cluster, local, allReachable: cluster, hasAny, mode };
  const byKey = new Map<string, E>();
  for (const e of [...cluster, ...local]) byKey.set(`${e.ip}:${e.port}`, e);
  return { cluster, local, allReachable: [...byKey.values()], hasAny, mode };
}
