// The kubernetes plugin: answers from KubernetesRecords, chases out-of-zone ExternalName targets through
// the rest of the chain, and marks answers that depend only on cluster state (the server reuses their bytes).
import type { DnsReply, DnsRequest, Next, Plugin } from '../../chain.ts';
import { reply } from '../../chain.ts';
import { TYPE, decode } from '../../wire.ts';
import type { RR } from '../../wire.ts';
import type { KubernetesRecords } from './handler.ts';

export class KubernetesPlugin implements Plugin {
  readonly name = 'kubernetes';
  readonly records: KubernetesRecords;
  constructor(records: KubernetesRecords) {
    this.records = records;
  }

  ready(): boolean {
    return this.records.synced;
  }

  async serve(req: DnsRequest, next: Next): Promise<DnsReply> {
    const generation = this.records.generation;
    const r = this.records.lookup({ name: req.question.name, type: req.qtype });
    if (r.kind === 'next') return next();
    if (r.kind === 'servfail') return reply(this.name, 2);
    if (r.chase === undefined) {
      return {
        plugin: this.name,
        rcode: r.rcode,
        aa: true,
        answers: r.answers,
        authority: r.authority,
        additional: r.additional,
        generation,
      };
    }
    // ExternalName pointing outside our zones: resolve the target through the rest of the chain
    const sub: DnsRequest = { ...req, question: { ...req.question, name: r.chase }, lname: r.chase.toLowerCase() };
    let extra: readonly RR[];
    let rcode: number = r.rcode;
    try {
      const got = await next(sub);
      if (got.raw) {
        const m = decode(got.raw);
        extra = m.answers;
        rcode = m.rcode;
      } else {
        extra = got.answers;
        rcode = got.rcode;
      }
    } catch {
      extra = [];
    }
    if (rcode !== 0 && rcode !== 3) rcode = 0; // the CNAME itself exists
    return {
      plugin: this.name,
      rcode,
      aa: true,
      answers: [...r.answers, ...extra.filter((x) => x.type !== 'RAW' || x.code !== TYPE.OPT)],
      authority: [],
      additional: [],
    };
  }
}
