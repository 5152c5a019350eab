// The fast front's view of an HTTP/1 head (a client's request head, an upstream's response head): the head's shape
// checked, and where each header line's name, colon and end are, in an Int32Array entry. Two producers fill the
// same entry: the native addon, for a read it delivers that starts with a head (native/tcp/kdp_tcp.c scan_head,
// in the read's round; `scannedHead` in ingress/tcp-io.ts), and `scanText` here, for every other head (node's
// reads, a head that came in pieces, pipelined requests, more lines or bytes than the addon scans). The front's
// parsers read the entry only (ingress/fast-front.ts), so the two producers must agree: test/unit/ingress/head-scan
// compares them on random heads.
//
// An entry, from its index e: [e] the offset of the CRLF CRLF that ends the head; [e + 1] the shape bits
// (GOOD_REQUEST, GOOD_RESPONSE); [e + 2] the number of header lines; [e + 3] where the start line's CRLF is;
// [e + 4] the addon's: which of its round's strings is the read's text (-1: none: the read is over 2 KiB, or its
// head is a good response head, which the front parses from the bytes); then per header line [start, colon, CRLF,
// code]: colon is the line's first ':' (-1: none), code the name's index in the names the producer was given (0:
// another name; compared without case) | PLAIN when the line is in the form the proxy forwards as it came (one
// space after the colon, no space or tab at either end of the value). Only an entry whose head has its shape bit
// says where its lines are.

// The request head the fast path takes, from its first byte to the CRLF ending its last header line: GET or HEAD,
// an origin-form target in printable ASCII, HTTP/1.1, then header lines, each a token, a colon and a value of
// printable ASCII, tabs and bytes >= 0x80 (no NUL, no other control byte, no CR or LF outside a line's CRLF; a line
// that starts with a space or tab, obs-fold, starts with no token). Written as the shape of a good head, anchored:
// one pass of character-class loops. A search for a bad byte (three alternatives tried at every position) was
// ~13% of a plain request's instructions under callgrind, and the per-line checks this replaces about as much.
export const GOOD_REQUEST_HEAD =
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  /^(?:GET|HEAD) \/[\x21-\x7e]* HTTP\/1\.1\r\n(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*\r\n)*$/;
// An upstream response head, the same way: the status line, then lines of printable ASCII, tabs and bytes >= 0x80
// (a control byte, or a CR or LF outside a CRLF, would let the pod split the head the client parses: 502, as nginx)
export const GOOD_UPSTREAM_HEAD =
  // eslint-disable-next-line no-control-regex -- control characters in an upstream head are refused
  /^HTTP\/1\.[01] \d{3}(?: [^\x00-\x08\x0a-\x1f\x7f]*)?\r\n(?:[^\x00-\x08\x0a-\x1f\x7f]*\r\n)*$/;

export const SCAN_END = 0;
export const SCAN_FLAGS = 1;
export const SCAN_COUNT = 2;
export const SCAN_FIRST_EOL = 3;
export const SCAN_TEXT = 4;
/** where an entry's first line starts; each line takes SCAN_LINE ints */
export const SCAN_LINES = 5;
export const SCAN_LINE = 4;
export const GOOD_REQUEST = 1;
export const GOOD_RESPONSE = 2;
export const PLAIN = 0x100;
export const NAME_ID = 0xff;

const isOws = (c: number) => c === 32 || c === 9;
/** The line's value after `colon` has one space before it and no space or tab at its other end. */
function plainLine(s: string, colon: number, eol: number): boolean {
  if (s.charCodeAt(colon + 1) !== 32) return false;
  return colon + 2 === eol || (!isOws(s.charCodeAt(colon + 2)) && !isOws(s.charCodeAt(eol - 1)));
}

/** Entries for heads given as strings, with the names (lower case; index 0 unused) a line's code refers to. */
export class HeadScanner {
  readonly names: readonly string[];
  /** by length: [lower case, usual spelling, index] of the names (the usual spelling found without a string) */
  readonly #byLength: (readonly (string | number)[] | undefined)[] = [];
  #out = new Int32Array(SCAN_LINES + SCAN_LINE * 64);

  constructor(names: readonly string[]) {
    if (names[0] !== '' || names.length > NAME_ID) throw new Error('head names: index 0 unused, at most 255');
    this.names = names;
    for (let i = 1; i < names.length; i++) {
      const n = names[i]!;
      const usual =
        n === 'x-request-id'
          ? 'X-Request-ID'
          : n.replace(/(^|-)([a-z])/g, (_, d: string, c: string) => d + c.toUpperCase());
      const list = (this.#byLength[n.length] ??= []) as (string | number)[];
      list.push(n, usual, i);
    }
  }

  /** the index of the name at `s[pos, pos + len)`, compared without case; 0 when it is none of them */
  #nameId(s: string, pos: number, len: number): number {
    const list = this.#byLength[len];
    if (list === undefined) return 0;
    for (let i = 0; i < list.length; i += 3) {
      const lower = list[i] as string;
      if (s.startsWith(lower, pos) || s.startsWith(list[i + 1] as string, pos)) return list[i + 2] as number;
    }
    const lower = s.slice(pos, pos + len).toLowerCase();
    for (let i = 0; i < list.length; i += 3) if (list[i] === lower) return list[i + 2] as number;
    return 0;
  }

  /**
   * The entry (index 0 of the array returned, valid until the next call) of `head`: a head from its first byte to
   * the CRLF of its last header line (so its CRLF CRLF is at head.length - 2).
   */
  scan(head: string): Int32Array {
    let out = this.#out;
    out[SCAN_END] = head.length - 2;
    out[SCAN_COUNT] = 0;
    out[SCAN_TEXT] = -1;
    const good = head.startsWith('HTTP/')
      ? GOOD_UPSTREAM_HEAD.test(head)
        ? GOOD_RESPONSE
        : 0
      : GOOD_REQUEST_HEAD.test(head)
        ? GOOD_REQUEST
        : 0;
    out[SCAN_FLAGS] = good;
    if (good === 0) return out;
    let eol = head.indexOf('\r\n');
    out[SCAN_FIRST_EOL] = eol;
    let n = 0;
    for (let pos = eol + 2; pos < head.length; pos = eol + 2) {
      eol = head.indexOf('\r\n', pos);
      const c = head.indexOf(':', pos);
      const colon = c < 0 || c > eol ? -1 : c;
      let code = 0;
      if (colon >= 0) {
        code = this.#nameId(head, pos, colon - pos);
        if (plainLine(head, colon, eol)) code |= PLAIN;
      }
      const at = SCAN_LINES + n * SCAN_LINE;
      if (at + SCAN_LINE > out.length) {
        const more = new Int32Array(out.length * 2);
        more.set(out);
        this.#out = out = more;
      }
      out[at] = pos;
      out[at + 1] = colon;
      out[at + 2] = eol;
      out[at + 3] = code;
      n++;
    }
    out[SCAN_COUNT] = n;
    return out;
  }
}
