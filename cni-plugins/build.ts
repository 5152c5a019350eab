// Builds each plugin into one file, dist/cni/<plugin>: a shell preamble that answers VERSION itself
// (runtimes probe every plugin with VERSION before each ADD and DEL) and otherwise execs Node on the same
// file, followed by the esbuild bundle (CommonJS: it starts faster than ESM; node builtins only, verbs loaded lazily).
// The first lines are valid as both sh and JavaScript: `":" //;` is a no-op for sh and a string + comment
// for JS. `kdp cni install` builds with the path of the Node copy it puts next to the plugins. When a
// `kdp cni serve` listens for this network namespace, the preamble forwards the call to it (src/cni/server.ts).
import { build } from 'esbuild';
import { chmodSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { versionJson } from '../src/cni/skel.ts';
import { SOCKET_DIR } from '../src/cni/server.ts';

export const PLUGINS = ['kdp-bridge', 'kdp-host-local', 'kdp-portmap'] as const;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = join(ROOT, 'dist', 'cni');
export const NODE_MARK = '@@KDP_NODE@@';

export function preamble(nodePath: string): string {
  const headers = ['Command', 'Containerid', 'Netns', 'Ifname', 'Args', 'Path'].map((h) => `-H "X-Cni-${h}: $CNI_${h.toUpperCase()}"`).join(' ');
  return [
    '#!/bin/sh',
    `":" //; if [ "$CNI_COMMAND" = VERSION ]; then echo '${versionJson()}'; exit 0; fi`,
    // a warm `kdp cni serve` for this network namespace? forward the call; if it cannot be reached, run here
    `":" //; n=$(readlink /proc/self/ns/net); n=\${n#net:[}; S=\${KDP_CNI_SOCKET:-${SOCKET_DIR}/\${n%]}.sock}`,
    `":" //; if [ -S "$S" ] && command -v curl >/dev/null; then c=$(cat); printf '%s' "$c" | curl -sS --unix-socket "$S" --fail-with-body ${headers} --data-binary @- "http://kdp/\${0##*/}" 2>/dev/null; r=$?; [ $r -eq 7 ] || exit $([ $r -eq 0 ] && echo 0 || echo 1); printf '%s' "$c" | NODE_COMPILE_CACHE="\${KDP_CNI_COMPILE_CACHE:-/var/cache/kdp-cni}" "${nodePath}" "$0" "$@"; exit $?; fi`,
    `":" //; NODE_COMPILE_CACHE="\${KDP_CNI_COMPILE_CACHE:-/var/cache/kdp-cni}" exec "${nodePath}" "$0" "$@" # ${NODE_MARK}`,
    '',
  ].join('\n');
}

export async function buildPlugins(outDir = DIST, nodePath = realpathSync(process.execPath)): Promise<string[]> {
  mkdirSync(outDir, { recursive: true });
  // extensionless files inside this "type": "module" checkout would otherwise load as ESM
  writeFileSync(join(outDir, 'package.json'), '{ "type": "commonjs" }\n');
  const out: string[] = [];
  for (const p of PLUGINS) {
    const res = await build({
      entryPoints: [join(ROOT, 'cni-plugins', p, 'main.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node24',
      minify: true,
      write: false,
      legalComments: 'none',
      logLevel: 'silent',
    });
    const js = res.outputFiles[0]?.text ?? '';
    const file = join(outDir, p);
    writeFileSync(file, preamble(nodePath) + js);
    chmodSync(file, 0o755);
    out.push(file);
  }
  return out;
}

/** Whether dist/cni is missing or older than the sources it is built from. */
export function isBuilt(outDir = DIST): boolean {
  try {
    for (const p of PLUGINS) if (!readFileSync(join(outDir, p), 'utf8').includes(NODE_MARK)) return false;
    return true;
  } catch {
    return false;
  }
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = await buildPlugins();
  process.stdout.write(files.join('\n') + '\n');
}
