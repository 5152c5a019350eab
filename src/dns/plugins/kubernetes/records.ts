// The Kubernetes DNS-Based Service Discovery spec 1.1.0 plus the CoreDNS `kubernetes` plugin behaviour
// users rely on, as pure functions: cluster objects -> an index -> the answer to one question.
// No I/O here; handler.ts feeds the index from a ClusterSource, table tests live in
// test/unit/dns/records.test.ts (written in zone-file notation).
import { isIP } from 'node:net';
import type { EndpointPort, EndpointSlice, Namespace, Pod, Service, ServicePort } from '../../../model/types.ts';
import { canonicalV6, v6Bytes } from '../../wire.ts';
import type { RR } from '../../wire.ts';

export type PodsMode = 'disabled' | 'insecure' | 'verified';

export interface KubernetesConfig {
  /** lower-case, no trailing dot: e.g. ['cluster.local', 'in-addr.arpa', 'ip6.arpa'] */
  readonly zones: readonly string[];
  readonly ttl: number;
  readonly pods: PodsMode;
  readonly endpointPodNames: boolean;
  /** undefined: no fallthrough; []: every zone; else these zones */
  readonly fallthrough?: readonly string[];
  readonly ignoreEmptyService: boolean;
}

export const DEFAULT_KUBERNETES_CONFIG: KubernetesConfig = {
  zones: ['cluster.local', 'in-addr.arpa', 'ip6.arpa'],
  ttl: 5,
  pods: 'disabled',
  endpointPodNames: false,
  ignoreEmptyService: false,
};

const DNS_SCHEMA_VERSION = '1.1.0';
const VERSION_TTL = 28800;

/** What the record logic sees of the cluster. */
interface ClusterView {
  readonly services: Iterable<Service>;
  readonly slices: Iterable<EndpointSlice>;
  readonly pods: Iterable<Pod>;
  readonly namespaces: Iterable<Namespace>;
}

interface IndexedEndpoint {
  readonly ip: string;
  readonly v6: boolean;
  /** lower-case endpoint name (hostname, pod name, or dashed IP) */
  readonly name: string;
  readonly ports: readonly EndpointPort[];
}

interface IndexedService {
  readonly svc: Service;
  /** ready endpoints (or all, with publishNotReadyAddresses), deduplicated by IP */
  readonly endpoints: readonly IndexedEndpoint[];
}

export interface ClusterIndex {
  readonly services: ReadonlyMap<string, IndexedService>; // key: name.ns (lower)
  readonly namespaces: ReadonlySet<string>;
  /** canonical IP -> PTR targets relative to the zone (e.g. 'web.ns.svc', 'host.web.ns.svc') */
  readonly ptr: ReadonlyMap<string, readonly string[]>;
  /** namespace -> canonical pod IPs (pods verified) */
  readonly podIPs: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * canonical pod IP -> the pod's namespace (pods verified), for autopath: CoreDNS's pod cache, which holds
   * no pod that has finished (Succeeded, Failed, Unknown) or is being deleted; the first pod listed wins an IP
   */
  readonly podNamespace: ReadonlyMap<string, string>;
  /** SOA serial: unix seconds of the last change */
  readonly serial: number;
}

function canonicalIP(ip: string): string {
  return isIP(ip) === 6 ? canonicalV6(ip) : ip;
}

/** The CoreDNS endpoint name: hostname > pod name (endpoint_pod_names, < 64 chars) > dashed IP. */
function endpointName(ep: EndpointSlice['endpoints'][number], ip: string, endpointPodNames: boolean): string {
  if (ep.hostname) return ep.hostname.toLowerCase();
  if (endpointPodNames && ep.targetRef?.kind === 'Pod' && ep.targetRef.name.length < 64 && ep.targetRef.name !== '')
    return ep.targetRef.name.toLowerCase();
  return dashedIP(ip);
}

export function dashedIP(ip: string): string {
  if (isIP(ip) === 4) return ip.replace(/\./g, '-');
  let s = canonicalV6(ip).replace(/:/g, '-');
  if (s.endsWith('-')) s += '0';
  if (s.startsWith('-')) s = '0' + s;
  return s;
}

export function buildIndex(
  view: ClusterView,
  cfg: Pick<KubernetesConfig, 'endpointPodNames'>,
  serial: number,
): ClusterIndex {
  const services = new Map<string, IndexedService>();
  const namespaces = new Set<string>();
  const ptr = new Map<string, string[]>();
  const addPtr = (ip: string, target: string) => {
    const k = canonicalIP(ip);
    const list = ptr.get(k);
    if (!list) ptr.set(k, [target]);
    else if (!list.includes(target)) list.push(target);
  };
  for (const ns of view.namespaces) namespaces.add(ns.meta.name.toLowerCase());
  const slicesBySvc = new Map<string, EndpointSlice[]>();
  for (const sl of view.slices) {
    if (sl.addressType === 'FQDN') continue;
    const k = `${sl.serviceName}.${sl.meta.namespace}`.toLowerCase();
    const list = slicesBySvc.get(k);
    if (list) list.push(sl);
    else slicesBySvc.set(k, [sl]);
  }
  for (const svc of view.services) {
    const ns = svc.meta.namespace.toLowerCase();
    namespaces.add(ns);
    const key = `${svc.meta.name.toLowerCase()}.${ns}`;
    const rel = `${key}.svc`;
    const endpoints: IndexedEndpoint[] = [];
    const seen = new Set<string>();
    const slices = [...(slicesBySvc.get(key) ?? [])].sort((a, b) =>
      a.meta.name < b.meta.name ? -1 : a.meta.name > b.meta.name ? 1 : 0,
    );
    if (svc.type !== 'ExternalName') {
      for (const sl of slices) {
        for (const ep of sl.endpoints) {
          if (!ep.conditions.ready && !svc.publishNotReadyAddresses) continue;
          for (const raw of ep.addresses) {
            const fam = isIP(raw);
            if (fam === 0) continue;
            const ip = canonicalIP(raw);
            const name = endpointName(ep, ip, cfg.endpointPodNames);
            if (seen.has(`${ip}/${name}`)) continue;
            seen.add(`${ip}/${name}`);
            endpoints.push({ ip, v6: fam === 6, name, ports: sl.ports });
            addPtr(ip, `${name}.${rel}`);
          }
        }
      }
      if (!svc.headless) for (const ip of svc.clusterIPs) if (isIP(ip)) addPtr(ip, rel);
    }
    services.set(key, { svc, endpoints });
  }
  const podIPs = new Map<string, Set<string>>();
  const podNamespace = new Map<string, string>();
  for (const pod of view.pods) {
    if (pod.hostNetwork) continue;
    const ns = pod.meta.namespace.toLowerCase();
    let set = podIPs.get(ns);
    if (!set) podIPs.set(ns, (set = new Set()));
    const live = pod.meta.deletionTimestamp === undefined && (pod.phase === 'Pending' || pod.phase === 'Running');
    for (const ip of pod.podIPs) {
      if (!isIP(ip)) continue;
      set.add(canonicalIP(ip));
      if (live && !podNamespace.has(canonicalIP(ip))) podNamespace.set(canonicalIP(ip), pod.meta.namespace);
    }
  }
  return { services, namespaces, ptr, podIPs, podNamespace, serial };
}

// ------------------------------------------------------------------ lookup
export type LookupResult =
  | {
      readonly kind: 'answer';
      readonly rcode: 0 | 3; // NOERROR | NXDOMAIN
      readonly answers: readonly RR[];
      readonly authority: readonly RR[];
      readonly additional: readonly RR[];
      /** an out-of-zone CNAME target the server should resolve through the rest of the chain */
      readonly chase?: string;
    }
  /** not a name of ours, or fallthrough: hand to the next plugin */
  | { readonly kind: 'next' }
  /** the initial sync is not complete */
  | { readonly kind: 'servfail' };

export interface Query {
  /** the name as asked (case kept); no trailing dot */
  readonly name: string;
  readonly type: string; // 'A', 'AAAA', 'SRV', ... or 'TYPE<n>'
}

/** The configured zone the name falls in (longest match), as spelled in the query. */
function matchZone(lname: string, zones: readonly string[]): string | undefined {
  let best: string | undefined;
  for (const z of zones) {
    if (z === '' || lname === z || lname.endsWith('.' + z)) if (best === undefined || z.length > best.length) best = z;
  }
  return best;
}

interface Ctx {
  readonly q: Query;
  readonly zone: string; // lower
  readonly qzone: string; // as spelled in the query
  readonly cfg: KubernetesConfig;
  readonly index: ClusterIndex;
}

function soa(c: Ctx): RR {
  const z = c.qzone;
  return {
    name: z,
    ttl: Math.min(c.cfg.ttl, 300),
    type: 'SOA',
    data: {
      mname: `ns.dns.${z}`,
      rname: `hostmaster.${z}`,
      serial: c.index.serial,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: c.cfg.ttl,
    },
  };
}

function nxdomain(c: Ctx): LookupResult {
  if (c.cfg.fallthrough && (c.cfg.fallthrough.length === 0 || c.cfg.fallthrough.includes(c.zone)))
    return { kind: 'next' };
  return { kind: 'answer', rcode: 3, answers: [], authority: [soa(c)], additional: [] };
}

function nodata(c: Ctx): LookupResult {
  return { kind: 'answer', rcode: 0, answers: [], authority: [soa(c)], additional: [] };
}

function answer(c: Ctx, answers: RR[], additional: RR[] = []): LookupResult {
  if (answers.length === 0) return nodata(c);
  return { kind: 'answer', rcode: 0, answers, authority: [], additional };
}

function addrRR(name: string, ttl: number, ip: string): RR {
  return isIP(ip) === 6 ? { name, ttl, type: 'AAAA', data: ip } : { name, ttl, type: 'A', data: ip };
}

function wantsFamily(qtype: string, ip: string): boolean {
  return (qtype === 'A' && isIP(ip) === 4) || (qtype === 'AAAA' && isIP(ip) === 6);
}

/**
 * The search path autopath walks for a query from `client` (CoreDNS kubernetes AutoPath): undefined when
 * the name is in none of our zones, pods are not `verified`, or no running pod has the client's address;
 * else `<ns>.svc.<zone>`, `svc.<zone>`, `<zone>`, the server's own resolv.conf search domains, and '' (the
 * name as asked). Names are lower case without the trailing dot ('' is the root).
 */
export function autoPathSearch(
  index: ClusterIndex,
  lname: string,
  client: string,
  cfg: KubernetesConfig,
  hostSearch: readonly string[],
): string[] | undefined {
  const zone = matchZone(lname, cfg.zones);
  if (zone === undefined || cfg.pods !== 'verified') return undefined;
  const bare = client.startsWith('::ffff:') && isIP(client.slice(7)) === 4 ? client.slice(7) : client;
  if (!isIP(bare)) return undefined;
  const ns = index.podNamespace.get(canonicalIP(bare));
  if (ns === undefined) return undefined;
  const svcZone = zone === '' ? 'svc' : `svc.${zone}`;
  return [`${ns}.${svcZone}`.toLowerCase(), svcZone, zone, ...hostSearch, ''];
}

/** Answers one question for the kubernetes zones. `synced` false gives SERVFAIL for every in-zone name. */
export function lookup(index: ClusterIndex, q: Query, cfg: KubernetesConfig, synced: boolean): LookupResult {
  const lname = q.name.toLowerCase();
  const zone = matchZone(lname, cfg.zones);
  if (zone === undefined) return { kind: 'next' };
  if (!synced) return { kind: 'servfail' };
  const qzone = zone === '' ? '' : q.name.slice(q.name.length - zone.length);
  const c: Ctx = { q, zone, qzone, cfg, index };
  const rest = lname === zone ? '' : lname.slice(0, lname.length - zone.length - (zone === '' ? 0 : 1));
  if (zone.endsWith('in-addr.arpa') || zone.endsWith('ip6.arpa')) return reverse(c, lname);
  if (rest === '') {
    if (q.type === 'SOA') return { kind: 'answer', rcode: 0, answers: [soa(c)], authority: [], additional: [] };
    if (q.type === 'NS')
      return {
        kind: 'answer',
        rcode: 0,
        answers: [{ name: q.name, ttl: cfg.ttl, type: 'NS', data: `ns.dns.${qzone}` }],
        authority: [],
        additional: [],
      };
    return nodata(c);
  }
  if (rest === 'dns-version') {
    if (q.type === 'TXT')
      return answer(c, [{ name: q.name, ttl: VERSION_TTL, type: 'TXT', data: [DNS_SCHEMA_VERSION] }]);
    return nodata(c);
  }
  const labels = rest.split('.');
  const kind = labels[labels.length - 1];
  if (kind === 'svc') return services(c, labels.slice(0, -1));
  if (kind === 'pod') return pods(c, labels.slice(0, -1));
  return nxdomain(c);
}

function services(c: Ctx, labels: string[]): LookupResult {
  const { q, cfg, index } = c;
  if (labels.length === 0) return nodata(c); // svc.<zone>
  const ns = labels[labels.length - 1] as string;
  if (labels.length === 1) return index.namespaces.has(ns) ? nodata(c) : nxdomain(c);
  const svcName = labels[labels.length - 2] as string;
  const entry = index.services.get(`${svcName}.${ns}`);
  if (!entry) return nxdomain(c);
  const { svc } = entry;
  const target = (prefix: string) => `${prefix}.${svcName}.${ns}.svc.${c.qzone}`;
  const ttl = cfg.ttl;
  if (labels.length === 2) {
    if (svc.type === 'ExternalName') {
      if (q.type === 'SRV') return nodata(c);
      const ext = (svc.externalName ?? '').replace(/\.$/, '');
      const cname: RR = { name: q.name, ttl, type: 'CNAME', data: ext };
      if (q.type === 'CNAME') return answer(c, [cname]);
      if (q.type !== 'A' && q.type !== 'AAAA') return answer(c, [cname]);
      const inZone = matchZone(ext.toLowerCase(), cfg.zones);
      if (inZone !== undefined) {
        const sub = lookup(index, { name: ext, type: q.type }, { ...cfg, fallthrough: undefined }, true);
        if (sub.kind === 'answer' && sub.rcode === 0 && sub.answers.length > 0)
          return answer(c, [cname, ...sub.answers]);
        return nodata(c); // in-zone target lacking the type: NODATA, CNAME dropped (CoreDNS)
      }
      return { kind: 'answer', rcode: 0, answers: [cname], authority: [], additional: [], chase: ext };
    }
    if (!svc.headless) {
      if (cfg.ignoreEmptyService && entry.endpoints.length === 0) return nxdomain(c);
      if (q.type === 'A' || q.type === 'AAAA')
        return answer(
          c,
          svc.clusterIPs.filter((ip) => wantsFamily(q.type, ip)).map((ip) => addrRR(q.name, ttl, ip)),
        );
      if (q.type === 'SRV') {
        const n = svc.clusterIPs.length * svc.ports.length;
        const weight = n === 0 ? 0 : Math.floor(100 / n);
        const srv: RR[] = [];
        const seen = new Set<string>();
        for (const p of svc.ports) {
          if (seen.has(String(p.port))) continue;
          seen.add(String(p.port));
          srv.push({
            name: q.name,
            ttl,
            type: 'SRV',
            data: { priority: 0, weight, port: p.port, target: `${svcName}.${ns}.svc.${c.qzone}` },
          });
        }
        return answer(
          c,
          srv,
          srv.length ? svc.clusterIPs.map((ip) => addrRR(`${svcName}.${ns}.svc.${c.qzone}`, ttl, ip)) : [],
        );
      }
      return nodata(c);
    }
    // headless
    if (entry.endpoints.length === 0) return nxdomain(c);
    if (q.type === 'A' || q.type === 'AAAA')
      return answer(
        c,
        entry.endpoints.filter((e) => wantsFamily(q.type, e.ip)).map((e) => addrRR(q.name, ttl, e.ip)),
      );
    if (q.type === 'SRV') return headlessSrv(c, entry, undefined, target);
    return nodata(c);
  }
  if (labels.length === 3) {
    // <endpoint>.<svc>.<ns>.svc.<zone>
    const epName = labels[0] as string;
    if (svc.type === 'ExternalName') return nxdomain(c);
    const eps = entry.endpoints.filter((e) => e.name === epName);
    if (eps.length === 0) return nxdomain(c);
    return answer(
      c,
      eps.filter((e) => wantsFamily(q.type, e.ip)).map((e) => addrRR(q.name, ttl, e.ip)),
    );
  }
  if (labels.length === 4) {
    // _<port>._<proto>.<svc>.<ns>.svc.<zone>
    const [portL, protoL] = labels as [string, string];
    if (!portL.startsWith('_') || !protoL.startsWith('_') || svc.type === 'ExternalName') return nxdomain(c);
    const portName = portL.slice(1);
    const proto = protoL.slice(1).toUpperCase();
    const match = (p: { name: string; protocol: string }) =>
      p.name !== '' && p.name.toLowerCase() === portName && p.protocol === proto;
    if (!svc.headless) {
      const ports: ServicePort[] = svc.ports.filter(match);
      if (ports.length === 0) return nxdomain(c);
      if (q.type !== 'SRV') return nodata(c);
      const n = svc.clusterIPs.length * ports.length;
      const weight = n === 0 ? 0 : Math.floor(100 / n);
      const tgt = `${svcName}.${ns}.svc.${c.qzone}`;
      return answer(
        c,
        ports.map(
          (p) => ({ name: q.name, ttl, type: 'SRV', data: { priority: 0, weight, port: p.port, target: tgt } }) as RR,
        ),
        svc.clusterIPs.map((ip) => addrRR(tgt, ttl, ip)),
      );
    }
    const has = entry.endpoints.some((e) => e.ports.some(match)) || svc.ports.some(match);
    if (!has || entry.endpoints.length === 0) return nxdomain(c);
    if (q.type !== 'SRV') return nodata(c);
    return headlessSrv(c, entry, match, target);
  }
  return nxdomain(c);
}

function headlessSrv(
  c: Ctx,
  entry: IndexedService,
  match: ((p: EndpointPort) => boolean) | undefined,
  target: (p: string) => string,
): LookupResult {
  const { q, cfg } = c;
  const items: { ep: IndexedEndpoint; port: EndpointPort }[] = [];
  for (const ep of entry.endpoints) for (const port of ep.ports) if (!match || match(port)) items.push({ ep, port });
  if (items.length === 0) return nodata(c);
  const weight = Math.floor(100 / items.length);
  const srv: RR[] = [];
  const extra: RR[] = [];
  const seen = new Set<string>();
  const seenExtra = new Set<string>();
  for (const { ep, port } of items) {
    const tgt = target(ep.name);
    if (!seen.has(`${tgt}:${port.port}`)) {
      seen.add(`${tgt}:${port.port}`);
      srv.push({
        name: q.name,
        ttl: cfg.ttl,
        type: 'SRV',
        data: { priority: 0, weight, port: port.port, target: tgt },
      });
    }
    if (!seenExtra.has(`${tgt}/${ep.ip}`)) {
      seenExtra.add(`${tgt}/${ep.ip}`);
      extra.push(addrRR(tgt, cfg.ttl, ep.ip));
    }
  }
  return answer(c, srv, extra);
}

/** a-b-c-d (IPv4: exactly three dashes, no '--') or an IPv6 with ':' written as '-'. */
export function podLabelIP(label: string): string | undefined {
  if ((label.match(/-/g) ?? []).length === 3 && !label.includes('--')) {
    const ip = label.replace(/-/g, '.');
    return isIP(ip) === 4 ? ip : undefined;
  }
  const ip = label.replace(/-/g, ':');
  return isIP(ip) === 6 ? canonicalV6(ip) : undefined;
}

function pods(c: Ctx, labels: string[]): LookupResult {
  const { q, cfg, index } = c;
  if (cfg.pods === 'disabled') return labels.length === 0 ? nodata(c) : nxdomain(c);
  if (labels.length === 0) return nodata(c);
  const ns = labels[labels.length - 1] as string;
  if (labels.length === 1) return index.namespaces.has(ns) ? nodata(c) : nxdomain(c);
  if (labels.length !== 2) return nxdomain(c);
  const ip = podLabelIP(labels[0] as string);
  if (ip === undefined) return nxdomain(c);
  if (cfg.pods === 'insecure' && !index.namespaces.has(ns)) return nxdomain(c);
  if (cfg.pods === 'verified' && !index.podIPs.get(ns)?.has(ip)) return nxdomain(c);
  if (wantsFamily(q.type, ip)) return answer(c, [addrRR(q.name, cfg.ttl, ip)]);
  return nodata(c);
}

/** The IP a reverse name stands for, or undefined when it is not a full address. */
export function reverseNameIP(lname: string): string | undefined {
  if (lname.endsWith('.in-addr.arpa')) {
    const parts = lname.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return undefined;
    return parts.reverse().join('.');
  }
  if (lname.endsWith('.ip6.arpa')) {
    const nib = lname.slice(0, -'.ip6.arpa'.length).split('.');
    if (nib.length !== 32 || !nib.every((n) => /^[0-9a-f]$/.test(n))) return undefined;
    const hex = nib.reverse().join('');
    const groups: string[] = [];
    for (let i = 0; i < 32; i += 4) groups.push(hex.slice(i, i + 4));
    return canonicalV6(groups.join(':'));
  }
  return undefined;
}

/** The reverse (PTR) name of an address. */
export function reverseName(ip: string): string {
  if (isIP(ip) === 4) return ip.split('.').reverse().join('.') + '.in-addr.arpa';
  const hex = v6Bytes(ip).toString('hex');
  return hex.split('').reverse().join('.') + '.ip6.arpa';
}

function reverse(c: Ctx, lname: string): LookupResult {
  const ip = reverseNameIP(lname);
  const fwd = c.cfg.zones.find((z) => !z.endsWith('.arpa') && z !== 'arpa');
  const targets = ip !== undefined && fwd !== undefined ? c.index.ptr.get(ip) : undefined;
  if (!targets || targets.length === 0) return nxdomain(c);
  if (c.q.type !== 'PTR') return nodata(c);
  return answer(
    c,
    targets.map((t) => ({ name: c.q.name, ttl: c.cfg.ttl, type: 'PTR', data: `${t}.${fwd}` }) as RR),
  );
}
