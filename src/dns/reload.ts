// The reload plugin's watcher: re-reads the Corefile every interval (plus up to `jitter`), compares its
// SHA-512 with the running one, and hands a changed text to `onChange` (which parses and restarts; a
// Corefile that does not parse keeps the running configuration, as CoreDNS does).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

interface ReloadWatcher {
  stop(): void;
}

function sha512(text: string): string {
  return createHash('sha512').update(text).digest('hex');
}

export function watchCorefile(
  path: string,
  initial: string,
  opts: { intervalMs: number; jitterMs: number; random?: () => number; read?: (p: string) => Promise<string> },
  onChange: (text: string) => Promise<void>,
): ReloadWatcher {
  const read = opts.read ?? ((p: string) => readFile(p, 'utf8'));
  const random = opts.random ?? Math.random;
  let current = sha512(initial);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(tick, opts.intervalMs + Math.floor(random() * opts.jitterMs));
  };
  const tick = async () => {
    try {
      const text = await read(path);
      const h = sha512(text);
      if (h !== current && !stopped) {
        current = h;
        await onChange(text);
      }
    } catch {
      // unreadable for now (being replaced): try again next time
    }
    schedule();
  };
  schedule();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
