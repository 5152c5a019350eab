// kdp status against a known state (test/fixtures/status-cluster) and a known nft table.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { ManifestsSource } from '../../../src/k8s/manifests-source.ts';
import { silentLogger } from '../../../src/common/log.ts';
import { takeSnapshot } from '../../../src/up/snapshot.ts';
import { buildStatus, renderStatus } from '../../../src/status/status.ts';
import { nftBackends } from '../../../src/proxy/status.ts';
import { main } from '../../../src/cli/main.ts';

const FIXTURE = fileURLToPath(new URL('../../fixtures/status-cluster', import.meta.url));
const snap = await takeSnapshot(new ManifestsSource({ dir: FIXTURE, log: silentLogger }));

const NFT = `table ip kdp {
\tchain service-67NZLRHB-shop/web/tcp/http {
\t\tip daddr 10.96.0.20 tcp dport 80 ip saddr != 198.19.0.0/16 jump mark-for-masquerade
\t\tnumgen random mod 1 vmap { 0 : goto endpoint-AAAAAAAA-shop/web/tcp/http__198.19.1.10/8080 }
\t}
\tchain endpoint-AAAAAAAA-shop/web/tcp/http__198.19.1.10/8080 {
\t\tip saddr 198.19.1.10 jump mark-for-masquerade
\t\tmeta l4proto tcp dnat to 198.19.1.10:8080
\t}
}
`;

t.test('nftBackends counts the distinct endpoint chains each chain jumps to', async (t) => {
  const m = nftBackends(NFT);
  t.equal(m.get('service-67NZLRHB-shop/web/tcp/http'), 1);
  t.equal(m.get('endpoint-AAAAAAAA-shop/web/tcp/http__198.19.1.10/8080'), 0);
  t.equal(nftBackends('').size, 0);
});

// `nft list table ip kdp` of a LoadBalancer service, 2 endpoints, sessionAffinity ClientIP and
// externalTrafficPolicy Local (as the kernel prints it): the vmap names each endpoint chain followed by `,` or ` }`
const NFT_AFFINITY = `table ip kdp {
\tchain service-67NZLRHB-shop/web/tcp/http {
\t\tip saddr @affinity-LC6KQOXZ-shop/web/tcp/http__198.19.1.10/8080 goto endpoint-TNRW6CWD-shop/web/tcp/http__198.19.1.10/8080
\t\tip saddr @affinity-C35I6NTY-shop/web/tcp/http__198.19.1.11/8080 goto endpoint-PKNPYD65-shop/web/tcp/http__198.19.1.11/8080
\t\tnumgen random mod 2 vmap { 0 : goto endpoint-TNRW6CWD-shop/web/tcp/http__198.19.1.10/8080, 1 : goto endpoint-PKNPYD65-shop/web/tcp/http__198.19.1.11/8080 }
\t}
\tchain local-67NZLRHB-shop/web/tcp/http {
\t\tip saddr @affinity-LC6KQOXZ-shop/web/tcp/http__198.19.1.10/8080 goto endpoint-TNRW6CWD-shop/web/tcp/http__198.19.1.10/8080
\t\tnumgen random mod 1 vmap { 0 : goto endpoint-TNRW6CWD-shop/web/tcp/http__198.19.1.10/8080 }
\t}
\tchain external-67NZLRHB-shop/web/tcp/http {
\t\tip saddr @cluster-cidrs goto service-67NZLRHB-shop/web/tcp/http
\t\tfib saddr type local jump mark-for-masquerade
\t\tfib saddr type local goto service-67NZLRHB-shop/web/tcp/http
\t\tgoto local-67NZLRHB-shop/web/tcp/http
\t}
}
`;

t.test(
  'nftBackends counts endpoints, not the vmap separators (affinity service with 2 endpoints: 2, was 3)',
  async (t) => {
    const m = nftBackends(NFT_AFFINITY);
    t.equal(m.get('service-67NZLRHB-shop/web/tcp/http'), 2);
    t.equal(m.get('local-67NZLRHB-shop/web/tcp/http'), 1);
    t.equal(m.get('external-67NZLRHB-shop/web/tcp/http'), 0, 'jumps to other service chains are not endpoints');
  },
);

t.test('the report of a known state', async (t) => {
  const r = buildStatus(snap, { nodeName: 'node-1', nftTable: NFT });
  t.same(
    r.services.map((s) => [
      s.service,
      s.type,
      s.clusterIP,
      s.port,
      s.nodePort ?? null,
      s.endpoints.map((e) => `${e.address} ${e.state}`),
      s.rule.programmedBackends,
    ]),
    [
      ['shop/empty', 'ClusterIP', '10.96.0.21', '80/TCP', null, [], 0],
      [
        'shop/web',
        'NodePort',
        '10.96.0.20',
        'http 80/TCP',
        30080,
        ['198.19.1.10:8080 ready', '198.19.1.11:8080 serving-terminating'],
        1,
      ],
    ],
  );
  t.same(r.services[1]?.dns, ['web.shop.svc.cluster.local', '_http._tcp.web.shop.svc.cluster.local (SRV)']);
  t.same(r.dnsOnly, [
    {
      service: 'shop/db',
      kind: 'headless',
      dns: 'db.shop.svc.cluster.local',
      answers: ['198.19.1.30 (db-0.db.shop.svc.cluster.local)'],
    },
    {
      service: 'shop/search',
      kind: 'ExternalName',
      dns: 'search.shop.svc.cluster.local',
      answers: ['CNAME search.example.test'],
    },
  ]);
  t.same(r.ingress, [
    { host: 'shop.example.test', path: '/', match: 'Prefix', backend: 'shop/web:80', endpoints: 1, tls: false },
  ]);
  t.same(r.ingressRejected, []);
  t.same(r.policies, [
    { pod: 'shop/db-0', node: 'node-1', ips: ['198.19.1.30'], ingress: ['np:shop/db-from-web'], egress: [] },
    { pod: 'shop/web-a', node: 'node-1', ips: ['198.19.1.10'], ingress: [], egress: ['np:shop/web-egress'] },
    { pod: 'shop/web-b', node: 'node-1', ips: ['198.19.1.11'], ingress: [], egress: ['np:shop/web-egress'] },
  ]);
});

t.test('the table a person reads', async (t) => {
  const text = renderStatus(buildStatus(snap, { nodeName: 'node-1', nftTable: NFT }));
  t.equal(
    text,
    `SERVICES (service -> port -> endpoints -> proxy rule)
SERVICE     TYPE       CLUSTER-IP  PORT                    ENDPOINTS                             DNS                           RULE
shop/empty  ClusterIP  10.96.0.21  80/TCP                  (none: REJECT)                        empty.shop.svc.cluster.local  service-DOZ4N47Y-shop/empty/tcp/p80 [0 backends in kernel]
shop/web    NodePort   10.96.0.20  http 80/TCP node:30080  198.19.1.10:8080 ready                web.shop.svc.cluster.local    service-67NZLRHB-shop/web/tcp/http [1 backends in kernel]
                                                           198.19.1.11:8080 serving-terminating

DNS ONLY (not proxied)
SERVICE      KIND          NAME                           ANSWERS
shop/db      headless      db.shop.svc.cluster.local      198.19.1.30 (db-0.db.shop.svc.cluster.local)
shop/search  ExternalName  search.shop.svc.cluster.local  CNAME search.example.test

INGRESS ROUTES
HOST               PATH  MATCH   BACKEND      ENDPOINTS  TLS
shop.example.test  /     Prefix  shop/web:80  1          no

NETWORK POLICY (pod -> policies selecting it, in evaluation order)
POD         NODE    IPS          INGRESS              EGRESS
shop/db-0   node-1  198.19.1.30  np:shop/db-from-web  (open)
shop/web-a  node-1  198.19.1.10  (open)               np:shop/web-egress
shop/web-b  node-1  198.19.1.11  (open)               np:shop/web-egress
`,
  );
});

t.test('kdp status --json through the CLI', async (t) => {
  let out = '';
  t.equal(await main(['--log-level', 'silent', 'status', '--manifests', FIXTURE, '--json'], (s) => void (out += s)), 0);
  const r = JSON.parse(out);
  t.equal(r.services.length, 2);
  t.equal(r.services[1].rule.chain, 'service-67NZLRHB-shop/web/tcp/http');
  t.equal(r.services[1].rule.programmedBackends, undefined, 'no lab: nothing read from the kernel');
});
