// Shared fixtures of the policy unit tests: raw objects -> PolicyInput through the real converter.
import { convertAny } from '../../../src/k8s/convert.ts';
import type { Raw } from '../../../src/k8s/convert.ts';
import type { ClusterObject } from '../../../src/model/types.ts';
import type { PolicyInput } from '../../../src/policy/types.ts';

/** Converts raw objects; an object the converter rejects throws (fixtures must be valid). */
export function inputOf(raws: readonly Raw[]): PolicyInput {
  const objs: ClusterObject[] = [];
  for (const r of raws) {
    const c = convertAny(r);
    if (!c.ok) throw new Error(`fixture ${JSON.stringify(r).slice(0, 120)}: ${c.reason}`);
    objs.push(...c.value);
  }
  const of = <K extends ClusterObject['kind']>(k: K) =>
    objs.filter((o): o is Extract<ClusterObject, { kind: K }> => o.kind === k);
  return {
    pods: of('Pod'),
    namespaces: of('Namespace'),
    nodes: of('Node'),
    networkPolicies: of('NetworkPolicy'),
    adminNetworkPolicies: of('AdminNetworkPolicy'),
    baselineAdminNetworkPolicies: of('BaselineAdminNetworkPolicy'),
  };
}

/** Model pod addresses: x/a 10.244.1.1, x/b 10.244.1.2, ..., z/c 10.244.3.3. */
export const modelIP = (p: string): string => {
  const [ns, pod] = p.split('/') as [string, string];
  return `10.244.${'xyz'.indexOf(ns) + 1}.${'abc'.indexOf(pod) + 1}`;
};
