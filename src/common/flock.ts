// An exclusive flock(2) from Node, which has no flock binding: the `flock` program (util-linux) is
// given our open file description as fd 3 and locks it; the lock belongs to the description, so it
// stays held after the helper exits and is released when we close the fd, or when this process dies
// (kill -9 included). Compatible with host-local's lock on the same file.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { KdpError } from './errors.ts';

export interface FileLock {
  release(): void;
}

/** Takes an exclusive lock on a file: lockFile below (a `flock` fork per call) or the warm server's lock agents. */
export type Locker = (path: string, timeoutSec?: number) => Promise<FileLock>;

export function lockFile(path: string, timeoutSec = 120): Promise<FileLock> {
  let fd: number;
  try {
    fd = openSync(path, 'a', 0o600);
  } catch (err) {
    return Promise.reject(
      new KdpError('KDP_CNI_IO', `opening lock file ${path}: ${(err as Error).message}`, { cause: err }),
    );
  }
  return new Promise((resolve, reject) => {
    const child = spawn('flock', ['-x', '-w', String(timeoutSec), '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', (err) => {
      closeSync(fd);
      reject(new KdpError('KDP_CNI_IO', `flock: ${err.message}`, { cause: err }));
    });
    child.on('exit', (code) => {
      if (code === 0) {
        let open = true;
        resolve({
          release: () => {
            if (open) closeSync(fd);
            open = false;
          },
        });
        return;
      }
      closeSync(fd);
      reject(
        new KdpError(
          'KDP_CNI_TRY_AGAIN',
          `could not lock ${path} within ${timeoutSec} s${stderr ? `: ${stderr.trim()}` : ''}`,
        ),
      );
    });
  });
}
