// evaluate: the verdict of the compiled state for one packet, step by step (what `kdp explain` prints). Pure;
// the same semantics as the nft rules of ./nft.ts: ANP rules in order (Allow/Deny decide, Pass skips to
// NetworkPolicy), NetworkPolicy isolation (union of allows, else deny), BANP rules in order, default allow.
import { inRanges } from './addr.ts';
import type { CompiledPod, CompiledPolicies, CompiledRule, Direction, Evaluation, Packet, Step } from './types.ts';

export function ruleMatches(rule: CompiledRule, remote: string, packet: Packet): boolean {
  const peerOk = rule.peers === 'any' || inRanges(remote, rule.peers);
  const portOk =
    rule.ports === 'any' ||
    rule.ports.some((p) => p.protocol === packet.proto && p.first <= packet.port && packet.port <= p.last);
  if (peerOk && portOk) return true;
  return rule.peerPorts.some((pp) => pp.ip === remote && pp.protocol === packet.proto && pp.port === packet.port);
}

function ruleText(r: CompiledRule): string {
  return `${r.tier} ${r.policy} rule ${r.rule}`;
}

/** The steps of one direction for one enforced pod; the last step is allow or deny. */
export function evaluateDirection(pod: CompiledPod, dir: Direction, remote: string, packet: Packet): Step[] {
  const d = pod[dir];
  const steps: Step[] = [];
  const step = (s: Omit<Step, 'direction' | 'pod'>): void => {
    steps.push({ direction: dir, pod: pod.key, ...s });
  };
  for (const r of d.admin) {
    if (!ruleMatches(r, remote, packet)) continue;
    const outcome = r.action === 'Allow' ? 'allow' : r.action === 'Deny' ? 'deny' : 'pass';
    step({
      tier: 'AdminNetworkPolicy',
      policy: r.policy,
      rule: r.rule,
      outcome,
      reason: `${ruleText(r)} (priority ${r.priority}) matches: ${r.action}`,
    });
    if (outcome !== 'pass') return steps;
    break;
  }
  if (d.isolatedBy.length > 0) {
    const hit = d.allow.find((r) => ruleMatches(r, remote, packet));
    if (hit)
      step({
        tier: 'NetworkPolicy',
        policy: hit.policy,
        rule: hit.rule,
        outcome: 'allow',
        reason: `${ruleText(hit)} allows`,
      });
    else
      step({
        tier: 'NetworkPolicy',
        policy: d.isolatedBy.join(','),
        outcome: 'deny',
        reason: `isolated for ${dir} by ${d.isolatedBy.join(', ')}; no rule of theirs allows it`,
      });
    return steps;
  }
  for (const r of d.baseline) {
    if (!ruleMatches(r, remote, packet)) continue;
    const outcome = r.action === 'Allow' ? 'allow' : 'deny';
    step({
      tier: 'BaselineAdminNetworkPolicy',
      policy: r.policy,
      rule: r.rule,
      outcome,
      reason: `${ruleText(r)} matches: ${r.action}`,
    });
    return steps;
  }
  step({ tier: 'Default', outcome: 'allow', reason: `no policy decides ${dir} of ${pod.key}: allowed` });
  return steps;
}

export function evaluate(compiled: CompiledPolicies, packet: Packet): Evaluation {
  const byIP = (ip: string): CompiledPod | undefined => compiled.pods.find((p) => p.ips.includes(ip));
  const src = byIP(packet.src);
  const dst = byIP(packet.dst);
  const egress = src ? evaluateDirection(src, 'egress', packet.dst, packet) : [];
  const ingress = dst ? evaluateDirection(dst, 'ingress', packet.src, packet) : [];
  const denied = [...egress, ...ingress].some((s) => s.outcome === 'deny');
  return { verdict: denied ? 'deny' : 'allow', egress, ingress };
}
