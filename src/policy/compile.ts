// compilePolicies: NetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy -> per enforced pod the ingress
// and egress verdict structure of ./types.ts (selectors resolved to address ranges, named ports to numbers).
// Pure. Semantics: docs/policy.md.
import type { CompiledPolicies, CompileOptions, PolicyInput } from './types.ts';

export function compilePolicies(input: PolicyInput, opts: CompileOptions = {}): CompiledPolicies {
  void input;
  void opts;
  throw new Error('not implemented yet');
}
