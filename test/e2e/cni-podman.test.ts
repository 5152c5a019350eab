// A real runtime: podman (Debian, CNI backend) runs containers attached to a kdp network. podman itself
// runs inside a lab node's network namespace (nsenter --net; `ip netns exec` would remount /sys and hide
// the cgroups), with its own root/runroot/tmpdir and a containers.conf pointing at our plugins, so the
// bridge, veths and rules it makes land in the lab node. The root network namespace is compared before
// and after. Rootfs: a directory with busybox-static, no registry.
import t from 'tap';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, listNamespaces } from '../../src/lab/lab.ts';
import { needsRoot } from '../helpers/gate.ts';
import { diffSnapshots, snapshotRootNs } from '../helpers/root-ns.ts';
import { run } from '../../src/common/exec-adapter.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import type { Conflist } from '../../src/cnispec/runtime.ts';
import { freshPlugins, makeNode } from '../../src/cni/testing/fixtures.ts';
import { silentLogger } from '../../src/common/log.ts';
import { Controller } from '../../src/k8s/controller.ts';
import { FakeSource } from '../../src/k8s/testing/fake-source.ts';
import { HostGwAgent, IpRouteTable } from '../../src/node/agent.ts';
import { defaultExec } from '../../src/common/exec-adapter.ts';

const SETUP = fileURLToPath(new URL('../../scripts/setup-system.sh', import.meta.url));

function rootfs(dir: string): string {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  for (const d of ['www', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync('/bin/busybox', join(dir, 'bin', 'busybox'));
  for (const a of ['sh', 'ip', 'ping', 'httpd', 'nc', 'cat', 'echo', 'sleep', 'printf'])
    symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(join(dir, 'www', 'index.html'), 'hello from podman\n');
  return dir;
}

if (needsRoot(t)) {
  await run(['bash', SETUP, 'runtime'], { timeoutMs: 600_000 });
  const bin = await freshPlugins();
  const work = mkdtempSync(join(tmpdir(), 'kdp-podman-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));

  t.test('podman runs containers on a kdp network inside a lab node', async (t) => {
    const before = await snapshotRootNs();
    const nsBefore = new Set(await listNamespaces());
    const lab = await Lab.create({ nodes: 2 });
    t.teardown(() => lab.destroy());
    const [n1, n2] = lab.nodes as [(typeof lab.nodes)[0], (typeof lab.nodes)[0]];
    const data = join(work, 'data');
    const netDir = join(work, 'net');
    mkdirSync(netDir, { recursive: true });
    const conflist: Conflist = {
      cniVersion: '1.0.0',
      name: 'kdppod',
      plugins: [
        {
          type: 'kdp-bridge',
          bridge: 'kdppm0',
          isDefaultGateway: true,
          ipMasq: true,
          clusterCIDRs: [lab.plan.clusterCidr4],
          ipam: { type: 'kdp-host-local', ranges: [[{ subnet: n1.podCidr4 }]], dataDir: data },
        },
        { type: 'kdp-portmap', capabilities: { portMappings: true } },
      ],
    };
    writeFileSync(join(netDir, 'kdppod.conflist'), JSON.stringify(conflist));
    writeFileSync(
      join(work, 'containers.conf'),
      `[network]\nnetwork_backend="cni"\ncni_plugin_dirs=["${bin}"]\nnetwork_config_dir="${netDir}"\n[engine]\ncgroup_manager="cgroupfs"\nevents_logger="file"\nruntime="runc"\n`,
    );
    const podman = (args: readonly string[], allowFailure = false) =>
      run(
        [
          'nsenter',
          `--net=/run/netns/${n1.ns}`,
          'env',
          `CONTAINERS_CONF=${join(work, 'containers.conf')}`,
          'podman',
          '--root',
          join(work, 'root'),
          '--runroot',
          join(work, 'runroot'),
          '--tmpdir',
          join(work, 'tmp'),
          '--storage-driver',
          'vfs',
          ...args,
        ],
        { allowFailure, timeoutMs: 120_000 },
      );
    t.teardown(async () => {
      await podman(['rm', '-af', '-t', '0'], true);
      rmSync(work, { recursive: true, force: true });
    });
    const limits = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

    // a pod on node-2 (plugged in by the CNI driver) and host-gw routes between the nodes
    const d2 = new CniDriver({ path: [bin], nodeNs: n2.ns });
    const remoteNs = await lab.addNamespace('node-2-pod-r');
    const remote = await d2.add(
      {
        ...conflist,
        plugins: [
          {
            ...conflist.plugins[0]!,
            ipam: { type: 'kdp-host-local', ranges: [[{ subnet: n2.podCidr4 }]], dataDir: join(work, 'data2') },
          },
        ],
      },
      { containerID: 'remote', ifname: 'eth0', netns: `/run/netns/${remoteNs}` },
    );
    const remoteIp = remote.ips![0]!.address.split('/')[0]!;
    const source = new FakeSource();
    for (const n of lab.nodes) source.put(makeNode(n.name, [n.podCidr4], [n.ip4]));
    const agents = lab.nodes.map(
      (n) => new HostGwAgent({ nodeName: n.name, table: new IpRouteTable(defaultExec, ['ip', 'netns', 'exec', n.ns]) }),
    );
    const controllers = agents.map((a) => new Controller(source, a, { log: silentLogger }));
    await source.start();
    await Promise.all(controllers.map((c) => c.settled()));

    const nets = await podman(['network', 'ls', '--format', '{{.Name}}']);
    t.match(nets.stdout, /kdppod/, 'podman lists the kdp network');
    await podman([
      'run',
      '-d',
      '--name',
      'web',
      '--network',
      'kdppod',
      '-p',
      '18080:80',
      ...limits,
      '--rootfs',
      rootfs(join(work, 'rootfs-web')),
      '/bin/httpd',
      '-f',
      '-p',
      '80',
      '-h',
      '/www',
    ]);
    const webIp = (
      await podman(['inspect', 'web', '--format', '{{(index .NetworkSettings.Networks "kdppod").IPAddress}}'])
    ).stdout.trim();
    const webId = (await podman(['inspect', 'web', '--format', '{{.Id}}'])).stdout.trim();
    t.ok(webIp.startsWith('198.19.1.'), `the container got ${webIp} from our IPAM`);
    t.equal(readFileSync(join(data, 'kdppod', webIp), 'utf8'), `${webId}\r\neth0`, 'reserved under its container id');

    const script = [
      'ip -4 -o addr show eth0',
      `ping -c 1 -W 3 ${webIp} >/dev/null && echo WEB_PING_OK`,
      `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${webIp} 80`,
      `ping -c 1 -W 3 ${remoteIp} >/dev/null && echo REMOTE_PING_OK`,
    ].join('; ');
    const client = await podman(
      [
        'run',
        '--rm',
        '--network',
        'kdppod',
        '--cap-add',
        'NET_RAW',
        ...limits,
        '--rootfs',
        rootfs(join(work, 'rootfs-client')),
        '/bin/sh',
        '-c',
        script,
      ],
      true,
    );
    t.match(client.stdout, /inet 198\.19\.1\.\d+\//, 'the client container has an address of the node-1 pod CIDR');
    t.match(client.stdout, /WEB_PING_OK/, 'client container -> web container (ICMP)');
    t.match(client.stdout, /hello from podman/, 'client container -> web container (HTTP)');
    t.match(client.stdout, /REMOTE_PING_OK/, 'client container -> pod on node-2 (host-gw route)');
    const hp = await lab.exec(lab.underlay, ['curl', '-sS', '--max-time', '5', `http://${n1.ip4}:18080/`]);
    t.match(hp.stdout, /hello from podman/, 'podman -p 18080:80 reachable from the underlay (kdp-portmap)');

    await podman(['rm', '-f', '-t', '0', 'web']);
    const left = readdirSync(join(data, 'kdppod')).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));
    t.same(left, [], 'podman rm released every address');
    const ports = (await lab.exec(n1.ns, ['ip', '-j', 'link', 'show', 'master', 'kdppm0'])).stdout;
    t.same(JSON.parse(ports || '[]'), [], 'no veth left on the bridge');
    const rules = await lab.exec(n1.ns, ['nft', 'list', 'table', 'inet', 'kdp'], { allowFailure: true });
    t.notMatch(rules.stdout, /comment "kdp-[mp]-/, 'no masquerade or hostPort rule left');
    // podman names container namespaces netns-<uuid>; other files' labs come and go meanwhile
    const stray = (await listNamespaces()).filter((n) => !nsBefore.has(n) && n.startsWith('netns-'));
    t.same(stray, [], "podman's container namespaces are gone");
    await d2.del(conflist, { containerID: 'remote', ifname: 'eth0', netns: `/run/netns/${remoteNs}` });
    await Promise.all(controllers.map((c) => c.stop()));
    await lab.destroy();
    t.same(diffSnapshots(before, await snapshotRootNs()), [], 'the root network namespace is unchanged');
  });
}
