import t from 'tap';
import { COMMANDS, VERSION, helpText, main, splitArgv } from '../../../src/cli/main.ts';

const capture = () => {
  let s = '';
  return { out: (x: string) => void (s += x), text: () => s };
};

t.test('splitArgv separates global options, command and its argv', async (t) => {
  t.same(splitArgv(['--log-level', 'debug', 'lab', 'up', '--nodes', '3']), {
    globals: ['--log-level', 'debug'],
    command: 'lab',
    rest: ['up', '--nodes', '3'],
  });
  t.same(splitArgv(['-V']), { globals: ['-V'], rest: [] });
  t.same(splitArgv([]), { globals: [], rest: [] });
});

t.test('--version and --help', async (t) => {
  const c = capture();
  t.equal(await main(['--version'], c.out), 0);
  t.equal(c.text(), `kdp ${VERSION} (node ${process.version})\n`);
  const h = capture();
  t.equal(await main(['--help'], h.out), 0);
  t.equal(h.text(), helpText());
  for (const cmd of COMMANDS) t.match(h.text(), cmd.name);
  const ch = capture();
  t.equal(await main(['lab', '--help'], ch.out), 0);
  t.match(ch.text(), /kdp lab up/);
});

t.test('usage errors exit 2', async (t) => {
  const c = capture();
  t.equal(await main(['no-such-command'], c.out), 2);
  t.equal(await main(['--bogus'], c.out), 2);
  t.equal(await main(['--log-level', 'loud', 'lab', 'list'], c.out), 2);
  t.equal(await main(['--log-level', 'silent', 'lab', 'frobnicate'], c.out), 2);
  t.equal(await main(['--log-level', 'silent', 'lab', 'up', '--nodes'], c.out), 2);
  t.equal(await main(['--log-level', 'silent', 'lab', 'up', '--subnets', '3'], c.out), 2);
  t.equal(await main(['--log-level', 'silent', 'up', '--subnets', '0'], c.out), 2);
  t.equal(await main(['--log-level', 'silent', 'up', '--backend', 'flannel'], c.out), 2);
  t.equal(c.text(), '', 'nothing on stdout for a usage error');
});

t.test('kdp up --subnets 2 --backend host-gw refuses before building anything', async (t) => {
  const { spawnChild } = await import('../../../src/common/exec-adapter.ts');
  const bin = new URL('../../../bin/kdp', import.meta.url).pathname;
  const child = spawnChild([bin, '--log-format', 'json', 'up', '--subnets', '2', '--backend', 'host-gw']);
  t.equal(await child.exited, 2, 'a usage error (KDP_USAGE exits 2)');
  t.match(child.output(), /host-gw cannot work.*use --backend vxlan or auto/);
  t.notMatch(child.output(), /lab ready/, 'no lab was built');
});

t.test('node-agent: bad overlay flags are usage errors, before anything is built', async (t) => {
  const c = capture();
  const agent = (...a: string[]) => main(['--log-level', 'silent', 'node-agent', '--node', 'n1', ...a], c.out);
  t.equal(await agent('--backend', 'geneve'), 2);
  t.equal(await agent('--backend', 'vxlan', '--vni', '0'), 2);
  t.equal(await agent('--backend', 'vxlan', '--vni', '16777216'), 2);
  t.equal(await agent('--backend', 'vxlan', '--vxlan-port', '70000'), 2);
  t.equal(await agent('--backend', 'auto', '--metrics-bind-address', 'nope'), 2);
  // the conflist would masquerade pod-to-pod traffic across nodes: refused
  t.equal(await agent('--backend', 'vxlan', '--cni-conf-dir', '/nonexistent'), 2);
});

t.test('the runtime is the pinned Node 24', async (t) => {
  t.equal(process.versions.node.split('.')[0], '24');
});

t.test('every command entry loads a command of the same name and summary', async (t) => {
  for (const e of COMMANDS) {
    const c = await e.load();
    t.equal(c.name, e.name);
    t.equal(c.summary, e.summary, `${e.name}: the table's summary is the command's`);
  }
});

t.test('an old --ttl spelling still works, with a deprecation warning on stderr', async (t) => {
  const { spawnChild } = await import('../../../src/common/exec-adapter.ts');
  const bin = new URL('../../../bin/kdp', import.meta.url).pathname;
  // a bad value: the warning is logged, then --exit-after's parser rejects it before anything is built
  const child = spawnChild([bin, '--log-format', 'json', 'lab', 'up', '--ttl', 'soon']);
  t.equal(await child.exited, 2);
  const out = child.output();
  t.match(out, /"flag":"--ttl","use":"--exit-after"/, 'structured deprecation warning');
  t.match(out, /--exit-after: bad duration "soon"/, 'the value went to --exit-after');
});
