// Upstream NetworkPolicy e2e cases (kubernetes test/e2e/network/netpol), share 1 of 2 (the cases at
// even positions of src/policy/testing/netpol-cases.ts), each asserting upstream's full
// reachability matrix on real packets: 2 nodes, bridged same-node and routed cross-node traffic, TCP and UDP
// (SCTP: programmed, not probed when the kernel cannot open SCTP sockets). See netpol-cases.ts.
import t from 'tap';
import { needsRoot } from '../helpers/gate.ts';
import { NetpolLab } from './netpol-harness.ts';
import { cases, runCase } from './netpol-cases.ts';

if (needsRoot(t)) {
  const nl = await NetpolLab.create(t, 'matrix1');
  const { ctx, all } = cases(nl);
  for (const [i, c] of all.entries()) {
    if (i % 2 !== 0) continue;
    await t.test(`${c.suite}: ${c.name}`, (t) => runCase(t, nl, ctx, c));
  }
}
