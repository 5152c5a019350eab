// The forward plugin merges identical questions in flight into one upstream exchange (as dnsmasq does), so an
// expired cache entry under load costs one upstream query, not one per query that arrives before the answer.
// A real UDP upstream on loopback that answers after a delay counts what it is asked.
import t from 'tap';
import { createSocket } from 'node:dgram';
import { silentLogger } from '../../../src/common/log.ts';
import type { DnsRequest } from '../../../src/dns/chain.ts';
import { DEFAULT_FORWARD, ForwardPlugin } from '../../../src/dns/plugins/forward.ts';
import { FLAG, TYPE, decode, encodeResponse } from '../../../src/dns/wire.ts';

t.test('identical questions in flight share one upstream exchange; each client gets its own id', async (t) => {
  const asked: string[] = [];
  const up = createSocket('udp4');
  await new Promise<void>((r) => up.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => up.close());
  up.on('message', (msg, rinfo) => {
    const m = decode(msg);
    const q = m.questions[0]!;
    asked.push(`${q.name}/${q.type === TYPE.A ? 'A' : 'AAAA'}`);
    const res = encodeResponse(
      {
        id: m.id,
        flags: FLAG.RA | (m.flags & FLAG.RD),
        rcode: 0,
        question: q,
        answers: q.type === TYPE.A ? [{ name: q.name, ttl: 60, type: 'A', data: '192.0.2.9' }] : [],
        authority: [],
      },
      512,
    );
    setTimeout(() => up.send(res.wire, rinfo.port, rinfo.address), 40);
  });
  const fwd = new ForwardPlugin(
    { ...DEFAULT_FORWARD, from: '', upstreams: [{ host: '127.0.0.1', port: up.address().port }] },
    { log: silentLogger },
  );
  t.teardown(() => fwd.close());
  const req = (id: number, name: string, type: number = TYPE.A, qtype = 'A'): DnsRequest => ({
    id,
    flags: FLAG.RD,
    question: { name, type, class: 1 },
    lname: name.toLowerCase(),
    qtype,
    proto: 'udp',
    client: '127.0.0.1',
  });
  const none = async () => {
    throw new Error('next() must not be called');
  };
  const replies = await Promise.all([
    ...Array.from({ length: 20 }, (_, i) => fwd.serve(req(1000 + i, 'host1.outside.example'), none)),
    fwd.serve(req(2000, 'HOST1.outside.example'), none), // another spelling: its own exchange
    fwd.serve(req(3000, 'host1.outside.example', TYPE.AAAA, 'AAAA'), none), // another type: its own exchange
  ]);
  t.same(
    asked.sort(),
    ['HOST1.outside.example/A', 'host1.outside.example/A', 'host1.outside.example/AAAA'],
    'the upstream was asked once per distinct question',
  );
  t.equal(fwd.merged, 19, '19 of the 20 identical questions waited for the first one');
  for (let i = 0; i < 20; i++) {
    const m = decode(replies[i]!.raw!);
    t.equal(m.id, 1000 + i, `reply ${i} carries its own query's id`);
    t.equal(m.answers[0]?.data, '192.0.2.9');
  }
  t.equal(decode(replies[20]!.raw!).questions[0]?.name, 'HOST1.outside.example', 'the other spelling kept');
  t.equal(decode(replies[21]!.raw!).answers.length, 0, 'AAAA: NODATA from the upstream');

  // once answered, the next question goes upstream again (merging is for exchanges in flight, not a cache)
  await fwd.serve(req(4000, 'host1.outside.example'), none);
  t.equal(asked.filter((a) => a === 'host1.outside.example/A').length, 2, 'asked again after the first answer');
});
