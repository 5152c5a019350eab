// kdp dns in the lab: it runs in node-1's namespace on a manifests directory; pods get a resolv.conf that
// points at it (search ns.svc.cluster.local svc.cluster.local cluster.local, ndots:5) through
// /etc/netns/<pod-ns>/resolv.conf, which `ip netns exec` bind-mounts. Real `dig` and `curl` in the pods:
// short names, headless members, SRV, an outside name answered by dnsmasq (the upstream, in the underlay
// namespace), a 100-record headless answer that truncates over UDP and completes over TCP, and
// `curl http://web.ns` through kdp proxy (#5) running in the same node.
import t from 'tap';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import type { NodePlan } from '../../src/lab/plan.ts';
import { run } from '../../src/common/exec-adapter.ts';
import { needsRoot } from '../helpers/gate.ts';
import { kdpDnsArgv, startUpstreamDnsmasq } from '../helpers/kdp-dns.ts';
import { waitForOutput as waitFor } from '../helpers/wait.ts';
import { addPod, routeNodes, startEcho } from '../helpers/pods.ts';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

if (needsRoot(t)) {
  // dnsmasq (the upstream) is in the bench group of packages
  t.before(() =>
    run(['bash', fileURLToPath(new URL('../../scripts/setup-system.sh', import.meta.url)), 'bench'], {
      timeoutMs: 600_000,
    }),
  );
  t.test('pods resolve cluster and outside names through kdp dns', async (t) => {
    const lab = await Lab.create({ nodes: 2 });
    t.teardown(() => lab.destroy());
    const dir = mkdtempSync(join(tmpdir(), 'kdp-dns-lab-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const manifests = join(dir, 'manifests');
    mkdirSync(manifests);
    const [n1, n2] = lab.nodes as [NodePlan, NodePlan];
    const [client, web1, web2] = await Promise.all([
      addPod(lab, n1, 'client', 10),
      addPod(lab, n1, 'web1', 11),
      addPod(lab, n2, 'web2', 10),
    ]);
    await routeNodes(lab);
    await Promise.all([startEcho(lab, web1, { http: [8080] }), startEcho(lab, web2, { http: [8080] })]);

    // the upstream: dnsmasq on the underlay host, knowing one outside name
    const dnsmasq = startUpstreamDnsmasq(lab, dir, ['log-facility=-']);
    // waited for: dnsmasq removes its pid file in `dir` as it exits, which must not race the removal of `dir`
    // (teardowns run last-registered first; rmSync fails on a file that vanishes under it and leaves the rest)
    t.teardown(async () => {
      dnsmasq.kill('SIGTERM');
      await dnsmasq.exited;
    });

    // cluster state
    const slice = (svc: string, eps: { ip: string; hostname?: string }[], ports: object[]) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { namespace: 'ns', name: `${svc}-1`, labels: { 'kubernetes.io/service-name': svc } },
      addressType: 'IPv4',
      ports,
      endpoints: eps.map((e) => ({
        addresses: [e.ip],
        conditions: { ready: true },
        ...(e.hostname ? { hostname: e.hostname } : {}),
      })),
    });
    const httpPort = [{ name: 'http', port: 8080, protocol: 'TCP' }];
    const objects = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { namespace: 'ns', name: 'web' },
        spec: {
          clusterIP: '10.96.0.10',
          clusterIPs: ['10.96.0.10'],
          ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }],
        },
      },
      slice('web', [{ ip: web1.ip4 }, { ip: web2.ip4 }], httpPort),
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { namespace: 'ns', name: 'hl' },
        spec: { clusterIP: 'None', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
      },
      slice(
        'hl',
        [
          { ip: web1.ip4, hostname: 'web-0' },
          { ip: web2.ip4, hostname: 'web-1' },
        ],
        httpPort,
      ),
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { namespace: 'ns', name: 'many' },
        spec: { clusterIP: 'None', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
      },
      slice(
        'many',
        Array.from({ length: 100 }, (_, i) => ({ ip: `198.19.9.${i + 1}` })),
        httpPort,
      ),
    ];
    writeFileSync(
      join(manifests, 'cluster.json'),
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 1),
    );

    // kdp dns in node-1, the kubeadm Corefile with forward pointing at a resolv.conf naming dnsmasq
    writeFileSync(join(dir, 'resolv.upstream'), `nameserver ${lab.plan.underlayHost4}\n`);
    const corefile = (ttl: number) => `.:53 {
    errors
    health {
       lameduck 1s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl ${ttl}
    }
    prometheus :9153
    forward . ${join(dir, 'resolv.upstream')} {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload 2s 1s
    loadbalance
}
`;
    writeFileSync(join(dir, 'Corefile'), corefile(30));
    const dns = lab.spawn(n1.ns, kdpDnsArgv(join(dir, 'Corefile'), manifests));
    t.teardown(() => dns.kill('SIGTERM'));
    await waitFor('kdp dns', dns, /kdp dns ready/);
    // /ready answers 503 until the manifests are synced (slow on a loaded machine), then 200 OK
    let ready = '';
    for (let i = 0; i < 150 && ready !== 'OK'; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 200));
      ready = (
        await lab.exec(n1.ns, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:8181/ready'], { allowFailure: true })
      ).stdout;
    }
    t.equal(ready, 'OK', '/ready on 8181');

    // the pods' resolv.conf
    const etc = `/etc/netns/${client.ns}`;
    mkdirSync(etc, { recursive: true });
    t.teardown(() => rmSync(etc, { recursive: true, force: true }));
    writeFileSync(
      join(etc, 'resolv.conf'),
      `search ns.svc.cluster.local svc.cluster.local cluster.local\nnameserver ${n1.ip4}\noptions ndots:5\n`,
    );
    const dig = async (...args: string[]) =>
      (
        await lab.exec(client.ns, ['dig', '+search', '+short', '+time=2', '+tries=2', ...args], { allowFailure: true })
      ).stdout.trim();
    const lines = (s: string) => s.split('\n').filter(Boolean).sort();

    t.equal(await dig('web'), '10.96.0.10', 'web (search path)');
    t.equal(await dig('web.ns'), '10.96.0.10', 'web.ns');
    t.equal(await dig('web.ns.svc.cluster.local.'), '10.96.0.10', 'FQDN');
    t.same(lines(await dig('hl')), [web1.ip4, web2.ip4].sort(), 'headless: every ready member');
    t.equal(await dig('web-1.hl'), web2.ip4, 'a headless member by hostname');
    t.same(
      lines(await dig('SRV', '_http._tcp.hl')),
      ['0 50 8080 web-0.hl.ns.svc.cluster.local.', '0 50 8080 web-1.hl.ns.svc.cluster.local.'],
      'SRV of the named port',
    );
    t.same(
      lines(await dig('-x', web1.ip4)),
      [`${web1.ip4.replace(/\./g, '-')}.web.ns.svc.cluster.local.`, 'web-0.hl.ns.svc.cluster.local.'],
      'PTR of a member: one per service selecting it',
    );
    t.equal(await dig('outside.example'), '203.0.113.7', 'an outside name, answered by dnsmasq through forward');
    const nx = await lab.exec(client.ns, ['dig', '+search', '+time=2', 'nothing.example'], { allowFailure: true });
    t.match(nx.stdout, /status: NXDOMAIN/, 'an unknown outside name: NXDOMAIN from the upstream');

    // 100 members: truncated over UDP without EDNS, complete over TCP
    const udp = await lab.exec(client.ns, ['dig', '+ignore', '+noedns', '+time=2', 'many.ns.svc.cluster.local'], {
      allowFailure: true,
    });
    t.match(udp.stdout, /flags: qr aa tc rd ra;/, 'UDP: TC');
    const tcp = await lab.exec(client.ns, ['dig', '+tcp', '+time=2', 'many.ns.svc.cluster.local'], {
      allowFailure: true,
    });
    t.match(tcp.stdout, /ANSWER: 100,/, 'TCP: all 100');

    // glibc's resolver (getaddrinfo, with the search path) in curl: a headless member answers
    const viaHeadless = await lab.exec(client.ns, ['curl', '-sS', '--max-time', '5', 'http://hl:8080/x'], {
      allowFailure: true,
    });
    t.match(
      viaHeadless.stdout,
      /"name":"web[12]"/,
      `curl http://hl:8080 reaches a member (${viaHeadless.stderr.trim()})`,
    );

    // curl http://web.ns through the service proxy (#5) in the same node
    const proxy = lab.spawn(n1.ns, [
      process.execPath,
      CLI,
      '--log-format',
      'json',
      'proxy',
      '--mode',
      'nftables',
      '--manifests',
      manifests,
      '--node-name',
      n1.name,
      '--cluster-cidr',
      '198.19.0.0/16',
      '--min-sync-period',
      '0s',
      '--healthz-bind-address',
      '',
      '--metrics-bind-address',
      '',
    ]);
    t.teardown(() => proxy.kill('SIGTERM'));
    await waitFor('kdp proxy', proxy, /^ready$/m);
    let got = '';
    for (let i = 0; i < 40 && !/"name":"web[12]"/.test(got); i++) {
      got = (await lab.exec(client.ns, ['curl', '-sS', '--max-time', '2', 'http://web.ns/'], { allowFailure: true }))
        .stdout;
      if (!/"name"/.test(got)) await new Promise((r) => setTimeout(r, 100));
    }
    t.match(got, /"name":"web[12]"/, 'curl http://web.ns: name from kdp dns, ClusterIP through kdp proxy');

    // metrics saw it all
    const m = await lab.exec(n1.ns, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:9153/metrics']);
    t.match(
      m.stdout,
      /coredns_dns_responses_total\{[^}]*rcode="NXDOMAIN",plugin="kubernetes"\} [1-9]/,
      'search-path NXDOMAINs counted',
    );
    t.match(
      m.stdout,
      /coredns_dns_responses_total\{[^}]*rcode="NOERROR",plugin="forward"\} [1-9]/,
      'forwarded answers counted',
    );

    // reload: an edited Corefile takes effect without a restart by hand
    const ttlOf = async () =>
      (
        await lab.exec(client.ns, ['dig', '+noall', '+answer', '+time=1', '+tries=1', 'web.ns.svc.cluster.local'], {
          allowFailure: true,
        })
      ).stdout.split(/\s+/)[1];
    t.equal(await ttlOf(), '30');
    writeFileSync(join(dir, 'Corefile.new'), corefile(7));
    renameSync(join(dir, 'Corefile.new'), join(dir, 'Corefile'));
    let ttl: string | undefined;
    for (let i = 0; i < 100 && ttl !== '7'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      ttl = await ttlOf();
    }
    t.equal(ttl, '7', 'the new ttl is served after the reload');
  });
}
