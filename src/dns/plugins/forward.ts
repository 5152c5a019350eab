// The forward plugin: other names go to upstream servers over UDP (TCP when the answer is truncated or
// force_tcp), each exchange from a fresh socket on a kernel-chosen port with a random query id. Upstreams
// that fail max_fails times in a row are down until a health check (". IN NS" every health_check) gets any
// answer; with all upstreams down the client gets SERVFAIL at once. Identical questions in flight at once
// (same spelling, type, RD and DO) share one exchange, as dnsmasq merges them.
import { performance } from 'node:perf_hooks';
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIP, connect } from 'node:net';
import { KdpError, errorMessage } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import type { DnsReply, DnsRequest, Next, Plugin } from '../chain.ts';
import { reply } from '../chain.ts';
import { FLAG, OUR_UDP_SIZE, TYPE, decode, encodeQuery, withClientOpt } from '../wire.ts';

interface Upstream {
  readonly host: string;
  readonly port: number;
}

export interface ForwardConfig {
  /** the zone forwarded ('' = everything) */
  readonly from: string;
  readonly upstreams: readonly Upstream[];
  readonly except: readonly string[];
  readonly policy: 'random' | 'round_robin' | 'sequential';
  readonly maxFails: number;
  readonly healthCheckMs: number;
  readonly readTimeoutMs: number;
  readonly forceTcp: boolean;
  readonly maxConcurrent: number;
}

export const DEFAULT_FORWARD: Omit<ForwardConfig, 'upstreams' | 'from'> = {
  except: [],
  policy: 'random',
  maxFails: 2,
  healthCheckMs: 500,
  readTimeoutMs: 2000,
  forceTcp: false,
  maxConcurrent: 0,
};

/** Parses `host`, `host:port`, `[v6]:port`, `dns://host[:port]`. */
export function parseUpstream(s: string): Upstream {
  const t = s.replace(/^dns:\/\//, '');
  if (isIP(t)) return { host: t, port: 53 };
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (v6 && isIP(v6[1] as string) === 6) return { host: v6[1] as string, port: v6[2] ? Number(v6[2]) : 53 };
  const v4 = /^([\d.]+):(\d+)$/.exec(t);
  if (v4 && isIP(v4[1] as string) === 4 && Number(v4[2]) > 0 && Number(v4[2]) < 65536)
    return { host: v4[1] as string, port: Number(v4[2]) };
  throw new KdpError('KDP_DNS_CONFIG', `not an upstream address: ${s}`);
}

/** The nameserver lines of a resolv.conf text. */
export function parseResolvConf(text: string): Upstream[] {
  const out: Upstream[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && isIP((m[1] as string).replace(/%.*$/, '')))
      out.push({ host: (m[1] as string).replace(/%.*$/, ''), port: 53 });
  }
  return out;
}

/** Expands forward TO arguments: addresses, or a resolv.conf path. */
export function resolveUpstreams(
  args: readonly string[],
  readFile: (p: string) => string = (p) => readFileSync(p, 'utf8'),
): Upstream[] {
  const out: Upstream[] = [];
  for (const a of args) {
    if (a.startsWith('/') || a.startsWith('./')) {
      let text: string;
      try {
        text = readFile(a);
      } catch (err) {
        throw new KdpError('KDP_DNS_CONFIG', `cannot read ${a}: ${errorMessage(err)}`, { cause: err });
      }
      out.push(...parseResolvConf(text));
    } else {
      out.push(parseUpstream(a));
    }
  }
  if (out.length === 0) throw new KdpError('KDP_DNS_CONFIG', `forward: no upstream in ${args.join(' ')}`);
  if (out.length > 15) throw new KdpError('KDP_DNS_CONFIG', 'forward: more than 15 upstreams');
  return out;
}

interface UpstreamState {
  readonly up: Upstream;
  fails: number;
  checking: boolean;
}

export interface ForwardStats {
  /** CoreDNS coredns_proxy_request_duration_seconds{proxy_name="forward",to,rcode} */
  onRequest?(to: string, rcode: string, seconds: number): void;
  onHealthcheckBroken?(): void;
  onMaxConcurrentReject?(): void;
}

/** One query/answer exchange with an upstream (UDP, then TCP on truncation). */
async function exchange(up: Upstream, query: Buffer, opts: { timeoutMs: number; tcp: boolean }): Promise<Buffer> {
  if (!opts.tcp) {
    const res = await udpExchange(up, query, opts.timeoutMs);
    if ((res.readUInt16BE(2) & FLAG.TC) === 0) return res;
  }
  return tcpExchange(up, query, opts.timeoutMs);
}

function matches(query: Buffer, res: Buffer): boolean {
  if (res.length < 12 || res.readUInt16BE(0) !== query.readUInt16BE(0) || (res.readUInt16BE(2) & FLAG.QR) === 0)
    return false;
  try {
    const q = decode(query).questions[0];
    const r = decode(res).questions[0];
    return !!q && !!r && q.type === r.type && q.name.toLowerCase() === r.name.toLowerCase();
  } catch {
    return false;
  }
}

function udpExchange(up: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIP(up.host) === 6 ? 'udp6' : 'udp4');
    let done = false;
    const finish = (err: Error | undefined, res?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(res as Buffer);
    };
    const timer = setTimeout(
      () => finish(new KdpError('KDP_DNS_UPSTREAM', `${up.host}:${up.port}: no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on('error', (err) =>
      finish(new KdpError('KDP_DNS_UPSTREAM', `${up.host}:${up.port}: ${err.message}`, { cause: err })),
    );
    sock.on('message', (msg, rinfo) => {
      // only the server we asked, only the answer to our question (spoofing resistance with the random id and port)
      if (rinfo.port !== up.port || rinfo.address !== up.host || !matches(query, msg)) return;
      finish(undefined, msg);
    });
    sock.connect(up.port, up.host, () =>
      sock.send(
        query,
        (err) => err && finish(new KdpError('KDP_DNS_UPSTREAM', `${up.host}:${up.port}: ${err.message}`)),
      ),
    );
  });
}

function tcpExchange(up: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: up.host, port: up.port });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | undefined, res?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res as Buffer);
    };
    const timer = setTimeout(
      () => finish(new KdpError('KDP_DNS_UPSTREAM', `${up.host}:${up.port}/tcp: no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on('error', (err) =>
      finish(new KdpError('KDP_DNS_UPSTREAM', `${up.host}:${up.port}/tcp: ${err.message}`, { cause: err })),
    );
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        if (matches(query, msg)) return finish(undefined, Buffer.from(msg));
      }
    });
    sock.on('end', () =>
      finish(new KdpError('KDP_DNS_UPSTREAM', `${up.host}:${up.port}/tcp: closed without an answer`)),
    );
  });
}

/** What one upstream exchange gave: the upstream's answer, or SERVFAIL with why. */
interface Fetched {
  readonly res?: Buffer;
  readonly rcode: number;
  readonly error?: string;
}

export class ForwardPlugin implements Plugin {
  readonly name = 'forward';
  readonly config: ForwardConfig;
  readonly #ups: UpstreamState[];
  readonly #log: Logger;
  readonly #stats: ForwardStats;
  readonly #timers = new Set<NodeJS.Timeout>();
  #rr = 0;
  #inflight = 0;
  /** upstream exchanges in flight by question (spelling, type, RD, DO) */
  readonly #pending = new Map<string, Promise<Fetched>>();
  #merged = 0;
  #closed = false;

  constructor(config: ForwardConfig, deps: { log: Logger; stats?: ForwardStats }) {
    this.config = config;
    this.#ups = config.upstreams.map((up) => ({ up, fails: 0, checking: false }));
    this.#log = deps.log;
    this.#stats = deps.stats ?? {};
  }

  #applies(lname: string): boolean {
    const inZone = (z: string) => z === '' || lname === z || lname.endsWith('.' + z);
    return inZone(this.config.from) && !this.config.except.some(inZone);
  }

  /** upstreams in the order to try, healthy ones only */
  #order(): UpstreamState[] {
    const healthy = this.#ups.filter((u) => u.fails < this.config.maxFails);
    if (this.config.policy === 'sequential') return healthy;
    if (this.config.policy === 'round_robin') {
      const start = this.#rr++ % Math.max(1, healthy.length);
      return [...healthy.slice(start), ...healthy.slice(0, start)];
    }
    const a = [...healthy];
    for (let i = a.length - 1; i > 0; i--) {
      const j = randomInt(i + 1);
      [a[i], a[j]] = [a[j] as UpstreamState, a[i] as UpstreamState];
    }
    return a;
  }

  async serve(req: DnsRequest, next: Next): Promise<DnsReply> {
    if (!this.#applies(req.lname)) return next();
    const rd = (req.flags & FLAG.RD) !== 0;
    const dnssec = req.edns?.do ?? false;
    // identical questions in flight share one upstream exchange (as dnsmasq merges them): when a cached answer
    // expires under load, its name is asked upstream once, not once per query that arrives before the answer
    const key = `${req.question.name}|${req.question.type}|${rd ? 1 : 0}|${dnssec ? 1 : 0}`;
    let fetched = this.#pending.get(key);
    if (!fetched) {
      if (this.config.maxConcurrent > 0 && this.#inflight >= this.config.maxConcurrent) {
        this.#stats.onMaxConcurrentReject?.();
        return reply(this.name, 5);
      }
      const order = this.#order();
      if (order.length === 0) return reply(this.name, 2, { error: 'no healthy upstream' }); // all down: fail fast, health checks bring them back
      fetched = this.#fetch(order, req, rd, dnssec);
      this.#pending.set(key, fetched);
      const started = fetched;
      void started.then(() => {
        if (this.#pending.get(key) === started) this.#pending.delete(key);
      });
    } else this.#merged++;
    const f = await fetched;
    if (!f.res) return reply(this.name, f.rcode, { error: f.error });
    // a copy per client (withClientOpt makes one): its own id and EDNS
    const raw = withClientOpt(f.res, req.edns ? { do: req.edns.do } : undefined);
    raw.writeUInt16BE(req.id, 0);
    return reply(this.name, f.rcode, { raw });
  }

  /** queries answered by another query's upstream exchange (tests) */
  get merged(): number {
    return this.#merged;
  }

  /** One upstream exchange for a question: the first upstream in `order` that answers. Never rejects. */
  async #fetch(order: UpstreamState[], req: DnsRequest, rd: boolean, dnssec: boolean): Promise<Fetched> {
    this.#inflight++;
    let lastError = '';
    try {
      for (const u of order) {
        const id = randomInt(0x10000);
        const query = encodeQuery({
          id,
          name: req.question.name,
          type: req.question.type,
          rd,
          edns: { udpSize: OUR_UDP_SIZE, do: dnssec },
        });
        const t0 = performance.now();
        try {
          const res = await exchange(u.up, query, { timeoutMs: this.config.readTimeoutMs, tcp: this.config.forceTcp });
          u.fails = 0;
          const rcode = res.readUInt16BE(2) & 0xf;
          this.#stats.onRequest?.(`${u.up.host}:${u.up.port}`, String(rcode), (performance.now() - t0) / 1000);
          return { res, rcode };
        } catch (err) {
          u.fails++;
          lastError = errorMessage(err);
          this.#log.debug(
            { upstream: `${u.up.host}:${u.up.port}`, fails: u.fails, err: errorMessage(err) },
            'upstream exchange failed',
          );
          if (u.fails >= this.config.maxFails) this.#startHealthCheck(u);
        }
      }
      return { rcode: 2, error: lastError };
    } finally {
      this.#inflight--;
    }
  }

  #startHealthCheck(u: UpstreamState): void {
    if (u.checking || this.#closed) return;
    u.checking = true;
    this.#stats.onHealthcheckBroken?.();
    this.#log.warn({ upstream: `${u.up.host}:${u.up.port}` }, 'upstream down; health checking it');
    const tick = () => {
      this.#timers.delete(timer);
      if (this.#closed) return;
      const q = encodeQuery({ id: randomInt(0x10000), name: '', type: TYPE.NS, rd: false });
      exchange(u.up, q, {
        timeoutMs: Math.max(100, Math.min(this.config.healthCheckMs, 1000)),
        tcp: this.config.forceTcp,
      }).then(
        () => {
          u.fails = 0;
          u.checking = false;
          this.#log.info({ upstream: `${u.up.host}:${u.up.port}` }, 'upstream healthy again');
        },
        () => {
          if (this.#closed) return;
          timer = setTimeout(tick, this.config.healthCheckMs);
          this.#timers.add(timer);
        },
      );
    };
    let timer = setTimeout(tick, this.config.healthCheckMs);
    this.#timers.add(timer);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
