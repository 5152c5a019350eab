// The CNI protocol skeleton with injected env/stdin/stdout and fake verbs: dispatch, env checks, the
// spec's error JSON and codes, version handling, result conversion for old versions.
import t from 'tap';
import { KdpError } from '../../../src/common/errors.ts';
import { parseCniArgs, runPlugin, versionAtLeast } from '../../../src/cnispec/skel.ts';
import type { PluginVerbs } from '../../../src/cnispec/skel.ts';
import type { CniRequest } from '../../../src/cnispec/types.ts';

function harness(verbs: Partial<PluginVerbs> = {}) {
  const calls: { verb: string; req: CniRequest }[] = [];
  let loaded = 0;
  const all: PluginVerbs = {
    add: async (req) => (calls.push({ verb: 'add', req }), { ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }] }),
    del: async (req) => void calls.push({ verb: 'del', req }),
    check: async (req) => void calls.push({ verb: 'check', req }),
    status: async (req) => void calls.push({ verb: 'status', req }),
    gc: async (req) => void calls.push({ verb: 'gc', req }),
    ...verbs,
  };
  const invoke = async (env: Record<string, string>, stdin: string) => {
    let out = '';
    const code = await runPlugin(async () => (loaded++, all), {
      env,
      readStdin: () => stdin,
      write: (s) => void (out += s),
    });
    return { code, out: out.trim() ? (JSON.parse(out) as Record<string, unknown>) : undefined };
  };
  return { calls, invoke, loaded: () => loaded };
}

const env = (command: string, extra: Record<string, string> = {}) => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: '/run/netns/x',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  ...extra,
});
const conf = (v = '1.1.0', extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: v, name: 'n', type: 'kdp-bridge', ...extra });

t.test('VERSION answers without loading the verbs', async (t) => {
  const h = harness();
  const r = await h.invoke({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
  t.same(r, {
    code: 0,
    out: { cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] },
  });
  t.equal(h.loaded(), 0);
});

t.test('ADD dispatches with parsed env and prints the result in the config version', async (t) => {
  const h = harness();
  const r = await h.invoke(env('ADD', { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web' }), conf());
  t.same(r, { code: 0, out: { cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }] } });
  t.same(h.calls[0]!.req.args, { IgnoreUnknown: '1', K8S_POD_NAME: 'web' });
  t.same(h.calls[0]!.req.path, ['/opt/cni/bin']);
  const old = await h.invoke(env('ADD'), conf('0.3.1'));
  t.match(old.out, { cniVersion: '0.3.1', ips: [{ version: '4' }] }, '0.3.x results carry ips[].version');
});

t.test('spec error codes', async (t) => {
  const h = harness({
    add: async () => {
      throw new KdpError('KDP_IPAM_EXHAUSTED', 'no IP addresses available in range set 0');
    },
    del: async () => {
      throw new Error('plain bug');
    },
  });
  const cases: [string, Record<string, string>, string, number][] = [
    ['bad JSON', env('ADD'), '{', 6],
    ['incompatible version', env('ADD'), conf('9.9.9'), 1],
    ['no cniVersion', env('ADD'), '{"name":"x"}', 7],
    ['missing container id', env('ADD', { CNI_CONTAINERID: '' }), conf(), 4],
    ['missing netns on ADD', env('ADD', { CNI_NETNS: '' }), conf(), 4],
    ['bad container id', env('ADD', { CNI_CONTAINERID: '-x' }), conf(), 4],
    ['bad ifname', env('ADD', { CNI_IFNAME: 'a/b' }), conf(), 4],
    ['unknown command', env('FROB'), conf(), 4],
    ['CHECK needs >= 0.4.0', env('CHECK'), conf('0.3.1'), 1],
    ['GC needs >= 1.1.0', env('GC'), conf('1.0.0'), 1],
    ['exhausted (plugin code)', env('ADD'), conf(), 100],
    ['any other failure', env('DEL'), conf(), 999],
  ];
  for (const [what, e, stdin, code] of cases) {
    const r = await h.invoke(e, stdin);
    t.equal(r.code, 1, `${what}: non-zero exit`);
    t.match(r.out, { code, msg: String }, `${what}: code ${code}`);
  }
  const missing = await h.invoke(env('ADD', { CNI_CONTAINERID: '', CNI_IFNAME: '' }), conf());
  t.match(
    missing.out,
    { msg: 'required env variables [CNI_CONTAINERID,CNI_IFNAME] missing' },
    'names the missing variables',
  );
  const del = await h.invoke(env('DEL', { CNI_NETNS: '' }), conf('1.0.0'));
  t.match(del.out, { code: 999 }, 'DEL without CNI_NETNS reaches the verb');
});

t.test('STATUS and GC need only CNI_COMMAND', async (t) => {
  const h = harness();
  t.equal((await h.invoke({ CNI_COMMAND: 'STATUS' }, conf())).code, 0);
  t.equal((await h.invoke({ CNI_COMMAND: 'GC' }, conf('1.1.0', { 'cni.dev/valid-attachments': [] }))).code, 0);
  t.same(
    h.calls.map((c) => c.verb),
    ['status', 'gc'],
  );
});

t.test('helpers', async (t) => {
  t.ok(versionAtLeast('1.1.0', '0.4.0'));
  t.notOk(versionAtLeast('0.3.1', '0.4.0'));
  t.ok(versionAtLeast('1.0.0', '1.0.0'));
  t.same(parseCniArgs('A=1;B=x=y;'), { A: '1', B: 'x=y' });
  t.throws(() => parseCniArgs('novalue'), { code: 'KDP_CNI_INVALID_ENV' });
});
