// The nginx.ingress.kubernetes.io/* annotations kdp honours, parsed into typed options.
// Every value is checked against a strict grammar; a bad value rejects that Ingress (never escaped, never
// turned into configuration text). Snippet annotations are refused outright.
import { BlockList, isIP } from 'node:net';

const PREFIX = 'nginx.ingress.kubernetes.io/';

interface CorsOptions {
  readonly allowOrigin: readonly string[];
  readonly allowMethods: string;
  readonly allowHeaders: string;
  readonly allowCredentials: boolean;
  readonly maxAge: number;
  readonly exposeHeaders?: string;
}

interface AffinityOptions {
  readonly cookieName: string;
  readonly path?: string;
  readonly maxAge?: number;
  readonly sameSite?: 'None' | 'Lax' | 'Strict';
}

export interface CanaryOptions {
  readonly byHeader?: string;
  readonly byHeaderValue?: string;
  readonly byHeaderPattern?: RegExp;
  readonly byCookie?: string;
  readonly weight: number;
  readonly weightTotal: number;
}

export interface RouteOptions {
  readonly rewriteTarget?: string;
  readonly useRegex: boolean;
  readonly sslRedirect: boolean;
  readonly forceSslRedirect: boolean;
  readonly backendProtocol: 'HTTP' | 'HTTPS';
  /** bytes; 0 = unlimited */
  readonly bodyLimit: number;
  readonly connectTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly affinity?: AffinityOptions;
  readonly canary?: CanaryOptions;
  /** source CIDRs allowed (undefined: everyone) */
  readonly allowSources?: BlockList;
  readonly allowSourcesText?: string;
  readonly appRoot?: string;
  readonly cors?: CorsOptions;
  readonly responseHeaders: readonly (readonly [string, string])[];
  /** Service name (same namespace) used when the route's Service has no endpoints */
  readonly defaultBackend?: string;
  readonly permanentRedirect?: string;
  readonly permanentRedirectCode: number;
}

export const DEFAULT_OPTIONS: RouteOptions = Object.freeze({
  useRegex: false,
  sslRedirect: true,
  forceSslRedirect: false,
  backendProtocol: 'HTTP',
  bodyLimit: 1024 * 1024,
  connectTimeoutMs: 5_000,
  readTimeoutMs: 60_000,
  sendTimeoutMs: 60_000,
  responseHeaders: [],
  permanentRedirectCode: 301,
});

const KNOWN = new Set([
  'rewrite-target',
  'use-regex',
  'ssl-redirect',
  'force-ssl-redirect',
  'backend-protocol',
  'proxy-body-size',
  'proxy-connect-timeout',
  'proxy-read-timeout',
  'proxy-send-timeout',
  'affinity',
  'affinity-mode',
  'session-cookie-name',
  'session-cookie-path',
  'session-cookie-max-age',
  'session-cookie-expires',
  'session-cookie-samesite',
  'canary',
  'canary-by-header',
  'canary-by-header-value',
  'canary-by-header-pattern',
  'canary-by-cookie',
  'canary-weight',
  'canary-weight-total',
  'whitelist-source-range',
  'allowlist-source-range',
  'app-root',
  'enable-cors',
  'cors-allow-origin',
  'cors-allow-methods',
  'cors-allow-headers',
  'cors-allow-credentials',
  'cors-max-age',
  'cors-expose-headers',
  'custom-response-headers',
  'default-backend',
  'permanent-redirect',
  'permanent-redirect-code',
]);

/** Thrown (as a plain reason) by the parsers; compile.ts turns it into a rejection of the Ingress. */
export class AnnotationError extends Error {}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/; // RFC 9110 token
const SAFE_VALUE = /^[\x20-\x7e]*$/; // printable ASCII, no CR/LF/control
const PATH_CHARS = /^\/[A-Za-z0-9\-._~/%!$&'()*+,;=:@]*$/;
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function bool(name: string, v: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new AnnotationError(`${name}: expected "true" or "false", got ${JSON.stringify(v)}`);
}

function int(name: string, v: string, min: number, max: number): number {
  if (!/^\d{1,9}$/.test(v)) throw new AnnotationError(`${name}: expected an integer, got ${JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min || n > max) throw new AnnotationError(`${name}: ${n} is outside ${min}..${max}`);
  return n;
}

function seconds(name: string, v: string): number {
  const m = /^(\d{1,6})s?$/.exec(v);
  if (!m) throw new AnnotationError(`${name}: expected seconds (e.g. "60"), got ${JSON.stringify(v)}`);
  const n = Number(m[1]);
  if (n < 1 || n > 86_400) throw new AnnotationError(`${name}: ${n} s is outside 1..86400`);
  return n * 1000;
}

/** nginx size syntax: 0 (unlimited), 1024, 8k, 1m, 1g */
export function parseSize(name: string, v: string): number {
  const m = /^(\d{1,9})([kKmMgG]?)$/.exec(v);
  if (!m) throw new AnnotationError(`${name}: expected a size like 8m, got ${JSON.stringify(v)}`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}

function token(name: string, v: string): string {
  if (!TOKEN.test(v) || v.length > 128)
    throw new AnnotationError(`${name}: not a valid header/cookie name: ${JSON.stringify(v)}`);
  return v;
}

function safe(name: string, v: string, max = 1024): string {
  if (!SAFE_VALUE.test(v) || v.length > max)
    throw new AnnotationError(`${name}: contains control characters or is too long`);
  return v;
}

function regex(name: string, v: string, flags = ''): RegExp {
  safe(name, v, 512);
  try {
    return new RegExp(v, flags);
  } catch (err) {
    throw new AnnotationError(`${name}: invalid regular expression: ${(err as Error).message}`);
  }
}

function cidrs(name: string, v: string): BlockList {
  const list = new BlockList();
  const parts = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (parts.length === 0) throw new AnnotationError(`${name}: empty CIDR list`);
  for (const p of parts) {
    const [addr, len, extra] = p.split('/');
    const fam = isIP(addr ?? '');
    if (extra !== undefined || fam === 0) throw new AnnotationError(`${name}: not a CIDR: ${JSON.stringify(p)}`);
    const max = fam === 4 ? 32 : 128;
    const bits = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
    if (!(bits >= 0 && bits <= max)) throw new AnnotationError(`${name}: bad prefix length in ${JSON.stringify(p)}`);
    list.addSubnet(addr!, bits, fam === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

function redirectUrl(name: string, v: string): string {
  safe(name, v, 2048);
  if (/\s/.test(v)) throw new AnnotationError(`${name}: whitespace in URL`);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new AnnotationError(`${name}: not an absolute URL: ${JSON.stringify(v)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new AnnotationError(`${name}: only http and https URLs`);
  return v;
}

function headerLines(name: string, v: string): [string, string][] {
  const out: [string, string][] = [];
  for (const line of v.split(/\n|\|\|/)) {
    if (line.trim() === '') continue;
    const i = line.indexOf(':');
    if (i <= 0) throw new AnnotationError(`${name}: expected "Header-Name: value" lines`);
    const h = token(name, line.slice(0, i).trim());
    if (/^(content-length|transfer-encoding|connection|set-cookie|location)$/i.test(h))
      throw new AnnotationError(`${name}: header ${h} may not be set`);
    out.push([h, safe(name, line.slice(i + 1).trim())]);
  }
  return out;
}

/**
 * Parses the annotations of one Ingress. Throws AnnotationError with a reason on the first bad value.
 * Returns the options and the list of ignored (unknown) nginx annotations.
 */
export function parseAnnotations(annotations: Readonly<Record<string, string>>): {
  options: RouteOptions;
  canary: boolean;
  ignored: string[];
} {
  const a: Record<string, string> = {};
  const ignored: string[] = [];
  for (const [k, v] of Object.entries(annotations)) {
    if (!k.startsWith(PREFIX)) continue;
    const name = k.slice(PREFIX.length);
    if (name.endsWith('snippet') || name === 'snippets')
      throw new AnnotationError(
        `${name}: snippet annotations are not supported (configuration text from users is refused)`,
      );
    if (!KNOWN.has(name)) {
      ignored.push(name);
      continue;
    }
    a[name] = v.trim();
  }
  const o: { -readonly [K in keyof RouteOptions]: RouteOptions[K] } = { ...DEFAULT_OPTIONS };
  if (a['use-regex'] !== undefined) o.useRegex = bool('use-regex', a['use-regex']);
  if (a['rewrite-target'] !== undefined) {
    const v = a['rewrite-target'];
    if (!/^\/?[A-Za-z0-9\-._~/%$!&'()*+,;=:@]*$/.test(v) || v.length > 1024)
      throw new AnnotationError(`rewrite-target: invalid characters in ${JSON.stringify(v)}`);
    o.rewriteTarget = v;
  }
  if (a['ssl-redirect'] !== undefined) o.sslRedirect = bool('ssl-redirect', a['ssl-redirect']);
  if (a['force-ssl-redirect'] !== undefined) o.forceSslRedirect = bool('force-ssl-redirect', a['force-ssl-redirect']);
  if (a['backend-protocol'] !== undefined) {
    const v = a['backend-protocol'].toUpperCase();
    if (v !== 'HTTP' && v !== 'HTTPS')
      throw new AnnotationError(
        `backend-protocol: ${JSON.stringify(a['backend-protocol'])} is not supported (HTTP, HTTPS)`,
      );
    o.backendProtocol = v;
  }
  if (a['proxy-body-size'] !== undefined) o.bodyLimit = parseSize('proxy-body-size', a['proxy-body-size']);
  if (a['proxy-connect-timeout'] !== undefined)
    o.connectTimeoutMs = seconds('proxy-connect-timeout', a['proxy-connect-timeout']);
  if (a['proxy-read-timeout'] !== undefined) o.readTimeoutMs = seconds('proxy-read-timeout', a['proxy-read-timeout']);
  if (a['proxy-send-timeout'] !== undefined) o.sendTimeoutMs = seconds('proxy-send-timeout', a['proxy-send-timeout']);
  if (a['affinity'] !== undefined) {
    if (a['affinity'] !== 'cookie')
      throw new AnnotationError(`affinity: only "cookie" is supported, got ${JSON.stringify(a['affinity'])}`);
    const ss = a['session-cookie-samesite'];
    if (ss !== undefined && !['None', 'Lax', 'Strict'].includes(ss))
      throw new AnnotationError('session-cookie-samesite: None, Lax or Strict');
    const path = a['session-cookie-path'];
    if (path !== undefined && !PATH_CHARS.test(path)) throw new AnnotationError('session-cookie-path: not a path');
    const maxAge = a['session-cookie-max-age'] ?? a['session-cookie-expires'];
    o.affinity = {
      cookieName: token('session-cookie-name', a['session-cookie-name'] ?? 'INGRESSCOOKIE'),
      ...(path === undefined ? {} : { path }),
      ...(maxAge === undefined ? {} : { maxAge: int('session-cookie-max-age', maxAge, 0, 10 * 365 * 86400) }),
      ...(ss === undefined ? {} : { sameSite: ss as 'None' | 'Lax' | 'Strict' }),
    };
  }
  const isCanary = a['canary'] !== undefined && bool('canary', a['canary']);
  if (isCanary) {
    const total =
      a['canary-weight-total'] === undefined ? 100 : int('canary-weight-total', a['canary-weight-total'], 1, 1_000_000);
    o.canary = {
      ...(a['canary-by-header'] === undefined ? {} : { byHeader: token('canary-by-header', a['canary-by-header']) }),
      ...(a['canary-by-header-value'] === undefined
        ? {}
        : { byHeaderValue: safe('canary-by-header-value', a['canary-by-header-value']) }),
      ...(a['canary-by-header-pattern'] === undefined
        ? {}
        : { byHeaderPattern: regex('canary-by-header-pattern', a['canary-by-header-pattern']) }),
      ...(a['canary-by-cookie'] === undefined ? {} : { byCookie: token('canary-by-cookie', a['canary-by-cookie']) }),
      weight: a['canary-weight'] === undefined ? 0 : int('canary-weight', a['canary-weight'], 0, total),
      weightTotal: total,
    };
  }
  const allow = a['whitelist-source-range'] ?? a['allowlist-source-range'];
  if (allow !== undefined) {
    o.allowSources = cidrs('whitelist-source-range', allow);
    o.allowSourcesText = allow;
  }
  if (a['app-root'] !== undefined) {
    if (!PATH_CHARS.test(a['app-root']))
      throw new AnnotationError(`app-root: not an absolute path: ${JSON.stringify(a['app-root'])}`);
    o.appRoot = a['app-root'];
  }
  if (a['enable-cors'] !== undefined && bool('enable-cors', a['enable-cors'])) {
    const origins = (a['cors-allow-origin'] ?? '*')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    for (const og of origins)
      if (og !== '*' && !/^https?:\/\/(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$/.test(og))
        throw new AnnotationError(`cors-allow-origin: bad origin ${JSON.stringify(og)}`);
    const methods = a['cors-allow-methods'] ?? 'GET, PUT, POST, DELETE, PATCH, OPTIONS';
    if (!/^[A-Za-z, ]+$/.test(methods)) throw new AnnotationError('cors-allow-methods: methods separated by commas');
    const headers =
      a['cors-allow-headers'] ??
      'DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization';
    if (!/^[A-Za-z0-9_, -]+$/.test(headers))
      throw new AnnotationError('cors-allow-headers: header names separated by commas');
    const expose = a['cors-expose-headers'];
    if (expose !== undefined && !/^[A-Za-z0-9_, *-]*$/.test(expose))
      throw new AnnotationError('cors-expose-headers: header names separated by commas');
    o.cors = {
      allowOrigin: origins,
      allowMethods: methods,
      allowHeaders: headers,
      allowCredentials:
        a['cors-allow-credentials'] === undefined ? true : bool('cors-allow-credentials', a['cors-allow-credentials']),
      maxAge: a['cors-max-age'] === undefined ? 1728000 : int('cors-max-age', a['cors-max-age'], 0, 100_000_000),
      ...(expose === undefined ? {} : { exposeHeaders: expose }),
    };
  }
  if (a['custom-response-headers'] !== undefined)
    o.responseHeaders = headerLines('custom-response-headers', a['custom-response-headers']);
  if (a['default-backend'] !== undefined) {
    if (!DNS_LABEL.test(a['default-backend']))
      throw new AnnotationError(`default-backend: not a Service name: ${JSON.stringify(a['default-backend'])}`);
    o.defaultBackend = a['default-backend'];
  }
  if (a['permanent-redirect'] !== undefined)
    o.permanentRedirect = redirectUrl('permanent-redirect', a['permanent-redirect']);
  if (a['permanent-redirect-code'] !== undefined)
    o.permanentRedirectCode = int('permanent-redirect-code', a['permanent-redirect-code'], 300, 308);
  return { options: Object.freeze(o), canary: isCanary, ignored };
}
