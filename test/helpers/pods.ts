// Pods for tests of the proxy, DNS and ingress, wired by hand (no CNI plugin): a namespace per pod with a
// veth to its node, a /32 address, the node-side end holding 169.254.1.1 as the pod's gateway, and host-gw
// routes between nodes. Everything stays inside the lab. (The CNI plugin of issue #4 does this for real.)
import { fileURLToPath } from 'node:url';
import type { Lab } from '../../src/lab/lab.ts';
import type { NodePlan } from '../../src/lab/plan.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';

export interface TestPod {
  readonly name: string;
  readonly ns: string;
  readonly ip4: string;
  readonly node: NodePlan;
}

const GATEWAY = '169.254.1.1';
export const ECHO_SERVER = fileURLToPath(new URL('../../src/lab/echo-server.ts', import.meta.url));
/** argv prefix of the probe program (UDP request/reply, TCP connect: refused vs timeout) */
export const PROBE = [process.execPath, fileURLToPath(new URL('../../src/lab/probe.ts', import.meta.url))];

/** Adds pod `name` on `node` with address 198.19.<node>.<octet>. */
export async function addPod(lab: Lab, node: NodePlan, name: string, octet: number): Promise<TestPod> {
  const ns = await lab.addNamespace(`${node.name}-${name}`);
  const ip4 = node.podCidr4.replace(/\.0\/24$/, `.${octet}`);
  const hostIf = `v${node.index}-${name}`.slice(0, 15);
  await lab.exec(node.ns, ['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await lab.exec(node.ns, ['ip', '-batch', '-'], {
    input:
      [
        `link set ${hostIf} up`,
        `addr add ${GATEWAY}/32 dev ${hostIf}`,
        `route add ${ip4}/32 dev ${hostIf} src ${node.ip4}`,
      ].join('\n') + '\n',
  });
  await lab.exec(ns, ['ip', '-batch', '-'], {
    input:
      [
        `addr add ${ip4}/32 dev eth0`,
        'link set eth0 up',
        `route add ${GATEWAY} dev eth0 scope link`,
        `route add default via ${GATEWAY} dev eth0`,
      ].join('\n') + '\n',
  });
  return { name, ns, ip4, node };
}

/** host-gw: every node routes every other node's pod CIDR via that node's address. */
export async function routeNodes(lab: Lab): Promise<void> {
  await Promise.all(
    lab.nodes.map((n) =>
      lab.exec(n.ns, ['ip', '-batch', '-'], {
        input:
          lab.nodes
            .filter((o) => o !== n)
            .map((o) => `route add ${o.podCidr4} via ${o.ip4}`)
            .join('\n') + '\n',
      }),
    ),
  );
}

/** Starts the echo server in a pod and waits until it listens. */
export async function startEcho(
  lab: Lab,
  pod: TestPod,
  opts: { http?: number[]; udp?: number[]; tcp?: number[] } = { http: [8080] },
): Promise<Spawned> {
  const argv = [process.execPath, ECHO_SERVER, '--name', pod.name];
  if (opts.http?.length) argv.push('--http', opts.http.join(','));
  if (opts.udp?.length) argv.push('--udp', opts.udp.join(','));
  if (opts.tcp?.length) argv.push('--tcp', opts.tcp.join(','));
  const child = lab.spawn(pod.ns, argv);
  // generous: at a load of 20-30 on the shared 2-core box four echo servers starting at once took over 10 s
  const end = Date.now() + 30_000;
  while (!child.output().includes('ready')) {
    if (Date.now() > end) throw new Error(`echo server in ${pod.name} did not start: ${child.output()}`);
    const exited = await Promise.race([
      child.exited.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), 25)),
    ]);
    if (exited) throw new Error(`echo server in ${pod.name} exited: ${child.output()}`);
  }
  return child;
}
