// A snapshot of the machine's root network namespace: links, addresses, routes, policy rules and the
// firewall ruleset, with volatile parts (counters, lifetimes, generated-on comments) removed.
// Tests compare it before and after to prove the lab never touched the root namespace.
import { run } from '../../src/common/exec-adapter.ts';

const PROBES: Record<string, readonly string[]> = {
  links: ['ip', '-o', 'link', 'show'],
  addrs: ['ip', '-o', 'addr', 'show'],
  routes4: ['ip', '-4', 'route', 'show', 'table', 'all'],
  routes6: ['ip', '-6', 'route', 'show', 'table', 'all'],
  rules4: ['ip', '-4', 'rule', 'show'],
  rules6: ['ip', '-6', 'rule', 'show'],
  nft: ['nft', 'list', 'ruleset'],
  iptables: ['iptables-save'],
  ip6tables: ['ip6tables-save'],
};

export function normalize(kind: string, text: string): string {
  let out = text;
  if (kind === 'addrs') out = out.replace(/valid_lft \S+ preferred_lft \S+/g, '');
  if (kind.startsWith('routes')) out = out.replace(/ expires \d+sec/g, '');
  if (kind === 'nft') out = out.replace(/counter packets \d+ bytes \d+/g, 'counter');
  if (kind.includes('tables')) {
    out = out
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n')
      .replace(/\[\d+:\d+\]/g, '[0:0]');
  }
  return out;
}

export type RootSnapshot = Record<string, string>;

/** Reads what this user may read (the ruleset needs root; unprivileged it is marked unavailable). */
export async function snapshotRootNs(): Promise<RootSnapshot> {
  const snap: RootSnapshot = {};
  await Promise.all(
    Object.entries(PROBES).map(async ([kind, argv]) => {
      try {
        const res = await run(argv, { allowFailure: true, timeoutMs: 20_000 });
        snap[kind] = res.code === 0 ? normalize(kind, res.stdout) : `unavailable (exit ${res.code})`;
      } catch {
        snap[kind] = 'unavailable (not installed)';
      }
    }),
  );
  return snap;
}

/** The kinds whose text differs, with both texts. */
export function diffSnapshots(a: RootSnapshot, b: RootSnapshot): { kind: string; before: string; after: string }[] {
  const kinds = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...kinds].filter((k) => a[k] !== b[k]).map((k) => ({ kind: k, before: a[k] ?? '', after: b[k] ?? '' }));
}
