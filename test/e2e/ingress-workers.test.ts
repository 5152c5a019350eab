// `kdp ingress --workers 2` as a child process on loopback: both workers accept connections (their own
// SO_REUSEPORT sockets, seen with ss), the primary's /metrics sums every worker's counters (exactly the
// number of requests sent), /healthz reflects the workers, and a worker killed with SIGKILL is forked again
// and serves (time to ready measured). The default certificate reaches the workers over IPC: every worker
// presents the primary's certificate, and no process's environment holds key material.
import t from 'tap';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { needsRoot } from '../helpers/gate.ts';
import { kdpIngressArgv, okBackendManifests } from '../helpers/ingress-manifests.ts';
import { run, spawnChild } from '../../src/common/exec-adapter.ts';
import { freePort } from '../helpers/ports.ts';

async function until<T>(fn: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One keep-alive request on a new connection; resolves with the socket still open. */
function requestOn(port: number): Promise<{ close: () => void; status: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.on('error', reject);
    s.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('\r\n\r\n') && out.endsWith('ok'))
        resolve({ close: () => s.destroy(), status: out.slice(9, 12) });
    });
    s.write('GET /w HTTP/1.1\r\nHost: workers.test\r\n\r\n');
  });
}

/** The fingerprint of the certificate served on a new TLS connection, kept open (so ss sees who accepted it). */
function certOn(port: number): Promise<{ close: () => void; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername: 'workers.test', rejectUnauthorized: false });
    s.on('error', reject);
    s.on('secureConnect', () =>
      resolve({ close: () => s.destroy(), fingerprint: s.getPeerCertificate().fingerprint256 }),
    );
  });
}

/** The environment of a process and of all its descendants, as one string per process. */
function environs(pid: number): { pid: number; env: string }[] {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  return [{ pid, env: readFileSync(`/proc/${pid}/environ`, 'latin1') }, ...children.flatMap(environs)];
}

const sum = (text: string, re: RegExp) => [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);

if (needsRoot(t, 'nothing but loopback; kept with the other ingress e2e files')) {
  t.test('two workers: shared load, one /metrics, restart after SIGKILL', async (t) => {
    const dir = await okBackendManifests(t, 'ingress-workers', 'workers.test');
    const [http, https, health] = [await freePort(), await freePort(), await freePort()];
    const child = spawnChild(
      kdpIngressArgv(
        { manifests: dir, http, https, global: ['--log-level', 'info'] },
        '--healthz-port',
        String(health),
        '--workers',
        '2',
      ),
    );
    t.teardown(async () => {
      child.kill('SIGTERM');
      await Promise.race([child.exited, new Promise((r) => setTimeout(r, 5000))]);
      child.kill('SIGKILL');
    });
    const healthz = async () => {
      const r = await request(`http://127.0.0.1:${health}/healthz`);
      await r.body.text();
      return r.statusCode;
    };
    const metrics = async () => await (await request(`http://127.0.0.1:${health}/metrics`)).body.text();
    await until(
      async () => ((await healthz()) === 200 ? true : undefined),
      30_000,
      `healthz 200 (output: ${child.output().slice(-600)})`,
    );

    // 16 connections, one request each, all kept open: the accepted sockets belong to both worker pids
    const conns = await Promise.all(Array.from({ length: 16 }, () => requestOn(http)));
    t.same(
      conns.map((c) => c.status),
      Array(16).fill('200'),
    );
    const ss = await run(['ss', '-Htnp', 'state', 'established', `( sport = :${http} )`]);
    const pids = new Set([...ss.stdout.matchAll(/pid=(\d+)/g)].map((m) => m[1]));
    t.equal(pids.size, 2, `accepted by two processes (${[...pids].join(', ')})`);
    for (const c of conns) c.close();
    // 34 more on kept-alive connections through undici
    for (let i = 0; i < 34; i++) {
      const r = await request(`http://127.0.0.1:${http}/more`, { headers: { host: 'workers.test' } });
      await r.body.text();
    }
    const text = await metrics();
    t.equal(
      sum(text, /^nginx_ingress_controller_requests\{host="workers\.test",status="200"[^}]*\} (\d+)$/gm),
      50,
      'every request of both workers counted once',
    );
    t.equal(
      sum(text, /^nginx_ingress_controller_request_duration_seconds_count\{host="workers\.test"[^}]*\} (\d+)$/gm),
      50,
      'histograms summed too',
    );
    t.match(text, /^nginx_ingress_controller_config_last_reload_successful 1$/m, 'gauge combined with min, not summed');

    // SIGKILL one worker: the primary forks a new one; the port keeps answering meanwhile (the other worker)
    const victim = Number([...pids][0]);
    const t0 = Date.now();
    process.kill(victim, 'SIGKILL');
    // a connection the kernel had already queued on the killed worker's socket is reset (as with any
    // SO_REUSEPORT server that dies); new connections go to the survivor
    const during = await until(
      async () => {
        const r = await request(`http://127.0.0.1:${http}/during`, { headers: { host: 'workers.test' }, reset: true });
        await r.body.text();
        return r.statusCode;
      },
      2000,
      'an answer from the surviving worker',
    );
    t.equal(during, 200, `served by the surviving worker ${Date.now() - t0} ms after the kill`);
    const readyMs = await until(
      async () => {
        const ss2 = await run(['ss', '-Hltnp', `( sport = :${http} )`]);
        const listeners = new Set([...ss2.stdout.matchAll(/pid=(\d+)/g)].map((m) => m[1]));
        return listeners.size === 2 && !listeners.has(String(victim)) && (await healthz()) === 200
          ? Date.now() - t0
          : undefined;
      },
      20_000,
      'a new worker listening and ready',
    );
    t.comment(
      `worker killed with SIGKILL: new worker listening and ready after ${readyMs} ms (restart delay 1 s included)`,
    );

    // the default certificate: generated once by the primary, handed to each worker (the re-forked one too)
    // over IPC; with it in the environment /proc/<pid>/environ would show the key
    const tls = await Promise.all(Array.from({ length: 12 }, () => certOn(https)));
    const tlsSs = await run(['ss', '-Htnp', 'state', 'established', `( sport = :${https} )`]);
    const tlsPids = new Set([...tlsSs.stdout.matchAll(/pid=(\d+)/g)].map((m) => m[1]));
    for (const c of tls) c.close();
    t.equal(tlsPids.size, 2, `TLS accepted by two workers (${[...tlsPids].join(', ')})`);
    t.equal(new Set(tls.map((c) => c.fingerprint)).size, 1, 'every worker serves the same default certificate');
    // TLS sessions resume on either worker: the workers share the primary's session ticket keys (each its own
    // would make half of the resumptions full handshakes)
    const tlsOpts = {
      port: https,
      host: '127.0.0.1',
      servername: 'workers.test',
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    };
    for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
      const first = tlsConnect({ ...tlsOpts, maxVersion });
      first.on('error', () => {});
      const session = new Promise<Buffer>((resolve) => first.once('session', resolve));
      // (a TLS 1.3 ticket comes after the handshake: it is in by the time the response is)
      first.once('secureConnect', () => first.write('GET /w HTTP/1.1\r\nHost: workers.test\r\n\r\n'));
      const ticket = await session;
      first.destroy();
      const resumed = await Promise.all(
        Array.from(
          { length: 12 },
          () =>
            new Promise<{ reused: boolean; close: () => void }>((resolve, reject) => {
              const s = tlsConnect({ ...tlsOpts, maxVersion, session: ticket });
              s.on('error', reject);
              s.once('secureConnect', () => resolve({ reused: s.isSessionReused(), close: () => s.destroy() }));
            }),
        ),
      );
      const rSs = await run(['ss', '-Htnp', 'state', 'established', `( sport = :${https} )`]);
      const rPids = new Set([...rSs.stdout.matchAll(/pid=(\d+)/g)].map((m) => m[1]));
      for (const c of resumed) c.close();
      t.equal(rPids.size, 2, `${maxVersion}: connections on both workers (${[...rPids].join(', ')})`);
      t.same(
        resumed.map((r) => r.reused),
        Array(12).fill(true),
        `${maxVersion}: every one of 12 resumed the session, whichever worker took it`,
      );
    }

    const envs = environs(child.pid);
    t.equal(envs.length, 3, 'the primary and two workers');
    for (const e of envs) {
      t.notMatch(e.env, /PRIVATE KEY|KDP_INGRESS_CERT/, `no key material in the environment of pid ${e.pid}`);
      t.match(e.env, /PATH=/, `pid ${e.pid}: the environment was read`);
    }
    t.match(child.output(), /ingress worker died; forking a new one/);
  });
}
