// Upstream NetworkPolicy e2e cases (kubernetes test/e2e/network/netpol), share 2 of 2 (the cases at
// odd positions of src/policy/testing/netpol-cases.ts), each asserting upstream's full
// reachability matrix on real packets: 2 nodes, bridged same-node and routed cross-node traffic, TCP and UDP
// (SCTP: programmed, not probed when the kernel cannot open SCTP sockets). See netpol-cases.ts.
import t from 'tap';
import { needsRoot } from '../helpers/gate.ts';
import { NetpolLab } from './netpol-harness.ts';
import { cases, runCase } from './netpol-cases.ts';

if (needsRoot(t)) {
  const nl = await NetpolLab.create(t, 'matrix2');
  const { ctx, all } = cases(nl);
  for (const [i, c] of all.entries()) {
    if (i % 2 !== 1) continue;
    await t.test(`${c.suite}: ${c.name}`, (t) => runCase(t, nl, ctx, c));
  }
}
