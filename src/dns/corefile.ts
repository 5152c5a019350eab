// The Corefile, read as-is (CoreDNS caddyfile syntax: server blocks `ZONES:PORT { directive args {
// sub-options } }`, `#` comments, quoted tokens, {$ENV} substitution) into typed config. The plugins of the
// kubeadm default Corefile are understood; any other directive is an error (KDP_DNS_CONFIG), so a
// Corefile never silently means less than it says.
import { KdpError } from '../common/errors.ts';
import type { CacheConfig } from './plugins/cache.ts';
import { DEFAULT_CACHE } from './plugins/cache.ts';
import type { ForwardConfig } from './plugins/forward.ts';
import { DEFAULT_FORWARD } from './plugins/forward.ts';
import type { KubernetesConfig, PodsMode } from './plugins/kubernetes/records.ts';
import { DEFAULT_KUBERNETES_CONFIG } from './plugins/kubernetes/records.ts';

/** `forward` as written: the plugin's configuration, with upstreams still unresolved (addresses or resolv.conf paths). */
interface ForwardSpec extends Omit<ForwardConfig, 'upstreams' | 'readTimeoutMs'> {
  /** addresses or resolv.conf paths, resolved when the server starts */
  readonly to: readonly string[];
  readonly expireMs: number;
}

/** `errors { consolidate DURATION REGEXP [LEVEL] }` */
export interface ConsolidateRule {
  readonly durationMs: number;
  readonly pattern: string;
  readonly level: 'error' | 'warn' | 'info' | 'debug';
}

export interface BlockConfig {
  /** lower-case zones, '' for the root */
  readonly zones: readonly string[];
  readonly port: number;
  readonly errors: boolean;
  /** errors' consolidate rules */
  readonly consolidate: readonly ConsolidateRule[];
  /** options read but not applied (logged at startup): `plugin option (line N)` */
  readonly ignored: readonly string[];
  readonly log: boolean;
  readonly health?: { readonly addr: string; readonly lameduckMs: number };
  readonly ready?: { readonly addr: string };
  readonly prometheus?: { readonly addr: string };
  readonly kubernetes?: KubernetesConfig;
  readonly forward?: ForwardSpec;
  readonly cache?: CacheConfig;
  readonly loop: boolean;
  readonly reload?: { readonly intervalMs: number; readonly jitterMs: number };
  readonly loadbalance: boolean;
  readonly autopath?: AutopathSpec;
}

/** `autopath [ZONE...] RESOLV-CONF`: the search path from a plugin (`@kubernetes`) or a resolv.conf file */
export interface AutopathSpec {
  readonly zones: readonly string[];
  readonly from: { readonly plugin: 'kubernetes' } | { readonly file: string };
  readonly line: number;
}

interface Token {
  readonly text: string;
  readonly line: number;
  readonly quoted: boolean;
}

function fail(line: number, msg: string): never {
  throw new KdpError('KDP_DNS_CONFIG', `Corefile:${line}: ${msg}`, { details: { line } });
}

/**
 * Whitespace as the Corefile lexer sees it (Go's unicode.IsSpace): ASCII space, tab, newline, vertical tab,
 * form feed, carriage return, U+0085, U+00A0 and the Unicode space separators. A byte order mark is not
 * whitespace: it is dropped at the very start of the file (as CoreDNS does) and part of a word elsewhere.
 */
function isSpace(c: string): boolean {
  return c !== '\uFEFF' && (/\s/.test(c) || c === '\u0085');
}

/**
 * Splits a Corefile into tokens. Every step consumes at least one character, so the loop ends; bad input
 * (an unterminated quote or `{$VAR`) is a KDP_DNS_CONFIG error naming the line.
 */
export function tokenize(text: string, env: Readonly<Record<string, string | undefined>> = {}): Token[] {
  const out: Token[] = [];
  let line = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const subst = (s: string) => s.replace(/\{\$([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, v: string) => env[v] ?? '');
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '\n') {
      line++;
      i++;
      continue;
    }
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if ((c === '{' && text[i + 1] !== '$') || c === '}') {
      // `{` and `}` are tokens on their own; `{$VAR}` is substitution
      out.push({ text: c, line, quoted: false });
      i++;
      continue;
    }
    if (c === '"') {
      const first = line;
      let s = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        if (text[i] === '\n') line++;
        s += text[i];
        i++;
      }
      if (i >= text.length) fail(first, 'unterminated quote');
      i++;
      out.push({ text: subst(s), line: first, quoted: true });
      continue;
    }
    // a word: up to whitespace, `{`, `}` or the end; `{$VAR}` inside it is kept whole
    const begin = i;
    while (i < text.length && !isSpace(text[i] as string)) {
      if (text[i] === '{' && text[i + 1] === '$') {
        const end = text.indexOf('}', i + 2);
        const nl = text.indexOf('\n', i + 2);
        if (end < 0 || (nl >= 0 && nl < end)) fail(line, `unterminated {$VAR}: ${text.slice(i, nl < 0 ? i + 40 : nl)}`);
        i = end + 1;
        continue;
      }
      if (text[i] === '{' || text[i] === '}') break;
      i++;
    }
    out.push({ text: subst(text.slice(begin, i)), line, quoted: false });
  }
  return out;
}

/** `5s`, `500ms`, `1m`, `1h` -> milliseconds */
export function parseDuration(s: string, line: number): number {
  if (s === '0') return 0;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (!m) fail(line, `not a duration: ${s}`);
  const n = Number(m[1]);
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']);
}

function normZone(z: string): string {
  const s = z
    .replace(/^dns:\/\//, '')
    .toLowerCase()
    .replace(/\.$/, '');
  return s === '.' ? '' : s;
}

function int(s: string | undefined, line: number, what: string, min = 0, max = 2 ** 31): number {
  if (s === undefined || !/^\d+$/.test(s) || Number(s) < min || Number(s) > max)
    fail(line, `${what}: expected an integer in ${min}..${max}, got ${s ?? 'nothing'}`);
  return Number(s);
}

interface Directive {
  readonly name: string;
  readonly args: string[];
  readonly line: number;
  readonly block: { name: string; args: string[]; line: number }[];
}

/** Parses a Corefile into its server blocks. */
export function parseCorefile(text: string, env: Readonly<Record<string, string | undefined>> = {}): BlockConfig[] {
  const toks = tokenize(text, env);
  const blocks: BlockConfig[] = [];
  const served = new Map<string, number>(); // `zone.:port` -> line of its block
  let i = 0;
  while (i < toks.length) {
    const keys: Token[] = [];
    while (i < toks.length && (toks[i] as Token).text !== '{') keys.push(toks[i++] as Token);
    if (i >= toks.length) fail(keys[0]?.line ?? 0, 'server block without {');
    i++; // {
    if (keys.length === 0) fail((toks[i - 1] as Token).line, 'server block without a zone');
    const directives: Directive[] = [];
    for (;;) {
      const t = toks[i];
      if (!t) fail(keys[0]!.line, 'server block without }');
      if (t.text === '}') {
        i++;
        break;
      }
      const name = t.text;
      const line = t.line;
      const args: string[] = [];
      i++;
      while (
        i < toks.length &&
        (toks[i] as Token).line === line &&
        (toks[i] as Token).text !== '{' &&
        (toks[i] as Token).text !== '}'
      )
        args.push((toks[i++] as Token).text);
      const sub: Directive['block'] = [];
      if (toks[i]?.text === '{') {
        i++;
        for (;;) {
          const s = toks[i];
          if (!s) fail(line, `${name}: block without }`);
          if (s.text === '}') {
            i++;
            break;
          }
          const sargs: string[] = [];
          i++;
          while (
            i < toks.length &&
            (toks[i] as Token).line === s.line &&
            (toks[i] as Token).text !== '}' &&
            (toks[i] as Token).text !== '{'
          )
            sargs.push((toks[i++] as Token).text);
          sub.push({ name: s.text, args: sargs, line: s.line });
        }
      }
      directives.push({ name, args, line, block: sub });
    }
    const zones: string[] = [];
    let port = 53;
    for (const k of keys) {
      for (const part of k.text.split(',').filter(Boolean)) {
        const m = /^(?:dns:\/\/)?([^:]*)(?::(\d+))?$/.exec(part);
        if (!m) fail(k.line, `bad server block key ${part}`);
        zones.push(normZone(m[1] === '' ? '.' : (m[1] as string)));
        if (m[2] !== undefined) port = int(m[2], k.line, 'port', 0, 65535);
      }
    }
    // one zone on one port is served by one block (CoreDNS: "cannot serve dns://Z:P - it is already defined")
    for (const z of zones) {
      const key = `${z === '' ? '.' : z + '.'}:${port}`;
      const prev = served.get(key);
      if (prev !== undefined)
        fail(keys[0]!.line, `cannot serve dns://${key} - it is already defined (by the block on line ${prev})`);
      served.set(key, keys[0]!.line);
    }
    blocks.push(block(zones, port, directives));
  }
  if (blocks.length === 0) fail(1, 'no server block');
  return blocks;
}

/**
 * Plugins that may appear once per server block (CoreDNS answers plugin.ErrOnce, "this plugin can only be
 * used once per Server Block", for these), plus forward: CoreDNS chains several forward stanzas, kdp runs one.
 */
const ONCE = new Set(['errors', 'kubernetes', 'cache', 'loop', 'prometheus', 'ready', 'forward', 'autopath']);

function block(zones: string[], port: number, ds: Directive[]): BlockConfig {
  const ignored: string[] = [];
  const cfg: { -readonly [K in keyof BlockConfig]: BlockConfig[K] } = {
    zones,
    port,
    errors: false,
    consolidate: [],
    ignored,
    log: false,
    loop: false,
    loadbalance: false,
  };
  const seen = new Map<string, number>();
  for (const d of ds) {
    const prev = seen.get(d.name);
    if (prev !== undefined && ONCE.has(d.name))
      fail(d.line, `${d.name}: this plugin can only be used once per server block (first on line ${prev})`);
    seen.set(d.name, d.line);
    switch (d.name) {
      case 'errors': {
        cfg.errors = true;
        const rules: ConsolidateRule[] = [];
        for (const s of d.block) {
          if (s.name === 'consolidate') {
            const [dur, pattern, level] = s.args;
            if (dur === undefined || pattern === undefined || s.args.length > 3)
              fail(s.line, 'consolidate: expected DURATION REGEXP [LEVEL]');
            try {
              new RegExp(pattern);
            } catch {
              fail(s.line, `consolidate: not a regular expression: ${pattern}`);
            }
            const lv =
              level === undefined
                ? 'error'
                : ({ error: 'error', warning: 'warn', warn: 'warn', info: 'info', debug: 'debug' } as const)[
                    level as 'error'
                  ];
            if (!lv) fail(s.line, `consolidate: LEVEL is one of warning, error, info, debug`);
            rules.push({ durationMs: parseDuration(dur, s.line), pattern, level: lv });
          } else if (s.name === 'stacktrace') {
            ignored.push(`errors stacktrace (line ${s.line})`);
          } else {
            fail(s.line, `errors: unknown option ${s.name}`);
          }
        }
        cfg.consolidate = rules;
        break;
      }
      case 'log':
        cfg.log = true;
        break;
      case 'health': {
        let lameduckMs = 0;
        for (const s of d.block) {
          if (s.name === 'lameduck') lameduckMs = parseDuration(s.args[0] ?? '', s.line);
          else fail(s.line, `health: unknown option ${s.name}`);
        }
        cfg.health = { addr: d.args[0] ?? ':8080', lameduckMs };
        break;
      }
      case 'ready':
        cfg.ready = { addr: d.args[0] ?? ':8181' };
        break;
      case 'prometheus':
        cfg.prometheus = { addr: d.args[0] ?? 'localhost:9153' };
        break;
      case 'kubernetes':
        cfg.kubernetes = kubernetes(d, zones, ignored);
        break;
      case 'forward':
        cfg.forward = forward(d, ignored);
        break;
      case 'cache':
        cfg.cache = cache(d, zones);
        break;
      case 'loop':
        cfg.loop = true;
        break;
      case 'reload': {
        const intervalMs = d.args[0] ? parseDuration(d.args[0], d.line) : 30_000;
        cfg.reload = { intervalMs, jitterMs: d.args[1] ? parseDuration(d.args[1], d.line) : intervalMs / 2 };
        break;
      }
      case 'autopath':
        cfg.autopath = autopath(d, zones);
        break;
      case 'loadbalance':
        if (d.args[0] && d.args[0] !== 'round_robin') fail(d.line, `loadbalance: unsupported policy ${d.args[0]}`);
        cfg.loadbalance = true;
        break;
      default:
        fail(
          d.line,
          `unknown or unsupported plugin ${JSON.stringify(d.name)} (kdp dns implements errors, log, health, ready, autopath, kubernetes, prometheus, forward, cache, loop, reload, loadbalance)`,
        );
    }
  }
  return cfg;
}

function autopath(d: Directive, blockZones: string[]): AutopathSpec {
  const last = d.args[d.args.length - 1];
  if (last === undefined)
    fail(d.line, 'autopath: no resolv-conf specified (expected [ZONE...] RESOLV-CONF or @kubernetes)');
  if (d.block.length > 0) fail(d.line, 'autopath: takes no block');
  const zs = d.args.slice(0, -1);
  if (zs.some((z) => z.includes('/'))) fail(d.line, 'autopath: CIDR zones are not supported; name the reverse zone');
  const zones = zs.length > 0 ? zs.map(normZone) : blockZones;
  if (last.startsWith('@')) {
    // CoreDNS takes the search path from any plugin implementing AutoPather; in kdp that is kubernetes
    if (last !== '@kubernetes') fail(d.line, `autopath: ${last.slice(1)} does not implement the AutoPather interface`);
    return { zones, from: { plugin: 'kubernetes' }, line: d.line };
  }
  if (last === '') fail(d.line, 'autopath: failed to parse "": not a resolv.conf path');
  return { zones, from: { file: last }, line: d.line };
}

function kubernetes(d: Directive, blockZones: string[], ignored: string[]): KubernetesConfig {
  const zones = d.args.length > 0 ? d.args.map(normZone) : blockZones;
  let ttl = DEFAULT_KUBERNETES_CONFIG.ttl;
  let pods: PodsMode = 'disabled';
  let endpointPodNames = false;
  let fallthrough: string[] | undefined;
  let ignoreEmptyService = false;
  for (const s of d.block) {
    switch (s.name) {
      case 'pods':
        if (!['disabled', 'insecure', 'verified'].includes(s.args[0] ?? ''))
          fail(s.line, `pods: expected disabled|insecure|verified`);
        pods = s.args[0] as PodsMode;
        break;
      case 'ttl':
        ttl = int(s.args[0], s.line, 'ttl', 0, 3600);
        break;
      case 'endpoint_pod_names':
        endpointPodNames = true;
        break;
      case 'fallthrough':
        fallthrough = s.args.map(normZone);
        break;
      case 'ignore':
        if (s.args[0] !== 'empty_service') fail(s.line, `ignore: only empty_service is known`);
        ignoreEmptyService = true;
        break;
      // connection settings: the cluster source comes from flags (--manifests / --kubeconfig)
      case 'kubeconfig':
      case 'endpoint':
      case 'tls':
      case 'startup_timeout':
      case 'apiserver_qps':
      case 'apiserver_burst':
      case 'apiserver_max_inflight':
        ignored.push(`kubernetes ${s.name} (line ${s.line}; the cluster source comes from --manifests / --kubeconfig)`);
        break;
      default:
        fail(s.line, `kubernetes: unsupported option ${s.name}`);
    }
  }
  return { zones, ttl, pods, endpointPodNames, ignoreEmptyService, ...(fallthrough ? { fallthrough } : {}) };
}

function forward(d: Directive, ignored: string[]): ForwardSpec {
  const [from, ...to] = d.args;
  if (from === undefined || to.length === 0) fail(d.line, 'forward: expected FROM TO...');
  const { readTimeoutMs: _unused, ...defaults } = DEFAULT_FORWARD;
  const spec = {
    ...defaults,
    from: normZone(from),
    to,
    except: [] as string[],
    policy: DEFAULT_FORWARD.policy as ForwardSpec['policy'],
    expireMs: 10_000,
  };
  for (const s of d.block) {
    switch (s.name) {
      case 'except':
        spec.except = s.args.map(normZone);
        break;
      case 'policy':
        if (!['random', 'round_robin', 'sequential'].includes(s.args[0] ?? ''))
          fail(s.line, 'policy: expected random|round_robin|sequential');
        spec.policy = s.args[0] as ForwardSpec['policy'];
        break;
      case 'max_fails':
        spec.maxFails = int(s.args[0], s.line, 'max_fails');
        break;
      case 'health_check':
        spec.healthCheckMs = parseDuration(s.args[0] ?? '', s.line);
        break;
      case 'force_tcp':
        spec.forceTcp = true;
        break;
      case 'prefer_udp':
        ignored.push(`forward prefer_udp (line ${s.line}; UDP is always tried first unless force_tcp)`);
        break;
      case 'max_concurrent':
        spec.maxConcurrent = int(s.args[0], s.line, 'max_concurrent');
        break;
      case 'expire':
        spec.expireMs = parseDuration(s.args[0] ?? '', s.line);
        ignored.push(
          `forward expire (line ${s.line}; every exchange uses a fresh socket, there are no connections to expire)`,
        );
        break;
      default:
        fail(s.line, `forward: unsupported option ${s.name}`);
    }
  }
  if (spec.maxFails === 0) spec.maxFails = Number.MAX_SAFE_INTEGER; // max_fails 0: never marked down
  return spec;
}

function cache(d: Directive, blockZones: string[]): CacheConfig {
  const args = [...d.args];
  let maxTtl: number | undefined;
  if (args[0] !== undefined && /^\d+$/.test(args[0])) maxTtl = int(args.shift(), d.line, 'cache TTL', 0);
  const zones = args.length > 0 ? args.map(normZone) : blockZones;
  const c: { -readonly [K in keyof CacheConfig]: CacheConfig[K] } = { ...DEFAULT_CACHE, zones };
  if (maxTtl !== undefined) {
    c.successMaxTtl = maxTtl;
    c.denialMaxTtl = maxTtl;
  }
  for (const s of d.block) {
    switch (s.name) {
      case 'success':
      case 'denial': {
        const cap = int(s.args[0], s.line, `${s.name} capacity`, 1);
        const ttl = s.args[1] !== undefined ? int(s.args[1], s.line, `${s.name} TTL`) : undefined;
        const min = s.args[2] !== undefined ? int(s.args[2], s.line, `${s.name} MINTTL`) : undefined;
        if (s.name === 'success') {
          c.successCap = cap;
          if (ttl !== undefined) c.successMaxTtl = ttl;
          if (min !== undefined) c.successMinTtl = min;
        } else {
          c.denialCap = cap;
          if (ttl !== undefined) c.denialMaxTtl = ttl;
          if (min !== undefined) c.denialMinTtl = min;
        }
        break;
      }
      case 'disable': {
        const [kind, ...zs] = s.args;
        if (kind !== 'success' && kind !== 'denial') fail(s.line, 'disable: expected success|denial ZONES');
        const list = zs.length ? zs.map(normZone) : zones;
        if (kind === 'success') c.disableSuccess = [...c.disableSuccess, ...list];
        else c.disableDenial = [...c.disableDenial, ...list];
        break;
      }
      case 'prefetch': {
        const [amount, ...rest] = s.args;
        let durationMs = 60_000;
        let percentage = 10;
        for (const a of rest) {
          const pm = /^(\d+)%$/.exec(a);
          if (pm) {
            percentage = Number(pm[1]);
            if (percentage < 10 || percentage > 90) fail(s.line, 'prefetch: PERCENTAGE must be within 10%..90%');
          } else {
            durationMs = parseDuration(a, s.line);
          }
        }
        if (rest.length > 2) fail(s.line, 'prefetch: expected AMOUNT [[DURATION] [PERCENTAGE%]]');
        c.prefetch = {
          amount: amount === undefined ? 1 : int(amount, s.line, 'prefetch AMOUNT', 1),
          durationMs,
          percentage,
        };
        break;
      }
      case 'serve_stale': {
        const [dur, mode] = s.args;
        if (s.args.length > 2) fail(s.line, 'serve_stale: expected [DURATION] [immediate|verify]');
        if (mode !== undefined && !['immediate', 'verify', 'verified'].includes(mode))
          fail(s.line, 'serve_stale: REFRESH_MODE is immediate or verify');
        c.serveStale = {
          durationMs: dur === undefined ? 3_600_000 : parseDuration(dur, s.line),
          verify: mode === 'verify' || mode === 'verified',
        };
        break;
      }
      case 'servfail': {
        const ms = parseDuration(s.args[0] ?? '', s.line);
        if (ms > 300_000) fail(s.line, 'servfail: DURATION may not be greater than 5m');
        c.servfailTtl = Math.floor(ms / 1000);
        break;
      }
      case 'keepttl':
        c.keepTtl = true;
        break;
      default:
        fail(s.line, `cache: unsupported option ${s.name}`);
    }
  }
  return c;
}

/** The kubeadm default Corefile (Kubernetes v1.32+). */
export const KUBEADM_COREFILE = `.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
`;
