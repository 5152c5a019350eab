// host-local compatible IPAM configuration: parsed and validated in one step into typed range sets.
// Keys: ranges [[{subnet, rangeStart, rangeEnd, gateway}]] (one address per range set: [[v4],[v6]] is
// dual-stack) or the legacy top-level subnet/rangeStart/rangeEnd/gateway; routes; dataDir. Requested
// addresses come from CNI_ARGS IP=, args.cni.ips and runtimeConfig.ips; runtimeConfig.ipRanges replaces ranges.
import { KdpError } from '../common/errors.ts';
import type { CniRoute } from '../cnispec/types.ts';
import { contains, formatIp, formatNetwork, lastAddress, network, parseCidr, parseIp } from './ip.ts';
import type { Cidr, Family, Ip } from './ip.ts';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

interface IpRange {
  readonly subnet: Cidr;
  readonly start: bigint;
  readonly end: bigint;
  readonly gateway: bigint;
}

export type RangeSet = readonly IpRange[];

export interface IpamConfig {
  /** the network name: the directory under dataDir */
  readonly name: string;
  readonly rangeSets: readonly RangeSet[];
  readonly routes: readonly CniRoute[];
  readonly dataDir: string;
  readonly requested: readonly Ip[];
}

const invalid = (msg: string) => new KdpError('KDP_CNI_INVALID_CONFIG', msg);

function str(v: unknown, key: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw invalid(`ipam: ${key} must be a string`);
  return v;
}

function obj(v: unknown, key: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`${key} must be an object`);
  return v as Record<string, unknown>;
}

function inRange(subnet: Cidr, v: bigint, key: string): bigint {
  if (!contains(subnet, { family: subnet.family, value: v })) {
    throw invalid(
      `ipam: ${key} ${formatIp({ family: subnet.family, value: v })} is not in subnet ${formatNetwork(subnet)}`,
    );
  }
  return v;
}

export function parseRange(raw: Record<string, unknown>): IpRange {
  const subnetStr = str(raw.subnet, 'subnet');
  if (!subnetStr) throw invalid('ipam: a range needs a subnet');
  const subnet = parseCidr(subnetStr);
  if (network(subnet) !== subnet.ip) throw invalid(`ipam: subnet ${subnetStr} has host bits set`);
  const width = subnet.family === 4 ? 32 : 128;
  if (subnet.prefix > width - 2) throw invalid(`ipam: network ${subnetStr} too small to allocate from`);
  const ipIn = (key: string): bigint | undefined => {
    const s = str(raw[key], key);
    if (s === undefined) return undefined;
    const ip = parseIp(s);
    if (ip.family !== subnet.family) throw invalid(`ipam: ${key} ${s} is not in subnet ${subnetStr}`);
    return inRange(subnet, ip.value, key);
  };
  const net = network(subnet);
  const last = lastAddress(subnet) - (subnet.family === 4 ? 1n : 0n);
  const start = ipIn('rangeStart') ?? net + 1n;
  const end = ipIn('rangeEnd') ?? last;
  if (start > end) throw invalid(`ipam: rangeStart is after rangeEnd in ${subnetStr}`);
  const gateway = ipIn('gateway') ?? net + 1n;
  return { subnet, start, end, gateway };
}

function overlaps(a: IpRange, b: IpRange): boolean {
  return a.subnet.family === b.subnet.family && a.start <= b.end && b.start <= a.end;
}

function parseRangeSets(ipam: Record<string, unknown>, runtimeRanges: unknown): IpRange[][] {
  let raw: unknown = ipam.ranges;
  if (Array.isArray(runtimeRanges) && runtimeRanges.length > 0) raw = runtimeRanges;
  let sets: IpRange[][];
  if (Array.isArray(raw) && raw.length > 0) {
    sets = raw.map((set, i) => {
      if (!Array.isArray(set) || set.length === 0)
        throw invalid(`ipam: ranges[${i}] must be a non-empty list of ranges`);
      return set.map((r, j) => parseRange(obj(r, `ipam.ranges[${i}][${j}]`)));
    });
  } else if (ipam.subnet !== undefined) {
    sets = [[parseRange(ipam)]];
  } else {
    throw invalid('ipam: no ranges and no subnet');
  }
  const all = sets.flat();
  for (const set of sets) {
    const fam = set[0]?.subnet.family;
    if (set.some((r) => r.subnet.family !== fam)) throw invalid('ipam: a range set mixes IPv4 and IPv6');
  }
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      if (overlaps(all[i] as IpRange, all[j] as IpRange)) throw invalid('ipam: ranges overlap');
    }
  }
  return sets;
}

function requestedIps(config: Record<string, unknown>, args: Readonly<Record<string, string>>): Ip[] {
  const out: string[] = [];
  if (args.IP) out.push(...args.IP.split(','));
  const a = config.args as { cni?: { ips?: unknown } } | undefined;
  if (Array.isArray(a?.cni?.ips)) out.push(...(a.cni.ips as string[]));
  const rc = config.runtimeConfig as { ips?: unknown } | undefined;
  if (Array.isArray(rc?.ips)) out.push(...(rc.ips as string[]));
  return [...new Set(out.map((s) => String(s).trim()).filter((s) => s !== ''))].map((s) =>
    parseIp(s.split('/')[0] as string),
  );
}

function parseRoutes(v: unknown): CniRoute[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalid('ipam: routes must be a list');
  return v.map((r, i) => {
    const o = obj(r, `ipam.routes[${i}]`);
    const dst = str(o.dst, 'routes.dst');
    if (!dst) throw invalid(`ipam: routes[${i}] needs dst`);
    parseCidr(dst);
    const gw = str(o.gw, 'routes.gw');
    if (gw) parseIp(gw);
    return gw ? { dst, gw } : { dst };
  });
}

/** Parses the `ipam` section of a plugin config (the whole config object is passed, as delegates receive it). */
export function loadIpamConfig(
  config: Readonly<Record<string, unknown>>,
  args: Readonly<Record<string, string>> = {},
): IpamConfig {
  const ipam = obj(config.ipam, 'ipam');
  const name = config.name;
  if (typeof name !== 'string' || name === '' || name.includes('/') || name.startsWith('.'))
    throw invalid('the network configuration needs a valid name');
  const rc = config.runtimeConfig as { ipRanges?: unknown } | undefined;
  const rangeSets = parseRangeSets(ipam, rc?.ipRanges);
  const requested = requestedIps(config as Record<string, unknown>, args);
  const dataDir = str(ipam.dataDir, 'dataDir') ?? DEFAULT_DATA_DIR;
  // eslint-disable-next-line no-control-regex
  if (!dataDir.startsWith('/') || /[\u0000-\u001f]/.test(dataDir))
    throw invalid(`ipam: dataDir ${JSON.stringify(dataDir)} must be an absolute path`);
  return { name, rangeSets, routes: parseRoutes(ipam.routes), dataDir, requested };
}

export function rangeSetFamily(set: RangeSet): Family {
  return (set[0] as IpRange).subnet.family;
}
