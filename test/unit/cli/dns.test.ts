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
