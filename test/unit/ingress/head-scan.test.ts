// The two producers of a head's entry (ingress/head-scan.ts): HeadScanner.scan in JavaScript, for the heads the
// addon did not scan, and the addon's scan_head (native/tcp/kdp_tcp.c), for a read that starts with a head. The
// front's parsers read the entry only, so on every head the addon gives an entry for, the two must give the same
// one: the head's end, its shape bits (against the two anchored regexps of head-shape.test.ts), and per line where
// its name, colon and end are, which known name it is (without case) and whether it is forwarded as it came. The
// addon gives none for a head it cannot see all of (cut short, past its byte or line limit) or with a bad byte;
// for the rest of the good heads it must give one (else the fast path would search them all again).
import t from 'tap';
import { HEAD_NAMES } from '../../../ingress/fast-front.ts';
import * as scan from '../../../ingress/head-scan.ts';
import { headScanOf } from '../../../ingress/tcp-io.ts';

const scanner = new scan.HeadScanner(HEAD_NAMES);
const native = (b: Buffer) => headScanOf(HEAD_NAMES, b);

/** an entry as plain data: [end, flags, lines (when the shape holds)] */
function entry(a: Int32Array, e = 0): unknown {
  const flags = a[e + scan.SCAN_FLAGS]!;
  const out: unknown[] = [a[e + scan.SCAN_END], flags];
  if (flags === 0) return out;
  out.push(a[e + scan.SCAN_FIRST_EOL]);
  for (let i = 0; i < a[e + scan.SCAN_COUNT]!; i++) {
    const l = e + scan.SCAN_LINES + i * scan.SCAN_LINE;
    out.push([a[l], a[l + 1], a[l + 2], a[l + 3]]);
  }
  return out;
}

/** the JavaScript producer's entry for the head a read starts with (its end searched as the front does) */
function jsEntry(read: string): unknown {
  const end = read.indexOf('\r\n\r\n');
  return end < 0 ? null : entry(scanner.scan(read.slice(0, end + 2)));
}

function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x / 0x80000000;
  };
}

t.test('the addon loads and scans', async (t) => {
  const e = native(Buffer.from('GET /a HTTP/1.1\r\nHost: a\r\nconnection:  Close \r\n\r\nbody', 'latin1'));
  t.ok(e instanceof Int32Array, 'an entry');
  const host = HEAD_NAMES.indexOf('host');
  const conn = HEAD_NAMES.indexOf('connection');
  t.same(entry(e!), [45, scan.GOOD_REQUEST, 15, [17, 21, 24, host | scan.PLAIN], [26, 36, 45, conn]]);
  t.same(entry(e!), jsEntry('GET /a HTTP/1.1\r\nHost: a\r\nconnection:  Close \r\n\r\nbody'));
});

t.test('the cases by name', async (t) => {
  const cases: [string, 'entry' | 'none'][] = [
    ['GET / HTTP/1.1\r\n\r\n', 'entry'],
    ['HEAD /x?y HTTP/1.1\r\nHOST: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n', 'entry'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello', 'entry'],
    ['HTTP/1.0 204\r\n\r\n', 'entry'],
    ['HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', 'entry'],
    ['HTTP/1.1 200 OK\r\n: empty name\r\n\r\n', 'entry'],
    ['HTTP/1.1 2000 OK\r\nA: b\r\n\r\n', 'entry'],
    ['GET / HTTP/1.1\r\nHo st: a\r\n\r\n', 'entry'],
    ['GET / HTTP/1.0\r\nHost: a\r\n\r\n', 'entry'],
    ['GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n', 'entry'],
    ['GET / HTTP/1.1\r\nX: \xe9\t\r\nY:\r\nZ: \r\n\r\n', 'entry'],
    ['GET / HTTP/1.1\r\nHost: a\r\n', 'none'], // cut short
    ['GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n', 'none'], // a bare LF
    ['GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n', 'none'], // a bare CR
    ['GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n', 'none'],
    ['POST / HTTP/1.1\r\nHost: a\r\n\r\n', 'none'],
    ['hello world, a body\r\n\r\n', 'none'],
  ];
  for (const [read, want] of cases) {
    const e = native(Buffer.from(read, 'latin1'));
    if (want === 'none') {
      t.equal(e, null, `none for ${JSON.stringify(read)}`);
      const js = jsEntry(read) as number[] | null;
      t.ok(js === null || js[1] === 0, `and its shape is bad in JavaScript too`);
      continue;
    }
    t.ok(e instanceof Int32Array, `an entry for ${JSON.stringify(read)}`);
    if (e) t.same(entry(e), jsEntry(read), `the same entry for ${JSON.stringify(read)}`);
  }
  // the shape bits are the regexps'
  const req = native(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'))!;
  t.equal(req[scan.SCAN_FLAGS], scan.GOOD_REQUEST);
  const up = native(Buffer.from('HTTP/1.1 200 OK\r\nHost: a\r\n\r\n'))!;
  t.equal(up[scan.SCAN_FLAGS], scan.GOOD_RESPONSE);
});

t.test('the limits: 64 lines, 8192 bytes', async (t) => {
  const lines = (n: number) => 'GET / HTTP/1.1\r\n' + 'X-A: b\r\n'.repeat(n) + '\r\n';
  t.ok(native(Buffer.from(lines(64))), '64 lines');
  t.equal(native(Buffer.from(lines(65))), null, '65: none');
  t.equal((jsEntry(lines(300)) as unknown[]).length, 3 + 300, 'JavaScript scans any number');
  const long = (n: number) => `GET / HTTP/1.1\r\nX: ${'a'.repeat(n)}\r\n\r\n`;
  t.equal(long(8192 - 23).length, 8192);
  t.ok(native(Buffer.from(long(8192 - 23) + 'body')), 'a head of 8192 bytes, its empty line included');
  t.equal(native(Buffer.from(long(8192 - 22) + 'body')), null, 'one more: none');
});

t.test('the two producers agree on random heads', async (t) => {
  const r = rng(23);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const starts = [
    'GET / HTTP/1.1',
    'HEAD /a?b=c HTTP/1.1',
    'GET /x HTTP/1.0',
    'GET http://a/ HTTP/1.1',
    'HTTP/1.1 200 OK',
    'HTTP/1.0 204',
    'HTTP/1.1 200 ',
    'HTTP/1.1 20',
    'HTTP/1.1 200x',
  ];
  // names in every case, parts of names, bytes that matter
  const names = HEAD_NAMES.slice(1).flatMap((n) => [n, n.toUpperCase(), n[0]!.toUpperCase() + n.slice(1)]);
  const parts = [
    ...names,
    'X-Y',
    'a',
    ':',
    ': ',
    ' ',
    '\t',
    '\xe9',
    '\r\n',
    '\r\n',
    '\r\n',
    '\r',
    '\n',
    '\x00',
    '\x7f',
  ];
  let entries = 0;
  let good = 0;
  for (let i = 0; i < 100_000; i++) {
    let read = pick(starts) + '\r\n';
    const n = Math.floor(r() * 8);
    for (let j = 0; j < n; j++) {
      let line = '';
      const m = 1 + Math.floor(r() * 5);
      for (let k = 0; k < m; k++) line += pick(parts);
      read += `${line}\r\n`;
    }
    read += '\r\n';
    if (r() < 0.3) read += pick(parts) + 'body';
    // a read cut short, now and then
    if (r() < 0.1) read = read.slice(0, Math.floor(r() * read.length));
    const mine = native(Buffer.from(read, 'latin1'));
    const js = jsEntry(read) as [number, number] | null;
    if (js !== null && js[1] !== 0) good++;
    if (mine === null) {
      // none: only for a head the JavaScript producer finds bad or cut short too
      if (js !== null && js[1] !== 0) {
        t.fail(`no entry for the good head ${JSON.stringify(read)}`);
        return;
      }
      continue;
    }
    entries++;
    const head = read.slice(0, read.indexOf('\r\n\r\n') + 2);
    const flags = mine![scan.SCAN_FLAGS]!;
    const want =
      (scan.GOOD_REQUEST_HEAD.test(head) ? scan.GOOD_REQUEST : 0) |
      (scan.GOOD_UPSTREAM_HEAD.test(head) ? scan.GOOD_RESPONSE : 0);
    if (flags !== want) {
      t.fail(`shape ${flags}, the regexps say ${want}: ${JSON.stringify(read)}`);
      return;
    }
    if (JSON.stringify(entry(mine!)) !== JSON.stringify(js)) {
      t.fail(`differs on ${JSON.stringify(read)}: ${JSON.stringify(entry(mine!))} / ${JSON.stringify(js)}`);
      return;
    }
  }
  t.ok(good > 5000, `${good} good heads among the random ones`);
  t.ok(entries >= good, `${entries} entries from the addon`);
});
