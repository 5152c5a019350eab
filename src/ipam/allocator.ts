// Round-robin address allocation over a range set (host-local's policy): start after the last reserved
// address of that range set (or at the first rangeStart), walk the ranges in order, wrap around, stop
// when back at the start. The gateway is never handed out. Works only through the IpStore port.
import { KdpError } from '../common/errors.ts';
import type { CniIpConfig } from '../cnispec/types.ts';
import type { IpamConfig, RangeSet } from './config.ts';
import { rangeSetFamily } from './config.ts';
import { contains, formatIp, tryParseIp } from './ip.ts';
import type { Ip } from './ip.ts';
import type { Allocation, IpStore } from './store.ts';

/** Candidate addresses in round-robin order after `last` (every address of the set at most once). */
export function* candidates(set: RangeSet, last: bigint | undefined): Generator<bigint> {
  const n = set.length;
  let r = 0;
  let v = (set[0]?.start ?? 0n) - 1n;
  if (last !== undefined) {
    const i = set.findIndex((x) => last >= x.start && last <= x.end);
    if (i >= 0) {
      r = i;
      v = last;
    }
  }
  let total = 0n;
  for (const x of set) total += x.end - x.start + 1n;
  for (let c = 0n; c < total; c++) {
    v++;
    let range = set[r]!;
    if (v > range.end) {
      r = (r + 1) % n;
      range = set[r]!;
      v = range.start;
    }
    if (v === range.gateway) continue;
    yield v;
  }
}

function inSet(set: RangeSet, ip: Ip): boolean {
  return set.some((r) => contains(r.subnet, ip) && ip.value >= r.start && ip.value <= r.end);
}

export function ownedBy(a: Allocation, containerId: string, ifname: string): boolean {
  return a.containerId === containerId && (a.ifname === ifname || a.ifname === '');
}

function ipConfig(set: RangeSet, value: bigint): CniIpConfig {
  const fam = rangeSetFamily(set);
  const range = set.find((r) => contains(r.subnet, { family: fam, value }))!;
  return {
    address: `${formatIp({ family: fam, value })}/${range.subnet.prefix}`,
    gateway: formatIp({ family: fam, value: range.gateway }),
  };
}

/** Allocates one address per range set for (containerId, ifname). The caller holds the store lock. */
export async function allocate(
  cfg: IpamConfig,
  store: IpStore,
  containerId: string,
  ifname: string,
): Promise<CniIpConfig[]> {
  const unmatched = cfg.requested.filter((ip) => !cfg.rangeSets.some((s) => inSet(s, ip)));
  if (unmatched.length > 0)
    throw new KdpError('KDP_IPAM_CONFLICT', `requested IP ${formatIp(unmatched[0]!)} is in no configured range`);
  const existing = await store.allocations();
  const used = new Set<string>();
  for (const a of existing) {
    const ip = tryParseIp(a.ip);
    if (ip) used.add(`${ip.family}/${ip.value}`);
  }
  const mine = existing.filter((a) => ownedBy(a, containerId, ifname));
  const done: string[] = [];
  const out: CniIpConfig[] = [];
  try {
    for (const [i, set] of cfg.rangeSets.entries()) {
      const fam = rangeSetFamily(set);
      if (
        mine.some((a) => {
          const ip = tryParseIp(a.ip);
          return ip !== undefined && inSet(set, ip);
        })
      ) {
        throw new KdpError(
          'KDP_IPAM_CONFLICT',
          `${containerId}/${ifname} already holds an address in range set ${i}: duplicate allocation is not allowed`,
        );
      }
      const req = cfg.requested.find((ip) => ip.family === fam && inSet(set, ip));
      let got: bigint | undefined;
      if (req) {
        if (set.some((r) => r.gateway === req.value && contains(r.subnet, req))) {
          throw new KdpError('KDP_IPAM_CONFLICT', `requested IP ${formatIp(req)} is the gateway of its range`);
        }
        if (used.has(`${fam}/${req.value}`) || !(await store.reserve({ ip: formatIp(req), containerId, ifname }, i))) {
          throw new KdpError(
            'KDP_IPAM_CONFLICT',
            `requested IP address ${formatIp(req)} is not available in range set ${i}`,
          );
        }
        got = req.value;
      } else {
        const lastStr = await store.lastReserved(i);
        const last = lastStr ? tryParseIp(lastStr) : undefined;
        for (const v of candidates(set, last && last.family === fam ? last.value : undefined)) {
          if (used.has(`${fam}/${v}`)) continue;
          if (await store.reserve({ ip: formatIp({ family: fam, value: v }), containerId, ifname }, i)) {
            got = v;
            break;
          }
        }
        if (got === undefined)
          throw new KdpError(
            'KDP_IPAM_EXHAUSTED',
            `no IP addresses available in range set ${i} (${set.map((r) => `${formatIp({ family: fam, value: r.start })}-${formatIp({ family: fam, value: r.end })}`).join(', ')})`,
          );
      }
      done.push(formatIp({ family: fam, value: got }));
      out.push(ipConfig(set, got));
    }
  } catch (err) {
    for (const ip of done) await store.release(ip);
    throw err;
  }
  return out;
}

/** Releases every address of (containerId, ifname). Idempotent. Returns what it released. */
export async function release(store: IpStore, containerId: string, ifname: string): Promise<string[]> {
  const mine = (await store.allocations()).filter((a) => ownedBy(a, containerId, ifname));
  for (const a of mine) await store.release(a.ip);
  return mine.map((a) => a.ip);
}

/** Releases every allocation whose attachment is not in `valid`. Returns what it released. */
export async function collect(
  store: IpStore,
  valid: readonly { containerID: string; ifname: string }[],
): Promise<string[]> {
  const keep = new Set(valid.map((v) => `${v.containerID}\n${v.ifname}`));
  const gone = (await store.allocations()).filter((a) => !keep.has(`${a.containerId}\n${a.ifname}`));
  for (const a of gone) await store.release(a.ip);
  return gone.map((a) => a.ip);
}
