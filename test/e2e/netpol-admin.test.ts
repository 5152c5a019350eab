// The network-policy-api conformance tests of the standard profile for AdminNetworkPolicy and
// BaselineAdminNetworkPolicy and the NamedPort tests (src/policy/testing/admin-cases.ts: 22 tests, their subtests
// and PokeServer calls) on real packets: the four houses (two pods each, one on each of the 2 lab nodes, so every
// probe is either bridged same-node or routed cross-node traffic) serving TCP 80/8080 and UDP 53/5353 as agnhost
// does upstream, `kdp policy-agent` on each node, each subtest's policies (upstream's patches applied in order)
// written to the manifests directory, then upstream's probes with 1 s timeouts. SCTP probes: this kernel cannot
// open SCTP sockets (see netpol-harness sctpSupported), so they are asserted by the evaluator test only and here
// the test asserts that SCTP is indeed unavailable (a kernel with SCTP turns that into a failure, not a silent gap).
import t from 'tap';
import { convertAny } from '../../src/k8s/convert.ts';
import type { ClusterObject } from '../../src/model/types.ts';
import { compilePolicies } from '../../src/policy/compile.ts';
import { renderNft } from '../../src/policy/nft.ts';
import { adminConformanceCases } from '../../src/policy/testing/admin-cases.ts';
import type { AdminProbe, Raw } from '../../src/policy/testing/netpol-cases.ts';
import { ADMIN_MODEL_PODS, adminModelObjects } from '../../src/policy/testing/netpol-cases.ts';
import { needsRoot } from '../helpers/gate.ts';
import { NetpolLab } from './netpol-harness.ts';

if (needsRoot(t)) {
  // <house>-0 on node 1, <house>-1 on node 2
  const placement = Object.fromEntries(ADMIN_MODEL_PODS.map((p) => [p, p.endsWith('-0') ? 0 : 1]));
  const nl = await NetpolLab.create(t, 'admin', { placement, tcp: [80, 8080], udp: [53, 5353] });
  const ip = (p: string): string => nl.pod(p).ip;
  const cluster: Raw[] = adminModelObjects(ip).map((o) => {
    if (o['kind'] !== 'Pod') return o;
    const m = o['metadata'] as Raw;
    return {
      ...o,
      spec: { ...(o['spec'] as Raw), nodeName: nl.pod(`${String(m['namespace'])}/${String(m['name'])}`).node.name },
    };
  });
  const nodes = nl.lab.nodes;

  /** What each node's agent renders for these policies (a node whose script does not change does not sync). */
  const renders = (policies: readonly Raw[]): string[] => {
    const objs: ClusterObject[] = [];
    for (const r of [...cluster, ...policies]) {
      const c = convertAny(r);
      if (!c.ok) throw new Error(`conformance object rejected: ${c.reason}`);
      objs.push(...c.value);
    }
    const of = <K extends ClusterObject['kind']>(k: K) =>
      objs.filter((o): o is Extract<ClusterObject, { kind: K }> => o.kind === k);
    const input = {
      pods: of('Pod'),
      namespaces: of('Namespace'),
      nodes: [],
      networkPolicies: of('NetworkPolicy'),
      adminNetworkPolicies: of('AdminNetworkPolicy'),
      baselineAdminNetworkPolicies: of('BaselineAdminNetworkPolicy'),
    };
    return nodes.map((n) => renderNft(compilePolicies(input, { node: n.name }), { table: 'kdp-policy' }));
  };

  // the conformance model replaces the harness's default objects; let the agents take it in before the first case
  {
    const before = await nl.mark();
    nl.writeObjects(cluster);
    await nl.waitSynced(before).catch(() => undefined); // no policy yet: a node may have nothing to change
    await new Promise((r) => setTimeout(r, 500));
  }
  const sctp = await nl.sctpSupported();
  const errorsBefore = await Promise.all(nodes.map((n) => nl.reconcileErrors(n)));
  let previous = renders([]);

  const probe = async (probes: readonly AdminProbe[]): Promise<boolean[]> => {
    const out: boolean[] = new Array<boolean>(probes.length).fill(false);
    const byFrom = new Map<string, number[]>();
    probes.forEach((p, i) => byFrom.set(p.from, [...(byFrom.get(p.from) ?? []), i]));
    await Promise.all(
      [...byFrom].map(async ([from, idx]) => {
        const res = await nl.probeFrom(
          nl.pod(from),
          idx.map((i) => ({
            proto: probes[i]!.protocol === 'UDP' ? ('udp' as const) : ('tcp' as const),
            host: ip(probes[i]!.to),
            port: probes[i]!.port,
            timeoutMs: 1000,
          })),
        );
        idx.forEach((i, k) => (out[i] = res[k] === 'connected' || res[k] === 'replied'));
      }),
    );
    return out;
  };

  let probed = 0;
  let sctpProbes = 0;
  for (const c of adminConformanceCases(ip)) {
    await t.test(c.name, async (t) => {
      for (const step of c.steps) {
        const next = renders(step.policies);
        const before = await nl.mark();
        // nodes whose table does not change log no sync: do not wait for them
        const expectSync = before.map((b, i) => (next[i] !== previous[i] ? b : -2));
        nl.writePolicies(step.policies);
        if (expectSync.some((b) => b !== -2)) await nl.waitSynced(expectSync);
        previous = next;
        const live = step.probes.filter((p) => p.protocol !== 'SCTP');
        const sctpHere = step.probes.length - live.length;
        if (sctpHere > 0) {
          sctpProbes += sctpHere;
          t.notOk(
            sctp.ok,
            `${step.what}: ${sctpHere} SCTP probes not sent, no SCTP sockets in this kernel (${sctp.why})`,
          );
        }
        let got: boolean[] = [];
        for (let attempt = 0; attempt < 3; attempt++) {
          if (attempt > 0) await new Promise((r) => setTimeout(r, 1000));
          got = await probe(live);
          if (got.every((g, i) => g === live[i]!.connected)) break;
          t.comment(`${step.what}: attempt ${attempt + 1} differs`);
        }
        live.forEach((p, i) =>
          t.equal(got[i], p.connected, `${step.what}: ${p.from} -> ${p.to} ${p.protocol}/${p.port}`),
        );
        probed += live.length;
      }
    });
  }
  t.test('every probe ran: TCP and UDP on packets, SCTP by the evaluator test', async (t) => {
    t.equal(probed + sctpProbes, 280);
    t.ok(probed > 150, `${probed} TCP/UDP probes sent`);
    const errors = await Promise.all(nodes.map((n) => nl.reconcileErrors(n)));
    t.same(errors, errorsBefore, 'no failed policy sync on any node');
    if (errors.some((e, i) => e !== errorsBefore[i]))
      for (const n of nodes)
        t.comment(
          `${n.name}:\n` +
            (nl.agents.get(n.name)?.output() ?? '')
              .split('\n')
              .filter((l) => /"level":(40|50)/.test(l))
              .slice(0, 5)
              .join('\n'),
        );
  });
}
