// kdp-bridge: the main plugin. Config compatible with the reference bridge (bridge, isGateway,
// isDefaultGateway, ipMasq, hairpinMode, mtu, promiscMode) plus `clusterCIDRs` (destinations that are
// not masqueraded; default: the pod's own subnets). ADD is all-or-nothing (every step registers its
// undo); DEL is idempotent and needs neither the netns nor prevResult (the host veth name and the
// rule tags derive from container id + ifname).
import { readFileSync } from 'node:fs';
import { KdpError, errorMessage, isKdpError } from '../common/errors.ts';
import type { ErrorCode } from '../common/errors.ts';
import {
  hostLocalVerbs,
  ipamAdd,
  ipamCheck,
  ipamDel,
  ipamGc,
  ipamStatus,
  validAttachments,
} from '../ipam/host-local.ts';
import { loadIpamConfig } from '../ipam/config.ts';
import { formatIp, parseCidr } from '../ipam/ip.ts';
import {
  HOST_VETH_RE,
  IpRunner,
  attachmentHash,
  hostVethName,
  localLinks,
  netnsExists,
  randomMac,
  setSysctl,
} from '../netlink/links.ts';
import { NftRunner, comment, defaultNftLock, renderBase, renderMasq, tag } from '../netlink/nft.ts';
import type { Locker } from '../common/flock.ts';
import type { WarmContext } from './warm.ts';
import { delegate } from '../cnispec/delegate.ts';
import { NO_TRACE } from '../cnispec/trace.ts';
import type { PluginVerbs } from '../cnispec/skel.ts';
import type { CniInterface, CniIpConfig, CniRequest, CniResult, CniRoute } from '../cnispec/types.ts';

export interface BridgeConfig {
  readonly bridge: string;
  readonly isGateway: boolean;
  readonly isDefaultGateway: boolean;
  readonly ipMasq: boolean;
  readonly hairpinMode: boolean;
  readonly promiscMode: boolean;
  readonly mtu: number | undefined;
  readonly clusterCIDRs: readonly string[] | undefined;
  readonly ipamType: string;
  readonly mac: string | undefined;
}

const UNSUPPORTED = [
  'vlan',
  'vlanTrunk',
  'macspoofchk',
  'enabledad',
  'disableContainerInterface',
  'portIsolation',
] as const;

function bool(v: unknown, key: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new KdpError('KDP_CNI_INVALID_CONFIG', `${key} must be true or false`);
  return v;
}

export function loadBridgeConfig(
  c: Readonly<Record<string, unknown>>,
  args: Readonly<Record<string, string>> = {},
): BridgeConfig {
  for (const k of UNSUPPORTED) {
    const v = c[k];
    if (v !== undefined && v !== false && v !== 0 && v !== null && !(Array.isArray(v) && v.length === 0)) {
      throw new KdpError('KDP_CNI_UNSUPPORTED_FIELD', `unsupported field ${k}=${JSON.stringify(v)}`);
    }
  }
  const bridge = c.bridge ?? 'cni0';
  if (typeof bridge !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(bridge) || HOST_VETH_RE.test(bridge)) {
    throw new KdpError('KDP_CNI_INVALID_CONFIG', `invalid bridge name ${JSON.stringify(bridge)}`);
  }
  const isDefaultGateway = bool(c.isDefaultGateway, 'isDefaultGateway');
  const hairpinMode = bool(c.hairpinMode, 'hairpinMode');
  const promiscMode = bool(c.promiscMode, 'promiscMode');
  if (hairpinMode && promiscMode)
    throw new KdpError('KDP_CNI_INVALID_CONFIG', 'cannot set hairpin mode and promiscuous mode at the same time');
  let mtu: number | undefined;
  if (c.mtu !== undefined && c.mtu !== 0) {
    if (typeof c.mtu !== 'number' || !Number.isInteger(c.mtu) || c.mtu < 576 || c.mtu > 65535)
      throw new KdpError('KDP_CNI_INVALID_CONFIG', `invalid mtu ${JSON.stringify(c.mtu)}`);
    mtu = c.mtu;
  }
  let clusterCIDRs: string[] | undefined;
  if (c.clusterCIDRs !== undefined) {
    if (!Array.isArray(c.clusterCIDRs))
      throw new KdpError('KDP_CNI_INVALID_CONFIG', 'clusterCIDRs must be a list of CIDRs');
    clusterCIDRs = c.clusterCIDRs.map((s) => {
      parseCidr(String(s));
      return String(s);
    });
  }
  const ipam = c.ipam as { type?: unknown } | undefined;
  if (!ipam || typeof ipam.type !== 'string' || ipam.type === '')
    throw new KdpError('KDP_CNI_INVALID_CONFIG', 'ipam.type is required');
  const rc = c.runtimeConfig as { mac?: unknown } | undefined;
  const mac = typeof rc?.mac === 'string' && rc.mac !== '' ? rc.mac : args.MAC;
  if (mac !== undefined && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac))
    throw new KdpError('KDP_CNI_INVALID_CONFIG', `invalid MAC ${JSON.stringify(mac)}`);
  return {
    bridge,
    isGateway: bool(c.isGateway, 'isGateway') || isDefaultGateway,
    isDefaultGateway,
    ipMasq: bool(c.ipMasq, 'ipMasq'),
    hairpinMode,
    promiscMode,
    mtu,
    clusterCIDRs,
    ipamType: ipam.type,
    mac: mac?.toLowerCase(),
  };
}

export interface BridgeDeps {
  readonly ip: IpRunner;
  readonly nft: NftRunner;
  /** the built-in IPAM's lock (default: a `flock` fork per call; the warm server passes its lock agents) */
  readonly lock?: Locker;
}

const builtinIpam = (t: string) => t === 'kdp-host-local';

async function ipam(
  cfg: BridgeConfig,
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS',
  req: CniRequest,
  lock?: Locker,
): Promise<CniResult | undefined> {
  if (builtinIpam(cfg.ipamType)) {
    switch (command) {
      case 'ADD':
        return ipamAdd(req, lock);
      case 'DEL':
        await ipamDel(req, lock);
        return undefined;
      case 'CHECK':
        await ipamCheck(req, lock);
        return undefined;
      case 'GC':
        await ipamGc(req, lock);
        return undefined;
      case 'STATUS':
        await ipamStatus(req, lock);
        return undefined;
    }
  }
  return delegate(cfg.ipamType, command, req);
}

const prefixOf = (addr: string) => addr.split('/')[0] as string;
const isV6 = (addr: string) => addr.includes(':');

/** The gateway/prefix of every range of the built-in IPAM config (known before allocation). */
export function configGateways(req: CniRequest): CniIpConfig[] {
  const cfg = loadIpamConfig(req.config, req.args);
  return cfg.rangeSets.flat().map((r) => ({
    address: `${formatIp({ family: r.subnet.family, value: r.gateway })}/${r.subnet.prefix}`,
    gateway: formatIp({ family: r.subnet.family, value: r.gateway }),
  }));
}

/** `addr replace` lines putting each gateway on the bridge (idempotent). */
export function gatewayLines(cfg: BridgeConfig, ips: readonly CniIpConfig[]): string[] {
  const out: string[] = [];
  for (const ip of ips) {
    if (!ip.gateway) continue;
    const pfx = ip.address.split('/')[1];
    out.push(`addr replace ${ip.gateway}/${pfx} dev ${cfg.bridge}${isV6(ip.gateway) ? ' nodad' : ''}`);
  }
  return out;
}

/**
 * The current MAC of an existing bridge whose MAC the kernel may still change (addr_assign_type is not
 * NET_ADDR_SET = 3), read from sysfs (the plugin runs in the node's namespace with its sysfs); undefined when
 * it is set already or unreadable. Setting it once keeps it: the reference bridge plugin does the same.
 */
export function unfixedMac(bridge: string): string | undefined {
  try {
    if (readFileSync(`/sys/class/net/${bridge}/addr_assign_type`, 'utf8').trim() === '3') return undefined;
    const mac = readFileSync(`/sys/class/net/${bridge}/address`, 'utf8').trim();
    return /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac) ? mac : undefined;
  } catch {
    return undefined;
  }
}

/** The addresses (address/prefix) in `ip addr show` text output. */
export function podAddresses(ipAddrShow: string): string[] {
  return [...ipAddrShow.matchAll(/^\s+inet6? (\S+)/gm)].map((m) => m[1] as string);
}

/** The master of a link in `ip link show dev X` text output (undefined when it has none). */
export function linkMaster(ipLinkShow: string): string | undefined {
  return / master (\S+) /.exec(ipLinkShow.split('\n')[0] ?? '')?.[1];
}

/** `ip -batch` lines for the node side: bridge settings, gateway addresses (when known), the veth pair. */
export function hostBatch(
  cfg: BridgeConfig,
  req: CniRequest,
  hostVeth: string,
  hostMac: string,
  podMac: string,
  gateways: readonly CniIpConfig[],
  freezeMac?: string,
): string[] {
  const mtu = cfg.mtu ? ` mtu ${cfg.mtu}` : '';
  const lines = [`link set ${cfg.bridge}${mtu} up`];
  // setting the bridge's MAC (even to its current value) marks it as set: ports no longer change it
  if (freezeMac) lines.push(`link set ${cfg.bridge} address ${freezeMac}`);
  if (cfg.promiscMode) lines.push(`link set ${cfg.bridge} promisc on`);
  if (cfg.isGateway) lines.push(...gatewayLines(cfg, gateways));
  lines.push(
    `link add ${hostVeth}${mtu} address ${hostMac} type veth peer name ${req.ifname}${mtu} address ${podMac} netns ${req.netns}`,
  );
  lines.push(`link set ${hostVeth} master ${cfg.bridge} up`);
  if (cfg.hairpinMode) lines.push(`link set ${hostVeth} type bridge_slave hairpin on`);
  return lines;
}

/** `ip -batch` lines inside the pod: addresses, link up, routes. */
export function podBatch(
  cfg: BridgeConfig,
  ifname: string,
  ips: readonly CniIpConfig[],
  routes: readonly CniRoute[],
): string[] {
  const lines = ips.map((ip) => `addr add ${ip.address} dev ${ifname}${isV6(ip.address) ? ' nodad' : ''}`);
  lines.push(`link set ${ifname} up`);
  const gwFor = (v6: boolean) => ips.find((i) => isV6(i.address) === v6 && i.gateway)?.gateway;
  for (const r of routes) {
    const gw = r.gw ?? gwFor(isV6(r.dst));
    lines.push(`route add ${r.dst}${gw ? ` via ${gw}` : ''} dev ${ifname}`);
  }
  return lines;
}

export function podRoutes(cfg: BridgeConfig, ipamRoutes: readonly CniRoute[], ips: readonly CniIpConfig[]): CniRoute[] {
  const routes = [...ipamRoutes];
  if (cfg.isDefaultGateway) {
    for (const v6 of [false, true]) {
      const gw = ips.find((i) => isV6(i.address) === v6 && i.gateway)?.gateway;
      const dst = v6 ? '::/0' : '0.0.0.0/0';
      if (gw && !routes.some((r) => r.dst === dst)) routes.push({ dst, gw });
    }
  }
  return routes;
}

/**
 * One error for the failed independent steps of a DEL or GC. Their common code when they share one (an
 * invalid IPAM config is KDP_CNI_INVALID_CONFIG, CNI code 7, in DEL as in ADD), else KDP_CNI_FAILED.
 */
export function stepsFailed(verb: string, errors: readonly unknown[]): KdpError {
  const codes = new Set(errors.map((e) => (isKdpError(e) ? e.code : 'KDP_CNI_FAILED')));
  const code = codes.size === 1 ? ([...codes][0] as ErrorCode) : 'KDP_CNI_FAILED';
  return new KdpError(code, `${verb}: ${errors.map(errorMessage).join('; ')}`);
}

export function createBridgeVerbs(deps: BridgeDeps): PluginVerbs {
  const { ip, nft, lock } = deps;

  async function add(req: CniRequest): Promise<CniResult> {
    const trace = req.trace ?? NO_TRACE;
    const cfg = loadBridgeConfig(req.config, req.args);
    if (!netnsExists(req.netns))
      throw new KdpError(
        'KDP_CNI_UNKNOWN_CONTAINER',
        `failed to open netns ${JSON.stringify(req.netns)}: no such file`,
      );
    const hostVeth = hostVethName(req.containerId, req.ifname);
    const undo: (() => Promise<unknown>)[] = [];
    let podSide: ReturnType<IpRunner['startBatchIn']> | undefined;
    try {
      if (localLinks().has(hostVeth))
        throw new KdpError(
          'KDP_CNI_FAILED',
          `container veth name provided (${req.ifname}) already exists (host side ${hostVeth})`,
        );
      let freezeMac: string | undefined;
      if (!localLinks().has(cfg.bridge)) {
        // Created with an explicit MAC, which Linux then keeps: left alone, a bridge takes the lowest MAC
        // among its ports (a pod's host veth), and the gateway's MAC changes under every pod when that pod
        // goes. Another ADD may create it at the same moment: "File exists" is fine (its MAC wins).
        await trace.span(
          'ip bridge',
          ip.run(['link', 'add', cfg.bridge, 'address', randomMac(), 'type', 'bridge'], true),
        );
        if (!localLinks().has(cfg.bridge))
          throw new KdpError('KDP_CNI_FAILED', `could not create bridge ${cfg.bridge}`);
      } else {
        freezeMac = unfixedMac(cfg.bridge); // a bridge made by someone else (or an older kdp)
      }
      const hostMac = randomMac();
      const podMac = cfg.mac ?? randomMac();
      // The veth pair and the IPAM allocation do not depend on each other: run them at once. With the
      // built-in IPAM the gateways are known from the config, so they go into the same host batch.
      const gateways = builtinIpam(cfg.ipamType) ? configGateways(req) : [];
      undo.push(() => ip.run(['link', 'del', hostVeth], true));
      const ipamP = trace.span('ipam', ipam(cfg, 'ADD', req, lock));
      // the masquerade rule needs only the addresses: it goes in as soon as IPAM answers, beside the veth work
      const masqTag = tag('m', attachmentHash(req.containerId, req.ifname));
      const rulesP = ipamP.then(async (r) => {
        const ips = r?.ips ?? [];
        if (!cfg.ipMasq || ips.length === 0) return;
        const exclude = cfg.clusterCIDRs ?? ips.map((i) => i.address);
        await trace.span(
          'nft masquerade',
          nft.apply([
            ...renderBase(),
            ...renderMasq(
              masqTag,
              String(req.config.name),
              ips.map((i) => prefixOf(i.address)),
              exclude,
            ),
          ]),
        );
      });
      rulesP.catch(() => {}); // awaited below or by the undo; never an unhandled rejection
      if (cfg.ipMasq)
        undo.push(async () => {
          await rulesP.catch(() => {});
          await nft.remove((r) => r.tag === masqTag);
        });
      const hostP = trace.span(
        'ip host batch',
        ip.batch(hostBatch(cfg, req, hostVeth, hostMac, podMac, gateways, freezeMac), true),
      );
      // the pod-side `ip` starts now (warm server) and gets its lines once the veth and the addresses exist
      podSide = ip.startBatchIn(req.netns);
      const [ipamSettled, hostSettled] = await Promise.allSettled([ipamP, hostP]);
      if (ipamSettled.status === 'fulfilled') undo.splice(1, 0, () => ipam(cfg, 'DEL', req, lock)); // undone after the rules, before the veth
      if (hostSettled.status === 'rejected') throw hostSettled.reason;
      if (hostSettled.value.code !== 0) {
        if (/File exists/.test(hostSettled.value.stderr))
          throw new KdpError('KDP_CNI_FAILED', `container veth name provided (${req.ifname}) already exists`);
        throw new KdpError('KDP_CNI_FAILED', `setting up the veth pair failed: ${hostSettled.value.stderr.trim()}`);
      }
      if (ipamSettled.status === 'rejected') throw ipamSettled.reason;
      const ipamResult = ipamSettled.value;
      const ips = ipamResult?.ips ?? [];
      if (ips.length === 0) throw new KdpError('KDP_CNI_FAILED', 'IPAM plugin returned missing IP config');
      const routes = podRoutes(cfg, ipamResult?.routes ?? [], ips);
      const podLines = podBatch(cfg, req.ifname, ips, routes);
      const podP = trace.span('ip pod batch', podSide.finish(podLines));
      podSide = undefined;
      const work: Promise<unknown>[] = [podP, rulesP];
      if (cfg.isGateway && gateways.length === 0) work.push(ip.batch(gatewayLines(cfg, ips)));
      if (cfg.isGateway) {
        if (ips.some((i) => !isV6(i.address))) setSysctl('net.ipv4.ip_forward', '1');
        if (ips.some((i) => isV6(i.address))) setSysctl('net.ipv6.conf.all.forwarding', '1');
        trace.mark('sysctl');
      }
      const settled = await Promise.allSettled(work);
      const failed = settled.find((s) => s.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      trace.mark('children done');
      const prev = req.config.prevResult as CniResult | undefined;
      const base = prev?.interfaces?.length ?? 0;
      const ours: CniInterface[] = [
        { name: cfg.bridge },
        { name: hostVeth, mac: hostMac, ...(cfg.mtu ? { mtu: cfg.mtu } : {}) },
        { name: req.ifname, mac: podMac, sandbox: req.netns, ...(cfg.mtu ? { mtu: cfg.mtu } : {}) },
      ];
      return {
        cniVersion: req.cniVersion,
        interfaces: [...(prev?.interfaces ?? []), ...ours],
        ips: [...(prev?.ips ?? []), ...ips.map((i) => ({ ...i, interface: base + 2 }))],
        routes: [...(prev?.routes ?? []), ...routes],
        dns: ipamResult?.dns ?? prev?.dns ?? {},
      };
    } catch (err) {
      void podSide?.finish([], true).catch(() => {}); // a started pod-side child exits doing nothing
      for (const u of undo.reverse()) {
        try {
          await u();
        } catch {
          /* best effort: report the original failure */
        }
      }
      throw err;
    }
  }

  async function del(req: CniRequest): Promise<void> {
    const cfg = loadBridgeConfig(req.config, req.args);
    const errors: unknown[] = [];
    const step = async (fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    };
    // independent steps, run at once: IPAM release, the host side of the veth (deleting it removes the
    // pod side too; gone already is fine), the tagged rules
    const hostVeth = hostVethName(req.containerId, req.ifname);
    const t = tag('m', attachmentHash(req.containerId, req.ifname));
    const trace = req.trace ?? NO_TRACE;
    await Promise.all([
      step(() => trace.span('ipam', ipam(cfg, 'DEL', req, lock))),
      step(async () => {
        // as a batch line: the warm server has an `ip -batch -` waiting
        if (localLinks().has(hostVeth)) await trace.span('ip link del', ip.batch([`link del ${hostVeth}`], true));
      }),
      step(() =>
        trace.span(
          'nft remove',
          nft.remove((r) => r.tag === t, trace),
        ),
      ),
    ]);
    trace.mark('children done');
    if (errors.length > 0) throw stepsFailed('DEL', errors);
  }

  async function check(req: CniRequest): Promise<void> {
    const cfg = loadBridgeConfig(req.config, req.args);
    const prev = req.config.prevResult as CniResult | undefined;
    if (!prev) throw new KdpError('KDP_CNI_INVALID_CONFIG', 'CHECK needs prevResult');
    if (!netnsExists(req.netns)) throw new KdpError('KDP_CNI_UNKNOWN_CONTAINER', `netns ${req.netns} does not exist`);
    const idx = (prev.interfaces ?? []).findIndex((i) => i.name === req.ifname && i.sandbox);
    if (idx < 0) throw new KdpError('KDP_CNI_FAILED', `prevResult has no interface ${req.ifname} in a sandbox`);
    const hostVeth = hostVethName(req.containerId, req.ifname);
    const masqTag = tag('m', attachmentHash(req.containerId, req.ifname));
    // The four looks are independent: at once, each through an `ip -batch -`/`nft -f -` child the warm server
    // has waiting (one after the other, with two fresh `ip -j` spawns, CHECK took twice the reference's time).
    // Their failures are reported in the order a runtime would fix them: pod side, host side, rules, IPAM.
    const [pod, host, rules, ipamDone] = await Promise.allSettled([
      ip.startBatchIn(req.netns).finish([`addr show dev ${req.ifname}`], true),
      ip.batch([`link show dev ${hostVeth}`], true),
      cfg.ipMasq ? nft.tagged() : Promise.resolve([]),
      ipam(cfg, 'CHECK', req, lock),
    ]);
    if (pod.status === 'rejected') throw pod.reason;
    if (pod.value.code !== 0) throw new KdpError('KDP_CNI_FAILED', `Interface name ${req.ifname} not found`);
    const have = new Set(podAddresses(pod.value.stdout));
    for (const want of (prev.ips ?? []).filter((i) => i.interface === idx)) {
      if (!have.has(want.address))
        throw new KdpError('KDP_CNI_FAILED', `address ${want.address} missing on ${req.ifname}`);
    }
    if (host.status === 'rejected') throw host.reason;
    if (host.value.code !== 0) throw new KdpError('KDP_CNI_FAILED', `host veth ${hostVeth} not found`);
    if (linkMaster(host.value.stdout) !== cfg.bridge)
      throw new KdpError('KDP_CNI_FAILED', `host veth ${hostVeth} is not attached to ${cfg.bridge}`);
    if (rules.status === 'rejected') throw rules.reason;
    if (cfg.ipMasq && !rules.value.some((r) => r.tag === masqTag))
      throw new KdpError('KDP_CNI_FAILED', `masquerade rule ${masqTag} missing`);
    if (ipamDone.status === 'rejected') throw ipamDone.reason;
  }

  async function gc(req: CniRequest): Promise<void> {
    const cfg = loadBridgeConfig(req.config, req.args);
    const valid = validAttachments(req.config);
    const hashes = new Set(valid.map((a) => attachmentHash(a.containerID, a.ifname)));
    const vethes = new Set(valid.map((a) => hostVethName(a.containerID, a.ifname)));
    const errors: unknown[] = [];
    try {
      await ipam(cfg, 'GC', req, lock);
    } catch (err) {
      errors.push(err);
    }
    try {
      const net = comment('', String(req.config.name)).trim();
      await nft.remove((r) => r.kind === 'm' && r.network === net && !hashes.has(r.hash));
    } catch (err) {
      errors.push(err);
    }
    const ports = await ip.run(['-j', 'link', 'show', 'master', cfg.bridge], true);
    const names =
      ports.code === 0 ? (JSON.parse(ports.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname) : [];
    const stale = names.filter((n) => HOST_VETH_RE.test(n) && !vethes.has(n));
    if (stale.length > 0)
      await ip.batch(
        stale.map((n) => `link del ${n}`),
        true,
      );
    if (errors.length > 0) throw stepsFailed('GC', errors);
  }

  async function status(req: CniRequest): Promise<void> {
    const cfg = loadBridgeConfig(req.config, req.args);
    await ipam(cfg, 'STATUS', req, lock);
  }

  return { add, del, check, gc, status };
}

export { hostLocalVerbs };
/** The kdp-bridge verbs; `warm` = the warm server's pre-spawned children and lock agents (src/cni/warm.ts). */
export const bridgeVerbs = (warm?: WarmContext): PluginVerbs =>
  warm
    ? createBridgeVerbs({
        ip: new IpRunner(warm.exec),
        nft: new NftRunner(warm.exec, defaultNftLock(), warm.locks.lock),
        lock: warm.locks.lock,
      })
    : createBridgeVerbs({ ip: new IpRunner(), nft: new NftRunner() });
