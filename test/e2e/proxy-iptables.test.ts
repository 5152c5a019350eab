// iptables mode in the lab: the same packet-flow table and dynamic tests as nftables mode, foreign chains
// untouched, `kdp proxy cleanup` removing every KDP-* chain and jump.
import t from 'tap';
import { needsRoot } from '../helpers/gate.ts';
import { modeSuite } from './proxy-harness.ts';
import type { ProxyLab } from './proxy-harness.ts';

const FOREIGN = `*filter
:FOREIGN-INPUT - [0:0]
-A INPUT -j FOREIGN-INPUT
-A FOREIGN-INPUT -p tcp --dport 9 -j ACCEPT
COMMIT
*nat
:FOREIGN-NAT - [0:0]
-A PREROUTING -j FOREIGN-NAT
-A FOREIGN-NAT -p tcp --dport 9 -j RETURN
COMMIT
`;

const save = async (pl: ProxyLab) => (await pl.lab.exec(pl.n1.ns, ['iptables-save'])).stdout;

if (needsRoot(t)) {
  t.test('iptables mode', async (t) => {
    await modeSuite(t, 'iptables', {
      async addForeign(pl) {
        await pl.lab.exec(pl.n1.ns, ['iptables-restore', '--noflush'], { input: FOREIGN });
      },
      async foreignIntact(pl) {
        const s = await save(pl);
        return [
          '-A INPUT -j FOREIGN-INPUT',
          '-A FOREIGN-INPUT -p tcp -m tcp --dport 9 -j ACCEPT',
          '-A PREROUTING -j FOREIGN-NAT',
          '-A FOREIGN-NAT -p tcp -m tcp --dport 9 -j RETURN',
        ].every((l) => s.includes(l));
      },
      async oursPresent(pl) {
        return /KDP-/.test(await save(pl));
      },
    });
  });
}
