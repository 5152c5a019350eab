// The runtime side of CNI, a mini libcni: runs plugin executables with the CNI env and stdin, chains a
// conflist (prevResult, runtimeConfig from declared capabilities, reverse order on DEL), injects
// cni.dev/valid-attachments on GC. `nodeNs` runs every plugin inside that network namespace. `kdp up` plumbs
// its pods through it as a container runtime would; the tests and benchmarks use it the same way.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defaultExec } from '../common/exec-adapter.ts';
import type { Exec } from '../common/exec-adapter.ts';
import type { Attachment, CniResult } from './types.ts';

export interface PluginConf {
  readonly type: string;
  readonly capabilities?: Readonly<Record<string, boolean>>;
  readonly [key: string]: unknown;
}

export interface Conflist {
  readonly cniVersion: string;
  readonly name: string;
  readonly plugins: readonly PluginConf[];
}

export interface Invocation {
  readonly command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
  readonly containerId?: string;
  readonly netns?: string;
  readonly ifname?: string;
  readonly cniArgs?: string;
  readonly stdin: string;
}

export interface InvokeResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly json: Record<string, unknown> | undefined;
  readonly ms: number;
}

export interface DriverOptions {
  /** directories searched for plugins (CNI_PATH) */
  readonly path: readonly string[];
  /** run plugins inside this named network namespace (ip netns exec) */
  readonly nodeNs?: string;
  readonly exec?: Exec;
  readonly timeoutMs?: number;
  /** extra environment for every plugin run */
  readonly env?: Readonly<Record<string, string>>;
}

export class CniDriver {
  readonly opts: DriverOptions;
  readonly #exec: Exec;

  constructor(opts: DriverOptions) {
    this.opts = opts;
    this.#exec = opts.exec ?? defaultExec;
  }

  /** The plugin executable: the first CNI_PATH directory that has it. */
  binary(type: string): string {
    for (const dir of this.opts.path) if (existsSync(join(dir, type))) return join(dir, type);
    return join(this.opts.path[0] ?? '', type);
  }

  async invoke(type: string, inv: Invocation): Promise<InvokeResult> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      CNI_COMMAND: inv.command,
      CNI_CONTAINERID: inv.containerId ?? '',
      CNI_NETNS: inv.netns ?? '',
      CNI_IFNAME: inv.ifname ?? '',
      CNI_ARGS: inv.cniArgs ?? '',
      CNI_PATH: this.opts.path.join(':'),
      ...this.opts.env,
    };
    const bin = this.binary(type);
    const argv = this.opts.nodeNs ? ['ip', 'netns', 'exec', this.opts.nodeNs, bin] : [bin];
    const t0 = performance.now();
    const res = await this.#exec.run(argv, {
      input: inv.stdin,
      env,
      allowFailure: true,
      timeoutMs: this.opts.timeoutMs ?? 180_000,
    });
    const ms = performance.now() - t0;
    let json: Record<string, unknown> | undefined;
    try {
      json = res.stdout.trim() ? (JSON.parse(res.stdout) as Record<string, unknown>) : undefined;
    } catch {
      json = undefined;
    }
    return { code: res.code, stdout: res.stdout, stderr: res.stderr, json, ms };
  }

  /** The config one plugin of the list receives (spec "Deriving request configuration"). */
  static pluginConfig(
    list: Conflist,
    p: PluginConf,
    capArgs: Readonly<Record<string, unknown>>,
    prevResult?: unknown,
    extra: Record<string, unknown> = {},
  ): string {
    const runtimeConfig: Record<string, unknown> = {};
    for (const [cap, on] of Object.entries(p.capabilities ?? {}))
      if (on && capArgs[cap] !== undefined) runtimeConfig[cap] = capArgs[cap];
    const conf: Record<string, unknown> = { ...p, cniVersion: list.cniVersion, name: list.name, ...extra };
    if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
    if (prevResult !== undefined) conf.prevResult = prevResult;
    return JSON.stringify(conf);
  }

  /** ADD through the whole list; throws with the plugin's error JSON on failure. Returns the final result. */
  async add(
    list: Conflist,
    a: Attachment & { netns: string },
    capArgs: Readonly<Record<string, unknown>> = {},
  ): Promise<CniResult> {
    let prev: unknown;
    for (const p of list.plugins) {
      const r = await this.invoke(p.type, {
        command: 'ADD',
        containerId: a.containerID,
        ifname: a.ifname,
        netns: a.netns,
        stdin: CniDriver.pluginConfig(list, p, capArgs, prev),
      });
      if (r.code !== 0) throw new Error(`${p.type} ADD failed: ${r.stdout.trim()} ${r.stderr.trim()}`);
      prev = r.json;
    }
    return prev as CniResult;
  }

  /** DEL in reverse order; returns every plugin's outcome (DEL continues past failures). */
  async del(
    list: Conflist,
    a: Attachment & { netns?: string },
    prevResult?: CniResult,
    capArgs: Readonly<Record<string, unknown>> = {},
  ): Promise<InvokeResult[]> {
    const out: InvokeResult[] = [];
    for (const p of [...list.plugins].reverse()) {
      out.push(
        await this.invoke(p.type, {
          command: 'DEL',
          containerId: a.containerID,
          ifname: a.ifname,
          netns: a.netns ?? '',
          stdin: CniDriver.pluginConfig(list, p, capArgs, prevResult),
        }),
      );
    }
    return out;
  }

  async check(
    list: Conflist,
    a: Attachment & { netns: string },
    prevResult: CniResult,
    capArgs: Readonly<Record<string, unknown>> = {},
  ): Promise<InvokeResult[]> {
    const out: InvokeResult[] = [];
    for (const p of list.plugins) {
      out.push(
        await this.invoke(p.type, {
          command: 'CHECK',
          containerId: a.containerID,
          ifname: a.ifname,
          netns: a.netns,
          stdin: CniDriver.pluginConfig(list, p, capArgs, prevResult),
        }),
      );
    }
    return out;
  }

  async gc(list: Conflist, valid: readonly Attachment[]): Promise<InvokeResult[]> {
    const out: InvokeResult[] = [];
    for (const p of list.plugins) {
      out.push(
        await this.invoke(p.type, {
          command: 'GC',
          stdin: CniDriver.pluginConfig(list, p, {}, undefined, { 'cni.dev/valid-attachments': valid }),
        }),
      );
    }
    return out;
  }
}
