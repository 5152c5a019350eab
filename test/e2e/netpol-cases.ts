// Runs upstream NetworkPolicy cases (src/policy/testing/netpol-cases.ts: kubernetes test/e2e/network/netpol as
// data) on real packets in a NetpolLab: per step the case's Namespaces and Pods (with the step's labels) and its
// policies are written, the agents sync, and the full matrix of the case's pods is probed and compared with
// upstream's expectation. The test files netpol-matrix-*.test.ts each run a share of the cases.
import type { Test } from 'tap';
import { modelObjects, netpolCases } from '../../src/policy/testing/netpol-cases.ts';
import type { CaseContext, Matrix as Expected, NetpolCase } from '../../src/policy/testing/netpol-cases.ts';
import type { NetpolLab } from './netpol-harness.ts';

export function cases(nl: NetpolLab): { ctx: CaseContext; all: NetpolCase[] } {
  const ctx: CaseContext = { ns: { x: 'x', y: 'y', z: 'z' }, podIP: (p) => nl.pod(p).ip };
  return { ctx, all: netpolCases(ctx) };
}

function show(m: Expected, pods: readonly string[]): string {
  const rows = ['\t' + pods.join('\t')];
  for (const f of pods) rows.push(f + '\t' + pods.map((to) => (f === to ? '-' : m[f]?.[to] ? '.' : 'X')).join('\t'));
  return rows.join('\n');
}

/** Runs one case: every step, every probe; a matrix that differs is probed again (twice, 1 s apart) before it counts. */
export async function runCase(t: Test, nl: NetpolLab, ctx: CaseContext, c: NetpolCase): Promise<void> {
  const sctp = await nl.sctpSupported();
  const errorsBefore = await Promise.all(nl.lab.nodes.map((n) => nl.reconcileErrors(n)));
  for (const [i, step] of c.steps.entries()) {
    const before = await nl.mark();
    nl.writeObjects(modelObjects(c, ctx, step, { nodeOf: (p) => nl.pod(p).node.name }));
    nl.writePolicies(step.policies);
    await nl.waitSynced(before);
    for (const probe of step.probes) {
      const what = `step ${i + 1} (${step.what}): ${probe.protocol}/${probe.port}`;
      if (probe.protocol === 'SCTP') {
        // programmed (the agents synced it without error) but not probed: no SCTP sockets in this kernel
        t.notOk(sctp.ok, `${what}: not probed, this kernel cannot open SCTP sockets (${sctp.why})`);
        continue;
      }
      let observed: Expected = {};
      for (let attempt = 0; attempt < 3; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, 1000));
        observed = await probeCase(nl, c.pods, probe.port, probe.protocol === 'UDP' ? 'udp' : 'tcp');
        if (same(observed, probe.expected)) break;
        t.comment(
          `${what}: attempt ${attempt + 1} differs\nexpected:\n${show(probe.expected, c.pods)}\nobserved:\n${show(observed, c.pods)}`,
        );
      }
      t.same(observed, probe.expected, what);
    }
  }
  const errors = await Promise.all(nl.lab.nodes.map((n) => nl.reconcileErrors(n)));
  t.same(errors, errorsBefore, 'no failed policy sync on any node');
}

function same(a: Expected, b: Expected): boolean {
  return Object.keys(b).every((f) => Object.keys(b[f]!).every((to) => a[f]?.[to] === b[f]![to]));
}

/** The case's pods to each other (no loopback), one port and protocol, all at once. */
async function probeCase(
  nl: NetpolLab,
  pods: readonly string[],
  port: number,
  proto: 'tcp' | 'udp',
): Promise<Expected> {
  const out: Record<string, Record<string, boolean>> = {};
  await Promise.all(
    pods.map(async (from) => {
      const to = pods.filter((p) => p !== from);
      const res = await nl.probeFrom(
        nl.pod(from),
        to.map((p) => ({ proto, host: nl.pod(p).ip, port, timeoutMs: 1000 })),
      );
      out[from] = Object.fromEntries(to.map((p, i) => [p, res[i] === 'connected' || res[i] === 'replied']));
    }),
  );
  return out;
}
