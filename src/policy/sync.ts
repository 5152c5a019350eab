// The policy agent's render step (pure): the store's view -> compilePolicies for this node -> renderNft, with the
// sizes the agent exports as metrics. The agent (agent.ts) applies the script; nothing here has side effects.
import type { StoreView } from '../k8s/store.ts';
import { compilePolicies } from './compile.ts';
import { renderNft } from './nft.ts';
import type { CompiledPod, PolicyInput } from './types.ts';
import type { RenderedPolicies } from './agent.ts';

/** What compilePolicies reads, straight from the view (no copy kept). */
export function policyInput(view: StoreView): PolicyInput {
  return {
    pods: view.list('Pod'),
    namespaces: view.list('Namespace'),
    nodes: view.list('Node'),
    networkPolicies: view.list('NetworkPolicy'),
    adminNetworkPolicies: view.list('AdminNetworkPolicy'),
    baselineAdminNetworkPolicies: view.list('BaselineAdminNetworkPolicy'),
  };
}

/** A pod some policy governs in some direction. */
export function isGoverned(p: CompiledPod): boolean {
  return [p.ingress, p.egress].some((d) => d.admin.length > 0 || d.isolatedBy.length > 0 || d.baseline.length > 0);
}

/** Counts the rules and the sets/maps of an nft script (for the metrics: what the kernel holds). */
export function scriptSize(script: string): { rules: number; sets: number } {
  let rules = 0;
  let sets = 0;
  let depth = 0;
  let inChain = false;
  let chainDepth = 0;
  for (const raw of script.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (/^(add |delete |flush )/.test(line)) {
      if (/^add rule /.test(line)) rules++;
      else if (/^add (set|map) /.test(line)) sets++;
      continue;
    }
    if (/^(set|map) \S+ \{/.test(line)) sets++;
    if (/^chain \S+ \{/.test(line)) {
      inChain = true;
      chainDepth = depth + 1;
    } else if (
      inChain &&
      depth === chainDepth &&
      line !== '}' &&
      !/^(type|policy) /.test(line) &&
      !/^comment /.test(line)
    )
      rules++;
    depth += (line.match(/\{/g) ?? []).length - (line.match(/\}/g) ?? []).length;
    if (inChain && depth < chainDepth) inChain = false;
  }
  return { rules, sets };
}

/** The agent's render: the policy table for `node`. */
export function renderForNode(view: StoreView, node: string, table: string): RenderedPolicies {
  const compiled = compilePolicies(policyInput(view), { node });
  const script = renderNft(compiled, { table });
  return {
    script,
    ...scriptSize(script),
    selectedPods: compiled.pods.filter(isGoverned).length,
    notes: compiled.notes,
  };
}
