// `kdp explain`: service DNAT (ClusterIP, NodePort with masquerade), then per endpoint the policy steps; pure and
// through the CLI on a manifests directory.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { ManifestsSource } from '../../../src/k8s/manifests-source.ts';
import { silentLogger } from '../../../src/common/log.ts';
import { takeSnapshot } from '../../../src/up/snapshot.ts';
import { explainConnection, parsePortProto, renderExplanation } from '../../../src/cli/commands/explain.ts';
import { main } from '../../../src/cli/main.ts';
import { isKdpError } from '../../../src/common/errors.ts';
import { ANNOTATION_VTEP_MAC } from '../../../src/node/overlay.ts';

const FIXTURE = fileURLToPath(new URL('../../fixtures/policy-cluster', import.meta.url));
const view = await takeSnapshot(new ManifestsSource({ dir: FIXTURE, log: silentLogger }));

t.test('the manifests convert: policies are part of the snapshot', async (t) => {
  t.equal(view.networkPolicies.length, 1);
  t.equal(view.adminNetworkPolicies.length, 1);
});

t.test('ClusterIP: DNAT to both endpoints; x/b is allowed to x/a by NetworkPolicy, x/c is open', async (t) => {
  const e = explainConnection(view, { src: 'x/b', dst: '10.96.0.20', port: 80, proto: 'TCP' });
  t.match(e.service, { key: 'x/web', via: 'ClusterIP', masqueraded: false });
  t.same(
    e.paths.map((p) => [p.ip, p.port, p.pod, p.verdict]),
    [
      ['198.19.1.10', 8080, 'x/a', 'allow'],
      ['198.19.2.12', 8080, 'x/c', 'allow'],
    ],
  );
  t.match(e.paths[0]!.ingress, [
    { tier: 'NetworkPolicy', policy: 'x/web-from-x', rule: 'ingress[0]', outcome: 'allow' },
  ]);
  t.match(e.paths[1]!.ingress, [{ tier: 'Default', outcome: 'allow' }]);
  t.equal(e.verdict, 'allow');
});

t.test("ClusterIP with topology hints: only the endpoints hinted for the source node's zone", async (t) => {
  const zoned = {
    ...view,
    nodes: view.nodes.map((n) => ({
      ...n,
      meta: { ...n.meta, labels: { ...n.meta.labels, 'topology.kubernetes.io/zone': `zone-${n.meta.name}` } },
    })),
    endpointSlices: view.endpointSlices.map((s) =>
      s.serviceName !== 'web'
        ? s
        : {
            ...s,
            endpoints: s.endpoints.map((e) => ({
              ...e,
              hints: { forZones: [`zone-${e.nodeName}`], forNodes: [] },
            })),
          },
    ),
  };
  const e = explainConnection(zoned, { src: 'x/b', dst: '10.96.0.20', port: 80, proto: 'TCP' });
  t.same(
    e.paths.map((p) => p.ip),
    ['198.19.1.10'],
    "x/b is on node-1: node-1's zone only",
  );
  t.match(renderExplanation(e), 'topology hints (PreferSameZone): only the endpoints hinted for zone zone-node-1');
});

t.test('from namespace y: one endpoint denies, the verdict is partial', async (t) => {
  const e = explainConnection(view, { src: '198.19.2.10', dst: '10.96.0.20', port: 80, proto: 'TCP' });
  t.equal(e.src.pod, 'y/a');
  t.same(
    e.paths.map((p) => p.verdict),
    ['deny', 'allow'],
  );
  t.match(e.paths[0]!.ingress, [{ tier: 'NetworkPolicy', policy: 'x/web-from-x', outcome: 'deny' }]);
  t.equal(e.verdict, 'partial');
  const text = renderExplanation(e);
  t.match(text, 'service x/web port http (ClusterIP): DNAT to 2 endpoints');
  t.match(text, 'endpoint 198.19.1.10:8080 (x/a): deny');
  t.match(text, 'ingress x/a: DENY NetworkPolicy x/web-from-x');
  t.match(text, 'verdict: partial');
});

t.test(
  'NodePort (Cluster policy): masquerade after forward; only endpoints behind the DNAT node see its address',
  async (t) => {
    // x/b (node-1) to node-2's NodePort: node-2 DNATs; x/a on node-1 sees node-2's address, x/c on node-2 sees x/b
    const e = explainConnection(view, { src: 'x/b', dst: '198.18.0.12', port: 30080, proto: 'TCP' });
    t.match(e.service, { via: 'NodePort', masqueraded: true });
    t.same(
      e.paths.map((p) => [p.pod, p.seenSource, p.verdict]),
      [
        ['x/a', '198.18.0.12', 'deny'],
        ['x/c', '198.19.1.11', 'allow'],
      ],
    );
    t.match(e.service!.notes, [/masqueraded/, /NodePort is on node-2/]);
    t.equal(e.verdict, 'partial');
    // the source's own node: DNAT there; x/a on that node sees x/b (allowed), x/c behind it sees node-1's address
    const own = explainConnection(view, { src: 'x/b', dst: '198.18.0.11', port: 30080, proto: 'TCP' });
    t.same(
      own.paths.map((p) => [p.pod, p.seenSource, p.verdict]),
      [
        ['x/a', '198.19.1.11', 'allow'],
        ['x/c', '198.18.0.11', 'allow'],
      ],
    );
  },
);

t.test('NodePort over the VXLAN overlay: the endpoint behind the DNAT node sees its VTEP address', async (t) => {
  // both nodes publish a VTEP (kdp node-agent --backend vxlan): node-2 masquerades to its kdp.1 address, the
  // network address of its pod CIDR (netpol-overlay.test.ts shows it on real packets)
  const overlay = {
    ...view,
    nodes: view.nodes.map((n, i) => ({
      ...n,
      podCIDRs: [`198.19.${i + 1}.0/24`],
      meta: { ...n.meta, annotations: { ...n.meta.annotations, [ANNOTATION_VTEP_MAC]: `0e:00:00:00:00:0${i + 1}` } },
    })),
  };
  const e = explainConnection(overlay, { src: 'x/b', dst: '198.18.0.12', port: 30080, proto: 'TCP' });
  t.same(
    e.paths.map((p) => [p.pod, p.seenSource]),
    [
      ['x/a', '198.19.2.0'],
      ['x/c', '198.19.1.11'],
    ],
  );
  t.match(e.service!.notes, [
    /masqueraded/,
    /NodePort is on node-2/,
    /node-2 -> node-1 over the VXLAN overlay.*198\.19\.2\.0/,
  ]);
});

t.test('no service: a direct path; AdminNetworkPolicy Deny at egress', async (t) => {
  const e = explainConnection(view, { src: 'y/a', dst: '203.0.113.7', port: 443, proto: 'TCP' });
  t.equal(e.service, undefined);
  t.match(e.paths[0]!.egress, [
    { tier: 'AdminNetworkPolicy', policy: 'no-docs-net', rule: 'deny-docs', outcome: 'deny' },
  ]);
  t.same(e.paths[0]!.ingress, [], 'an address outside the cluster has no ingress check');
  t.equal(e.verdict, 'deny');
  const udp = explainConnection(view, { src: 'x/b', dst: 'x/a', port: 8080, proto: 'UDP' });
  t.equal(udp.verdict, 'deny', 'the named port http is TCP');
});

t.test('bad input: clear usage errors', async (t) => {
  t.throws(() => parsePortProto('80/icmp'), /bad PORT\/PROTO/);
  t.throws(() => parsePortProto('0'), /bad PORT\/PROTO/);
  t.same(parsePortProto('53/UDP'), { port: 53, proto: 'UDP' });
  try {
    explainConnection(view, { src: 'x/nope', dst: '10.96.0.20', port: 80, proto: 'TCP' });
    t.fail('an unknown pod must be rejected');
  } catch (err) {
    t.ok(isKdpError(err, 'KDP_USAGE'));
  }
});

t.test('kdp explain through the CLI on a manifests directory', async (t) => {
  let out = '';
  const code = await main(
    ['--log-level', 'silent', 'explain', 'x/b', '10.96.0.20', '80/tcp', '--manifests', FIXTURE],
    (s) => void (out += s),
  );
  t.equal(code, 0, 'allowed on every path: exit 0');
  t.match(out, 'egress  x/b: ALLOW Default');
  t.match(out, 'ingress x/a: ALLOW NetworkPolicy x/web-from-x rule ingress[0]');
  let json = '';
  const denied = await main(
    ['--log-level', 'silent', 'explain', 'y/a', '203.0.113.7', '443', '--manifests', FIXTURE, '--json'],
    (s) => void (json += s),
  );
  t.equal(denied, 1, 'denied: exit 1');
  t.equal(JSON.parse(json).verdict, 'deny');
});
