// The EndpointSlice controller for sources without a control plane (the manifests directory): a pure
// function from Services and Pods to the EndpointSlices the real controller would publish.
//
// Rules (following the Kubernetes EndpointSlice controller):
//   - only Services with a selector (not ExternalName) get slices; a Service that has EndpointSlices or
//     legacy Endpoints of its own in the directory is left to them (explicit slices are respected);
//   - a Pod is selected when it is in the Service's namespace and its labels contain the selector; Pods
//     without an IP, or in phase Succeeded/Failed, are left out;
//   - one endpoint per Pod and address family, for each family the Service has (ipFamilies; a headless
//     Service without families gets both);
//   - conditions: serving = Pod Ready; terminating = deletionTimestamp set; ready = serving and not
//     terminating, or true when publishNotReadyAddresses;
//   - named targetPorts are resolved per Pod (container port with that name and protocol); a Pod that
//     lacks the name is left out of that port; Pods resolving to different port numbers land in different
//     slices, as the real controller groups endpoints by their port set;
//   - hostname = Pod hostname when the Pod's subdomain is the Service's name; at most 100 endpoints a slice;
//   - zone = the topology.kubernetes.io/zone label of the Pod's Node; with spec.trafficDistribution PreferClose or
//     PreferSameZone each ready endpoint gets hints.forZones = [its zone], with PreferSameNode also
//     hints.forNodes = [its node] (upstream's trafficdist package; other values: no hints).
import { createHash } from 'node:crypto';
import type {
  Endpoint,
  EndpointHints,
  EndpointPort,
  EndpointSlice,
  IPFamily,
  Node,
  Pod,
  Service,
} from '../model/types.ts';
import { LABEL_TOPOLOGY_ZONE } from '../model/types.ts';
import { ipFamilyOf, SERVICE_NAME_LABEL } from './convert.ts';

const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
const MANAGED_BY = 'kdp-manifests-controller';
export const MAX_ENDPOINTS_PER_SLICE = 100;

function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

function resolvePorts(svc: Service, pod: Pod): EndpointPort[] {
  const out: EndpointPort[] = [];
  for (const sp of svc.ports) {
    let port: number | undefined;
    if (typeof sp.targetPort === 'number') port = sp.targetPort;
    else
      port = pod.containerPorts.find((cp) => cp.name === sp.targetPort && cp.protocol === sp.protocol)?.containerPort;
    if (port === undefined) continue;
    out.push({
      name: sp.name,
      port,
      protocol: sp.protocol,
      ...(sp.appProtocol ? { appProtocol: sp.appProtocol } : {}),
    });
  }
  return out;
}

// ---------------------------------------------------------------- topology: zones and hints
const CLOSE_DISTRIBUTIONS = new Set(['PreferClose', 'PreferSameZone', 'PreferSameNode']);

/** Node name -> its zone label (nodes without one are left out). */
export function zonesOf(nodes: Iterable<Node>): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of nodes) {
    const z = n.meta.labels[LABEL_TOPOLOGY_ZONE];
    if (z) out.set(n.meta.name, z);
  }
  return out;
}

/** The hints a ready endpoint gets for the Service's trafficDistribution (undefined: none). */
function hintsFor(svc: Service, zone: string | undefined, nodeName: string | undefined): EndpointHints | undefined {
  const td = svc.trafficDistribution;
  if (td === undefined || !CLOSE_DISTRIBUTIONS.has(td)) return undefined;
  const forZones = zone ? [zone] : [];
  const forNodes = td === 'PreferSameNode' && nodeName ? [nodeName] : [];
  return forZones.length + forNodes.length > 0 ? { forZones, forNodes } : undefined;
}

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 5);
}

/** The slices the controller publishes for one Service (none without a selector); `zones` from zonesOf. */
export function endpointSlicesFor(
  svc: Service,
  pods: Iterable<Pod>,
  zones: ReadonlyMap<string, string> = new Map(),
): EndpointSlice[] {
  const selector = svc.selector;
  if (!selector || svc.type === 'ExternalName') return [];
  const families: readonly IPFamily[] = svc.ipFamilies.length > 0 ? svc.ipFamilies : ['IPv4', 'IPv6'];
  // group endpoints by family and resolved port set
  const groups = new Map<string, { family: IPFamily; ports: EndpointPort[]; endpoints: Endpoint[] }>();
  const chosen = [...pods]
    .filter((p) => p.meta.namespace === svc.meta.namespace && selects(selector, p.meta.labels))
    .filter((p) => p.podIPs.length > 0 && p.phase !== 'Succeeded' && p.phase !== 'Failed')
    .sort((a, b) => (a.meta.name < b.meta.name ? -1 : a.meta.name > b.meta.name ? 1 : 0));
  for (const pod of chosen) {
    const ports = resolvePorts(svc, pod);
    if (svc.ports.length > 0 && ports.length === 0) continue;
    const terminating = pod.meta.deletionTimestamp !== undefined;
    const serving = pod.ready;
    const ready = svc.publishNotReadyAddresses || (serving && !terminating);
    const hostname = pod.hostname && pod.subdomain === svc.meta.name ? pod.hostname : undefined;
    const zone = pod.nodeName ? zones.get(pod.nodeName) : undefined;
    const hints = ready ? hintsFor(svc, zone, pod.nodeName) : undefined;
    for (const family of families) {
      const addr = pod.podIPs.find((a) => ipFamilyOf(a) === family);
      if (addr === undefined) continue;
      const portsKey = ports.map((p) => `${p.name}/${p.protocol}/${p.port}`).join(',');
      const gk = `${family}|${portsKey}`;
      let g = groups.get(gk);
      if (!g) groups.set(gk, (g = { family, ports, endpoints: [] }));
      g.endpoints.push({
        addresses: [addr],
        conditions: { ready, serving, terminating },
        ...(hostname ? { hostname } : {}),
        ...(pod.nodeName ? { nodeName: pod.nodeName } : {}),
        ...(zone ? { zone } : {}),
        targetRef: {
          kind: 'Pod',
          namespace: pod.meta.namespace,
          name: pod.meta.name,
          ...(pod.meta.uid ? { uid: pod.meta.uid } : {}),
        },
        ...(hints ? { hints } : {}),
      });
    }
  }
  const slices: EndpointSlice[] = [];
  const keys = [...groups.keys()].sort();
  for (const gk of keys) {
    const g = groups.get(gk)!;
    for (let i = 0; i < g.endpoints.length; i += MAX_ENDPOINTS_PER_SLICE) {
      const name = `${svc.meta.name}-${shortHash(`${gk}|${i}`)}`;
      slices.push({
        kind: 'EndpointSlice',
        meta: {
          namespace: svc.meta.namespace,
          name,
          uid: '',
          resourceVersion: '',
          labels: { [SERVICE_NAME_LABEL]: svc.meta.name, [MANAGED_BY_LABEL]: MANAGED_BY },
          annotations: {},
        },
        serviceName: svc.meta.name,
        addressType: g.family,
        endpoints: g.endpoints.slice(i, i + MAX_ENDPOINTS_PER_SLICE),
        ports: g.ports,
      });
    }
  }
  // a selector Service with no endpoints has one empty placeholder slice (as the real controller publishes)
  if (slices.length === 0) {
    const family = svc.ipFamilies[0] ?? 'IPv4';
    slices.push({
      kind: 'EndpointSlice',
      meta: {
        namespace: svc.meta.namespace,
        name: `${svc.meta.name}-${shortHash(`${family}|placeholder`)}`,
        uid: '',
        resourceVersion: '',
        labels: { [SERVICE_NAME_LABEL]: svc.meta.name, [MANAGED_BY_LABEL]: MANAGED_BY },
        annotations: {},
      },
      serviceName: svc.meta.name,
      addressType: family,
      endpoints: [],
      ports: [],
    });
  }
  return slices;
}

/**
 * All slices for the directory: the explicit ones as they are, plus computed ones for every selector
 * Service that has no explicit slice of its own.
 */
export function computeEndpointSlices(
  services: Iterable<Service>,
  pods: Iterable<Pod>,
  explicit: Iterable<EndpointSlice>,
  nodes: Iterable<Node> = [],
): EndpointSlice[] {
  const zones = zonesOf(nodes);
  const out = [...explicit];
  const covered = new Set(out.map((s) => `${s.meta.namespace}/${s.serviceName}`));
  const podList = [...pods];
  const byNs = new Map<string, Pod[]>();
  for (const p of podList) {
    let l = byNs.get(p.meta.namespace);
    if (!l) byNs.set(p.meta.namespace, (l = []));
    l.push(p);
  }
  for (const svc of services) {
    if (covered.has(`${svc.meta.namespace}/${svc.meta.name}`)) continue;
    out.push(...endpointSlicesFor(svc, byNs.get(svc.meta.namespace) ?? [], zones));
  }
  return out;
}
