// headerBlock (ingress/h2-session.ts): a response header list as the addon's HTTP/2 session takes it. Checked
// against what node:http2's respond() does with the same list on a real loopback session: accepted lists carry the
// same fields (names lower-cased, a Date added when there is none), and the lists respond() refuses (a single-value
// header twice, a connection-specific header) are refused here too. A value with CR, LF or NUL is refused here
// although respond() sends it: RFC 9113 8.2.1 makes such a field malformed for the peer.
import t from 'tap';
import { connect, createServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { headerBlock } from '../../../ingress/h2-session.ts';
import { h2Lines } from '../../../ingress/tcp-io.ts';

/** name NUL value NUL ... -> [name, value][] */
function pairs(block: string): [string, string][] {
  const parts = block.split('\0');
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) out.push([parts[i]!, parts[i + 1]!]);
  return out;
}

/** `stricter`: refused here, sent by node:http2 */
const CASES: { name: string; list: string[]; stricter?: boolean }[] = [
  { name: 'plain', list: [':status', '200', 'content-type', 'text/plain', 'x-a', '1'] },
  { name: 'upper-case names', list: [':status', '404', 'Content-Type', 'text/html', 'X-Trace', 'abc'] },
  { name: 'set-cookie twice', list: [':status', '200', 'set-cookie', 'a=1', 'set-cookie', 'b=2'] },
  { name: 'a list header twice', list: [':status', '200', 'vary', 'a', 'vary', 'b'] },
  { name: 'with a date', list: [':status', '200', 'date', 'Mon, 07 Dec 2026 08:00:00 GMT'] },
  { name: 'content-type twice', list: [':status', '200', 'content-type', 'a/b', 'Content-Type', 'c/d'] },
  { name: 'content-length twice', list: [':status', '200', 'content-length', '1', 'content-length', '1'] },
  { name: 'location twice', list: [':status', '302', 'location', '/a', 'location', '/b'] },
  { name: 'connection', list: [':status', '200', 'connection', 'close'] },
  { name: 'keep-alive', list: [':status', '200', 'keep-alive', 'timeout=5'] },
  { name: 'transfer-encoding', list: [':status', '200', 'transfer-encoding', 'chunked'] },
  { name: 'upgrade', list: [':status', '200', 'upgrade', 'h2c'] },
  { name: 'a CR in a value', list: [':status', '200', 'x-a', 'a\rb'], stricter: true },
  { name: 'a LF in a value', list: [':status', '200', 'x-a', 'a\nb'], stricter: true },
];

t.test('headerBlock accepts and refuses what node:http2 respond() does, with the same fields', async (t) => {
  const got = new Map<string, { ok: boolean; fields: [string, string][] }>();
  const server = createServer();
  server.on('stream', (stream, headers) => {
    const c = CASES[Number(headers[':path']!.slice(1))]!;
    try {
      stream.respond(c.list as unknown as Record<string, string>, { endStream: true });
    } catch {
      stream.close();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  t.teardown(() => client.close());
  for (let i = 0; i < CASES.length; i++) {
    const r = await new Promise<{ ok: boolean; fields: [string, string][] }>((resolve) => {
      const s = client.request({ ':path': `/${i}` });
      s.on('response', (h, _flags, raw: string[]) => {
        const fields: [string, string][] = [];
        for (let k = 0; k + 1 < raw.length; k += 2) fields.push([raw[k]!, raw[k + 1]!]);
        resolve({ ok: true, fields });
        void h;
      });
      s.on('error', () => resolve({ ok: false, fields: [] }));
      s.on('close', () => resolve({ ok: false, fields: [] }));
      s.resume();
    });
    got.set(CASES[i]!.name, r);
  }
  for (const c of CASES) {
    const node = got.get(c.name)!;
    const block = headerBlock(c.list);
    if (c.stricter) {
      t.ok(node.ok, `${c.name}: node:http2 sends it`);
      t.equal(block, undefined, `${c.name}: refused here`);
      continue;
    }
    t.equal(block !== undefined, node.ok, `${c.name}: ${node.ok ? 'accepted' : 'refused'} as node:http2 does`);
    if (block === undefined || !node.ok) continue;
    const mine = pairs(block).filter(([n]) => n !== 'date');
    const theirs = node.fields.filter(([n]) => n !== 'date');
    t.same(mine, theirs, `${c.name}: the same fields`);
    t.ok(
      pairs(block).some(([n]) => n === 'date'),
      `${c.name}: a Date (node:http2 adds one)`,
    );
  }
});

t.test('a value with NUL is refused; the date kept when there is one; trailers get none', async (t) => {
  t.same(pairs(headerBlock(['grpc-status', '0'], false)!), [['grpc-status', '0']], 'trailers: no Date added');
  t.equal(headerBlock([':status', '200', 'x-a', 'a\0b']), undefined);
  const b = headerBlock([':status', '200', 'Date', 'Mon, 07 Dec 2026 08:00:00 GMT'])!;
  t.same(pairs(b), [
    [':status', '200'],
    ['date', 'Mon, 07 Dec 2026 08:00:00 GMT'],
  ]);
});

/** a header list (`:status` first) as the status and HTTP/1 header lines the fast front gives the addon */
function asLines(list: string[]): [string, string] {
  let lines = '';
  for (let i = 2; i + 1 < list.length; i += 2) lines += `${list[i]}: ${list[i + 1]}\r\n`;
  return [list[1]!, lines];
}

/** the fields of a block, an added Date's value as 'D' (the two conversions may run a second apart) */
const FIXED_DATE = 'Mon, 07 Dec 2026 08:00:00 GMT';
const undated = (block: string) =>
  pairs(block).map(([n, v]) => [n, n === 'date' && v.endsWith(' GMT') && v !== FIXED_DATE ? 'D' : v]);

t.test('the addon converts header lines as headerBlock converts the same list', async (t) => {
  const before = new Date().toUTCString();
  const plain = h2Lines('200', '');
  const after = new Date().toUTCString();
  t.not(plain, undefined, 'the addon loads and has HTTP/2');
  t.ok([before, after].includes(pairs(plain as string)[1]![1]), `the Date added is the time now, as node writes it`);
  for (const c of CASES) {
    if (c.stricter) continue; // a CR or LF cannot be inside a header line
    const [status, lines] = asLines(c.list);
    const mine = h2Lines(status, lines);
    const theirs = headerBlock(c.list);
    if (theirs === undefined) t.equal(mine, -74, `${c.name}: refused (EBADMSG)`);
    else t.same(undated(mine as string), undated(theirs), `${c.name}: the same fields`);
  }
  // seeded random lists: names from a pool (single-value, list, connection-specific headers, any case), values
  // with surrounding blanks
  const POOL = [
    'content-type',
    'Content-Type',
    'x-a',
    'X-B',
    'vary',
    'set-cookie',
    'date',
    'etag',
    'location',
    'Connection',
    'keep-alive',
    'age',
    'cache-control',
    'Last-Modified',
  ];
  let seed = 7;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
  let refused = 0;
  for (let i = 0; i < 2000; i++) {
    const list = [':status', String(200 + rnd(300))];
    for (let k = rnd(6); k > 0; k--)
      list.push(POOL[rnd(POOL.length)]!, `${' '.repeat(rnd(2))}v${rnd(9)}\t`.slice(0, 1 + rnd(4)));
    const [status, lines] = asLines(list);
    const theirs = headerBlock(list.map((v, j) => (j > 1 && j % 2 === 1 ? v.replace(/^[ \t]+|[ \t]+$/g, '') : v)));
    const mine = h2Lines(status, lines);
    if (theirs === undefined) refused++;
    if (
      theirs === undefined
        ? mine !== -74
        : typeof mine !== 'string' || JSON.stringify(undated(mine)) !== JSON.stringify(undated(theirs))
    ) {
      t.fail(`list ${JSON.stringify(list)}: ${JSON.stringify(mine)} against ${JSON.stringify(theirs)}`);
      return;
    }
  }
  t.ok(refused > 100 && refused < 1900, `both accepted and refused lists among 2000 (${refused} refused)`);
  t.equal(h2Lines('200', 'x a: 1\r\n'), -74, 'a name that is not a token is refused (node:http2 throws on it too)');
  t.equal(h2Lines('200', 'x-a: 1\n'), -74, 'a line without CRLF is refused');
  t.equal(h2Lines('20', ''), -22, 'a status of three digits only');
});

t.test('the addon converts long heads too (past its stack room: 64 fields, 4 KiB)', async (t) => {
  for (const [count, size] of [
    [62, 10],
    [63, 10],
    [64, 10],
    [200, 10],
    [3, 1300],
    [1, 4080],
    [1, 4090],
    [1, 5000],
  ] as const) {
    const list = [':status', '200'];
    for (let i = 0; i < count; i++) list.push(`x-f${i}`, 'v'.repeat(size));
    const [status, lines] = asLines(list);
    t.same(
      undated(h2Lines(status, lines) as string),
      undated(headerBlock(list)!),
      `${count} fields of ${size} bytes (${lines.length} bytes of lines)`,
    );
  }
});
