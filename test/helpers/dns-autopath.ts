// The autopath lab (issue #18), shared by test/e2e/dns-autopath.test.ts and bench/dns/autopath.ts: one node
// running kdp dns (pods verified, autopath @kubernetes or not) on a manifests directory, a pod `client` of
// namespace ns that the cluster state lists and a pod `stranger` it does not, both with the kubelet's
// resolv.conf (search ns.svc.cluster.local svc.cluster.local cluster.local, ndots:5), and a Service
// other/web (10.96.0.10). The server's own resolv.conf searches `hostSearch` (autopath walks those domains
// after the cluster's, as CoreDNS does with its /etc/resolv.conf); the upstream of its forward
// is dnsmasq in the underlay namespace: outside.example is 203.0.113.7, other names under example are
// NXDOMAIN. Needs root and dnsmasq (scripts/setup-system.sh bench).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../../src/lab/lab.ts';
import type { NodePlan } from '../../src/lab/plan.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';
import { kdpDnsArgv, startUpstreamDnsmasq } from './kdp-dns.ts';
import { waitForOutput } from './wait.ts';
import { addPod } from './pods.ts';
import type { TestPod } from './pods.ts';

/** The Corefile: the cluster zone with pods verified, autopath @kubernetes or not, forward to `upstream` (a resolv.conf). */
export function autopathCorefile(autopath: boolean, upstream: string): string {
  return `.:53 {
    errors
    ready
    ${autopath ? 'autopath @kubernetes' : ''}
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods verified
       fallthrough in-addr.arpa ip6.arpa
    }
    prometheus :9153
    forward . ${upstream}
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loadbalance
}
`;
}

export interface AutopathLab {
  readonly lab: Lab;
  readonly node: NodePlan;
  /** a pod of namespace ns, listed in the cluster state */
  readonly client: TestPod;
  /** a pod the cluster state does not list */
  readonly stranger: TestPod;
  /** starts kdp dns (autopath on or off) and waits for /ready */
  start(autopath: boolean): Promise<Spawned>;
  stop(dns: Spawned): Promise<void>;
  /** the server's coredns_dns_requests_total and coredns_autopath_success_total, summed over labels */
  counters(): Promise<{ requests: number; autopath: number }>;
  destroy(): Promise<void>;
}

export async function autopathLab(opts: { hostSearch?: readonly string[] } = {}): Promise<AutopathLab> {
  const lab = await Lab.create({ nodes: 1 });
  const dir = mkdtempSync(join(tmpdir(), 'kdp-dns-autopath-'));
  const running = new Set<Spawned>();
  const destroy = async () => {
    for (const d of running) d.kill('SIGTERM');
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const manifests = join(dir, 'manifests');
    mkdirSync(manifests);
    const [node] = lab.nodes as [NodePlan];
    const [client, stranger] = await Promise.all([addPod(lab, node, 'client', 10), addPod(lab, node, 'stranger', 11)]);
    const dnsmasq = startUpstreamDnsmasq(lab, dir);
    running.add(dnsmasq);
    writeFileSync(join(dir, 'resolv.upstream'), `nameserver ${lab.plan.underlayHost4}\n`);
    // the server's own search domains: autopath tries them after the cluster's (CoreDNS reads /etc/resolv.conf)
    const hostSearch = opts.hostSearch ?? [];
    lab.setResolvConf(
      node.ns,
      (hostSearch.length > 0 ? `search ${hostSearch.join(' ')}\n` : '') + 'nameserver 127.0.0.1\n',
    );
    const objects = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { namespace: 'other', name: 'web' },
        spec: { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80 }] },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { namespace: 'ns', name: 'client' },
        spec: { nodeName: node.name, containers: [{ name: 'c', image: 'x' }] },
        status: {
          phase: 'Running',
          podIP: client.ip4,
          podIPs: [{ ip: client.ip4 }],
          conditions: [{ type: 'Ready', status: 'True' }],
        },
      },
    ];
    writeFileSync(
      join(manifests, 'cluster.json'),
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 1),
    );
    const resolv = `search ns.svc.cluster.local svc.cluster.local cluster.local\nnameserver ${node.ip4}\noptions ndots:5\n`;
    lab.setResolvConf(client.ns, resolv);
    lab.setResolvConf(stranger.ns, resolv);
    const curl = (url: string) =>
      lab.exec(node.ns, ['curl', '-s', '--max-time', '5', url], { allowFailure: true }).then((r) => r.stdout);
    return {
      lab,
      node,
      client,
      stranger,
      async start(autopath) {
        writeFileSync(join(dir, 'Corefile'), autopathCorefile(autopath, join(dir, 'resolv.upstream')));
        const dns = lab.spawn(node.ns, kdpDnsArgv(join(dir, 'Corefile'), manifests));
        running.add(dns);
        await waitForOutput('kdp dns', dns, /kdp dns ready/);
        // /ready answers 503 until the manifests are synced
        let ready = '';
        for (let i = 0; i < 150 && (ready = await curl('http://127.0.0.1:8181/ready')) !== 'OK'; i++)
          await new Promise((r) => setTimeout(r, 200));
        if (ready !== 'OK') throw new Error(`kdp dns not ready: ${ready} ${dns.output().slice(-2000)}`);
        return dns;
      },
      async stop(dns) {
        dns.kill('SIGTERM');
        await dns.exited;
        running.delete(dns);
      },
      async counters() {
        const m = await curl('http://127.0.0.1:9153/metrics');
        const sum = (name: string) =>
          [...m.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'gm'))].reduce((s, x) => s + Number(x[1]), 0);
        return { requests: sum('coredns_dns_requests_total'), autopath: sum('coredns_autopath_success_total') };
      },
      destroy,
    };
  } catch (err) {
    await destroy();
    throw err;
  }
}
