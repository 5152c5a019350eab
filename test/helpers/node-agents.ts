// What overlay-agent and overlay-ipv6 share: `kdp node-agent` per lab node reading one manifests directory and
// writing its conflist under the test's work directory, the conflist as written, a node's kernel entries as
// sorted text lines, pods attached through the real CNI plugins with that conflist, echo servers in pods.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { Lab } from '../../src/lab/lab.ts';
import type { NodePlan } from '../../src/lab/plan.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import type { Conflist } from '../../src/cnispec/runtime.ts';
import type { CniResult } from '../../src/cnispec/types.ts';
import { freshPlugins, waitFor } from '../../src/cni/testing/fixtures.ts';

const KDP = fileURLToPath(new URL('../../bin/kdp', import.meta.url));
const ECHO = fileURLToPath(new URL('../../src/lab/echo-server.ts', import.meta.url));

interface AgentsOptions {
  readonly manifests: string;
  /** conflists in <work>/<node>, IPAM state in <work>/ipam/<node> */
  readonly work: string;
  readonly clusterCidrs: readonly string[];
  /** the CNI plugins directory (freshPlugins()) */
  readonly bin: string;
}

/** One node agent per lab node, killed at teardown; start() (re)starts one. */
export class NodeAgents {
  readonly #t: Test;
  readonly #lab: Lab;
  readonly #opts: AgentsOptions;
  readonly agents = new Map<string, Spawned>();

  /**
   * The lab both overlay agent tests use: three nodes on two routed subnets (node-2 alone behind the router),
   * fresh CNI plugins, a work directory with an empty manifests directory; all removed at teardown.
   */
  static async twoSubnets(
    t: Test,
    prefix: string,
    clusterCidrs: (lab: Lab) => readonly string[],
  ): Promise<{ lab: Lab; agents: NodeAgents; manifests: string; work: string }> {
    const bin = await freshPlugins();
    const work = mkdtempSync(join(tmpdir(), prefix));
    t.teardown(() => rmSync(bin, { recursive: true, force: true }));
    t.teardown(() => rmSync(work, { recursive: true, force: true }));
    const lab = await Lab.create({ nodes: 3, subnets: 2 });
    t.teardown(() => lab.destroy());
    t.same(
      lab.nodes.map((n) => n.subnet),
      [0, 1, 0],
      'node-2 alone behind the router',
    );
    const manifests = join(work, 'manifests');
    mkdirSync(manifests);
    return {
      lab,
      agents: new NodeAgents(t, lab, { manifests, work, bin, clusterCidrs: clusterCidrs(lab) }),
      manifests,
      work,
    };
  }

  constructor(t: Test, lab: Lab, opts: AgentsOptions) {
    this.#t = t;
    this.#lab = lab;
    this.#opts = opts;
    t.teardown(() => {
      for (const a of this.agents.values()) a.kill('SIGKILL');
    });
  }

  start(n: NodePlan, backend = 'auto', extra: readonly string[] = []): Spawned {
    const { manifests, work, clusterCidrs } = this.#opts;
    const p = this.#lab.spawn(n.ns, [
      'env',
      '-u',
      'NODE_OPTIONS',
      KDP,
      '--log-format',
      'json',
      'node-agent',
      '--node',
      n.name,
      '--backend',
      backend,
      '--manifests',
      manifests,
      '--cni-conf-dir',
      join(work, n.name),
      ...clusterCidrs.flatMap((c) => ['--cluster-cidr', c]),
      ...extra,
      '--exit-after',
      '300',
    ]);
    this.agents.set(n.name, p);
    return p;
  }

  /** The conflist the node's agent wrote (undefined: none yet). */
  conflist(n: NodePlan): Conflist | undefined {
    try {
      return JSON.parse(readFileSync(join(this.#opts.work, n.name, '10-kdp.conflist'), 'utf8')) as Conflist;
    } catch {
      return undefined;
    }
  }

  /** The stdout lines of `argv` in the node's namespace, trimmed, sorted. */
  async lines(n: NodePlan, argv: string[]): Promise<string[]> {
    return (await this.#lab.exec(n.ns, argv)).stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .sort();
  }

  /** A pod on `n` through the real CNI plugins with the agent's conflist: its namespace and addresses. */
  async addPod(n: NodePlan, name: string): Promise<{ ns: string; ips: string[] }> {
    const ns = await this.#lab.addNamespace(`${n.name}-${name}`);
    const list = this.conflist(n);
    if (!list) throw new Error(`${n.name} has no conflist yet`);
    const dataDir = join(this.#opts.work, 'ipam', n.name);
    const plugins = list.plugins.map((p) =>
      p.type === 'kdp-bridge' ? { ...p, ipam: { ...(p.ipam as object), dataDir } } : p,
    );
    const r = (await new CniDriver({ path: [this.#opts.bin], nodeNs: n.ns }).add(
      { ...list, plugins },
      { containerID: `cid-${n.name}-${name}`, ifname: 'eth0', netns: `/run/netns/${ns}` },
    )) as CniResult;
    return { ns, ips: r.ips!.map((i) => i.address.split('/')[0]!) };
  }

  /** Echo servers (HTTP 8080) named `name` in each namespace, ready; killed at teardown. */
  async echo(servers: readonly (readonly [ns: string, name: string])[]): Promise<Spawned[]> {
    const procs = servers.map(([ns, name]) =>
      this.#lab.spawn(ns, [process.execPath, ECHO, '--name', name, '--http', '8080']),
    );
    this.#t.teardown(() => procs.forEach((s) => s.kill('SIGKILL')));
    await Promise.all(
      procs.map((s, i) => waitFor(`echo ${i}`, () => (s.output().includes('ready') ? true : undefined), 60_000)),
    );
    return procs;
  }
}
