// Waiting for a spawned child to say it is up (a line in its output), failing fast when it exits instead.
import type { Spawned } from '../../src/common/exec-adapter.ts';

export async function waitForOutput(what: string, child: Spawned, re: RegExp, ms = 45_000): Promise<void> {
  const end = Date.now() + ms;
  while (!re.test(child.output())) {
    if (Date.now() > end) throw new Error(`${what} did not start: ${child.output().slice(-3000)}`);
    const exited = await Promise.race([
      child.exited.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), 25)),
    ]);
    if (exited) throw new Error(`${what} exited: ${child.output().slice(-3000)}`);
  }
}

/** Polls `fn` every 50 ms until it gives a value (a throw counts as none); fails after timeoutMs saying `what`. */
export async function until<T>(
  fn: () => Promise<T | undefined | null>,
  opts: { timeoutMs: number; what: string | (() => string) },
): Promise<T> {
  const end = Date.now() + opts.timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined && v !== null) return v;
    if (Date.now() > end)
      throw new Error(`${typeof opts.what === 'string' ? opts.what : opts.what()}: not within ${opts.timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
