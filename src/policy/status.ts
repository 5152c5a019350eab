// The policy agent's answer to `kdp status` (the status interface of src/model/status.ts): per pod, the policies
// that select it, by direction and tier (AdminNetworkPolicy, NetworkPolicy, BaselineAdminNetworkPolicy). The pods
// of the report's node, or every pod when the report names none. Pure: compiled from the cluster read alone.
import type { ComponentStatus } from '../model/status.ts';
import { compilePolicies } from './compile.ts';
import type { CompiledRule, DirectionPolicy } from './types.ts';

export interface PodPolicyStatus {
  /** `namespace/name` */
  readonly pod: string;
  readonly node?: string;
  readonly ips: readonly string[];
  /** policy keys selecting the pod for its ingress, in evaluation order: `anp:NAME`, `np:NS/NAME`, `banp:NAME` */
  readonly ingress: readonly string[];
  readonly egress: readonly string[];
}

const uniq = (xs: readonly string[]) => [...new Set(xs)];
const tierKeys = (rules: readonly CompiledRule[], prefix: string) => rules.map((r) => `${prefix}:${r.policy}`);

function selecting(d: DirectionPolicy): string[] {
  return uniq([...tierKeys(d.admin, 'anp'), ...d.isolatedBy.map((k) => `np:${k}`), ...tierKeys(d.baseline, 'banp')]);
}

export const status: ComponentStatus<readonly PodPolicyStatus[]> = (input) => {
  const compiled = compilePolicies(input.cluster, input.nodeName ? { node: input.nodeName } : {});
  return compiled.pods.map((p) => ({
    pod: p.key,
    ...(p.node !== undefined ? { node: p.node } : {}),
    ips: p.ips,
    ingress: selecting(p.ingress),
    egress: selecting(p.egress),
  }));
};
