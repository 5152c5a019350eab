// autopath in the lab (issue #18): kdp dns in node-1's namespace with `pods verified`; pods with the
// kubelet's resolv.conf (search ns.svc.cluster.local svc.cluster.local cluster.local, ndots:5). A short
// name (`web.other`) or a name with fewer dots than ndots (`web.other.svc.cluster.local`) costs the
// client one query per search step without autopath, and one query in all with `autopath @kubernetes`:
// the server walks the asking pod's search path and answers with a CNAME to the name that exists. A pod
// the cluster state does not list (pods verified finds no pod) gets the normal answers. The count is the
// server's own coredns_dns_requests_total; the answers are dig's and glibc's (getent).
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/common/exec-adapter.ts';
import { needsRoot } from '../helpers/gate.ts';
import { autopathLab } from '../helpers/dns-autopath.ts';

if (needsRoot(t)) {
  // dnsmasq (the upstream) is in the bench group of packages
  t.before(() =>
    run(['bash', fileURLToPath(new URL('../../scripts/setup-system.sh', import.meta.url)), 'bench'], {
      timeoutMs: 600_000,
    }),
  );
  t.test('autopath: a pod resolves a short name in one query; an unknown pod walks its search path', async (t) => {
    const l = await autopathLab({ hostSearch: ['corp.example'] });
    t.teardown(() => l.destroy());
    const { lab, client, stranger } = l;
    /** runs argv in `pod`; the queries the server received for it and how many autopath answered */
    const counted = async (pod: string, argv: string[]) => {
      const before = await l.counters();
      const out = (await lab.exec(pod, argv, { allowFailure: true })).stdout.trim();
      const after = await l.counters();
      return { out, queries: after.requests - before.requests, autopath: after.autopath - before.autopath };
    };
    const dig = (pod: string, name: string) => counted(pod, ['dig', '+search', '+short', '+time=2', '+tries=1', name]);
    const getent = (pod: string, name: string) => counted(pod, ['getent', 'ahostsv4', name]);

    // without autopath: the client walks its search path, one query per step
    const plain = await l.start(false);
    let r = await dig(client.ns, 'web.other');
    t.equal(r.out, '10.96.0.10', 'web.other without autopath');
    t.equal(r.queries, 2, 'web.other: web.other.ns.svc... NXDOMAIN, web.other.svc... the answer: 2 queries');
    r = await dig(client.ns, 'web.other.svc.cluster.local');
    t.equal(r.out, '10.96.0.10');
    t.equal(r.queries, 4, '4 dots < ndots:5: three search steps NXDOMAIN, then the name as asked: 4 queries');
    r = await getent(client.ns, 'web.other');
    t.match(r.out, /^10\.96\.0\.10\s/, 'getent (glibc) without autopath');
    t.equal(r.queries, 2, 'getent: 2 queries');
    r = await dig(client.ns, 'outside.example');
    t.equal(r.out, '203.0.113.7', 'an outside name, from the upstream');
    t.equal(r.queries, 4, 'outside.example: three search steps NXDOMAIN, then the name as asked: 4 queries');
    await l.stop(plain);

    // with autopath: one query, answered with a CNAME to the name that exists
    await l.start(true);
    r = await dig(client.ns, 'web.other');
    t.same(r.out.split('\n'), ['web.other.svc.cluster.local.', '10.96.0.10'], 'web.other: the CNAME, then the address');
    t.same([r.queries, r.autopath], [1, 1], 'web.other with autopath: 1 query');
    r = await dig(client.ns, 'web.other.svc.cluster.local');
    t.same(r.out.split('\n'), ['web.other.svc.cluster.local.', '10.96.0.10']);
    t.same([r.queries, r.autopath], [1, 1], 'web.other.svc.cluster.local with autopath: 1 query instead of 4');
    r = await getent(client.ns, 'web.other');
    t.match(r.out, /^10\.96\.0\.10\s/, 'getent (glibc) takes the CNAME answer');
    t.equal(r.queries, 1, 'getent with autopath: 1 query');
    r = await dig(client.ns, 'outside.example');
    t.same(r.out.split('\n'), ['outside.example.', '203.0.113.7'], 'outside.example: the last step went upstream');
    t.same([r.queries, r.autopath], [1, 1], 'outside.example with autopath: 1 query instead of 4');
    r = await dig(client.ns, 'web.other.svc.cluster.local.');
    t.same([r.out, r.queries, r.autopath], ['10.96.0.10', 1, 0], 'a fully qualified name: asked as is, no autopath');
    // a name no step finds: the server walked ns.svc, svc, cluster.local, corp.example and the name itself;
    // it gives back the first NXDOMAIN and the client walks its own path
    r = await dig(client.ns, 'nosuch.example');
    t.same([r.out, r.queries, r.autopath], ['', 4, 0], 'NXDOMAIN everywhere: the client walks its search path');
    // a pod the cluster state does not list: pods verified finds no pod, normal behaviour
    r = await dig(stranger.ns, 'web.other');
    t.same([r.out, r.queries, r.autopath], ['10.96.0.10', 2, 0], 'an unknown pod: 2 queries, no autopath');
  });
}
