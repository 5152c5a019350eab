// The edge: raw API objects (plain JSON as served by the API server or parsed from YAML) -> the model of
// src/model/types.ts, applying the API's defaults. Pure functions; nothing else in kdp sees a raw object.
// Invalid objects are not thrown: every converter returns a Result and the caller logs the reason and
// skips the object, so one bad object never stops a watch.
import { isIPv4, isIPv6 } from 'node:net';
import type {
  AdminNetworkPolicy,
  AdminPodSelector,
  AdminPolicyPeer,
  AdminPolicyPort,
  AdminPolicyRule,
  BaselineAdminNetworkPolicy,
  IPBlock,
  LabelSelector,
  LabelSelectorRequirement,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyRule,
  PolicyPort,
  ClusterObject,
  ContainerPort,
  Endpoint,
  EndpointHints,
  EndpointPort,
  EndpointSlice,
  IPFamily,
  Ingress,
  IngressBackend,
  IngressClass,
  IngressPath,
  IngressRule,
  IngressTLS,
  Kind,
  Namespace,
  Node,
  NodeAddress,
  ObjectMeta,
  PathType,
  Pod,
  Protocol,
  Service,
  ServicePort,
  ServiceType,
  TargetRef,
  TlsSecret,
  // Gateway API
  Gateway,
  GatewayClass,
  GRPCRoute,
  GrpcRouteMatch,
  GrpcRouteRule,
  GwBackendRef,
  GwFilter,
  GwHeaderModifier,
  GwListener,
  GwParentRef,
  GwPathModifier,
  GwRef,
  GwValueMatch,
  HTTPRoute,
  HttpRouteMatch,
  HttpRouteRule,
  ReferenceGrant,
} from '../model/types.ts';

export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/** A raw API object: whatever JSON.parse or YAML.parse produced. */
export type Raw = Record<string, unknown>;

/** Thrown inside a converter only, turned into `{ ok: false }` at its boundary. */
class Invalid extends Error {}

function fail(reason: string): never {
  throw new Invalid(reason);
}

function guard<T>(fn: () => T): Result<T> {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, reason: err.message };
    return { ok: false, reason: `malformed object: ${err instanceof Error ? err.message : String(err)}` };
  }
}

// ---------------------------------------------------------------- field readers
function obj(v: unknown, what: string): Raw {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) fail(`${what} must be an object`);
  return v as Raw;
}

function arr(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(`${what} must be a list`);
  return v;
}

function str(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') fail(`${what} must be a string`);
  return v;
}

function bool(v: unknown, what: string, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') fail(`${what} must be a boolean`);
  return v;
}

function strMap(v: unknown, what: string): Record<string, string> {
  const o = obj(v, what);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(o)) {
    // YAML authors write `app: 1` or `enabled: true`; the API server would reject these, we accept them as text
    if (typeof val === 'string') out[k] = val;
    else if (typeof val === 'number' || typeof val === 'boolean') out[k] = String(val);
    else fail(`${what}.${k} must be a string`);
  }
  return out;
}

function int(v: unknown, what: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(`${what} must be an integer`);
  return v;
}

function port(v: unknown, what: string, allowZero = false): number {
  const n = int(v, what);
  if (n === undefined) fail(`${what} is required`);
  if (n < (allowZero ? 0 : 1) || n > 65535) fail(`${what} ${n} is out of range 1-65535`);
  return n;
}

function optPort(v: unknown, what: string): number | undefined {
  if (v === undefined || v === null || v === 0) return undefined;
  return port(v, what);
}

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
function protocol(v: unknown, what: string): Protocol {
  const p = str(v, what) ?? 'TCP';
  if (!(PROTOCOLS as readonly string[]).includes(p)) fail(`${what} ${JSON.stringify(p)} is not TCP, UDP or SCTP`);
  return p as Protocol;
}

export function ipFamilyOf(ip: string): IPFamily | undefined {
  if (isIPv4(ip)) return 'IPv4';
  // node's isIPv6 accepts a zone (`fe80::1%eth0`): never a cluster address, and not safe in rule text
  if (isIPv6(ip) && !ip.includes('%')) return 'IPv6';
  return undefined;
}

function ip(v: unknown, what: string): string {
  const s = str(v, what);
  if (s === undefined || ipFamilyOf(s) === undefined) fail(`${what} ${JSON.stringify(v)} is not an IP address`);
  return s;
}

function cidr(v: unknown, what: string): string {
  const s = str(v, what) ?? '';
  const slash = s.indexOf('/');
  const fam = slash > 0 ? ipFamilyOf(s.slice(0, slash)) : undefined;
  const bits = slash > 0 ? Number(s.slice(slash + 1)) : NaN;
  const max = fam === 'IPv4' ? 32 : 128;
  if (fam === undefined || !/^\d{1,3}$/.test(s.slice(slash + 1)) || bits > max)
    fail(`${what} ${JSON.stringify(v)} is not a CIDR`);
  return s;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

// Names that end up in rule text, DNS names or file names are validated as the API server would, so a
// hand-written manifest cannot smuggle separators into what the renderers produce.
function label(v: unknown, what: string): string | undefined {
  const s = str(v, what);
  if (s === undefined || s === '') return undefined;
  if (s.length > 63 || !DNS1123_LABEL.test(s)) fail(`${what} ${JSON.stringify(s)} is not a valid DNS-1123 label`);
  return s;
}

function subdomain(v: unknown, what: string): string | undefined {
  const s = str(v, what);
  if (s === undefined || s === '') return undefined;
  if (s.length > 253 || !DNS1123_SUBDOMAIN.test(s))
    fail(`${what} ${JSON.stringify(s)} is not a valid DNS-1123 subdomain`);
  return s;
}

function svcName(v: unknown, what: string): string | undefined {
  const s = str(v, what);
  if (s === undefined || s === '') return undefined;
  if (s.length > 15 || !IANA_SVC_NAME.test(s) || s.includes('--'))
    fail(`${what} ${JSON.stringify(s)} is not a valid port name (IANA_SVC_NAME)`);
  return s;
}

function meta(raw: Raw, namespaced: boolean): ObjectMeta {
  const m = obj(raw.metadata, 'metadata');
  const name = str(m.name, 'metadata.name');
  if (!name) fail('metadata.name is required');
  if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name))
    fail(`metadata.name ${JSON.stringify(name)} is not a valid DNS-1123 subdomain`);
  let namespace = '';
  if (namespaced) {
    namespace = str(m.namespace, 'metadata.namespace') || 'default';
    if (namespace.length > 63 || !DNS1123_LABEL.test(namespace))
      fail(`metadata.namespace ${JSON.stringify(namespace)} is not a valid DNS-1123 label`);
  }
  const dts = m.deletionTimestamp;
  const out: ObjectMeta = {
    namespace,
    name,
    uid: str(m.uid, 'metadata.uid') ?? '',
    resourceVersion: str(m.resourceVersion, 'metadata.resourceVersion') ?? '',
    labels: strMap(m.labels, 'metadata.labels'),
    annotations: strMap(m.annotations, 'metadata.annotations'),
  };
  if (dts === undefined || dts === null) return out;
  // the client library's typed calls give a Date; JSON and YAML give a string
  const deletionTimestamp = dts instanceof Date ? dts.toISOString() : str(dts, 'metadata.deletionTimestamp');
  return { ...out, deletionTimestamp };
}

// ---------------------------------------------------------------- Service
const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
const DEFAULT_AFFINITY_TIMEOUT = 10800;

export function convertService(raw: Raw): Result<Service> {
  return guard(() => {
    const m = meta(raw, true);
    const spec = obj(raw.spec, 'spec');
    const type = (str(spec.type, 'spec.type') ?? 'ClusterIP') as ServiceType;
    if (!SERVICE_TYPES.includes(type)) fail(`spec.type ${JSON.stringify(type)} is unknown`);

    let clusterIPs: string[] = arr(spec.clusterIPs, 'spec.clusterIPs').map((v, i) => String(v ?? `#${i}`));
    const single = str(spec.clusterIP, 'spec.clusterIP');
    if (clusterIPs.length === 0 && single !== undefined && single !== '') clusterIPs = [single];
    const headless = type !== 'ExternalName' && clusterIPs[0] === 'None';
    if (headless || type === 'ExternalName') clusterIPs = [];
    clusterIPs = clusterIPs.map((c, i) => ip(c, `spec.clusterIPs[${i}]`));
    if (clusterIPs.length === 2 && ipFamilyOf(clusterIPs[0]!) === ipFamilyOf(clusterIPs[1]!))
      fail('spec.clusterIPs holds two addresses of one family');
    if (clusterIPs.length > 2) fail('spec.clusterIPs holds more than two addresses');

    let ipFamilies = arr(spec.ipFamilies, 'spec.ipFamilies').map((f, i) => {
      if (f !== 'IPv4' && f !== 'IPv6') fail(`spec.ipFamilies[${i}] ${JSON.stringify(f)} is not IPv4 or IPv6`);
      return f as IPFamily;
    });
    if (ipFamilies.length === 0) ipFamilies = clusterIPs.map((c) => ipFamilyOf(c)!);
    if (type === 'ExternalName') ipFamilies = [];

    const rawPorts = arr(spec.ports, 'spec.ports');
    const ports: ServicePort[] = rawPorts.map((rp, i) => {
      const p = obj(rp, `spec.ports[${i}]`);
      const w = `spec.ports[${i}]`;
      const name = label(p.name, `${w}.name`) ?? '';
      if (name === '' && rawPorts.length > 1) fail(`${w}.name is required when a Service has several ports`);
      const num = port(p.port, `${w}.port`);
      let targetPort: number | string = num;
      if (typeof p.targetPort === 'string') {
        // "8080" is a number written as text (IntOrString); anything else names a container port
        if (/^\d+$/.test(p.targetPort)) targetPort = port(Number(p.targetPort), `${w}.targetPort`);
        else if (
          p.targetPort.length > 15 ||
          !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p.targetPort) ||
          !/[a-z]/.test(p.targetPort)
        )
          fail(`${w}.targetPort ${JSON.stringify(p.targetPort)} is not a valid port name`);
        else targetPort = p.targetPort;
      } else if (p.targetPort !== undefined && p.targetPort !== null && p.targetPort !== 0) {
        targetPort = port(p.targetPort, `${w}.targetPort`);
      }
      const nodePort = optPort(p.nodePort, `${w}.nodePort`);
      const appProtocol = str(p.appProtocol, `${w}.appProtocol`);
      return {
        name,
        protocol: protocol(p.protocol, `${w}.protocol`),
        port: num,
        targetPort,
        ...(nodePort !== undefined && type !== 'ClusterIP' && type !== 'ExternalName' ? { nodePort } : {}),
        ...(appProtocol ? { appProtocol } : {}),
      };
    });
    const seen = new Set<string>();
    for (const p of ports) {
      const k = `${p.port}/${p.protocol}`;
      if (seen.has(k)) fail(`spec.ports: port ${k} appears twice`);
      seen.add(k);
    }

    const selectorMap = strMap(spec.selector, 'spec.selector');
    const selector = Object.keys(selectorMap).length > 0 && type !== 'ExternalName' ? selectorMap : undefined;
    let externalName: string | undefined;
    if (type === 'ExternalName') {
      externalName = str(spec.externalName, 'spec.externalName');
      if (!externalName) fail('spec.externalName is required for type ExternalName');
      const bare = externalName.replace(/\.$/, '').toLowerCase();
      if (bare.length > 253 || !DNS1123_SUBDOMAIN.test(bare))
        fail(`spec.externalName ${JSON.stringify(externalName)} is not a DNS name`);
    }

    const affinity = str(spec.sessionAffinity, 'spec.sessionAffinity') ?? 'None';
    if (affinity !== 'None' && affinity !== 'ClientIP')
      fail(`spec.sessionAffinity ${JSON.stringify(affinity)} is not None or ClientIP`);
    const cfg = obj(
      obj(spec.sessionAffinityConfig, 'spec.sessionAffinityConfig').clientIP,
      'spec.sessionAffinityConfig.clientIP',
    );
    const timeout =
      int(cfg.timeoutSeconds, 'sessionAffinityConfig.clientIP.timeoutSeconds') ?? DEFAULT_AFFINITY_TIMEOUT;
    if (timeout < 1 || timeout > 86400)
      fail(`sessionAffinityConfig.clientIP.timeoutSeconds ${timeout} is out of range 1-86400`);

    const policy = (v: unknown, what: string): 'Cluster' | 'Local' => {
      // "Global" is the pre-1.22 spelling of Cluster
      const s = str(v, what) ?? 'Cluster';
      if (s === 'Global') return 'Cluster';
      if (s !== 'Cluster' && s !== 'Local') fail(`${what} ${JSON.stringify(s)} is not Cluster or Local`);
      return s;
    };
    const externalTrafficPolicy =
      type === 'NodePort' || type === 'LoadBalancer'
        ? policy(spec.externalTrafficPolicy, 'spec.externalTrafficPolicy')
        : 'Cluster';
    const healthCheckNodePort =
      type === 'LoadBalancer' && externalTrafficPolicy === 'Local'
        ? optPort(spec.healthCheckNodePort, 'spec.healthCheckNodePort')
        : undefined;

    const status = obj(raw.status, 'status');
    const lbIngress = arr(obj(status.loadBalancer, 'status.loadBalancer').ingress, 'status.loadBalancer.ingress');
    const loadBalancerIPs = lbIngress
      .map((e, i) => str(obj(e, `status.loadBalancer.ingress[${i}]`).ip, `status.loadBalancer.ingress[${i}].ip`))
      .filter((s): s is string => !!s)
      .map((s, i) => ip(s, `status.loadBalancer.ingress[${i}].ip`));

    return {
      kind: 'Service',
      meta: m,
      type,
      clusterIPs,
      headless,
      ipFamilies,
      ports,
      ...(selector ? { selector } : {}),
      ...(externalName ? { externalName } : {}),
      externalIPs: arr(spec.externalIPs, 'spec.externalIPs').map((v, i) => ip(v, `spec.externalIPs[${i}]`)),
      loadBalancerIPs,
      loadBalancerSourceRanges: arr(spec.loadBalancerSourceRanges, 'spec.loadBalancerSourceRanges').map((v, i) =>
        cidr(typeof v === 'string' ? v.trim() : v, `spec.loadBalancerSourceRanges[${i}]`),
      ),
      sessionAffinity: affinity,
      sessionAffinityTimeoutSeconds: timeout,
      externalTrafficPolicy,
      internalTrafficPolicy: policy(spec.internalTrafficPolicy, 'spec.internalTrafficPolicy'),
      ...(healthCheckNodePort !== undefined ? { healthCheckNodePort } : {}),
      publishNotReadyAddresses: bool(spec.publishNotReadyAddresses, 'spec.publishNotReadyAddresses', false),
      ...trafficDistribution(spec.trafficDistribution),
    };
  });
}

// ---------------------------------------------------------------- EndpointSlice (and legacy Endpoints)
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

function targetRef(v: unknown, what: string, defaultNs: string): TargetRef | undefined {
  if (v === undefined || v === null) return undefined;
  const r = obj(v, what);
  const uid = str(r.uid, `${what}.uid`);
  return {
    kind: str(r.kind, `${what}.kind`) ?? '',
    namespace: str(r.namespace, `${what}.namespace`) ?? defaultNs,
    name: str(r.name, `${what}.name`) ?? '',
    ...(uid ? { uid } : {}),
  };
}

// topology-aware routing: spec.trafficDistribution kept as written (a value this version does not know is ignored
// by the EndpointSlice controller, as upstream's is, rather than costing the whole Service); endpoints[].hints
function trafficDistribution(v: unknown): { trafficDistribution?: string } {
  const s = str(v, 'spec.trafficDistribution');
  return s ? { trafficDistribution: s } : {};
}

function hints(v: unknown, what: string): EndpointHints | undefined {
  if (v === undefined || v === null) return undefined;
  const h = obj(v, what);
  const names = (field: 'forZones' | 'forNodes', check: (n: unknown, w: string) => string | undefined) =>
    arr(h[field], `${what}.${field}`).map((e, i) => {
      const w = `${what}.${field}[${i}]`;
      const n = check(obj(e, w).name, `${w}.name`);
      if (!n) fail(`${w}.name is required`);
      return n;
    });
  return { forZones: names('forZones', str), forNodes: names('forNodes', subdomain) };
}

function endpointPorts(v: unknown, what: string): EndpointPort[] {
  return arr(v, what).map((rp, i) => {
    const p = obj(rp, `${what}[${i}]`);
    const appProtocol = str(p.appProtocol, `${what}[${i}].appProtocol`);
    return {
      name: label(p.name, `${what}[${i}].name`) ?? '',
      port: port(p.port, `${what}[${i}].port`),
      protocol: protocol(p.protocol, `${what}[${i}].protocol`),
      ...(appProtocol ? { appProtocol } : {}),
    };
  });
}

export function convertEndpointSlice(raw: Raw): Result<EndpointSlice> {
  return guard(() => {
    const m = meta(raw, true);
    const addressType = str(raw.addressType, 'addressType');
    if (addressType !== 'IPv4' && addressType !== 'IPv6' && addressType !== 'FQDN')
      fail(`addressType ${JSON.stringify(addressType)} is not IPv4, IPv6 or FQDN`);
    const serviceName = label(m.labels[SERVICE_NAME_LABEL], `label ${SERVICE_NAME_LABEL}`) ?? '';
    const endpoints: Endpoint[] = arr(raw.endpoints, 'endpoints').map((re, i) => {
      const w = `endpoints[${i}]`;
      const e = obj(re, w);
      const addresses = arr(e.addresses, `${w}.addresses`).map((a, j) => {
        const s = str(a, `${w}.addresses[${j}]`) ?? '';
        const fam = ipFamilyOf(s);
        if (
          addressType === 'FQDN' ? fam !== undefined || !DNS1123_SUBDOMAIN.test(s.toLowerCase()) : fam !== addressType
        )
          fail(`${w}.addresses[${j}] ${JSON.stringify(s)} is not an ${addressType} address`);
        return s;
      });
      if (addresses.length === 0) fail(`${w}.addresses is empty`);
      const c = obj(e.conditions, `${w}.conditions`);
      // EndpointSlice API: nil ready means ready; nil serving takes ready's value; nil terminating is false
      const ready = bool(c.ready, `${w}.conditions.ready`, true);
      const hostname = str(e.hostname, `${w}.hostname`);
      if (hostname !== undefined && hostname !== '' && (hostname.length > 63 || !DNS1123_LABEL.test(hostname)))
        fail(`${w}.hostname ${JSON.stringify(hostname)} is not a DNS-1123 label`);
      const nodeName = subdomain(e.nodeName, `${w}.nodeName`);
      const zone = str(e.zone, `${w}.zone`);
      const ref = targetRef(e.targetRef, `${w}.targetRef`, m.namespace);
      const h = hints(e.hints, `${w}.hints`);
      return {
        addresses,
        conditions: {
          ready,
          serving: bool(c.serving, `${w}.conditions.serving`, ready),
          terminating: bool(c.terminating, `${w}.conditions.terminating`, false),
        },
        ...(hostname ? { hostname } : {}),
        ...(nodeName ? { nodeName } : {}),
        ...(zone ? { zone } : {}),
        ...(ref ? { targetRef: ref } : {}),
        ...(h ? { hints: h } : {}),
      };
    });
    return {
      kind: 'EndpointSlice',
      meta: m,
      serviceName,
      addressType,
      endpoints,
      ports: endpointPorts(raw.ports, 'ports'),
    };
  });
}

/**
 * Legacy v1 Endpoints -> EndpointSlices, as the EndpointSlice mirroring controller does: one slice per subset
 * and address family, named `<name>-legacy-<subset>-<family>`, labelled with the service name. Addresses
 * become ready endpoints, notReadyAddresses not-ready ones.
 */
export function convertEndpoints(raw: Raw): Result<EndpointSlice[]> {
  return guard(() => {
    const m = meta(raw, true);
    const slices: EndpointSlice[] = [];
    arr(raw.subsets, 'subsets').forEach((rs, si) => {
      const w = `subsets[${si}]`;
      const s = obj(rs, w);
      const ports = endpointPorts(s.ports, `${w}.ports`);
      const byFamily: Record<IPFamily, Endpoint[]> = { IPv4: [], IPv6: [] };
      for (const [field, ready] of [
        ['addresses', true],
        ['notReadyAddresses', false],
      ] as const) {
        arr(s[field], `${w}.${field}`).forEach((ra, ai) => {
          const aw = `${w}.${field}[${ai}]`;
          const a = obj(ra, aw);
          const addr = ip(a.ip, `${aw}.ip`);
          const hostname = label(a.hostname, `${aw}.hostname`);
          const nodeName = subdomain(a.nodeName, `${aw}.nodeName`);
          const ref = targetRef(a.targetRef, `${aw}.targetRef`, m.namespace);
          byFamily[ipFamilyOf(addr)!].push({
            addresses: [addr],
            conditions: { ready, serving: ready, terminating: false },
            ...(hostname ? { hostname } : {}),
            ...(nodeName ? { nodeName } : {}),
            ...(ref ? { targetRef: ref } : {}),
          });
        });
      }
      for (const fam of ['IPv4', 'IPv6'] as const) {
        if (byFamily[fam].length === 0) continue;
        const name = `${m.name}-legacy-${si}-${fam === 'IPv4' ? 'v4' : 'v6'}`;
        slices.push({
          kind: 'EndpointSlice',
          meta: { ...m, name, labels: { ...m.labels, [SERVICE_NAME_LABEL]: m.name } },
          serviceName: m.name,
          addressType: fam,
          endpoints: byFamily[fam],
          ports,
        });
      }
    });
    return slices;
  });
}

// ---------------------------------------------------------------- Pod
const PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'] as const;

export function convertPod(raw: Raw): Result<Pod> {
  return guard(() => {
    const m = meta(raw, true);
    const spec = obj(raw.spec, 'spec');
    const status = obj(raw.status, 'status');
    const containerPorts: ContainerPort[] = [];
    for (const field of ['initContainers', 'containers'] as const) {
      arr(spec[field], `spec.${field}`).forEach((rc, ci) => {
        const c = obj(rc, `spec.${field}[${ci}]`);
        // init containers contribute ports only when they are sidecars (restartPolicy Always)
        if (field === 'initContainers' && c.restartPolicy !== 'Always') return;
        arr(c.ports, `spec.${field}[${ci}].ports`).forEach((rp, pi) => {
          const w = `spec.${field}[${ci}].ports[${pi}]`;
          const p = obj(rp, w);
          const name = svcName(p.name, `${w}.name`);
          const hostPort = optPort(p.hostPort, `${w}.hostPort`);
          containerPorts.push({
            ...(name ? { name } : {}),
            containerPort: port(p.containerPort, `${w}.containerPort`),
            protocol: protocol(p.protocol, `${w}.protocol`),
            ...(hostPort !== undefined ? { hostPort } : {}),
          });
        });
      });
    }
    const phase = (str(status.phase, 'status.phase') ?? 'Pending') as Pod['phase'];
    if (!PHASES.includes(phase)) fail(`status.phase ${JSON.stringify(phase)} is unknown`);
    let podIPs = arr(status.podIPs, 'status.podIPs').map((e, i) =>
      ip(obj(e, `status.podIPs[${i}]`).ip, `status.podIPs[${i}].ip`),
    );
    const single = str(status.podIP, 'status.podIP');
    if (podIPs.length === 0 && single) podIPs = [ip(single, 'status.podIP')];
    const hostIP = str(status.hostIP, 'status.hostIP');
    const ready = arr(status.conditions, 'status.conditions').some((rc) => {
      const c = obj(rc, 'status.conditions[]');
      return c.type === 'Ready' && c.status === 'True';
    });
    const nodeName = subdomain(spec.nodeName, 'spec.nodeName');
    const hostname = label(spec.hostname, 'spec.hostname');
    const podSubdomain = label(spec.subdomain, 'spec.subdomain');
    return {
      kind: 'Pod',
      meta: m,
      ...(nodeName ? { nodeName } : {}),
      hostNetwork: bool(spec.hostNetwork, 'spec.hostNetwork', false),
      ...(hostname ? { hostname } : {}),
      ...(podSubdomain ? { subdomain: podSubdomain } : {}),
      containerPorts,
      phase,
      podIPs,
      ...(hostIP ? { hostIP: ip(hostIP, 'status.hostIP') } : {}),
      ready,
    };
  });
}

// ---------------------------------------------------------------- Node, Namespace
const NODE_ADDRESS_TYPES: readonly string[] = ['InternalIP', 'ExternalIP', 'Hostname', 'InternalDNS', 'ExternalDNS'];

export function convertNode(raw: Raw): Result<Node> {
  return guard(() => {
    const m = meta(raw, false);
    const spec = obj(raw.spec, 'spec');
    const status = obj(raw.status, 'status');
    let podCIDRs = arr(spec.podCIDRs, 'spec.podCIDRs').map((c, i) => cidr(c, `spec.podCIDRs[${i}]`));
    const single = str(spec.podCIDR, 'spec.podCIDR');
    if (podCIDRs.length === 0 && single) podCIDRs = [cidr(single, 'spec.podCIDR')];
    const addresses: NodeAddress[] = arr(status.addresses, 'status.addresses').map((ra, i) => {
      const a = obj(ra, `status.addresses[${i}]`);
      const type = str(a.type, `status.addresses[${i}].type`) ?? '';
      if (!NODE_ADDRESS_TYPES.includes(type))
        fail(`status.addresses[${i}].type ${JSON.stringify(type)} is not one of ${NODE_ADDRESS_TYPES.join(', ')}`);
      const address = str(a.address, `status.addresses[${i}].address`) ?? '';
      if ((type === 'InternalIP' || type === 'ExternalIP') && ipFamilyOf(address) === undefined)
        fail(`status.addresses[${i}] ${type} ${JSON.stringify(address)} is not an IP address`);
      if (
        type !== 'InternalIP' &&
        type !== 'ExternalIP' &&
        (address.length > 253 || !DNS1123_SUBDOMAIN.test(address.toLowerCase()))
      )
        fail(`status.addresses[${i}] ${type} ${JSON.stringify(address)} is not a DNS name`);
      return { type, address };
    });
    const ready = arr(status.conditions, 'status.conditions').some((rc) => {
      const c = obj(rc, 'status.conditions[]');
      return c.type === 'Ready' && c.status === 'True';
    });
    return { kind: 'Node', meta: m, podCIDRs, addresses, ready };
  });
}

const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

export function convertNamespace(raw: Raw): Result<Namespace> {
  return guard(() => {
    const m = meta(raw, false);
    if (m.name.length > 63 || !DNS1123_LABEL.test(m.name))
      fail(`metadata.name ${JSON.stringify(m.name)} is not a valid DNS-1123 label`);
    // the API server sets this label on every Namespace (NamespaceDefaultLabelName); a manifests directory may
    // lack it, and selectors by namespace name (NetworkPolicy, Gateway allowedRoutes) rely on it
    return { kind: 'Namespace', meta: { ...m, labels: { ...m.labels, [NAMESPACE_NAME_LABEL]: m.name } } };
  });
}

// ---------------------------------------------------------------- Ingress, IngressClass, Secret
const PATH_TYPES: readonly PathType[] = ['Exact', 'Prefix', 'ImplementationSpecific'];
const INGRESS_HOST_RE = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const validHost = (h: string): boolean =>
  h.length <= 253 && INGRESS_HOST_RE.test(h) && h.split('.').every((l) => l.length <= 63);

function ingressBackend(v: unknown, what: string): IngressBackend {
  const b = obj(v, what);
  if (b.service !== undefined && b.service !== null) {
    const s = obj(b.service, `${what}.service`);
    const name = label(s.name, `${what}.service.name`);
    if (!name) fail(`${what}.service.name is required`);
    const p = obj(s.port, `${what}.service.port`);
    const num = p.number === undefined || p.number === null ? undefined : port(p.number, `${what}.service.port.number`);
    const pname = label(p.name, `${what}.service.port.name`);
    if ((num === undefined) === (pname === undefined)) fail(`${what}.service.port needs exactly one of number or name`);
    return { service: { name, port: num !== undefined ? { number: num } : { name: pname! } } };
  }
  if (b.resource !== undefined && b.resource !== null) {
    const r = obj(b.resource, `${what}.resource`);
    const apiGroup = str(r.apiGroup, `${what}.resource.apiGroup`);
    const kind = str(r.kind, `${what}.resource.kind`);
    const name = str(r.name, `${what}.resource.name`);
    if (!kind || !name) fail(`${what}.resource needs kind and name`);
    return { resource: { ...(apiGroup ? { apiGroup } : {}), kind, name } };
  }
  fail(`${what} needs a service or a resource`);
}

export function convertIngress(raw: Raw): Result<Ingress> {
  return guard(() => {
    const m = meta(raw, true);
    const spec = obj(raw.spec, 'spec');
    // only the field: the deprecated kubernetes.io/ingress.class annotation stays in meta.annotations, where the
    // ingress compares it with its --ingress-class (it names a class, not an IngressClass object)
    const ingressClassName = subdomain(spec.ingressClassName, 'spec.ingressClassName');
    const rules: IngressRule[] = arr(spec.rules, 'spec.rules').map((rr, i) => {
      const w = `spec.rules[${i}]`;
      const r = obj(rr, w);
      const host = str(r.host, `${w}.host`) || undefined;
      if (host !== undefined && !validHost(host)) fail(`${w}.host ${JSON.stringify(host)} is not a DNS name`);
      const paths: IngressPath[] = arr(obj(r.http, `${w}.http`).paths, `${w}.http.paths`).map((rp, j) => {
        const pw = `${w}.http.paths[${j}]`;
        const p = obj(rp, pw);
        const pathType = str(p.pathType, `${pw}.pathType`);
        if (pathType === undefined) fail(`${pw}.pathType is required`);
        if (!PATH_TYPES.includes(pathType as PathType)) fail(`${pw}.pathType ${JSON.stringify(pathType)} is unknown`);
        const path = str(p.path, `${pw}.path`) ?? (pathType === 'ImplementationSpecific' ? '/' : '');
        if (!path.startsWith('/')) fail(`${pw}.path ${JSON.stringify(path)} must be absolute`);
        return { path, pathType: pathType as PathType, backend: ingressBackend(p.backend, `${pw}.backend`) };
      });
      return { ...(host ? { host } : {}), paths };
    });
    const tls: IngressTLS[] = arr(spec.tls, 'spec.tls').map((rt, i) => {
      const t = obj(rt, `spec.tls[${i}]`);
      const secretName = subdomain(t.secretName, `spec.tls[${i}].secretName`);
      const hosts = arr(t.hosts, `spec.tls[${i}].hosts`).map((h, j) => {
        const s = str(h, `spec.tls[${i}].hosts[${j}]`) ?? '';
        if (!validHost(s)) fail(`spec.tls[${i}].hosts[${j}] ${JSON.stringify(s)} is not a DNS name`);
        return s;
      });
      return { hosts, ...(secretName ? { secretName } : {}) };
    });
    const db = spec.defaultBackend ?? spec.backend;
    const lb = arr(
      obj(obj(raw.status, 'status').loadBalancer, 'status.loadBalancer').ingress,
      'status.loadBalancer.ingress',
    ).map((re, i) => {
      const e = obj(re, `status.loadBalancer.ingress[${i}]`);
      const ipv = str(e.ip, `status.loadBalancer.ingress[${i}].ip`);
      const hostname = str(e.hostname, `status.loadBalancer.ingress[${i}].hostname`);
      return {
        ...(ipv ? { ip: ip(ipv, `status.loadBalancer.ingress[${i}].ip`) } : {}),
        ...(hostname ? { hostname } : {}),
      };
    });
    return {
      kind: 'Ingress',
      meta: m,
      ...(ingressClassName ? { ingressClassName } : {}),
      ...(db !== undefined && db !== null ? { defaultBackend: ingressBackend(db, 'spec.defaultBackend') } : {}),
      rules,
      tls,
      loadBalancer: lb,
    };
  });
}

export function convertIngressClass(raw: Raw): Result<IngressClass> {
  return guard(() => {
    const m = meta(raw, false);
    const controller = str(obj(raw.spec, 'spec').controller, 'spec.controller');
    if (!controller) fail('spec.controller is required');
    return {
      kind: 'IngressClass',
      meta: m,
      controller,
      isDefault: m.annotations['ingressclass.kubernetes.io/is-default-class'] === 'true',
    };
  });
}

function secretValue(raw: Raw, key: string): string {
  const data = obj(raw.data, 'data');
  const stringData = obj(raw.stringData, 'stringData');
  const sd = str(stringData[key], `stringData.${key}`);
  if (sd) return sd;
  const d = str(data[key], `data.${key}`);
  if (!d) fail(`data.${key} is required in a kubernetes.io/tls Secret`);
  if (!/^[A-Za-z0-9+/\r\n]*={0,2}\s*$/.test(d)) fail(`data.${key} is not base64`);
  return Buffer.from(d, 'base64').toString('utf8');
}

export const TLS_SECRET_TYPE = 'kubernetes.io/tls';

export function convertSecret(raw: Raw): Result<TlsSecret> {
  return guard(() => {
    const m = meta(raw, true);
    if (raw.type !== TLS_SECRET_TYPE)
      fail(`Secret type ${JSON.stringify(raw.type ?? 'Opaque')} is not ${TLS_SECRET_TYPE}`);
    const certPem = secretValue(raw, 'tls.crt');
    const keyPem = secretValue(raw, 'tls.key');
    if (!certPem.includes('-----BEGIN CERTIFICATE-----')) fail('data.tls.crt holds no PEM certificate');
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) fail('data.tls.key holds no PEM private key');
    return { kind: 'Secret', meta: m, certPem, keyPem };
  });
}

// ---------------------------------------------------------------- NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy
// The API server's validation (networking/validation.go, the v1alpha1 CRD's schema and CEL rules): an object it
// would reject is skipped with the reason, so it neither opens nor blocks anything.
const SELECTOR_OPS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

function selector(v: unknown, what: string): LabelSelector {
  const o = obj(v, what);
  const matchExpressions: LabelSelectorRequirement[] = arr(o.matchExpressions, `${what}.matchExpressions`).map(
    (re, i) => {
      const w = `${what}.matchExpressions[${i}]`;
      const e = obj(re, w);
      const key = str(e.key, `${w}.key`);
      if (!key) fail(`${w}.key is required`);
      const op = str(e.operator, `${w}.operator`) as LabelSelectorRequirement['operator'];
      if (!SELECTOR_OPS.includes(op))
        fail(`${w}.operator ${JSON.stringify(op)} is not In, NotIn, Exists or DoesNotExist`);
      const values = arr(e.values, `${w}.values`).map((x, j) => {
        if (typeof x === 'number' || typeof x === 'boolean') return String(x);
        return str(x, `${w}.values[${j}]`) ?? '';
      });
      if ((op === 'In' || op === 'NotIn') && values.length === 0) fail(`${w}.values must be non-empty for ${op}`);
      if ((op === 'Exists' || op === 'DoesNotExist') && values.length > 0) fail(`${w}.values must be empty for ${op}`);
      return { key, operator: op, values };
    },
  );
  return { matchLabels: strMap(o.matchLabels, `${what}.matchLabels`), matchExpressions };
}

/** bits of a valid CIDR's address as a bigint, with its prefix length and family width */
function cidrBits(c: string): { value: bigint; prefix: number; width: number } {
  const [addr, len] = c.split('/') as [string, string];
  const width = ipFamilyOf(addr) === 'IPv4' ? 32 : 128;
  let value = 0n;
  if (width === 32) for (const o of addr.split('.')) value = (value << 8n) | BigInt(Number(o));
  else {
    const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
    const groups = (g: string | undefined): string[] => (g ? g.split(':') : []);
    const h = groups(head);
    const t = groups(tail);
    const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    for (const g of all) value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  return { value, prefix: Number(len), width };
}

function ipBlock(v: unknown, what: string): IPBlock {
  const b = obj(v, what);
  const c = cidr(b.cidr, `${what}.cidr`);
  const outer = cidrBits(c);
  const except = arr(b.except, `${what}.except`).map((e, i) => {
    const x = cidr(e, `${what}.except[${i}]`);
    const inner = cidrBits(x);
    const shift = BigInt(outer.width - outer.prefix);
    // strictly inside: same family, longer prefix, same leading bits (the API server's rule)
    if (inner.width !== outer.width || inner.prefix <= outer.prefix || inner.value >> shift !== outer.value >> shift)
      fail(`${what}.except[${i}] ${x} is not strictly within ${c}`);
    return x;
  });
  return { cidr: c, except };
}

function policyPort(v: unknown, what: string): PolicyPort {
  const p = obj(v, what);
  const proto = protocol(p.protocol, `${what}.protocol`);
  let port: number | string | undefined;
  if (typeof p.port === 'string' && !/^\d+$/.test(p.port)) port = svcName(p.port, `${what}.port`);
  else if (p.port !== undefined && p.port !== null) port = port_(Number(p.port), `${what}.port`);
  const endPort = p.endPort === undefined || p.endPort === null ? undefined : port_(p.endPort, `${what}.endPort`);
  if (endPort !== undefined) {
    if (typeof port !== 'number') fail(`${what}.endPort needs a numeric port`);
    if (endPort < port) fail(`${what}.endPort ${endPort} is below port ${port}`);
  }
  return { protocol: proto, ...(port !== undefined ? { port } : {}), ...(endPort !== undefined ? { endPort } : {}) };
}
const port_ = port;

function policyPeer(v: unknown, what: string): NetworkPolicyPeer {
  const p = obj(v, what);
  const has = (k: string): boolean => p[k] !== undefined && p[k] !== null;
  if (has('ipBlock')) {
    if (has('podSelector') || has('namespaceSelector'))
      fail(`${what}: ipBlock cannot be combined with podSelector or namespaceSelector`);
    return { ipBlock: ipBlock(p.ipBlock, `${what}.ipBlock`) };
  }
  if (!has('podSelector') && !has('namespaceSelector')) fail(`${what} needs podSelector, namespaceSelector or ipBlock`);
  return {
    ...(has('podSelector') ? { podSelector: selector(p.podSelector, `${what}.podSelector`) } : {}),
    ...(has('namespaceSelector')
      ? { namespaceSelector: selector(p.namespaceSelector, `${what}.namespaceSelector`) }
      : {}),
  };
}

function policyRule(v: unknown, what: string, peersField: 'from' | 'to'): NetworkPolicyRule {
  const r = obj(v, what);
  return {
    peers: arr(r[peersField], `${what}.${peersField}`).map((x, i) => policyPeer(x, `${what}.${peersField}[${i}]`)),
    ports: arr(r.ports, `${what}.ports`).map((x, i) => policyPort(x, `${what}.ports[${i}]`)),
  };
}

export function convertNetworkPolicy(raw: Raw): Result<NetworkPolicy> {
  return guard(() => {
    const m = meta(raw, true);
    const spec = obj(raw.spec, 'spec');
    const ingress = arr(spec.ingress, 'spec.ingress').map((r, i) => policyRule(r, `spec.ingress[${i}]`, 'from'));
    const egress = arr(spec.egress, 'spec.egress').map((r, i) => policyRule(r, `spec.egress[${i}]`, 'to'));
    let policyTypes = arr(spec.policyTypes, 'spec.policyTypes').map((t, i) => {
      if (t !== 'Ingress' && t !== 'Egress')
        fail(`spec.policyTypes[${i}] ${JSON.stringify(t)} is not Ingress or Egress`);
      return t as 'Ingress' | 'Egress';
    });
    // the API's default: Ingress always, Egress when the policy has egress rules
    if (policyTypes.length === 0) policyTypes = egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
    return {
      kind: 'NetworkPolicy',
      meta: m,
      podSelector: selector(spec.podSelector, 'spec.podSelector'),
      policyTypes: [...new Set(policyTypes)],
      ingress,
      egress,
    };
  });
}

function adminPods(v: unknown, what: string): AdminPodSelector {
  const p = obj(v, what);
  return {
    namespaceSelector: selector(p.namespaceSelector, `${what}.namespaceSelector`),
    podSelector: selector(p.podSelector, `${what}.podSelector`),
  };
}

/** `namespaces: selector` or `pods: {namespaceSelector, podSelector}` (exactly one) */
function adminSubject(v: unknown, what: string): AdminPodSelector {
  const s = obj(v, what);
  const ns = s.namespaces !== undefined && s.namespaces !== null;
  const pods = s.pods !== undefined && s.pods !== null;
  if (ns === pods) fail(`${what} needs exactly one of namespaces or pods`);
  return ns ? { namespaceSelector: selector(s.namespaces, `${what}.namespaces`) } : adminPods(s.pods, `${what}.pods`);
}

function adminPeer(v: unknown, what: string, dir: 'ingress' | 'egress'): AdminPolicyPeer {
  const p = obj(v, what);
  const set = ['namespaces', 'pods', 'nodes', 'networks'].filter((k) => p[k] !== undefined && p[k] !== null);
  if (set.length !== 1)
    fail(`${what} needs exactly one of namespaces, pods${dir === 'egress' ? ', nodes, networks' : ''}`);
  const k = set[0]!;
  if (dir === 'ingress' && (k === 'nodes' || k === 'networks')) fail(`${what}.${k} is only allowed in egress rules`);
  if (k === 'namespaces') {
    // v0.1.0-0.1.4 of the API wrapped the selector: `namespaces: {namespaceSelector: ...}` (read as such, never as
    // an empty selector, which would select every namespace); its sameLabels/notSameLabels are gone upstream
    const ns = obj(p.namespaces, `${what}.namespaces`);
    if (ns.sameLabels !== undefined || ns.notSameLabels !== undefined)
      fail(`${what}.namespaces: sameLabels / notSameLabels are not supported (removed from the API)`);
    const sel = ns.namespaceSelector !== undefined ? ns.namespaceSelector : p.namespaces;
    return { pods: { namespaceSelector: selector(sel, `${what}.namespaces`) } };
  }
  if (k === 'pods') return { pods: adminPods(p.pods, `${what}.pods`) };
  if (k === 'nodes') return { nodes: selector(p.nodes, `${what}.nodes`) };
  const nets = arr(p.networks, `${what}.networks`);
  if (nets.length < 1 || nets.length > 25) fail(`${what}.networks must hold 1-25 CIDRs`);
  return { networks: nets.map((c, i) => cidr(c, `${what}.networks[${i}]`)) };
}

function adminPort(v: unknown, what: string): AdminPolicyPort {
  const p = obj(v, what);
  const set = ['portNumber', 'namedPort', 'portRange'].filter((k) => p[k] !== undefined && p[k] !== null);
  if (set.length !== 1) fail(`${what} needs exactly one of portNumber, namedPort, portRange`);
  if (set[0] === 'namedPort') {
    const name = svcName(p.namedPort, `${what}.namedPort`);
    if (!name) fail(`${what}.namedPort is empty`);
    return { port: name };
  }
  if (set[0] === 'portNumber') {
    const n = obj(p.portNumber, `${what}.portNumber`);
    return {
      protocol: protocol(n.protocol, `${what}.portNumber.protocol`),
      port: port(n.port, `${what}.portNumber.port`),
    };
  }
  const r = obj(p.portRange, `${what}.portRange`);
  const start = port(r.start, `${what}.portRange.start`);
  const end = port(r.end, `${what}.portRange.end`);
  if (start >= end) fail(`${what}.portRange: start ${start} must be less than end ${end}`);
  return { protocol: protocol(r.protocol, `${what}.portRange.protocol`), port: start, endPort: end };
}

function adminRules(v: unknown, what: string, dir: 'ingress' | 'egress', baseline: boolean): AdminPolicyRule[] {
  const rules = arr(v, what);
  if (rules.length > 100) fail(`${what} holds more than 100 rules`);
  const peersField = dir === 'ingress' ? 'from' : 'to';
  return rules.map((rr, i) => {
    const w = `${what}[${i}]`;
    const r = obj(rr, w);
    const name = str(r.name, `${w}.name`) ?? '';
    if (name.length > 100) fail(`${w}.name is longer than 100 characters`);
    const action = str(r.action, `${w}.action`);
    const actions = baseline ? ['Allow', 'Deny'] : ['Allow', 'Deny', 'Pass'];
    if (!action || !actions.includes(action))
      fail(`${w}.action ${JSON.stringify(action)} is not ${actions.join(', ')}`);
    const peers = arr(r[peersField], `${w}.${peersField}`);
    if (peers.length < 1 || peers.length > 100) fail(`${w}.${peersField} must hold 1-100 peers`);
    const hasPorts = r.ports !== undefined && r.ports !== null;
    const ports = hasPorts ? arr(r.ports, `${w}.ports`).map((x, j) => adminPort(x, `${w}.ports[${j}]`)) : undefined;
    if (ports !== undefined && (ports.length < 1 || ports.length > 100)) fail(`${w}.ports must hold 1-100 ports`);
    return {
      name: name || `${dir}[${i}]`,
      action: action as AdminPolicyRule['action'],
      peers: peers.map((x, j) => adminPeer(x, `${w}.${peersField}[${j}]`, dir)),
      ...(ports !== undefined ? { ports } : {}),
    };
  });
}

export function convertAdminNetworkPolicy(raw: Raw): Result<AdminNetworkPolicy> {
  return guard(() => {
    const m = meta(raw, false);
    const spec = obj(raw.spec, 'spec');
    const priority = int(spec.priority, 'spec.priority');
    if (priority === undefined) fail('spec.priority is required');
    if (priority < 0 || priority > 1000) fail(`spec.priority ${priority} is out of range 0-1000`);
    return {
      kind: 'AdminNetworkPolicy',
      meta: m,
      priority,
      subject: adminSubject(spec.subject, 'spec.subject'),
      ingress: adminRules(spec.ingress, 'spec.ingress', 'ingress', false),
      egress: adminRules(spec.egress, 'spec.egress', 'egress', false),
    };
  });
}

export function convertBaselineAdminNetworkPolicy(raw: Raw): Result<BaselineAdminNetworkPolicy> {
  return guard(() => {
    const m = meta(raw, false);
    if (m.name !== 'default')
      fail(`metadata.name ${JSON.stringify(m.name)}: the BaselineAdminNetworkPolicy must be named default`);
    const spec = obj(raw.spec, 'spec');
    return {
      kind: 'BaselineAdminNetworkPolicy',
      meta: m,
      subject: adminSubject(spec.subject, 'spec.subject'),
      ingress: adminRules(spec.ingress, 'spec.ingress', 'ingress', true),
      egress: adminRules(spec.egress, 'spec.egress', 'egress', true),
    };
  });
}

// ---------------------------------------------------------------- Gateway API (gateway.networking.k8s.io)
// What the CRD schema rejects (missing names, bad ports, duplicate listener names) fails here; what the spec
// answers with a status condition (unknown filter or kind, bad regex, missing reference) is kept as written for
// ingress/gateway/compile.ts to judge.
const GW_HOST_RE = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function generation(raw: Raw): number {
  return int(obj(raw.metadata, 'metadata').generation, 'metadata.generation') ?? 0;
}

function gwHostname(v: unknown, what: string): string | undefined {
  const h = str(v, what);
  if (h === undefined || h === '') return undefined;
  if (h.length > 253 || !GW_HOST_RE.test(h)) fail(`${what} ${JSON.stringify(h)} is not a valid hostname`);
  return h;
}

function gwRef(v: unknown, what: string, dfltGroup: string, dfltKind: string): GwRef {
  const r = obj(v, what);
  const name = str(r.name, `${what}.name`);
  if (!name) fail(`${what}.name is required`);
  const namespace = label(r.namespace, `${what}.namespace`);
  return {
    group: str(r.group, `${what}.group`) ?? dfltGroup,
    kind: str(r.kind, `${what}.kind`) ?? dfltKind,
    name,
    ...(namespace ? { namespace } : {}),
  };
}

export function convertGatewayClass(raw: Raw): Result<GatewayClass> {
  return guard(() => {
    const m = meta(raw, false);
    const controllerName = str(obj(raw.spec, 'spec').controllerName, 'spec.controllerName');
    if (!controllerName) fail('spec.controllerName is required');
    return { kind: 'GatewayClass', meta: m, generation: generation(raw), controllerName };
  });
}

export function convertGateway(raw: Raw): Result<Gateway> {
  return guard(() => {
    const m = meta(raw, true);
    const spec = obj(raw.spec, 'spec');
    const gatewayClassName = str(spec.gatewayClassName, 'spec.gatewayClassName');
    if (!gatewayClassName) fail('spec.gatewayClassName is required');
    const names = new Set<string>();
    const listeners: GwListener[] = arr(spec.listeners, 'spec.listeners').map((rl, i) => {
      const w = `spec.listeners[${i}]`;
      const l = obj(rl, w);
      const name = str(l.name, `${w}.name`);
      if (!name) fail(`${w}.name is required`);
      if (names.has(name)) fail(`${w}.name ${JSON.stringify(name)} is not unique`);
      names.add(name);
      const protocol = str(l.protocol, `${w}.protocol`);
      if (!protocol) fail(`${w}.protocol is required`);
      const hostname = gwHostname(l.hostname, `${w}.hostname`);
      let tls: GwListener['tls'];
      if (l.tls !== undefined && l.tls !== null) {
        const t = obj(l.tls, `${w}.tls`);
        const mode = str(t.mode, `${w}.tls.mode`) ?? 'Terminate';
        if (mode !== 'Terminate' && mode !== 'Passthrough') fail(`${w}.tls.mode ${JSON.stringify(mode)} is unknown`);
        const certificateRefs = arr(t.certificateRefs, `${w}.tls.certificateRefs`).map((r, j) =>
          gwRef(r, `${w}.tls.certificateRefs[${j}]`, '', 'Secret'),
        );
        tls = { mode, certificateRefs };
      }
      const ar = obj(l.allowedRoutes, `${w}.allowedRoutes`);
      const ns = obj(ar.namespaces, `${w}.allowedRoutes.namespaces`);
      const from = str(ns.from, `${w}.allowedRoutes.namespaces.from`) ?? 'Same';
      if (from !== 'Same' && from !== 'All' && from !== 'Selector')
        fail(`${w}.allowedRoutes.namespaces.from ${JSON.stringify(from)} is not Same, All or Selector`);
      const kinds = arr(ar.kinds, `${w}.allowedRoutes.kinds`).map((rk, j) => {
        const k = obj(rk, `${w}.allowedRoutes.kinds[${j}]`);
        const kind = str(k.kind, `${w}.allowedRoutes.kinds[${j}].kind`);
        if (!kind) fail(`${w}.allowedRoutes.kinds[${j}].kind is required`);
        return { group: str(k.group, `${w}.allowedRoutes.kinds[${j}].group`) ?? GATEWAY_API_GROUP, kind };
      });
      return {
        name,
        ...(hostname ? { hostname } : {}),
        port: port(l.port, `${w}.port`),
        protocol,
        ...(tls ? { tls } : {}),
        allowedRoutes: {
          namespacesFrom: from,
          ...(ns.selector !== undefined && ns.selector !== null
            ? { selector: selector(ns.selector, `${w}.allowedRoutes.namespaces.selector`) }
            : {}),
          kinds,
        },
      };
    });
    if (listeners.length === 0) fail('spec.listeners needs at least one listener');
    const addresses = arr(spec.addresses, 'spec.addresses').map((ra, i) => {
      const a = obj(ra, `spec.addresses[${i}]`);
      const type = str(a.type, `spec.addresses[${i}].type`) ?? 'IPAddress';
      const value = str(a.value, `spec.addresses[${i}].value`) ?? '';
      // an IPAddress is handed to the data plane: validated here; other types are judged by the compiler
      return { type, value: type === 'IPAddress' ? ip(value, `spec.addresses[${i}].value`) : value };
    });
    const infra =
      spec.infrastructure === undefined || spec.infrastructure === null
        ? {}
        : obj(spec.infrastructure, 'spec.infrastructure');
    const pr =
      infra.parametersRef === undefined || infra.parametersRef === null
        ? undefined
        : obj(infra.parametersRef, 'spec.infrastructure.parametersRef');
    const parametersRef = pr && {
      group: str(pr.group, 'spec.infrastructure.parametersRef.group') ?? '',
      kind: str(pr.kind, 'spec.infrastructure.parametersRef.kind') ?? '',
      name: str(pr.name, 'spec.infrastructure.parametersRef.name') ?? '',
    };
    return {
      kind: 'Gateway',
      meta: m,
      generation: generation(raw),
      gatewayClassName,
      listeners,
      addresses,
      ...(parametersRef ? { parametersRef } : {}),
    };
  });
}

function parentRefs(v: unknown): GwParentRef[] {
  return arr(v, 'spec.parentRefs').map((rp, i) => {
    const w = `spec.parentRefs[${i}]`;
    const p = obj(rp, w);
    const sectionName = str(p.sectionName, `${w}.sectionName`) || undefined;
    const pp = p.port === undefined || p.port === null ? undefined : port(p.port, `${w}.port`);
    return {
      ...gwRef(p, w, GATEWAY_API_GROUP, 'Gateway'),
      ...(sectionName ? { sectionName } : {}),
      ...(pp !== undefined ? { port: pp } : {}),
    };
  });
}

function hostnames(v: unknown): string[] {
  return arr(v, 'spec.hostnames').map((h, i) => gwHostname(h, `spec.hostnames[${i}]`) ?? '');
}

function headerModifier(v: unknown, what: string): GwHeaderModifier {
  const h = obj(v, what);
  const pairs = (x: unknown, w: string): { name: string; value: string }[] =>
    arr(x, w).map((re, i) => {
      const e = obj(re, `${w}[${i}]`);
      const name = str(e.name, `${w}[${i}].name`);
      if (!name) fail(`${w}[${i}].name is required`);
      return { name, value: str(e.value, `${w}[${i}].value`) ?? '' };
    });
  return {
    set: pairs(h.set, `${what}.set`),
    add: pairs(h.add, `${what}.add`),
    remove: arr(h.remove, `${what}.remove`).map((x, i) => str(x, `${what}.remove[${i}]`) ?? ''),
  };
}

function pathModifier(v: unknown, what: string): GwPathModifier | undefined {
  if (v === undefined || v === null) return undefined;
  const p = obj(v, what);
  const type = str(p.type, `${what}.type`);
  if (!type) fail(`${what}.type is required`);
  const full = str(p.replaceFullPath, `${what}.replaceFullPath`);
  const prefix = str(p.replacePrefixMatch, `${what}.replacePrefixMatch`);
  return {
    type,
    ...(full !== undefined ? { replaceFullPath: full } : {}),
    ...(prefix !== undefined ? { replacePrefixMatch: prefix } : {}),
  };
}

function filters(v: unknown, what: string): GwFilter[] {
  return arr(v, what).map((rf, i) => {
    const w = `${what}[${i}]`;
    const f = obj(rf, w);
    const type = str(f.type, `${w}.type`);
    if (!type) fail(`${w}.type is required`);
    const present = (x: unknown): boolean => x !== undefined && x !== null;
    const out: { -readonly [K in keyof GwFilter]: GwFilter[K] } = { type };
    if (present(f.requestHeaderModifier))
      out.requestHeaderModifier = headerModifier(f.requestHeaderModifier, `${w}.requestHeaderModifier`);
    if (present(f.responseHeaderModifier))
      out.responseHeaderModifier = headerModifier(f.responseHeaderModifier, `${w}.responseHeaderModifier`);
    if (present(f.requestRedirect)) {
      const r = obj(f.requestRedirect, `${w}.requestRedirect`);
      const scheme = str(r.scheme, `${w}.requestRedirect.scheme`);
      const hostname = gwHostname(r.hostname, `${w}.requestRedirect.hostname`);
      const path = pathModifier(r.path, `${w}.requestRedirect.path`);
      const rp = r.port === undefined || r.port === null ? undefined : port(r.port, `${w}.requestRedirect.port`);
      out.requestRedirect = {
        ...(scheme ? { scheme } : {}),
        ...(hostname ? { hostname } : {}),
        ...(path ? { path } : {}),
        ...(rp !== undefined ? { port: rp } : {}),
        statusCode: int(r.statusCode, `${w}.requestRedirect.statusCode`) ?? 302,
      };
    }
    if (present(f.urlRewrite)) {
      const r = obj(f.urlRewrite, `${w}.urlRewrite`);
      const hostname = gwHostname(r.hostname, `${w}.urlRewrite.hostname`);
      const path = pathModifier(r.path, `${w}.urlRewrite.path`);
      out.urlRewrite = { ...(hostname ? { hostname } : {}), ...(path ? { path } : {}) };
    }
    if (present(f.requestMirror)) {
      const r = obj(f.requestMirror, `${w}.requestMirror`);
      const b = obj(r.backendRef, `${w}.requestMirror.backendRef`);
      const bp =
        b.port === undefined || b.port === null ? undefined : port(b.port, `${w}.requestMirror.backendRef.port`);
      const percent = int(r.percent, `${w}.requestMirror.percent`);
      let fraction: { numerator: number; denominator: number } | undefined;
      if (present(r.fraction)) {
        const fr = obj(r.fraction, `${w}.requestMirror.fraction`);
        const numerator = int(fr.numerator, `${w}.requestMirror.fraction.numerator`) ?? 0;
        const denominator = int(fr.denominator, `${w}.requestMirror.fraction.denominator`) ?? 100;
        if (denominator < 1 || numerator < 0 || numerator > denominator)
          fail(`${w}.requestMirror.fraction ${numerator}/${denominator} is not a fraction of 0..1`);
        fraction = { numerator, denominator };
      }
      if (percent !== undefined && (percent < 0 || percent > 100))
        fail(`${w}.requestMirror.percent ${percent} is out of range 0-100`);
      out.requestMirror = {
        backendRef: { ...gwRef(b, `${w}.requestMirror.backendRef`, '', 'Service'), ...(bp ? { port: bp } : {}) },
        ...(percent !== undefined ? { percent } : {}),
        ...(fraction ? { fraction } : {}),
      };
    }
    if (present(f.extensionRef)) out.extensionRef = gwRef(f.extensionRef, `${w}.extensionRef`, '', '');
    return out;
  });
}

function backendRefs(v: unknown, what: string): GwBackendRef[] {
  return arr(v, what).map((rb, i) => {
    const w = `${what}[${i}]`;
    const b = obj(rb, w);
    const weight = int(b.weight, `${w}.weight`) ?? 1;
    if (weight < 0 || weight > 1_000_000) fail(`${w}.weight ${weight} is out of range 0-1000000`);
    const bp = b.port === undefined || b.port === null ? undefined : port(b.port, `${w}.port`);
    return {
      ...gwRef(b, w, '', 'Service'),
      ...(bp !== undefined ? { port: bp } : {}),
      weight,
      filters: filters(b.filters, `${w}.filters`),
    };
  });
}

function valueMatches(v: unknown, what: string): GwValueMatch[] {
  return arr(v, what).map((rh, i) => {
    const h = obj(rh, `${what}[${i}]`);
    const name = str(h.name, `${what}[${i}].name`);
    if (!name) fail(`${what}[${i}].name is required`);
    return {
      type: str(h.type, `${what}[${i}].type`) ?? 'Exact',
      name,
      value: str(h.value, `${what}[${i}].value`) ?? '',
    };
  });
}

function created(raw: Raw): string {
  const c = obj(raw.metadata, 'metadata').creationTimestamp;
  if (c instanceof Date) return c.toISOString();
  return str(c, 'metadata.creationTimestamp') ?? '';
}

export function convertHTTPRoute(raw: Raw): Result<HTTPRoute> {
  return guard(() => {
    const m = meta(raw, true);
    const spec = obj(raw.spec, 'spec');
    const rules: HttpRouteRule[] = arr(spec.rules, 'spec.rules').map((rr, i) => {
      const w = `spec.rules[${i}]`;
      const r = obj(rr, w);
      const rawMatches = arr(r.matches, `${w}.matches`);
      const matches: HttpRouteMatch[] = (rawMatches.length === 0 ? [{}] : rawMatches).map((rm, j) => {
        const mw = `${w}.matches[${j}]`;
        const mm = obj(rm, mw);
        const p = obj(mm.path, `${mw}.path`);
        const method = str(mm.method, `${mw}.method`);
        return {
          path: {
            type: str(p.type, `${mw}.path.type`) ?? 'PathPrefix',
            value: str(p.value, `${mw}.path.value`) ?? '/',
          },
          headers: valueMatches(mm.headers, `${mw}.headers`),
          queryParams: valueMatches(mm.queryParams, `${mw}.queryParams`),
          ...(method ? { method } : {}),
        };
      });
      const t = obj(r.timeouts, `${w}.timeouts`);
      const request = str(t.request, `${w}.timeouts.request`);
      const backendRequest = str(t.backendRequest, `${w}.timeouts.backendRequest`);
      const name = str(r.name, `${w}.name`);
      return {
        ...(name ? { name } : {}),
        matches,
        filters: filters(r.filters, `${w}.filters`),
        backendRefs: backendRefs(r.backendRefs, `${w}.backendRefs`),
        ...(request !== undefined || backendRequest !== undefined
          ? {
              timeouts: {
                ...(request !== undefined ? { request } : {}),
                ...(backendRequest !== undefined ? { backendRequest } : {}),
              },
            }
          : {}),
      };
    });
    return {
      kind: 'HTTPRoute',
      meta: m,
      generation: generation(raw),
      created: created(raw),
      parentRefs: parentRefs(spec.parentRefs),
      hostnames: hostnames(spec.hostnames),
      // no rules: one rule that matches everything and has no backend (spec default)
      rules: rules.length > 0 ? rules : [{ matches: [DEFAULT_HTTP_MATCH], filters: [], backendRefs: [] }],
    };
  });
}

const DEFAULT_HTTP_MATCH: HttpRouteMatch = { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] };

export function convertGRPCRoute(raw: Raw): Result<GRPCRoute> {
  return guard(() => {
    const m = meta(raw, true);
    const spec = obj(raw.spec, 'spec');
    const rules: GrpcRouteRule[] = arr(spec.rules, 'spec.rules').map((rr, i) => {
      const w = `spec.rules[${i}]`;
      const r = obj(rr, w);
      const matches: GrpcRouteMatch[] = arr(r.matches, `${w}.matches`).map((rm, j) => {
        const mw = `${w}.matches[${j}]`;
        const mm = obj(rm, mw);
        let method: GrpcRouteMatch['method'];
        if (mm.method !== undefined && mm.method !== null) {
          const mt = obj(mm.method, `${mw}.method`);
          const service = str(mt.service, `${mw}.method.service`);
          const meth = str(mt.method, `${mw}.method.method`);
          if (!service && !meth) fail(`${mw}.method needs service or method`);
          method = {
            type: str(mt.type, `${mw}.method.type`) ?? 'Exact',
            ...(service ? { service } : {}),
            ...(meth ? { method: meth } : {}),
          };
        }
        return { ...(method ? { method } : {}), headers: valueMatches(mm.headers, `${mw}.headers`) };
      });
      const name = str(r.name, `${w}.name`);
      return {
        ...(name ? { name } : {}),
        matches,
        filters: filters(r.filters, `${w}.filters`),
        backendRefs: backendRefs(r.backendRefs, `${w}.backendRefs`),
      };
    });
    return {
      kind: 'GRPCRoute',
      meta: m,
      generation: generation(raw),
      created: created(raw),
      parentRefs: parentRefs(spec.parentRefs),
      hostnames: hostnames(spec.hostnames),
      rules: rules.length > 0 ? rules : [{ matches: [], filters: [], backendRefs: [] }],
    };
  });
}

export function convertReferenceGrant(raw: Raw): Result<ReferenceGrant> {
  return guard(() => {
    const m = meta(raw, true);
    const spec = obj(raw.spec, 'spec');
    const from = arr(spec.from, 'spec.from').map((rf, i) => {
      const f = obj(rf, `spec.from[${i}]`);
      const kind = str(f.kind, `spec.from[${i}].kind`);
      const namespace = label(f.namespace, `spec.from[${i}].namespace`);
      if (!kind || !namespace) fail(`spec.from[${i}] needs kind and namespace`);
      return { group: str(f.group, `spec.from[${i}].group`) ?? '', kind, namespace };
    });
    const to = arr(spec.to, 'spec.to').map((rt, i) => {
      const t = obj(rt, `spec.to[${i}]`);
      const kind = str(t.kind, `spec.to[${i}].kind`);
      if (!kind) fail(`spec.to[${i}].kind is required`);
      const name = str(t.name, `spec.to[${i}].name`);
      return { group: str(t.group, `spec.to[${i}].group`) ?? '', kind, ...(name ? { name } : {}) };
    });
    return { kind: 'ReferenceGrant', meta: m, from, to };
  });
}

export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';

// ---------------------------------------------------------------- by kind
const CONVERTERS: { readonly [K in Kind]: (raw: Raw) => Result<Extract<ClusterObject, { kind: K }>> } = {
  Service: convertService,
  EndpointSlice: convertEndpointSlice,
  Pod: convertPod,
  Node: convertNode,
  Namespace: convertNamespace,
  Ingress: convertIngress,
  IngressClass: convertIngressClass,
  Secret: convertSecret,
  NetworkPolicy: convertNetworkPolicy,
  AdminNetworkPolicy: convertAdminNetworkPolicy,
  BaselineAdminNetworkPolicy: convertBaselineAdminNetworkPolicy,
  GatewayClass: convertGatewayClass,
  Gateway: convertGateway,
  HTTPRoute: convertHTTPRoute,
  GRPCRoute: convertGRPCRoute,
  ReferenceGrant: convertReferenceGrant,
};

/** Converts an object of a known kind (the caller decides the kind: from the watch path or `kind:`). */
export function convertKind(kind: Kind, raw: Raw): Result<ClusterObject> {
  return CONVERTERS[kind](raw);
}

/** apiVersion each kind is accepted under (manifests), besides the preferred one. */
const API_VERSIONS: Readonly<Record<Kind | 'Endpoints', readonly string[]>> = {
  Service: ['v1'],
  EndpointSlice: ['discovery.k8s.io/v1'],
  Endpoints: ['v1'],
  Pod: ['v1'],
  Node: ['v1'],
  Namespace: ['v1'],
  Ingress: ['networking.k8s.io/v1'],
  IngressClass: ['networking.k8s.io/v1'],
  Secret: ['v1'],
  NetworkPolicy: ['networking.k8s.io/v1'],
  AdminNetworkPolicy: ['policy.networking.k8s.io/v1alpha1'],
  BaselineAdminNetworkPolicy: ['policy.networking.k8s.io/v1alpha1'],
  GatewayClass: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  Gateway: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  HTTPRoute: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  GRPCRoute: ['gateway.networking.k8s.io/v1'],
  ReferenceGrant: ['gateway.networking.k8s.io/v1beta1', 'gateway.networking.k8s.io/v1'],
};

/**
 * Converts any raw object by its own `kind:` and `apiVersion:`. Returns [] for kinds the data plane does not use
 * (Deployments, ConfigMaps, non-TLS Secrets are not errors) and a list because legacy Endpoints become several slices.
 */
export function convertAny(raw: Raw): Result<ClusterObject[]> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    return { ok: false, reason: 'an API object must be a mapping' };
  const kind = raw.kind;
  const apiVersion = raw.apiVersion;
  if (typeof kind !== 'string' || kind === '') return { ok: false, reason: 'kind is required' };
  if (typeof apiVersion !== 'string' || apiVersion === '') return { ok: false, reason: 'apiVersion is required' };
  if (!(kind in API_VERSIONS)) return { ok: true, value: [] };
  if (!API_VERSIONS[kind as Kind].includes(apiVersion))
    return {
      ok: false,
      reason: `${kind} under apiVersion ${apiVersion} is not supported (use ${API_VERSIONS[kind as Kind].join(' or ')})`,
    };
  if (kind === 'Endpoints') return convertEndpoints(raw);
  if (kind === 'Secret' && raw.type !== TLS_SECRET_TYPE) return { ok: true, value: [] };
  const r = convertKind(kind as Kind, raw);
  return r.ok ? { ok: true, value: [r.value] } : r;
}
