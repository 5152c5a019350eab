// kdp-portmap: a chained plugin for the `portMappings` capability (hostPort DNAT, like the reference
// portmap). It passes prevResult through. Unlike the reference, DEL needs no runtimeConfig: its rules are
// tagged with the attachment and found by listing the table.
import { isIP } from 'node:net';
import { KdpError } from '../common/errors.ts';
import { validAttachments } from '../ipam/host-local.ts';
import { formatNetwork, parseCidr } from '../ipam/ip.ts';
import { attachmentHash, enableRouteLocalnetTowards } from '../netlink/links.ts';
import { NftRunner, comment, defaultNftLock, renderBase, renderPortMaps, tag } from '../netlink/nft.ts';
import type { WarmContext } from './warm.ts';
import type { PluginVerbs } from '../cnispec/skel.ts';
import type { CniRequest, CniResult, PortMapping } from '../cnispec/types.ts';

export function portMappings(config: Readonly<Record<string, unknown>>): PortMapping[] {
  const rc = config.runtimeConfig as { portMappings?: unknown } | undefined;
  const raw = rc?.portMappings;
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new KdpError('KDP_CNI_INVALID_CONFIG', 'runtimeConfig.portMappings must be a list');
  return raw.map((v: unknown, i) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new KdpError('KDP_CNI_INVALID_CONFIG', `portMappings[${i}] must be an object`);
    const m = v as Record<string, unknown>;
    const hostPort = Number(m.hostPort);
    const containerPort = Number(m.containerPort);
    const protocol = String(m.protocol ?? 'tcp').toLowerCase();
    if (
      !Number.isInteger(hostPort) ||
      hostPort < 1 ||
      hostPort > 65535 ||
      !Number.isInteger(containerPort) ||
      containerPort < 1 ||
      containerPort > 65535
    ) {
      throw new KdpError('KDP_CNI_INVALID_CONFIG', `portMappings[${i}]: invalid port`);
    }
    if (!['tcp', 'udp', 'sctp'].includes(protocol))
      throw new KdpError(
        'KDP_CNI_UNSUPPORTED_FIELD',
        `unsupported field portMappings[${i}].protocol=${JSON.stringify(protocol)}`,
      );
    if (m.hostIP !== undefined && m.hostIP !== null && typeof m.hostIP !== 'string')
      throw new KdpError('KDP_CNI_INVALID_CONFIG', `portMappings[${i}].hostIP must be a string`);
    const hostIP = typeof m.hostIP === 'string' && m.hostIP !== '' ? m.hostIP : undefined;
    if (hostIP !== undefined && (isIP(hostIP) === 0 || hostIP.includes('%')))
      throw new KdpError(
        'KDP_CNI_INVALID_CONFIG',
        `portMappings[${i}].hostIP ${JSON.stringify(hostIP)} is not an IP address`,
      );
    return { hostPort, containerPort, protocol: protocol as PortMapping['protocol'], ...(hostIP ? { hostIP } : {}) };
  });
}

/** The networks (canonical CIDRs) of the container's addresses in prevResult (those with a prefix). */
export function containerNets(prev: CniResult): string[] {
  const nets = new Set<string>();
  const ips = containerIps(prev, true);
  for (const a of ips) {
    if (!a.includes('/')) continue;
    try {
      nets.add(formatNetwork(parseCidr(a)));
    } catch {
      throw new KdpError('KDP_CNI_INVALID_CONFIG', `prevResult: ${JSON.stringify(a)} is not an address/prefix`);
    }
  }
  return [...nets];
}

/**
 * The container's addresses in prevResult (those on a sandbox interface, or all when unindexed); with
 * `withPrefix` as written there (address/prefix).
 */
export function containerIps(prev: CniResult, withPrefix = false): string[] {
  const bad = (what: string) => new KdpError('KDP_CNI_INVALID_CONFIG', `prevResult: ${what}`);
  const ifs: unknown = prev.interfaces ?? [];
  const ips: unknown = prev.ips ?? [];
  if (!Array.isArray(ifs)) throw bad('interfaces must be a list');
  if (!Array.isArray(ips)) throw bad('ips must be a list');
  const out: string[] = [];
  ips.forEach((v: unknown, i) => {
    const ip = v as { address?: unknown; interface?: unknown } | null;
    if (typeof ip !== 'object' || ip === null || typeof ip.address !== 'string')
      throw bad(`ips[${i}].address must be a string`);
    const addr = ip.address.split('/')[0] as string;
    if (isIP(addr) === 0 || addr.includes('%'))
      throw bad(`ips[${i}].address ${JSON.stringify(ip.address)} is not an address`);
    const iface = ip.interface;
    const sandbox =
      typeof iface === 'number' ? (ifs[iface] as { sandbox?: unknown } | null | undefined)?.sandbox : undefined;
    if (iface === undefined || iface === null || sandbox) out.push(withPrefix ? ip.address : addr);
  });
  return out;
}

export function createPortmapVerbs(nft: NftRunner): PluginVerbs {
  const tagOf = (req: CniRequest) => tag('p', attachmentHash(req.containerId, req.ifname));
  return {
    async add(req) {
      const prev = req.config.prevResult as CniResult | undefined;
      if (!prev)
        throw new KdpError(
          'KDP_CNI_INVALID_CONFIG',
          'kdp-portmap must be called as a chained plugin (prevResult missing)',
        );
      const maps = portMappings(req.config);
      if (maps.length === 0) return prev;
      const ips = containerIps(prev);
      if (ips.length === 0) throw new KdpError('KDP_CNI_FAILED', 'prevResult has no container address to map ports to');
      const t = tagOf(req);
      const snat = req.config.snat ?? true;
      if (typeof snat !== 'boolean') throw new KdpError('KDP_CNI_INVALID_CONFIG', 'snat must be true or false');
      try {
        await nft.apply([
          ...renderBase(),
          ...renderPortMaps(t, String(req.config.name), ips, maps, snat, containerNets(prev)),
        ]);
        // 127.0.0.1:hostPort: the DNATed packet keeps its 127/8 source, which the kernel routes out of a
        // non-loopback interface only with route_localnet (as the reference portmap sets it)
        if (snat) for (const ip of ips.filter((a) => !a.includes(':'))) enableRouteLocalnetTowards(ip);
      } catch (err) {
        await nft.remove((r) => r.tag === t).catch(() => 0);
        throw err;
      }
      return prev;
    },
    async del(req) {
      const t = tagOf(req);
      await nft.remove((r) => r.tag === t);
    },
    async check(req) {
      const maps = portMappings(req.config);
      if (maps.length === 0) return;
      const t = tagOf(req);
      if (!(await nft.tagged()).some((r) => r.tag === t))
        throw new KdpError('KDP_CNI_FAILED', `hostPort rules ${t} missing`);
    },
    async gc(req) {
      const valid = new Set(validAttachments(req.config).map((a) => attachmentHash(a.containerID, a.ifname)));
      const net = comment('', String(req.config.name)).trim();
      await nft.remove((r) => r.kind === 'p' && r.network === net && !valid.has(r.hash));
    },
    async status() {},
  };
}

/** The kdp-portmap verbs; `warm` = the warm server's pre-spawned children and lock agents. */
export const portmapVerbs = (warm?: WarmContext): PluginVerbs =>
  createPortmapVerbs(warm ? new NftRunner(warm.exec, defaultNftLock(), warm.locks.lock) : new NftRunner());
