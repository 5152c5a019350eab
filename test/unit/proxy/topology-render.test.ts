// Topology hints in every mode: golden files of the nftables table and the iptables restore text for the topology
// scenario seen from node1 in zone-a, the endpoint sets each mode programs, and the userspace balancer choosing
// only among the topology set.
import t from 'tap';
import { silentLogger } from '../../../src/common/log.ts';
import { buildServicePorts } from '../../../src/proxy/model.ts';
import type { ServicePortInfo } from '../../../src/proxy/model.ts';
import { dumpState, renderNft } from '../../../src/proxy/nftables/render.ts';
import { renderIptables, restoreText } from '../../../src/proxy/iptables/render.ts';
import { UserspaceBackend } from '../../../src/proxy/userspace/backend.ts';
import type { EndpointSlice } from '../../../src/model/types.ts';
import { assertGolden } from './golden.ts';
import { topologyScenario } from './fixtures.ts';

const CFG = { clusterCIDRs: ['198.19.0.0/16'] };

function model(zone?: string, node = 'node1'): ServicePortInfo[] {
  const { services, slices } = topologyScenario();
  const m = new Map<string, EndpointSlice[]>();
  for (const s of slices) m.set(`${s.meta.namespace}/${s.serviceName}`, [s]);
  return buildServicePorts(services, m, { nodeName: node, family: 'IPv4', ...(zone ? { zone } : {}) });
}

const nft = (zone?: string) => dumpState(renderNft(model(zone), 'ip', CFG));
const ipt = (zone?: string) =>
  restoreText(renderIptables(model(zone), 'ipv4', CFG), { full: true, changed: new Set(), existing: new Map() });

/** The endpoint addresses a rendering mentions, by the service's 4th octet group (198.19.x.4N). */
const mentioned = (text: string, n: number) =>
  [...new Set(text.match(new RegExp(`198\\.19\\.\\d\\.${n}\\b`, 'g')) ?? [])].sort();

t.test('golden: nftables and iptables with topology hints (node1, zone-a)', async (t) => {
  assertGolden(t, 'nftables-topology-node1.nft', nft('zone-a'));
  assertGolden(t, 'iptables-topology-node1.txt', ipt('zone-a'));
});

t.test('each mode programs only the topology set; without a zone label, the node hints still apply', async (t) => {
  for (const [mode, render] of [
    ['nftables', nft],
    ['iptables', ipt],
  ] as const) {
    const a = render('zone-a');
    t.same(mentioned(a, 41), ['198.19.1.41', '198.19.3.41'], `${mode}: zone hints -> the zone-a endpoints`);
    t.same(mentioned(a, 42), ['198.19.1.42'], `${mode}: node hints -> this node's endpoint`);
    t.same(mentioned(a, 43), ['198.19.1.43', '198.19.2.43'], `${mode}: one endpoint without a hint -> all`);
    // eTP Local: cluster set = the zone-a hinted endpoint (on node2), local set = node1's (hinted zone-b)
    t.same(mentioned(a, 44), ['198.19.1.44', '198.19.2.44'], `${mode}: Local ignores hints, Cluster follows them`);
    const none = render(undefined);
    t.same(mentioned(none, 41), ['198.19.1.41', '198.19.2.41', '198.19.3.41'], `${mode}: no zone label: all`);
    t.same(mentioned(none, 42), ['198.19.1.42'], `${mode}: node hints need no zone`);
    t.not(render('zone-b'), a, `${mode}: another zone renders differently`);
  }
});

t.test('eTP Local with hints: the local set ignores topology, the cluster set follows it', async (t) => {
  const sp = model('zone-a').find((p) => p.name === 'etplocal')!;
  t.same(
    sp.clusterEndpoints.map((e) => e.ip),
    ['198.19.2.44'],
  );
  t.same(
    sp.localEndpoints.map((e) => e.ip),
    ['198.19.1.44'],
  );
});

t.test('userspace: the balancer only hands out the topology set', async (t) => {
  // unprivileged, ClusterIP-only ports: the backend opens no socket and runs nothing
  const backend = new UserspaceBackend({
    exec: {
      run: async () => {
        throw new Error('no command expected');
      },
    } as never,
    log: silentLogger,
    privileged: false,
  });
  t.teardown(() => backend.close());
  const ports = model('zone-a').filter((p) => p.nodePort === undefined);
  await backend.sync(new Map([['IPv4', ports]]));
  const picks = (name: string, n = 12) => {
    const sp = ports.find((p) => p.name === name)!;
    const bal = backend.balancers('IPv4', sp.id, sp.protocol)!.cluster;
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) seen.add(bal.candidates(`10.0.0.${i}`)[0]!.ip);
    return [...seen].sort();
  };
  t.same(picks('zonal'), ['198.19.1.41', '198.19.3.41'], 'zone-a endpoints only, both used');
  t.same(picks('fallback'), ['198.19.1.43', '198.19.2.43'], 'fallback: every endpoint');
  // the node moves to zone-b: the next sync narrows to zone-b's endpoint
  const zoneB = model('zone-b').filter((p) => p.nodePort === undefined);
  await backend.sync(new Map([['IPv4', zoneB]]));
  const sp = zoneB.find((p) => p.name === 'zonal')!;
  t.same(
    backend
      .balancers('IPv4', sp.id, sp.protocol)!
      .cluster.targets()
      .map((x) => x.ip),
    ['198.19.2.41'],
  );
});
