// kdp-portmap: a chained plugin for the `portMappings` capability (hostPort DNAT, like the reference
// portmap). It passes prevResult through. Unlike the reference, DEL needs no runtimeConfig: its rules are
// tagged with the attachment and found by listing the table.
import { KdpError } from '../common/errors.ts';
import { validAttachments } from '../ipam/host-local.ts';
import { attachmentHash } from '../netlink/links.ts';
import { NftRunner, comment, renderBase, renderPortMaps, tag } from '../netlink/nft.ts';
import type { PluginVerbs } from './skel.ts';
import type { CniRequest, CniResult, PortMapping } from './types.ts';

export function portMappings(config: Readonly<Record<string, unknown>>): PortMapping[] {
  const rc = config.runtimeConfig as { portMappings?: unknown } | undefined;
  const raw = rc?.portMappings;
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new KdpError('KDP_CNI_INVALID_CONFIG', 'runtimeConfig.portMappings must be a list');
  return raw.map((m: Record<string, unknown>, i) => {
    const hostPort = Number(m.hostPort);
    const containerPort = Number(m.containerPort);
    const protocol = String(m.protocol ?? 'tcp').toLowerCase();
    if (!Number.isInteger(hostPort) || hostPort < 1 || hostPort > 65535 || !Number.isInteger(containerPort) || containerPort < 1 || containerPort > 65535) {
      throw new KdpError('KDP_CNI_INVALID_CONFIG', `portMappings[${i}]: invalid port`);
    }
    if (!['tcp', 'udp', 'sctp'].includes(protocol)) throw new KdpError('KDP_CNI_UNSUPPORTED_FIELD', `unsupported field portMappings[${i}].protocol=${JSON.stringify(protocol)}`);
    const hostIP = typeof m.hostIP === 'string' && m.hostIP !== '' ? m.hostIP : undefined;
    return { hostPort, containerPort, protocol: protocol as PortMapping['protocol'], ...(hostIP ? { hostIP } : {}) };
  });
}

/** The container's addresses in prevResult (those on a sandbox interface, or all when unindexed). */
export function containerIps(prev: CniResult): string[] {
  const ifs = prev.interfaces ?? [];
  return (prev.ips ?? [])
    .filter((ip) => ip.interface === undefined || ifs[ip.interface]?.sandbox)
    .map((ip) => ip.address.split('/')[0] as string);
}

export function createPortmapVerbs(nft: NftRunner): PluginVerbs {
  const tagOf = (req: CniRequest) => tag('p', attachmentHash(req.containerId, req.ifname));
  return {
    async add(req) {
      const prev = req.config.prevResult as CniResult | undefined;
      if (!prev) throw new KdpError('KDP_CNI_INVALID_CONFIG', 'kdp-portmap must be called as a chained plugin (prevResult missing)');
      const maps = portMappings(req.config);
      if (maps.length === 0) return prev;
      const ips = containerIps(prev);
      if (ips.length === 0) throw new KdpError('KDP_CNI_FAILED', 'prevResult has no container address to map ports to');
      const t = tagOf(req);
      try {
        await nft.apply([...renderBase(), ...renderPortMaps(t, String(req.config.name), ips, maps)]);
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
      if (!(await nft.tagged()).some((r) => r.tag === t)) throw new KdpError('KDP_CNI_FAILED', `hostPort rules ${t} missing`);
    },
    async gc(req) {
      const valid = new Set(validAttachments(req.config).map((a) => attachmentHash(a.containerID, a.ifname)));
      const net = comment('', String(req.config.name)).trim();
      await nft.remove((r) => r.kind === 'p' && r.network === net && !valid.has(r.hash));
    },
    async status() {},
  };
}

export const portmapVerbs = (): PluginVerbs => createPortmapVerbs(new NftRunner());
