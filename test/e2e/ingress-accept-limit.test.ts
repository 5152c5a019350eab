// The HTTPS port's accepts are the native addon's (TLS in the addon): `kdp ingress` as a child process whose
// descriptor limit (prlimit) is reached by idle connections. An accept that fails for want of descriptors must
// neither crash the process nor spin it (the listening socket stays ready): the listener rests, says so in the
// log, and accepts again once descriptors are free; the connections waiting in the backlog are then served.
import t from 'tap';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readdir, readFile } from 'node:fs/promises';
import { needsRoot } from '../helpers/gate.ts';
import { kdpIngressArgv, okBackendManifests } from '../helpers/ingress-manifests.ts';
import { spawnChild } from '../../src/common/exec-adapter.ts';
import { freePort } from '../helpers/ports.ts';
import { until } from '../helpers/wait.ts';
import { exchange, statuses } from '../helpers/raw-http.ts';

const LIMIT = 256;

/** user + system CPU time of a process, in clock ticks (/proc/PID/stat fields 14 and 15) */
async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** One GET over a new TLS connection: its statuses. */
async function tlsGet(port: number): Promise<number[]> {
  const s = tlsConnect({
    port,
    host: '127.0.0.1',
    servername: 'limit.test',
    rejectUnauthorized: false,
    ALPNProtocols: ['http/1.1'],
  });
  s.on('error', () => {});
  const out = await exchange(s, 'secureConnect', ['GET /l HTTP/1.1\r\nHost: limit.test\r\nConnection: close\r\n\r\n'], {
    answers: 1,
  });
  s.destroy();
  return statuses(out);
}

if (needsRoot(t, 'nothing but loopback; kept with the other ingress e2e files')) {
  t.test('out of descriptors: the listener rests, then serves what waited', async (t) => {
    const dir = await okBackendManifests(t, 'ingress-accept-limit', 'limit.test');
    const [http, https] = [await freePort(), await freePort()];
    const child = spawnChild([
      'prlimit',
      `--nofile=${LIMIT}:${LIMIT}`,
      ...kdpIngressArgv({ manifests: dir, http, https, global: ['--log-format', 'json'] }, '--healthz-port=-1'),
    ]);
    const held: Socket[] = [];
    t.teardown(async () => {
      held.forEach((s) => s.destroy());
      child.kill('SIGTERM');
      await Promise.race([child.exited, new Promise((r) => setTimeout(r, 5000))]);
      child.kill('SIGKILL');
    });
    t.same(
      await until(async () => ((await tlsGet(https))[0] === 200 ? [200] : undefined), {
        timeoutMs: 30_000,
        what: () => `ready (output: ${child.output().slice(-600)})`,
      }),
      [200],
    );
    const open = (await readdir(`/proc/${child.pid}/fd`)).length;
    t.ok(open < LIMIT - 50, `${open} descriptors open at rest (limit ${LIMIT})`);

    // idle TCP connections (no ClientHello: each holds a descriptor in the ingress) past the limit
    const extra = LIMIT - open + 30;
    for (let i = 0; i < extra; i++) {
      const s = connect(https, '127.0.0.1');
      s.on('error', () => {});
      held.push(s);
    }
    await until(async () => (child.output().includes('accept failed') ? true : undefined), {
      timeoutMs: 10_000,
      what: 'the log says accept failed',
    });
    t.match(child.output(), /"msg":"ingress: accept failed, retrying".*EMFILE|EMFILE.*accept failed/, 'EMFILE logged');
    // the listening socket is ready all along (connections wait in its backlog): the process must not spin on it
    const t0 = Date.now();
    const before = await cpuTicks(child.pid);
    await new Promise((r) => setTimeout(r, 1000));
    const used = (await cpuTicks(child.pid)) - before;
    const t1 = Date.now();
    t.ok(used < 30, `CPU while out of descriptors: ${used} ticks in 1 s (< 30: no busy loop)`);
    // one try per rest (100 ms), not one per turn of the loop
    const tries = child
      .output()
      .split('\n')
      .filter((l) => l.includes('accept failed'))
      .map((l) => Date.parse(/"time":"([^"]+)"/.exec(l)?.[1] ?? '')) // (the first line kept may be cut)
      .filter((when) => when >= t0 && when <= t1).length;
    t.ok(tries >= 1 && tries <= 15, `accept tried again ${tries} times in 1 s (1 to 15)`);
    t.equal(child.output().includes('Uncaught'), false, 'no crash');

    // a TLS request now waits in the backlog; freeing the descriptors lets the listener take it
    const waiting = tlsGet(https);
    await new Promise((r) => setTimeout(r, 300));
    held.splice(0).forEach((s) => s.destroy());
    t.same(await waiting, [200], 'the request that waited is served');
    t.same(await tlsGet(https), [200], 'and the next one');
  });
}
