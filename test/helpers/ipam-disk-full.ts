// Run under `unshare --mount --propagation private`: mounts a tiny tmpfs (private to this process's mount
// namespace, gone when it exits), fills it, and drives the kdp-host-local plugin against it. Prints one JSON
// line for the test to judge: what the full disk gave, what was left on it, and what a retry gave once freed.
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const [bin, dir] = process.argv.slice(2) as [string, string];
const pexec = promisify(execFile);
mkdirSync(dir, { recursive: true });
await pexec('mount', ['-t', 'tmpfs', '-o', 'size=16k,nr_inodes=64', 'kdp-fuzz', dir]);

const conf = JSON.stringify({
  cniVersion: '1.1.0',
  name: 'full',
  type: 'kdp-host-local',
  ipam: { type: 'kdp-host-local', ranges: [[{ subnet: '198.19.9.0/24' }]], dataDir: dir },
});
const ipam = (command: string, id: string) =>
  new Promise<{ code: number; stdout: string }>((resolve) => {
    const child = execFile(
      join(bin, 'kdp-host-local'),
      [],
      {
        env: {
          PATH: process.env.PATH,
          CNI_COMMAND: command,
          CNI_CONTAINERID: id,
          CNI_NETNS: '/run/netns/none',
          CNI_IFNAME: 'eth0',
          CNI_PATH: bin,
        },
      },
      (err, stdout) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout }),
    );
    child.stdin?.end(conf);
  });

// one ADD while there is room, so the network directory, its lock and last_reserved exist
const first = await ipam('ADD', 'first');
// fill every remaining byte
let i = 0;
for (;;) {
  try {
    writeFileSync(join(dir, `filler-${i++}`), Buffer.alloc(4096, 1));
  } catch {
    break;
  }
}
const full = await ipam('ADD', 'victim');
const files = (() => {
  const d = join(dir, 'full');
  return readdirSync(d).map((f) => ({ f, size: statSync(join(d, f)).size, text: readFileSync(join(d, f), 'utf8') }));
})();
for (const f of readdirSync(dir)) if (f.startsWith('filler-')) rmSync(join(dir, f));
const retry = await ipam('ADD', 'victim');
const del = await ipam('DEL', 'victim');
process.stdout.write(JSON.stringify({ first, full, files, retry, del }) + '\n');
