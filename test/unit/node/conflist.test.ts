import t from 'tap';
import { mkdtempSync, readFileSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConflistWriter, renderConflist } from '../../../src/node/conflist.ts';
import { attemptTimes, harness } from '../../../src/k8s/testing/harness.ts';
import { testMeta } from '../../../src/model/testing/builders.ts';
import type { Node } from '../../../src/model/types.ts';

const node = (name: string, podCIDRs: string[]): Node => ({
  kind: 'Node',
  meta: testMeta('', name),
  podCIDRs,
  addresses: [{ type: 'InternalIP', address: '198.18.0.11' }],
  ready: true,
});

t.test('renderConflist: bridge with host-local over the subnets, then portmap', async (t) => {
  const c = JSON.parse(
    renderConflist({
      network: 'kdp',
      bridge: 'kdp0',
      subnets: ['10.244.1.0/24', 'fd00:10:244:1::/64'],
      clusterCidrs: ['10.244.0.0/16'],
      mtu: 1400,
    }),
  );
  t.match(c, {
    cniVersion: '1.0.0',
    name: 'kdp',
    plugins: [
      {
        type: 'kdp-bridge',
        bridge: 'kdp0',
        isDefaultGateway: true,
        ipMasq: true,
        hairpinMode: true,
        mtu: 1400,
        clusterCIDRs: ['10.244.0.0/16'],
        ipam: { type: 'kdp-host-local', ranges: [[{ subnet: '10.244.1.0/24' }], [{ subnet: 'fd00:10:244:1::/64' }]] },
      },
      { type: 'kdp-portmap', capabilities: { portMappings: true } },
    ],
  });
  t.throws(() => renderConflist({ network: 'kdp', bridge: 'kdp0', subnets: ['10.244.1.0/33'], clusterCidrs: [] }));
});

t.test(
  "ConflistWriter follows this node's podCIDRs after the initial sync, atomically and only on change",
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'kdp-conflist-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const h = harness();
    const w = new ConflistWriter({ nodeName: 'node-1', confDir: join(dir, 'net.d'), clusterCidrs: ['10.244.0.0/16'] });
    const c = h.controller(w);
    h.source.put(node('node-2', ['10.244.2.0/24']));
    h.source.put(node('node-1', []));
    await h.source.start();
    await h.clock.advance(1);
    t.notOk(existsSync(w.path), 'no podCIDR yet: nothing written');
    h.source.put(node('node-1', ['10.244.1.0/24']));
    await h.clock.advance(1);
    t.equal(w.writes, 1);
    t.same(JSON.parse(readFileSync(w.path, 'utf8')).plugins[0].ipam.ranges, [[{ subnet: '10.244.1.0/24' }]]);
    h.source.put(node('node-2', ['10.244.9.0/24']));
    h.source.put({ ...node('node-1', ['10.244.1.0/24']), ready: false });
    await h.clock.advance(1);
    t.equal(w.writes, 1, 'other nodes and unrelated changes rewrite nothing');
    h.source.put(node('node-1', ['10.244.7.0/24']));
    await h.clock.advance(1);
    t.equal(w.writes, 2);
    t.same(JSON.parse(readFileSync(w.path, 'utf8')).plugins[0].ipam.ranges, [[{ subnet: '10.244.7.0/24' }]]);
    t.same(readdirSync(join(dir, 'net.d')), ['10-kdp.conflist'], 'no temp file left');
    await c.stop();
  },
);

t.test('ConflistWriter: a write that fails (the directory cannot be made) is retried with backoff', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kdp-conflist-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // a file where the configuration directory must go: mkdir fails until it is removed
  const confDir = join(dir, 'net.d');
  writeFileSync(confDir, 'in the way');
  const h = harness();
  const w = new ConflistWriter({ nodeName: 'node-1', confDir, clusterCidrs: [] });
  let attempts = 0;
  const reconcile = w.reconcile.bind(w);
  w.reconcile = (view) => {
    attempts++;
    return reconcile(view);
  };
  const c = h.controller(w, { retryMinMs: 1000, retryMaxMs: 10_000 });
  h.source.put(node('node-1', ['10.244.1.0/24']));
  await h.source.start();
  const times = await attemptTimes(h, () => attempts, 3_500);
  t.same(
    times.slice(1).map((x, i) => Math.round((x - times[i]!) / 100) * 100),
    [1000, 2000],
    'retried after 1 s and 2 s',
  );
  t.equal(c.status().lastError?.includes('writing'), true, 'the status says why');
  rmSync(confDir);
  await h.clock.advance(5_000);
  t.equal(w.writes, 1, 'written once the way is clear');
  t.equal(c.status().failures, 0);
  await c.stop();
});
