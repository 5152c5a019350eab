// headerBlock (ingress/h2-session.ts): a response header list as the addon's HTTP/2 session takes it. Checked
// against what node:http2's respond() does with the same list on a real loopback session: accepted lists carry the
// same fields (names lower-cased, a Date added when there is none), and the lists respond() refuses (a single-value
// header twice, a connection-specific header) are refused here too. A value with CR, LF or NUL is refused here
// although respond() sends it: RFC 9113 8.2.1 makes such a field malformed for the peer.
import t from 'tap';
import { connect, createServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { headerBlock } from '../../../ingress/h2-session.ts';

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
