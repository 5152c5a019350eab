// The NetworkPolicy node agent: a reconciler on the controller kernel (src/k8s/controller.ts) that keeps the
// node's `inet kdp-policy` nft table in step with NetworkPolicy, AdminNetworkPolicy,
// BaselineAdminNetworkPolicy, Pod and Namespace objects. Each reconcile compiles the policies for the pods of
// this node and renders the table (a function of the view: compile.ts, nft.ts; sync.ts's incrementalRender redoes
// only the pods the reconcile's changes touch), then applies it in one transaction: the whole table (`nft -f -`,
// replacing it atomically) or, when the kernel holds our last table, the difference (delta.ts) through the
// `nft -i` session. The kernel never holds half a policy.
//
// Fail closed. Before the first successful sync no pod on the node is opened:
//   - if the table exists (an agent ran here before: a restart, a crash, an upgrade) it stays as it is until
//     the first sync replaces it. The agent never deletes it on exit; `kdp policy-agent cleanup` does;
//   - if it does not, start() installs a closed table before the source is started: a forward chain that
//     lets established/related traffic through and drops every new forwarded connection from or to the
//     cluster's pod CIDRs.
// So there is no moment, across starts, restarts and re-syncs, where a denied flow passes.
//
// Where packets are seen (docs/policy.md): the table's chains hook `forward` (filter priority), which sees
// routed pod traffic whatever the device (host-gw eth0, an overlay device, the bridge), Service traffic after
// the proxy's DNAT (prerouting, dstnat) and NodePort traffic; same-node pod-to-pod frames cross the bridge at
// layer 2 and reach the inet hooks only through br_netfilter, so start() turns bridge-nf-call-iptables (and
// -ip6tables) on in the node's namespace. The node's own traffic to its pods (kubelet probes) leaves through
// `output`, which the table does not hook: always allowed.
import type { Registry } from 'prom-client';
import { Gauge, Histogram } from 'prom-client';
import { KdpError, errorMessage } from '../common/errors.ts';
import { defaultExec } from '../common/exec-adapter.ts';
import type { Exec } from '../common/exec-adapter.ts';
import type { Logger } from '../common/log.ts';
import { silentLogger } from '../common/log.ts';
import type { Change, Reconciler } from '../k8s/controller.ts';
import type { StoreView } from '../k8s/store.ts';
import type { Kind } from '../model/types.ts';
import { NftSession } from '../netlink/nft-session.ts';
import { deltaScript, deltaTables } from './delta.ts';
import type { Parsed } from './delta.ts';
import type { CompileNote } from './types.ts';

export const POLICY_TABLE = 'kdp-policy';

/** What one render gives the agent: the script and its size for the metrics. */
export interface RenderedPolicies {
  /** one `nft -f` script replacing the table atomically */
  readonly script: string;
  /** the same table as objects (the renderer's): the difference to the last one is taken on these, not on text */
  readonly table?: Parsed;
  readonly rules: number;
  readonly sets: number;
  /** local pods whose traffic some policy governs */
  readonly selectedPods: number;
  /** what the compiler noticed (a port name no pod exposes, equal ANP priorities): logged once each */
  readonly notes?: readonly CompileNote[];
}

/**
 * The view -> the table for `node` (compilePolicies + renderNft): a function of the view. `changes` (what changed
 * since the last call; undefined: a full reconcile) only lets an implementation with memory redo less.
 */
export type PolicyRender = (
  view: StoreView,
  node: string,
  table: string,
  changes?: readonly Change[],
) => RenderedPolicies;

/** One named nft counter of the table. */
export interface NamedCounter {
  readonly name: string;
  readonly packets: number;
  readonly bytes: number;
  readonly comment?: string;
}

/** The agent's one side effect: the node's policy table. */
export interface PolicyTable {
  /** the table is in the kernel (left by an earlier agent) */
  exists(): Promise<boolean>;
  /** applies one nft script as one transaction (throws on failure: nothing of it is applied) */
  apply(script: string): Promise<void>;
  /** ends what apply keeps running (a long-lived nft session) */
  close?(): void;
  /** the table's named counters ([] when there is no table) */
  counters(): Promise<NamedCounter[]>;
  /** the table's text (`nft list table`), '' when there is none */
  list(): Promise<string>;
  /** removes the table (`kdp policy-agent cleanup`); no error when it is absent */
  remove(): Promise<void>;
  /** bridged frames through the inet hooks (br_netfilter's bridge-nf-call-ip(6)tables=1 in this namespace) */
  enableBridgeNetfilter(): Promise<'on' | 'missing'>;
}

/** `nft` in the namespace it runs in; `argvPrefix` may wrap it (e.g. ['ip', 'netns', 'exec', NS]). */
export class NftPolicyTable implements PolicyTable {
  readonly #exec: Exec;
  readonly #prefix: readonly string[];
  readonly #table: string;
  #session: NftSession | undefined;
  constructor(opts: { exec?: Exec; argvPrefix?: readonly string[]; table?: string } = {}) {
    this.#exec = opts.exec ?? defaultExec;
    this.#prefix = opts.argvPrefix ?? [];
    this.#table = opts.table ?? POLICY_TABLE;
  }

  async exists(): Promise<boolean> {
    const res = await this.#exec.run([...this.#prefix, 'nft', 'list', 'table', 'inet', this.#table], {
      allowFailure: true,
    });
    return res.code === 0;
  }

  async apply(script: string): Promise<void> {
    // small transactions (a delta) go through the long-lived `nft -i` session: no process to start, no cache of
    // the whole table to fetch again; a big one (a full table) parses faster from `nft -f`
    if (script.length < SESSION_MAX) {
      this.#session ??= new NftSession([...this.#prefix, 'nft']);
      await this.#session.apply([oneLine(script)]);
      return;
    }
    await this.#exec.run([...this.#prefix, 'nft', '-f', '-'], { input: script, timeoutMs: 120_000 });
  }

  close(): void {
    this.#session?.close();
    this.#session = undefined;
  }

  async counters(): Promise<NamedCounter[]> {
    const res = await this.#exec.run([...this.#prefix, 'nft', '-j', 'list', 'counters', 'table', 'inet', this.#table], {
      allowFailure: true,
    });
    if (res.code !== 0) return [];
    return parseCounters(res.stdout);
  }

  async list(): Promise<string> {
    const res = await this.#exec.run([...this.#prefix, 'nft', 'list', 'table', 'inet', this.#table], {
      allowFailure: true,
    });
    return res.code === 0 ? res.stdout : '';
  }

  async remove(): Promise<void> {
    await this.#exec.run([...this.#prefix, 'nft', 'delete', 'table', 'inet', this.#table], { allowFailure: true });
  }

  async enableBridgeNetfilter(): Promise<'on' | 'missing'> {
    const keys = ['net.bridge.bridge-nf-call-iptables', 'net.bridge.bridge-nf-call-ip6tables'];
    const res = await this.#exec.run([...this.#prefix, 'sysctl', '-n', ...keys], { allowFailure: true });
    if (res.code !== 0) return 'missing';
    if (
      res.stdout
        .split('\n')
        .filter(Boolean)
        .every((v) => v.trim() === '1')
    )
      return 'on';
    await this.#exec.run([...this.#prefix, 'sysctl', '-q', '-w', ...keys.map((k) => `${k}=1`)]);
    return 'on';
  }
}

const SESSION_MAX = 64 * 1024;

/** An nft script on one line (`nft -i` runs each line as one transaction): `;` between statements, none after `{` or `,`. */
export function oneLine(script: string): string {
  let out = '';
  for (const raw of script.split('\n')) {
    const l = raw.trim();
    if (l === '') continue;
    out += out === '' ? l : out.endsWith('{') || out.endsWith(',') ? ` ${l}` : `; ${l}`;
  }
  return out;
}

/** `nft -j list counters` output -> the named counters. */
export function parseCounters(json: string): NamedCounter[] {
  const doc = JSON.parse(json) as {
    nftables?: { counter?: { name: string; packets: number; bytes: number; comment?: string } }[];
  };
  const out: NamedCounter[] = [];
  for (const item of doc.nftables ?? []) {
    const c = item.counter;
    if (!c) continue;
    out.push({
      name: c.name,
      packets: c.packets,
      bytes: c.bytes,
      ...(c.comment !== undefined ? { comment: c.comment } : {}),
    });
  }
  return out;
}

const fam = (cidr: string) => (cidr.includes(':') ? 'ip6' : 'ip');

/**
 * The closed table installed at start when there is none: established and related traffic passes, every
 * new forwarded connection from or to the pod CIDRs is dropped. The first sync replaces it. Pure.
 */
export function renderClosedTable(podCidrs: readonly string[], table = POLICY_TABLE): string {
  const lines = [
    `table inet ${table} {`,
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    ct state established,related accept',
  ];
  for (const f of ['ip', 'ip6'] as const) {
    const cidrs = podCidrs.filter((c) => fam(c) === f);
    if (cidrs.length === 0) continue;
    lines.push(
      `    ${f} saddr { ${cidrs.join(', ')} } counter drop comment "kdp-policy: not synced yet"`,
      `    ${f} daddr { ${cidrs.join(', ')} } counter drop comment "kdp-policy: not synced yet"`,
    );
  }
  lines.push('  }', '}');
  return lines.join('\n') + '\n';
}

/** The agent's metrics (with the kernel's controller_runtime_* ones on the same registry). */
export class PolicyMetrics {
  readonly syncDuration: Histogram;
  readonly rules: Gauge;
  readonly sets: Gauge;
  readonly selectedPods: Gauge;
  readonly drops: Gauge<'counter' | 'policy'>;

  constructor(registry: Registry, counters: () => Promise<NamedCounter[]>) {
    const registers = [registry];
    this.syncDuration = new Histogram({
      name: 'kdp_policy_sync_duration_seconds',
      help: 'Time to compile, render and apply the node policy table',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.rules = new Gauge({ name: 'kdp_policy_rules', help: 'nft rules in the programmed policy table', registers });
    this.sets = new Gauge({
      name: 'kdp_policy_sets',
      help: 'nft sets and maps in the programmed policy table',
      registers,
    });
    this.selectedPods = new Gauge({
      name: 'kdp_policy_selected_pods',
      help: 'local pods some policy governs (ingress or egress isolated)',
      registers,
    });
    this.drops = new Gauge({
      name: 'kdp_policy_drop_packets',
      help: "packets dropped per policy since the table was last replaced (the table's named counters, read at scrape)",
      labelNames: ['counter', 'policy'],
      registers,
      async collect() {
        this.reset();
        for (const c of await counters().catch(() => [])) {
          this.set({ counter: c.name, policy: c.comment ?? c.name }, c.packets);
        }
      },
    });
  }
}

export interface PolicyAgentOptions {
  readonly nodeName: string;
  readonly table: PolicyTable;
  readonly render: PolicyRender;
  /** pod CIDRs of the cluster: the closed table drops new connections from and to them */
  readonly podCidrs: readonly string[];
  readonly log?: Logger;
  readonly metrics?: PolicyMetrics;
  readonly tableName?: string;
}

/** The transaction from table `a` to table `b` ('' none, undefined: replace the table): on objects when both have them. */
function difference(a: RenderedPolicies, b: RenderedPolicies): string | undefined {
  if (a.table && b.table) return deltaTables(a.table, b.table);
  return a.script === b.script ? '' : deltaScript(a.script, b.script);
}

/** The NetworkPolicy reconciler: run it on the controller kernel. Call start() before source.start(). */
export class PolicyAgent implements Reconciler {
  readonly name = 'netpol';
  /** Node: AdminNetworkPolicy egress `nodes` peers name node addresses */
  readonly kinds: readonly Kind[] = [
    'NetworkPolicy',
    'AdminNetworkPolicy',
    'BaselineAdminNetworkPolicy',
    'Pod',
    'Namespace',
    'Node',
  ];
  readonly #opts: PolicyAgentOptions;
  readonly #log: Logger;
  /** the last table applied (a reconcile that renders the same table applies nothing) */
  #applied: RenderedPolicies | undefined;
  /** the compiler notes of the last render, already logged (a note is logged when it appears, not per sync) */
  #noted = new Set<string>();
  syncs = 0;
  /** what the last successful sync programmed */
  last: RenderedPolicies | undefined;
  /** how the last transaction was sent: the whole table, or the difference to the previous one */
  lastApply: 'full' | 'delta' | undefined;

  constructor(opts: PolicyAgentOptions) {
    this.#opts = opts;
    this.#log = opts.log ?? silentLogger;
  }

  /**
   * Fail closed before anything is known: keeps an existing table (a previous agent's), else installs the
   * closed one. Returns what it did.
   */
  async start(): Promise<'kept' | 'closed'> {
    try {
      if (await this.#opts.table.exists()) {
        this.#log.info(
          { table: this.#opts.tableName ?? POLICY_TABLE },
          'keeping the policy table until the first sync',
        );
        return 'kept';
      }
      await this.#opts.table.apply(renderClosedTable(this.#opts.podCidrs, this.#opts.tableName ?? POLICY_TABLE));
      this.#log.info({ podCidrs: this.#opts.podCidrs }, 'policy table closed until the first sync');
      return 'closed';
    } catch (err) {
      throw new KdpError('KDP_POLICY_SYNC_FAILED', `closing the policy table failed: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }

  async #tableExists(): Promise<boolean> {
    try {
      return await this.#opts.table.exists();
    } catch {
      return false;
    }
  }

  async reconcile(view: StoreView, changes: readonly Change[], full: boolean): Promise<void> {
    const t0 = performance.now();
    let rendered: RenderedPolicies;
    try {
      rendered = this.#opts.render(
        view,
        this.#opts.nodeName,
        this.#opts.tableName ?? POLICY_TABLE,
        full ? undefined : changes,
      );
    } catch (err) {
      throw new KdpError('KDP_POLICY_SYNC_FAILED', `rendering the policy table failed: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    // the kernel holds exactly our last table: send the difference (one transaction as well); else replace it
    let delta = this.#applied === undefined ? undefined : difference(this.#applied, rendered);
    // the same table as the last transaction: nothing to do, unless a full reconcile finds the table gone
    if (full && delta === '' && !(await this.#tableExists())) {
      this.#applied = undefined;
      delta = undefined;
    }
    if (delta !== '') {
      try {
        await this.#opts.table.apply(delta ?? rendered.script);
        this.lastApply = delta === undefined ? 'full' : 'delta';
      } catch (err) {
        this.#applied = undefined;
        throw new KdpError('KDP_POLICY_SYNC_FAILED', `applying the policy table failed: ${errorMessage(err)}`, {
          cause: err,
          details: { head: rendered.script.split('\n', 5) },
        });
      }
    }
    this.#applied = rendered;
    this.#logNotes(rendered.notes ?? []);
    const seconds = (performance.now() - t0) / 1000;
    this.syncs++;
    this.last = rendered;
    const m = this.#opts.metrics;
    if (m) {
      m.syncDuration.observe(seconds);
      m.rules.set(rendered.rules);
      m.sets.set(rendered.sets);
      m.selectedPods.set(rendered.selectedPods);
    }
    this.#log.info(
      { syncs: this.syncs, ms: Math.round(seconds * 1000), rules: rendered.rules, selectedPods: rendered.selectedPods },
      'policy table synced',
    );
  }

  /** Warns once per note while it stays (a port name nobody exposes matches nothing: opens and blocks nothing). */
  #logNotes(notes: readonly CompileNote[]): void {
    const now = new Set<string>();
    for (const n of notes) {
      const k = `${n.tier}|${n.policy}|${n.message}`;
      now.add(k);
      if (!this.#noted.has(k))
        this.#log.warn({ tier: n.tier, policy: n.policy }, `${n.tier} ${n.policy}: ${n.message}`);
    }
    this.#noted = now;
  }
}
