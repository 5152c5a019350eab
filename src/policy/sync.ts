// The policy agent's render step (pure): the store's view -> compilePolicies for this node -> renderNft, with the
// sizes the agent exports as metrics. The agent (agent.ts) applies the script; nothing here has side effects.
// incrementalRender() is the same function with memory (a PolicyCompiler fed the reconcile's changes, and the
// renderer's per-pod cache): what the agent runs; renderForNode is the from-scratch reference.
import type { Change } from '../k8s/controller.ts';
import type { StoreView } from '../k8s/store.ts';
import { compilePolicies, PolicyCompiler } from './compile.ts';
import { renderTable } from './nft.ts';
import type { CompiledPod, CompiledPolicies, PolicyInput } from './types.ts';
import type { PolicyRender, RenderedPolicies } from './agent.ts';

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

function rendered(compiled: CompiledPolicies, table: string): RenderedPolicies {
  const r = renderTable(compiled, { table });
  return {
    get script() {
      return r.script;
    },
    table: r.parsed,
    rules: r.rules,
    sets: r.sets,
    selectedPods: compiled.pods.filter(isGoverned).length,
    notes: compiled.notes,
  };
}

/** The agent's render from scratch: the policy table for `node`. */
export function renderForNode(view: StoreView, node: string, table: string): RenderedPolicies {
  return rendered(compilePolicies(policyInput(view), { node }), table);
}

/** The agent's render with memory: equal to renderForNode, redoing only what `changes` touch (undefined: all). */
export function incrementalRender(): PolicyRender {
  const compiler = new PolicyCompiler();
  return (view: StoreView, node: string, table: string, changes?: readonly Change[]) =>
    rendered(compiler.compile(policyInput(view), { node }, changes), table);
}
