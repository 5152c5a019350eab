// The autopath plugin (CoreDNS plugin/autopath): server-side search path completion. A pod with
// `search <ns>.svc.cluster.local svc.cluster.local cluster.local` and ndots:5 asks `foo.bar.<ns>.svc.cluster.local`
// first; the server walks the same search path itself (`foo.bar.<ns>.svc...`, `foo.bar.svc...`, ...,
// `foo.bar`) through the rest of the chain and answers the first reply that is not NXDOMAIN for the name
// asked, with a CNAME from that name to the one that answered, in one round trip instead of up to five.
// When every step is NXDOMAIN the first reply goes back as it was and the client walks its search path.
// The search path is a resolv.conf's or, with `@kubernetes`, the asking pod's (by source address, `pods
// verified`); where there is none (an unknown client), autopath passes the query on untouched.
import { KdpError } from '../../common/errors.ts';
import type { DnsReply, DnsRequest, Next, Plugin } from '../chain.ts';
import { reply } from '../chain.ts';
import { FLAG, RCODE, decode, encodeResponse } from '../wire.ts';
import type { RR } from '../wire.ts';

/** Where the search path comes from, per query (the AutoPather interface); undefined: no autopath for it. */
export type SearchFunc = (lname: string, client: string) => readonly string[] | undefined;

export interface AutopathConfig {
  /** lower-case zones autopath works in ('' = the root) */
  readonly zones: readonly string[];
  /** a fixed search path (from a resolv.conf), ending with '' (the name as asked); used when `searchFunc` is unset */
  readonly search: readonly string[];
}

export interface AutopathStats {
  /** coredns_autopath_success_total */
  onSuccess?(): void;
}

/** The search domains of a resolv.conf text (the last `search` or `domain` line wins), lower case, no trailing dot. */
export function parseResolvSearch(text: string): string[] {
  let search: string[] = [];
  for (const line of text.split('\n')) {
    if (/^\s*[#;]/.test(line)) continue;
    const f = line.trim().split(/\s+/);
    if (f[0] === 'search') search = f.slice(1);
    else if (f[0] === 'domain') search = f.slice(1, 2);
  }
  return search.map((d) => d.toLowerCase().replace(/\.$/, '')).filter((d) => d !== '');
}

/** rcodes a plugin returns without having written an answer (CoreDNS plugin.ClientWrite false) */
const UNWRITTEN = new Set<number>([RCODE.SERVFAIL, RCODE.REFUSED, RCODE.FORMERR, RCODE.NOTIMP]);

/** Whether the chain wrote this reply: an upstream or cached message counts whatever its rcode. */
function written(r: DnsReply): boolean {
  return r.raw !== undefined || !UNWRITTEN.has(r.rcode);
}

function inZone(lname: string, zone: string): boolean {
  return zone === '' || lname === zone || lname.endsWith('.' + zone);
}

/**
 * Whether autopath walks a search path for `lname`: it is inside the first element (CoreDNS
 * firstInSearchPath). The first element itself is not walked: CoreDNS answers it SERVFAIL (TrimZone
 * overshoots), kdp passes it on (docs/dns.md).
 */
export function firstInSearchPath(lname: string, search: readonly string[]): boolean {
  const first = search[0];
  if (first === undefined) return false;
  return first === '' ? lname !== '' : lname.endsWith('.' + first);
}

/**
 * CoreDNS cnamer: a CNAME from `original` to the owner of the first answer record not already owned by
 * `original`, put in front (with that record's TTL).
 */
export function cnamer(answers: readonly RR[], original: string): RR[] {
  const lower = original.toLowerCase();
  const first = answers.find((a) => a.name.toLowerCase() !== lower);
  if (!first) return [...answers];
  return [{ name: original, ttl: first.ttl, type: 'CNAME', data: first.name }, ...answers];
}

export class AutopathPlugin implements Plugin {
  readonly name = 'autopath';
  readonly config: AutopathConfig;
  readonly #searchFunc: SearchFunc | undefined;
  readonly #stats: AutopathStats;

  constructor(config: AutopathConfig, opts: { searchFunc?: SearchFunc; stats?: AutopathStats } = {}) {
    if (config.search.length > 0 && config.search[config.search.length - 1] !== '')
      throw new KdpError('KDP_DNS_CONFIG', "autopath: a search path ends with '' (the name as asked)");
    this.config = config;
    this.#searchFunc = opts.searchFunc;
    this.#stats = opts.stats ?? {};
  }

  /** The search path for this query, or undefined when autopath passes it on untouched (the fast path asks too). */
  searchFor(lname: string, client: string): readonly string[] | undefined {
    if (!this.config.zones.some((z) => inZone(lname, z))) return undefined;
    const search = this.#searchFunc ? this.#searchFunc(lname, client) : this.config.search;
    if (!search || search.length === 0 || !firstInSearchPath(lname, search)) return undefined;
    return search;
  }

  async serve(req: DnsRequest, next: Next): Promise<DnsReply> {
    const search = this.searchFor(req.lname, req.client);
    if (!search) return next();
    const original = req.question.name;
    // the name as asked without the first element, in the client's spelling
    const head = search[0] as string;
    const base = head === '' ? original : original.slice(0, original.length - head.length - 1);
    let first: DnsReply | undefined;
    for (const s of search) {
      const name = s === '' ? base : `${base}.${s}`;
      const got = await next({ ...req, question: { ...req.question, name }, lname: name.toLowerCase() });
      if (got.error !== undefined) return { ...got, generation: undefined }; // CoreDNS: an error ends the walk
      first ??= got;
      if (!written(got) || got.rcode === RCODE.NXDOMAIN) continue;
      this.#stats.onSuccess?.();
      return this.#forOriginal(got, req);
    }
    if (!first || !written(first)) return reply(this.name, first?.rcode ?? RCODE.SERVFAIL);
    return this.#forOriginal(first, req, false);
  }

  /** `r` (the answer to an expanded name) as the answer to the question asked, the CNAME in front. */
  #forOriginal(r: DnsReply, req: DnsRequest, cname = true): DnsReply {
    const original = req.question.name;
    if (!r.raw) {
      const { generation: _g, cacheHit: _c, ...rest } = r;
      return { ...rest, plugin: this.name, answers: cname ? cnamer(r.answers, original) : r.answers };
    }
    // a whole message (forward, cache): re-encoded with the question asked, its flags and sections kept
    const m = decode(r.raw);
    const raw = encodeResponse({
      id: req.id,
      flags: m.flags & ~(FLAG.QR | 0x000f),
      rcode: m.rcode,
      question: req.question,
      answers: cname ? cnamer(m.answers, original) : m.answers,
      authority: m.authority,
      additional: m.additional,
      ...(m.edns ? { edns: { udpSize: m.edns.udpSize, do: m.edns.do } } : {}),
    }).wire;
    return {
      plugin: this.name,
      rcode: m.rcode,
      aa: (m.flags & FLAG.AA) !== 0,
      answers: [],
      authority: [],
      additional: [],
      raw,
    };
  }
}
