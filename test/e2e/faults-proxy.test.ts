// Process faults, service proxy: `kdp proxy` is killed with SIGKILL at random moments (right after a change,
// mid-sync) while a client loops through a ClusterIP. Traffic keeps flowing on the rules already in the
// kernel, a change made while the proxy is dead is programmed by the restarted one, and the restarted proxy
// converges to exactly the ruleset a clean start produces: no duplicate, no stale rule. Both rule modes.
import t from 'tap';
import { needsRoot } from '../helpers/gate.ts';
import { CLI, ProxyLab } from './proxy-harness.ts';
import type { SvcSpec } from './proxy-harness.ts';
import { fuzzSeed, rng } from '../helpers/fuzz.ts';

/** Our rules as text, order-insensitive, without counters. */
async function ours(pl: ProxyLab, mode: string): Promise<string[]> {
  if (mode === 'nftables') {
    const res = await pl.lab.exec(pl.n1.ns, ['nft', 'list', 'table', 'ip', 'kdp'], { allowFailure: true });
    if (res.code !== 0) return [];
    // each line prefixed by the chain/map/set it is in, so a duplicate means the same rule twice in one place
    let ctx = '';
    const out: string[] = [];
    for (const raw of res.stdout.split('\n')) {
      const l = raw.trim().replace(/counter packets \d+ bytes \d+/, 'counter');
      const m = /^(chain|map|set) (\S+) \{$/.exec(l);
      if (m) ctx = `${m[1]} ${m[2]}`;
      else if (l !== '' && l !== '}' && !l.startsWith('table ')) out.push(`${ctx}: ${l}`);
    }
    return out.sort();
  }
  const lines: string[] = [];
  for (const table of ['nat', 'filter']) {
    const res = await pl.lab.exec(pl.n1.ns, ['iptables-save', '-t', table]);
    for (const l of res.stdout.split('\n')) if (/KDP-/.test(l)) lines.push(`${table} ${l.replace(/\[\d+:\d+\]/, '')}`);
  }
  return lines.sort();
}

const dupes = (lines: string[]) => lines.filter((l, i) => i > 0 && l === lines[i - 1]);

if (needsRoot(t)) {
  for (const mode of ['nftables', 'iptables']) {
    t.test(`kill -9 of kdp proxy (${mode})`, async (t) => {
      const pl = await ProxyLab.create(t, mode);
      const { b1, b2, c1, c2 } = pl.pods;
      const web = (eps: SvcSpec['endpoints']): SvcSpec => ({
        name: 'web',
        clusterIP: '10.96.0.10',
        type: 'NodePort',
        nodePort: 30080,
        endpoints: eps,
      });
      const other: SvcSpec = { name: 'other', clusterIP: '10.96.0.20', endpoints: [{ pod: c2 }] };
      pl.apply(web([{ pod: b1 }, { pod: c1 }]));
      pl.apply(other);
      await pl.startProxy(); // prints "ready" after the initial sync is programmed
      t.teardown(() => pl.proxy?.kill('SIGKILL'));

      const r = rng(fuzzSeed() + 5);
      const loop = pl.loadLoop('http://10.96.0.10/', 9000);
      const flips: SvcSpec['endpoints'][] = [
        [{ pod: b2 }, { pod: c1 }],
        [{ pod: b1 }, { pod: c2 }],
        [{ pod: b2 }, { pod: c2 }],
      ];
      for (const eps of flips) {
        // a change, then SIGKILL somewhere between "just queued" and "mid-sync"
        pl.apply(web(eps));
        await new Promise((res) => setTimeout(res, Math.floor(r() * 60)));
        pl.proxy?.kill('SIGKILL');
        await pl.proxy?.exited;
        t.ok((await ours(pl, mode)).length > 0, 'the rules stay in the kernel while the proxy is dead');
        // while it is dead, the other service changes too
        pl.apply({ ...other, endpoints: [{ pod: eps[0]!.pod }] });
        await pl.startProxy();
        const res = await pl.http(pl.pods.a.ns, 'http://10.96.0.20/');
        t.equal(res.name, eps[0]!.pod.name, 'the change made while the proxy was dead is programmed after restart');
      }
      const out = JSON.parse((await loop.exited, loop.output().trim().split('\n').pop() ?? '{}')) as {
        ok: number;
        fail: number;
        errs: string[];
      };
      t.ok(out.ok > 10, `the client looped through the kills (${out.ok} requests)`);
      t.equal(out.fail, 0, `no failed request across three SIGKILLs and restarts (${JSON.stringify(out.errs)})`);

      // convergence: the crash-restarted state equals what a clean start programs
      const afterCrash = await ours(pl, mode);
      t.same(dupes(afterCrash), [], 'no duplicate rule after the restarts');
      await pl.stopProxy();
      await pl.lab.exec(pl.n1.ns, [process.execPath, CLI, 'proxy', 'cleanup']);
      t.same(await ours(pl, mode), [], 'cleanup removed everything');
      await pl.startProxy();
      const clean = await ours(pl, mode);
      t.same(afterCrash, clean, 'the ruleset after kill -9 and restart is exactly the one of a clean start');
      await pl.stopProxy();
    });
  }
}
