// The shape of a `kdp` subcommand. main.ts holds the table; each command declares its flags (flags.ts).
import type { Logger } from '../common/log.ts';
import type { FlagTable } from './flags.ts';

export interface CommandContext {
  readonly log: Logger;
  /** where a command writes its human or JSON output (logs go to stderr) */
  readonly out: (text: string) => void;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  /** the help text; its flag lines are generated from `flags` */
  readonly usage: string;
  /** the flag declarations, by action (`kdp cni serve` -> 'serve'; '' for a command without actions) */
  readonly flags: Readonly<Record<string, FlagTable>>;
  run(argv: readonly string[], ctx: CommandContext): Promise<number>;
}

/**
 * Resolves when one of the signals arrives (for commands that run until Ctrl-C) or after ttlMs.
 * Holds the process alive meanwhile: signal listeners alone do not, so a command with no open socket
 * (the node agent) would otherwise exit as soon as its event loop is empty. `abort` ends the wait (and the
 * hold) early, for a command whose start-up failed after it began listening.
 */
export function untilStopped(ttlMs?: number, abort?: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    const keepAlive = setInterval(() => {}, 1 << 30);
    const done = (why: string) => {
      // removed after this dispatch: a library counting listeners during it (signal-exit) must still see ours,
      // or it re-raises the signal and the process dies before it has cleaned up
      setImmediate(() => {
        for (const s of signals) process.removeListener(s, handlers[s]);
      });
      if (timer) clearTimeout(timer);
      clearInterval(keepAlive);
      resolve(why);
    };
    const handlers = Object.fromEntries(signals.map((s) => [s, () => done(s)])) as Record<
      (typeof signals)[number],
      () => void
    >;
    for (const s of signals) process.prependListener(s, handlers[s]);
    const timer = ttlMs === undefined ? undefined : setTimeout(() => done('ttl'), ttlMs);
    abort?.addEventListener('abort', () => done(typeof abort.reason === 'string' ? abort.reason : 'aborted'), {
      once: true,
    });
  });
}
