// The overlay e2e files judge a node's kernel state with kernelProblems (test/helpers/overlay-checks.ts): it
// must flag every stale, duplicate, missing or wrongly routed entry, or those e2e checks could not fail.
import t from 'tap';
import { kernelProblems } from '../../helpers/overlay-checks.ts';
import type { Peer } from '../../helpers/overlay-checks.ts';

const mac2 = '02:00:00:00:00:02';
const mac3 = '02:00:00:00:00:03';
const peers: Peer[] = [
  { cidr: '198.19.2.0/24', ip: '198.18.1.12', mac: mac2 },
  { cidr: '198.19.3.0/24', ip: '198.18.0.13' },
];
const good = {
  routes: ['198.19.2.0/24 via 198.19.2.0 dev kdp.1 onlink', '198.19.3.0/24 via 198.18.0.13 dev eth0'],
  neigh: [`198.19.2.0 ${mac2}`],
  fdb: [`${mac2} 198.18.1.12`],
};

t.same(kernelProblems(good, peers), [], 'the exact state passes');
const cases: [string, Partial<typeof good>, RegExp][] = [
  ['a stale route', { routes: [...good.routes, '198.19.9.0/24 via 198.19.9.0 dev kdp.1 onlink'] }, /stale route/],
  ['a missing route', { routes: [good.routes[1]!] }, /0 routes to 198\.19\.2\.0\/24/],
  ['two routes to one CIDR', { routes: [...good.routes, '198.19.3.0/24 via 198.18.0.99 dev eth0'] }, /two routes/],
  [
    'a vxlan peer routed directly',
    { routes: ['198.19.2.0/24 via 198.18.1.12 dev eth0', good.routes[1]!] },
    /not over kdp\.1/,
  ],
  [
    'a direct peer over vxlan',
    { routes: [good.routes[0]!, '198.19.3.0/24 via 198.19.3.0 dev kdp.1 onlink'] },
    /not direct/,
  ],
  ['a duplicate fdb entry', { fdb: [...good.fdb, ...good.fdb] }, /fdb for 198\.19\.2\.0\/24|duplicate fdb/],
  ['an fdb entry to the wrong underlay IP', { fdb: [`${mac2} 198.18.1.99`] }, /fdb for 198\.19\.2\.0\/24/],
  ['a stale fdb entry', { fdb: [...good.fdb, `${mac3} 198.18.0.13`] }, /stale fdb/],
  ['a missing neighbour', { neigh: [] }, /0 neighbour entries/],
  ['a stale neighbour', { neigh: [...good.neigh, `198.19.3.0 ${mac3}`] }, /stale neighbour/],
];
for (const [what, change, re] of cases) {
  const problems = kernelProblems({ ...good, ...change }, peers);
  t.match(problems.join('\n'), re, `${what} is flagged: ${problems.join('; ')}`);
}
