// The plugin files' preamble (cni-plugins/build.ts): VERSION answered by sh; with a `kdp cni serve` socket
// the Perl thin client forwards the call (200 -> exit 0, 500 -> exit 1, the body on stdout); any other
// status, or nothing listening, runs the verbs in Node itself. A fake server on a unix socket in a temp
// dir stands in for kdp cni serve; the local runs fail early on a bad config (no root needed).
import t from 'tap';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/common/exec-adapter.ts';
import { freshPlugins } from '../../../src/cni/testing/fixtures.ts';

const bin = await freshPlugins();
const dir = mkdtempSync(join(tmpdir(), 'kdp-preamble-'));
t.teardown(() => rmSync(bin, { recursive: true, force: true }));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let answer = { status: 200, body: '{"cniVersion":"1.1.0","ips":[]}\n' };
const seen: { url: string; headers: IncomingHttpHeaders; body: string }[] = [];
const sock = join(dir, 'serve.sock');
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    seen.push({ url: req.url ?? '', headers: req.headers, body });
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(answer.body);
  });
});
await new Promise<void>((r) => server.listen(sock, () => r()));
t.teardown(() => new Promise<void>((r) => server.close(() => r())));

const plugin = (command: string, input: string, socket = sock) =>
  run([join(bin, 'kdp-bridge')], {
    input,
    allowFailure: true,
    env: {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: 'c1',
      CNI_NETNS: '/run/netns/x',
      CNI_IFNAME: 'eth0',
      CNI_ARGS: 'A=1',
      CNI_PATH: '/opt/cni/bin',
      KDP_CNI_SOCKET: socket,
      KDP_CNI_COMPILE_CACHE: join(dir, 'cache'),
    },
  });

t.test('VERSION is answered by sh, without the server', async (t) => {
  const r = await plugin('VERSION', '');
  t.equal(r.code, 0);
  t.match(JSON.parse(r.stdout), { cniVersion: '1.1.0' });
  t.equal(seen.length, 0);
});

t.test('forwarded: 200 is exit 0 with the body, headers carry CNI_*', async (t) => {
  const r = await plugin('ADD', '{"cniVersion":"1.1.0","name":"n"}');
  t.equal(r.code, 0);
  t.equal(r.stdout, answer.body);
  const last = seen.at(-1)!;
  t.equal(last.url, '/kdp-bridge');
  t.equal(last.body, '{"cniVersion":"1.1.0","name":"n"}');
  t.match(last.headers, {
    'x-cni-command': 'ADD',
    'x-cni-containerid': 'c1',
    'x-cni-netns': '/run/netns/x',
    'x-cni-ifname': 'eth0',
    'x-cni-args': 'A=1',
    'x-cni-path': '/opt/cni/bin',
  });
});

t.test('forwarded: 500 is exit 1 with the error JSON', async (t) => {
  answer = { status: 500, body: '{"cniVersion":"1.1.0","code":999,"msg":"boom"}\n' };
  const r = await plugin('DEL', '{"cniVersion":"1.1.0","name":"n"}');
  t.equal(r.code, 1);
  t.equal(r.stdout, answer.body);
});

t.test('any other status: the verb did not run there, it runs in Node with the same config', async (t) => {
  answer = { status: 408, body: '' };
  const n = seen.length;
  const r = await plugin('ADD', '{not json');
  t.equal(seen.length, n + 1, 'the server was asked');
  t.equal(r.code, 1);
  t.match(JSON.parse(r.stdout), { code: 6 }, 'and Node decoded the same stdin (CNI code 6: not JSON)');
});

t.test('nothing listening (stale socket path): Node runs it', async (t) => {
  const n = seen.length;
  const r = await plugin('ADD', '{"cniVersion":"9.9.9","name":"n"}', join(dir, 'gone.sock'));
  t.equal(seen.length, n, 'nothing forwarded');
  t.match(JSON.parse(r.stdout), { code: 1 }, 'Node answered: incompatible version');
});
