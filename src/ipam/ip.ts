// IP address arithmetic on bigints: parse, format (RFC 5952 for IPv6), CIDRs. Pure; no I/O.
import { KdpError } from '../common/errors.ts';

export type Family = 4 | 6;

export interface Ip {
  readonly family: Family;
  readonly value: bigint;
}

export interface Cidr {
  readonly family: Family;
  /** the address as written (may have host bits set, e.g. an interface address) */
  readonly ip: bigint;
  readonly prefix: number;
}

const bits = (f: Family): number => (f === 4 ? 32 : 128);

function bad(what: string, s: string): KdpError {
  return new KdpError('KDP_CNI_INVALID_CONFIG', `invalid ${what} ${JSON.stringify(s)}`);
}

function parse4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255 || (p.length > 1 && p.startsWith('0'))) return undefined;
    v = (v << 8n) | BigInt(Number(p));
  }
  return v;
}

function parse6(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  let head = s;
  let tail4: bigint | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    tail4 = parse4(s.slice(lastColon + 1));
    if (tail4 === undefined) return undefined;
    head = s.slice(0, lastColon + 1) + '0:0';
  }
  const dbl = head.split('::');
  if (dbl.length > 2) return undefined;
  const left = dbl[0] === '' ? [] : (dbl[0] as string).split(':');
  const right = dbl.length === 2 ? (dbl[1] === '' ? [] : (dbl[1] as string).split(':')) : [];
  const groups =
    dbl.length === 2 ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  if (groups.length !== 8 || (dbl.length === 2 && left.length + right.length > 7)) return undefined;
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail4 !== undefined) v = (v & ~0xffffffffn) | tail4;
  return v;
}

export function tryParseIp(s: string): Ip | undefined {
  if (s.includes(':')) {
    const v = parse6(s);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parse4(s);
  return v === undefined ? undefined : { family: 4, value: v };
}

export function parseIp(s: string): Ip {
  const ip = tryParseIp(s);
  if (!ip) throw bad('IP address', s);
  return ip;
}

export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
  }
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // longest run of >= 2 zero groups becomes '::' (RFC 5952)
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function parseCidr(s: string): Cidr {
  const slash = s.indexOf('/');
  if (slash < 0) throw bad('CIDR', s);
  const ip = tryParseIp(s.slice(0, slash));
  const pfx = s.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(pfx) || Number(pfx) > bits(ip.family)) throw bad('CIDR', s);
  return { family: ip.family, ip: ip.value, prefix: Number(pfx) };
}

function mask(family: Family, prefix: number): bigint {
  const b = BigInt(bits(family));
  return ((1n << b) - 1n) ^ ((1n << (b - BigInt(prefix))) - 1n);
}

export function network(c: Cidr): bigint {
  return c.ip & mask(c.family, c.prefix);
}

export function lastAddress(c: Cidr): bigint {
  return network(c) | (((1n << BigInt(bits(c.family))) - 1n) ^ mask(c.family, c.prefix));
}

export function contains(c: Cidr, ip: Ip): boolean {
  return c.family === ip.family && (ip.value & mask(c.family, c.prefix)) === network(c);
}

/** The network in canonical form, e.g. 10.1.2.0/24. */
export function formatNetwork(c: Cidr): string {
  return `${formatIp({ family: c.family, value: network(c) })}/${c.prefix}`;
}
