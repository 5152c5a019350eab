// nftables mode in the lab: the packet-flow table, live affinity changes, UDP conntrack cleanup, a rolling
// update and a restart under load with zero failures, foreign tables untouched, cleanup.
import t from 'tap';
import { needsRoot } from '../helpers/gate.ts';
import { modeSuite } from './proxy-harness.ts';
import type { ProxyLab } from './proxy-harness.ts';

const FOREIGN = `table ip foreign {
\tchain input {
\t\ttype filter hook input priority 0; policy accept;
\t\ttcp dport 9 counter accept
\t}
}
table inet other {
\tset allowed {
\t\ttype ipv4_addr
\t\telements = { 192.0.2.1 }
\t}
}`;

const dump = async (pl: ProxyLab, table: string) =>
  (await pl.lab.exec(pl.n1.ns, ['nft', 'list', 'table', ...table.split(' ')], { allowFailure: true })).stdout;

if (needsRoot(t)) {
  t.test('nftables mode', async (t) => {
    await modeSuite(t, 'nftables', {
      async addForeign(pl) {
        await pl.lab.exec(pl.n1.ns, ['nft', '-f', '-'], { input: FOREIGN + '\n' });
      },
      async foreignIntact(pl) {
        const a = await dump(pl, 'ip foreign');
        const b = await dump(pl, 'inet other');
        return a.includes('tcp dport 9 counter') && b.includes('192.0.2.1');
      },
      async oursPresent(pl) {
        const res = await pl.lab.exec(pl.n1.ns, ['nft', 'list', 'tables']);
        return /table ip6? kdp/.test(res.stdout);
      },
    });
  });
}
