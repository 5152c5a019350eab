// autopath in the lab (issue #18): kdp dns in node-1's namespace with `pods verified`; pods with the
// kubelet's resolv.conf (search ns.svc.cluster.local svc.cluster.local cluster.local, ndots:5). A short
// name (`web.other`) or a name with fewer dots than ndots (`web.other.svc.cluster.local`) costs the
// client one query per search step without autopath, and one query in all with `autopath @kubernetes`:
// the server walks the asking pod's search path and answers with a CNAME to the name that exists. A pod
// the cluster state does not list (pods verified finds no pod) gets the normal answers. The count is the
// server's own coredns_dns_requests_total; the answers are dig's and glibc's (getent).
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import type { NodePlan } from '../../src/lab/plan.ts';
import { needsRoot } from '../helpers/gate.ts';
import { waitForOutput as waitFor } from '../helpers/wait.ts';
import { addPod } from '../helpers/pods.ts';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** The Corefile: the cluster zone with pods verified, autopath @kubernetes or not. */
export function autopathCorefile(autopath: boolean): string {
  return `.:53 {
    errors
    ready
    ${autopath ? 'autopath @kubernetes' : ''}
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods verified
       fallthrough in-addr.arpa ip6.arpa
    }
    prometheus :9153
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loadbalance
}
`;
}

if (needsRoot(t)) {
  t.test('autopath: a pod resolves a short name in one query; an unknown pod walks its search path', async (t) => {
    const lab = await Lab.create({ nodes: 1 });
    t.teardown(() => lab.destroy());
    const dir = mkdtempSync(join(tmpdir(), 'kdp-dns-autopath-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const manifests = join(dir, 'manifests');
    mkdirSync(manifests);
    const [n1] = lab.nodes as [NodePlan];
    const [client, stranger] = await Promise.all([addPod(lab, n1, 'client', 10), addPod(lab, n1, 'stranger', 11)]);
    // the server's own search domains: autopath tries them after the cluster's (CoreDNS reads /etc/resolv.conf)
    lab.setResolvConf(n1.ns, 'search corp.example\nnameserver 127.0.0.1\n');
    const objects = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { namespace: 'other', name: 'web' },
        spec: { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80 }] },
      },
      // `client` is a pod of namespace ns; `stranger` is not in the cluster state
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { namespace: 'ns', name: 'client' },
        spec: { nodeName: n1.name, containers: [{ name: 'c', image: 'x' }] },
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
    const resolv = `search ns.svc.cluster.local svc.cluster.local cluster.local\nnameserver ${n1.ip4}\noptions ndots:5\n`;
    lab.setResolvConf(client.ns, resolv);
    lab.setResolvConf(stranger.ns, resolv);

    const requests = async (): Promise<{ requests: number; autopath: number }> => {
      const m = (await lab.exec(n1.ns, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:9153/metrics'])).stdout;
      const sum = (name: string) =>
        [...m.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'gm'))].reduce((s, x) => s + Number(x[1]), 0);
      return { requests: sum('coredns_dns_requests_total'), autopath: sum('coredns_autopath_success_total') };
    };
    /** runs argv in `pod`; the queries the server received for it and how many autopath answered */
    const counted = async (pod: string, argv: string[]) => {
      const before = await requests();
      const out = (await lab.exec(pod, argv, { allowFailure: true })).stdout.trim();
      const after = await requests();
      return { out, queries: after.requests - before.requests, autopath: after.autopath - before.autopath };
    };
    const dig = (pod: string, name: string) => counted(pod, ['dig', '+search', '+short', '+time=2', '+tries=1', name]);
    const getent = (pod: string, name: string) => counted(pod, ['getent', 'ahostsv4', name]);

    const start = async (autopath: boolean) => {
      writeFileSync(join(dir, 'Corefile'), autopathCorefile(autopath));
      const dns = lab.spawn(n1.ns, [
        process.execPath,
        CLI,
        '--log-format',
        'json',
        'dns',
        '--corefile',
        join(dir, 'Corefile'),
        '--manifests',
        manifests,
        '--lameduck',
        '0',
      ]);
      await waitFor('kdp dns', dns, /kdp dns ready/);
      let ready = '';
      for (let i = 0; i < 150 && ready !== 'OK'; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 200));
        const res = await lab.exec(n1.ns, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:8181/ready'], {
          allowFailure: true,
        });
        ready = res.stdout;
      }
      t.equal(ready, 'OK', `/ready (autopath ${autopath ? 'on' : 'off'})`);
      return dns;
    };
    const stop = async (dns: ReturnType<typeof lab.spawn>) => {
      dns.kill('SIGTERM');
      await dns.exited;
    };

    // without autopath: the client walks its search path, one query per step
    const plain = await start(false);
    t.teardown(() => plain.kill('SIGTERM'));
    let r = await dig(client.ns, 'web.other');
    t.equal(r.out, '10.96.0.10', 'web.other without autopath');
    t.equal(r.queries, 2, 'web.other: web.other.ns.svc... NXDOMAIN, web.other.svc... the answer: 2 queries');
    r = await dig(client.ns, 'web.other.svc.cluster.local');
    t.equal(r.out, '10.96.0.10');
    t.equal(r.queries, 4, '4 dots < ndots:5: three search steps NXDOMAIN, then the name as asked: 4 queries');
    r = await getent(client.ns, 'web.other');
    t.match(r.out, /^10\.96\.0\.10\s/, 'getent (glibc) without autopath');
    t.equal(r.queries, 2, 'getent: 2 queries');
    await stop(plain);

    // with autopath: one query, answered with a CNAME to the name that exists
    const auto = await start(true);
    t.teardown(() => auto.kill('SIGTERM'));
    r = await dig(client.ns, 'web.other');
    t.same(r.out.split('\n'), ['web.other.svc.cluster.local.', '10.96.0.10'], 'web.other: the CNAME, then the address');
    t.same([r.queries, r.autopath], [1, 1], 'web.other with autopath: 1 query');
    r = await dig(client.ns, 'web.other.svc.cluster.local');
    t.same(r.out.split('\n'), ['web.other.svc.cluster.local.', '10.96.0.10']);
    t.same([r.queries, r.autopath], [1, 1], 'web.other.svc.cluster.local with autopath: 1 query instead of 4');
    r = await getent(client.ns, 'web.other');
    t.match(r.out, /^10\.96\.0\.10\s/, 'getent (glibc) takes the CNAME answer');
    t.equal(r.queries, 1, 'getent with autopath: 1 query');
    r = await dig(client.ns, 'web.other.svc.cluster.local.');
    t.same([r.out, r.queries, r.autopath], ['10.96.0.10', 1, 0], 'a fully qualified name: asked as is, no autopath');
    // a name no step finds: the server walked ns.svc, svc, cluster.local, corp.example and the name itself;
    // it gives back the first NXDOMAIN and the client walks its own path
    r = await dig(client.ns, 'nosuch.other');
    t.same([r.out, r.queries, r.autopath], ['', 4, 0], 'NXDOMAIN everywhere: the client walks its search path');
    // a pod the cluster state does not list: pods verified finds no pod, normal behaviour
    r = await dig(stranger.ns, 'web.other');
    t.same([r.out, r.queries, r.autopath], ['10.96.0.10', 2, 0], 'an unknown pod: 2 queries, no autopath');
    await stop(auto);
  });
}
