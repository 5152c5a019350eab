// evaluate: the verdict of the compiled state for one packet, step by step (what `kdp explain` prints). Pure;
// the same semantics as the nft rules of ./nft.ts.
import type { CompiledPolicies, Evaluation, Packet } from './types.ts';

export function evaluate(compiled: CompiledPolicies, packet: Packet): Evaluation {
  void compiled;
  void packet;
  throw new Error('not implemented yet');
}
