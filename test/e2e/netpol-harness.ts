// The upstream NetworkPolicy e2e model (kubernetes test/e2e/network/netpol: model.go, reachability.go) in the
// lab, shared by the test/e2e/netpol-*.test.ts files: namespaces x, y, z (label ns=<name>) with pods a, b, c
// (label pod=<name>) spread over two nodes, each pod serving TCP and UDP on ports 80 and 81 with upstream's named
// container ports (serve-80-tcp, ...). Pods are attached by the real kdp CNI plugins (kdp-bridge + host-local +
// portmap, one bridge per node), so same-node traffic crosses the bridge and cross-node traffic is routed
// (host-gw routes between the nodes). `kdp policy-agent` runs in each node namespace on a manifests directory
// the test rewrites; a probe server in each pod (src/lab/probe.ts serve, on a unix socket) runs a whole row of
// the reachability matrix at once. SCTP: see sctpSupported().
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { Lab } from '../../src/lab/lab.ts';
import type { NodePlan } from '../../src/lab/plan.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import type { Conflist } from '../../src/cnispec/runtime.ts';
import { renderConflist } from '../../src/node/conflist.ts';
import { freshPlugins, waitFor } from '../../src/cni/testing/fixtures.ts';

export const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const ECHO = fileURLToPath(new URL('../../src/lab/echo-server.ts', import.meta.url));
const PROBE = fileURLToPath(new URL('../../src/lab/probe.ts', import.meta.url));

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const POD_NAMES = ['a', 'b', 'c'] as const;
export const PORTS = [80, 81] as const;
export type Proto = 'TCP' | 'UDP' | 'SCTP';
export const METRICS_PORT = 10263;
/** pod key -> node index (0-based): every namespace has pods on both nodes, so each row mixes same-node and cross-node */
const PLACEMENT: Record<string, number> = {
  'x/a': 0,
  'x/b': 1,
  'x/c': 0,
  'y/a': 1,
  'y/b': 0,
  'y/c': 1,
  'z/a': 0,
  'z/b': 1,
  'z/c': 0,
};

/**
 * Another model than upstream's x/y/z (the network-policy-api conformance houses, netpol-admin.test.ts): pod keys
 * `<namespace>/<name>` -> node index, and the ports every pod serves. Its objects are written with writeObjects().
 */
export interface LabModel {
  readonly placement: Readonly<Record<string, number>>;
  readonly tcp: readonly number[];
  readonly udp: readonly number[];
}

export interface ModelPod {
  readonly key: string; // ns/name
  readonly namespace: string;
  readonly name: string;
  readonly node: NodePlan;
  readonly netns: string;
  /** changes with changeIp() */
  ip: string;
  readonly socket: string;
  readonly containerId: string;
}

/** from -> to -> reachable */
export type Matrix = Map<string, Map<string, boolean>>;

export function podManifest(
  p: Pick<ModelPod, 'namespace' | 'name' | 'ip' | 'node'>,
  labels: Record<string, string>,
): object {
  const containers = PORTS.flatMap((port) =>
    (['TCP', 'UDP', 'SCTP'] as const).map((protocol) => ({
      name: `cont-${port}-${protocol.toLowerCase()}`,
      image: 'registry.k8s.io/e2e-test-images/agnhost:2.53',
      ports: [{ containerPort: port, name: `serve-${port}-${protocol.toLowerCase()}`, protocol }],
    })),
  );
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: p.namespace, name: p.name, uid: `uid-${p.namespace}-${p.name}`, labels },
    spec: { nodeName: p.node.name, containers },
    status: {
      phase: 'Running',
      podIP: p.ip,
      podIPs: [{ ip: p.ip }],
      hostIP: p.node.ip4,
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };
}

export class NetpolLab {
  readonly lab: Lab;
  readonly dir: string;
  readonly pods: readonly ModelPod[];
  readonly agents = new Map<string, Spawned>();
  readonly #podLabels = new Map<string, Record<string, string>>();
  readonly #nsLabels = new Map<string, Record<string, string>>();
  readonly #t: Test;
  #drivers: CniDriver[] = [];
  #lists: Conflist[] = [];

  private constructor(t: Test, lab: Lab, dir: string, pods: ModelPod[]) {
    this.#t = t;
    this.lab = lab;
    this.dir = dir;
    this.pods = pods;
    for (const p of pods) this.#podLabels.set(p.key, { pod: p.name });
    for (const ns of NAMESPACES) this.#nsLabels.set(ns, { ns });
  }

  static async create(t: Test, tag: string, model?: LabModel): Promise<NetpolLab> {
    const placement = model?.placement ?? PLACEMENT;
    const tcp = (model?.tcp ?? PORTS).join(',');
    const udp = (model?.udp ?? PORTS).join(',');
    const lab = await Lab.create({ nodes: 2 });
    t.teardown(() => lab.destroy());
    const dir = mkdtempSync(join(tmpdir(), `kdp-netpol-${tag}-`));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const bin = await freshPlugins();
    t.teardown(() => rmSync(bin, { recursive: true, force: true }));
    const run = lab.runDir();
    const lists = lab.nodes
      .map((n): Conflist => {
        const dataDir = join(run, n.name, 'ipam');
        mkdirSync(dataDir, { recursive: true });
        return JSON.parse(
          renderConflist({
            network: 'kdp',
            bridge: 'kdp0',
            subnets: [n.podCidr4],
            clusterCidrs: [lab.plan.clusterCidr4],
            dataDir,
          }),
        ) as Conflist;
      })
      .map((list) => ({
        ...list,
        // the runtime may ask for an address (changeIp): the ips capability, as kdp up does
        plugins: list.plugins.map((p) =>
          p.type === 'kdp-bridge' ? { ...p, capabilities: { ...(p.capabilities ?? {}), ips: true } } : p,
        ),
      }));
    // host-gw between the nodes; every denied probe is a DROP, but closed ports answer with ICMP: no rate limit
    await Promise.all(
      lab.nodes.map(async (n) => {
        await lab.exec(n.ns, ['ip', '-batch', '-'], {
          input:
            lab.nodes
              .filter((o) => o !== n)
              .map((o) => `route add ${o.podCidr4} via ${o.ip4}`)
              .join('\n') + '\n',
        });
        await lab.exec(n.ns, ['sysctl', '-q', '-w', 'net.ipv4.icmp_ratelimit=0']);
      }),
    );
    const sockets = join(dir, '.probe');
    mkdirSync(sockets);
    const pods: ModelPod[] = [];
    const drivers = lab.nodes.map((node) => new CniDriver({ path: [bin], nodeNs: node.ns }));
    // one node's pods one after the other (IPAM lock), both nodes at once
    await Promise.all(
      lab.nodes.map(async (node, i) => {
        const driver = drivers[i]!;
        for (const [key, idx] of Object.entries(placement)) {
          if (idx !== i) continue;
          const [namespace, name] = key.split('/') as [string, string];
          const role = model ? `pod-${Object.keys(placement).indexOf(key)}` : `${namespace}-${name}`;
          const netns = await lab.addNamespace(role);
          const containerId = `netpol-${role}`;
          const res = await driver.add(lists[i]!, {
            containerID: containerId,
            ifname: 'eth0',
            netns: `/run/netns/${netns}`,
          });
          const ip = res.ips!.find((x) => !x.address.includes(':'))!.address.split('/')[0]!;
          const socket = join(sockets, `${role}.sock`);
          pods.push({ key, namespace, name, node, netns, ip, socket, containerId });
        }
      }),
    );
    pods.sort((a, b) => a.key.localeCompare(b.key));
    const nl = new NetpolLab(t, lab, dir, pods);
    nl.#drivers = drivers;
    nl.#lists = lists;
    // servers (TCP and UDP on 80 and 81) and probe servers, all at once
    await Promise.all(
      pods.flatMap((p) => [
        nl.#startAndWait(p.netns, [process.execPath, ECHO, '--name', p.key, '--tcp', tcp, '--udp', udp]),
        nl.#startAndWait(p.netns, [process.execPath, PROBE, 'serve', p.socket]),
      ]),
    );
    nl.writeCluster();
    nl.writePolicies([]);
    await Promise.all(lab.nodes.map((n) => nl.startAgent(n)));
    return nl;
  }

  async #startAndWait(ns: string, argv: string[]): Promise<Spawned> {
    const child = this.lab.spawn(ns, argv);
    await waitFor(
      `${argv[1]} in ${ns}`,
      async () => {
        if (child.output().includes('ready')) return true;
        const exited = await Promise.race([child.exited.then(() => true), Promise.resolve(false)]);
        if (exited) throw new Error(`${argv.join(' ')} exited: ${child.output()}`);
        return undefined;
      },
      60_000,
    );
    return child;
  }

  pod(key: string): ModelPod {
    const p = this.pods.find((x) => x.key === key);
    if (!p) throw new Error(`no pod ${key}`);
    return p;
  }

  #write(file: string, items: readonly object[]): void {
    const tmp = join(this.dir, `.${file}.tmp`);
    writeFileSync(tmp, JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 1));
    renameSync(tmp, join(this.dir, file));
  }

  #nodes(): object[] {
    return this.lab.nodes.map((n) => ({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: n.name },
      spec: { podCIDRs: [n.podCidr4], podCIDR: n.podCidr4 },
      status: {
        addresses: [{ type: 'InternalIP', address: n.ip4 }],
        conditions: [{ type: 'Ready', status: 'True' }],
      },
    }));
  }

  /** The cluster file holds the Nodes and exactly `objects` (Namespaces and Pods of one upstream case step). */
  writeObjects(objects: readonly object[]): void {
    this.#write('cluster.json', [...this.#nodes(), ...objects]);
  }

  /** Nodes, Namespaces and Pods (all nine, every port) with their current labels. */
  writeCluster(): void {
    const nodes = this.#nodes();
    const namespaces = NAMESPACES.map((ns) => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      // the API server adds kubernetes.io/metadata.name to every namespace
      metadata: { name: ns, labels: { ...this.#nsLabels.get(ns), 'kubernetes.io/metadata.name': ns } },
    }));
    const pods = this.pods.map((p) => podManifest(p, this.#podLabels.get(p.key)!));
    this.#write('cluster.json', [...nodes, ...namespaces, ...pods]);
  }

  /** Replaces every policy object (NetworkPolicy / ANP / BANP, raw API objects). */
  writePolicies(objects: readonly object[]): void {
    this.#write('policies.json', objects);
  }

  setPodLabels(key: string, labels: Record<string, string>): void {
    this.#podLabels.set(key, labels);
    this.writeCluster();
  }

  setNamespaceLabels(ns: string, labels: Record<string, string>): void {
    this.#nsLabels.set(ns, labels);
    this.writeCluster();
  }

  /** Resets labels to the model's (ns=<name>, pod=<name>). */
  resetLabels(): void {
    for (const p of this.pods) this.#podLabels.set(p.key, { pod: p.name });
    for (const ns of NAMESPACES) this.#nsLabels.set(ns, { ns });
    this.writeCluster();
  }

  async startAgent(n: NodePlan, extra: string[] = []): Promise<Spawned> {
    const child = await startPolicyAgent(this.lab, n, {
      manifests: this.dir,
      clusterCidr: this.lab.plan.clusterCidr4,
      metrics: `127.0.0.1:${METRICS_PORT}`,
      extra,
    });
    this.agents.set(n.name, child);
    return child;
  }

  async stopAgent(n: NodePlan, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const a = this.agents.get(n.name);
    a?.kill(signal);
    await a?.exited;
    this.agents.delete(n.name);
  }

  /**
   * Gives a pod another address, as a re-created pod would get: CNI DEL, then ADD asking for `ip` (its servers
   * keep running: the namespace stays). The manifests are not rewritten: call writeCluster() for that.
   */
  async changeIp(key: string, ip: string): Promise<void> {
    const p = this.pod(key);
    const i = this.lab.nodes.indexOf(p.node);
    const att = { containerID: p.containerId, ifname: 'eth0', netns: `/run/netns/${p.netns}` };
    await this.#drivers[i]!.del(this.#lists[i]!, att);
    const res = await this.#drivers[i]!.add(this.#lists[i]!, att, { ips: [`${ip}/24`] });
    p.ip = res.ips!.find((x) => !x.address.includes(':'))!.address.split('/')[0]!;
  }

  /**
   * Successful syncs of a node's agent so far: the `syncs` of its last "policy table synced" log line (read from
   * its output, so waiting for a sync spawns nothing); -1 before the first.
   */
  syncs(n: NodePlan): number {
    return syncsOf(this.agents.get(n.name)?.output() ?? '');
  }

  /** controller_runtime_reconcile_errors_total of a node's agent (0 when none was counted). */
  async reconcileErrors(n: NodePlan): Promise<number> {
    const m = /^controller_runtime_reconcile_errors_total\{controller="netpol"\} (\d+)/m.exec(await this.metrics(n));
    return m ? Number(m[1]) : 0;
  }

  async metrics(n: NodePlan): Promise<string> {
    return (await this.lab.exec(n.ns, ['curl', '-sS', '--max-time', '2', `http://127.0.0.1:${METRICS_PORT}/metrics`]))
      .stdout;
  }

  /** The sync counts of every agent (call before a change, hand to waitSynced after it). */
  async mark(): Promise<number[]> {
    return this.lab.nodes.map((n) => this.syncs(n));
  }

  /** Waits until every agent has synced since `before` and stayed quiet for 150 ms (the change applied). */
  async waitSynced(before: readonly number[], ms = 20_000): Promise<void> {
    const end = Date.now() + ms;
    let last = '';
    let stableSince = 0;
    for (;;) {
      const now = await this.mark();
      const key = now.join(',');
      if (now.every((c, i) => c > (before[i] ?? 0))) {
        if (key !== last) stableSince = Date.now();
        else if (Date.now() - stableSince >= 150) return;
      }
      last = key;
      if (Date.now() > end) throw new Error(`policy agents did not sync: ${before.join(',')} -> ${key}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Runs probes from one pod (its probe server, over the unix socket). */
  probeFrom(
    p: ModelPod,
    jobs: readonly { proto: 'tcp' | 'udp'; host: string; port: number; timeoutMs: number }[],
  ): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: p.socket, method: 'POST', path: '/' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as string[]);
          } catch (err) {
            reject(err as Error);
          }
        });
      });
      req.on('error', reject);
      req.end(JSON.stringify(jobs));
    });
  }

  /** The reachability matrix for one port/protocol: every pod to every pod (pod IPs), all at once. */
  async matrix(port: number, proto: Proto, timeoutMs = 1000): Promise<Matrix> {
    if (proto === 'SCTP') throw new Error('SCTP probes need kernel SCTP (see sctpSupported)');
    const p = proto === 'TCP' ? 'tcp' : 'udp';
    const out: Matrix = new Map();
    await Promise.all(
      this.pods.map(async (from) => {
        const res = await this.probeFrom(
          from,
          this.pods.map((to) => ({ proto: p, host: to.ip, port, timeoutMs })),
        );
        out.set(from.key, new Map(this.pods.map((to, i) => [to.key, res[i] === 'connected' || res[i] === 'replied'])));
      }),
    );
    return out;
  }

  #sctp: Promise<{ ok: boolean; why: string }> | undefined;

  /** Can this kernel open SCTP sockets (CONFIG_IP_SCTP)? Checked once, in a pod, with python's socket module. */
  sctpSupported(): Promise<{ ok: boolean; why: string }> {
    this.#sctp ??= this.#checkSctp();
    return this.#sctp;
  }

  async #checkSctp(): Promise<{ ok: boolean; why: string }> {
    const p = this.pods[0]!;
    const res = await this.lab.exec(
      p.netns,
      ['python3', '-c', 'import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)'],
      { allowFailure: true },
    );
    return { ok: res.code === 0, why: res.stderr.trim().split('\n').pop() ?? '' };
  }

  get t(): Test {
    return this.#t;
  }
}

/** The argv of `kdp policy-agent` for node n (JSON logs) reading `source` (--manifests DIR or --kubeconfig FILE). */
export function policyAgentArgv(
  n: NodePlan,
  source: readonly string[],
  o: { clusterCidr: string; metrics: string },
): string[] {
  return [
    process.execPath,
    CLI,
    '--log-format',
    'json',
    'policy-agent',
    '--node',
    n.name,
    ...source,
    '--cluster-cidr',
    o.clusterCidr,
    '--metrics-bind-address',
    o.metrics,
  ];
}

/**
 * `kdp policy-agent` in a node's namespace on a manifests directory; resolves once it logged "ready" (its first
 * sync is done). Also used by the overlay policy test (netpol-overlay.test.ts) on an OverlayCluster's directory.
 */
export async function startPolicyAgent(
  lab: Lab,
  n: NodePlan,
  o: { manifests: string; clusterCidr: string; metrics: string; extra?: readonly string[] },
): Promise<Spawned> {
  const child = lab.spawn(n.ns, policyAgentArgv(n, ['--manifests', o.manifests, ...(o.extra ?? [])], o));
  await waitFor(
    `policy agent on ${n.name}`,
    async () => {
      if (/^ready$/m.test(child.output())) return true;
      const exited = await Promise.race([child.exited.then(() => true), Promise.resolve(false)]);
      if (exited) throw new Error(`policy agent on ${n.name} exited: ${child.output()}`);
      return undefined;
    },
    90_000,
  );
  return child;
}

/**
 * Successful syncs of an agent so far, from its output: the `syncs` of its last "policy table synced" log line
 * (so waiting for a sync spawns nothing); -1 before the first.
 */
export function syncsOf(out: string): number {
  const i = out.lastIndexOf('"msg":"policy table synced"');
  if (i < 0) return -1;
  const line = out.slice(out.lastIndexOf('\n', i) + 1, out.indexOf('\n', i) < 0 ? undefined : out.indexOf('\n', i));
  const m = /"syncs":(\d+)/.exec(line);
  return m ? Number(m[1]) : -1;
}

/** The matrix as upstream prints it (reachability.go): rows from, columns to, X = blocked, . = reachable. */
export function printMatrix(m: Matrix, keys: readonly string[]): string {
  const lines = ['-\t' + keys.join('\t')];
  for (const from of keys) lines.push(from + '\t' + keys.map((to) => (m.get(from)?.get(to) ? '.' : 'X')).join('\t'));
  return lines.join('\n');
}
