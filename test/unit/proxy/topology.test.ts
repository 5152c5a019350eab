// Topology-aware routing: kube-proxy's TestCategorizeEndpoints table (pkg/proxy/topology_test.go, the same case
// names and expectations, written again here), then the PreferSameNode (forNodes) rules of topology.go, then the
// model: hints from EndpointSlices reach ServicePortInfo.clusterEndpoints, and the zone comes from the proxy's options.
import t from 'tap';
import type { Test } from 'tap';
import { categorizeEndpoints, topologyMode } from '../../../src/proxy/topology.ts';
import type { TopologyEndpoint, TopologyPolicy } from '../../../src/proxy/topology.ts';
import { buildServicePorts } from '../../../src/proxy/model.ts';
import type { EndpointSlice } from '../../../src/model/types.ts';
import { makeService, makeSlice } from './fixtures.ts';

interface EpOpts {
  zones?: string[];
  nodes?: string[];
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  local?: boolean;
}

/** "ip:port" plus flags; serving defaults to ready (as the API's nil serving does) */
function ep(addr: string, o: EpOpts = {}): TopologyEndpoint {
  const [ip, port] = addr.split(':') as [string, string];
  const ready = o.ready ?? false;
  return {
    ip,
    port: Number(port),
    ready,
    serving: o.serving ?? ready,
    terminating: o.terminating ?? false,
    local: o.local ?? false,
    ...(o.zones ? { zoneHints: o.zones } : {}),
    ...(o.nodes ? { nodeHints: o.nodes } : {}),
  };
}

interface Case {
  name: string;
  /** this node's zone label ('' : none) */
  zone?: string;
  node?: string;
  policy?: Partial<TopologyPolicy> & { nodePort?: boolean };
  eps: TopologyEndpoint[];
  /** undefined: the port does not use that kind of endpoints; [] : it does but has none */
  cluster: string[] | undefined;
  local: string[] | undefined;
  /** needed only when both sets are in use */
  all?: string[];
  /** hasAny is true although nothing is reachable from this node */
  onlyRemote?: boolean;
}

const R = { ready: true };
const four = (zones: (string[] | undefined)[], extra: EpOpts[] = []) =>
  zones.map((z, i) => ep(`10.1.2.${3 + i}:80`, { ...R, ...(z ? { zones: z } : {}), ...extra[i] }));

const UPSTREAM: Case[] = [
  {
    name: "should use topology since all endpoints have hints, node has a zone label and and there are endpoints for the node's zone",
    zone: 'zone-a',
    eps: four([['zone-a'], ['zone-b'], ['zone-c'], ['zone-a']]),
    cluster: ['10.1.2.3:80', '10.1.2.6:80'],
    local: undefined,
  },
  {
    name: 'externalTrafficPolicy: Local, topology ignored for Local endpoints',
    zone: 'zone-a',
    policy: { externalLocal: true, nodePort: true },
    eps: four([['zone-a'], ['zone-b'], ['zone-c'], ['zone-a']], [{ local: true }, { local: true }]),
    cluster: ['10.1.2.3:80', '10.1.2.6:80'],
    local: ['10.1.2.3:80', '10.1.2.4:80'],
    all: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.6:80'],
  },
  {
    name: 'internalTrafficPolicy: Local, topology ignored for Local endpoints',
    zone: 'zone-a',
    policy: { internalLocal: true, nodePort: true },
    eps: four([['zone-a'], ['zone-b'], ['zone-c'], ['zone-a']], [{ local: true }, { local: true }]),
    cluster: ['10.1.2.3:80', '10.1.2.6:80'],
    local: ['10.1.2.3:80', '10.1.2.4:80'],
    all: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.6:80'],
  },
  {
    name: 'empty node labels',
    zone: '',
    eps: [ep('10.1.2.3:80', { ...R, zones: ['zone-a'] })],
    cluster: ['10.1.2.3:80'],
    local: undefined,
  },
  {
    name: 'empty zone label',
    zone: '',
    eps: [ep('10.1.2.3:80', { ...R, zones: ['zone-a'] })],
    cluster: ['10.1.2.3:80'],
    local: undefined,
  },
  {
    name: 'node in different zone, no endpoint filtering',
    zone: 'zone-b',
    eps: [ep('10.1.2.3:80', { ...R, zones: ['zone-a'] })],
    cluster: ['10.1.2.3:80'],
    local: undefined,
  },
  {
    name: 'unready endpoint',
    zone: 'zone-a',
    eps: four([['zone-a'], ['zone-b'], ['zone-c'], ['zone-a']], [{}, {}, {}, { ready: false }]),
    cluster: ['10.1.2.3:80'],
    local: undefined,
  },
  {
    name: 'only unready endpoints in same zone (should not filter)',
    zone: 'zone-a',
    eps: four([['zone-a'], ['zone-b'], ['zone-c'], ['zone-a']], [{ ready: false }, {}, {}, { ready: false }]),
    cluster: ['10.1.2.4:80', '10.1.2.5:80'],
    local: undefined,
  },
  {
    name: 'missing hints, no filtering applied',
    zone: 'zone-a',
    eps: four([['zone-a'], ['zone-b'], undefined, ['zone-a']]),
    cluster: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.5:80', '10.1.2.6:80'],
    local: undefined,
  },
  {
    name: 'multiple hints per endpoint, filtering includes any endpoint with zone included',
    zone: 'zone-c',
    eps: four([['zone-a', 'zone-b', 'zone-c'], ['zone-b', 'zone-c'], ['zone-b', 'zone-d'], ['zone-c']]),
    cluster: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.6:80'],
    local: undefined,
  },
  {
    name: 'conflicting topology and localness require merging allEndpoints',
    zone: 'zone-a',
    policy: { externalLocal: true, nodePort: true },
    eps: [
      ep('10.0.0.0:80', { ...R, zones: ['zone-a'], local: true }),
      ep('10.0.0.1:80', { ...R, zones: ['zone-b'], local: true }),
      ep('10.0.0.2:80', { ...R, zones: ['zone-a'] }),
      ep('10.0.0.3:80', { ...R, zones: ['zone-b'] }),
    ],
    cluster: ['10.0.0.0:80', '10.0.0.2:80'],
    local: ['10.0.0.0:80', '10.0.0.1:80'],
    all: ['10.0.0.0:80', '10.0.0.1:80', '10.0.0.2:80'],
  },
  {
    name: 'internalTrafficPolicy: Local, with empty endpoints',
    policy: { internalLocal: true },
    eps: [],
    cluster: undefined,
    local: [],
  },
  {
    name: 'internalTrafficPolicy: Local, but all endpoints are remote',
    policy: { internalLocal: true },
    eps: [ep('10.0.0.0:80', R), ep('10.0.0.1:80', R)],
    cluster: undefined,
    local: [],
    onlyRemote: true,
  },
  {
    name: 'internalTrafficPolicy: Local, all endpoints are local',
    policy: { internalLocal: true },
    eps: [ep('10.0.0.0:80', { ...R, local: true }), ep('10.0.0.1:80', { ...R, local: true })],
    cluster: undefined,
    local: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'internalTrafficPolicy: Local, some endpoints are local',
    policy: { internalLocal: true },
    eps: [ep('10.0.0.0:80', { ...R, local: true }), ep('10.0.0.1:80', R)],
    cluster: undefined,
    local: ['10.0.0.0:80'],
  },
  {
    name: 'Cluster traffic policy, endpoints not Ready',
    eps: [ep('10.0.0.0:80'), ep('10.0.0.1:80')],
    cluster: [],
    local: undefined,
  },
  {
    name: 'Cluster traffic policy, some endpoints are Ready',
    eps: [ep('10.0.0.0:80'), ep('10.0.0.1:80', R)],
    cluster: ['10.0.0.1:80'],
    local: undefined,
  },
  {
    name: 'Cluster traffic policy, all endpoints are terminating',
    eps: [
      ep('10.0.0.0:80', { serving: true, terminating: true, local: true }),
      ep('10.0.0.1:80', { serving: true, terminating: true }),
    ],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: undefined,
  },
  {
    name: 'iTP: Local, eTP: Cluster, some endpoints local',
    policy: { internalLocal: true, nodePort: true },
    eps: [ep('10.0.0.0:80', { ...R, local: true }), ep('10.0.0.1:80', R)],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: ['10.0.0.0:80'],
    all: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'iTP: Cluster, eTP: Local, some endpoints local',
    policy: { externalLocal: true, nodePort: true },
    eps: [ep('10.0.0.0:80', { ...R, local: true }), ep('10.0.0.1:80', R)],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: ['10.0.0.0:80'],
    all: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'iTP: Local, eTP: Local, some endpoints local',
    policy: { internalLocal: true, externalLocal: true, nodePort: true },
    eps: [ep('10.0.0.0:80', { ...R, local: true }), ep('10.0.0.1:80', R)],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: ['10.0.0.0:80'],
    all: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'iTP: Local, eTP: Local, all endpoints remote',
    policy: { internalLocal: true, externalLocal: true, nodePort: true },
    eps: [ep('10.0.0.0:80', R), ep('10.0.0.1:80', R)],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: [],
    all: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'iTP: Local, eTP: Local, all endpoints remote and terminating',
    policy: { internalLocal: true, externalLocal: true, nodePort: true },
    eps: [
      ep('10.0.0.0:80', { serving: true, terminating: true }),
      ep('10.0.0.1:80', { serving: true, terminating: true }),
    ],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: [],
    all: ['10.0.0.0:80', '10.0.0.1:80'],
    onlyRemote: true,
  },
  {
    name: 'iTP: Cluster, eTP: Local, with terminating endpoints',
    policy: { externalLocal: true, nodePort: true },
    eps: [
      ep('10.0.0.0:80', R),
      ep('10.0.0.1:80', { serving: false, local: true }),
      ep('10.0.0.2:80', { serving: true, terminating: true, local: true }),
      ep('10.0.0.3:80', { serving: true, terminating: true }),
    ],
    cluster: ['10.0.0.0:80'],
    local: ['10.0.0.2:80'],
    all: ['10.0.0.0:80', '10.0.0.2:80'],
  },
  {
    name: 'externalTrafficPolicy ignored if not externally accessible',
    policy: { externalLocal: true },
    eps: [ep('10.0.0.0:80', R), ep('10.0.0.1:80', { ...R, local: true })],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'],
    local: undefined,
    all: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'no cluster endpoints for iTP:Local internal-only service',
    policy: { internalLocal: true },
    eps: [ep('10.0.0.0:80', R), ep('10.0.0.1:80', { ...R, local: true })],
    cluster: undefined,
    local: ['10.0.0.1:80'],
    all: ['10.0.0.1:80'],
  },
];

// PreferSameNode: the forNodes rules of topology.go (topologyModeFromHints), our own cases
const NODE: Case[] = [
  {
    name: 'node hints on every endpoint, one for this node: only this node',
    zone: 'zone-a',
    eps: [
      ep('10.0.0.1:80', { ...R, nodes: ['node1'], zones: ['zone-a'], local: true }),
      ep('10.0.0.2:80', { ...R, nodes: ['node2'], zones: ['zone-a'] }),
      ep('10.0.0.3:80', { ...R, nodes: ['node3'], zones: ['zone-b'] }),
    ],
    cluster: ['10.0.0.1:80'],
    local: undefined,
  },
  {
    name: 'node hints on every endpoint, none for this node: falls back to the zone hints',
    node: 'node4',
    zone: 'zone-a',
    eps: [
      ep('10.0.0.1:80', { ...R, nodes: ['node1'], zones: ['zone-a'] }),
      ep('10.0.0.2:80', { ...R, nodes: ['node2'], zones: ['zone-a'] }),
      ep('10.0.0.3:80', { ...R, nodes: ['node3'], zones: ['zone-b'] }),
    ],
    cluster: ['10.0.0.1:80', '10.0.0.2:80'],
    local: undefined,
  },
  {
    name: 'one ready endpoint lacks a node hint: zone hints are used',
    zone: 'zone-a',
    eps: [
      ep('10.0.0.1:80', { ...R, nodes: ['node1'], zones: ['zone-a'], local: true }),
      ep('10.0.0.2:80', { ...R, zones: ['zone-a'] }),
      ep('10.0.0.3:80', { ...R, nodes: ['node3'], zones: ['zone-b'] }),
    ],
    cluster: ['10.0.0.1:80', '10.0.0.2:80'],
    local: undefined,
  },
  {
    name: 'node hints without zone hints, none for this node: no filtering',
    node: 'node4',
    zone: 'zone-a',
    eps: [ep('10.0.0.1:80', { ...R, nodes: ['node1'] }), ep('10.0.0.2:80', { ...R, nodes: ['node2'] })],
    cluster: ['10.0.0.1:80', '10.0.0.2:80'],
    local: undefined,
  },
  {
    name: 'the endpoint for this node is not ready: no same-node filtering, zone hints used',
    zone: 'zone-a',
    eps: [
      ep('10.0.0.1:80', { nodes: ['node1'], zones: ['zone-a'], local: true }),
      ep('10.0.0.2:80', { ...R, nodes: ['node2'], zones: ['zone-a'] }),
      ep('10.0.0.3:80', { ...R, nodes: ['node3'], zones: ['zone-b'] }),
    ],
    cluster: ['10.0.0.2:80'],
    local: undefined,
  },
  {
    name: 'a not-ready endpoint without hints does not disable them',
    zone: 'zone-a',
    eps: [
      ep('10.0.0.1:80', { ...R, nodes: ['node1'], zones: ['zone-a'], local: true }),
      ep('10.0.0.2:80', { ...R, nodes: ['node2'], zones: ['zone-b'] }),
      ep('10.0.0.9:80', { serving: true, terminating: true }),
    ],
    cluster: ['10.0.0.1:80'],
    local: undefined,
  },
  {
    name: 'PreferSameNode with internalTrafficPolicy Local and a NodePort: Local ignores the hints',
    zone: 'zone-a',
    policy: { internalLocal: true, nodePort: true },
    eps: [
      ep('10.0.0.1:80', { ...R, nodes: ['node1'], local: true }),
      ep('10.0.0.2:80', { ...R, nodes: ['node2'], local: true }),
      ep('10.0.0.3:80', { ...R, nodes: ['node3'] }),
    ],
    cluster: ['10.0.0.1:80'],
    local: ['10.0.0.1:80', '10.0.0.2:80'],
    all: ['10.0.0.1:80', '10.0.0.2:80'],
  },
];

function run(t: Test, c: Case): void {
  const policy: TopologyPolicy = {
    internalLocal: c.policy?.internalLocal ?? false,
    externalLocal: c.policy?.externalLocal ?? false,
    externallyAccessible: c.policy?.nodePort ?? false,
  };
  const r = categorizeEndpoints(c.eps, policy, c.node ?? 'node1', c.zone ?? '');
  const names = (l: readonly TopologyEndpoint[] | undefined) => l?.map((e) => `${e.ip}:${e.port}`).sort();
  t.same(names(r.cluster), c.cluster, 'cluster endpoints');
  t.same(names(r.local), c.local, 'local endpoints');
  const all =
    c.cluster !== undefined && c.local === undefined
      ? c.cluster
      : c.local !== undefined && c.cluster === undefined
        ? c.local
        : c.all;
  t.same(names(r.allReachable), [...(all ?? [])].sort(), 'all reachable endpoints');
  t.equal(r.hasAny, (all ?? []).length > 0 || (c.onlyRemote ?? false), 'has any endpoints');
}

t.test("kube-proxy's CategorizeEndpoints cases", async (t) => {
  for (const c of UPSTREAM) t.test(c.name, async (t) => run(t, c));
});

t.test('PreferSameNode (forNodes hints)', async (t) => {
  for (const c of NODE) t.test(c.name, async (t) => run(t, c));
});

t.test('topologyMode names what is in force', async (t) => {
  const eps = [
    ep('10.0.0.1:80', { ...R, nodes: ['node1'], zones: ['zone-a'] }),
    ep('10.0.0.2:80', { ...R, nodes: ['node2'], zones: ['zone-b'] }),
  ];
  t.equal(topologyMode(eps, 'node1', 'zone-a'), 'PreferSameNode');
  t.equal(topologyMode(eps, 'node9', 'zone-b'), 'PreferSameZone');
  t.equal(topologyMode(eps, 'node9', 'zone-z'), '');
  t.equal(topologyMode(eps, 'node9', ''), '', 'a node without a zone label uses no zone hint');
  t.equal(topologyMode([], 'node1', 'zone-a'), '');
});

// the model: hints from slices, zone from the options, every mode reads clusterEndpoints
const hinted = (eps: { ip: string; node: string; zones?: string[]; nodes?: string[] }[]): EndpointSlice => {
  const s = makeSlice(
    'ns1',
    'svc1',
    eps.map((e) => ({ ip: e.ip, node: e.node })),
  );
  return {
    ...s,
    endpoints: s.endpoints.map((e, i) => ({
      ...e,
      hints: { forZones: eps[i]!.zones ?? [], forNodes: eps[i]!.nodes ?? [] },
    })),
  };
};

t.test('buildServicePorts: zone hints narrow clusterEndpoints on a node of that zone only', async (t) => {
  const svc = makeService('ns1', 'svc1', (s) => void (s.clusterIPs = ['10.96.0.41']));
  const slice = hinted([
    { ip: '198.19.1.10', node: 'node1', zones: ['zone-a'] },
    { ip: '198.19.2.10', node: 'node2', zones: ['zone-b'] },
    { ip: '198.19.3.10', node: 'node3', zones: ['zone-a'] },
  ]);
  const m = new Map([['ns1/svc1', [slice]]]);
  const build = (zone?: string) =>
    buildServicePorts([svc], m, { nodeName: 'node1', family: 'IPv4', ...(zone !== undefined ? { zone } : {}) })[0]!;
  const a = build('zone-a');
  t.same(
    a.clusterEndpoints.map((e) => e.ip),
    ['198.19.1.10', '198.19.3.10'],
  );
  t.equal(a.topology, 'PreferSameZone');
  t.equal(a.endpoints.length, 3, 'every endpoint is still listed');
  t.same(
    build('zone-b').clusterEndpoints.map((e) => e.ip),
    ['198.19.2.10'],
  );
  const none = build();
  t.equal(none.clusterEndpoints.length, 3, 'no zone label: every endpoint');
  t.equal(none.topology, undefined);
  t.same(
    build('zone-c').clusterEndpoints.map((e) => e.ip).length,
    3,
    'a zone no endpoint is hinted for: every endpoint',
  );
});

t.test('buildServicePorts: node hints pick this node; one endpoint without hints: all', async (t) => {
  const svc = makeService('ns1', 'svc1', (s) => void (s.clusterIPs = ['10.96.0.41']));
  const both = [
    { ip: '198.19.1.10', node: 'node1', zones: ['zone-a'], nodes: ['node1'] },
    { ip: '198.19.1.11', node: 'node1', zones: ['zone-a'], nodes: ['node1'] },
    { ip: '198.19.2.10', node: 'node2', zones: ['zone-a'], nodes: ['node2'] },
  ];
  const sp = buildServicePorts([svc], new Map([['ns1/svc1', [hinted(both)]]]), {
    nodeName: 'node1',
    family: 'IPv4',
    zone: 'zone-a',
  })[0]!;
  t.same(
    sp.clusterEndpoints.map((e) => e.ip),
    ['198.19.1.10', '198.19.1.11'],
  );
  t.equal(sp.topology, 'PreferSameNode');
  const missing = hinted([...both.slice(0, 2), { ip: '198.19.2.10', node: 'node2' }]);
  const sp2 = buildServicePorts([svc], new Map([['ns1/svc1', [missing]]]), {
    nodeName: 'node1',
    family: 'IPv4',
    zone: 'zone-a',
  })[0]!;
  t.equal(sp2.clusterEndpoints.length, 3, 'an endpoint without hints: fallback to every endpoint');
  t.equal(sp2.topology, undefined);
});
