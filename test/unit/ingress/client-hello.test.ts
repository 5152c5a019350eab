// readClientHello (ingress/client-hello.ts): the server name and ALPN protocols of the ClientHello at the start of
// the bytes, 'partial' while its first record is not all there, undefined for anything else. Checked on real hellos
// node:tls clients send to a loopback socket that only records them, on every prefix of those, on random mutations
// of them (never a throw, always one of the three shapes), and on hand-built hellos for the malformed cases.
import t from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import { readClientHello } from '../../../ingress/client-hello.ts';

interface Captured {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly want: { serverName: string; alpn: string[] };
}

/**
 * The first TLS record a node:tls client sends with `opts`: a loopback server keeps the connection's bytes until
 * the record's 5-byte header and the length it gives are all there, then drops the connection.
 */
function capture(opts: tls.ConnectionOptions): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      server.close();
      reject(new Error(`no ClientHello within 10s for ${JSON.stringify(opts)}`));
    }, 10_000);
    const server = net.createServer((sock) => {
      let got = Buffer.alloc(0);
      sock.on('error', () => {});
      sock.on('data', (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length < 5 || got.length < 5 + got.readUInt16BE(3)) return;
        sock.destroy();
        server.close();
        clearTimeout(timer);
        resolve(new Uint8Array(got.subarray(0, 5 + got.readUInt16BE(3))));
      });
    });
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      const client = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts });
      client.on('error', () => {});
    });
  });
}

// 200 characters of labels, none over 63
const LONG_NAME = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.longname`;

const CASES: readonly { name: string; opts: tls.ConnectionOptions; want: Captured['want'] }[] = [
  {
    name: 'raw.test, http/1.1',
    opts: { servername: 'raw.test', ALPNProtocols: ['http/1.1'] },
    want: { serverName: 'raw.test', alpn: ['http/1.1'] },
  },
  {
    name: 'Example.COM, h2 and http/1.1',
    opts: { servername: 'Example.COM', ALPNProtocols: ['h2', 'http/1.1'] },
    want: { serverName: 'example.com', alpn: ['h2', 'http/1.1'] },
  },
  {
    name: 'no ALPN',
    opts: { servername: 'noalpn.test' },
    want: { serverName: 'noalpn.test', alpn: [] },
  },
  {
    name: 'TLS 1.2 only',
    opts: { servername: 'old.test', ALPNProtocols: ['http/1.1', 'h2'], maxVersion: 'TLSv1.2' },
    want: { serverName: 'old.test', alpn: ['http/1.1', 'h2'] },
  },
  {
    name: 'a 200-character name',
    opts: { servername: LONG_NAME, ALPNProtocols: ['h2'] },
    want: { serverName: LONG_NAME, alpn: ['h2'] },
  },
  {
    name: "servername '': no SNI",
    opts: { servername: '', ALPNProtocols: ['http/1.1'] },
    want: { serverName: '', alpn: ['http/1.1'] },
  },
];

const hellos: Captured[] = [];
for (const c of CASES) hellos.push({ name: c.name, bytes: await capture(c.opts), want: c.want });

t.test('real ClientHellos from node:tls', async (t) => {
  t.equal(LONG_NAME.length, 200);
  for (const h of hellos) {
    t.equal(h.bytes[0], 0x16, `${h.name}: a handshake record`);
    t.same(readClientHello(h.bytes), h.want, h.name);
  }
  // the ALPN order is the client's, not sorted
  t.strictSame(readClientHello(hellos[1]!.bytes), { serverName: 'example.com', alpn: ['h2', 'http/1.1'] });
  t.strictSame(readClientHello(hellos[3]!.bytes), { serverName: 'old.test', alpn: ['http/1.1', 'h2'] });
  // a Buffer (what a socket gives) as well as a plain Uint8Array
  t.same(readClientHello(Buffer.from(hellos[0]!.bytes)), hellos[0]!.want, 'a Buffer');
  // the same bytes at an offset inside a larger buffer
  const big = new Uint8Array(hellos[0]!.bytes.length + 7);
  big.set(hellos[0]!.bytes, 7);
  t.same(readClientHello(big.subarray(7)), hellos[0]!.want, 'a view at an offset');
});

t.test('every strict prefix is partial; bytes after the record change nothing', async (t) => {
  t.equal(readClientHello(new Uint8Array(0)), 'partial', 'no bytes yet');
  for (const h of hellos) {
    let bad = -1;
    for (let n = 0; n < h.bytes.length; n++) {
      if (readClientHello(h.bytes.subarray(0, n)) !== 'partial') {
        bad = n;
        break;
      }
    }
    t.equal(bad, -1, `${h.name}: every prefix of the ${h.bytes.length} bytes is partial (first failing length)`);
    // a ChangeCipherSpec record and the start of an application data record behind it
    const more = new Uint8Array([...h.bytes, 0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0x17, 0x03, 0x03]);
    t.same(readClientHello(more), h.want, `${h.name}: with the next records' bytes behind it`);
  }
});

t.test('not a ClientHello', async (t) => {
  const h = hellos[0]!.bytes;
  const appData = Uint8Array.from(h);
  appData[0] = 0x17;
  t.equal(readClientHello(appData), undefined, 'an application data record');
  t.equal(readClientHello(appData.subarray(0, 1)), undefined, 'its first byte alone');
  t.equal(readClientHello(appData.subarray(0, 5)), undefined, 'its header alone');
  const get = new TextEncoder().encode('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
  t.equal(readClientHello(get), undefined, 'an HTTP request');
  for (let n = 1; n < 5; n++) t.equal(readClientHello(get.subarray(0, n)), undefined, `its first ${n} bytes`);
  const serverHello = Uint8Array.from(h);
  serverHello[5] = 2;
  t.equal(readClientHello(serverHello), undefined, 'handshake type 2');
  for (const type of [0, 11, 16, 255]) {
    const other = Uint8Array.from(h);
    other[5] = type;
    t.equal(readClientHello(other), undefined, `handshake type ${type}`);
  }
  const sslv2ish = Uint8Array.from(h);
  sslv2ish[1] = 2;
  t.equal(readClientHello(sslv2ish), undefined, 'record version major 2');
  // a record longer than TLS allows, whole or just its header (not partial: it will never be one)
  const huge = new Uint8Array(5 + 16385);
  huge.set([0x16, 0x03, 0x01, 0x40, 0x01, 0x01, 0x00, 0x3f, 0xfd]);
  t.equal(readClientHello(huge), undefined, 'record length 16385');
  t.equal(readClientHello(huge.subarray(0, 5)), undefined, 'record length 16385, header only');
  const max = Uint8Array.from(huge.subarray(0, 5 + 16384));
  max[4] = 0x00;
  t.equal(readClientHello(max.subarray(0, 5)), 'partial', 'record length 16384, header only: may still come');
});

/** a small xorshift32: the same mutations for the same seed */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

t.test('random mutations never throw and give one of the three shapes', async (t) => {
  const seed = Number(process.env.CLIENT_HELLO_SEED ?? 0x5eed1e55);
  const next = xorshift(seed);
  const below = (n: number) => next() % n;
  let failure: string | undefined;
  const counts = { object: 0, partial: 0, undefined: 0 };
  for (let i = 0; i < 20_000 && failure === undefined; i++) {
    const h = hellos[below(hellos.length)]!;
    const b = Uint8Array.from(h.bytes);
    let input: Uint8Array = b;
    const kind = below(6);
    const edits = 1 + below(3);
    for (let e = 0; e < edits; e++) {
      if (kind === 0) {
        // a byte to a random value
        b[below(b.length)] = below(256);
      } else if (kind === 1) {
        // a byte of the handshake length to a random value
        b[6 + below(3)] = below(256);
      } else if (kind === 2) {
        // the handshake length, shorter than the message
        const msgLen = (b[6]! << 16) | (b[7]! << 8) | b[8]!;
        const l = below(msgLen + 1);
        b.set([l >> 16, (l >> 8) & 255, l & 255], 6);
      } else if (kind === 3) {
        // a random 16-bit field (most length fields are 16 bits) to a small or a random value
        const at = 9 + below(b.length - 10);
        const v = below(2) === 0 ? below(64) : below(65536);
        b.set([v >> 8, v & 255], at);
      } else if (kind === 4) {
        // the record length shorter, and the bytes cut there or not
        const l = below(((b[3]! << 8) | b[4]!) + 1);
        b.set([l >> 8, l & 255], 3);
        if (below(2) === 0) input = b.subarray(0, 5 + l);
      } else {
        // a random byte to a random value, and the bytes cut short (of what was there)
        b[below(b.length)] = below(256);
        if (e === 0) input = b.subarray(0, below(b.length));
      }
    }
    let r: ReturnType<typeof readClientHello>;
    try {
      r = readClientHello(input);
    } catch (err) {
      failure = `threw ${String(err)}`;
      r = undefined;
    }
    if (failure === undefined) {
      if (r === 'partial') counts.partial++;
      else if (r === undefined) counts.undefined++;
      else if (
        typeof r === 'object' &&
        r !== null &&
        typeof r.serverName === 'string' &&
        r.serverName === r.serverName.toLowerCase() &&
        Array.isArray(r.alpn) &&
        r.alpn.every((p) => typeof p === 'string' && p.length > 0) &&
        Object.keys(r).sort().join() === 'alpn,serverName'
      )
        counts.object++;
      else failure = `returned ${JSON.stringify(r)}`;
    }
    if (failure !== undefined)
      failure = `seed ${seed}, iteration ${i} (${h.name}, mutation kind ${kind}): ${failure} for ${Buffer.from(input).toString('hex')}`;
  }
  t.equal(failure, undefined, `seed ${seed}: every mutated hello read without a throw, as one of the three shapes`);
  t.equal(counts.object + counts.partial + counts.undefined, 20_000, `seed ${seed}: all 20,000 mutations read`);
  // the mutations reach all three answers, so the shape checks above saw each of them
  t.ok(counts.object > 1000, `seed ${seed}: ${counts.object} still read as a hello`);
  t.ok(counts.undefined > 1000, `seed ${seed}: ${counts.undefined} refused`);
  t.ok(counts.partial > 100, `seed ${seed}: ${counts.partial} partial`);
});

t.test('the 32 random bytes and the session id do not matter', async (t) => {
  const next = xorshift(42);
  for (const h of hellos) {
    const b = Uint8Array.from(h.bytes);
    for (let i = 11; i < 43; i++) b[i] = next() & 255;
    // the session id's bytes (node sends 32 of them in a TLS 1.3 hello, none in a TLS 1.2 one)
    for (let i = 44; i < 44 + b[43]!; i++) b[i] = next() & 255;
    t.same(readClientHello(b), h.want, h.name);
  }
});

// ---- hand-built hellos ----

const u16 = (n: number): number[] => [(n >> 8) & 255, n & 255];
const u24 = (n: number): number[] => [(n >> 16) & 255, (n >> 8) & 255, n & 255];
const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));

/** an extension: type, 2-byte length, body */
const ext = (type: number, body: number[], len = body.length): number[] => [...u16(type), ...u16(len), ...body];

/** server_name with a list of host_name entries (name type 0 unless given) */
function sniExt(names: (string | [number, string])[], listLenDelta = 0): number[] {
  const list = names.flatMap((n) => {
    const [type, name] = typeof n === 'string' ? [0, n] : n;
    return [type, ...u16(name.length), ...ascii(name)];
  });
  return ext(0, [...u16(list.length + listLenDelta), ...list]);
}

/** application_layer_protocol_negotiation with these protocol names */
function alpnExt(protos: string[]): number[] {
  const list = protos.flatMap((p) => [p.length, ...ascii(p)]);
  return ext(16, [...u16(list.length), ...list]);
}

interface Build {
  /** the extensions; null: no extensions block at all */
  exts: number[][] | null;
  /** the extensions block's length field minus its true length */
  extLenDelta?: number;
  /** bytes inside the hello message after the extensions block */
  tail?: number[];
  /** the handshake length field minus the true length */
  msgLenDelta?: number;
}

/** a ClientHello record: header 16 03 01 len, handshake type 1 and length, then the hello */
function build({ exts, extLenDelta = 0, tail = [], msgLenDelta = 0 }: Build): Uint8Array {
  const next = xorshift(7);
  const hello = [
    0x03,
    0x03, // legacy_version
    ...Array.from({ length: 32 }, () => next() & 255), // random
    32,
    ...Array.from({ length: 32 }, () => next() & 255), // legacy_session_id
    ...u16(6),
    0x13,
    0x01,
    0x13,
    0x02,
    0xc0,
    0x2f, // cipher_suites
    1,
    0, // legacy_compression_methods: null
  ];
  if (exts !== null) {
    const all = exts.flat();
    hello.push(...u16(all.length + extLenDelta), ...all);
  }
  hello.push(...tail);
  const msg = [1, ...u24(hello.length + msgLenDelta), ...hello];
  return Uint8Array.from([0x16, 0x03, 0x01, ...u16(msg.length), ...msg]);
}

t.test('hand-built hellos', async (t) => {
  // the builder makes hellos the reader takes, so each refusal below is down to the one thing changed
  t.same(readClientHello(build({ exts: [sniExt(['Hand.Built']), alpnExt(['h2', 'http/1.1'])] })), {
    serverName: 'hand.built',
    alpn: ['h2', 'http/1.1'],
  });
  t.same(readClientHello(build({ exts: [alpnExt(['http/1.1']), ext(0x002b, [2, 3, 4]), sniExt(['a.test'])] })), {
    serverName: 'a.test',
    alpn: ['http/1.1'],
  });
  t.same(readClientHello(build({ exts: [] })), { serverName: '', alpn: [] }, 'an empty extensions block');
  t.same(readClientHello(build({ exts: [sniExt([[1, 'other'], 'b.test'])] })), { serverName: 'b.test', alpn: [] });

  // a duplicated extension
  t.equal(readClientHello(build({ exts: [sniExt(['a.test']), sniExt(['a.test'])] })), undefined, 'server_name twice');
  // the first one without a host_name, so only the duplicate rule refuses it (not the one host_name rule)
  const noHostName = sniExt([[1, 'other']]);
  t.same(readClientHello(build({ exts: [noHostName] })), { serverName: '', alpn: [] }, 'server_name, no host_name');
  t.equal(
    readClientHello(build({ exts: [noHostName, sniExt(['a.test'])] })),
    undefined,
    'server_name twice, one host_name',
  );
  t.equal(readClientHello(build({ exts: [alpnExt(['h2']), alpnExt(['h2'])] })), undefined, 'ALPN twice');
  t.equal(
    readClientHello(build({ exts: [sniExt(['a.test']), ext(0x1234, []), alpnExt(['h2']), ext(0x1234, [])] })),
    undefined,
    'an unknown extension twice',
  );

  // server_name: the list length against the extension length
  t.equal(readClientHello(build({ exts: [sniExt(['a.test'], -1)] })), undefined, 'list one shorter than extension');
  t.equal(readClientHello(build({ exts: [sniExt(['a.test'], 1)] })), undefined, 'list one longer than extension');
  t.equal(readClientHello(build({ exts: [ext(0, [0])] })), undefined, 'a 1-byte server_name extension');
  t.equal(readClientHello(build({ exts: [sniExt([''])] })), undefined, 'an empty host_name');
  t.equal(readClientHello(build({ exts: [sniExt(['a.test', 'b.test'])] })), undefined, 'two host_names');

  // ALPN: an empty protocol name
  t.equal(readClientHello(build({ exts: [alpnExt(['h2', ''])] })), undefined, 'an empty ALPN name last');
  t.equal(readClientHello(build({ exts: [alpnExt(['', 'h2'])] })), undefined, 'an empty ALPN name first');
  const overrun = ext(16, [...u16(3), 3, ...ascii('h2')]);
  t.equal(readClientHello(build({ exts: [overrun] })), undefined, 'an ALPN name running past its list');

  // no extensions block at all: a hello without SNI or ALPN
  t.strictSame(readClientHello(build({ exts: null })), { serverName: '', alpn: [] }, 'no extensions block');

  // the extensions block must end exactly where the hello does
  const exts = [sniExt(['a.test']), alpnExt(['h2'])];
  t.equal(readClientHello(build({ exts, extLenDelta: -1 })), undefined, 'extensions block one short');
  t.equal(readClientHello(build({ exts, extLenDelta: 1 })), undefined, 'extensions block one long');
  t.equal(readClientHello(build({ exts, tail: [0] })), undefined, 'a byte after the extensions block');
  t.equal(readClientHello(build({ exts: null, tail: [0] })), undefined, 'one byte where the block length goes');
  const cut = build({ exts, extLenDelta: -4 });
  t.equal(readClientHello(cut), undefined, 'an extensions block ending inside an extension');

  // a hello longer than its record goes on in the next one: not read here
  t.equal(readClientHello(build({ exts, msgLenDelta: 1 })), undefined, 'handshake length one past the record');
  t.equal(readClientHello(build({ exts, msgLenDelta: 1000 })), undefined, 'handshake length well past the record');
  // a real hello split over two records, the second right behind the first
  const real = hellos[1]!.bytes;
  const msg = real.subarray(5);
  const half = Math.floor(msg.length / 2);
  const rec = (part: Uint8Array) => [0x16, 0x03, 0x01, ...u16(part.length), ...part];
  const split = Uint8Array.from([...rec(msg.subarray(0, half)), ...rec(msg.subarray(half))]);
  t.equal(readClientHello(split), undefined, 'a real hello split over two records');
  t.equal(readClientHello(split.subarray(0, 5 + half)), undefined, 'the first of those records alone');
});
