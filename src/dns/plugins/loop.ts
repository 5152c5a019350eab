// The loop plugin (CoreDNS plugin/loop): at start the server sends itself one HINFO query for a random
// name; seeing that query arrive more than twice means forward sends our own queries back to us.
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../common/log.ts';
import type { DnsReply, DnsRequest, Next, Plugin } from '../chain.ts';

/** The loop plugin: notices its own probe query coming back through forward (a resolver loop). */
export class LoopPlugin implements Plugin {
  readonly name = 'loop';
  readonly probe: string;
  seen = 0;
  readonly #log: Logger;
  constructor(zone: string, log: Logger) {
    const r = () => randomBytes(8).readBigUInt64BE().toString();
    this.probe = `${r()}.${r()}${zone === '' ? '' : '.' + zone}`;
    this.#log = log;
  }
  async serve(req: DnsRequest, next: Next): Promise<DnsReply> {
    if (req.lname === this.probe && req.qtype === 'HINFO') {
      this.seen++;
      if (this.seen > 2) {
        this.#log.error(
          { probe: this.probe },
          'Loop detected: forwarding sends our own queries back to us; fix the upstream (resolv.conf)',
        );
        return { plugin: this.name, rcode: 2, aa: false, answers: [], authority: [], additional: [] };
      }
    }
    return next();
  }
  ready(): boolean {
    return this.seen <= 2;
  }
}
