// Table tests of the record logic, in zone-file notation (CoreDNS plugin/kubernetes/handler_test.go style).
// The cluster and its IP plan are in fixtures.ts.
import t from 'tap';
import type { Test } from 'tap';
import { KubernetesRecords } from '../../../src/dns/plugins/kubernetes/handler.ts';
import {
  DEFAULT_KUBERNETES_CONFIG,
  dashedIP,
  podLabelIP,
  reverseName,
  reverseNameIP,
} from '../../../src/dns/plugins/kubernetes/records.ts';
import type { KubernetesConfig } from '../../../src/dns/plugins/kubernetes/records.ts';
import { formatRR } from '../../../src/dns/zone-text.ts';
import type { FakeSource } from '../../../src/k8s/testing/fake-source.ts';
import { testCluster } from './fixtures.ts';
import { attemptTimes, harness } from '../../../src/k8s/testing/harness.ts';

const NOW = 1_700_000_000_000;
const SOA = 'cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5';
const SOA_REV = 'in-addr.arpa. 5 IN SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. 1700000000 7200 1800 86400 5';
const SOA_REV6 = 'ip6.arpa. 5 IN SOA ns.dns.ip6.arpa. hostmaster.ip6.arpa. 1700000000 7200 1800 86400 5';

interface Case {
  qname: string;
  qtype: string;
  rcode: 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL' | 'NEXT';
  answer?: string[];
  ns?: string[];
  extra?: string[];
  chase?: string;
}

async function records(
  cfg: Partial<KubernetesConfig> = {},
  src: FakeSource = testCluster(),
): Promise<KubernetesRecords> {
  const k = new KubernetesRecords({ ...DEFAULT_KUBERNETES_CONFIG, ...cfg }, { now: () => NOW });
  k.attach(src);
  await src.start();
  await k.settled();
  return k;
}

function check(t: Test, k: KubernetesRecords, cases: Case[]): void {
  for (const c of cases) {
    const r = k.lookup({ name: c.qname.replace(/\.$/, ''), type: c.qtype });
    const label = `${c.qname} ${c.qtype}`;
    if (r.kind === 'next') {
      t.equal('NEXT', c.rcode, label);
      continue;
    }
    if (r.kind === 'servfail') {
      t.equal('SERVFAIL', c.rcode, label);
      continue;
    }
    const got = {
      rcode: r.rcode === 0 ? 'NOERROR' : 'NXDOMAIN',
      answer: r.answers.map(formatRR).sort(),
      ns: r.authority.map(formatRR).sort(),
      extra: r.additional.map(formatRR).sort(),
      ...(r.chase ? { chase: r.chase } : {}),
    };
    const want = {
      rcode: c.rcode,
      answer: [...(c.answer ?? [])].sort(),
      ns: [...(c.ns ?? (c.answer?.length ? [] : [SOA]))].sort(),
      extra: [...(c.extra ?? [])].sort(),
      ...(c.chase ? { chase: c.chase } : {}),
    };
    t.same(got, want, label);
  }
}

t.test('spec 1.1.0 records: ClusterIP services', async (t) => {
  check(t, await records(), [
    {
      qname: 'dns-version.cluster.local.',
      qtype: 'TXT',
      rcode: 'NOERROR',
      answer: ['dns-version.cluster.local. 28800 IN TXT "1.1.0"'],
    },
    {
      qname: 'svc1.testns.svc.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1'],
    },
    {
      qname: 'SVC1.TestNS.svc.Cluster.Local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['SVC1.TestNS.svc.Cluster.Local. 5 IN A 10.0.0.1'],
    },
    {
      qname: 'svc6.testns.svc.cluster.local.',
      qtype: 'AAAA',
      rcode: 'NOERROR',
      answer: ['svc6.testns.svc.cluster.local. 5 IN AAAA fd00:10::6'],
    },
    {
      qname: 'dual.testns.svc.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['dual.testns.svc.cluster.local. 5 IN A 10.0.0.2'],
    },
    {
      qname: 'dual.testns.svc.cluster.local.',
      qtype: 'AAAA',
      rcode: 'NOERROR',
      answer: ['dual.testns.svc.cluster.local. 5 IN AAAA fd00:10::2'],
    },
    {
      qname: '_http._tcp.svc1.testns.svc.cluster.local.',
      qtype: 'SRV',
      rcode: 'NOERROR',
      answer: ['_http._tcp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local.'],
      extra: ['svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1'],
    },
    {
      qname: '_dns._udp.svc1.testns.svc.cluster.local.',
      qtype: 'SRV',
      rcode: 'NOERROR',
      answer: ['_dns._udp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 53 svc1.testns.svc.cluster.local.'],
      extra: ['svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1'],
    },
    {
      qname: 'svc1.testns.svc.cluster.local.',
      qtype: 'SRV',
      rcode: 'NOERROR',
      answer: [
        'svc1.testns.svc.cluster.local. 5 IN SRV 0 50 80 svc1.testns.svc.cluster.local.',
        'svc1.testns.svc.cluster.local. 5 IN SRV 0 50 53 svc1.testns.svc.cluster.local.',
      ],
      extra: ['svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1'],
    },
    {
      qname: 'dual.testns.svc.cluster.local.',
      qtype: 'SRV',
      rcode: 'NOERROR',
      answer: ['dual.testns.svc.cluster.local. 5 IN SRV 0 50 80 dual.testns.svc.cluster.local.'],
      extra: ['dual.testns.svc.cluster.local. 5 IN A 10.0.0.2', 'dual.testns.svc.cluster.local. 5 IN AAAA fd00:10::2'],
    },
    {
      qname: 'unnamed.testns.svc.cluster.local.',
      qtype: 'SRV',
      rcode: 'NOERROR',
      answer: ['unnamed.testns.svc.cluster.local. 5 IN SRV 0 100 8080 unnamed.testns.svc.cluster.local.'],
      extra: ['unnamed.testns.svc.cluster.local. 5 IN A 10.0.0.3'],
    },
    // endpoint names also exist under ClusterIP services
    {
      qname: 'ep1a.svc1.testns.svc.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['ep1a.svc1.testns.svc.cluster.local. 5 IN A 172.17.0.10'],
    },
    {
      qname: '172-17-0-11.svc1.testns.svc.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['172-17-0-11.svc1.testns.svc.cluster.local. 5 IN A 172.17.0.11'],
    },
    // PTR
    {
      qname: '1.0.0.10.in-addr.arpa.',
      qtype: 'PTR',
      rcode: 'NOERROR',
      answer: ['1.0.0.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local.'],
    },
    {
      qname: '10.0.17.172.in-addr.arpa.',
      qtype: 'PTR',
      rcode: 'NOERROR',
      answer: ['10.0.17.172.in-addr.arpa. 5 IN PTR ep1a.svc1.testns.svc.cluster.local.'],
    },
    {
      qname: `${reverseName('fd00:10::6')}.`,
      qtype: 'PTR',
      rcode: 'NOERROR',
      answer: [`${reverseName('fd00:10::6')}. 5 IN PTR svc6.testns.svc.cluster.local.`],
    },
    {
      qname: `${reverseName('fd00:172::20')}.`,
      qtype: 'PTR',
      rcode: 'NOERROR',
      answer: [`${reverseName('fd00:172::20')}. 5 IN PTR web-0.hdls1.testns.svc.cluster.local.`],
    },
  ]);
});

t.test('spec 1.1.0 records: headless and ExternalName services', async (t) => {
  const H = 'hdls1.testns.svc.cluster.local.';
  check(t, await records(), [
    {
      qname: H,
      qtype: 'A',
      rcode: 'NOERROR',
      answer: [`${H} 5 IN A 172.17.0.20`, `${H} 5 IN A 172.17.0.21`, `${H} 5 IN A 172.17.0.23`],
    },
    { qname: H, qtype: 'AAAA', rcode: 'NOERROR', answer: [`${H} 5 IN AAAA fd00:172::20`] },
    { qname: `web-0.${H}`, qtype: 'A', rcode: 'NOERROR', answer: [`web-0.${H} 5 IN A 172.17.0.20`] },
    { qname: `web-0.${H}`, qtype: 'AAAA', rcode: 'NOERROR', answer: [`web-0.${H} 5 IN AAAA fd00:172::20`] },
    { qname: `web-1.${H}`, qtype: 'AAAA', rcode: 'NOERROR', answer: [] },
    { qname: `web-2.${H}`, qtype: 'A', rcode: 'NXDOMAIN' }, // not ready
    { qname: `172-17-0-20.${H}`, qtype: 'A', rcode: 'NXDOMAIN' }, // has a hostname: not reachable by its dashed IP
    { qname: `172-17-0-23.${H}`, qtype: 'A', rcode: 'NOERROR', answer: [`172-17-0-23.${H} 5 IN A 172.17.0.23`] },
    {
      qname: `_http._tcp.${H}`,
      qtype: 'SRV',
      rcode: 'NOERROR',
      answer: [
        `_http._tcp.${H} 5 IN SRV 0 25 8080 web-0.${H}`,
        `_http._tcp.${H} 5 IN SRV 0 25 8080 web-1.${H}`,
        `_http._tcp.${H} 5 IN SRV 0 25 8080 172-17-0-23.${H}`,
      ],
      extra: [
        `web-0.${H} 5 IN A 172.17.0.20`,
        `web-0.${H} 5 IN AAAA fd00:172::20`,
        `web-1.${H} 5 IN A 172.17.0.21`,
        `172-17-0-23.${H} 5 IN A 172.17.0.23`,
      ],
    },
    {
      qname: H,
      qtype: 'SRV',
      rcode: 'NOERROR',
      answer: [
        `${H} 5 IN SRV 0 25 8080 web-0.${H}`,
        `${H} 5 IN SRV 0 25 8080 web-1.${H}`,
        `${H} 5 IN SRV 0 25 8080 172-17-0-23.${H}`,
      ],
      extra: [
        `web-0.${H} 5 IN A 172.17.0.20`,
        `web-0.${H} 5 IN AAAA fd00:172::20`,
        `web-1.${H} 5 IN A 172.17.0.21`,
        `172-17-0-23.${H} 5 IN A 172.17.0.23`,
      ],
    },
    { qname: 'hdlsempty.testns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' }, // no ready endpoints
    { qname: 'hdlsnoports.testns.svc.cluster.local.', qtype: 'SRV', rcode: 'NOERROR', answer: [] },
    {
      qname: '20.0.17.172.in-addr.arpa.',
      qtype: 'PTR',
      rcode: 'NOERROR',
      answer: [`20.0.17.172.in-addr.arpa. 5 IN PTR web-0.${H}`],
    },
    {
      qname: 'ext.testns.svc.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['ext.testns.svc.cluster.local. 5 IN CNAME example.net.'],
      chase: 'example.net',
    },
    {
      qname: 'ext.testns.svc.cluster.local.',
      qtype: 'CNAME',
      rcode: 'NOERROR',
      answer: ['ext.testns.svc.cluster.local. 5 IN CNAME example.net.'],
    },
    { qname: 'ext.testns.svc.cluster.local.', qtype: 'SRV', rcode: 'NOERROR', answer: [] },
    {
      qname: 'extin.testns.svc.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: [
        'extin.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.',
        'svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1',
      ],
    },
    { qname: 'extin.testns.svc.cluster.local.', qtype: 'AAAA', rcode: 'NOERROR', answer: [] },
  ]);
});

t.test('NXDOMAIN vs NODATA', async (t) => {
  check(t, await records(), [
    // NODATA: the name exists, the type does not
    { qname: 'svc1.testns.svc.cluster.local.', qtype: 'AAAA', rcode: 'NOERROR', answer: [] },
    { qname: 'svc1.testns.svc.cluster.local.', qtype: 'TXT', rcode: 'NOERROR', answer: [] },
    { qname: 'svc1.testns.svc.cluster.local.', qtype: 'MX', rcode: 'NOERROR', answer: [] },
    { qname: '_http._tcp.svc1.testns.svc.cluster.local.', qtype: 'A', rcode: 'NOERROR', answer: [] },
    { qname: 'cluster.local.', qtype: 'A', rcode: 'NOERROR', answer: [] },
    { qname: 'svc.cluster.local.', qtype: 'A', rcode: 'NOERROR', answer: [] },
    { qname: 'pod.cluster.local.', qtype: 'A', rcode: 'NOERROR', answer: [] },
    { qname: 'testns.svc.cluster.local.', qtype: 'A', rcode: 'NOERROR', answer: [] },
    { qname: 'empty.svc.cluster.local.', qtype: 'A', rcode: 'NOERROR', answer: [] },
    { qname: 'dns-version.cluster.local.', qtype: 'A', rcode: 'NOERROR', answer: [] },
    { qname: '1.0.0.10.in-addr.arpa.', qtype: 'A', rcode: 'NOERROR', answer: [], ns: [SOA_REV] },
    { qname: 'cluster.local.', qtype: 'SOA', rcode: 'NOERROR', answer: [SOA] },
    {
      qname: 'cluster.local.',
      qtype: 'NS',
      rcode: 'NOERROR',
      answer: ['cluster.local. 5 IN NS ns.dns.cluster.local.'],
    },
    {
      qname: 'noeps.testns.svc.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['noeps.testns.svc.cluster.local. 5 IN A 10.0.0.4'],
    },
    // NXDOMAIN: the name does not exist
    { qname: 'nosuch.testns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: 'svc1.nosuchns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: 'nosuchns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: 'nope.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: 'svc1.testns.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: 'nosuchep.svc1.testns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: '_nope._tcp.svc1.testns.svc.cluster.local.', qtype: 'SRV', rcode: 'NXDOMAIN' },
    { qname: '_http._udp.svc1.testns.svc.cluster.local.', qtype: 'SRV', rcode: 'NXDOMAIN' },
    { qname: '_._tcp.unnamed.testns.svc.cluster.local.', qtype: 'SRV', rcode: 'NXDOMAIN' },
    // ndots:5 search expansions of an outside name
    { qname: 'example.com.testns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: 'www.example.com.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: 'a.b.c.svc1.testns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: '*.testns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: '9.9.9.10.in-addr.arpa.', qtype: 'PTR', rcode: 'NXDOMAIN', ns: [SOA_REV] },
    { qname: '40.0.17.172.in-addr.arpa.', qtype: 'PTR', rcode: 'NXDOMAIN', ns: [SOA_REV] }, // a pod, not an endpoint
    { qname: `${reverseName('fd00::99')}.`, qtype: 'PTR', rcode: 'NXDOMAIN', ns: [SOA_REV6] },
    { qname: '0.17.172.in-addr.arpa.', qtype: 'PTR', rcode: 'NXDOMAIN', ns: [SOA_REV] },
    // not ours at all
    { qname: 'example.com.', qtype: 'A', rcode: 'NEXT' },
  ]);
});

t.test('pods modes', async (t) => {
  check(t, await records({ pods: 'disabled' }), [
    { qname: '172-17-0-40.testns.pod.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: 'testns.pod.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
  ]);
  check(t, await records({ pods: 'insecure' }), [
    {
      qname: '172-17-0-40.testns.pod.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['172-17-0-40.testns.pod.cluster.local. 5 IN A 172.17.0.40'],
    },
    {
      qname: '1-2-3-4.testns.pod.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['1-2-3-4.testns.pod.cluster.local. 5 IN A 1.2.3.4'],
    },
    { qname: '1-2-3-4.testns.pod.cluster.local.', qtype: 'AAAA', rcode: 'NOERROR', answer: [] },
    {
      qname: 'fd00-172--40.testns.pod.cluster.local.',
      qtype: 'AAAA',
      rcode: 'NOERROR',
      answer: ['fd00-172--40.testns.pod.cluster.local. 5 IN AAAA fd00:172::40'],
    },
    { qname: '1-2-3-4.nosuchns.pod.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: '1-2-3.testns.pod.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: '1-2-3-400.testns.pod.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: 'testns.pod.cluster.local.', qtype: 'A', rcode: 'NOERROR', answer: [] },
    { qname: 'x.1-2-3-4.testns.pod.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
  ]);
  check(t, await records({ pods: 'verified' }), [
    {
      qname: '172-17-0-40.testns.pod.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['172-17-0-40.testns.pod.cluster.local. 5 IN A 172.17.0.40'],
    },
    { qname: '172-17-0-40.other.pod.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    { qname: '1-2-3-4.testns.pod.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
  ]);
});

t.test('plugin options: ttl, endpoint_pod_names, ignore empty_service, fallthrough, several zones', async (t) => {
  const SOA30 =
    'cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 30';
  check(t, await records({ ttl: 30 }), [
    {
      qname: 'svc1.testns.svc.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['svc1.testns.svc.cluster.local. 30 IN A 10.0.0.1'],
    },
    { qname: 'nosuch.testns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA30] },
  ]);
  check(t, await records({ endpointPodNames: true }), [
    {
      qname: 'svc1-pod-b.svc1.testns.svc.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['svc1-pod-b.svc1.testns.svc.cluster.local. 5 IN A 172.17.0.11'],
    },
    { qname: '172-17-0-11.svc1.testns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
  ]);
  check(t, await records({ ignoreEmptyService: true }), [
    { qname: 'noeps.testns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
    {
      qname: 'svc1.testns.svc.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1'],
    },
  ]);
  check(t, await records({ fallthrough: ['in-addr.arpa', 'ip6.arpa'] }), [
    { qname: '9.9.9.10.in-addr.arpa.', qtype: 'PTR', rcode: 'NEXT' },
    { qname: 'nosuch.testns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' },
  ]);
  check(t, await records({ fallthrough: [] }), [
    { qname: 'nosuch.testns.svc.cluster.local.', qtype: 'A', rcode: 'NEXT' },
  ]);
  const SOA_EX = 'example.org. 5 IN SOA ns.dns.example.org. hostmaster.example.org. 1700000000 7200 1800 86400 5';
  check(t, await records({ zones: ['cluster.local', 'example.org'] }), [
    {
      qname: 'svc1.testns.svc.example.org.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['svc1.testns.svc.example.org. 5 IN A 10.0.0.1'],
    },
    {
      qname: 'svc1.testns.svc.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1'],
    },
    { qname: 'nosuch.testns.svc.example.org.', qtype: 'A', rcode: 'NXDOMAIN', ns: [SOA_EX] },
    { qname: '1.0.0.10.in-addr.arpa.', qtype: 'PTR', rcode: 'NEXT' },
  ]);
});

t.test('SERVFAIL, never NXDOMAIN, before the initial sync; changes apply after it', async (t) => {
  const src = testCluster();
  const k = new KubernetesRecords(DEFAULT_KUBERNETES_CONFIG, { now: () => NOW });
  k.attach(src);
  check(t, k, [
    { qname: 'svc1.testns.svc.cluster.local.', qtype: 'A', rcode: 'SERVFAIL' },
    { qname: 'nosuch.testns.svc.cluster.local.', qtype: 'A', rcode: 'SERVFAIL' },
    { qname: 'example.com.', qtype: 'A', rcode: 'NEXT' },
  ]);
  await src.start();
  await k.settled();
  const gen = k.generation;
  check(t, k, [
    {
      qname: 'svc1.testns.svc.cluster.local.',
      qtype: 'A',
      rcode: 'NOERROR',
      answer: ['svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1'],
    },
  ]);
  src.remove('Service', 'testns/svc1');
  await k.settled();
  t.ok(k.generation > gen, 'a change moves the generation');
  check(t, k, [{ qname: 'svc1.testns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' }]);
});

t.test('name helpers', async (t) => {
  t.equal(dashedIP('10.1.2.3'), '10-1-2-3');
  t.equal(dashedIP('fd00::1'), 'fd00--1');
  t.equal(dashedIP('fd00::'), 'fd00--0');
  t.equal(podLabelIP('10-1-2-3'), '10.1.2.3');
  t.equal(podLabelIP('fd00--1'), 'fd00::1');
  t.equal(podLabelIP('10-1-2'), undefined);
  t.equal(reverseNameIP('4.3.2.1.in-addr.arpa'), '1.2.3.4');
  t.equal(reverseNameIP(reverseName('fd00:10::6')), 'fd00:10::6');
  t.equal(reverseName('fd00::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa');
});

t.test(
  'on the kernel harness: a failed index build is retried after 1, 2, 4 s; the previous index answers',
  async (t) => {
    const h = harness();
    for (const o of testCluster().list('Service')) h.source.put(o);
    for (const o of testCluster().list('EndpointSlice')) h.source.put(o);
    for (const o of testCluster().list('Namespace')) h.source.put(o);
    const k = new KubernetesRecords(DEFAULT_KUBERNETES_CONFIG, { now: () => NOW, clock: h.clock });
    let attempts = 0;
    let failing = 0;
    const reconcile = k.reconcile.bind(k);
    k.reconcile = (view) => {
      attempts++;
      if (failing-- > 0) throw new Error('index build failed');
      reconcile(view);
    };
    k.attach(h.source);
    await h.source.start();
    await h.clock.advance(1);
    check(t, k, [
      {
        qname: 'svc1.testns.svc.cluster.local.',
        qtype: 'A',
        rcode: 'NOERROR',
        answer: ['svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1'],
      },
    ]);
    failing = 3;
    h.source.remove('Service', 'testns/svc1');
    const times = await attemptTimes(h, () => attempts, 10_000);
    t.same(
      times.slice(1).map((x, i) => Math.round((x - times[i]!) / 100) * 100),
      [1000, 2000, 4000],
    );
    check(t, k, [{ qname: 'svc1.testns.svc.cluster.local.', qtype: 'A', rcode: 'NXDOMAIN' }]);
    t.equal(k.controllerStatus()?.failuresTotal, 3);
    k.stop();
  },
);
