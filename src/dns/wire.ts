// The DNS wire format (RFC 1035, 3596, 2782, 6891): a strict, bounded parser and an encoder with name
// compression. Own code rather than a library: the parser must never throw anything but a FORMERR-class
// KdpError on hostile input (see test/unit/dns/fuzz.test.ts), and the encoder compresses owner names
// against the question, which keeps the query's spelling (0x20) and lets answers be reused (server.ts).
import { isIP } from 'node:net';
import { KdpError } from '../common/errors.ts';

export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  HINFO: 13,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;
type TypeName = keyof typeof TYPE;
const TYPE_NAMES = new Map<number, TypeName>(Object.entries(TYPE).map(([k, v]) => [v, k as TypeName]));
export function typeName(t: number): string {
  return TYPE_NAMES.get(t) ?? `TYPE${t}`;
}
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
const RCODE_NAMES = new Map<number, string>(Object.entries(RCODE).map(([k, v]) => [v, k]));
export function rcodeName(r: number): string {
  return RCODE_NAMES.get(r) ?? `RCODE${r}`;
}

export const CLASS_IN = 1;
/** header flag bits */
export const FLAG = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, AD: 0x0020, CD: 0x0010 } as const;
export const MAX_UDP_NO_EDNS = 512;
/** what we advertise and accept in EDNS0 (the DNS Flag Day 2020 value) */
export const OUR_UDP_SIZE = 1232;

interface SrvData {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}
interface SoaData {
  readonly mname: string;
  readonly rname: string;
  readonly serial: number;
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  readonly minimum: number;
}

/** A resource record; names are dotted, without the trailing dot, '' is the root. */
export type RR =
  | { readonly name: string; readonly ttl: number; readonly type: 'A' | 'AAAA'; readonly data: string }
  | { readonly name: string; readonly ttl: number; readonly type: 'CNAME' | 'PTR' | 'NS'; readonly data: string }
  | { readonly name: string; readonly ttl: number; readonly type: 'SRV'; readonly data: SrvData }
  | { readonly name: string; readonly ttl: number; readonly type: 'TXT'; readonly data: readonly string[] }
  | { readonly name: string; readonly ttl: number; readonly type: 'SOA'; readonly data: SoaData }
  | { readonly name: string; readonly ttl: number; readonly type: 'RAW'; readonly code: number; readonly data: Buffer };

export interface Question {
  /** as spelled on the wire */
  readonly name: string;
  readonly type: number;
  readonly class: number;
}

export interface Edns {
  readonly udpSize: number;
  readonly version: number;
  readonly do: boolean;
  readonly extRcode: number;
}

interface Message {
  readonly id: number;
  readonly flags: number;
  readonly opcode: number;
  readonly rcode: number;
  readonly questions: readonly Question[];
  readonly answers: readonly RR[];
  readonly authority: readonly RR[];
  readonly additional: readonly RR[];
  readonly edns?: Edns;
  /** byte offset just after the question section */
  readonly questionEnd: number;
  /** offsets of the TTL fields of all records but OPT (the cache ages them in place) */
  readonly ttlOffsets: readonly number[];
  /** where the OPT record starts and ends (byte offsets), when there is one */
  readonly optSpan?: readonly [number, number];
}

function malformed(why: string): KdpError {
  return new KdpError('KDP_DNS_MALFORMED', `malformed DNS message: ${why}`);
}

// ------------------------------------------------------------------ names
function escapeLabel(buf: Buffer, start: number, len: number): string {
  let s = '';
  for (let i = start; i < start + len; i++) {
    const c = buf.readUInt8(i);
    if (c === 0x2e || c === 0x5c) s += '\\' + String.fromCharCode(c);
    else if (c <= 0x20 || c >= 0x7f) s += '\\' + String(c).padStart(3, '0');
    else s += String.fromCharCode(c);
  }
  return s;
}

/** Reads a possibly compressed name. Pointers must point backwards (so no loops); length <= 255. */
export function readName(buf: Buffer, offset: number): { name: string; end: number } {
  let pos = offset;
  let end = -1;
  let wireLen = 1;
  const labels: string[] = [];
  let limit = offset;
  for (;;) {
    if (pos >= buf.length) throw malformed('name runs past the end');
    const len = buf.readUInt8(pos);
    if (len === 0) {
      if (end < 0) end = pos + 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) throw malformed('truncated compression pointer');
      const target = ((len & 0x3f) << 8) | buf.readUInt8(pos + 1);
      if (end < 0) end = pos + 2;
      if (target >= limit) throw malformed('compression pointer does not point backwards');
      limit = target;
      pos = target;
      continue;
    }
    if (kind !== 0) throw malformed('unknown label type');
    if (pos + 1 + len > buf.length) throw malformed('label runs past the end');
    wireLen += len + 1;
    if (wireLen > 255) throw malformed('name longer than 255 octets');
    labels.push(escapeLabel(buf, pos + 1, len));
    pos += 1 + len;
  }
  return { name: labels.join('.'), end };
}

/** Splits a dotted name into label byte strings, honouring \. and \DDD escapes. */
function nameLabels(name: string): Buffer[] {
  if (name === '' || name === '.') return [];
  const out: Buffer[] = [];
  let cur: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const ch = name.charCodeAt(i);
    if (ch === 0x5c && i + 1 < name.length) {
      const d = /^\d{3}/.exec(name.slice(i + 1, i + 4));
      if (d) {
        cur.push(Number(d[0]) & 0xff);
        i += 3;
      } else {
        cur.push(name.charCodeAt(++i) & 0xff);
      }
    } else if (ch === 0x2e) {
      if (i !== name.length - 1) {
        out.push(Buffer.from(cur));
        cur = [];
      }
    } else {
      cur.push(ch & 0xff);
    }
  }
  if (cur.length > 0 || name.endsWith('\\.')) out.push(Buffer.from(cur));
  return out;
}

// ------------------------------------------------------------------ parser
function need(buf: Buffer, pos: number, n: number, what: string): void {
  if (pos + n > buf.length) throw malformed(`${what} runs past the end`);
}

function readRR(buf: Buffer, pos: number, ttlOffsets: number[]): { rr: RR | undefined; opt?: Edns; end: number } {
  const { name, end: nameEnd } = readName(buf, pos);
  need(buf, nameEnd, 10, 'record header');
  const type = buf.readUInt16BE(nameEnd);
  const cls = buf.readUInt16BE(nameEnd + 2);
  const ttl = buf.readUInt32BE(nameEnd + 4);
  const rdlen = buf.readUInt16BE(nameEnd + 8);
  const rd = nameEnd + 10;
  need(buf, rd, rdlen, 'rdata');
  const end = rd + rdlen;
  if (type === TYPE.OPT) {
    if (name !== '') throw malformed('OPT owner is not the root');
    return {
      rr: undefined,
      opt: { udpSize: cls, extRcode: ttl >>> 24, version: (ttl >>> 16) & 0xff, do: (ttl & 0x8000) !== 0 },
      end,
    };
  }
  ttlOffsets.push(nameEnd + 4);
  const inName = (p: number): string => {
    const r = readName(buf, p);
    if (r.end > end) throw malformed('name in rdata runs past the rdata');
    return r.name;
  };
  let rr: RR;
  switch (type) {
    case TYPE.A:
      if (rdlen !== 4) throw malformed('A rdata is not 4 octets');
      rr = {
        name,
        ttl,
        type: 'A',
        data: `${buf.readUInt8(rd)}.${buf.readUInt8(rd + 1)}.${buf.readUInt8(rd + 2)}.${buf.readUInt8(rd + 3)}`,
      };
      break;
    case TYPE.AAAA: {
      if (rdlen !== 16) throw malformed('AAAA rdata is not 16 octets');
      const parts: string[] = [];
      for (let i = 0; i < 8; i++) parts.push(buf.readUInt16BE(rd + 2 * i).toString(16));
      rr = { name, ttl, type: 'AAAA', data: compressV6(parts) };
      break;
    }
    case TYPE.CNAME:
    case TYPE.PTR:
    case TYPE.NS:
      rr = { name, ttl, type: typeName(type) as 'CNAME' | 'PTR' | 'NS', data: inName(rd) };
      break;
    case TYPE.SRV:
      if (rdlen < 7) throw malformed('SRV rdata too short');
      rr = {
        name,
        ttl,
        type: 'SRV',
        data: {
          priority: buf.readUInt16BE(rd),
          weight: buf.readUInt16BE(rd + 2),
          port: buf.readUInt16BE(rd + 4),
          target: inName(rd + 6),
        },
      };
      break;
    case TYPE.TXT: {
      const strings: string[] = [];
      let p = rd;
      while (p < end) {
        const l = buf.readUInt8(p);
        if (p + 1 + l > end) throw malformed('TXT string runs past the rdata');
        strings.push(buf.toString('latin1', p + 1, p + 1 + l));
        p += 1 + l;
      }
      rr = { name, ttl, type: 'TXT', data: strings };
      break;
    }
    case TYPE.SOA: {
      const m = readName(buf, rd);
      const r = readName(buf, m.end);
      if (r.end + 20 > end) throw malformed('SOA rdata too short');
      const p = r.end;
      rr = {
        name,
        ttl,
        type: 'SOA',
        data: {
          mname: m.name,
          rname: r.name,
          serial: buf.readUInt32BE(p),
          refresh: buf.readUInt32BE(p + 4),
          retry: buf.readUInt32BE(p + 8),
          expire: buf.readUInt32BE(p + 12),
          minimum: buf.readUInt32BE(p + 16),
        },
      };
      break;
    }
    default: {
      // types whose rdata may hold compressed names (RFC 3597 4): kept as RAW, the names written out in
      // full, so the record stays right wherever it is encoded again (a pointer would point elsewhere)
      const layout = NAMED_RDATA.get(type);
      if (!layout) {
        rr = { name, ttl, type: 'RAW', code: type, data: Buffer.from(buf.subarray(rd, end)) };
        break;
      }
      const [fixed, names] = layout;
      if (rdlen < fixed + names) throw malformed(`TYPE${type} rdata too short`);
      const w = new Writer(64);
      w.bytes(buf.subarray(rd, rd + fixed));
      let p = rd + fixed;
      for (let i = 0; i < names; i++) {
        const r = readName(buf, p);
        if (r.end > end) throw malformed('name in rdata runs past the rdata');
        w.name(r.name, false);
        p = r.end;
      }
      if (p !== end) throw malformed(`TYPE${type} rdata has trailing bytes`);
      rr = { name, ttl, type: 'RAW', code: type, data: Buffer.from(w.result()) };
    }
  }
  return { rr, end };
}

/**
 * RFC 1035 types (and those RFC 3597 4 asks receivers to decompress) with names in their rdata, beyond the
 * ones decoded above: type -> [bytes before the names, number of names]. MX, AFSDB, RT, KX: a 16-bit
 * preference, one name; MB, MD, MF, MG, MR: one name; MINFO, RP: two; PX: preference, two names.
 */
const NAMED_RDATA = new Map<number, readonly [number, number]>([
  [3, [0, 1]],
  [4, [0, 1]],
  [7, [0, 1]],
  [8, [0, 1]],
  [9, [0, 1]],
  [14, [0, 2]],
  [15, [2, 1]],
  [17, [0, 2]],
  [18, [2, 1]],
  [21, [2, 1]],
  [26, [2, 2]],
  [36, [2, 1]],
]);

/** Parses a whole message. Throws KdpError KDP_DNS_MALFORMED on anything that does not parse. */
export function decode(buf: Buffer): Message {
  if (buf.length < 12) throw malformed('shorter than a header');
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);
  let pos = 12;
  const questions: Question[] = [];
  for (let i = 0; i < qd; i++) {
    const { name, end } = readName(buf, pos);
    need(buf, end, 4, 'question');
    questions.push({ name, type: buf.readUInt16BE(end), class: buf.readUInt16BE(end + 2) });
    pos = end + 4;
  }
  const questionEnd = pos;
  const ttlOffsets: number[] = [];
  const sections: RR[][] = [[], [], []];
  let edns: Edns | undefined;
  let optSpan: [number, number] | undefined;
  const counts = [an, ns, ar];
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < (counts[s] as number); i++) {
      const r = readRR(buf, pos, ttlOffsets);
      if (r.opt) {
        if (s !== 2 || edns) throw malformed('OPT outside the additional section or repeated');
        edns = r.opt;
        optSpan = [pos, r.end];
      } else if (r.rr) (sections[s] as RR[]).push(r.rr);
      pos = r.end;
    }
  }
  const extRcode = edns ? edns.extRcode : 0;
  return {
    id,
    flags,
    opcode: (flags >>> 11) & 0xf,
    rcode: (extRcode << 4) | (flags & 0xf),
    questions,
    answers: sections[0] as RR[],
    authority: sections[1] as RR[],
    additional: sections[2] as RR[],
    ...(edns ? { edns } : {}),
    questionEnd,
    ttlOffsets,
    ...(optSpan ? { optSpan } : {}),
  };
}

// ------------------------------------------------------------------ addresses
function compressV6(parts: string[]): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (parts[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return parts.join(':');
  return parts.slice(0, bestStart).join(':') + '::' + parts.slice(bestStart + bestLen).join(':');
}

/** 16 bytes of an IPv6 address (any textual form Node accepts). */
export function v6Bytes(ip: string): Buffer {
  let s = ip;
  const v4tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4tail) {
    const b = (v4tail[1] as string).split('.').map(Number);
    s =
      s.slice(0, -(v4tail[1] as string).length) +
      (((b[0] as number) << 8) | (b[1] as number)).toString(16) +
      ':' +
      (((b[2] as number) << 8) | (b[3] as number)).toString(16);
  }
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const h = head === '' ? [] : head.split(':');
  const tl = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - tl.length).fill('0'), ...tl];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) & 0xffff, i * 2));
  return out;
}

/** Canonical (RFC 5952) text of an IPv6 address. */
export function canonicalV6(ip: string): string {
  const b = v6Bytes(ip);
  const parts: string[] = [];
  for (let i = 0; i < 8; i++) parts.push(b.readUInt16BE(i * 2).toString(16));
  return compressV6(parts);
}

// ------------------------------------------------------------------ encoder
interface ResponseParts {
  readonly id: number;
  /** flags to set (QR is always set); opcode and RD are copied by the caller */
  readonly flags: number;
  readonly rcode: number;
  readonly question?: Question;
  readonly answers?: readonly RR[];
  readonly authority?: readonly RR[];
  readonly additional?: readonly RR[];
  /** include an OPT record with this EDNS state */
  readonly edns?: { readonly udpSize: number; readonly do: boolean };
}

/** A growable buffer with name compression (RFC 1035 4.1.4). */
export class Writer {
  buf: Buffer;
  pos = 0;
  readonly #names = new Map<string, number>();
  constructor(size = 512) {
    this.buf = Buffer.allocUnsafe(size);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v & 0xff, this.pos);
    this.pos += 1;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v & 0xffff, this.pos);
    this.pos += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
  }
  bytes(b: Buffer): void {
    this.ensure(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }
  name(name: string, compress = true): void {
    if (name.includes('\\')) return this.#escapedName(name, compress);
    const n = name.endsWith('.') ? name.slice(0, -1) : name;
    const lower = n.toLowerCase();
    let start = 0;
    while (start < n.length) {
      const key = start === 0 ? lower : lower.slice(start);
      const at = compress ? this.#names.get(key) : undefined;
      if (at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (this.pos < 0x3fff && !this.#names.has(key)) this.#names.set(key, this.pos);
      let end = n.indexOf('.', start);
      if (end < 0) end = n.length;
      const len = end - start;
      if (len > 63 || len === 0) throw new KdpError('KDP_DNS_ENCODE', `bad label in ${name}`);
      this.ensure(1 + len);
      const b = this.buf;
      b[this.pos++] = len;
      for (let i = start; i < end; i++) b[this.pos++] = n.charCodeAt(i) & 0xff;
      start = end + 1;
    }
    this.u8(0);
  }
  #escapedName(name: string, compress: boolean): void {
    const labels = nameLabels(name);
    for (let i = 0; i < labels.length; i++) {
      const key = labels
        .slice(i)
        .map((l) => l.toString('latin1').toLowerCase())
        .join('.');
      const at = compress ? this.#names.get(key) : undefined;
      if (at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (this.pos < 0x3fff && !this.#names.has(key)) this.#names.set(key, this.pos);
      const l = labels[i] as Buffer;
      if (l.length > 63) throw new KdpError('KDP_DNS_ENCODE', `label longer than 63 octets in ${name}`);
      this.u8(l.length);
      this.bytes(l);
    }
    this.u8(0);
  }
  rr(rr: RR): void {
    this.name(rr.name);
    this.u16(rr.type === 'RAW' ? rr.code : TYPE[rr.type]);
    this.u16(CLASS_IN);
    this.u32(rr.ttl);
    const lenAt = this.pos;
    this.u16(0);
    const start = this.pos;
    switch (rr.type) {
      case 'A': {
        if (isIP(rr.data) !== 4) throw new KdpError('KDP_DNS_ENCODE', `not an IPv4 address: ${rr.data}`);
        for (const p of rr.data.split('.')) this.u8(Number(p));
        break;
      }
      case 'AAAA':
        if (isIP(rr.data) !== 6) throw new KdpError('KDP_DNS_ENCODE', `not an IPv6 address: ${rr.data}`);
        this.bytes(v6Bytes(rr.data));
        break;
      case 'CNAME':
      case 'PTR':
      case 'NS':
        this.name(rr.data);
        break;
      case 'SRV':
        this.u16(rr.data.priority);
        this.u16(rr.data.weight);
        this.u16(rr.data.port);
        this.name(rr.data.target, false); // RFC 2782: no compression of the target
        break;
      case 'TXT':
        for (const s of rr.data) {
          const b = Buffer.from(s, 'latin1');
          if (b.length > 255) throw new KdpError('KDP_DNS_ENCODE', 'TXT string longer than 255 octets');
          this.u8(b.length);
          this.bytes(b);
        }
        break;
      case 'SOA':
        this.name(rr.data.mname);
        this.name(rr.data.rname);
        this.u32(rr.data.serial);
        this.u32(rr.data.refresh);
        this.u32(rr.data.retry);
        this.u32(rr.data.expire);
        this.u32(rr.data.minimum);
        break;
      case 'RAW':
        this.bytes(rr.data);
        break;
    }
    this.buf.writeUInt16BE(this.pos - start, lenAt);
  }
  result(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/**
 * Encodes a response. When it would exceed maxSize, the answer is cut to the header, the question and the
 * OPT record with TC set (RFC 2181 9: a client retries over TCP and gets everything there).
 */
export function encodeResponse(p: ResponseParts, maxSize = 65535): { wire: Buffer; truncated: boolean } {
  const full = encodeParts(p, false);
  if (full.length <= maxSize) return { wire: full, truncated: false };
  return { wire: encodeParts(p, true), truncated: true };
}

function encodeParts(p: ResponseParts, cut: boolean): Buffer {
  const w = new Writer(cut ? 512 : 1024);
  const answers = cut ? [] : (p.answers ?? []);
  const authority = cut ? [] : (p.authority ?? []);
  const additional = cut ? [] : (p.additional ?? []);
  w.u16(p.id);
  w.u16(FLAG.QR | p.flags | (cut ? FLAG.TC : 0) | (p.rcode & 0xf));
  w.u16(p.question ? 1 : 0);
  w.u16(answers.length);
  w.u16(authority.length);
  w.u16(additional.length + (p.edns ? 1 : 0));
  if (p.question) {
    w.name(p.question.name);
    w.u16(p.question.type);
    w.u16(p.question.class);
  }
  for (const rr of answers) w.rr(rr);
  for (const rr of authority) w.rr(rr);
  for (const rr of additional) w.rr(rr);
  if (p.edns) {
    w.u8(0);
    w.u16(TYPE.OPT);
    w.u16(p.edns.udpSize);
    w.u32(((p.rcode >>> 4) << 24) | (p.edns.do ? 0x8000 : 0));
    w.u16(0);
  }
  return Buffer.from(w.result());
}

/**
 * A whole message with its OPT record replaced by ours for a client (`edns`: the client's DO bit), or
 * removed when the client sent none (RFC 6891 7: no OPT in the answer to a query without one).
 */
export function withClientOpt(msg: Buffer, edns: { readonly do: boolean } | undefined): Buffer {
  const m = decode(msg);
  let out = msg;
  if (m.optSpan) {
    const [a, b] = m.optSpan;
    out = Buffer.concat([msg.subarray(0, a), msg.subarray(b)]);
    out.writeUInt16BE(out.readUInt16BE(10) - 1, 10);
  }
  if (!edns) return out === msg ? Buffer.from(msg) : out;
  const opt = Buffer.alloc(11);
  opt.writeUInt16BE(TYPE.OPT, 1);
  opt.writeUInt16BE(OUR_UDP_SIZE, 3);
  opt.writeUInt32BE((((m.rcode >>> 4) & 0xff) << 24) | (edns.do ? 0x8000 : 0), 5);
  const res = Buffer.concat([out, opt]);
  res.writeUInt16BE(res.readUInt16BE(10) + 1, 10);
  return res;
}

/** A run of same-type address records (A or AAAA) in the answer section, each `size` bytes long. */
export interface AddressRun {
  readonly start: number;
  readonly size: number;
  readonly count: number;
}

/**
 * The longest run of consecutive A (or AAAA) answers whose owner is a compression pointer (so every record
 * of the run has the same length and nothing points into it): what loadbalance may permute in place.
 * undefined when there are fewer than two.
 */
export function addressRun(m: Pick<Message, 'answers' | 'ttlOffsets'>, buf: Buffer): AddressRun | undefined {
  let best: AddressRun | undefined;
  let cur: { start: number; size: number; count: number; type: number; end: number } | undefined;
  for (let i = 0; i < m.answers.length; i++) {
    const ttlAt = m.ttlOffsets[i] as number;
    const rrStart = ttlAt - 6; // a 2-byte owner (pointer), type, class, then the TTL
    const type = buf.readUInt16BE(ttlAt - 4);
    const rdlen = buf.readUInt16BE(ttlAt + 4);
    const size = 2 + 10 + rdlen;
    const ok =
      rrStart >= 12 &&
      ((buf[rrStart] as number) & 0xc0) === 0xc0 &&
      (type === TYPE.A || type === TYPE.AAAA) &&
      buf.readUInt16BE(ttlAt - 2) === CLASS_IN;
    if (ok && cur && cur.type === type && cur.end === rrStart) {
      cur.count++;
      cur.end += size;
    } else {
      cur = ok ? { start: rrStart, size, count: 1, type, end: rrStart + size } : undefined;
    }
    if (cur && cur.count >= 2 && (!best || cur.count > best.count))
      best = { start: cur.start, size: cur.size, count: cur.count };
  }
  return best;
}

/** Shuffles the records of `run` in place (Fisher-Yates over fixed-size chunks). */
export function shuffleRun(
  buf: Buffer,
  run: AddressRun,
  random: (n: number) => number = (n) => Math.floor(Math.random() * n),
): void {
  const tmp = Buffer.allocUnsafe(run.size);
  for (let i = run.count - 1; i > 0; i--) {
    const j = random(i + 1);
    if (j === i) continue;
    const a = run.start + i * run.size;
    const b = run.start + j * run.size;
    buf.copy(tmp, 0, a, a + run.size);
    buf.copy(buf, a, b, b + run.size);
    tmp.copy(buf, b);
  }
}

/** Encodes a query (used by forward health checks, tests and benchmarks). */
export function encodeQuery(q: {
  id: number;
  name: string;
  type: number;
  rd?: boolean;
  edns?: { udpSize: number; do?: boolean };
}): Buffer {
  const w = new Writer(128);
  w.u16(q.id);
  w.u16(q.rd === false ? 0 : FLAG.RD);
  w.u16(1);
  w.u16(0);
  w.u16(0);
  w.u16(q.edns ? 1 : 0);
  w.name(q.name);
  w.u16(q.type);
  w.u16(CLASS_IN);
  if (q.edns) {
    w.u8(0);
    w.u16(TYPE.OPT);
    w.u16(q.edns.udpSize);
    w.u32(q.edns.do ? 0x8000 : 0);
    w.u16(0);
  }
  return Buffer.from(w.result());
}
