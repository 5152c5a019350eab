// Builds each plugin into one file, dist/cni/<plugin>: a shell preamble that answers VERSION itself
// (runtimes probe every plugin with VERSION before each ADD and DEL) and otherwise execs Node on the same
// file, followed by the esbuild bundle (CommonJS: it starts faster than ESM; node builtins only, verbs loaded lazily).
// The first lines are valid as both sh and JavaScript: `":" //;` is a no-op for sh and a string + comment
// for JS. `kdp cni install` builds with the path of the Node copy it puts next to the plugins. When a
// `kdp cni serve` listens for this network namespace, the preamble forwards the call to it (src/cni/server.ts).
import { build } from 'esbuild';
import { chmodSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { versionJson } from '../src/cnispec/skel.ts';
import { SOCKET_DIR } from '../src/cni/server.ts';

export const PLUGINS = ['kdp-bridge', 'kdp-host-local', 'kdp-portmap'] as const;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = join(ROOT, 'dist', 'cni');
export const NODE_MARK = '@@KDP_NODE@@';

/**
 * The thin client, in Perl without modules (perl-base is Essential on Debian; `perl -e` starts in a few ms,
 * curl in ~30 ms here, Node in ~100 ms): when a `kdp cni serve` listens on the socket for this network
 * namespace, it forwards the call as one HTTP/1.0 request (CNI_* as X-Cni-* headers, the config as the body)
 * and prints the answer (HTTP 200 = exit 0, 500 = exit 1 with the error JSON; any other status means the
 * verb did not run, and it runs it in Node itself with the buffered config). When nothing accepts the
 * connection (no server, a stale socket after a crash) it execs Node on the plugin file with stdin untouched.
 * argv: node path, plugin file, plugin args. Single-quote free: it sits inside sh single quotes.
 */
export const PERL_CLIENT = [
  // KDP_CNI_TRACE: time the client too (Time::HiRes only then) and print the server's trace to stderr
  '$T=$ENV{KDP_CNI_TRACE};if($T){require Time::HiRes;$T0=Time::HiRes::time()*1000}',
  '$n=shift;$f=$ARGV[0];$s=$ENV{KDP_CNI_SOCKET};',
  'if(!defined($s)||$s eq ""){readlink("/proc/self/ns/net")=~/(\\d+)/;$s="SOCKDIR/$1.sock"}',
  'if(-S $s&&socket(C,1,1,0)&&connect(C,pack("S",1).$s)){',
  'local $/;$b=<STDIN>;$b="" unless defined $b;($p=$f)=~s{.*/}{};',
  '$h="POST /$p HTTP/1.0\\r\\nHost: kdp\\r\\nContent-Length: ".length($b)."\\r\\n";',
  'for $k (qw(COMMAND CONTAINERID NETNS IFNAME ARGS PATH)){$v=$ENV{"CNI_$k"};$v="" unless defined $v;$v=~s/[\\r\\n]//g;$h.="X-Cni-".ucfirst(lc $k).": $v\\r\\n"}',
  '$h.="X-Kdp-Trace: $T0\\r\\n" if $T;',
  'select((select(C),$|=1)[0]);print C $h."\\r\\n".$b;$T1=Time::HiRes::time()*1000 if $T;$r=<C>;$r="" unless defined $r;',
  'if($r=~m{^HTTP/\\S+ (\\d+).*?\\r\\n\\r\\n(.*)\\z}s){($c,$d)=($1,$2);if($c==200||$c==500){',
  'if($T){$T2=Time::HiRes::time()*1000;print STDERR "$1\\n" if $r=~/\\r\\nx-kdp-trace: ([^\\r\\n]*)/i;printf STDERR "kdp-trace-client {\\"start\\":%.2f,\\"sent\\":%.2f,\\"answer\\":%.2f}\\n",$T0,$T1,$T2}',
  'print $d;exit($c==200?0:1)}',
  // any other status: the server did not run the verb (e.g. overloaded): run it here, config through a pipe
  '$ENV{NODE_COMPILE_CACHE}=$ENV{KDP_CNI_COMPILE_CACHE}||"/var/cache/kdp-cni";open(P,"|-",$n,@ARGV) or exit 127;print P $b;close P;exit($?&255?1:$?>>8)}',
  'print "{\\"cniVersion\\":\\"1.1.0\\",\\"code\\":999,\\"msg\\":\\"kdp cni serve: no answer\\"}\\n";exit 1}',
  'printf STDERR "kdp-trace-client {\\"start\\":%.2f}\\n",$T0 if $T;',
  '$ENV{NODE_COMPILE_CACHE}=$ENV{KDP_CNI_COMPILE_CACHE}||"/var/cache/kdp-cni";exec {$n} $n,@ARGV;exit 127',
].join('');

export function preamble(nodePath: string): string {
  const client = PERL_CLIENT.replace('SOCKDIR', SOCKET_DIR);
  return [
    '#!/bin/sh',
    `":" //; if [ "$CNI_COMMAND" = VERSION ]; then echo '${versionJson()}'; exit 0; fi`,
    // a warm `kdp cni serve` for this network namespace? the Perl client forwards the call or execs Node
    `":" //; if command -v perl >/dev/null; then exec perl -e '${client}' "${nodePath}" "$0" "$@"; fi`,
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

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = await buildPlugins();
  process.stdout.write(files.join('\n') + '\n');
}
