// `kdp dns` start-up: a cluster source that can never work (a manifests directory that is not there, a
// kubeconfig that does not exist) stops the command with that error instead of leaving a server running
// that never becomes ready. Loopback only, port 0, no health/ready/metrics listeners.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dnsCommand } from '../../../src/cli/commands/dns.ts';
import { silentLogger } from '../../../src/common/log.ts';

const QUIET = ['--listen', '127.0.0.1', '--port', '0', '--health', '', '--ready', '', '--metrics', ''];

/** runs `kdp dns argv`, giving up after `ms` (a command that never returns is the bug) */
async function runDns(argv: string[], ms = 8000): Promise<{ out: string; result: unknown }> {
  let out = '';
  const ran = dnsCommand.run([...argv, '--ttl-run', String(ms / 1000 + 5)], {
    log: silentLogger,
    out: (s) => void (out += s),
  });
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    ran.then(
      (code) => ({ code }),
      (err: unknown) => err,
    ),
    new Promise((r) => (timer = setTimeout(() => r('still running'), ms))),
  ]);
  clearTimeout(timer);
  return { out, result };
}

t.test('--manifests DIR that does not exist: a clear error at start, nothing listening', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kdp-dns-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'no-such-dir');
  const r = await runDns(['--manifests', missing, ...QUIET]);
  t.match(r.result, { code: 'KDP_K8S_MANIFEST', message: new RegExp(`--manifests ${missing}: .*ENOENT`) });
  t.equal(r.out, '', 'never said ready');
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  t.match((await runDns(['--manifests', file, ...QUIET])).result, {
    code: 'KDP_K8S_MANIFEST',
    message: /not a directory/,
  });
});

t.test('a kubeconfig that cannot be loaded stops kdp dns with the error (no silent never-ready server)', async (t) => {
  // loading the Kubernetes client library takes seconds on a loaded machine: a generous bound
  const r = await runDns(['--kubeconfig', '/nonexistent/kdp-test-kubeconfig', ...QUIET], 60_000);
  t.match(r.result, { code: 'KDP_K8S_CONFIG' });
});

t.test('a readable manifests directory: kdp dns runs until told to stop', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kdp-dns-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = await runDns(['--manifests', dir, ...QUIET], 1500);
  t.equal(r.result, 'still running');
  t.match(r.out, /kdp dns ready: dns \d+/);
});

t.test(
  'reload: a rewritten Corefile with odd whitespace applies, a broken one keeps the old configuration',
  async (t) => {
    const { createSocket } = await import('node:dgram');
    const { TYPE, decode, encodeQuery } = await import('../../../src/dns/wire.ts');
    const dir = mkdtempSync(join(tmpdir(), 'kdp-dns-cli-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const manifests = join(dir, 'manifests');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(manifests);
    const corefile = join(dir, 'Corefile');
    const text = (ttl: number) => `.:53 {\n  kubernetes cluster.local {\n    ttl ${ttl}\n  }\n  reload 100ms 0\n}\n`;
    writeFileSync(corefile, text(30));
    const logged: string[] = [];
    const log = {
      ...silentLogger,
      error: (_o: unknown, msg?: string) => void logged.push(msg ?? ''),
      child: () => log,
    };
    let out = '';
    const ran = dnsCommand.run(['--corefile', corefile, '--manifests', manifests, ...QUIET, '--ttl-run', '60'], {
      log,
      out: (s) => void (out += s),
    });
    t.teardown(async () => {
      process.emit('SIGTERM');
      await ran.catch(() => {});
    });
    // deadlines, not counts: the suite runs on 2 loaded cores
    for (const end = Date.now() + 30_000; Date.now() < end && !/dns \d+/.test(out);)
      await new Promise((r) => setTimeout(r, 50));
    const port = Number(/kdp dns ready: dns (\d+)/.exec(out)?.[1]);
    t.ok(port > 0, `listening on ${port}`);
    /** the TTL of dns-version.cluster.local TXT, or 'no answer' within 1 s */
    const ttl = async (): Promise<number | string> => {
      const sock = createSocket('udp4');
      try {
        return await new Promise<number | string>((resolve) => {
          const timer = setTimeout(() => resolve('no answer'), 1000);
          sock.on('message', (m) => {
            clearTimeout(timer);
            resolve(decode(m).answers[0]?.ttl ?? 'empty');
          });
          sock.send(encodeQuery({ id: 7, name: 'dns-version.cluster.local', type: TYPE.TXT }), port, '127.0.0.1');
        });
      } finally {
        sock.close();
      }
    };
    /** asks until the TTL is `want` (the reload interval is 100 ms) */
    const until = async (want: number): Promise<number | string> => {
      let got: number | string = 'none';
      for (const end = Date.now() + 20_000; Date.now() < end && got !== want;) {
        got = await ttl();
        if (got !== want) await new Promise((r) => setTimeout(r, 100));
      }
      return got;
    };
    t.equal(await until(28800), 28800, 'dns-version TXT answers once the cluster state is synced (its TTL is fixed)');
    // the kubernetes ttl shows in the SOA of a negative answer: ask NXDOMAIN names instead
    const soaTtl = async (): Promise<number | string> => {
      const sock = createSocket('udp4');
      try {
        return await new Promise<number | string>((resolve) => {
          const timer = setTimeout(() => resolve('no answer'), 1000);
          sock.on('message', (m) => {
            clearTimeout(timer);
            const soa = decode(m).authority[0];
            resolve(soa?.type === 'SOA' ? soa.data.minimum : 'no SOA');
          });
          sock.send(encodeQuery({ id: 8, name: 'nosuch.default.svc.cluster.local', type: TYPE.A }), port, '127.0.0.1');
        });
      } finally {
        sock.close();
      }
    };
    const soaUntil = async (want: number): Promise<number | string> => {
      let got: number | string = 'none';
      for (const end = Date.now() + 20_000; Date.now() < end && got !== want;) {
        got = await soaTtl();
        if (got !== want) await new Promise((r) => setTimeout(r, 100));
      }
      return got;
    };
    t.equal(await soaUntil(30), 30, 'ttl 30 before');
    // a byte order mark, no-break spaces, a vertical tab and a form feed: CoreDNS reads this, so do we
    writeFileSync(
      corefile,
      '\uFEFF' + text(7).replace('  kubernetes', '\u00a0\u00a0kubernetes').replace('\n  reload', '\v\f\n  reload'),
    );
    t.equal(await soaUntil(7), 7, 'odd whitespace: the new Corefile applies');
    // an unclosed {$ and a byte order mark inside a word: refused, the running configuration answers on
    for (const bad of [text(9).replace('ttl 9', 'ttl {$TTL'), text(9).replace('  reload', '  \uFEFFreload')]) {
      const before = logged.length;
      writeFileSync(corefile, bad);
      for (const end = Date.now() + 20_000; Date.now() < end && logged.length === before;)
        await new Promise((r) => setTimeout(r, 50));
      t.match(
        logged.slice(before),
        [/does not parse; keeping the running configuration/],
        'the bad Corefile is logged',
      );
      t.equal(await soaTtl(), 7, 'and the old configuration answers');
    }
    t.equal(await until(28800), 28800, 'still answering');
  },
);

t.test('--workers takes 1..64; a Corefile block on port 0 needs --port with workers', async (t) => {
  for (const n of ['0', '65', '1.5', 'two'])
    t.match((await runDns(['--workers', n, '--manifests', tmpdir()])).result, {
      code: 'KDP_USAGE',
      message: /--workers takes 1\.\.64/,
    });
  const dir = mkdtempSync(join(tmpdir(), 'kdp-dns-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'Corefile'), '.:0 {\n  errors\n}\n');
  const r = await runDns(['--workers', '2', '--corefile', join(dir, 'Corefile'), '--manifests', dir]);
  t.match(r.result, { code: 'KDP_USAGE', message: /--workers needs fixed DNS ports/ });
  t.equal(r.out, '', 'no worker started');
});
