// Structured logs: one JSON object per line (pino) by default; a human-readable form on a TTY.
// Inner layers receive a Logger by injection; nothing creates a global logger at import time.
import { pino } from 'pino';

type LogFn = (obj: object | string, msg?: string) => void;
/** The subset of pino's logger kdp uses, so tests can pass a recording fake. */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

export type LogFormat = 'json' | 'pretty' | 'auto';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

interface LogOptions {
  readonly level?: LogLevel;
  readonly format?: LogFormat;
  readonly name?: string;
  /** file descriptor to write to (default 2: logs never mix with a command's output on stdout) */
  readonly fd?: number;
  readonly isTTY?: boolean;
}

async function createLoggerBox(opts: LogOptions = {}): Promise<{ readonly logger: Logger }> {
  const fd = opts.fd ?? 2;
  const tty = opts.isTTY ?? (fd === 2 ? process.stderr.isTTY === true : process.stdout.isTTY === true);
  const format = opts.format ?? 'auto';
  const base = { level: opts.level ?? 'info', name: opts.name ?? 'kdp', base: { pid: process.pid } };
  if (format === 'pretty' || (format === 'auto' && tty)) {
    // loaded only when a person is reading: JSON mode never pays for it
    const { default: pretty } = await import('pino-pretty');
    return asLogger(
      pino(
        base,
        pretty({ destination: fd, sync: true, colorize: tty, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' }),
      ),
    );
  }
  return asLogger(pino({ ...base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd, sync: true })));
}

// pino's type has an index signature that makes TypeScript suspect a `then`; our port is narrower.
function asLogger(l: Logger): { readonly logger: Logger } {
  return { logger: l };
}

/** A logger that drops everything (unit tests, library defaults). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

export async function createLogger(opts: LogOptions = {}): Promise<Logger> {
  return (await createLoggerBox(opts)).logger;
}
