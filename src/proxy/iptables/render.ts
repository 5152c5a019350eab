// iptables mode, pure part: the whole desired state as chains of rules (kube-proxy's layout with KDP-
// chains), and the iptables-restore text for a full or partial sync. Only KDP-* chains are ever written;
// the jumps from the built-in chains are ensured one by one by the backend (they are not ours to flush).
import { hashName } from '../model.ts';
import type { ProxyEndpoint, ServicePortInfo } from '../model.ts';

export type IptFamily = 'ipv4' | 'ipv6';
const CHAIN_PREFIX = 'KDP-';
const MASQ_MARK = '0x4000';

export interface IptConfig {
  readonly clusterCIDRs: readonly string[];
  readonly masqueradeAll?: boolean;
  readonly nodePortAddresses?: readonly string[];
}

/** table -> chain -> rules (each rule without the leading `-A CHAIN`) */
export interface IptState {
  readonly family: IptFamily;
  readonly tables: ReadonlyMap<'filter' | 'nat', ReadonlyMap<string, readonly string[]>>;
  /** per-service chains (nat table), by service key "ns/name": rewritten only when that service changed */
  readonly owner: ReadonlyMap<string, string>;
}

/** The jump rules from built-in chains: [table, chain, rule spec] */
export function jumpRules(family: IptFamily): [string, string, string[]][] {
  void family;
  const c = (s: string) => ['-m', 'comment', '--comment', s];
  const nw = ['-m', 'conntrack', '--ctstate', 'NEW'];
  return [
    ['nat', 'PREROUTING', [...c('kdp service portals'), '-j', 'KDP-SERVICES']],
    ['nat', 'OUTPUT', [...c('kdp service portals'), '-j', 'KDP-SERVICES']],
    ['nat', 'POSTROUTING', [...c('kdp postrouting rules'), '-j', 'KDP-POSTROUTING']],
    ['filter', 'INPUT', [...nw, ...c('kdp load balancer firewall'), '-j', 'KDP-PROXY-FIREWALL']],
    ['filter', 'INPUT', [...nw, ...c('kdp externally-visible service portals'), '-j', 'KDP-EXTERNAL-SERVICES']],
    ['filter', 'FORWARD', [...nw, ...c('kdp load balancer firewall'), '-j', 'KDP-PROXY-FIREWALL']],
    ['filter', 'FORWARD', [...c('kdp forwarding rules'), '-j', 'KDP-FORWARD']],
    ['filter', 'FORWARD', [...nw, ...c('kdp service portals'), '-j', 'KDP-SERVICES']],
    ['filter', 'FORWARD', [...nw, ...c('kdp externally-visible service portals'), '-j', 'KDP-EXTERNAL-SERVICES']],
    ['filter', 'OUTPUT', [...nw, ...c('kdp load balancer firewall'), '-j', 'KDP-PROXY-FIREWALL']],
    ['filter', 'OUTPUT', [...nw, ...c('kdp service portals'), '-j', 'KDP-SERVICES']],
  ];
}

const q = (s: string) => (/^[\w./:-]+$/.test(s) ? s : `"${s.replace(/"/g, '')}"`);
const comment = (s: string) => `-m comment --comment ${q(s)}`;

function portChainHash(sp: ServicePortInfo): string {
  return hashName(`${sp.id}${sp.protocol.toLowerCase()}`, 16);
}
function sepChain(sp: ServicePortInfo, ep: ProxyEndpoint): string {
  const dest = sp.family === 'IPv6' ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`;
  return `KDP-SEP-${hashName(`${sp.id}${sp.protocol.toLowerCase()}${dest}`, 16)}`;
}
export function svcChains(sp: ServicePortInfo): { svc: string; svl: string; ext: string; fw: string } {
  const h = portChainHash(sp);
  return { svc: `KDP-SVC-${h}`, svl: `KDP-SVL-${h}`, ext: `KDP-EXT-${h}`, fw: `KDP-FW-${h}` };
}

function host(family: IptFamily, ip: string): string {
  return ip.includes('/') ? ip : `${ip}/${family === 'ipv4' ? 32 : 128}`;
}

/** Renders the whole desired state. Pure. */
export function renderIptables(ports: readonly ServicePortInfo[], family: IptFamily, cfg: IptConfig): IptState {
  const nat = new Map<string, string[]>();
  const filter = new Map<string, string[]>();
  const owner = new Map<string, string>();
  const ch = (m: Map<string, string[]>, name: string) => {
    let c = m.get(name);
    if (!c) m.set(name, (c = []));
    return c;
  };
  for (const n of ['KDP-SERVICES', 'KDP-EXTERNAL-SERVICES', 'KDP-FORWARD', 'KDP-PROXY-FIREWALL']) ch(filter, n);
  for (const n of ['KDP-SERVICES', 'KDP-NODEPORTS', 'KDP-POSTROUTING', 'KDP-MARK-MASQ']) ch(nat, n);
  const loopback = family === 'ipv4' ? '127.0.0.0/8' : '::1/128';
  // IPv6 TCP gets a reset: Linux applies an ICMPv6 port-unreachable to a connecting socket only after the SYN is
  // retried (~1 s), so it looked like a timeout, not "connection refused"
  const rejectFor = (p: string) =>
    family === 'ipv4'
      ? '-j REJECT --reject-with icmp-port-unreachable'
      : p === 'tcp'
        ? '-j REJECT --reject-with tcp-reset'
        : '-j REJECT --reject-with icmp6-port-unreachable';
  const localCidrs = cfg.clusterCIDRs.filter((c) => (family === 'ipv6') === c.includes(':'));

  ch(filter, 'KDP-FORWARD').push(
    // as kube-proxy's KUBE-FORWARD: a packet conntrack cannot place (e.g. a late retransmit after the entry
    // was replaced) must not be forwarded un-NATed to a pod or out of the node
    '-m conntrack --ctstate INVALID -j DROP',
    `${comment('kdp forwarding rules')} -m mark --mark ${MASQ_MARK}/${MASQ_MARK} -j ACCEPT`,
    `${comment('kdp forwarding conntrack rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
  );
  ch(nat, 'KDP-MARK-MASQ').push(`-j MARK --or-mark ${MASQ_MARK}`);
  ch(nat, 'KDP-POSTROUTING').push(
    `-m mark ! --mark ${MASQ_MARK}/${MASQ_MARK} -j RETURN`,
    `-j MARK --xor-mark ${MASQ_MARK}`,
    `${comment('kdp service traffic requiring SNAT')} -j MASQUERADE --random-fully`,
  );

  const svcRules = ch(nat, 'KDP-SERVICES');
  const npRules = ch(nat, 'KDP-NODEPORTS');
  for (const sp of ports) {
    const p = sp.protocol.toLowerCase();
    const m = `-p ${p} -m ${p}`;
    const reject = rejectFor(p);
    const key = `${sp.namespace}/${sp.name}`;
    const { svc, svl, ext, fw } = svcChains(sp);
    const externalIPs = [...sp.externalIPs, ...sp.loadBalancerIPs];
    const hasCluster = sp.clusterEndpoints.length > 0;
    const hasLocal = sp.localEndpoints.length > 0;
    const own = (name: string) => {
      owner.set(name, key);
      return ch(nat, name);
    };

    if (!hasCluster) {
      ch(filter, 'KDP-SERVICES').push(
        `${comment(`${sp.id} has no endpoints`)} ${m} -d ${host(family, sp.clusterIP)} --dport ${sp.port} ${reject}`,
      );
      for (const ip of externalIPs)
        ch(filter, 'KDP-EXTERNAL-SERVICES').push(
          `${comment(`${sp.id} has no endpoints`)} ${m} -d ${host(family, ip)} --dport ${sp.port} ${reject}`,
        );
      if (sp.nodePort !== undefined)
        ch(filter, 'KDP-EXTERNAL-SERVICES').push(
          `${comment(`${sp.id} has no endpoints`)} -m addrtype --dst-type LOCAL ${m} --dport ${sp.nodePort} ${reject}`,
        );
      continue;
    }

    // endpoint chains
    const used = new Map<string, ProxyEndpoint>();
    for (const ep of [...sp.clusterEndpoints, ...sp.localEndpoints]) used.set(`${ep.ip}:${ep.port}`, ep);
    for (const ep of used.values()) {
      const sep = sepChain(sp, ep);
      const dest = family === 'ipv6' ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`;
      const aff =
        sp.affinitySeconds !== undefined
          ? ` -m recent --name ${sep} --mask ${family === 'ipv4' ? '255.255.255.255' : 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'} --set`
          : '';
      own(sep).push(
        `${comment(sp.id)} -s ${host(family, ep.ip)} -j KDP-MARK-MASQ`,
        `${comment(sp.id)} ${m}${aff} -j DNAT --to-destination ${dest}`,
      );
    }
    const lb = (chain: string, eps: readonly ProxyEndpoint[]) => {
      const rules = own(chain);
      if (sp.affinitySeconds !== undefined) {
        for (const ep of eps) {
          const sep = sepChain(sp, ep);
          rules.push(
            `${comment(`${sp.id} -> ${ep.ip}:${ep.port}`)} -m recent --name ${sep} --mask ${family === 'ipv4' ? '255.255.255.255' : 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'} --rcheck --seconds ${sp.affinitySeconds} --reap -j ${sep}`,
          );
        }
      }
      eps.forEach((ep, i) => {
        const prob =
          i < eps.length - 1 ? ` -m statistic --mode random --probability ${(1 / (eps.length - i)).toFixed(10)}` : '';
        rules.push(`${comment(`${sp.id} -> ${ep.ip}:${ep.port}`)}${prob} -j ${sepChain(sp, ep)}`);
      });
    };
    const masq = cfg.masqueradeAll || localCidrs.length === 0 ? '' : ` ! -s ${localCidrs[0]}`; // `!` takes one address
    own(svc).push(
      `${comment(`${sp.id} cluster IP`)} ${m} -d ${host(family, sp.clusterIP)} --dport ${sp.port}${masq} -j KDP-MARK-MASQ`,
    );
    lb(svc, sp.clusterEndpoints);
    if ((sp.internalLocal || sp.externalLocal) && hasLocal) lb(svl, sp.localEndpoints);

    // ClusterIP
    if (sp.internalLocal && !hasLocal) {
      ch(filter, 'KDP-SERVICES').push(
        `${comment(`${sp.id} has no local endpoints`)} ${m} -d ${host(family, sp.clusterIP)} --dport ${sp.port} -j DROP`,
      );
    } else {
      svcRules.push(
        `${comment(`${sp.id} cluster IP`)} ${m} -d ${host(family, sp.clusterIP)} --dport ${sp.port} -j ${sp.internalLocal ? svl : svc}`,
      );
    }

    if (externalIPs.length === 0 && sp.nodePort === undefined) continue;
    if (sp.externalLocal && !hasLocal) {
      // external traffic is dropped in filter INPUT/FORWARD, after DNAT: the pods' and the node's own traffic,
      // short-circuited to the cluster-wide chain by the EXT chain below, is no longer addressed to it there
      for (const ip of externalIPs)
        ch(filter, 'KDP-EXTERNAL-SERVICES').push(
          `${comment(`${sp.id} has no local endpoints`)} ${m} -d ${host(family, ip)} --dport ${sp.port} -j DROP`,
        );
      if (sp.nodePort !== undefined)
        ch(filter, 'KDP-EXTERNAL-SERVICES').push(
          `${comment(`${sp.id} has no local endpoints`)} -m addrtype --dst-type LOCAL ${m} --dport ${sp.nodePort} -j DROP`,
        );
    }
    const extRules = own(ext);
    if (sp.externalLocal) {
      // Local policy (kube-proxy, the fix of Kubernetes issue 65387): this node's pods and the node itself reach
      // the service's external addresses through the cluster-wide chain, also without a local endpoint
      if (localCidrs.length > 0)
        extRules.push(`${comment('pod traffic for external destinations')} -s ${localCidrs.join(',')} -j ${svc}`);
      extRules.push(
        `${comment('masquerade LOCAL traffic')} -m addrtype --src-type LOCAL -j KDP-MARK-MASQ`,
        `${comment('route LOCAL traffic to cluster endpoints')} -m addrtype --src-type LOCAL -j ${svc}`,
        ...(hasLocal ? [`-j ${svl}`] : []),
      );
    } else {
      extRules.push('-j KDP-MARK-MASQ', `-j ${svc}`);
    }
    const firewalled = sp.sourceRanges.length > 0;
    if (firewalled) {
      const fwRules = own(fw);
      for (const r of sp.sourceRanges) fwRules.push(`${comment(`${sp.id} loadbalancer IP`)} -s ${r} -j ${ext}`);
    }
    for (const ip of sp.externalIPs)
      svcRules.push(`${comment(`${sp.id} external IP`)} ${m} -d ${host(family, ip)} --dport ${sp.port} -j ${ext}`);
    for (const ip of sp.loadBalancerIPs) {
      svcRules.push(
        `${comment(`${sp.id} loadbalancer IP`)} ${m} -d ${host(family, ip)} --dport ${sp.port} -j ${firewalled ? fw : ext}`,
      );
      if (firewalled)
        ch(filter, 'KDP-PROXY-FIREWALL').push(
          `${comment(`${sp.id} traffic not accepted by ${fw}`)} ${m} -d ${host(family, ip)} --dport ${sp.port} -j DROP`,
        );
    }
    if (sp.nodePort !== undefined) npRules.push(`${comment(sp.id)} ${m} --dport ${sp.nodePort} -j ${ext}`);
  }
  if (cfg.nodePortAddresses && cfg.nodePortAddresses.length > 0) {
    // this family's addresses only; 127.0.0.1 among them serves localhost NodePorts (route_localnet, proxy.ts)
    for (const a of cfg.nodePortAddresses.filter((x) => (family === 'ipv6') === x.includes(':')))
      svcRules.push(
        `${comment('kdp service nodeports; NOTE: this must be the last rule in this chain')} -d ${host(family, a)} -j KDP-NODEPORTS`,
      );
  } else {
    svcRules.push(
      `${comment('kdp service nodeports; NOTE: this must be the last rule in this chain')} -m addrtype --dst-type LOCAL ! -d ${loopback} -j KDP-NODEPORTS`,
    );
  }
  return {
    family,
    tables: new Map([
      ['filter', filter],
      ['nat', nat],
    ]),
    owner,
  };
}

/**
 * iptables-restore --noflush input. Chains listed get a `:CHAIN - [0:0]` line (which flushes them) and all
 * their rules; on a partial sync the chains of unchanged services are left alone. Chains in `existing` that
 * are no longer wanted are flushed and deleted.
 */
export function restoreText(
  next: IptState,
  opts: {
    full: boolean;
    changed: ReadonlySet<string>;
    existing: ReadonlyMap<string, ReadonlySet<string>>;
    prevOwner?: ReadonlyMap<string, string>;
  },
): string {
  const out: string[] = [];
  for (const [table, chains] of next.tables) {
    out.push(`*${table}`);
    const have = opts.existing.get(table) ?? new Set<string>();
    const write: string[] = [];
    for (const name of chains.keys()) {
      const svc = next.owner.get(name);
      const skip = table === 'nat' && !opts.full && svc !== undefined && !opts.changed.has(svc) && have.has(name);
      if (!skip) write.push(name);
    }
    const stale = [...have].filter((n) => !chains.has(n));
    for (const n of write) out.push(`:${n} - [0:0]`);
    for (const n of stale) out.push(`:${n} - [0:0]`);
    for (const n of write) for (const r of chains.get(n)!) out.push(`-A ${n} ${r}`);
    for (const n of stale) out.push(`-X ${n}`);
    out.push('COMMIT');
  }
  return out.join('\n') + '\n';
}

/** KDP-* chain names per table in `iptables-save` output. */
export function parseSaveChains(save: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  let table = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      out.set(table, new Set());
    } else if (line.startsWith(`:${CHAIN_PREFIX}`)) {
      out.get(table)?.add(line.slice(1).split(' ')[0]!);
    }
  }
  return out;
}
