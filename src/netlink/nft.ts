// nftables rules of the CNI plugins: one `inet kdp` table with three NAT chains. Every per-attachment
// rule carries a comment tag `kdp-<kind>-<hash16>` (kind m = masquerade by kdp-bridge, p = hostPort by
// kdp-portmap; hash = attachmentHash(containerId, ifname)), so DEL and GC find their rules by listing the
// table: no prevResult, no runtimeConfig and no netns needed. Renderers are pure; NftRunner runs `nft`.
import { defaultExec } from '../common/exec-adapter.ts';
import type { Exec } from '../common/exec-adapter.ts';
import type { PortMapping } from '../cnispec/types.ts';
import { NO_TRACE } from '../cnispec/trace.ts';
import type { Trace } from '../cnispec/trace.ts';
import type { Locker } from '../common/flock.ts';

const TABLE = 'kdp';
const NETNS_LOCK = '/proc/self/ns/net';
type TagKind = 'm' | 'p';

export function tag(kind: TagKind, hash: string): string {
  return `kdp-${kind}-${hash}`;
}

/** Idempotent `add` of the table and its chains (safe under concurrent plugins). */
export function renderBase(): string[] {
  return [
    `add table inet ${TABLE}`,
    `add chain inet ${TABLE} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add chain inet ${TABLE} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    `add chain inet ${TABLE} output { type nat hook output priority -100; policy accept; }`,
  ];
}

/** The rule comment: the tag plus the network name (GC of one network leaves other networks' rules). */
export function comment(t: string, network: string): string {
  return `${t} ${network.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64)}`;
}

const fam = (ip: string) => (ip.includes(':') ? 'ip6' : 'ip');

/** Masquerade what a pod sends outside `exclude` (the cluster CIDRs) and outside multicast. */
export function renderMasq(
  t: string,
  network: string,
  podIps: readonly string[],
  exclude: readonly string[],
): string[] {
  return podIps.map((ip) => {
    const f = fam(ip);
    const ex = [...exclude.filter((c) => fam(c) === f), f === 'ip' ? '224.0.0.0/4' : 'ff00::/8'];
    return `add rule inet ${TABLE} postrouting ${f} saddr ${ip} ${f} daddr != { ${ex.join(', ')} } masquerade comment "${comment(t, network)}"`;
  });
}

/**
 * hostPort DNAT (like the reference portmap): in prerouting (from outside) and output (from the node). With
 * `snat` (the reference portmap's default) two masquerades follow, as portmap's CNI-HOSTPORT-MASQ does:
 * hairpin (the pod reaching its own hostPort: after the DNAT source and destination are both the pod, so the
 * reply would never come back through conntrack; masqueraded to the bridge address) and, IPv4 only,
 * 127.0.0.0/8 sources (a node process on 127.0.0.1:hostPort; needs route_localnet on the pod's host
 * interface, set by the plugin). `::1` is never DNATed: IPv6 has no route_localnet. And a third, per mapping,
 * for hostPort traffic from the pod's own subnets (`podNets`: another pod on the same bridge reaching
 * gateway:hostPort or node:hostPort): without it the pod's reply is bridged straight back to the other pod,
 * which un-NATs nothing without bridge netfilter (bridge-nf-call-iptables=0, no br_netfilter) and drops it;
 * masqueraded to the bridge address the reply comes back through the node in both settings (the reference
 * portmap's hairpin mark for the container's subnet). It matches the hostPort's DNAT only (the original
 * destination port), so Service traffic DNATed to the same pod keeps its source.
 */
export function renderPortMaps(
  t: string,
  network: string,
  podIps: readonly string[],
  maps: readonly PortMapping[],
  snat = true,
  podNets: readonly string[] = [],
): string[] {
  const out: string[] = [];
  const c = `comment "${comment(t, network)}"`;
  const wild = (h: string | undefined) => !h || h === '0.0.0.0' || h === '::';
  for (const m of maps) {
    for (const ip of podIps) {
      const f = fam(ip);
      if (!wild(m.hostIP) && fam(m.hostIP as string) !== f) continue;
      const dst = wild(m.hostIP) ? 'fib daddr type local' : `${f} daddr ${m.hostIP}`;
      const to = f === 'ip' ? `${ip}:${m.containerPort}` : `[${ip}]:${m.containerPort}`;
      for (const chain of ['prerouting', 'output']) {
        const noLo = chain === 'output' && f === 'ip6' && wild(m.hostIP) ? ' ip6 daddr != ::1' : '';
        out.push(
          `add rule inet ${TABLE} ${chain} ${dst}${noLo} meta nfproto ${f === 'ip' ? 'ipv4' : 'ipv6'} ${m.protocol} dport ${m.hostPort} dnat ${f} to ${to} ${c}`,
        );
      }
    }
  }
  if (snat && out.length > 0) {
    for (const m of maps) {
      for (const ip of podIps) {
        const f = fam(ip);
        if (!wild(m.hostIP) && fam(m.hostIP as string) !== f) continue;
        for (const net of podNets.filter((n) => fam(n) === f))
          out.push(
            `add rule inet ${TABLE} postrouting ${f} saddr ${net} ${f} daddr ${ip} ${m.protocol} dport ${m.containerPort} ct original proto-dst ${m.hostPort} ct status dnat masquerade ${c}`,
          );
      }
    }
    for (const ip of podIps) {
      const f = fam(ip);
      out.push(`add rule inet ${TABLE} postrouting ${f} saddr ${ip} ${f} daddr ${ip} ct status dnat masquerade ${c}`);
      if (f === 'ip')
        out.push(
          `add rule inet ${TABLE} postrouting ip saddr 127.0.0.0/8 ip daddr ${ip} ct status dnat masquerade ${c}`,
        );
    }
  }
  return out;
}

interface TaggedRule {
  readonly chain: string;
  readonly handle: number;
  readonly tag: string;
  readonly kind: TagKind;
  readonly hash: string;
  readonly network: string;
}

/** Finds tagged rules in `nft -a list table inet kdp` output. */
export function parseTagged(listing: string): TaggedRule[] {
  const out: TaggedRule[] = [];
  let chain = '';
  for (const line of listing.split('\n')) {
    const c = /^\s*chain (\S+) \{/.exec(line);
    if (c) {
      chain = c[1] as string;
      continue;
    }
    const m = /comment "kdp-([mp])-([0-9a-f]{16})(?: ([^"]*))?".*# handle (\d+)/.exec(line);
    if (m && chain)
      out.push({
        chain,
        handle: Number(m[4]),
        tag: `kdp-${m[1]}-${m[2]}`,
        kind: m[1] as TagKind,
        hash: m[2] as string,
        network: m[3] ?? '',
      });
  }
  return out;
}

export function renderDelete(rules: readonly TaggedRule[]): string[] {
  return rules.map((r) => `delete rule inet ${TABLE} ${r.chain} handle ${r.handle}`);
}

/**
 * Runs `nft` for the plugins. Every call goes through `flock(1)` on the network namespace itself
 * (`/proc/self/ns/net`, see defaultNftLock), which execs nft once it holds the lock: nft restarts its cache
 * dump whenever the ruleset generation changes under it, so 100 plugins listing and changing the table at
 * once starved each other (a `list` took over 30 s at load 25); in turn they take no time at all. The lock is
 * held by the flock/nft process only (no Node wake-up inside it) and released when nft exits.
 */
export class NftRunner {
  readonly #exec: Exec;
  readonly #lock: string | undefined;
  readonly #locker: Locker | undefined;
  /**
   * `locker`: take the lock in-process (the warm server's lock agent) and run plain `nft` under it, instead of
   * `flock(1)` exec'ing nft. Every call is `nft -a -f -` with the job on stdin (a list too), so the warm
   * server can have one waiting.
   */
  constructor(exec: Exec = defaultExec, lockPath: string | undefined = defaultNftLock(), locker?: Locker) {
    this.#exec = exec;
    this.#lock = lockPath;
    this.#locker = locker;
  }

  async #nft(input: string, allowFailure: boolean) {
    const opts = { input, allowFailure, timeoutMs: 150_000 };
    if (this.#lock && this.#locker) {
      const held = await this.#locker(this.#lock, 120);
      try {
        return await this.#exec.run(['nft', '-a', '-f', '-'], opts);
      } finally {
        held.release();
      }
    }
    return this.#exec.run(
      this.#lock ? ['flock', '-w', '120', this.#lock, 'nft', '-a', '-f', '-'] : ['nft', '-a', '-f', '-'],
      opts,
    );
  }

  async apply(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    await this.#nft(lines.join('\n') + '\n', false);
  }

  /** Tagged rules in the kdp table ([] when the table does not exist). */
  async tagged(): Promise<TaggedRule[]> {
    const res = await this.#nft(`list table inet ${TABLE}\n`, true);
    if (res.code !== 0) return [];
    return parseTagged(res.stdout);
  }

  /** Removes the rules matching `pred`; the rules of one attachment go in one transaction. */
  async remove(pred: (r: TaggedRule) => boolean, trace: Trace = NO_TRACE): Promise<number> {
    const rules = (await trace.span('nft list', this.tagged())).filter(pred);
    if (rules.length === 0) return 0;
    const res = await this.#nft(renderDelete(rules).join('\n') + '\n', true);
    if (res.code !== 0) {
      // a concurrent DEL removed some of them: retry with what is left
      const left = (await this.tagged()).filter(pred);
      if (left.length > 0) await this.#nft(renderDelete(left).join('\n') + '\n', false);
    }
    return rules.length;
  }
}

/**
 * The nft lock of this network namespace: the namespace itself. flock(1) opens `/proc/self/ns/net` in its own
 * process, which runs in the plugin's namespace, and every opener of one namespace shares its nsfs inode, so
 * the lock is per namespace, leaves no file behind and needs no directory.
 */
export function defaultNftLock(): string | undefined {
  return NETNS_LOCK;
}
