// renderNft: compiled policies -> one `nft -f` script that replaces the table atomically. Pure.
// Layout: docs/policy.md.
import type { CompiledPolicies, RenderOptions, Tier } from './types.ts';

/** The named counter of a policy (drops it caused); the node agent's drop metrics read these. */
export function counterName(tier: Tier, key: string): string {
  void tier;
  return key;
}

export function renderNft(compiled: CompiledPolicies, opts: RenderOptions): string {
  void compiled;
  void opts;
  throw new Error('not implemented yet');
}
