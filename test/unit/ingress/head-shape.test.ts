// The fast front's two head checks (ingress/head-scan.ts GOOD_REQUEST_HEAD, GOOD_UPSTREAM_HEAD), each one anchored
// regexp of a good head's shape, against the checks they replaced, written as searches for what is refused: a
// control byte (tab aside), a CR or LF outside a CRLF, obs-fold, a request line other than GET/HEAD of an
// origin-form target over HTTP/1.1, a header name that is not a token; an upstream status line other than
// HTTP/1.x NNN [reason]. Random heads from an alphabet of the bytes that matter, plus the cases by name.
import t from 'tap';
import type { Test } from 'tap';
import { GOOD_REQUEST_HEAD, GOOD_UPSTREAM_HEAD } from '../../../ingress/head-scan.ts';

/* eslint-disable no-control-regex -- control bytes are what these checks are about */
const BAD_BYTES = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n/;
const FOLD = /\n[ \t]/;
/* eslint-enable no-control-regex */
const REQUEST_LINE = /^(GET|HEAD) (\/[\x21-\x7e]*) HTTP\/1\.1$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;

/** `head`: without the CRLF of its last line, as the old checks took it. */
function requestOk(head: string): boolean {
  if (BAD_BYTES.test(head) || FOLD.test(head)) return false;
  const lines = head.split('\r\n');
  if (!REQUEST_LINE.test(lines[0]!)) return false;
  return lines.slice(1).every((l) => {
    const colon = l.indexOf(':');
    return colon > 0 && TOKEN.test(l.slice(0, colon));
  });
}
function upstreamOk(head: string): boolean {
  return !BAD_BYTES.test(head) && STATUS_LINE.test(head.split('\r\n')[0]!);
}

/** a deterministic generator: the same heads on every run */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x / 0x80000000;
  };
}

/**
 * 100,000 heads: a start line (the first one every third time), then up to 11 parts; `check` must agree with
 * `spec` on each (the head given to `check` with the CRLF of its last line).
 */
function agree(
  t: Test,
  seed: number,
  starts: readonly string[],
  parts: readonly string[],
  spec: (head: string) => boolean,
  check: RegExp,
): void {
  const r = rng(seed);
  let good = 0;
  for (let i = 0; i < 100_000; i++) {
    let head = i % 3 === 0 ? starts[0]! : starts[Math.floor(r() * starts.length)]!;
    const n = Math.floor(r() * 12);
    for (let j = 0; j < n; j++) head += parts[Math.floor(r() * parts.length)];
    const want = spec(head);
    if (want) good++;
    if (check.test(`${head}\r\n`) !== want) {
      t.fail(`differs on ${JSON.stringify(head)}: the searches say ${want ? 'good' : 'bad'}`);
      return;
    }
  }
  t.ok(good > 1000, `${good} good heads among the random ones`);
}

// the bytes both random comparisons draw from: tab, CRLF (twice as likely), bare CR and LF, control bytes
const BYTES = ['\t', '\r\n', '\r\n', '\r', '\n', '\x00', '\x7f', '\x0b'];

t.test('the request head check refuses exactly what the searches refused', async (t) => {
  const starts = ['GET / HTTP/1.1', 'HEAD /a?b HTTP/1.1', 'POST / HTTP/1.1', 'GET  / HTTP/1.1', 'GET / HTTP/1.0'];
  const parts = ['Host', ': ', 'a', 'X-Y', ':', ' ', ...BYTES, '\xe9', '@', '/'];
  agree(t, 7, starts, parts, requestOk, GOOD_REQUEST_HEAD);
});

t.test('the upstream head check refuses exactly what the searches refused', async (t) => {
  const starts = ['HTTP/1.1 200 OK', 'HTTP/1.0 204', 'HTTP/1.1 200 ', 'HTTP/1.1 20', 'HTTP/2 200 OK'];
  const parts = ['Server', ': ', 'x', ':', ' ', ...BYTES, '\x1f', '\xff'];
  agree(t, 11, starts, parts, upstreamOk, GOOD_UPSTREAM_HEAD);
});

t.test('the cases by name', async (t) => {
  const req = (h: string) => GOOD_REQUEST_HEAD.test(h);
  t.ok(req('GET /a HTTP/1.1\r\nHost: a\r\nX-Y:\tv w\xe9\r\n'));
  t.notOk(req('GET /a HTTP/1.1\r\nHost: a\nX: b\r\n'), 'bare LF');
  t.notOk(req('GET /a HTTP/1.1\r\nHost: a\rX: b\r\n'), 'bare CR');
  t.notOk(req('GET /a HTTP/1.1\r\nHost: a\r\n b\r\n'), 'obs-fold');
  t.notOk(req('GET /a HTTP/1.1\r\nHo st: a\r\n'), 'a name that is not a token');
  t.notOk(req('GET /a HTTP/1.1\r\n: a\r\n'), 'an empty name');
  t.notOk(req('GET /a HTTP/1.1\r\nX: a\x00b\r\n'), 'NUL');
  t.notOk(req('GET /\xe9 HTTP/1.1\r\nHost: a\r\n'), 'a byte >= 0x80 in the target');
  t.notOk(req('GET http://a/ HTTP/1.1\r\nHost: a\r\n'), 'absolute form');
  const up = (h: string) => GOOD_UPSTREAM_HEAD.test(h);
  t.ok(up('HTTP/1.1 200 OK\r\nA: b\r\n'));
  t.ok(up('HTTP/1.0 200\r\n'));
  t.notOk(up('HTTP/1.1 200 OK\r\nA: b\nSet-Cookie: x\r\n'), 'bare LF: response splitting');
  t.notOk(up('HTTP/1.1 200 OK\r\nA: \x7f\r\n'), 'DEL');
  t.notOk(up('HTTP/1.1 2000 OK\r\n'), 'four digits');
  // every control byte but tab, in a value of either head
  for (let c = 0; c < 0x20; c++) {
    if (c === 9) continue;
    const ch = String.fromCharCode(c);
    t.notOk(req(`GET /a HTTP/1.1\r\nHost: a\r\nX: a${ch}b\r\n`), `request, byte ${c}`);
    t.notOk(up(`HTTP/1.1 200 OK\r\nX: a${ch}b\r\n`), `upstream, byte ${c}`);
  }
});
