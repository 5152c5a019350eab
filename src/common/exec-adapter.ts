// The one door to external programs: argv arrays only, never a shell string.
// Input (rule text, scripts) goes on stdin. Namespace-scoped work is a child process too
// (`ip -n NS ...`, `ip netns exec NS ...`): kdp never switches namespaces inside Node.
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { KdpError, errorMessage } from './errors.ts';

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ExecOptions {
  /**
   * text written to the child's stdin: a string, or pieces of it produced lazily (a generator), written as they
   * come with the pipe's backpressure, in writes of about STREAM_CHUNK characters. stdin is closed after the
   * last piece; if producing a piece throws, the child is killed before it sees the end of its input.
   */
  readonly input?: string | Iterable<string>;
  /** milliseconds before the child is killed (default 30 s) */
  readonly timeoutMs?: number;
  /** resolve with a non-zero code instead of throwing */
  readonly allowFailure?: boolean;
  readonly env?: NodeJS.ProcessEnv;
}

export interface Exec {
  run(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
}

const MAX_BUFFER = 256 * 1024 * 1024;
/** characters per write of a streamed input: the pieces are joined up to this size */
export const STREAM_CHUNK = 64 * 1024;

/** The whole input as one string (for consumers that cannot stream, e.g. fakes in tests). */
export function inputText(input: string | Iterable<string> | undefined): string {
  if (input === undefined || typeof input === 'string') return input ?? '';
  let out = '';
  for (const piece of input) out += piece;
  return out;
}

/** Resolves when `w` can take more, or when it is gone (the child exited: its exit code tells). */
function drained(w: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      w.off('drain', done);
      w.off('close', done);
      resolve();
    };
    w.on('drain', done);
    w.on('close', done);
  });
}

/**
 * Writes the pieces to `w` with backpressure, then ends it. Resolves with the error that producing a piece
 * threw (then `w` is NOT ended: the caller kills the child, which must not take a truncated input as whole).
 */
async function pump(w: Writable, pieces: Iterable<string>): Promise<unknown> {
  let buf = '';
  try {
    for (const piece of pieces) {
      if (w.destroyed) return undefined;
      buf += piece;
      if (buf.length < STREAM_CHUNK) continue;
      const more = w.write(buf);
      buf = '';
      if (!more) await drained(w);
    }
  } catch (err) {
    return err;
  }
  if (!w.destroyed) w.end(buf);
  return undefined;
}

function describe(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

export function execFailure(argv: readonly string[], res: ExecResult): KdpError {
  const tail = res.stderr.trim().split('\n').slice(-3).join(' | ');
  return new KdpError('KDP_EXEC_FAILED', `${describe(argv)}: exit ${res.code}${tail ? `: ${tail}` : ''}`, {
    details: { argv: [...argv], exitCode: res.code, stderr: res.stderr.slice(-4096) },
  });
}

/** Runs argv[0] with the rest as arguments. Throws KdpError KDP_EXEC_FAILED / KDP_EXEC_TIMEOUT. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new KdpError('KDP_INTERNAL', 'run: empty argv'));
  const timeout = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    let inputError: unknown;
    const child = execFile(
      file,
      args,
      { encoding: 'utf8', maxBuffer: MAX_BUFFER, timeout, killSignal: 'SIGKILL', env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        if (inputError !== undefined) {
          reject(
            new KdpError(
              'KDP_EXEC_FAILED',
              `${describe(argv)}: producing its input failed: ${errorMessage(inputError)}`,
              {
                cause: inputError,
                details: { argv: [...argv] },
              },
            ),
          );
          return;
        }
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(
            new KdpError('KDP_EXEC_FAILED', `${file}: command not found`, { cause: err, details: { argv: [...argv] } }),
          );
          return;
        }
        if (err && err.killed) {
          reject(
            new KdpError('KDP_EXEC_TIMEOUT', `${describe(argv)}: killed after ${timeout} ms`, {
              details: { argv: [...argv] },
            }),
          );
          return;
        }
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        const res = { code, stdout, stderr };
        if (code !== 0 && !opts.allowFailure) reject(execFailure(argv, res));
        else resolve(res);
      },
    );
    const stdin = child.stdin;
    if (!stdin) return;
    stdin.on('error', () => {}); // EPIPE when the child exits before reading: its exit code tells
    const input = opts.input;
    if (input === undefined || typeof input === 'string') {
      stdin.end(input ?? '');
      return;
    }
    void pump(stdin, input).then((e) => {
      if (e === undefined) return;
      inputError = e;
      child.kill('SIGKILL');
    });
  });
}

/** Synchronous variant, for exit handlers only (process 'exit' cannot await). Never throws. */
export function runSyncQuiet(argv: readonly string[], timeoutMs = 10_000): number {
  const [file, ...args] = argv;
  if (file === undefined) return 1;
  try {
    execFileSync(file, args, { stdio: 'ignore', timeout: timeoutMs });
    return 0;
  } catch (err) {
    const status = (err as { status?: number }).status;
    return typeof status === 'number' ? status : 1;
  }
}

export interface Spawned {
  readonly pid: number;
  readonly exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
  /** everything the child printed so far */
  output(): string;
}

/** Starts a long-running child (a server in a lab namespace). Its output is kept (bounded) for diagnostics. */
export function spawnChild(argv: readonly string[], opts: { env?: NodeJS.ProcessEnv } = {}): Spawned {
  const [file, ...args] = argv;
  if (file === undefined) throw new KdpError('KDP_INTERNAL', 'spawnChild: empty argv');
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString('utf8');
    if (out.length > 65536) out = out.slice(-32768);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (err) => {
      out += `\nspawn error: ${err.message}`;
      resolve(null);
    });
    child.on('exit', (code) => resolve(code));
  });
  if (child.pid === undefined) {
    // spawn failed synchronously (ENOENT is reported via 'error'); keep a consistent shape
    return { pid: -1, exited, kill: () => {}, output: () => out };
  }
  const pid = child.pid;
  return {
    pid,
    exited,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    output: () => out,
  };
}

/** Stops children: SIGTERM, then SIGKILL for any still running after `graceMs`. */
export async function stopChildren(children: readonly Spawned[], graceMs: number): Promise<void> {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => Promise.race([c.exited, new Promise((r) => setTimeout(r, graceMs))])));
  for (const c of children) c.kill('SIGKILL');
}

export const defaultExec: Exec = { run };
