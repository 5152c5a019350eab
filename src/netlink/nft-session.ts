// A long-lived `nft -i` process (used by the proxy's nftables backend and the policy agent). Every `nft -f`
// invocation rebuilds nft's cache of the ruleset (all chains and sets of the table) before it can add a rule:
// O(services) per sync, the cost kube-proxy pays. A
// session keeps one process, and each transaction is sent as one line (one line = one atomic batch),
// followed by a cheap command that fails with a unique marker so we know where the batch's output ends.
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { KdpError } from '../common/errors.ts';

export interface NftRunner {
  /** Applies one transaction (lines of an nft script). Throws KdpError on an nft error. */
  apply(lines: readonly string[]): Promise<void>;
  close(): void;
}

export class NftSession implements NftRunner {
  readonly #argv: readonly string[];
  #child: ChildProcessWithoutNullStreams | undefined;
  #buf = '';
  #seq = 0;
  #waiter: { marker: string; resolve: (out: string) => void; reject: (e: Error) => void } | undefined;
  #queue: Promise<void> = Promise.resolve();

  /** `argv`: how to start nft (e.g. ['nft'] or ['ip', 'netns', 'exec', NS, 'nft']); `-i` is appended. */
  constructor(argv: readonly string[] = ['nft']) {
    this.#argv = argv;
  }

  #start(): ChildProcessWithoutNullStreams {
    const [file, ...args] = this.#argv;
    const child = spawn(file!, [...args, '-i'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const onData = (b: Buffer) => {
      this.#buf += b.toString('utf8');
      const w = this.#waiter;
      if (!w) return;
      // the marker's error is three lines: "Error: ...", the command echoed, a line of carets
      const echo = `list table ip ${w.marker}\n`;
      const i = this.#buf.indexOf(echo);
      if (i < 0) return;
      const caretEnd = this.#buf.indexOf('\n', i + echo.length);
      if (caretEnd < 0) return;
      const out = this.#buf.slice(0, i);
      this.#buf = this.#buf.slice(caretEnd + 1);
      this.#waiter = undefined;
      w.resolve(out);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.stdin.on('error', () => {});
    child.on('exit', () => {
      if (this.#child === child) this.#child = undefined;
      const w = this.#waiter;
      this.#waiter = undefined;
      w?.reject(new KdpError('KDP_EXEC_FAILED', `nft -i exited: ${this.#buf.slice(-500)}`));
    });
    child.on('error', () => {});
    this.#child = child;
    this.#buf = '';
    return child;
  }

  apply(lines: readonly string[]): Promise<void> {
    const job = this.#queue.then(() => this.#apply(lines));
    this.#queue = job.catch(() => {});
    return job;
  }

  async #apply(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const child = this.#child ?? this.#start();
    const n = ++this.#seq;
    const markerTable = `kdp-marker-${process.pid}-${n}`;
    const out = await new Promise<string>((resolve, reject) => {
      // nft answers `list table` of a missing table with an error line naming it: that is our marker
      this.#waiter = { marker: markerTable, resolve, reject };
      child.stdin.write(`${lines.join('; ')}\nlist table ip ${markerTable}\n`);
    });
    // the marker's own error message is several lines; anything before it is the batch's output
    const text = out.replace(/Error: No such file or directory\n$/, '').trim();
    if (/Error/.test(text))
      throw new KdpError('KDP_EXEC_FAILED', `nft: ${text.split('\n').slice(0, 6).join(' | ')}`, {
        details: { stderr: text.slice(-4096) },
      });
  }

  close(): void {
    this.#child?.stdin.end();
    this.#child?.kill();
    this.#child = undefined;
  }
}
