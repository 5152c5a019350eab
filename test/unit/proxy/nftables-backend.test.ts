// nftables backend against an in-memory kernel (FakeTable): the shared endpoint maps and the hairpin set
// stay right across partial syncs: slots are kept while a service lives and reused only after the
// transaction that freed them; a hairpin element shared by two services survives the removal of one.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { inputText } from '../../../src/common/exec-adapter.ts';
import type { Exec, ExecResult } from '../../../src/common/exec-adapter.ts';
import { silentLogger } from '../../../src/common/log.ts';
import { buildServicePorts } from '../../../src/proxy/model.ts';
import type { ServicePortInfo } from '../../../src/proxy/model.ts';
import { CountedLines, NftablesBackend } from '../../../src/proxy/nftables/backend.ts';
import type { EndpointSlice, IPFamily, Service } from '../../../src/model/types.ts';
import { FakeTable } from './fake-nft.ts';
import { makeService, makeSlice } from './fixtures.ts';

function fakeKernel(): { k: FakeTable; exec: Exec; scripts: string[][] } {
  const k = new FakeTable();
  const scripts: string[][] = [];
  const exec: Exec = {
    async run(argv, opts): Promise<ExecResult> {
      if (argv[0] === 'nft' && argv[1] === '-j')
        return { code: 0, stdout: k.listJson(argv[4] as 'chains' | 'sets' | 'maps'), stderr: '' };
      if (argv.join(' ') === 'nft -f -') {
        const lines = inputText(opts?.input)
          .split('\n')
          .filter((l) => l !== '');
        scripts.push(lines);
        k.apply(lines);
        return { code: 0, stdout: '', stderr: '' };
      }
      throw new Error(`unexpected command ${argv.join(' ')}`);
    },
  };
  return { k, exec, scripts };
}

type World = { services: Map<string, Service>; slices: Map<string, EndpointSlice> };

function ports(w: World): Map<IPFamily, ServicePortInfo[]> {
  const bySvc = new Map<string, EndpointSlice[]>();
  for (const s of w.slices.values()) bySvc.set(`${s.meta.namespace}/${s.serviceName}`, [s]);
  return new Map([['IPv4', buildServicePorts([...w.services.values()], bySvc, { nodeName: 'node1', family: 'IPv4' })]]);
}

t.test('partial syncs keep the shared maps and the hairpin set consistent', async (t) => {
  const { k, exec, scripts } = fakeKernel();
  const backend = new NftablesBackend({ exec, config: { clusterCIDRs: ['198.19.0.0/16'] }, log: silentLogger });
  const w: World = { services: new Map(), slices: new Map() };
  // an external IP gives a service a chain and a slot of its own; `a` is a plain ClusterIP service
  const put = (name: string, ip: string, eps: string[]) => {
    w.services.set(
      name,
      makeService(
        'ns',
        name,
        (s) => ((s.clusterIPs = [ip]), name === 'a' ? undefined : (s.externalIPs = [`203.0.113.${ip.split('.')[3]}`])),
      ),
    );
    w.slices.set(
      name,
      makeSlice(
        'ns',
        name,
        eps.map((e) => ({ ip: e, node: 'node1' })),
      ),
    );
  };
  const del = (name: string) => (w.services.delete(name), w.slices.delete(name));
  // the model objects of unchanged services must stay the same objects (as the proxier guarantees)
  let last = new Map<string, ServicePortInfo>();
  const models = () => {
    const m = ports(w);
    const list = m.get('IPv4')!.map((sp) => {
      const old = last.get(sp.id);
      return old && JSON.stringify(old) === JSON.stringify(sp) ? old : sp;
    });
    last = new Map(list.map((sp) => [sp.id, sp]));
    return new Map([['IPv4' as IPFamily, list]]);
  };
  // as the proxier calls it: the changed service keys and the model grouped by service
  let before = new Map<string, ServicePortInfo>();
  const partial = async () => {
    const m = models();
    const list = m.get('IPv4')!;
    const now = new Map(list.map((sp) => [sp.id, sp]));
    const changed = new Set<string>();
    for (const [id, sp] of now) if (before.get(id) !== sp) changed.add(`${sp.namespace}/${sp.name}`);
    for (const [id, sp] of before) if (!now.has(id)) changed.add(`${sp.namespace}/${sp.name}`);
    const grouped = new Map<string, ServicePortInfo[]>();
    for (const sp of list)
      grouped.set(`${sp.namespace}/${sp.name}`, [...(grouped.get(`${sp.namespace}/${sp.name}`) ?? []), sp]);
    before = now;
    await backend.sync(m, false, changed, new Map([['IPv4', grouped]]));
  };
  const fullSync = async () => {
    const m = models();
    before = new Map(m.get('IPv4')!.map((sp) => [sp.id, sp]));
    await backend.sync(m, true, new Set());
  };
  const lbOf = (name: string) => {
    const sp = last.get(`ns/${name}:p80`)!;
    return k.clusterIPBackends(sp.clusterIP, 'tcp', sp.port);
  };
  const hairpin = () => [...(k.setElements.get('hairpin-endpoints') ?? [])].sort();

  put('a', '10.96.0.1', ['198.19.1.1', '198.19.1.2']);
  put('b', '10.96.0.2', ['198.19.1.2', '198.19.1.3']); // shares 198.19.1.2 with a
  await fullSync();
  t.same(lbOf('a'), ['198.19.1.1 . 8080', '198.19.1.2 . 8080']);
  t.same(lbOf('b'), ['198.19.1.2 . 8080', '198.19.1.3 . 8080']);
  t.same(hairpin(), ['198.19.1.1 . 198.19.1.1', '198.19.1.2 . 198.19.1.2', '198.19.1.3 . 198.19.1.3']);

  del('a');
  await partial();
  t.same(hairpin(), ['198.19.1.2 . 198.19.1.2', '198.19.1.3 . 198.19.1.3'], 'the element b still needs survives');
  t.ok(scripts.at(-1)!.length < 10, `one-service removal is a small transaction (${scripts.at(-1)!.length} lines)`);

  // a service removed and another added in the same sync: the freed slot is not reused yet
  put('c', '10.96.0.3', ['198.19.1.7']);
  del('b');
  put('d', '10.96.0.4', ['198.19.1.8', '198.19.1.9']);
  await partial();
  t.same(lbOf('c'), ['198.19.1.7 . 8080']);
  t.same(lbOf('d'), ['198.19.1.8 . 8080', '198.19.1.9 . 8080']);
  t.same(hairpin(), ['198.19.1.7 . 198.19.1.7', '198.19.1.8 . 198.19.1.8', '198.19.1.9 . 198.19.1.9']);

  // endpoints of one service replaced, same count: only elements change, no chain is touched
  put('c', '10.96.0.3', ['198.19.1.70']);
  await partial();
  t.same(lbOf('c'), ['198.19.1.70 . 8080']);
  t.notOk(
    scripts.at(-1)!.some((l) => / chain /.test(l)),
    'no chain flushed',
    { found: scripts.at(-1) },
  );
  t.same(hairpin(), ['198.19.1.70 . 198.19.1.70', '198.19.1.8 . 198.19.1.8', '198.19.1.9 . 198.19.1.9']);

  // freed slots are reused by later services; every chain still balances over its own endpoints
  put('e', '10.96.0.5', ['198.19.1.20', '198.19.1.21', '198.19.1.22']);
  await partial();
  t.same(lbOf('e'), ['198.19.1.20 . 8080', '198.19.1.21 . 8080', '198.19.1.22 . 8080']);
  t.same(lbOf('d'), ['198.19.1.8 . 8080', '198.19.1.9 . 8080']);
  const used = [...k.maps]
    .filter(([n]) => /^(cluster-)?endpoints-/.test(n))
    .reduce((n, [, m]) => n + m.elements.size, 0);
  t.equal(used, 6, 'no stale endpoint element left in the maps');

  // a full resync over the existing table gives the same answers
  await fullSync();
  t.same(lbOf('c'), ['198.19.1.70 . 8080']);
  t.same(lbOf('e'), ['198.19.1.20 . 8080', '198.19.1.21 . 8080', '198.19.1.22 . 8080']);
  t.same(hairpin(), [
    '198.19.1.20 . 198.19.1.20',
    '198.19.1.21 . 198.19.1.21',
    '198.19.1.22 . 198.19.1.22',
    '198.19.1.70 . 198.19.1.70',
    '198.19.1.8 . 198.19.1.8',
    '198.19.1.9 . 198.19.1.9',
  ]);
});

t.test('a partial sync reads only the changed services (byService), never the flat model', async (t) => {
  const { k, exec } = fakeKernel();
  const backend = new NftablesBackend({ exec, config: { clusterCIDRs: ['198.19.0.0/16'] }, log: silentLogger });
  const w: World = { services: new Map(), slices: new Map() };
  for (const [name, ip] of [
    ['a', '10.96.0.1'],
    ['b', '10.96.0.2'],
  ] as const) {
    w.services.set(
      name,
      makeService('ns', name, (s) => (s.clusterIPs = [ip])),
    );
    w.slices.set(name, makeSlice('ns', name, [{ ip: `198.19.1.${ip.split('.')[3]}`, node: 'node1' }]));
  }
  const first = ports(w);
  await backend.sync(first, true, new Set());
  const old = new Map(first.get('IPv4')!.map((sp) => [sp.name, sp]));
  w.slices.set('b', makeSlice('ns', 'b', [{ ip: '198.19.1.20', node: 'node1' }]));
  const next = ports(w)
    .get('IPv4')!
    .map((sp) => (sp.name === 'a' ? old.get('a')! : sp));
  // a model that may only be asked which families it has (the proxier flattens it on first read: O(services))
  class KeysOnly extends Map<IPFamily, readonly ServicePortInfo[]> {
    override get(): never {
      throw new Error('the flat model was read');
    }
    override entries(): never {
      throw new Error('the flat model was read');
    }
    override values(): never {
      throw new Error('the flat model was read');
    }
    override [Symbol.iterator](): never {
      throw new Error('the flat model was read');
    }
  }
  const models = new KeysOnly();
  Map.prototype.set.call(models, 'IPv4', next);
  const grouped = new Map([
    ['ns/a', [old.get('a')!]],
    ['ns/b', next.filter((sp) => sp.name === 'b')],
  ]);
  await backend.sync(models, false, new Set(['ns/b']), new Map([['IPv4', grouped]]));
  t.same(k.clusterIPBackends('10.96.0.2', 'tcp', 80), ['198.19.1.20 . 8080']);
  t.same(k.clusterIPBackends('10.96.0.1', 'tcp', 80), ['198.19.1.1 . 8080']);
});

t.test('a full sync given the model grouped by service (byService) never reads the flat model', async (t) => {
  const { k, exec } = fakeKernel();
  const backend = new NftablesBackend({ exec, config: { clusterCIDRs: ['198.19.0.0/16'] }, log: silentLogger });
  const w: World = { services: new Map(), slices: new Map() };
  for (const [name, ip, ep] of [
    ['a', '10.96.0.1', '198.19.1.1'],
    ['b', '10.96.0.2', '198.19.1.2'],
  ] as const) {
    w.services.set(
      name,
      makeService('ns', name, (s) => (s.clusterIPs = [ip])),
    );
    w.slices.set(name, makeSlice('ns', name, [{ ip: ep, node: 'node1' }]));
  }
  const flat = ports(w).get('IPv4')!;
  const models = new Map<IPFamily, readonly ServicePortInfo[]>();
  Map.prototype.set.call(models, 'IPv4', flat);
  models.get = () => {
    throw new Error('the flat model was read');
  };
  const grouped = new Map([
    ['ns/a', flat.filter((sp) => sp.name === 'a')],
    ['ns/b', flat.filter((sp) => sp.name === 'b')],
    ['ns/gone', []],
  ]);
  await backend.sync(models, true, new Set(), new Map([['IPv4', grouped]]));
  t.same(k.clusterIPBackends('10.96.0.1', 'tcp', 80), ['198.19.1.1 . 8080']);
  t.same(k.clusterIPBackends('10.96.0.2', 'tcp', 80), ['198.19.1.2 . 8080']);
});

t.test("nft -f - runs with glibc's malloc on transparent huge pages; an operator's GLIBC_TUNABLES win", async (t) => {
  const w: World = { services: new Map(), slices: new Map() };
  w.services.set(
    'a',
    makeService('ns', 'a', (s) => (s.clusterIPs = ['10.96.0.1'])),
  );
  w.slices.set('a', makeSlice('ns', 'a', [{ ip: '198.19.1.1', node: 'node1' }]));
  const envs: (string | undefined)[] = [];
  const { exec: kernel } = fakeKernel();
  const exec: Exec = {
    run(argv, opts) {
      if (argv.join(' ') === 'nft -f -') envs.push(opts?.env?.GLIBC_TUNABLES);
      return kernel.run(argv, opts);
    },
  };
  const backend = new NftablesBackend({ exec, config: { clusterCIDRs: ['198.19.0.0/16'] }, log: silentLogger });
  const saved = process.env.GLIBC_TUNABLES;
  t.teardown(() => {
    if (saved === undefined) delete process.env.GLIBC_TUNABLES;
    else process.env.GLIBC_TUNABLES = saved;
  });
  delete process.env.GLIBC_TUNABLES;
  await backend.sync(ports(w), true);
  process.env.GLIBC_TUNABLES = 'glibc.malloc.hugetlb=0';
  await backend.sync(ports(w), true);
  t.same(envs, ['glibc.malloc.hugetlb=1', 'glibc.malloc.hugetlb=1:glibc.malloc.hugetlb=0']);
});

t.test("a full sync lists the kernel's objects while it renders (the nft children start first)", async (t) => {
  const order: string[] = [];
  const { exec: kernel } = fakeKernel();
  const exec: Exec = {
    run(argv, opts) {
      if (argv[1] === '-j') order.push(`list ${argv[4]}`);
      return kernel.run(argv, opts);
    },
  };
  const w: World = { services: new Map(), slices: new Map() };
  w.services.set(
    'a',
    makeService('ns', 'a', (s) => (s.clusterIPs = ['10.96.0.1'])),
  );
  w.slices.set('a', makeSlice('ns', 'a', [{ ip: '198.19.1.1', node: 'node1' }]));
  const flat = ports(w).get('IPv4')!;
  class Watched extends Map<string, readonly ServicePortInfo[]> {
    override [Symbol.iterator](): MapIterator<[string, readonly ServicePortInfo[]]> {
      order.push('render');
      return super[Symbol.iterator]();
    }
  }
  const grouped = new Watched([['ns/a', flat]]);
  const backend = new NftablesBackend({ exec, config: { clusterCIDRs: ['198.19.0.0/16'] }, log: silentLogger });
  await backend.sync(new Map([['IPv4', flat]]), true, new Set(), new Map([['IPv4', grouped]]));
  t.same(order, ['list chains', 'list sets', 'list maps', 'render']);
});

t.test('the lines of a transaction let go of their parts once read (the exec may keep its options)', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let table: WeakRef<object> | undefined;
  const make = () => {
    const state = { big: new Array(1000).fill('x') };
    table = new WeakRef(state);
    // like fullScriptLines(state, ...): a generator whose argument is the rendered table
    const lines = function* (s: { big: string[] }) {
      yield `add table ip kdp ${s.big.length}`;
    };
    return new CountedLines([['flush table ip kdp'], lines(state)]);
  };
  const counted = make();
  const kept = { input: counted.text() }; // what an exec could hold on to after the run
  t.same([...kept.input], ['flush table ip kdp\n', 'add table ip kdp 1000\n']);
  t.equal(counted.count, 2);
  await new Promise((r) => setImmediate(r));
  gc();
  t.equal(table!.deref(), undefined, 'the table is garbage once its lines were read');
});
