// Bounded randomized test of the packet parser and the server path (seeded, reproducible): random bytes
// and mutations of valid queries and responses. The parser may only throw KDP_DNS_MALFORMED; the server
// may only answer (a message that parses) or drop; nothing crashes.
import t from 'tap';
import dnsPacket from 'dns-packet';
import { KubernetesRecords } from '../../../src/dns/plugins/kubernetes/handler.ts';
import { KubernetesPlugin } from '../../../src/dns/plugins/kubernetes/plugin.ts';
import { CachePlugin, DEFAULT_CACHE } from '../../../src/dns/plugins/cache.ts';
import { LoadbalancePlugin } from '../../../src/dns/plugins/loadbalance.ts';
import { DEFAULT_KUBERNETES_CONFIG } from '../../../src/dns/plugins/kubernetes/records.ts';
import { DnsServer } from '../../../src/dns/server.ts';
import { TYPE, decode, encodeQuery, encodeResponse } from '../../../src/dns/wire.ts';
import { isKdpError } from '../../../src/common/errors.ts';
import { silentLogger } from '../../../src/common/log.ts';
import { testCluster } from './fixtures.ts';
import { rng as prng } from '../../helpers/fuzz.ts';

const SEED = Number(process.env.KDP_FUZZ_SEED ?? 20261124);
const ITERATIONS = Number(process.env.KDP_FUZZ_ITERATIONS ?? 30000);

const seeds: Buffer[] = [
  encodeQuery({ id: 1, name: 'svc1.testns.svc.cluster.local', type: TYPE.A }),
  encodeQuery({
    id: 2,
    name: '_http._tcp.hdls1.testns.svc.cluster.local',
    type: TYPE.SRV,
    edns: { udpSize: 4096, do: true },
  }),
  encodeQuery({ id: 3, name: '1.0.0.10.in-addr.arpa', type: TYPE.PTR }),
  encodeResponse({
    id: 4,
    flags: 0,
    rcode: 3,
    question: { name: 'x.cluster.local', type: 1, class: 1 },
    authority: [
      {
        name: 'cluster.local',
        ttl: 5,
        type: 'SOA',
        data: {
          mname: 'ns.dns.cluster.local',
          rname: 'hostmaster.cluster.local',
          serial: 1,
          refresh: 2,
          retry: 3,
          expire: 4,
          minimum: 5,
        },
      },
    ],
    answers: [
      {
        name: 'x.cluster.local',
        ttl: 1,
        type: 'SRV',
        data: { priority: 1, weight: 2, port: 3, target: 'a.cluster.local' },
      },
      { name: 'x.cluster.local', ttl: 1, type: 'TXT', data: ['a', 'bc'] },
    ],
    edns: { udpSize: 1232, do: false },
  }).wire,
  dnsPacket.encode({
    type: 'response',
    id: 5,
    answers: [
      { type: 'MX', name: 'a.b', data: { preference: 1, exchange: 'c.d' } } as never,
      { type: 'AAAA', name: 'a.b', data: 'fd00::1' },
    ],
  }),
];

function mutate(rand: () => number, base: Buffer): Buffer {
  const b = Buffer.from(base);
  const n = 1 + Math.floor(rand() * 4);
  let out = b;
  for (let i = 0; i < n; i++) {
    const op = Math.floor(rand() * 5);
    const at = Math.floor(rand() * out.length);
    if (out.length === 0) break;
    if (op === 0)
      out.writeUInt8(Math.floor(rand() * 256), at); // flip a byte
    else if (op === 1)
      out = out.subarray(0, at); // truncate
    else if (op === 2)
      out = Buffer.concat([
        out,
        Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 8) }, () => Math.floor(rand() * 256))),
      ]); // extend
    else if (op === 3 && out.length > 13)
      out.writeUInt8(0xc0 | Math.floor(rand() * 64), 12 + Math.floor(rand() * (out.length - 12))); // a pointer
    else if (out.length >= 12) out.writeUInt16BE(Math.floor(rand() * 65536), 2 * Math.floor(rand() * 6)); // a header field
  }
  return out;
}

t.test(`parser and server survive ${ITERATIONS} random and mutated packets (seed ${SEED})`, async (t) => {
  const rand = prng(SEED);
  const src = testCluster();
  const rec = new KubernetesRecords({ ...DEFAULT_KUBERNETES_CONFIG, pods: 'insecure' });
  rec.attach(src);
  await src.start();
  await rec.settled();
  const full = new DnsServer({
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
    answers: rec,
    blocks: [
      {
        zones: [''],
        plugins: [new LoadbalancePlugin(), new CachePlugin(DEFAULT_CACHE), new KubernetesPlugin(rec)],
        fastPath: false,
      },
    ],
  });
  // and with the cache's wire path on (hits answered straight from the query bytes)
  const wireCache = new CachePlugin(DEFAULT_CACHE);
  const wire = new DnsServer({
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
    blocks: [
      {
        zones: [''],
        plugins: [new LoadbalancePlugin(), wireCache, new KubernetesPlugin(rec)],
      },
    ],
  });
  let parsed = 0;
  let malformed = 0;
  let answered = 0;
  let dropped = 0;
  const crashes: string[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const pkt =
      i % 4 === 0
        ? Buffer.from(Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256)))
        : mutate(rand, seeds[i % seeds.length] as Buffer);
    try {
      decode(pkt);
      parsed++;
    } catch (err) {
      if (isKdpError(err, 'KDP_DNS_MALFORMED')) malformed++;
      else crashes.push(`decode ${pkt.toString('hex')}: ${String(err)}`);
    }
    try {
      const s = i % 3 === 0 ? wire : full;
      const res = await s.respond(pkt, i % 2 ? 'udp' : 'tcp', '127.0.0.1');
      if (res === undefined) dropped++;
      else {
        answered++;
        decode(res); // whatever we send must parse
        if (i % 2 && res.length > 512 && pkt.length >= 12) {
          // UDP answers respect the client's size (512 without EDNS; the EDNS size is at most 65535)
          let limit = 512;
          try {
            const q = decode(pkt);
            if (q.edns) limit = Math.max(512, q.edns.udpSize);
          } catch {
            /* unparsable query: a FORMERR header only */
          }
          if (res.length > limit) crashes.push(`udp answer of ${res.length} > ${limit} for ${pkt.toString('hex')}`);
        }
      }
    } catch (err) {
      crashes.push(`server ${pkt.toString('hex')}: ${String(err)}`);
    }
    if (crashes.length > 5) break;
  }
  t.same(crashes, [], 'zero crashes');
  t.ok(parsed > 100 && malformed > 100, `both outcomes exercised (parsed ${parsed}, malformed ${malformed})`);
  t.ok(answered > 100, `answered ${answered}, dropped ${dropped}`);
  t.ok(
    wire.cacheFastHits > 10,
    `the cache's wire path was exercised (${wire.cacheFastHits} hits from the query bytes)`,
  );
});
