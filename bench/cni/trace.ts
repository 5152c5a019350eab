// Where the time of one CNI ADD/DEL goes (issue #4): the same lab node, plugins and warm `kdp cni serve` as
// bench.ts, every kdp call with KDP_CNI_TRACE=1 (the Perl client, the server and the exec path print
// epoch-millisecond marks to stderr, src/cnispec/trace.ts). Prints the median of each phase, from the harness's
// exec to its exit, for the serve path and the exec path, beside the reference plugin's wall time and
// `ip netns exec NODE true` (what the harness adds to every sample).
//   npm run bench:cni-trace      (PODS=20 by default; needs root)
// Tracing itself costs a little (Perl loads Time::HiRes): read the phases, not the totals, from this.
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/common/exec-adapter.ts';
import { CniDriver } from '../../src/cnispec/runtime.ts';
import { startBenchNode } from './node.ts';
import type { Conflist } from '../../src/cnispec/runtime.ts';
import { epochMs } from '../../src/cnispec/trace.ts';

const PODS = Number(process.env.PODS ?? 20);

interface Traced {
  t0: number;
  t1: number;
  client?: { start: number; sent?: number; answer?: number };
  marks: Record<string, number>;
  spans: [string, number, number][];
}

function parse(stderr: string, t0: number, ms: number): Traced {
  const out: Traced = { t0, t1: t0 + ms, marks: {}, spans: [] };
  for (const line of stderr.split('\n')) {
    if (line.startsWith('kdp-trace-client ')) out.client = JSON.parse(line.slice(17)) as Traced['client'];
    else if (line.startsWith('kdp-trace ')) {
      const j = JSON.parse(line.slice(10)) as { marks: [string, number][]; spans: [string, number, number][] };
      for (const [n, t] of j.marks) out.marks[n] = t;
      out.spans = j.spans;
    }
  }
  return out;
}

const median = (xs: readonly number[]) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Phase name -> per-sample durations; spans as "start offset / duration" from the request's arrival. */
function phases(samples: readonly Traced[], serve: boolean): [string, number[]][] {
  const rows = new Map<string, number[]>();
  const put = (k: string, v: number) => void (rows.get(k) ?? rows.set(k, []).get(k)!).push(v);
  for (const s of samples) {
    const m = s.marks;
    const c = s.client;
    const origin = serve ? m.received! : m['node start']!;
    if (serve && c) {
      put('harness exec -> Perl client running (ip netns exec + sh + perl)', c.start! - s.t0);
      put('client: connect + send', c.sent! - c.start!);
      put('socket -> server has the request', m.received! - c.sent!);
    } else if (c) {
      put('harness exec -> Perl client running (ip netns exec + sh + perl)', c.start! - s.t0);
      put('Perl client -> Node running (exec + Node start)', m['node start']! - c.start!);
    }
    put(serve ? 'server: parse request' : 'Node start -> request parsed', m.parsed! - origin);
    put('load verbs', m.loaded! - m.parsed!);
    for (const [name, a, b] of s.spans) {
      put(`  child/step ${name}: starts at +ms`, a - m.loaded!);
      put(`  child/step ${name}: takes ms`, b - a);
    }
    if (m['ipam unlocked']) put('  ipam unlocked at +ms', m['ipam unlocked'] - m.loaded!);
    put('verb work (loaded -> children done)', m['children done']! - m.loaded!);
    put('result assembly + stdout', m.result! - m['children done']!);
    if (serve && c) {
      put('server answered -> client has the answer', c.answer! - m.answered!);
      put('client answer -> harness sees exit', s.t1 - c.answer!);
    } else put('result -> harness sees exit', s.t1 - m.result!);
    put('TOTAL (harness wall)', s.t1 - s.t0);
  }
  return [...rows.entries()];
}

const bench = await startBenchNode('kdp-cni-trace');
try {
  const { node: n, bin, data } = bench;
  const common = { isGateway: true, ipMasq: true, hairpinMode: true };
  const { serve: sock, plain: plainSock } = bench.sockets;
  const mk = (name: string, bridge: string, subnet: string, type: string, ipamType: string): Conflist => ({
    cniVersion: '1.0.0',
    name,
    plugins: [{ type, bridge, ...common, ipam: { type: ipamType, ranges: [[{ subnet }]], dataDir: data } }],
  });
  const impls = [
    {
      name: 'serve',
      driver: new CniDriver({ path: [bin], nodeNs: n.ns, env: { KDP_CNI_SOCKET: sock, KDP_CNI_TRACE: '1' } }),
      list: mk('traceserve', 'kdpt1', '198.19.1.64/26', 'kdp-bridge', 'kdp-host-local'),
    },
    {
      name: 'serve-no-prespawn',
      driver: new CniDriver({ path: [bin], nodeNs: n.ns, env: { KDP_CNI_SOCKET: plainSock, KDP_CNI_TRACE: '1' } }),
      list: mk('traceplain', 'kdpt2', '198.19.2.0/26', 'kdp-bridge', 'kdp-host-local'),
    },
    {
      name: 'exec',
      driver: new CniDriver({
        path: [bin],
        nodeNs: n.ns,
        env: { KDP_CNI_SOCKET: join(data, 'none.sock'), KDP_CNI_TRACE: '1' },
      }),
      list: mk('traceexec', 'kdpt0', '198.19.1.0/26', 'kdp-bridge', 'kdp-host-local'),
    },
    {
      name: 'reference',
      driver: new CniDriver({ path: ['/usr/lib/cni'], nodeNs: n.ns }),
      list: mk('traceref', 'reft0', '198.19.1.128/25', 'bridge', 'host-local'),
    },
  ];
  const pods: string[] = [];
  for (let p = 0; p < PODS; p++) pods.push(await bench.lab.addNamespace(`trace-${p}`));
  const got: Record<string, Record<'ADD' | 'DEL', Traced[]>> = {};
  for (const i of impls) got[i.name] = { ADD: [], DEL: [] };
  const nsExec: number[] = [];
  const load0 = loadavg()[0]!;
  for (const i of impls) {
    // warm-up: bridge creation, page cache, compile cache
    const conf = CniDriver.pluginConfig(i.list, i.list.plugins[0]!, {});
    await i.driver.invoke(i.list.plugins[0]!.type, {
      command: 'ADD',
      containerId: `warm-${i.name}`,
      ifname: 'eth9',
      netns: `/run/netns/${pods[0]}`,
      stdin: conf,
    });
    await i.driver.invoke(i.list.plugins[0]!.type, {
      command: 'DEL',
      containerId: `warm-${i.name}`,
      ifname: 'eth9',
      netns: `/run/netns/${pods[0]}`,
      stdin: conf,
    });
  }
  for (const verb of ['ADD', 'DEL'] as const) {
    for (const [p, ns] of pods.entries()) {
      for (const [k, i] of impls.entries()) {
        const conf = CniDriver.pluginConfig(i.list, i.list.plugins[0]!, {});
        const t0 = epochMs();
        const r = await i.driver.invoke(i.list.plugins[0]!.type, {
          command: verb,
          containerId: `${i.name}-${p}`,
          ifname: `eth${k}`,
          netns: `/run/netns/${ns}`,
          stdin: conf,
        });
        if (r.code !== 0) throw new Error(`${i.name} ${verb} failed: ${r.stdout} ${r.stderr}`);
        got[i.name]![verb].push(parse(r.stderr, t0, r.ms));
      }
      if (verb === 'ADD') {
        const t0 = performance.now();
        await run(['ip', 'netns', 'exec', n.ns, 'true']);
        nsExec.push(performance.now() - t0);
      }
    }
  }
  const load1 = loadavg()[0]!;
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
  const out: string[] = [`PODS=${PODS}, loadavg ${load0.toFixed(1)} -> ${load1.toFixed(1)}; medians in ms`, ''];
  out.push(
    `reference ADD wall ${f(median(got.reference!.ADD.map((s) => s.t1 - s.t0)))}, DEL ${f(median(got.reference!.DEL.map((s) => s.t1 - s.t0)))}; ip netns exec NODE true: ${f(median(nsExec))}`,
    '',
  );
  for (const verb of ['ADD', 'DEL'] as const) {
    // one table per verb, a column per kdp path; a phase a path does not have is '-'
    const names = ['serve', 'serve-no-prespawn', 'exec'];
    const cols = names.map(
      (name) => new Map(phases(got[name]![verb], name.startsWith('serve')).map(([k, v]) => [k, median(v)])),
    );
    const keys = [...new Set(cols.flatMap((c) => [...c.keys()]))];
    out.push(
      `### ${verb}`,
      '',
      `| phase (median ms) | ${names.map((x) => `kdp ${x}`).join(' | ')} |`,
      `|---|${names.map(() => '---').join('|')}|`,
    );
    for (const k of keys) out.push(`| ${k} | ${cols.map((c) => f(c.get(k) ?? NaN)).join(' | ')} |`);
    out.push('');
  }
  process.stdout.write(out.join('\n') + '\n');
} finally {
  await bench.close();
}
