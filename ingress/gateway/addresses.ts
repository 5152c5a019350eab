// Gateway addresses: every Gateway gets exactly one address, so two Gateways listening on the same port are two
// different sockets and never see each other's routes. A Gateway that asks for one (spec.addresses, type
// IPAddress) gets it; the others get one from the pool (`kdp ingress --gateway-addresses CIDR`, default
// 127.0.10.0/24: on Linux all of 127.0.0.0/8 is loopback, so a lab or a test needs no interface set up).
//
// A pool address is stable: a Gateway keeps the address it was given for as long as it exists (remembered
// here); a new Gateway starts at a hash of its key and probes upwards to the first free address, so the same
// Gateway lands on the same address on every controller (and after a restart) that sees the same Gateways. A
// caller that knows a Gateway's earlier address (`previous`, e.g. its status.addresses) can have it kept; the
// controller does not pass one yet (the model does not carry Gateway status). Pure (no I/O, no clock).
import { formatIp, lastAddress, network, parseCidr, tryParseIp } from '../../src/ipam/ip.ts';
import type { Cidr } from '../../src/ipam/ip.ts';
import { createHash } from 'node:crypto';
import type { Gateway } from '../../src/model/types.ts';

export const DEFAULT_GATEWAY_POOL = '127.0.10.0/24';

/** What the pool needs to know about one Gateway. */
export interface AddressRequest {
  /** `namespace/name` */
  readonly key: string;
  /** spec.addresses[].value of type IPAddress (the first one; undefined: none asked for) */
  readonly requested?: string;
  /** an address it had before (status.addresses): kept if it is in the pool and free */
  readonly previous?: string;
}

export type AddressResult =
  | { readonly ok: true; readonly address: string; readonly fromPool: boolean }
  | { readonly ok: false; readonly reason: 'AddressNotUsable' | 'AddressNotAssigned'; readonly message: string };

/** Canonical text of an IP address (`::ffff:1.2.3.4` stays IPv6), or undefined when it is not one. */
function canonical(ip: string): string | undefined {
  const p = tryParseIp(ip.trim());
  return p ? formatIp(p) : undefined;
}

/** The first spec.addresses value of type IPAddress (the type defaults to IPAddress). */
export function requestedAddress(g: Gateway): string | undefined {
  return g.addresses.find((a) => (a.type || 'IPAddress') === 'IPAddress')?.value;
}

export class AddressPool {
  readonly cidr: string;
  readonly #c: Cidr;
  readonly #first: bigint;
  readonly #size: bigint;
  /** Gateway key -> the pool address it was given */
  readonly #given = new Map<string, string>();

  /** Throws (KdpError KDP_CNI_INVALID_CONFIG from the address parser) on a CIDR it cannot read. */
  constructor(cidr: string = DEFAULT_GATEWAY_POOL) {
    this.#c = parseCidr(cidr);
    const net = network(this.#c);
    const last = lastAddress(this.#c);
    const hostBits = (this.#c.family === 4 ? 32 : 128) - this.#c.prefix;
    // an IPv4 network of 4+ addresses: not the network and broadcast addresses (127.x is loopback: no
    // broadcast there, but the rule keeps the pool usable on a real interface too)
    const skipEnds = this.#c.family === 4 && hostBits >= 2;
    this.#first = skipEnds ? net + 1n : net;
    this.#size = (skipEnds ? last - 1n : last) - this.#first + 1n;
    this.cidr = `${formatIp({ family: this.#c.family, value: net })}/${this.#c.prefix}`;
  }

  /** Whether `ip` (canonical) is a pool address. */
  has(ip: string): boolean {
    const p = tryParseIp(ip);
    return (
      p !== undefined && p.family === this.#c.family && p.value >= this.#first && p.value < this.#first + this.#size
    );
  }

  #at(i: bigint): string {
    return formatIp({ family: this.#c.family, value: this.#first + (i % this.#size) });
  }

  #start(key: string): bigint {
    const h = createHash('sha256').update(key).digest();
    return h.readBigUInt64BE(0) % this.#size;
  }

  /**
   * The address of every Gateway in `gateways` (all of them, each time: the ones not listed are forgotten and
   * their addresses freed). Requested addresses first (two Gateways asking for the same one both get it: the
   * compiler reports the conflict per listener), then the remembered ones, then the previous ones, then new
   * ones in key order.
   */
  assign(gateways: readonly AddressRequest[]): Map<string, AddressResult> {
    const out = new Map<string, AddressResult>();
    const taken = new Set<string>();
    const live = new Set(gateways.map((g) => g.key));
    for (const k of [...this.#given.keys()]) if (!live.has(k)) this.#given.delete(k);
    const rest: AddressRequest[] = [];
    for (const g of gateways) {
      if (g.requested === undefined) {
        rest.push(g);
        continue;
      }
      const ip = canonical(g.requested);
      if (ip === undefined) {
        out.set(g.key, {
          ok: false,
          reason: 'AddressNotUsable',
          message: `spec.addresses: ${JSON.stringify(g.requested)} is not an IP address`,
        });
        continue;
      }
      this.#given.delete(g.key);
      taken.add(ip);
      out.set(g.key, { ok: true, address: ip, fromPool: false });
    }
    const pending: AddressRequest[] = [];
    // remembered, then previous (status) addresses: kept while free
    for (const g of rest) {
      const had = this.#given.get(g.key);
      if (had !== undefined && !taken.has(had)) {
        taken.add(had);
        out.set(g.key, { ok: true, address: had, fromPool: true });
      } else pending.push(g);
    }
    const fresh: AddressRequest[] = [];
    for (const g of pending) {
      const prev = g.previous === undefined ? undefined : canonical(g.previous);
      if (prev !== undefined && this.has(prev) && !taken.has(prev)) {
        taken.add(prev);
        this.#given.set(g.key, prev);
        out.set(g.key, { ok: true, address: prev, fromPool: true });
      } else fresh.push(g);
    }
    fresh.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const g of fresh) {
      let ip: string | undefined;
      const start = this.#start(g.key);
      // the probe is bounded by the number of Gateways, not the pool size: at most taken.size collisions
      for (let i = 0n; i < this.#size && i <= BigInt(taken.size); i++) {
        const c = this.#at(start + i);
        if (!taken.has(c)) {
          ip = c;
          break;
        }
      }
      if (ip === undefined) {
        out.set(g.key, {
          ok: false,
          reason: 'AddressNotAssigned',
          message: `the Gateway address pool ${this.cidr} has no free address`,
        });
        continue;
      }
      taken.add(ip);
      this.#given.set(g.key, ip);
      out.set(g.key, { ok: true, address: ip, fromPool: true });
    }
    return out;
  }
}
