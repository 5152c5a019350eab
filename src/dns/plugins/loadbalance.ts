// The loadbalance plugin (round_robin, CoreDNS plugin/loadbalance): the address records of every answer
// that passes back through it are put in a random order, so clients that take the first address spread
// over all of them. Answers built from records: A/AAAA move after the other answers (a CNAME stays first)
// and are shuffled; whole messages (forward, cache): the run of address records is permuted in place.
import { randomInt } from 'node:crypto';
import type { DnsReply, DnsRequest, Next, Plugin } from '../chain.ts';
import { addressRun, decode, shuffleRun } from '../wire.ts';
import type { RR } from '../wire.ts';

/** A/AAAA records after the others, in a random order; the others keep theirs. */
export function shuffleAddresses(rrs: readonly RR[]): readonly RR[] {
  const addr = rrs.filter((r) => r.type === 'A' || r.type === 'AAAA');
  if (addr.length < 2) return rrs;
  for (let i = addr.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [addr[i], addr[j]] = [addr[j] as RR, addr[i] as RR];
  }
  return [...rrs.filter((r) => r.type !== 'A' && r.type !== 'AAAA'), ...addr];
}

/** A copy of a whole message with its address run permuted (the message itself may be a cache's entry). */
export function shuffleMessage(raw: Buffer): Buffer {
  try {
    const run = addressRun(decode(raw), raw);
    if (!run) return raw;
    const out = Buffer.from(raw);
    shuffleRun(out, run);
    return out;
  } catch {
    return raw; // not parseable: sent as it is
  }
}

export class LoadbalancePlugin implements Plugin {
  readonly name = 'loadbalance';

  async serve(_req: DnsRequest, next: Next): Promise<DnsReply> {
    const r = await next();
    if (r.raw) return { ...r, raw: shuffleMessage(r.raw) };
    const answers = shuffleAddresses(r.answers);
    return answers === r.answers ? r : { ...r, answers };
  }
}
