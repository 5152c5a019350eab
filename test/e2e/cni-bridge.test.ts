// kdp-bridge + kdp-host-local + kdp-portmap for real, in a 2-node lab with 3 pods per node:
// pod-to-pod on one node and across nodes (host-gw routes from the node agent, source IP kept),
// masquerade to the underlay, hostPort from the underlay, CHECK catching a deleted address, DEL leaving
// no file, link or rule (also with the netns gone and without prevResult/runtimeConfig), spec error codes.
import t from 'tap';
import { readdirSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import type { Conflist } from '../../src/cnispec/runtime.ts';
import { freshPlugins, makeNode, waitFor } from '../../src/cni/testing/fixtures.ts';
import type { CniResult } from '../../src/cnispec/types.ts';
import { silentLogger } from '../../src/common/log.ts';
import { Controller } from '../../src/k8s/controller.ts';
import { FakeSource } from '../../src/k8s/testing/fake-source.ts';
import { HostGwAgent, IpRouteTable } from '../../src/node/agent.ts';
import { defaultExec } from '../../src/common/exec-adapter.ts';

const ECHO = fileURLToPath(new URL('../../src/lab/echo-server.ts', import.meta.url));

if (needsRoot(t)) {
  t.jobs = 2; // the two subtests use separate labs: run them side by side
  const bin = await freshPlugins();
  const data = mkdtempSync(join(tmpdir(), 'kdp-cni-data-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  t.teardown(() => rmSync(data, { recursive: true, force: true }));

  const conflist = (lab: Lab, i: number): Conflist => {
    const n = lab.nodes[i]!;
    return {
      cniVersion: '1.1.0',
      name: 'kdpnet',
      plugins: [
        {
          type: 'kdp-bridge',
          bridge: 'kdpbr0',
          isDefaultGateway: true,
          ipMasq: true,
          hairpinMode: true,
          clusterCIDRs: [lab.plan.clusterCidr4, lab.plan.clusterCidr6],
          ipam: {
            type: 'kdp-host-local',
            ranges: [[{ subnet: n.podCidr4 }], [{ subnet: n.podCidr6 }]],
            dataDir: join(data, n.name),
          },
        },
        { type: 'kdp-portmap', capabilities: { portMappings: true } },
      ],
    };
  };
  const addr = (r: CniResult, v6 = false) =>
    (r.ips ?? []).find((i) => i.address.includes(':') === v6)!.address.split('/')[0]!;
  const taggedRules = async (lab: Lab, ns: string) => {
    const r = await lab.exec(ns, ['nft', '-a', 'list', 'table', 'inet', 'kdp'], { allowFailure: true });
    return r.code === 0 ? (r.stdout.match(/comment "kdp-[mp]-/g) ?? []).length : 0;
  };
  const vethes = async (lab: Lab, ns: string) =>
    (await lab.exec(ns, ['ip', '-br', 'link'])).stdout.split('\n').filter((l) => /^kdp[0-9a-f]{8}@/.test(l));
  const ipFiles = (lab: Lab, i: number) => {
    try {
      return readdirSync(join(data, lab.nodes[i]!.name, 'kdpnet')).filter(
        (f) => f !== 'lock' && !f.startsWith('last_reserved_ip'),
      );
    } catch {
      return [];
    }
  };

  t.test('2 nodes x 3 pods: same-node and cross-node traffic, masquerade, hostPort, CHECK, DEL', async (t) => {
    const lab = await Lab.create({ nodes: 2 });
    t.teardown(() => lab.destroy());
    const drivers = lab.nodes.map((n) => new CniDriver({ path: [bin], nodeNs: n.ns }));
    const pods: { node: number; name: string; ns: string; cid: string; result: CniResult }[] = [];
    const hostPort = { portMappings: [{ hostPort: 30080, containerPort: 8080, protocol: 'tcp' }] };
    const sandboxes = await Promise.all(
      lab.nodes.flatMap((n, i) =>
        ['a', 'b', 'c'].map(async (x) => ({ node: i, name: x, ns: await lab.addNamespace(`${n.name}-pod-${x}`) })),
      ),
    );
    const nsOf = (node: number, name: string) => sandboxes.find((p) => p.node === node && p.name === name)!.ns;
    // the echo servers bind [::] in their pods before the pods have interfaces: they start while the ADDs run
    const servers = [
      lab.spawn(nsOf(1, 'a'), [process.execPath, ECHO, '--name', 'n2a', '--http', '8080']),
      lab.spawn(nsOf(0, 'b'), [process.execPath, ECHO, '--name', 'n1b', '--http', '8080']),
      lab.spawn(nsOf(1, 'c'), [process.execPath, ECHO, '--name', 'n2c', '--http', '8080']),
      lab.spawn(lab.underlay, [process.execPath, ECHO, '--name', 'outside', '--http', '18081']),
    ];
    // all six ADDs at once (concurrent ADDs on one node are what the IPAM lock is for)
    await Promise.all(
      sandboxes.map(async ({ node: i, name: x, ns }) => {
        const cid = `cid-${lab.nodes[i]!.name}-${x}`;
        const caps = i === 1 && x === 'c' ? hostPort : {};
        const result = await drivers[i]!.add(
          conflist(lab, i),
          { containerID: cid, ifname: 'eth0', netns: `/run/netns/${ns}` },
          caps,
        );
        pods.push({ node: i, name: x, ns, cid, result });
      }),
    );
    const pod = (node: number, name: string) => pods.find((p) => p.node === node && p.name === name)!;
    const v4 = pods.map((p) => addr(p.result));
    t.equal(new Set(v4).size, 6, 'six distinct pod IPv4 addresses');
    for (const p of pods) {
      t.ok(
        addr(p.result).startsWith(`198.19.${p.node + 1}.`),
        `${p.ns} got ${addr(p.result)} from its node's pod CIDR`,
      );
      t.ok(addr(p.result, true).startsWith(`fd00:198:19:${p.node + 1}::`), `and ${addr(p.result, true)} (dual-stack)`);
      t.equal(p.result.interfaces?.[2]?.sandbox, `/run/netns/${p.ns}`, 'result names the sandbox interface');
    }

    // host-gw routes from the node agent, fed Node objects
    const source = new FakeSource();
    lab.nodes.forEach((n) => source.put(makeNode(n.name, [n.podCidr4, n.podCidr6], [n.ip4, n.ip6])));
    const agents = lab.nodes.map(
      (n) => new HostGwAgent({ nodeName: n.name, table: new IpRouteTable(defaultExec, ['ip', 'netns', 'exec', n.ns]) }),
    );
    const controllers = agents.map((a) => new Controller(source, a, { log: silentLogger }));
    await source.start();
    await Promise.all(controllers.map((c) => c.settled()));
    t.teardown(() => Promise.all(controllers.map((c) => c.stop())));
    const routes1 = await lab.exec(lab.nodes[0]!.ns, ['ip', 'route', 'show', 'proto', '199']);
    t.match(routes1.stdout, `198.19.2.0/24 via ${lab.nodes[1]!.ip4}`, 'node-1 routes node-2 pods via node-2');

    await Promise.all(servers.map((s, i) => waitFor(`echo server ${i}`, () => s.output().includes('ready'), 120_000)));
    const curl = async (ns: string, url: string) => {
      const r = await lab.exec(ns, ['curl', '-sS', '--max-time', '5', '-g', url]);
      return JSON.parse(r.stdout) as { name: string; client: string };
    };
    const clientIp = (c: string) => c.replace(/^::ffff:/, '').replace(/:\d+$/, '');
    const a1 = addr(pod(0, 'a').result);
    const same = await curl(pod(0, 'a').ns, `http://${addr(pod(0, 'b').result)}:8080/`);
    t.same([same.name, clientIp(same.client)], ['n1b', a1], 'same node: pod a -> pod b, source is pod a');
    const cross = await curl(pod(0, 'a').ns, `http://${addr(pod(1, 'a').result)}:8080/`);
    t.same([cross.name, clientIp(cross.client)], ['n2a', a1], 'across nodes: no NAT, source is pod a');
    const cross6 = await curl(pod(0, 'a').ns, `http://[${addr(pod(1, 'a').result, true)}]:8080/`);
    t.same(
      [cross6.name, cross6.client.replace(/:\d+$/, '')],
      ['n2a', addr(pod(0, 'a').result, true)],
      'across nodes over IPv6, source kept',
    );
    const out = await curl(pod(0, 'c').ns, `http://${lab.plan.underlayHost4}:18081/`);
    t.equal(clientIp(out.client), lab.nodes[0]!.ip4, 'leaving the cluster CIDR: masqueraded to the node address');
    const hp = await curl(lab.underlay, `http://${lab.nodes[1]!.ip4}:30080/`);
    t.same(
      [hp.name, clientIp(hp.client)],
      ['n2c', lab.plan.underlayHost4],
      'hostPort 30080 on node-2 reaches pod c from the underlay',
    );
    const ping = await lab.exec(pod(1, 'b').ns, ['ping', '-c', '1', '-W', '2', addr(pod(0, 'c').result)]);
    t.match(ping.stdout, /1 received/, 'ICMP across nodes');

    // CHECK: healthy, then with an address deleted
    const d0 = drivers[0]!;
    const b = pod(0, 'b');
    const ok = await d0.check(
      conflist(lab, 0),
      { containerID: b.cid, ifname: 'eth0', netns: `/run/netns/${b.ns}` },
      b.result,
    );
    t.same(
      ok.map((r) => r.code),
      [0, 0],
      'CHECK passes on a healthy pod',
    );
    await lab.exec(b.ns, ['ip', 'addr', 'del', `${addr(b.result)}/24`, 'dev', 'eth0']);
    const bad = await d0.check(
      conflist(lab, 0),
      { containerID: b.cid, ifname: 'eth0', netns: `/run/netns/${b.ns}` },
      b.result,
    );
    t.not(bad[0]!.code, 0, 'CHECK fails after the address was deleted');
    t.match(bad[0]!.json, { code: 999, msg: /missing/ }, 'with the spec error JSON');

    t.ok((await taggedRules(lab, lab.nodes[1]!.ns)) >= 4, 'masquerade and hostPort rules exist on node-2');
    // DEL: pod c of node-1 after its netns is gone; pod c of node-2 (hostPort) without prevResult or runtimeConfig
    const c1 = pod(0, 'c');
    const c2 = pod(1, 'c');
    await lab.removeNamespace(c1.ns);
    const [delGone, delBare] = await Promise.all([
      d0.del(conflist(lab, 0), { containerID: c1.cid, ifname: 'eth0', netns: `/run/netns/${c1.ns}` }),
      drivers[1]!.del(conflist(lab, 1), { containerID: c2.cid, ifname: 'eth0', netns: `/run/netns/${c2.ns}` }),
    ]);
    t.same(
      delGone.map((r) => r.code),
      [0, 0],
      'DEL succeeds with the netns already gone',
    );
    t.same(
      delBare.map((r) => r.code),
      [0, 0],
      'DEL without prevResult or runtimeConfig',
    );
    const hpAfter = await lab.exec(
      lab.underlay,
      ['curl', '-sS', '--max-time', '2', `http://${lab.nodes[1]!.ip4}:30080/`],
      { allowFailure: true },
    );
    t.not(hpAfter.code, 0, 'the hostPort is gone after DEL');
    const rest = pods.filter((p) => p !== c1 && p !== c2);
    const delRest = await Promise.all(
      rest.map((p) =>
        drivers[p.node]!.del(
          conflist(lab, p.node),
          { containerID: p.cid, ifname: 'eth0', netns: `/run/netns/${p.ns}` },
          p.result,
        ),
      ),
    );
    rest.forEach((p, i) =>
      t.same(
        delRest[i]!.map((x) => x.code),
        [0, 0],
        `DEL ${p.ns}`,
      ),
    );
    const again = await d0.del(
      conflist(lab, 0),
      { containerID: pod(0, 'a').cid, ifname: 'eth0', netns: `/run/netns/${pod(0, 'a').ns}` },
      pod(0, 'a').result,
    );
    t.same(
      again.map((r) => r.code),
      [0, 0],
      'a second DEL succeeds',
    );
    for (const i of [0, 1]) {
      const ns = lab.nodes[i]!.ns;
      t.same(ipFiles(lab, i), [], `${lab.nodes[i]!.name}: no IP reservation file left`);
      t.same(await vethes(lab, ns), [], `${lab.nodes[i]!.name}: no veth left`);
      t.equal(await taggedRules(lab, ns), 0, `${lab.nodes[i]!.name}: no masquerade or hostPort rule left`);
    }
    for (const p of pods.filter((p) => p !== c1)) {
      const links = await lab.exec(p.ns, ['ip', '-br', 'link']);
      t.notMatch(links.stdout, /eth0/, `${p.ns}: eth0 removed`);
    }
  });

  t.test('spec error codes, failed ADD undoes itself, STATUS and VERSION', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const d = new CniDriver({ path: [bin], nodeNs: lab.nodes[0]!.ns });
    const base = {
      cniVersion: '1.1.0',
      name: 'errnet',
      type: 'kdp-bridge',
      bridge: 'kdperr0',
      isGateway: true,
      ipMasq: true,
      ipam: { type: 'kdp-host-local', subnet: '198.19.9.0/30', dataDir: join(data, 'err') },
    };
    const ns = await lab.addNamespace('err-pod-a');
    const ns2 = await lab.addNamespace('err-pod-b');
    const add = (conf: unknown, extra: { containerId?: string; netns?: string } = {}) =>
      d.invoke('kdp-bridge', {
        command: 'ADD',
        containerId: 'c1',
        ifname: 'eth0',
        netns: `/run/netns/${ns}`,
        ...extra,
        stdin: typeof conf === 'string' ? conf : JSON.stringify(conf),
      });
    const code = async (p: ReturnType<typeof add>) => ((await p).json as { code?: number } | undefined)?.code;

    // the refused ADDs touch nothing: all at once
    const [json, version, noId, noNs, slash31, vlan] = await Promise.all([
      code(add('{not json')),
      code(add({ ...base, cniVersion: '9.9.9' })),
      code(add(base, { containerId: '' })),
      code(add(base, { netns: '/run/netns/does-not-exist-kdp' })),
      code(add({ ...base, ipam: { ...base.ipam, subnet: '198.19.9.0/31' } })),
      code(add({ ...base, vlan: 100 })),
    ]);
    t.equal(json, 6, 'bad JSON: code 6');
    t.equal(version, 1, 'unsupported cniVersion: code 1');
    t.equal(noId, 4, 'missing CNI_CONTAINERID: code 4');
    t.equal(noNs, 3, 'missing netns: code 3');
    t.equal(slash31, 7, '/31 subnet: code 7');
    t.equal(vlan, 2, 'unsupported field vlan: code 2');
    const first = await add(base);
    t.equal(first.code, 0, 'the only address of a /30 is handed out');
    t.match(first.json, { ips: [{ address: '198.19.9.2/30', gateway: '198.19.9.1' }] });
    const exhausted = await add(base, { containerId: 'c2', netns: `/run/netns/${ns2}` });
    t.match(exhausted.json, { code: 100, msg: /no IP addresses available/ }, 'exhausted range: code 100');
    const links = (await lab.exec(lab.nodes[0]!.ns, ['ip', '-br', 'link'])).stdout;
    t.equal(
      links.split('\n').filter((l) => /^kdp[0-9a-f]{8}@/.test(l)).length,
      1,
      'the failed ADD left no veth behind',
    );
    t.notMatch((await lab.exec(ns2, ['ip', '-br', 'link'])).stdout, /eth0/, 'nor an interface in its pod');
    const dup = await add(base);
    t.not(dup.code, 0, 'ADD of an attachment that exists fails');
    t.equal(
      (await lab.exec(ns, ['ip', '-br', 'addr', 'show', 'eth0'])).code,
      0,
      'and leaves the existing attachment alone',
    );
    // STATUS, VERSION and the capabilities attachment (its own network and bridge) side by side
    const capNs = await lab.addNamespace('err-pod-cap');
    const capList: Conflist = {
      cniVersion: '1.1.0',
      name: 'capnet',
      plugins: [
        {
          type: 'kdp-bridge',
          bridge: 'kdpcap0',
          isGateway: true,
          capabilities: { ips: true, mac: true },
          ipam: { type: 'kdp-host-local', subnet: '198.19.8.0/24', dataDir: join(data, 'cap') },
        },
      ],
    };
    const [status, notReady, ver, capRes] = await Promise.all([
      d.invoke('kdp-bridge', { command: 'STATUS', stdin: JSON.stringify(base) }),
      d.invoke('kdp-bridge', {
        command: 'STATUS',
        stdin: JSON.stringify({ ...base, ipam: { ...base.ipam, dataDir: '/etc/hostname/kdp-no' } }),
      }),
      d.invoke('kdp-bridge', { command: 'VERSION', stdin: '{"cniVersion":"1.0.0"}' }),
      d.add(
        capList,
        { containerID: 'cap', ifname: 'eth0', netns: `/run/netns/${capNs}` },
        { ips: ['198.19.8.77/24'], mac: '0a:58:c6:13:08:4d' },
      ),
    ]);
    t.equal(status.code, 0, 'STATUS: ready');
    t.match(notReady.json, { code: 50 }, 'STATUS with an unwritable data dir: code 50');
    t.match(
      ver.json,
      { cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] },
      'VERSION',
    );
    // capabilities ips and mac through runtimeConfig
    t.equal(capRes.ips?.[0]?.address, '198.19.8.77/24', 'runtimeConfig.ips: the requested address');
    const capLink = (await lab.exec(capNs, ['ip', '-br', 'link', 'show', 'eth0'])).stdout;
    t.match(capLink, /0a:58:c6:13:08:4d/, 'runtimeConfig.mac: the requested MAC');
    t.same(
      (await d.del(capList, { containerID: 'cap', ifname: 'eth0', netns: `/run/netns/${capNs}` })).map((r) => r.code),
      [0],
    );
    const del = await d.invoke('kdp-bridge', {
      command: 'DEL',
      containerId: 'c1',
      ifname: 'eth0',
      netns: '',
      stdin: JSON.stringify(base),
    });
    t.equal(del.code, 0, 'DEL with an empty CNI_NETNS');
    t.same(
      readdirSync(join(data, 'err', 'errnet')).filter((f) => f !== 'lock' && !f.startsWith('last_')),
      [],
      'address released',
    );
  });
}
