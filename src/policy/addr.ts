// Address arithmetic for the compiler and the renderer, without bigint: an address is a fixed-width hex key
// (IPv4 8 digits, IPv6 32), so keys of one family compare as strings in numeric order; successor, predecessor,
// CIDR bounds and the CIDR test work digit by digit. Text <-> key conversions are memoized (bounded). Pure;
// inputs were validated at the conversion edge (src/k8s/convert.ts).
import { isIPv4 } from 'node:net';
import type { IPFamily } from '../model/types.ts';
import type { AddressRange } from './types.ts';

/** An inclusive range of keys of one family. */
export interface KeyRange {
  readonly family: IPFamily;
  readonly first: string;
  readonly last: string;
}

export function familyOf(ip: string): IPFamily {
  return isIPv4(ip) ? 'IPv4' : 'IPv6';
}

const HEX = '0123456789abcdef';
const MEMO_MAX = 1 << 16;
const toKey = new Map<string, string>();
const toIp = new Map<string, string>();

function remember(m: Map<string, string>, k: string, v: string): string {
  if (m.size >= MEMO_MAX) m.clear();
  m.set(k, v);
  return v;
}

const hex2 = (n: number): string => HEX[n >> 4]! + HEX[n & 15]!;

function v4Key(ip: string): string {
  let out = '';
  for (const o of ip.split('.')) out += hex2(Number(o));
  return out;
}

function v6Key(ip: string): string {
  let text = ip;
  // an embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const k = v4Key(v4[1]!);
    text = text.slice(0, v4.index) + `${k.slice(0, 4)}:${k.slice(4)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.toLowerCase().padStart(4, '0')).join('');
}

/** The key of an address: 8 (IPv4) or 32 (IPv6) lower-case hex digits. */
export function ipKey(ip: string): string {
  return toKey.get(ip) ?? remember(toKey, ip, isIPv4(ip) ? v4Key(ip) : v6Key(ip));
}

function keyText(key: string): string {
  if (key.length === 8) {
    const o: number[] = [];
    for (let i = 0; i < 8; i += 2) o.push(parseInt(key.slice(i, i + 2), 16));
    return o.join('.');
  }
  const groups: number[] = [];
  for (let i = 0; i < 32; i += 4) groups.push(parseInt(key.slice(i, i + 4), 16));
  // RFC 5952: the longest run (>= 2) of zero groups becomes ::
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** The canonical text of a key (IPv6 in RFC 5952 form). */
export function keyToIp(key: string): string {
  return toIp.get(key) ?? remember(toIp, key, keyText(key));
}

/** key + 1; undefined past the family's last address. */
export function keySucc(key: string): string | undefined {
  let i = key.length - 1;
  while (i >= 0 && key[i] === 'f') i--;
  if (i < 0) return undefined;
  return key.slice(0, i) + HEX[HEX.indexOf(key[i]!) + 1]! + '0'.repeat(key.length - 1 - i);
}

/** key - 1; undefined before the family's first address. */
export function keyPred(key: string): string | undefined {
  let i = key.length - 1;
  while (i >= 0 && key[i] === '0') i--;
  if (i < 0) return undefined;
  return key.slice(0, i) + HEX[HEX.indexOf(key[i]!) - 1]! + 'f'.repeat(key.length - 1 - i);
}

/** The first and last key of a CIDR. */
export function cidrKeys(cidr: string): KeyRange {
  const [addr, len] = cidr.split('/') as [string, string];
  const family = familyOf(addr);
  const key = ipKey(addr);
  const bits = Number(len);
  const full = bits >> 2;
  const part = bits & 3;
  if (full >= key.length) return { family, first: key, last: key };
  const d = HEX.indexOf(key[full]!);
  const mask = (0xf << (4 - part)) & 0xf;
  const rest = key.length - full - 1;
  return {
    family,
    first: key.slice(0, full) + HEX[d & mask]! + '0'.repeat(rest),
    last: key.slice(0, full) + HEX[d | (~mask & 0xf)]! + 'f'.repeat(rest),
  };
}

/** Sorts (IPv4 first) and merges overlapping and adjacent ranges. */
export function mergeKeys(ranges: readonly KeyRange[]): KeyRange[] {
  const sorted = [...ranges].sort((a, b) =>
    a.family !== b.family ? (a.family === 'IPv4' ? -1 : 1) : a.first < b.first ? -1 : a.first > b.first ? 1 : 0,
  );
  const out: KeyRange[] = [];
  for (const r of sorted) {
    const prev = out[out.length - 1];
    if (prev && prev.family === r.family && (r.first <= prev.last || r.first === keySucc(prev.last))) {
      if (r.last > prev.last) out[out.length - 1] = { ...prev, last: r.last };
    } else out.push(r);
  }
  return out;
}

function subtract(ranges: KeyRange[], cut: KeyRange[]): KeyRange[] {
  let out = ranges;
  for (const c of cut) {
    const next: KeyRange[] = [];
    for (const r of out) {
      if (r.family !== c.family || c.last < r.first || c.first > r.last) {
        next.push(r);
        continue;
      }
      if (c.first > r.first) next.push({ ...r, last: keyPred(c.first)! });
      if (c.last < r.last) next.push({ ...r, first: keySucc(c.last)! });
    }
    out = next;
  }
  return out;
}

const toText = (r: KeyRange): AddressRange => ({ family: r.family, first: keyToIp(r.first), last: keyToIp(r.last) });
/** An address range as keys. */
export const rangeKeys = (r: AddressRange): KeyRange => ({
  family: r.family,
  first: ipKey(r.first),
  last: ipKey(r.last),
});

/** A set of addresses under construction: add CIDRs (minus excepts) and single IPs, then read merged ranges. */
export class AddressSetBuilder {
  readonly #ranges: KeyRange[] = [];
  addIP(ip: string): void {
    const k = ipKey(ip);
    this.#ranges.push({ family: familyOf(ip), first: k, last: k });
  }
  addCIDR(cidr: string, except: readonly string[] = []): void {
    this.#ranges.push(...subtract([cidrKeys(cidr)], except.map(cidrKeys)));
  }
  addRanges(ranges: readonly AddressRange[]): void {
    for (const r of ranges) this.#ranges.push(rangeKeys(r));
  }
  build(): AddressRange[] {
    return mergeKeys(this.#ranges).map(toText);
  }
}

/** Whether ip is inside one of the (merged) ranges. */
export function inRanges(ip: string, ranges: readonly AddressRange[]): boolean {
  const fam = familyOf(ip);
  const k = ipKey(ip);
  return ranges.some((r) => r.family === fam && ipKey(r.first) <= k && k <= ipKey(r.last));
}

/** A key range as nft element text: `a.b.c.d`, `net/len` when aligned, else `first-last`. */
export function keyElement(first: string, last: string): string {
  if (first === last) return keyToIp(first);
  let i = 0;
  while (first[i] === last[i]) i++;
  const fd = HEX.indexOf(first[i]!);
  const ld = HEX.indexOf(last[i]!);
  const common = Math.clz32(fd ^ ld) - 28; // equal leading bits of the first differing digit
  const low = (1 << (4 - common)) - 1;
  let aligned = (fd & low) === 0 && (ld & low) === low;
  for (let j = i + 1; aligned && j < first.length; j++) aligned = first[j] === '0' && last[j] === 'f';
  if (aligned) return `${keyToIp(first)}/${i * 4 + common}`;
  return `${keyToIp(first)}-${keyToIp(last)}`;
}

/** A range as nft element text: `a.b.c.d`, `net/len` when aligned, else `first-last`. */
export function rangeElement(r: AddressRange): string {
  if (r.first === r.last) return r.first;
  return keyElement(ipKey(r.first), ipKey(r.last));
}
