// Process helpers of the warm server (`kdp cni serve`), which serves many plugin calls from one process and can
// therefore prepare work before a call arrives. Measured (bench/cni/trace.ts): on this machine a child spawned
// from Node blocks Node's event loop until the child has exec'd (~16 ms at load 7, spawn is synchronous in
// libuv), then the child loads its shared libraries before it reads a byte; `flock` + `nft` + `ip` + `ip -n` per
// ADD serialised four of those. Two helpers remove them from the request's path:
//
// - WarmExec: children spawned AHEAD of need for the argvs that read their whole job from stdin (`ip -batch -`,
//   `nft -a -f -`). A request takes a waiting child, writes the job, closes stdin and waits for the exit, exactly
//   as a fresh spawn would (same argv, same semantics, same exit code); the pool is refilled once the server is
//   idle. A child waiting in the pool that is never used gets EOF when the server exits and exits doing nothing.
//   `start(argv)` spawns a child now whose job is written later (the pod-side `ip -n POD -batch -`, whose
//   namespace is known only when the call arrives, starts while IPAM and the veth pair are being done).
// - LockAgent: one Perl process per lock file that holds an flock(2) on it while asked to (`L` / `U` lines on
//   its stdin). The IPAM lock (host-local's `<dataDir>/<net>/lock`, shared with the reference plugin) and the
//   per-namespace nft lock are then a pipe round trip instead of a `flock` fork per call, and still exclude
//   every other process that flocks the same file. The agent dies with the server (EOF on stdin), which releases
//   the lock, as a kill -9 of an exec'd plugin does.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, statSync } from 'node:fs';
import { KdpError } from '../common/errors.ts';
import { defaultExec, execFailure, inputText } from '../common/exec-adapter.ts';
import type { Exec, ExecOptions, ExecResult } from '../common/exec-adapter.ts';
import { lockFile } from '../common/flock.ts';
import type { FileLock } from '../common/flock.ts';

const key = (argv: readonly string[]) => argv.join('\0');

/** A child whose stdin job is written later. */
export interface Started {
  finish(input: string, opts?: Pick<ExecOptions, 'allowFailure' | 'timeoutMs'>): Promise<ExecResult>;
}

interface Waiting {
  readonly child: ChildProcess;
  readonly done: Promise<{ code: number; stdout: string; stderr: string; spawnError?: Error }>;
}

function spawnWaiting(argv: readonly string[]): Waiting {
  const [file, ...args] = argv as [string, ...string[]];
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdin?.on('error', () => {}); // EPIPE when it died: its exit tells
  const done = new Promise<{ code: number; stdout: string; stderr: string; spawnError?: Error }>((resolve) => {
    child.once('error', (err) => resolve({ code: 127, stdout, stderr, spawnError: err }));
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
  return { child, done };
}

async function finishWaiting(
  argv: readonly string[],
  w: Waiting,
  input: string,
  opts: Pick<ExecOptions, 'allowFailure' | 'timeoutMs'> = {},
): Promise<ExecResult> {
  const timeout = opts.timeoutMs ?? 30_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    w.child.kill('SIGKILL');
  }, timeout);
  w.child.stdin?.end(input);
  const r = await w.done.finally(() => clearTimeout(timer));
  if (r.spawnError)
    throw new KdpError('KDP_EXEC_FAILED', `${argv[0]}: ${r.spawnError.message}`, {
      cause: r.spawnError,
      details: { argv: [...argv] },
    });
  if (timedOut)
    throw new KdpError('KDP_EXEC_TIMEOUT', `${argv.join(' ')}: killed after ${timeout} ms`, {
      details: { argv: [...argv] },
    });
  const res = { code: r.code, stdout: r.stdout, stderr: r.stderr };
  if (res.code !== 0 && !opts.allowFailure) throw execFailure(argv, res);
  return res;
}

export class WarmExec implements Exec {
  readonly #pools = new Map<string, { argv: readonly string[]; ready: Waiting[]; size: number }>();
  readonly #fallback: Exec;
  readonly #size: number;
  #closed = false;
  /** how many calls a waiting child served (tests and the trace read it) */
  hits = 0;

  /** pooled: argvs (one waiting child each) or { argv, size } */
  constructor(
    pooled: readonly (readonly string[] | { readonly argv: readonly string[]; readonly size: number })[],
    opts: { size?: number; fallback?: Exec } = {},
  ) {
    this.#size = opts.size ?? 1;
    for (const p of pooled) {
      const argv = 'argv' in p ? p.argv : p;
      this.#pools.set(key(argv), { argv, ready: [], size: 'argv' in p ? p.size : this.#size });
    }
    this.#fallback = opts.fallback ?? defaultExec;
  }

  run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const pool = this.#pools.get(key(argv));
    // a streamed input goes to a fresh child (the pooled ones are for small jobs written at once)
    if (!pool || opts.env || (opts.input !== undefined && typeof opts.input !== 'string'))
      return this.#fallback.run(argv, opts);
    let w: Waiting | undefined;
    while ((w = pool.ready.shift())) {
      if (w.child.exitCode === null && w.child.signalCode === null && w.child.pid !== undefined) break;
    }
    if (!w) return this.#fallback.run(argv, opts);
    this.hits++;
    return finishWaiting(argv, w, inputText(opts.input), opts);
  }

  /**
   * `ip -batch -` inside the network namespace at `netnsPath`, its job written later by finish(). A waiting
   * setns helper (SETNS_IP) is told the namespace now: it enters it and execs `ip`, which loads while the
   * caller does the work the lines wait for; no spawn on this path. Without one waiting (or on an unknown
   * architecture) `argv` (the equivalent `ip -n NAME -batch -`) is spawned now. finish('') lets it exit unused.
   */
  startIpIn(netnsPath: string, argv: readonly string[]): Started {
    const pool = this.#pools.get(key(SETNS_IP));
    let w: Waiting | undefined;
    while (pool && (w = pool.ready.shift())) {
      if (w.child.exitCode === null && w.child.signalCode === null && w.child.pid !== undefined) break;
    }
    if (w && !/[\n]/.test(netnsPath)) {
      this.hits++;
      w.child.stdin?.write(`${netnsPath}\n`);
      const used = w;
      return { finish: (input, opts) => finishWaiting(argv, used, input, opts) };
    }
    const fresh = spawnWaiting(argv);
    return { finish: (input, opts) => finishWaiting(argv, fresh, input, opts) };
  }

  /** Tops every pool up (call when idle: each spawn blocks the event loop until the child has exec'd). */
  refill(): void {
    if (this.#closed) return;
    for (const pool of this.#pools.values()) {
      pool.ready = pool.ready.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
      while (pool.ready.length < pool.size) pool.ready.push(spawnWaiting(pool.argv));
    }
  }

  /** Waiting children get EOF: with an empty job they exit having done nothing. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#pools.values()].flatMap((p) => p.ready.splice(0));
    for (const w of all) w.child.stdin?.end();
    await Promise.all(all.map((w) => w.done));
  }
}

/**
 * The agent: opens the lock file read-only (created 0600 by Node first; flock needs no write access), prints its inode, then takes (`L`) and drops (`U`)
 * an exclusive flock on request, answering `ok` to each; EOF (the server is gone) ends it, and with it the lock.
 * No modules (perl-base); single-quote free.
 */
const AGENT =
  '$|=1;open(F,"<",$ARGV[0]) or die "$ARGV[0]: $!\\n";print "ino ".(stat(F))[1]."\\n";while(defined($l=<STDIN>)){if($l=~/^L/){flock(F,2) or die "flock: $!\\n";print "ok\\n"}elsif($l=~/^U/){flock(F,8);print "ok\\n"}}';

export class LockAgent {
  readonly path: string;
  readonly #child: ChildProcess;
  readonly #waiters: ((line: string | undefined) => void)[] = [];
  #ino: Promise<number>;
  #queue: Promise<unknown> = Promise.resolve();
  #dead = false;

  constructor(path: string) {
    this.path = path;
    try {
      if (!path.startsWith('/proc/')) closeSync(openSync(path, 'a', 0o600)); // /proc/self/ns/net: the namespace itself
    } catch (err) {
      throw new KdpError('KDP_CNI_IO', `opening lock file ${path}: ${(err as Error).message}`, { cause: err });
    }
    this.#child = spawn('perl', ['-e', AGENT, path], { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    let stderr = '';
    this.#child.stdin?.on('error', () => {});
    this.#child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    this.#child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.#waiters.shift()?.(line);
      }
    });
    const die = () => {
      this.#dead = true;
      for (const w of this.#waiters.splice(0)) w(undefined);
      this.lastError = stderr.trim();
    };
    this.#child.once('error', die);
    this.#child.once('close', die);
    this.#ino = this.#line().then((l) => {
      const m = /^ino (\d+)$/.exec(l ?? '');
      if (!m) throw new KdpError('KDP_CNI_IO', `lock agent for ${path} failed: ${this.lastError || 'no answer'}`);
      return Number(m[1]);
    });
    this.#ino.catch(() => {});
  }

  lastError = '';

  #line(): Promise<string | undefined> {
    return new Promise((resolve) => {
      if (this.#dead) resolve(undefined);
      else this.#waiters.push(resolve);
    });
  }

  /** Whether the agent started and opened its file. */
  ready(): Promise<boolean> {
    return this.#ino.then(
      () => true,
      () => false,
    );
  }

  /** Whether the agent's open file is still the file at `path` (not removed and recreated under it). */
  async current(): Promise<boolean> {
    if (this.#dead) return false;
    try {
      return statSync(this.path).ino === (await this.#ino);
    } catch {
      return false;
    }
  }

  /** Exclusive lock; calls queue in order. Rejects with KDP_CNI_TRY_AGAIN after timeoutSec (the agent is killed). */
  lock(timeoutSec = 120): Promise<FileLock> {
    const prev = this.#queue;
    let next!: () => void;
    this.#queue = new Promise<void>((r) => (next = r)); // the next caller waits until this one has released
    return prev.then(async () => {
      try {
        await this.#ino;
        const answer = this.#line();
        this.#child.stdin?.write('L\n');
        let timer: NodeJS.Timeout | undefined;
        const line = await Promise.race([
          answer,
          new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutSec * 1000))),
        ]).finally(() => clearTimeout(timer));
        if (line === 'timeout') {
          this.kill();
          throw new KdpError('KDP_CNI_TRY_AGAIN', `could not lock ${this.path} within ${timeoutSec} s`);
        }
        if (line !== 'ok')
          throw new KdpError('KDP_CNI_IO', `lock agent for ${this.path} died: ${this.lastError || 'no answer'}`);
      } catch (err) {
        next();
        throw err;
      }
      let released = false;
      return {
        release: () => {
          if (released) return;
          released = true;
          if (!this.#dead) {
            void this.#line(); // U's acknowledgement; answers come in order, so the next L's follows it
            this.#child.stdin?.write('U\n');
          }
          next();
        },
      };
    });
  }

  kill(): void {
    this.#dead = true;
    this.#child.kill('SIGKILL');
  }

  close(): void {
    this.#child.stdin?.end();
  }
}

/** Lock agents by path, each checked against the file at that path before use (a recreated file gets a new agent). */
export class LockAgents {
  readonly #agents = new Map<string, LockAgent>();

  #broken = false;

  readonly lock = async (path: string, timeoutSec = 120): Promise<FileLock> => {
    if (this.#broken) return lockFile(path, timeoutSec);
    let a = this.#agents.get(path);
    if (a && !(await a.current())) {
      if (this.#agents.get(path) === a) {
        this.#agents.delete(path);
        a.close();
      }
      a = this.#agents.get(path);
    }
    if (!a) {
      a = new LockAgent(path);
      this.#agents.set(path, a);
      if (!(await a.ready())) {
        // no perl (or it cannot open the file): a `flock` fork per call, as the exec'd plugins do
        this.#agents.delete(path);
        if (a.lastError === '') this.#broken = true;
        return lockFile(path, timeoutSec);
      }
    }
    return a.lock(timeoutSec);
  };

  get size(): number {
    return this.#agents.size;
  }

  close(): void {
    for (const a of this.#agents.values()) a.close();
    this.#agents.clear();
  }
}

/** What the warm server hands the verbs: pre-spawned children and lock agents. */
export interface WarmContext {
  readonly exec: WarmExec;
  readonly locks: LockAgents;
}

/** setns(2) numbers by Node's process.arch (Perl has no setns builtin; `syscall` calls it by number). */
const SETNS_NR: Readonly<Record<string, number>> = {
  x64: 308,
  arm64: 268,
  ia32: 346,
  arm: 375,
  riscv64: 268,
  ppc64: 350,
  s390x: 339,
  loong64: 268,
};

/**
 * The pod-side helper: reads one line (a netns path) unbuffered from stdin, enters that namespace and execs
 * `ip -batch -` on the rest of stdin (what `nsenter --net=PATH ip -batch -` does). EOF first: exits unused.
 */
const SETNS_SCRIPT =
  '$p="";while(sysread(STDIN,$c,1)==1&&$c ne "\\n"){$p.=$c}exit 0 if $p eq "";open(N,"<",$p) or die "$p: $!\\n";' +
  'syscall($ARGV[0]+0,fileno(N),0x40000000)==0 or die "setns $p: $!\\n";close N;exec {"ip"} "ip","-batch","-";die "ip: $!\\n"';
export const SETNS_IP: readonly string[] = ['perl', '-e', SETNS_SCRIPT, String(SETNS_NR[process.arch] ?? 0)];

/** The argvs the server keeps a child waiting for (each reads its whole job from stdin). */
export const POOLED: readonly { readonly argv: readonly string[]; readonly size: number }[] = [
  { argv: ['ip', '-batch', '-'], size: 1 },
  // two: DEL lists the table, then deletes by handle
  { argv: ['nft', '-a', '-f', '-'], size: 2 },
  ...(SETNS_NR[process.arch] ? [{ argv: SETNS_IP, size: 1 }] : []),
];

export function createWarmContext(): WarmContext {
  return { exec: new WarmExec(POOLED), locks: new LockAgents() };
}
