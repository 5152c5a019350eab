// The log plugin (CoreDNS plugin/log): one line per query that passes through it, once its answer is on
// the wire: client, protocol, id, type, name, rcode, size, TC and the time from this plugin to the write.
// The server's fast path (answers reused from the query's bytes) writes the same line through line().
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../common/log.ts';
import type { DnsReply, DnsRequest, Next, Plugin } from '../chain.ts';
import { onWritten } from '../chain.ts';
import { rcodeName } from '../wire.ts';

export interface QueryLine {
  readonly client: string;
  readonly proto: 'udp' | 'tcp';
  readonly id: number;
  readonly qtype: string;
  readonly qname: string;
  readonly rcode: number;
  readonly size: number;
  readonly truncated: boolean;
  /** time from the query reaching this plugin (or the fast path) to the answer's write */
  readonly ms: number;
}

export class LogPlugin implements Plugin {
  readonly name = 'log';
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  async serve(req: DnsRequest, next: Next): Promise<DnsReply> {
    const t0 = performance.now();
    const r = await next();
    return onWritten(r, (w) =>
      this.line({
        client: req.client,
        proto: req.proto,
        id: req.id,
        qtype: req.qtype,
        qname: req.question.name,
        rcode: w.rcode,
        size: w.size,
        truncated: w.truncated,
        ms: performance.now() - t0,
      }),
    );
  }

  line(q: QueryLine): void {
    this.#log.info({ ...q, rcode: rcodeName(q.rcode), ms: Math.round(q.ms * 1e3) / 1e3 }, 'query');
  }
}
