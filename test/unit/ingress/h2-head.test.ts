// H2Head (ingress/fast-front.ts): the HTTP/2 lane's view of a request's header list. A list with no name twice
// is read from the raw list alone (the addon says when); it must answer as the same list's node:http2 header
// object does: the fields the lane acts on, any field by name (the decision's header matches and canaries), the
// object made on demand for a relayed stream, and the fields in the object's order.
import t from 'tap';
import type { IncomingHttpHeaders } from 'node:http2';
import { H2Head } from '../../../ingress/fast-front.ts';

/** node:http2's header object of a raw list (repeated fields joined, cookie with '; ', set-cookie a list) */
function objectOf(raw: string[]): IncomingHttpHeaders {
  const o = Object.create(null) as IncomingHttpHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const [n, v] = [raw[i]!, raw[i + 1]!];
    const have = o[n];
    if (have === undefined) o[n] = n === 'set-cookie' ? [v] : v;
    else if (Array.isArray(have)) have.push(v);
    else o[n] = `${have}${n === 'cookie' ? '; ' : ', '}${v}`;
  }
  return o;
}

const LISTS: string[][] = [
  [':method', 'GET', ':scheme', 'https', ':path', '/a?b', ':authority', 'x.test', 'user-agent', 'ua', 'accept', '*/*'],
  [
    ':method',
    'HEAD',
    ':path',
    '/',
    ':authority',
    'a.test',
    'host',
    'b.test',
    'referer',
    'http://r/',
    'x-canary',
    'always',
  ],
  [':method', 'GET', ':protocol', 'websocket', ':path', '/ws', ':authority', 'x.test', 'cookie', 'use_canary=always'],
  [':method', 'GET', ':path', '/', 'set-cookie', 'odd=1', '__proto__', 'p', 'x-env', 'canary'],
];

t.test('a list with no name twice: read from the raw list as from its header object', async (t) => {
  for (const raw of LISTS) {
    const fromRaw = new H2Head(raw, undefined);
    const fromObject = new H2Head(raw, objectOf(raw));
    const label = raw.join(' ');
    for (const k of ['method', 'path', 'authority', 'protocol', 'host', 'userAgent', 'referer'] as const)
      t.equal(fromRaw[k], fromObject[k], `${label}: ${k}`);
    for (const name of ['user-agent', 'x-canary', 'cookie', 'set-cookie', 'x-env', '__proto__', 'absent', ':path'])
      t.equal(fromRaw.header(name), fromObject.header(name), `${label}: header(${name})`);
    t.same(fromRaw.object(), objectOf(raw), `${label}: the object made on demand`);
    t.same(
      fromRaw.fields,
      fromObject.fields.map((v) => (Array.isArray(v) ? v[0] : v)),
      `${label}: the fields`,
    );
  }
  t.equal(new H2Head(LISTS[1]!, undefined).header('x-canary'), 'always');
  t.equal(new H2Head(LISTS[2]!, undefined).protocol, 'websocket');
});

t.test('a list with a name twice: the header object answers (joined values)', async (t) => {
  const raw = [':method', 'GET', ':path', '/', 'cookie', 'a=1', 'cookie', 'b=2', 'x-a', '1', 'x-a', '2'];
  const h = new H2Head(raw, objectOf(raw));
  t.equal(h.header('cookie'), 'a=1; b=2');
  t.equal(h.header('x-a'), '1, 2');
  t.same(h.fields, [':method', 'GET', ':path', '/', 'cookie', 'a=1; b=2', 'x-a', '1, 2']);
});
