// kdp dns under faults, in the lab: kdp dns runs in a node namespace, its upstream is dnsmasq on the
// underlay host. serve_stale: the upstream is stopped, the cached answer has expired, the client still
// gets it (TTL 0) while a name never cached gets SERVFAIL.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import type { NodePlan } from '../../src/lab/plan.ts';
import { run } from '../../src/common/exec-adapter.ts';
import { needsRoot } from '../helpers/gate.ts';
import { kdpDnsArgv, startUpstreamDnsmasq } from '../helpers/kdp-dns.ts';
import { waitForOutput as waitFor } from '../helpers/wait.ts';
import { timeToFirstAnswer, writeRestartFixture } from '../helpers/dns-restart.ts';

if (needsRoot(t)) {
  // dnsmasq (the upstream) is in the bench group of packages
  t.before(() =>
    run(['bash', fileURLToPath(new URL('../../scripts/setup-system.sh', import.meta.url)), 'bench'], {
      timeoutMs: 600_000,
    }),
  );

  t.test('serve_stale: the upstream stopped, an expired answer is still served', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const dir = mkdtempSync(join(tmpdir(), 'kdp-dns-faults-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const manifests = join(dir, 'manifests');
    mkdirSync(manifests);
    const n1 = lab.nodes[0] as NodePlan;
    const up = lab.plan.underlayHost4;
    const dnsmasq = startUpstreamDnsmasq(lab, dir, ['local-ttl=1']);
    t.teardown(() => dnsmasq.kill('SIGKILL'));
    writeFileSync(
      join(dir, 'Corefile'),
      `.:53 {
    errors
    forward . ${up} {
       max_fails 1
       health_check 200ms
    }
    cache 30 {
       success 1000 1 1
       serve_stale 1h
       servfail 0
    }
    prometheus 127.0.0.1:9153
}
`,
    );
    const dns = lab.spawn(n1.ns, kdpDnsArgv(join(dir, 'Corefile'), manifests, '--health', '', '--ready', ''));
    t.teardown(() => dns.kill('SIGTERM'));
    await waitFor('kdp dns', dns, /kdp dns ready/);
    const dig = (name: string) =>
      lab.exec(n1.ns, ['dig', `@${n1.ip4}`, '+time=2', '+tries=1', '+noall', '+answer', '+comments', name], {
        allowFailure: true,
      });
    let first = '';
    for (let i = 0; i < 50 && !/203\.0\.113\.7/.test(first); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 200));
      first = (await dig('outside.example')).stdout;
    }
    t.match(first, /outside\.example\.\s+1\s+IN\s+A\s+203\.0\.113\.7/, 'answered by dnsmasq (TTL 1, cached for 1 s)');

    dnsmasq.kill('SIGKILL');
    await dnsmasq.exited;
    await new Promise((r) => setTimeout(r, 1500)); // the entry expires
    const stale = (await dig('outside.example')).stdout;
    t.match(stale, /status: NOERROR/, 'upstream gone, entry expired: still NOERROR');
    t.match(stale, /outside\.example\.\s+0\s+IN\s+A\s+203\.0\.113\.7/, 'the stale answer, TTL 0');
    const again = (await dig('OUTSIDE.example')).stdout;
    t.match(again, /OUTSIDE\.example\.\s+0\s+IN\s+A\s+203\.0\.113\.7/, "again (and in the client's case)");
    t.match((await dig('never-cached.example')).stdout, /status: SERVFAIL/, 'a name never cached: SERVFAIL');
    const metrics = (
      await lab.exec(n1.ns, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:9153/metrics'], { allowFailure: true })
    ).stdout;
    t.match(
      metrics,
      /coredns_cache_served_stale_total\{[^}]*\} ([2-9]|\d\d)/,
      'coredns_cache_served_stale_total counts them',
    );
  });
}

if (needsRoot(t)) {
  t.test('kill -9, then restart: answers again within 2 s of start', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const dir = mkdtempSync(join(tmpdir(), 'kdp-dns-restart-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const argv = writeRestartFixture(dir);
    const n1 = lab.nodes[0] as NodePlan;
    /** ms from spawning kdp dns to its first right answer (dig every 50 ms) */
    const startAndTime = () => timeToFirstAnswer(lab, n1, argv, 30_000, 50);
    const first = await startAndTime();
    t.teardown(() => first.child.kill('SIGKILL'));
    first.child.kill('SIGKILL');
    await first.child.exited;
    const again = await startAndTime();
    t.teardown(() => again.child.kill('SIGTERM'));
    // The figure is recorded in docs/RELIABILITY.md. The 2 s target is wall-clock time with a CPU free for kdp dns;
    // on the shared 2-core box (CI runs 2 files at once, and other jobs) the restarted server can sit for seconds
    // runnable but queued behind other processes. That wait, which the kernel measures for its main thread, is not
    // counted against the 2 s: what is asserted is the time the restart itself takes. (The bound used to scale with
    // the 1-minute load average, which lags: a parallel file that had just started left it low while both CPUs were
    // already busy, e.g. 11650 ms measured against a bound of 6970 ms at load 6.97.) Where the kernel gives no
    // figure, the load-scaled bound stays.
    const load = Number((await run(['cat', '/proc/loadavg'])).stdout.split(' ')[0]);
    const queued = again.queuedMs;
    const own = Math.round(again.askedMs - (queued ?? 0));
    const bound = queued === undefined ? 2000 * Math.max(1, load / 2) : 2000;
    t.comment(
      `restart after kill -9: first answer ${Math.round(again.ms)} ms after start, ${Math.round(queued ?? 0)} ms of it queued for a CPU (cold start ${Math.round(first.ms)} ms, load ${load})`,
    );
    t.ok(
      own < bound,
      `answers ${own} ms after the restart, not counting ${Math.round(queued ?? 0)} ms queued for a CPU (bound ${Math.round(bound)} ms, load ${load})`,
    );
    t.equal(
      (await lab.exec(n1.ns, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:8181/ready'], { allowFailure: true }))
        .stdout,
      'OK',
      'ready again',
    );
  });
}
