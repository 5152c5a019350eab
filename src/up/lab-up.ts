// `kdp up` as root: the whole data plane on a lab of network namespaces.
//   lab (underlay + one namespace per Node; one or two routed subnets) -> CNI plugins (kdp-bridge +
//   kdp-host-local + kdp-portmap) give every Pod a sandbox with the IP its manifest names -> node agent (host-gw
//   routes, or --backend vxlan|auto), service proxy (nftables or iptables), policy agent (NetworkPolicy) and
//   ingress controller in every node; cluster DNS in the kube-dns pods; an echo server in the others.
// Every process is a child inside a lab namespace; stop() releases the pods through CNI DEL, then removes the lab.
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { KdpError, errorMessage } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { Spawned } from '../common/exec-adapter.ts';
import { Lab } from '../lab/lab.ts';
import { ManifestsSource } from '../k8s/manifests-source.ts';
import { CniDriver } from '../cnispec/runtime.ts';
import type { Conflist } from '../cnispec/runtime.ts';
import type { CniResult } from '../cnispec/types.ts';
import { renderConflist } from '../node/conflist.ts';
import { takeSnapshot } from './snapshot.ts';
import type { Snapshot } from './snapshot.ts';
import { dnsServiceIp, mapNodes, nodeAgentBackendArgs, planPods, podMtu, podResolvConf, tryCommands } from './plan.ts';
import type { Backend, Skipped, TryCommand, UpPod } from './plan.ts';

const MAIN = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const ECHO = fileURLToPath(new URL('../lab/echo-server.ts', import.meta.url));

interface LabUpOptions {
  readonly manifestsDir: string;
  readonly log: Logger;
  /** one line per step, for the person watching */
  readonly progress: (line: string) => void;
  readonly proxyMode: 'nftables' | 'iptables' | 'userspace';
  /** underlay subnets of the lab (default 1); with 2 the manifests' Nodes must follow the 2-subnet plan */
  readonly subnets?: 1 | 2;
  /** the node agents' backend (default host-gw, which cannot cross subnets) */
  readonly backend?: Backend;
  /** the proxies' --min-sync-period (default: theirs, 1s) */
  readonly proxyMinSyncPeriod?: string;
  /**
   * Where the node components (dns, proxy, ingress, node-agent) read cluster state: the manifests directory
   * (default), or an API server through `--kubeconfig FILE`. The lab (nodes, pods) is still planned from the
   * manifests directory. `beforeComponents` runs once the lab exists and before any component starts (e.g. to
   * run the API server inside the lab's underlay namespace).
   */
  readonly componentSource?: { readonly kubeconfig: string; readonly beforeComponents?: (lab: Lab) => Promise<void> };
}

interface CheckResult {
  readonly cmd: TryCommand;
  readonly ok: boolean;
  readonly output: string;
}

export async function waitUntil(
  what: string,
  fn: () => Promise<boolean>,
  ms: number,
  procs: readonly Spawned[] = [],
): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    for (const p of procs) {
      if (await Promise.race([p.exited.then(() => true), Promise.resolve(false)])) {
        throw new KdpError('KDP_UP_FAILED', `${what}: a process exited: ${p.output().slice(-1500)}`);
      }
    }
    if (Date.now() > end)
      throw new KdpError(
        'KDP_UP_FAILED',
        `${what}: not ready after ${ms} ms${procs[0] ? `: ${procs[0].output().slice(-1500)}` : ''}`,
      );
    await sleep(100);
  }
}

export class LabUp {
  readonly lab: Lab;
  readonly snapshot: Snapshot;
  readonly pods: readonly UpPod[];
  readonly skipped: readonly Skipped[];
  readonly commands: readonly TryCommand[];
  /** pod key -> lab namespace */
  readonly podNs: ReadonlyMap<string, string>;
  readonly #opts: LabUpOptions;
  /** Node name (manifests) -> lab node index (1-based), from mapNodes */
  readonly #nodeIndex: ReadonlyMap<string, number>;
  readonly #attachments: { pod: UpPod; ns: string; node: string; result: CniResult }[] = [];
  #driverFor: (nodeNs: string) => CniDriver = () => {
    throw new KdpError('KDP_INTERNAL', 'CNI not ready');
  };
  #conflist: (node: string) => Conflist = () => {
    throw new KdpError('KDP_INTERNAL', 'CNI not ready');
  };

  private constructor(
    lab: Lab,
    snapshot: Snapshot,
    nodeIndex: ReadonlyMap<string, number>,
    pods: UpPod[],
    skipped: Skipped[],
    opts: LabUpOptions,
  ) {
    this.lab = lab;
    this.#nodeIndex = nodeIndex;
    this.snapshot = snapshot;
    this.pods = pods;
    this.skipped = skipped;
    this.commands = tryCommands(snapshot, pods, lab.plan);
    this.podNs = new Map(pods.map((p) => [p.key, `kdp-${lab.plan.runId}-${p.role}`]));
    this.#opts = opts;
  }

  static async start(opts: LabUpOptions): Promise<LabUp> {
    const { progress, log } = opts;
    let t0 = Date.now();
    const step = (msg: string) => {
      progress(`${msg} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      t0 = Date.now();
    };
    const snapshot = await takeSnapshot(new ManifestsSource({ dir: opts.manifestsDir, log }));
    if (snapshot.nodes.length === 0)
      throw new KdpError('KDP_UP_MANIFESTS', `no Node in ${opts.manifestsDir}: kdp up needs at least one`);
    step(
      `read ${opts.manifestsDir}: ${snapshot.nodes.length} nodes, ${snapshot.pods.length} pods, ${snapshot.services.length} services, ${snapshot.ingresses.length} ingresses`,
    );
    // kdp up handles the signals itself (untilStopped) and stops through stop(): CNI DEL, then the lab
    const subnets = opts.subnets ?? 1;
    const backend = opts.backend ?? 'host-gw';
    if (subnets === 2 && backend === 'host-gw')
      throw new KdpError('KDP_USAGE', 'two subnets need an overlay backend (vxlan or auto): host-gw cannot cross them');
    const lab = await Lab.create({ nodes: snapshot.nodes.length, subnets, log, handleSignals: false });
    let up: LabUp | undefined;
    try {
      const nodeIndex = mapNodes(snapshot.nodes, lab.plan);
      const { pods, skipped } = planPods(snapshot, nodeIndex);
      up = new LabUp(lab, snapshot, nodeIndex, pods, skipped, opts);
      for (const s of skipped) log.warn({ pod: s.key, reason: s.reason }, 'pod not started in the lab');
      step(
        `lab ${lab.plan.runId}: underlay ${lab.plan.underlayHost4}, nodes ${lab.nodes.map((n) => `${n.name} ${n.ip4}`).join(', ')}`,
      );
      await up.#startPods();
      step(`${pods.length} pods attached by the kdp CNI plugins (bridge, host-local IPAM, portmap)`);
      if (opts.componentSource?.beforeComponents) {
        await opts.componentSource.beforeComponents(lab);
        step(`components will read the API server of ${opts.componentSource.kubeconfig}`);
      }
      await up.#startNodeComponents();
      step(
        `node agent, service proxy (${opts.proxyMode}), policy agent and ingress running on every node; DNS in ${pods.filter((p) => p.runs === 'dns').length} pod(s)`,
      );
      return up;
    } catch (err) {
      if (up) await up.stop();
      else await lab.destroy();
      throw err;
    }
  }

  /** The lab namespace standing for the Node of that name. */
  #nodeNs(name: string): string {
    return this.lab.node(this.#nodeIndex.get(name) ?? -1).ns;
  }

  async #startPods(): Promise<void> {
    const nodeIndex = this.#nodeIndex;
    const run = this.lab.runDir();
    const bin = join(run, 'cni-bin');
    const { buildPlugins } = await import('../../cni-plugins/build.ts');
    await buildPlugins(bin);
    const lists = new Map<string, Conflist>();
    const mtu = podMtu(this.#opts.backend ?? 'host-gw');
    for (const [name, idx] of nodeIndex) {
      const plan = this.lab.nodes[idx - 1]!;
      const dataDir = join(run, name, 'ipam');
      mkdirSync(dataDir, { recursive: true });
      const list = JSON.parse(
        renderConflist({
          network: 'kdp',
          bridge: 'kdp0',
          subnets: [plan.podCidr4],
          clusterCidrs: [this.lab.plan.clusterCidr4],
          dataDir,
          ...(mtu ? { mtu } : {}),
        }),
      ) as Conflist;
      // the runtime asks for each pod's IP (the one its manifest names): the ips capability
      const plugins = list.plugins.map((p) =>
        p.type === 'kdp-bridge' ? { ...p, capabilities: { ...(p.capabilities ?? {}), ips: true } } : p,
      );
      lists.set(name, { ...list, plugins });
    }
    this.#conflist = (node) => lists.get(node)!;
    const drivers = new Map<string, CniDriver>();
    this.#driverFor = (nodeNs) => {
      let d = drivers.get(nodeNs);
      if (!d) drivers.set(nodeNs, (d = new CniDriver({ path: [bin], nodeNs })));
      return d;
    };
    const dnsIp = dnsServiceIp(this.snapshot);
    // one node at a time keeps the IPAM lock uncontended; pods of different nodes in parallel
    await Promise.all(
      [...nodeIndex.keys()].map(async (node) => {
        for (const pod of this.pods.filter((p) => p.node === node)) {
          const ns = await this.lab.addNamespace(pod.role);
          const nodeNs = this.#nodeNs(node);
          const result = await this.#driverFor(nodeNs).add(
            this.#conflist(node),
            { containerID: pod.containerId, ifname: 'eth0', netns: `/run/netns/${ns}` },
            {
              ips: [`${pod.ip}/24`],
              ...(pod.hostPorts.length ? { portMappings: pod.hostPorts.map((h) => ({ ...h, hostIP: '' })) } : {}),
            },
          );
          this.#attachments.push({ pod, ns, node, result });
          if (dnsIp) this.lab.setResolvConf(ns, podResolvConf(pod.namespace, dnsIp));
        }
      }),
    );
  }

  async #startNodeComponents(): Promise<void> {
    const node = process.execPath;
    const kubeconfig = this.#opts.componentSource?.kubeconfig;
    const src = kubeconfig !== undefined ? ['--kubeconfig', kubeconfig] : ['--manifests', this.#opts.manifestsDir];
    const log = ['--log-format', 'json', '--log-level', 'info']; // kept in memory, shown when a component fails
    const procs: { what: string; proc: Spawned; ready: () => Promise<boolean> }[] = [];
    const http200 = (ns: string, url: string) => async () =>
      (
        await this.lab.exec(ns, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '1', url], {
          allowFailure: true,
        })
      ).stdout === '200';
    for (const a of this.#attachments) {
      if (a.pod.runs === 'dns') {
        const proc = this.lab.spawn(a.ns, [
          node,
          MAIN,
          ...log,
          'dns',
          ...src,
          '--port',
          '53',
          '--health',
          '127.0.0.1:8080',
          '--ready',
          '127.0.0.1:8181',
          '--metrics',
          '127.0.0.1:9153',
        ]);
        procs.push({ what: `dns in ${a.pod.key}`, proc, ready: http200(a.ns, 'http://127.0.0.1:8181/ready') });
      } else {
        const argv = [node, ECHO, '--name', a.pod.name];
        if (a.pod.tcp.length) argv.push('--http', a.pod.tcp.join(','));
        if (a.pod.udp.length) argv.push('--udp', a.pod.udp.join(','));
        const proc = this.lab.spawn(a.ns, argv);
        procs.push({ what: `echo in ${a.pod.key}`, proc, ready: async () => proc.output().includes('ready') });
      }
    }
    for (const [name, idx] of this.#nodeIndex) {
      const n = this.lab.node(idx);
      const agent = this.lab.spawn(n.ns, [
        node,
        MAIN,
        ...log,
        'node-agent',
        '--node',
        name,
        ...src,
        ...nodeAgentBackendArgs(this.#opts.backend ?? 'host-gw'),
      ]);
      // ready: a route to every other node's pod CIDR, whatever the backend made it through
      const otherCidrs = this.lab.nodes.filter((o) => o.index !== idx).map((o) => o.podCidr4);
      procs.push({
        what: `node agent on ${name}`,
        proc: agent,
        ready: async () => {
          const dsts = new Set(
            (await this.lab.exec(n.ns, ['ip', '-4', 'route', 'show'])).stdout.split('\n').map((l) => l.split(' ')[0]),
          );
          return otherCidrs.every((c) => dsts.has(c));
        },
      });
      const proxy = this.lab.spawn(n.ns, [
        node,
        MAIN,
        ...log,
        'proxy',
        '--mode',
        this.#opts.proxyMode,
        ...src,
        '--node-name',
        name,
        '--cluster-cidr',
        this.lab.plan.clusterCidr4,
        '--healthz-bind-address',
        '127.0.0.1:10256',
        ...(this.#opts.proxyMinSyncPeriod ? ['--min-sync-period', this.#opts.proxyMinSyncPeriod] : []),
      ]);
      procs.push({ what: `proxy on ${name}`, proc: proxy, ready: http200(n.ns, 'http://127.0.0.1:10256/healthz') });
      const policy = this.lab.spawn(n.ns, [
        node,
        MAIN,
        ...log,
        'policy-agent',
        '--node',
        name,
        ...src,
        '--cluster-cidr',
        this.lab.plan.clusterCidr4,
        '--metrics-bind-address',
        '127.0.0.1:10263',
      ]);
      procs.push({
        what: `policy agent on ${name}`,
        proc: policy,
        ready: http200(n.ns, 'http://127.0.0.1:10263/healthz'),
      });
      const ingress = this.lab.spawn(n.ns, [node, MAIN, ...log, 'ingress', ...src, '--access-log', 'off']);
      procs.push({ what: `ingress on ${name}`, proc: ingress, ready: http200(n.ns, 'http://127.0.0.1:10254/healthz') });
    }
    await Promise.all(procs.map((p) => waitUntil(p.what, p.ready, 90_000, [p.proc])));
  }

  /** The namespace of a `kdp exec` target. */
  targets(): Record<string, string> {
    const t: Record<string, string> = { underlay: this.lab.underlay };
    for (const [name, idx] of this.#nodeIndex) t[name] = this.lab.node(idx).ns;
    for (const [k, ns] of this.podNs) t[k] = ns;
    return t;
  }

  /** Runs every printed command once, as a user would. */
  async check(): Promise<CheckResult[]> {
    const targets = this.targets();
    const out: CheckResult[] = [];
    for (const cmd of this.commands) {
      const [, target, , ...argv] = cmd.argv; // exec TARGET -- argv...
      const ns = targets[target as string];
      if (!ns) {
        out.push({ cmd, ok: false, output: `unknown target ${target}` });
        continue;
      }
      // right after start-up a first packet can still meet a cold path (neighbour resolution, a first sync racing
      // the check): a failing command is tried twice more, a second apart, before it counts as failed
      let last: CheckResult = { cmd, ok: false, output: '' };
      for (let attempt = 0; attempt < 3 && !last.ok; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, 1000));
        try {
          const res = await this.lab.exec(ns, argv, { allowFailure: true, timeoutMs: 15_000 });
          last = { cmd, ok: res.code === 0 && cmd.expect.test(res.stdout), output: (res.stdout + res.stderr).trim() };
        } catch (err) {
          last = { cmd, ok: false, output: errorMessage(err) };
        }
        if (!last.ok)
          this.#opts.log.info(
            { check: cmd.what, attempt: attempt + 1, output: last.output.slice(0, 300) },
            'kdp up check failed',
          );
      }
      out.push(last);
    }
    return out;
  }

  async stop(): Promise<void> {
    // release every pod through CNI DEL (IPAM files, masquerade and hostPort rules), then remove the lab
    await Promise.allSettled(
      this.#attachments.map(async (a) => {
        try {
          await this.#driverFor(this.#nodeNs(a.node)).del(
            this.#conflist(a.node),
            { containerID: a.pod.containerId, ifname: 'eth0', netns: `/run/netns/${a.ns}` },
            a.result,
          );
        } catch (err) {
          this.#opts.log.warn({ pod: a.pod.key, err: errorMessage(err) }, 'CNI DEL failed; the lab is removed anyway');
        }
      }),
    );
    await this.lab.destroy();
  }
}
