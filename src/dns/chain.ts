// The plugin chain contract (CoreDNS plugin/plugin.go, in TypeScript): a plugin answers a request or
// hands it to `next`. The order does not follow the Corefile: dns.ts builds each block's chain in
// PLUGIN_ORDER (below), CoreDNS's plugin.cfg order; log and loadbalance are plugins in it like the others.
import type { Edns, Question, RR } from './wire.ts';

export interface DnsRequest {
  readonly id: number;
  /** the query's header flags word */
  readonly flags: number;
  readonly question: Question;
  /** question name in lower case, no trailing dot */
  readonly lname: string;
  /** 'A', 'AAAA', ... or 'TYPE<n>' */
  readonly qtype: string;
  readonly edns?: Edns;
  readonly proto: 'udp' | 'tcp';
  readonly client: string;
}

export interface DnsReply {
  readonly rcode: number;
  readonly aa: boolean;
  readonly answers: readonly RR[];
  readonly authority: readonly RR[];
  readonly additional: readonly RR[];
  /** a whole upstream message (forward, cache); the server patches the id and checks the size */
  readonly raw?: Buffer;
  /** the plugin that wrote the answer (the `plugin` label of coredns_dns_responses_total) */
  readonly plugin: string;
  /**
   * set by the kubernetes plugin: the answer depends only on the question and this generation of cluster
   * state, so the server may keep its encoded bytes and reuse them until the generation moves.
   */
  readonly generation?: number;
  /** set by cache on a hit */
  readonly cacheHit?: boolean;
  /** why a plugin answered SERVFAIL (an upstream's timeout, ...): what the errors plugin logs */
  readonly error?: string;
  /**
   * called by the server once the reply is encoded, with what went on the wire (CoreDNS plugins see this
   * through a recording ResponseWriter; the log plugin uses it for the size and TC of its line)
   */
  readonly written?: (w: Written) => void;
}

/** What the server wrote for a reply. */
export interface Written {
  readonly rcode: number;
  readonly size: number;
  readonly truncated: boolean;
}

export type Next = (req?: DnsRequest) => Promise<DnsReply>;

export interface Plugin {
  readonly name: string;
  serve(req: DnsRequest, next: Next): Promise<DnsReply>;
  /** for /ready: undefined when the plugin has no readiness */
  ready?(): boolean;
  close?(): Promise<void>;
}

/**
 * Plugin execution order: CoreDNS's plugin.cfg order, for the plugins of kdp that take part in answering
 * (health, ready, prometheus and reload are listeners and a watcher beside the chain). The order of the
 * directives in the Corefile does not matter, as in CoreDNS.
 */
export const PLUGIN_ORDER = [
  'errors',
  'log',
  'loadbalance',
  'autopath',
  'cache',
  'kubernetes',
  'loop',
  'forward',
] as const;

/** `plugins` in PLUGIN_ORDER (a plugin whose name is not listed is an error: it would have no place). */
export function inPluginOrder<P extends Plugin>(plugins: readonly P[]): P[] {
  const rank = (p: Plugin) => {
    const i = (PLUGIN_ORDER as readonly string[]).indexOf(p.name);
    if (i < 0) throw new Error(`plugin ${p.name} has no place in PLUGIN_ORDER`);
    return i;
  };
  return plugins
    .map((p) => ({ p, r: rank(p) }))
    .sort((a, b) => a.r - b.r)
    .map((x) => x.p);
}

/** A reply with one more `written` callback (kept after the ones it has). */
export function onWritten(r: DnsReply, fn: (w: Written) => void): DnsReply {
  const prev = r.written;
  return { ...r, written: prev ? (w) => (prev(w), fn(w)) : fn };
}

export function reply(plugin: string, rcode: number, rest: Partial<Omit<DnsReply, 'plugin' | 'rcode'>> = {}): DnsReply {
  return { plugin, rcode, aa: false, answers: [], authority: [], additional: [], ...rest };
}

/** Runs `plugins` in order; the end of the chain answers SERVFAIL (no plugin took the name). */
export function runChain(plugins: readonly Plugin[], req: DnsRequest, from = 0): Promise<DnsReply> {
  const p = plugins[from];
  if (!p) return Promise.resolve(reply('', 2));
  return p.serve(req, (r?: DnsRequest) => runChain(plugins, r ?? req, from + 1));
}
