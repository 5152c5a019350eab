// The walls of docs/ARCHITECTURE.md bite: the repository's own ESLint config (eslint.config.js, rule
// kdp/layers from lint/layers.js) run through ESLint's Node API on small in-memory files placed in the tree.
import t from 'tap';
import { ESLint } from 'eslint';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const eslint = new ESLint({ cwd: ROOT });

/** the kdp/layers messages for `code` as if it were the file `path` (repository-relative) */
async function walls(path: string, code: string): Promise<string[]> {
  const [res] = await eslint.lintText(code, { filePath: `${ROOT}/${path}` });
  return (res?.messages ?? []).filter((m) => m.ruleId === 'kdp/layers').map((m) => m.message);
}

t.test('an upward import fails lint', async (t) => {
  const m = await walls('src/ipam/zz-wall.ts', "import { bridgeVerbs } from '../cni/bridge.ts';\nbridgeVerbs();\n");
  t.equal(m.length, 1);
  t.match(m[0], /^upward import: ipam \(layer kernel\) must not import cni \(layer components\)/);
  // from the bottom layer, dynamic import() included
  const d = await walls('src/common/zz-wall.ts', "export const s = () => import('../k8s/store.ts');\n");
  t.match(d, [/^upward import: common/]);
  // a library importing the kernel layer (the old src/ipam -> src/cni/types import, turned around)
  t.match(await walls('src/cnispec/zz-wall.ts', "export * from '../ipam/config.ts';\n"), [/^upward import: cnispec/]);
});

t.test('siblings of one layer never import each other', async (t) => {
  // netlink leaning on ipam (the old src/netlink/nft.ts -> src/ipam/flock.ts)
  t.match(
    await walls('src/netlink/zz-wall.ts', "import type { Locker } from '../ipam/store.ts';\nexport type L = Locker;\n"),
    [/^sideways import: netlink and ipam/],
  );
  // components
  t.match(await walls('src/proxy/zz-wall.ts', "import { encode } from '../dns/wire.ts';\nencode();\n"), [
    /^sideways import: proxy and dns are both in layer components/,
  ]);
  t.match(
    await walls(
      'ingress/zz-wall.ts',
      "import { buildServicePorts } from '../src/proxy/model.ts';\nbuildServicePorts();\n",
    ),
    [/^sideways import: ingress and proxy/],
  );
  t.match(await walls('src/node/zz-wall.ts', "import { bridgeVerbs } from '../cni/bridge.ts';\nbridgeVerbs();\n"), [
    /^sideways import: node and cni/,
  ]);
  t.match(
    await walls('src/status/zz-wall.ts', "import { takeSnapshot } from '../up/snapshot.ts';\ntakeSnapshot();\n"),
    [/^sideways import: status and up/],
  );
});

t.test('production never imports a testing/ folder; tests and bench may', async (t) => {
  // the old src/up/lab-up.ts -> src/cni/testing/driver.ts
  t.match(
    await walls('src/up/zz-wall.ts', "import { freshPlugins } from '../cni/testing/fixtures.ts';\nfreshPlugins();\n"),
    [/^production code never imports a testing\/ folder/],
  );
  t.match(
    await walls('ingress/zz-wall.ts', "import { testMeta } from '../src/model/testing/builders.ts';\ntestMeta();\n"),
    [/testing\//],
  );
  t.same(
    await walls(
      'test/unit/zz-wall.test.ts',
      "import { freshPlugins } from '../../src/cni/testing/fixtures.ts';\nfreshPlugins();\n",
    ),
    [],
  );
  t.same(
    await walls(
      'bench/cni/zz-wall.ts',
      "import { freshPlugins } from '../../src/cni/testing/fixtures.ts';\nfreshPlugins();\n",
    ),
    [],
  );
  // a testing/ helper may build on another
  t.same(
    await walls(
      'src/cni/testing/zz-wall.ts',
      "import { FakeSource } from '../../k8s/testing/fake-source.ts';\nnew FakeSource();\n",
    ),
    [],
  );
});

t.test('kdp status reaches a component only through its status.ts', async (t) => {
  t.match(await walls('src/status/zz-wall.ts', "import { compile } from '../../ingress/compile.ts';\ncompile();\n"), [
    /^status reaches ingress only through its status.ts/,
  ]);
  t.match(
    await walls('src/status/zz-wall.ts', "import { chainNames } from '../proxy/nftables/render.ts';\nchainNames();\n"),
    [/^status reaches proxy only through its status.ts/],
  );
  t.same(await walls('src/status/zz-wall.ts', "import { status } from '../proxy/status.ts';\nstatus();\n"), []);
});

t.test('a folder of src/ outside every layer fails lint until it gets one', async (t) => {
  t.match(await walls('src/newthing/zz-wall.ts', 'export const x = 1;\n'), [
    /^src\/newthing\/zz-wall.ts is in no layer/,
  ]);
});

t.test('downward imports pass', async (t) => {
  const code = [
    "import { loadIpamConfig } from '../ipam/config.ts';",
    "import { NftRunner } from '../netlink/nft.ts';",
    "import type { CniRequest } from '../cnispec/types.ts';",
    "import { KdpError } from '../common/errors.ts';",
    "import { lockFile } from '../common/flock.ts';",
    "import { warm } from './warm.ts';",
    'export type R = CniRequest;',
    'export const all = [loadIpamConfig, NftRunner, KdpError, lockFile, warm];',
    '',
  ].join('\n');
  t.same(await walls('src/cni/zz-wall.ts', code), []);
  t.same(
    await walls(
      'src/cli/commands/zz-wall.ts',
      "import { LabUp } from '../../up/lab-up.ts';\nexport const u = LabUp;\n",
    ),
    [],
  );
  t.same(
    await walls(
      'src/up/zz-wall.ts',
      "import { buildPlugins } from '../../cni-plugins/build.ts';\nexport const b = buildPlugins;\n",
    ),
    [],
  );
});
