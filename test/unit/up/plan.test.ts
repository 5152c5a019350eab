import t from 'tap';
import { fileURLToPath } from 'node:url';
import { ManifestsSource } from '../../../src/k8s/manifests-source.ts';
import { silentLogger } from '../../../src/common/log.ts';
import { planLab } from '../../../src/lab/plan.ts';
import { takeSnapshot } from '../../../src/up/snapshot.ts';
import type { Snapshot } from '../../../src/up/snapshot.ts';
import {
  dnsServiceIp,
  isBackend,
  mapNodes,
  nodeAgentBackendArgs,
  planPods,
  podMtu,
  podResolvConf,
  tryCommands,
} from '../../../src/up/plan.ts';
import { localCommands, loopbackFor, rewriteDocs } from '../../../src/up/local-up.ts';
import type { Node, Pod } from '../../../src/model/types.ts';

const FIXTURE = fileURLToPath(new URL('../../fixtures/status-cluster', import.meta.url));
const snap = await takeSnapshot(new ManifestsSource({ dir: FIXTURE, log: silentLogger }));
const lab = planLab('1-0001', 1);

const meta = (name: string, namespace = '') => ({
  name,
  namespace,
  uid: '',
  resourceVersion: '1',
  labels: {},
  annotations: {},
});
const node = (name: string, ip: string, cidr: string): Node => ({
  kind: 'Node',
  meta: meta(name),
  podCIDRs: [cidr],
  addresses: [{ type: 'InternalIP', address: ip }],
  ready: true,
});
const pod = (name: string, over: Partial<Pod> = {}): Pod => ({
  kind: 'Pod',
  meta: meta(name, 'ns'),
  nodeName: 'node-1',
  hostNetwork: false,
  containerPorts: [{ containerPort: 8080, protocol: 'TCP' }],
  phase: 'Running',
  podIPs: ['198.19.1.5'],
  ready: true,
  ...over,
});

t.test('mapNodes: Nodes must follow the lab address plan', async (t) => {
  const two = planLab('1-0001', 2);
  t.same(
    [...mapNodes([node('b', '198.18.0.12', '198.19.2.0/24'), node('a', '198.18.0.11', '198.19.1.0/24')], two)],
    [
      ['a', 1],
      ['b', 2],
    ],
  );
  t.throws(() => mapNodes([node('a', '10.0.0.1', '198.19.1.0/24')], lab), {
    code: 'KDP_UP_MANIFESTS',
    message: /InternalIP 198\.18\.0\.11/,
  });
  t.throws(() => mapNodes([node('a', '198.18.0.11', '10.244.0.0/24')], lab), { code: 'KDP_UP_MANIFESTS' });
  t.throws(
    () => mapNodes([node('a', '198.18.0.11', '198.19.1.0/24'), node('b', '198.18.0.12', '198.19.2.0/24')], lab),
    { code: 'KDP_UP_MANIFESTS', message: /more Nodes/ },
  );
});

t.test('planPods: one sandbox per runnable pod, each skip with its reason', async (t) => {
  const s: Snapshot = {
    ...snap,
    nodes: [node('node-1', '198.18.0.11', '198.19.1.0/24')],
    pods: [
      pod('ok', {
        containerPorts: [
          { containerPort: 9090, protocol: 'TCP' },
          { containerPort: 8080, protocol: 'TCP' },
          { containerPort: 53, protocol: 'UDP', hostPort: 5353 },
        ],
      }),
      pod('dns', {
        podIPs: ['198.19.1.53'],
        meta: { ...meta('dns', 'kube-system'), labels: { 'k8s-app': 'kube-dns' } },
      }),
      pod('host', { hostNetwork: true }),
      pod('done', { phase: 'Succeeded', podIPs: ['198.19.1.6'] }),
      pod('elsewhere', { nodeName: 'node-9', podIPs: ['198.19.1.7'] }),
      pod('noip', { podIPs: [] }),
      pod('outside', { podIPs: ['10.1.1.1'] }),
      pod('dup', { podIPs: ['198.19.1.5'] }),
      pod('v6only', { podIPs: ['fd00::1'] }),
    ],
  };
  const { pods, skipped } = planPods(s, new Map([['node-1', 1]]));
  t.same(
    pods.map((p) => [p.key, p.ip, p.runs, p.tcp, p.udp, p.hostPorts]),
    [
      ['ns/ok', '198.19.1.5', 'echo', [8080, 9090], [53], [{ hostPort: 5353, containerPort: 53, protocol: 'udp' }]],
      ['kube-system/dns', '198.19.1.53', 'dns', [], [], []],
    ],
  );
  t.same(
    pods.map((p) => p.role),
    ['ns.ok', 'kube-system.dns'],
  );
  t.same(
    skipped.map((x) => x.key),
    ['ns/host', 'ns/done', 'ns/elsewhere', 'ns/noip', 'ns/outside', 'ns/dup', 'ns/v6only'],
  );
  t.match(skipped.find((x) => x.key === 'ns/dup')?.reason, /used by another pod/);
});

t.test('resolv.conf and the DNS service', async (t) => {
  t.equal(
    podResolvConf('shop', '10.96.0.10'),
    'nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n',
  );
  t.equal(dnsServiceIp(snap), undefined, 'no kube-dns service in the fixture');
});

t.test('tryCommands: what a user runs, with what it must show', async (t) => {
  const { pods } = planPods(snap, mapNodes(snap.nodes, lab));
  const cmds = tryCommands(snap, pods, lab);
  t.same(
    cmds.map((c) => c.argv.join(' ')),
    [
      'exec underlay -- curl -sS --max-time 5 http://198.18.0.11:30080/',
      'exec shop/db-0 -- dig +short db.shop.svc.cluster.local',
      'exec underlay -- curl -sS --max-time 5 -H Host: shop.example.test http://198.18.0.11/',
    ],
  );
  t.ok(cmds[0]?.expect.test('{"name":"web-a","path":"/"}'));
  t.notOk(cmds[0]?.expect.test('{"name":"web-b"}'), 'a terminating pod is not what ready traffic reaches');
  t.ok(cmds[1]?.expect.test('198.19.1.30\n'));
});

t.test('unprivileged fallback: loopback addresses and rewritten pod IPs', async (t) => {
  t.equal(loopbackFor(0), '127.77.0.1');
  t.equal(loopbackFor(251), '127.77.1.2');
  const docs = [
    {
      kind: 'Pod',
      metadata: { namespace: 'shop', name: 'a' },
      status: { podIP: '198.19.1.10', podIPs: [{ ip: '198.19.1.10' }] },
    },
    {
      kind: 'List',
      items: [{ kind: 'Pod', metadata: { namespace: 'shop', name: 'b' }, status: { podIP: '198.19.1.11' } }],
    },
    { kind: 'Service', metadata: { name: 'x' } },
  ];
  const out = rewriteDocs(
    docs,
    new Map([
      ['shop/a', '127.77.0.1'],
      ['shop/b', '127.77.0.2'],
    ]),
  );
  t.same(out[0], {
    kind: 'Pod',
    metadata: { namespace: 'shop', name: 'a' },
    status: { podIP: '127.77.0.1', podIPs: [{ ip: '127.77.0.1' }], hostIP: '127.0.0.1' },
  });
  t.same((out[1] as { items: unknown[] }).items[0], {
    kind: 'Pod',
    metadata: { namespace: 'shop', name: 'b' },
    status: { podIP: '127.77.0.2', podIPs: [{ ip: '127.77.0.2' }], hostIP: '127.0.0.1' },
  });
  t.equal(out[2], docs[2], 'other kinds untouched');
  const cmds = localCommands(snap, new Map([['shop/web-a', '127.77.0.1']]));
  t.same(
    cmds.map((c) => c.argv.join(' ')),
    [
      'curl -sS --max-time 5 http://127.0.0.1:30080/',
      'dig @127.0.0.1 -p 5353 +short empty.shop.svc.cluster.local',
      'curl -sS --max-time 5 -H Host: shop.example.test http://127.0.0.1:8080/',
    ],
  );
});

t.test('--backend: what kdp up passes to each node agent, and the pods MTU', async (t) => {
  t.same(nodeAgentBackendArgs('host-gw'), [], 'host-gw: the agent argv is what it always was');
  t.same(nodeAgentBackendArgs('vxlan'), ['--backend', 'vxlan', '--mtu', '1450']);
  t.same(nodeAgentBackendArgs('auto'), ['--backend', 'auto', '--mtu', '1450']);
  t.same(nodeAgentBackendArgs('vxlan', 9000), ['--backend', 'vxlan', '--mtu', '8950']);
  t.equal(podMtu('host-gw'), undefined, "host-gw: the kernel's MTU");
  t.equal(podMtu('auto'), 1450, 'the lab links (1500) less the VXLAN over IPv4 header (50)');
  t.ok(isBackend('auto') && isBackend('vxlan') && isBackend('host-gw'));
  t.notOk(isBackend('flannel') || isBackend('') || isBackend('VXLAN'));
});
