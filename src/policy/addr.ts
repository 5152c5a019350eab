// Address arithmetic for the compiler: IPv4/IPv6 text <-> bigint, CIDR -> range, range union and difference.
// Pure; inputs were validated at the conversion edge (src/k8s/convert.ts).
import { isIPv4 } from 'node:net';
import type { IPFamily } from '../model/types.ts';
import type { AddressRange } from './types.ts';

interface NumRange {
  readonly family: IPFamily;
  readonly first: bigint;
  readonly last: bigint;
}

export function familyOf(ip: string): IPFamily {
  return isIPv4(ip) ? 'IPv4' : 'IPv6';
}

const widthOf = (f: IPFamily): number => (f === 'IPv4' ? 32 : 128);

export function ipToBig(ip: string): bigint {
  if (isIPv4(ip)) return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  let text = ip;
  // an embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = ipToBig(v4[1]!);
    text = text.slice(0, v4.index) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

export function bigToIp(n: bigint, family: IPFamily): string {
  if (family === 'IPv4') return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
  const groups: number[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(Number((n >> s) & 0xffffn));
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

function cidrRange(cidr: string): NumRange {
  const [addr, len] = cidr.split('/') as [string, string];
  const family = familyOf(addr);
  const host = BigInt(widthOf(family) - Number(len));
  const first = (ipToBig(addr) >> host) << host;
  return { family, first, last: first + (1n << host) - 1n };
}

function merge(ranges: NumRange[]): NumRange[] {
  const sorted = [...ranges].sort((a, b) =>
    a.family !== b.family ? (a.family === 'IPv4' ? -1 : 1) : a.first < b.first ? -1 : a.first > b.first ? 1 : 0,
  );
  const out: NumRange[] = [];
  for (const r of sorted) {
    const prev = out[out.length - 1];
    if (prev && prev.family === r.family && r.first <= prev.last + 1n) {
      if (r.last > prev.last) out[out.length - 1] = { ...prev, last: r.last };
    } else out.push(r);
  }
  return out;
}

function subtract(ranges: NumRange[], cut: NumRange[]): NumRange[] {
  let out = ranges;
  for (const c of cut) {
    const next: NumRange[] = [];
    for (const r of out) {
      if (r.family !== c.family || c.last < r.first || c.first > r.last) {
        next.push(r);
        continue;
      }
      if (c.first > r.first) next.push({ ...r, last: c.first - 1n });
      if (c.last < r.last) next.push({ ...r, first: c.last + 1n });
    }
    out = next;
  }
  return out;
}

const toText = (r: NumRange): AddressRange => ({
  family: r.family,
  first: bigToIp(r.first, r.family),
  last: bigToIp(r.last, r.family),
});
const fromText = (r: AddressRange): NumRange => ({ family: r.family, first: ipToBig(r.first), last: ipToBig(r.last) });

/** A set of addresses under construction: add CIDRs (minus excepts) and single IPs, then read merged ranges. */
export class AddressSetBuilder {
  readonly #ranges: NumRange[] = [];
  addIP(ip: string): void {
    const n = ipToBig(ip);
    this.#ranges.push({ family: familyOf(ip), first: n, last: n });
  }
  addCIDR(cidr: string, except: readonly string[] = []): void {
    this.#ranges.push(...subtract([cidrRange(cidr)], except.map(cidrRange)));
  }
  addRanges(ranges: readonly AddressRange[]): void {
    this.#ranges.push(...ranges.map(fromText));
  }
  build(): AddressRange[] {
    return merge(this.#ranges).map(toText);
  }
}

/** Whether ip is inside one of the (merged) ranges. */
export function inRanges(ip: string, ranges: readonly AddressRange[]): boolean {
  const fam = familyOf(ip);
  const n = ipToBig(ip);
  return ranges.some((r) => r.family === fam && ipToBig(r.first) <= n && n <= ipToBig(r.last));
}

/** A range as nft element text: `a.b.c.d`, `net/len` when aligned, else `first-last`. */
export function rangeElement(r: AddressRange): string {
  if (r.first === r.last) return r.first;
  const first = ipToBig(r.first);
  const size = ipToBig(r.last) - first + 1n;
  if ((size & (size - 1n)) === 0n && first % size === 0n) {
    const bits = widthOf(r.family) - (size.toString(2).length - 1);
    return `${r.first}/${bits}`;
  }
  return `${r.first}-${r.last}`;
}
