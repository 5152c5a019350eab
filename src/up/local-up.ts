// `kdp up` without root: no namespaces, no rules. The same manifests, served on this machine's loopback:
// every pod's IP is replaced by a loopback address (127.77.x.y) where an echo server answers for it, and the
// components run as plain processes: the userspace proxy (NodePorts on 127.0.0.1), DNS on 127.0.0.1:5353 and
// the ingress on 127.0.0.1:8080/8443. ClusterIPs need root (a redirect rule) and are not served here.
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { run, spawnChild } from '../common/exec-adapter.ts';
import { errorMessage } from '../common/errors.ts';
import type { Spawned } from '../common/exec-adapter.ts';
import type { Logger } from '../common/log.ts';
import { ManifestsSource } from '../k8s/manifests-source.ts';
import { keyOf } from '../model/types.ts';
import { takeSnapshot } from './snapshot.ts';
import type { Snapshot } from './snapshot.ts';
import { DNS_LABEL } from './plan.ts';
import type { TryCommand } from './plan.ts';
import { waitUntil } from './lab-up.ts';

const MAIN = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const ECHO = fileURLToPath(new URL('../lab/echo-server.ts', import.meta.url));

const LOCAL_PORTS = { dns: 5353, http: 8080, https: 8443, ingressHealth: 10254, proxyHealth: 10256 } as const;

export function loopbackFor(i: number): string {
  return `127.77.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

type Raw = Record<string, unknown> & {
  kind?: string;
  items?: Raw[];
  metadata?: { namespace?: string; name?: string };
  status?: Record<string, unknown>;
};

/** Rewrites pod IPs (and host IPs) to loopback addresses. Pure over parsed documents. */
export function rewriteDocs(docs: Raw[], map: ReadonlyMap<string, string>): Raw[] {
  const fix = (d: Raw): Raw => {
    if (d.kind === 'List' && Array.isArray(d.items)) return { ...d, items: d.items.map(fix) };
    if (d.kind !== 'Pod' || !d.status) return d;
    const key = `${d.metadata?.namespace ?? 'default'}/${d.metadata?.name ?? ''}`;
    const ip = map.get(key);
    if (!ip) return d;
    return { ...d, status: { ...d.status, podIP: ip, podIPs: [{ ip }], hostIP: '127.0.0.1' } };
  };
  return docs.map(fix);
}

interface LocalUpOptions {
  readonly manifestsDir: string;
  readonly log: Logger;
  readonly progress: (line: string) => void;
}

export class LocalUp {
  readonly dir: string;
  readonly snapshot: Snapshot;
  readonly commands: readonly TryCommand[];
  readonly #procs: Spawned[] = [];

  private constructor(dir: string, snapshot: Snapshot, commands: TryCommand[]) {
    this.dir = dir;
    this.snapshot = snapshot;
    this.commands = commands;
  }

  static async start(opts: LocalUpOptions): Promise<LocalUp> {
    const original = await takeSnapshot(new ManifestsSource({ dir: opts.manifestsDir, log: opts.log }));
    const backends = original.pods.filter(
      (p) =>
        !p.hostNetwork &&
        p.meta.labels[DNS_LABEL[0]] !== DNS_LABEL[1] &&
        p.podIPs.length > 0 &&
        p.phase !== 'Succeeded' &&
        p.phase !== 'Failed',
    );
    const map = new Map(backends.map((p, i) => [keyOf(p.meta), loopbackFor(i)]));
    const dir = mkdtempSync(join(tmpdir(), 'kdp-up-'));
    for (const f of readdirSync(opts.manifestsDir).filter((f) => /\.(ya?ml|json)$/i.test(f))) {
      const docs = parseAllDocuments(readFileSync(join(opts.manifestsDir, f), 'utf8'))
        .map((d) => d.toJS() as Raw)
        .filter(Boolean);
      writeFileSync(
        join(dir, f.replace(/\.json$/i, '.yaml')),
        rewriteDocs(docs, map)
          .map((d) => stringify(d))
          .join('---\n'),
      );
    }
    const snapshot = await takeSnapshot(new ManifestsSource({ dir, log: opts.log }));
    const up = new LocalUp(dir, snapshot, localCommands(snapshot, map));
    try {
      opts.progress(
        `unprivileged: no namespaces or rules; ${backends.length} pods served by echo servers on 127.77.x.y, manifests rewritten in ${dir}`,
      );
      const node = process.execPath;
      const log = ['--log-format', 'json', '--log-level', 'info']; // kept in memory, shown when a component fails
      const waits: Promise<void>[] = [];
      for (const p of backends) {
        const ports = [...new Set(p.containerPorts.filter((c) => c.protocol === 'TCP').map((c) => c.containerPort))];
        const proc = spawnChild([
          node,
          ECHO,
          '--name',
          p.meta.name,
          '--host',
          map.get(keyOf(p.meta))!,
          '--http',
          (ports.length ? ports : [8080]).join(','),
        ]);
        up.#procs.push(proc);
        waits.push(waitUntil(`echo ${p.meta.name}`, async () => proc.output().includes('ready'), 90_000, [proc]));
      }
      const http200 = (url: string) => async () =>
        (
          await run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '1', url], {
            allowFailure: true,
          })
        ).stdout === '200';
      const proxy = spawnChild([
        node,
        MAIN,
        ...log,
        'proxy',
        '--mode',
        'userspace',
        '--manifests',
        dir,
        '--node-name',
        snapshot.nodes[0]?.meta.name ?? 'node-1',
        '--nodeport-addresses',
        '127.0.0.1',
        '--healthz-bind-address',
        `127.0.0.1:${LOCAL_PORTS.proxyHealth}`,
        '--metrics-bind-address',
        '',
      ]);
      const dns = spawnChild([
        node,
        MAIN,
        ...log,
        'dns',
        '--manifests',
        dir,
        '--listen',
        '127.0.0.1',
        '--port',
        String(LOCAL_PORTS.dns),
        '--health',
        '127.0.0.1:18080',
        '--ready',
        '127.0.0.1:18181',
        '--metrics',
        '127.0.0.1:19153',
      ]);
      const ingress = spawnChild([
        node,
        MAIN,
        ...log,
        'ingress',
        '--manifests',
        dir,
        '--bind',
        '127.0.0.1',
        '--http-port',
        String(LOCAL_PORTS.http),
        '--https-port',
        String(LOCAL_PORTS.https),
        '--healthz-port',
        String(LOCAL_PORTS.ingressHealth),
        '--access-log',
        'off',
      ]);
      up.#procs.push(proxy, dns, ingress);
      waits.push(
        waitUntil('userspace proxy', http200(`http://127.0.0.1:${LOCAL_PORTS.proxyHealth}/healthz`), 90_000, [proxy]),
      );
      waits.push(waitUntil('dns', http200('http://127.0.0.1:18181/ready'), 90_000, [dns]));
      waits.push(
        waitUntil('ingress', http200(`http://127.0.0.1:${LOCAL_PORTS.ingressHealth}/healthz`), 90_000, [ingress]),
      );
      await Promise.all(waits);
      opts.progress(
        'userspace proxy (NodePorts on 127.0.0.1), DNS on 127.0.0.1:5353, ingress on 127.0.0.1:8080/8443 ready',
      );
      return up;
    } catch (err) {
      await up.stop();
      throw err;
    }
  }

  async check(): Promise<{ cmd: TryCommand; ok: boolean; output: string }[]> {
    const out = [];
    for (const cmd of this.commands) {
      try {
        const res = await run(cmd.argv, { allowFailure: true, timeoutMs: 15_000 });
        out.push({ cmd, ok: res.code === 0 && cmd.expect.test(res.stdout), output: (res.stdout + res.stderr).trim() });
      } catch (err) {
        out.push({ cmd, ok: false, output: errorMessage(err) });
      }
    }
    return out;
  }

  async stop(): Promise<void> {
    for (const p of this.#procs) p.kill('SIGTERM');
    await Promise.allSettled(this.#procs.map((p) => Promise.race([p.exited, new Promise((r) => setTimeout(r, 3000))])));
    for (const p of this.#procs) p.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Commands that work without root: NodePort through the userspace proxy, DNS on 5353, ingress on 8080/8443. */
export function localCommands(snap: Snapshot, map: ReadonlyMap<string, string>): TryCommand[] {
  const out: TryCommand[] = [];
  const served = (ns: string, svc: string) => {
    const names = new Set<string>();
    for (const s of snap.endpointSlices) {
      if (s.meta.namespace !== ns || s.serviceName !== svc) continue;
      for (const e of s.endpoints)
        if (e.conditions.ready && e.targetRef?.kind === 'Pod' && map.has(`${ns}/${e.targetRef.name}`))
          names.add(e.targetRef.name);
    }
    return [...names];
  };
  const alt = (names: readonly string[]) =>
    new RegExp(`"name":"(${names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})"`);
  const np = snap.services.find(
    (s) =>
      s.type === 'NodePort' &&
      s.ports.some((p) => p.protocol === 'TCP' && p.nodePort) &&
      served(s.meta.namespace, s.meta.name).length > 0,
  );
  if (np) {
    const port = np.ports.find((p) => p.protocol === 'TCP' && p.nodePort)!.nodePort!;
    out.push({
      what: `NodePort ${port} of ${keyOf(np.meta)} through the userspace proxy`,
      argv: ['curl', '-sS', '--max-time', '5', `http://127.0.0.1:${port}/`],
      expect: alt(served(np.meta.namespace, np.meta.name)),
    });
  }
  const clusterIP = snap.services.filter(
    (s) => s.type === 'ClusterIP' && !s.headless && s.clusterIPs.length > 0 && s.meta.namespace !== 'kube-system',
  );
  const svc = clusterIP.find((s) => s.selector) ?? clusterIP[0];
  if (svc) {
    out.push({
      what: `cluster DNS answers ${svc.meta.name}.${svc.meta.namespace}`,
      argv: [
        'dig',
        '@127.0.0.1',
        '-p',
        String(LOCAL_PORTS.dns),
        '+short',
        `${svc.meta.name}.${svc.meta.namespace}.svc.cluster.local`,
      ],
      expect: new RegExp(`^${svc.clusterIPs[0]!.replace(/\./g, '\\.')}$`, 'm'),
    });
  }
  for (const ing of snap.ingresses) {
    const rule = ing.rules.find((r) => r.host && !r.host.startsWith('*') && r.paths.some((p) => p.backend.service));
    if (!rule?.host) continue;
    const route = rule.paths.find((p) => p.backend.service && p.pathType !== 'ImplementationSpecific');
    if (!route) continue;
    const names = served(ing.meta.namespace, route.backend.service!.name);
    if (names.length === 0) continue;
    const tls = ing.tls.some((t) => t.hosts.includes(rule.host!));
    if (tls) {
      out.push({
        what: `Ingress ${keyOf(ing.meta)} over HTTPS (SNI; ${route.path} -> ${route.backend.service!.name})`,
        argv: [
          'curl',
          '-sS',
          '-k',
          '--max-time',
          '5',
          '--resolve',
          `${rule.host}:${LOCAL_PORTS.https}:127.0.0.1`,
          `https://${rule.host}:${LOCAL_PORTS.https}${route.path}`,
        ],
        expect: alt(names),
      });
      out.push({
        what: 'plain HTTP to a TLS host is redirected (308)',
        argv: [
          'curl',
          '-sS',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}\\n',
          '--max-time',
          '5',
          '-H',
          `Host: ${rule.host}`,
          `http://127.0.0.1:${LOCAL_PORTS.http}/`,
        ],
        expect: /^308$/m,
      });
    } else {
      out.push({
        what: `Ingress ${keyOf(ing.meta)} by host (${route.path} -> ${route.backend.service!.name})`,
        argv: [
          'curl',
          '-sS',
          '--max-time',
          '5',
          '-H',
          `Host: ${rule.host}`,
          `http://127.0.0.1:${LOCAL_PORTS.http}${route.path}`,
        ],
        expect: alt(names),
      });
    }
    break;
  }
  return out;
}
