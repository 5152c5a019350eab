// A small cluster for the overlay e2e tests and bench (issue #14): a lab on one or two underlay subnets, Node
// objects in a manifests directory the test edits (add, remove, readdress), one `kdp node-agent --backend X` per
// node (it writes the CNI conflist, with the overlay MTU), pods attached through the real kdp CNI plugins with
// that conflist, and optional `kdp proxy` / `kdp dns` reading the same directory. Everything runs in lab
// namespaces; destroy() (registered with t.teardown by the tests) removes it all.
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import type { NodePlan } from '../../src/lab/plan.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import type { Conflist } from '../../src/cnispec/runtime.ts';
import type { CniResult } from '../../src/cnispec/types.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';
import { freshPlugins, waitFor } from '../../src/cni/testing/fixtures.ts';
import { DEFAULT_VNI, vtepAnnotations, vxlanDevice } from '../../src/node/overlay.ts';
import { ECHO_SERVER } from './pods.ts';

export type Backend = 'host-gw' | 'vxlan' | 'auto';

export const KDP = fileURLToPath(new URL('../../bin/kdp', import.meta.url));
/** the lab's underlay links are 1500 bytes; VXLAN over IPv4 costs 50 */
export const UNDERLAY_MTU = 1500;
export const OVERLAY_MTU = UNDERLAY_MTU - 50;
/** kdp's VXLAN device for VNI 1 (the agent's default VNI) */
export const VXLAN_DEV = vxlanDevice(DEFAULT_VNI);
export const CLUSTER_CIDR = '198.19.0.0/16';

export interface OverlayPod {
  readonly name: string;
  readonly ns: string;
  readonly ip4: string;
  readonly node: NodePlan;
  readonly containerId: string;
  readonly result: CniResult;
  /** the conflist it was attached with (DEL needs the same) */
  readonly list: Conflist;
}

export interface NodeOverride {
  /** the InternalIP written into the Node object (default: the node's current underlay address) */
  readonly ip?: string;
  readonly podCidr?: string;
  /** replaces the annotations kdp up would write */
  readonly annotations?: Record<string, string>;
}

export interface KernelState {
  /** `ip route show proto 199`, one normalized line each */
  readonly routes: string[];
  /** `ip neigh show dev kdp.1`: "<ip> <mac>" */
  readonly neigh: string[];
  /** `bridge fdb show dev kdp.1`: "<mac> <dst>" */
  readonly fdb: string[];
}

interface OverlayOptions {
  readonly nodes: number;
  readonly subnets: 1 | 2;
  readonly backend: Backend;
  /** 1-based indices of the nodes whose Node object is written at start (default: all) */
  readonly published?: readonly number[];
  /** extra node-agent flags */
  readonly agentArgs?: readonly string[];
  /** the agent's log level (default info) */
  readonly logLevel?: string;
}

/** The Node annotations kdp up writes in manifests mode (the agent cannot patch its own Node there). */
export function nodeAnnotations(ip: string): Record<string, string> {
  return vtepAnnotations(DEFAULT_VNI, ip);
}

export class OverlayCluster {
  readonly lab: Lab;
  readonly backend: Backend;
  /** the manifests directory every component reads */
  readonly dir: string;
  readonly #bin: string;
  readonly #opts: OverlayOptions;
  readonly #agents = new Map<string, Spawned>();
  /** current underlay address and subnet of each node (they change with moveNode) */
  readonly #addr = new Map<string, { ip4: string; subnet: number }>();
  readonly #drivers = new Map<string, CniDriver>();
  readonly #pods: OverlayPod[] = [];

  private constructor(lab: Lab, bin: string, dir: string, opts: OverlayOptions) {
    this.lab = lab;
    this.#bin = bin;
    this.dir = dir;
    this.backend = opts.backend;
    this.#opts = opts;
    for (const n of lab.nodes) this.#addr.set(n.name, { ip4: n.ip4, subnet: n.subnet });
  }

  static async create(opts: OverlayOptions): Promise<OverlayCluster> {
    const lab = await Lab.create({ nodes: opts.nodes, subnets: opts.subnets });
    let bin: string | undefined;
    try {
      bin = await freshPlugins();
      const dir = mkdtempSync(join(tmpdir(), 'kdp-overlay-'));
      const c = new OverlayCluster(lab, bin, dir, opts);
      for (const n of lab.nodes) if (!opts.published || opts.published.includes(n.index)) await c.writeNode(n.index);
      return c;
    } catch (err) {
      await lab.destroy();
      if (bin) rmSync(bin, { recursive: true, force: true });
      throw err;
    }
  }

  get nodes(): readonly NodePlan[] {
    return this.lab.nodes;
  }

  node(i: number | string): NodePlan {
    return this.lab.node(i);
  }

  /** The node's underlay address now (moveNode changes it). */
  ip(n: NodePlan): string {
    return this.#addr.get(n.name)!.ip4;
  }

  subnetOf(n: NodePlan): number {
    return this.#addr.get(n.name)!.subnet;
  }

  // ---- Node objects ----

  /** The Node object kdp up would write for lab node i (its current address, its pod CIDR, its VTEP annotations). */
  async nodeObject(i: number, over: NodeOverride = {}): Promise<Record<string, unknown>> {
    const n = this.node(i);
    return this.anyNodeObject(n.name, over.ip ?? this.ip(n), over.podCidr ?? n.podCidr4, over.annotations);
  }

  /** A Node object for any name (also peers with no machine behind them: their entries are still programmed). */
  async anyNodeObject(
    name: string,
    ip: string,
    podCidr: string,
    annotations?: Record<string, string>,
  ): Promise<Record<string, unknown>> {
    return {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        annotations: annotations ?? (this.backend === 'host-gw' ? {} : nodeAnnotations(ip)),
      },
      spec: { podCIDR: podCidr, podCIDRs: [podCidr] },
      status: {
        addresses: [
          { type: 'InternalIP', address: ip },
          { type: 'Hostname', address: name },
        ],
        conditions: [{ type: 'Ready', status: 'True' }],
      },
    };
  }

  /** Writes (atomically) the Node object of lab node i. */
  async writeNode(i: number, over: NodeOverride = {}): Promise<void> {
    this.writeObject(`node-${i}`, await this.nodeObject(i, over));
  }

  /** Writes any object as DIR/<file>.json (temp file + rename: a watcher never reads half a file). */
  writeObject(file: string, obj: unknown): void {
    // the manifests source skips dot files, so the temp file is never parsed
    const tmp = join(this.dir, `.${file}.json.tmp`);
    writeFileSync(tmp, JSON.stringify(obj));
    renameSync(tmp, join(this.dir, `${file}.json`));
  }

  removeObject(file: string): void {
    rmSync(join(this.dir, `${file}.json`), { force: true });
  }

  removeNode(i: number | string): void {
    this.removeObject(typeof i === 'number' ? `node-${i}` : i);
  }

  // ---- agents ----

  confDir(n: NodePlan): string {
    return join(this.lab.runDir(), n.name, 'net.d');
  }

  agentArgv(n: NodePlan): string[] {
    return [
      'env',
      '-u',
      'NODE_OPTIONS',
      KDP,
      '--log-format',
      'json',
      '--log-level',
      this.#opts.logLevel ?? 'info',
      'node-agent',
      '--node',
      n.name,
      '--manifests',
      this.dir,
      '--backend',
      this.backend,
      '--cni-conf-dir',
      this.confDir(n),
      '--cluster-cidr',
      CLUSTER_CIDR,
      ...(this.#opts.agentArgs ?? []),
    ];
  }

  startAgent(n: NodePlan): Spawned {
    const prev = this.#agents.get(n.name);
    if (prev) prev.kill('SIGKILL');
    const a = this.lab.spawn(n.ns, this.agentArgv(n));
    this.#agents.set(n.name, a);
    return a;
  }

  agent(n: NodePlan): Spawned {
    const a = this.#agents.get(n.name);
    if (!a) throw new Error(`no agent on ${n.name}`);
    return a;
  }

  async killAgent(n: NodePlan, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const a = this.agent(n);
    a.kill(signal);
    await a.exited;
  }

  /** Starts every node's agent and waits until each wrote its conflist and programmed a route per published peer. */
  async startAgents(timeoutMs = 90_000): Promise<void> {
    for (const n of this.nodes) this.startAgent(n);
    await Promise.all(this.nodes.map((n) => this.waitConflist(n, timeoutMs)));
  }

  async waitConflist(n: NodePlan, timeoutMs = 90_000): Promise<Conflist> {
    const file = join(this.confDir(n), '10-kdp.conflist');
    return waitFor(
      `${n.name}'s conflist`,
      () => {
        const exited = this.#agents.get(n.name);
        try {
          return JSON.parse(readFileSync(file, 'utf8')) as Conflist;
        } catch {
          if (exited && /"level":"(error|fatal)"/.test(exited.output()))
            throw new Error(`agent on ${n.name}: ${exited.output().slice(-2000)}`);
          return undefined;
        }
      },
      timeoutMs,
    );
  }

  // ---- kernel state ----

  async kernel(n: NodePlan): Promise<KernelState> {
    const j = async (argv: string[]) => {
      const res = await this.lab.exec(n.ns, argv, { allowFailure: true });
      return res.code === 0 && res.stdout.trim() ? (JSON.parse(res.stdout) as Record<string, unknown>[]) : [];
    };
    const routes = (await j(['ip', '-4', '-j', 'route', 'show', 'proto', '199'])).map((r) =>
      [r.dst, r.gateway ? `via ${String(r.gateway)}` : '', `dev ${String(r.dev)}`, ...((r.flags as string[]) ?? [])]
        .filter(Boolean)
        .join(' '),
    );
    const neigh = (await j(['ip', '-4', '-j', 'neigh', 'show', 'dev', VXLAN_DEV])).map(
      (e) => `${String(e.dst)} ${String(e.lladdr ?? '-')}`,
    );
    const fdb = (await j(['bridge', '-j', 'fdb', 'show', 'dev', VXLAN_DEV])).map(
      (e) => `${String(e.mac)} ${String(e.dst ?? '-')}`,
    );
    return { routes: routes.sort(), neigh: neigh.sort(), fdb: fdb.sort() };
  }

  /** The MAC of this node's VXLAN device (undefined when it has none). */
  async vtepMac(n: NodePlan): Promise<string | undefined> {
    const res = await this.lab.exec(n.ns, ['ip', '-j', 'link', 'show', VXLAN_DEV], { allowFailure: true });
    if (res.code !== 0) return undefined;
    return (JSON.parse(res.stdout) as { address?: string }[])[0]?.address;
  }

  // ---- pods ----

  #driver(n: NodePlan): CniDriver {
    let d = this.#drivers.get(n.name);
    if (!d) this.#drivers.set(n.name, (d = new CniDriver({ path: [this.#bin], nodeNs: n.ns })));
    return d;
  }

  /**
   * A pod on node n with address <pod CIDR>.<octet>, attached by the kdp CNI plugins with the conflist the agent
   * wrote (so its MTU is the agent's); only the IPAM data directory is moved into the lab's run directory.
   */
  async addPod(n: NodePlan, name: string, octet: number): Promise<OverlayPod> {
    const written = await this.waitConflist(n);
    const dataDir = join(this.lab.runDir(), n.name, 'ipam');
    mkdirSync(dataDir, { recursive: true });
    const list: Conflist = {
      ...written,
      plugins: written.plugins.map((p) =>
        p.type === 'kdp-bridge'
          ? {
              ...p,
              capabilities: { ...(p.capabilities ?? {}), ips: true },
              ipam: { ...(p.ipam as Record<string, unknown>), dataDir },
            }
          : p,
      ),
    };
    const ns = await this.lab.addNamespace(`${n.name}-${name}`);
    const ip4 = n.podCidr4.replace(/\.0\/24$/, `.${octet}`);
    const containerId = `ovl-${n.name}-${name}`;
    const result = await this.#driver(n).add(
      list,
      { containerID: containerId, ifname: 'eth0', netns: `/run/netns/${ns}` },
      { ips: [`${ip4}/24`] },
    );
    const pod = { name, ns, ip4, node: n, containerId, result, list };
    this.#pods.push(pod);
    return pod;
  }

  /** The Pod object of a pod (for Services with selectors: the endpoint controller of the manifests source). */
  publishPod(pod: OverlayPod, labels: Record<string, string>, ports: { port: number; protocol?: string }[]): void {
    this.writeObject(`pod-${pod.name}`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod.name, namespace: 'default', labels },
      spec: {
        nodeName: pod.node.name,
        containers: [
          {
            name: 'c',
            image: 'none',
            ports: ports.map((p) => ({ containerPort: p.port, protocol: p.protocol ?? 'TCP' })),
          },
        ],
      },
      status: {
        phase: 'Running',
        hostIP: this.ip(pod.node),
        podIP: pod.ip4,
        podIPs: [{ ip: pod.ip4 }],
        conditions: [{ type: 'Ready', status: 'True' }],
      },
    });
  }

  /** The echo server (src/lab/echo-server.ts) in a pod: HTTP, UDP and TCP-line answers naming the pod. */
  async startEcho(
    pod: OverlayPod,
    opts: { http?: number[]; udp?: number[]; tcp?: number[]; udpClient?: boolean },
  ): Promise<Spawned> {
    const argv = [process.execPath, ECHO_SERVER, '--name', pod.name];
    if (opts.udpClient) argv.push('--udp-client');
    if (opts.http?.length) argv.push('--http', opts.http.join(','));
    if (opts.udp?.length) argv.push('--udp', opts.udp.join(','));
    if (opts.tcp?.length) argv.push('--tcp', opts.tcp.join(','));
    const child = this.lab.spawn(pod.ns, argv);
    await waitFor(
      `echo server in ${pod.name}`,
      async () => {
        if (await Promise.race([child.exited.then(() => true), Promise.resolve(false)]))
          throw new Error(`echo server in ${pod.name} exited: ${child.output()}`);
        return child.output().includes('ready') || undefined;
      },
      45_000,
    );
    return child;
  }

  // ---- the underlay ----

  /**
   * Moves node n to the other underlay segment (a new address there, its port on the other bridge, its route to
   * the first segment via the router), as a machine re-racked into another subnet. The Node object is not
   * touched: the test writes it (that is what the agents react to).
   */
  async moveNode(n: NodePlan, toSubnet: number): Promise<string> {
    const plan = this.lab.plan;
    const from = plan.subnets[this.subnetOf(n)]!;
    const to = plan.subnets[toSubnet]!;
    const oldIp = this.ip(n);
    const newIp = `198.18.${to.index}.${10 + n.index}`;
    // the bridges have fixed MACs (src/lab/plan.ts), so the router's MAC does not move with the port
    await this.lab.exec(plan.underlayNs, ['ip', 'link', 'set', n.underlayPort, 'master', to.bridge]);
    await this.lab.exec(n.ns, ['ip', '-batch', '-'], {
      input:
        [
          `route del ${to.cidr4} via ${from.host4} dev ${n.ifname}`,
          `addr del ${oldIp}/${plan.underlayPrefix4} dev ${n.ifname}`,
          `addr add ${newIp}/${plan.underlayPrefix4} dev ${n.ifname}`,
          `route add ${from.cidr4} via ${to.host4} dev ${n.ifname}`,
        ].join('\n') + '\n',
    });
    this.#addr.set(n.name, { ip4: newIp, subnet: to.index });
    return newIp;
  }

  // ---- other components ----

  /** `kdp proxy` (nftables) in node n, reading the same directory; resolves when its /healthz answers. */
  async startProxy(n: NodePlan): Promise<Spawned> {
    const p = this.lab.spawn(n.ns, [
      'env',
      '-u',
      'NODE_OPTIONS',
      KDP,
      '--log-format',
      'json',
      'proxy',
      '--mode',
      'nftables',
      '--manifests',
      this.dir,
      '--node-name',
      n.name,
      '--cluster-cidr',
      CLUSTER_CIDR,
      '--healthz-bind-address',
      '127.0.0.1:10256',
      '--metrics-bind-address',
      '',
      '--min-sync-period',
      '100ms',
    ]);
    await this.waitHttp(n.ns, 'http://127.0.0.1:10256/healthz', `proxy on ${n.name}`, p);
    return p;
  }

  /** `kdp dns` in a pod, reading the same directory; resolves when /ready answers. */
  async startDns(pod: OverlayPod): Promise<Spawned> {
    const p = this.lab.spawn(pod.ns, [
      'env',
      '-u',
      'NODE_OPTIONS',
      KDP,
      '--log-format',
      'json',
      'dns',
      '--manifests',
      this.dir,
      '--port',
      '53',
      '--health',
      '127.0.0.1:8080',
      '--ready',
      '127.0.0.1:8181',
      '--metrics',
      '',
    ]);
    await this.waitHttp(pod.ns, 'http://127.0.0.1:8181/ready', `dns in ${pod.name}`, p);
    return p;
  }

  async waitHttp(ns: string, url: string, what: string, proc: Spawned): Promise<void> {
    await waitFor(
      what,
      async () => {
        if (await Promise.race([proc.exited.then(() => true), Promise.resolve(false)]))
          throw new Error(`${what} exited: ${proc.output().slice(-2000)}`);
        const r = await this.lab.exec(
          ns,
          ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '1', url],
          {
            allowFailure: true,
          },
        );
        return r.stdout === '200' || undefined;
      },
      90_000,
    );
  }

  /** Releases the pods through CNI DEL, stops everything, removes the lab, the plugins and the directory. */
  async destroy(): Promise<void> {
    for (const a of this.#agents.values()) a.kill('SIGKILL');
    await Promise.allSettled(
      this.#pods.map(async (p) => {
        const a = { containerID: p.containerId, ifname: 'eth0', netns: `/run/netns/${p.ns}` };
        await this.#driver(p.node).del(p.list, a, p.result);
      }),
    );
    await this.lab.destroy();
    rmSync(this.#bin, { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}
