// The lab: an isolated cluster made of network namespaces. One underlay namespace holds a bridge (the
// node network; with `subnets: 2` two bridges, and the underlay namespace routes between them); each node
// is a namespace plugged into it by a veth pair; pods are namespaces added later (by the CNI plugin).
// Nothing is ever created in the root namespace: every link is made inside a lab namespace
// (`ip -n NS link add ... peer ... netns OTHER`), and no lab namespace has a route out of the lab.
//
// Cleanup is certain: `destroy()` on the normal path; a synchronous sweep on process exit and on
// SIGINT/SIGTERM/SIGHUP; and `sweep()` at the start of every run removes what crashed runs left.
import { randomInt } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KdpError, errorMessage } from '../common/errors.ts';
import { defaultExec, runSyncQuiet, spawnChild } from '../common/exec-adapter.ts';
import type { Exec, ExecOptions, ExecResult, Spawned } from '../common/exec-adapter.ts';
import { silentLogger } from '../common/log.ts';
import type { Logger } from '../common/log.ts';
import {
  NODE_SYSCTLS,
  leftovers,
  makeRunId,
  nodeBatch,
  nsName,
  planLab,
  underlayBatch,
  underlaySysctls,
} from './plan.ts';
import type { LabPlan, NodePlan } from './plan.ts';

interface LabOptions {
  readonly nodes: number;
  /** underlay segments: 1 (default) or 2, routed by the underlay namespace (see src/lab/plan.ts) */
  readonly subnets?: 1 | 2;
  readonly exec?: Exec;
  readonly log?: Logger;
  /** sweep leftovers of crashed runs first (default true) */
  readonly sweep?: boolean;
  /**
   * destroy the lab and exit on SIGINT/SIGTERM/SIGHUP (default true). A command that handles those signals
   * itself and destroys the lab on its way out (kdp up, kdp lab up) passes false; the exit-time cleanup stays.
   */
  readonly handleSignals?: boolean;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Names of all network namespaces (`ip netns list`). */
export async function listNamespaces(exec: Exec = defaultExec): Promise<string[]> {
  const res = await exec.run(['ip', 'netns', 'list']);
  return parseNetnsList(res.stdout);
}

export function parseNetnsList(out: string): string[] {
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

async function killNamespacePids(ns: string, exec: Exec): Promise<void> {
  const res = await exec.run(['ip', 'netns', 'pids', ns], { allowFailure: true });
  for (const p of res.stdout.split(/\s+/)) {
    const pid = Number(p);
    if (Number.isInteger(pid) && pid > 1 && pid !== process.pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

/** Where a lab keeps files for its run (CNI bundles, IPAM data, state); removed with the lab. */
const RUN_ROOT = '/run/kdp';
/** Per-namespace files `ip netns exec` bind-mounts over /etc (resolv.conf of a pod). */
const NETNS_ETC = '/etc/netns';

function removeNamespaceFiles(names: readonly string[]): void {
  for (const n of names) rmSync(join(NETNS_ETC, n), { recursive: true, force: true });
}

/** Deletes namespaces (killing whatever still runs inside them) and their /etc/netns files. Missing ones are not an error. */
async function deleteNamespaces(names: readonly string[], exec: Exec = defaultExec): Promise<void> {
  if (names.length === 0) return;
  await Promise.all(names.map((n) => killNamespacePids(n, exec)));
  // -force: go on past a namespace that is already gone
  await exec.run(['ip', '-force', '-batch', '-'], {
    input: names.map((n) => `netns del ${n}\n`).join(''),
    allowFailure: true,
  });
  removeNamespaceFiles(names);
}

function staleRunDirs(): string[] {
  let entries: string[];
  try {
    entries = readdirSync(RUN_ROOT);
  } catch {
    return [];
  }
  return entries.filter((e) => {
    const m = /^(\d+)-[0-9a-f]{4}$/.exec(e);
    return m !== null && !isAlive(Number(m[1]));
  });
}

/** Removes the namespaces of kdp runs whose process is gone. Returns what it removed. */
export async function sweep(exec: Exec = defaultExec, log: Logger = silentLogger): Promise<string[]> {
  const stale = leftovers(await listNamespaces(exec), isAlive);
  if (stale.length > 0) {
    log.warn({ namespaces: stale }, 'removing network namespaces left by crashed kdp runs');
    await deleteNamespaces(stale, exec);
  }
  for (const d of staleRunDirs()) rmSync(join(RUN_ROOT, d), { recursive: true, force: true });
  return stale;
}

// ---- process-wide cleanup: the only module state, and it holds just what must be undone on exit ----
const live = new Set<Lab>();
let handlersInstalled = false;
const SIGNALS: Record<string, number> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };

let signalsInstalled = false;

function installHandlers(signals: boolean): void {
  if (!handlersInstalled) {
    handlersInstalled = true;
    process.on('exit', () => {
      for (const lab of [...live]) lab.destroySync();
    });
  }
  if (!signals || signalsInstalled) return;
  signalsInstalled = true;
  for (const [sig, num] of Object.entries(SIGNALS)) {
    process.once(sig, () => {
      void Promise.allSettled([...live].map((l) => l.destroy())).finally(() => process.exit(128 + num));
    });
  }
}

export class Lab {
  readonly plan: LabPlan;
  readonly #exec: Exec;
  readonly #log: Logger;
  /** every namespace this lab made, in creation order */
  readonly #namespaces: string[] = [];
  readonly #children = new Set<Spawned>();
  #destroying: Promise<void> | undefined;
  #gone = false;

  private constructor(plan: LabPlan, exec: Exec, log: Logger) {
    this.plan = plan;
    this.#exec = exec;
    this.#log = log;
  }

  static async create(opts: LabOptions): Promise<Lab> {
    if (!isRoot()) throw new KdpError('KDP_NOT_ROOT', 'the lab needs root: it creates network namespaces');
    const exec = opts.exec ?? defaultExec;
    const log = opts.log ?? silentLogger;
    if (opts.sweep !== false) await sweep(exec, log);
    const plan = planLab(makeRunId(process.pid, randomInt(0x10000)), opts.nodes, { subnets: opts.subnets ?? 1 });
    const lab = new Lab(plan, exec, log);
    installHandlers(opts.handleSignals !== false);
    live.add(lab);
    try {
      await lab.#build();
    } catch (err) {
      await lab.destroy();
      throw new KdpError('KDP_LAB_SETUP', `building the lab failed: ${errorMessage(err)}`, { cause: err });
    }
    log.info({ runId: plan.runId, nodes: plan.nodes.length, subnets: plan.subnets.length }, 'lab ready');
    return lab;
  }

  async #build(): Promise<void> {
    const { plan } = this;
    const all = [plan.underlayNs, ...plan.nodes.map((n) => n.ns)];
    // record before creating: a half-made namespace is still removed by destroy()
    this.#namespaces.push(...all);
    await this.#exec.run(['ip', '-batch', '-'], { input: all.map((n) => `netns add ${n}\n`).join('') });
    await this.#exec.run(['ip', '-n', plan.underlayNs, '-batch', '-'], {
      input: underlayBatch(plan).join('\n') + '\n',
    });
    // two segments: the underlay namespace is their router
    const routerSysctls = underlaySysctls(plan);
    if (routerSysctls.length > 0) await this.exec(plan.underlayNs, ['sysctl', '-q', '-w', ...routerSysctls]);
    await Promise.all(
      plan.nodes.map(async (n) => {
        await this.#exec.run(['ip', '-n', n.ns, '-batch', '-'], { input: nodeBatch(plan, n).join('\n') + '\n' });
        await this.exec(n.ns, ['sysctl', '-q', '-w', ...NODE_SYSCTLS]);
      }),
    );
  }

  get underlay(): string {
    return this.plan.underlayNs;
  }

  get nodes(): readonly NodePlan[] {
    return this.plan.nodes;
  }

  node(nameOrIndex: string | number): NodePlan {
    const n = this.plan.nodes.find((x) => x.index === nameOrIndex || x.name === nameOrIndex);
    if (!n) throw new KdpError('KDP_LAB_INVALID', `no node ${String(nameOrIndex)} in this lab`);
    return n;
  }

  #assertOwned(ns: string): void {
    if (this.#destroying) throw new KdpError('KDP_LAB_INVALID', 'the lab was destroyed');
    if (!this.#namespaces.includes(ns))
      throw new KdpError('KDP_LAB_INVALID', `namespace ${ns} does not belong to this lab`);
  }

  /** Runs argv inside a lab namespace (a child process: `ip netns exec NS ...`). */
  exec(ns: string, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    this.#assertOwned(ns);
    return this.#exec.run(['ip', 'netns', 'exec', ns, ...argv], opts);
  }

  /** Starts a long-running process inside a lab namespace; it is killed by destroy(). */
  spawn(ns: string, argv: readonly string[], opts: { env?: NodeJS.ProcessEnv } = {}): Spawned {
    this.#assertOwned(ns);
    const child = spawnChild(['ip', 'netns', 'exec', ns, ...argv], opts);
    this.#children.add(child);
    void child.exited.then(() => this.#children.delete(child));
    return child;
  }

  /** This run's directory under /run/kdp (created on first use, removed by destroy() and by the sweep). */
  runDir(): string {
    const dir = join(RUN_ROOT, this.plan.runId);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    return dir;
  }

  /** Gives a lab namespace its own /etc/resolv.conf (bind-mounted by `ip netns exec`); removed with the namespace. */
  setResolvConf(ns: string, text: string): void {
    this.#assertOwned(ns);
    mkdirSync(join(NETNS_ETC, ns), { recursive: true });
    writeFileSync(join(NETNS_ETC, ns, 'resolv.conf'), text);
  }

  /** Adds an empty namespace (loopback up) owned by this lab: a pod sandbox, a test client. */
  async addNamespace(role: string): Promise<string> {
    const name = nsName(this.plan.runId, role);
    if (this.#namespaces.includes(name)) throw new KdpError('KDP_LAB_INVALID', `namespace ${name} exists already`);
    if (this.#destroying) throw new KdpError('KDP_LAB_INVALID', 'the lab was destroyed');
    this.#namespaces.push(name);
    await this.#exec.run(['ip', 'netns', 'add', name]);
    await this.#exec.run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  async removeNamespace(name: string): Promise<void> {
    this.#assertOwned(name);
    await deleteNamespaces([name], this.#exec);
    this.#namespaces.splice(this.#namespaces.indexOf(name), 1);
  }

  /** Removes everything the lab made. Idempotent (every caller gets the same promise); never throws. */
  destroy(): Promise<void> {
    this.#destroying ??= this.#teardown();
    return this.#destroying;
  }

  async #teardown(): Promise<void> {
    for (const c of this.#children) c.kill('SIGKILL');
    await Promise.allSettled([...this.#children].map((c) => c.exited));
    try {
      await deleteNamespaces([...this.#namespaces].reverse(), this.#exec);
    } catch (err) {
      this.#log.error({ err: errorMessage(err), runId: this.plan.runId }, 'lab cleanup failed; the next run sweeps it');
    }
    rmSync(join(RUN_ROOT, this.plan.runId), { recursive: true, force: true });
    this.#finish();
  }

  #finish(): void {
    this.#gone = true;
    this.#namespaces.length = 0;
    live.delete(this);
  }

  /** Synchronous cleanup for the process 'exit' event; also completes a destroy() the exit cut short. */
  destroySync(): void {
    if (this.#gone) return;
    this.#destroying ??= Promise.resolve();
    for (const c of this.#children) c.kill('SIGKILL');
    for (const ns of [...this.#namespaces].reverse()) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', ns], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        });
        for (const p of pids.split(/\s+/).filter(Boolean)) {
          try {
            process.kill(Number(p), 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      } catch {
        /* namespace already gone */
      }
      runSyncQuiet(['ip', 'netns', 'del', ns]);
    }
    removeNamespaceFiles(this.#namespaces);
    rmSync(join(RUN_ROOT, this.plan.runId), { recursive: true, force: true });
    this.#finish();
  }
}
