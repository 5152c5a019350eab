// The Corefile parser: the kubeadm default read as-is, options of each plugin, errors with line numbers.
import t from 'tap';
import { KUBEADM_COREFILE, parseCorefile, parseDuration, tokenize } from '../../../src/dns/corefile.ts';
import { applyFlags } from '../../../src/cli/commands/dns.ts';
import { parseResolvConf, parseUpstream, resolveUpstreams } from '../../../src/dns/plugins/forward.ts';
import type { BlockConfig } from '../../../src/dns/corefile.ts';
import { BoundedCall } from '../../helpers/bounded.ts';

t.test('the kubeadm default Corefile', async (t) => {
  const [b, ...rest] = parseCorefile(KUBEADM_COREFILE);
  t.equal(rest.length, 0);
  t.match(b, {
    zones: [''],
    port: 53,
    errors: true,
    log: false,
    loop: true,
    loadbalance: true,
    health: { addr: ':8080', lameduckMs: 5000 },
    ready: { addr: ':8181' },
    prometheus: { addr: ':9153' },
    kubernetes: {
      zones: ['cluster.local', 'in-addr.arpa', 'ip6.arpa'],
      pods: 'insecure',
      ttl: 30,
      fallthrough: ['in-addr.arpa', 'ip6.arpa'],
      endpointPodNames: false,
      ignoreEmptyService: false,
    },
    forward: {
      from: '',
      to: ['/etc/resolv.conf'],
      maxConcurrent: 1000,
      policy: 'random',
      maxFails: 2,
      healthCheckMs: 500,
    },
    cache: {
      zones: [''],
      successMaxTtl: 30,
      denialMaxTtl: 30,
      disableSuccess: ['cluster.local'],
      disableDenial: ['cluster.local'],
      successCap: 9984,
    },
    reload: { intervalMs: 30000, jitterMs: 15000 },
  });
});

t.test('several blocks, ports, options, env, comments', async (t) => {
  const text = `# two blocks
cluster.local:1053 example.org:1053 {
  kubernetes {
    pods verified
    endpoint_pod_names
    ignore empty_service
    fallthrough
    ttl 0
  }
  log
  cache 60 cluster.local {
    success 100 120 2
    denial 50
  }
}
.:{$DNS_PORT} {
  forward . 10.0.0.1 10.0.0.2:5353 [fd00::1]:53 {
    policy sequential
    max_fails 0
    health_check 1s
    force_tcp
    except cluster.local
  }
  reload 10s
}
`;
  const [a, b] = parseCorefile(text, { DNS_PORT: '5300' });
  t.match(a, {
    zones: ['cluster.local', 'example.org'],
    port: 1053,
    log: true,
    kubernetes: {
      zones: ['cluster.local', 'example.org'],
      pods: 'verified',
      endpointPodNames: true,
      ignoreEmptyService: true,
      fallthrough: [],
      ttl: 0,
    },
  });
  t.match(a?.cache, {
    zones: ['cluster.local'],
    successCap: 100,
    successMaxTtl: 120,
    successMinTtl: 2,
    denialCap: 50,
    denialMaxTtl: 60,
  });
  t.match(b, {
    zones: [''],
    port: 5300,
    forward: {
      to: ['10.0.0.1', '10.0.0.2:5353', '[fd00::1]:53'],
      policy: 'sequential',
      healthCheckMs: 1000,
      forceTcp: true,
      except: ['cluster.local'],
    },
    reload: { intervalMs: 10000 },
  });
  t.equal(b?.forward?.maxFails, Number.MAX_SAFE_INTEGER, 'max_fails 0: never down');
  t.same(
    tokenize('a "b c" # x\n}').map((x) => x.text),
    ['a', 'b c', '}'],
  );
  t.equal(parseDuration('500ms', 1), 500);
  t.equal(parseDuration('1.5s', 1), 1500);
});

t.test('errors name the line', async (t) => {
  t.throws(() => parseCorefile('.:53 {\n  whoami\n}'), {
    code: 'KDP_DNS_CONFIG',
    message: /Corefile:2: unknown or unsupported plugin "whoami"/,
  });
  t.throws(() => parseCorefile('.:53 {\n kubernetes {\n  pods maybe\n }\n}'), {
    code: 'KDP_DNS_CONFIG',
    message: /Corefile:3/,
  });
  t.throws(() => parseCorefile('.:53 {\n kubernetes {\n  ttl 99999\n }\n}'), {
    code: 'KDP_DNS_CONFIG',
    message: /ttl/,
  });
  t.throws(() => parseCorefile('.:53 {'), { code: 'KDP_DNS_CONFIG' });
  t.throws(() => parseCorefile(''), { code: 'KDP_DNS_CONFIG' });
  t.throws(() => parseCorefile('.:53 {\n forward .\n}'), { code: 'KDP_DNS_CONFIG', message: /FROM TO/ });
});

// Each of these made the tokenizer loop forever with memory growing without bound; they run in a worker
// with a time and heap limit so a regression fails here instead of hanging the suite.
t.test('odd whitespace, a byte order mark and an unclosed {$ end in a result or a line-numbered error', async (t) => {
  const parse = new BoundedCall<BlockConfig[]>(
    new URL('../../../src/dns/corefile.ts', import.meta.url),
    'parseCorefile',
  );
  t.teardown(() => parse.close());
  const ok = async (text: string, what: string): Promise<BlockConfig[] | undefined> => {
    const r = await parse.call([text, { UP: '10.0.0.9' }]);
    if (!r.ok) t.fail(`${what}: ${JSON.stringify(r)}`);
    else t.pass(what);
    return r.ok ? r.value : undefined;
  };
  const bad = async (text: string, message: RegExp, what: string) => {
    const r = await parse.call([text, {}]);
    if (r.ok || !('error' in r)) return void t.fail(`${what}: expected an error, got ${JSON.stringify(r)}`);
    t.equal(r.error.code, 'KDP_DNS_CONFIG', `${what}: code`);
    t.match(r.error.message, message, what);
  };
  // CoreDNS's lexer drops a byte order mark at the start and splits words on unicode.IsSpace
  let b = await ok('\uFEFF.:53 {\n  errors\n}\n', 'a byte order mark at the start is dropped');
  t.same(b?.[0]?.zones, ['']);
  t.equal(b?.[0]?.errors, true);
  b = await ok('.:53 {\n  forward\u00a0.\u00a010.0.0.1\n}', 'a no-break space separates words');
  t.same(b?.[0]?.forward?.to, ['10.0.0.1']);
  b = await ok('.:53 {\v\n  errors\f\n  log\u2003\n}', 'vertical tab, form feed and em space are whitespace');
  t.equal(b?.[0]?.log, true);
  b = await ok('.:53 {\n  forward . {$UP}\n}', '{$VAR} still substitutes');
  t.same(b?.[0]?.forward?.to, ['10.0.0.9']);
  await bad(
    '.:53 {\n  errors\n  \uFEFFlog\n}',
    /^Corefile:3: unknown or unsupported plugin/,
    'a byte order mark elsewhere is part of a word',
  );
  await bad(
    '.:53 {\n  forward . 10.0.0.1{$UP\n}\n',
    /^Corefile:2: unterminated \{\$VAR\}/,
    'an unclosed {$ inside a word',
  );
  await bad(
    '.:53 {\n  forward . {$UP\n}\n',
    /^Corefile:2: unterminated \{\$VAR\}/,
    'an unclosed {$ at the start of a word',
  );
  await bad(
    '.:53 {\n  forward . "10.0.0.1\n}\n',
    /^Corefile:2: unterminated quote/,
    'an unclosed quote names its first line',
  );
});

t.test(
  'a plugin twice in a block, or a zone twice on a port, is refused (CoreDNS refuses both at start)',
  async (t) => {
    t.throws(
      () => parseCorefile('.:53 {\n  kubernetes cluster.local\n  kubernetes example.org\n}'),
      {
        code: 'KDP_DNS_CONFIG',
        message: /^Corefile:3: kubernetes: this plugin can only be used once per server block/,
      },
      'two kubernetes directives',
    );
    for (const p of ['errors', 'cache', 'loop', 'prometheus', 'ready'])
      t.throws(() => parseCorefile(`.:53 {\n  ${p}\n  ${p}\n}`), { message: /^Corefile:3: .*only be used once/ }, p);
    t.throws(() => parseCorefile('.:53 {\n  forward . 10.0.0.1\n  forward . 10.0.0.2\n}'), {
      message: /^Corefile:3: forward: /,
    });
    // CoreDNS accepts several log and health lines: so do we
    t.equal(parseCorefile('.:53 {\n  log\n  log\n}')[0]?.log, true);
    t.throws(
      () => parseCorefile('example.org:53 {\n  errors\n}\n\nEXAMPLE.org.:53 {\n  log\n}'),
      {
        code: 'KDP_DNS_CONFIG',
        message: /^Corefile:5: cannot serve dns:\/\/example\.org\.:53 - it is already defined/,
      },
      'the same zone and port in two blocks',
    );
    t.throws(
      () => parseCorefile('. {\n}\n.:53 {\n}'),
      { message: /cannot serve dns:\/\/\.:53/ },
      'port 53 is the default',
    );
    t.throws(
      () => parseCorefile('a.org b.org a.org {\n}'),
      { message: /cannot serve dns:\/\/a\.org\.:53/ },
      'within one block',
    );
    t.equal(parseCorefile('.:53 {\n}\n.:1053 {\n}\nexample.org:53 {\n}').length, 3, 'other ports and zones are fine');
  },
);

t.test('flags adjust the Corefile', async (t) => {
  const [b] = applyFlags(parseCorefile(KUBEADM_COREFILE), {
    zones: 'example.org,in-addr.arpa',
    pods: 'verified',
    ttl: '7',
    upstream: '10.1.1.1,10.1.1.2:53',
  });
  t.match(b, {
    kubernetes: { zones: ['example.org', 'in-addr.arpa'], pods: 'verified', ttl: 7 },
    forward: { to: ['10.1.1.1', '10.1.1.2:53'] },
    cache: { disableSuccess: ['example.org'] },
  });
  t.throws(() => applyFlags(parseCorefile(KUBEADM_COREFILE), { pods: 'x' }), { code: 'KDP_USAGE' });
});

t.test('upstreams: addresses and resolv.conf', async (t) => {
  t.same(parseUpstream('10.0.0.1'), { host: '10.0.0.1', port: 53 });
  t.same(parseUpstream('dns://10.0.0.1:5353'), { host: '10.0.0.1', port: 5353 });
  t.same(parseUpstream('[fd00::1]:54'), { host: 'fd00::1', port: 54 });
  t.same(parseUpstream('fd00::1'), { host: 'fd00::1', port: 53 });
  t.throws(() => parseUpstream('example.com'), { code: 'KDP_DNS_CONFIG' });
  t.same(
    parseResolvConf(
      '# x\nsearch a b\nnameserver 10.0.0.10\nnameserver fe80::1%eth0\noptions ndots:5\nnameserver bogus\n',
    ),
    [
      { host: '10.0.0.10', port: 53 },
      { host: 'fe80::1', port: 53 },
    ],
  );
  t.same(
    resolveUpstreams(['/x/resolv.conf', '10.0.0.2'], () => 'nameserver 10.0.0.1\n'),
    [
      { host: '10.0.0.1', port: 53 },
      { host: '10.0.0.2', port: 53 },
    ],
  );
  t.throws(() => resolveUpstreams(['/x'], () => ''), { code: 'KDP_DNS_CONFIG' });
  t.throws(
    () =>
      resolveUpstreams(['/x'], () => {
        throw new Error('ENOENT');
      }),
    { code: 'KDP_DNS_CONFIG' },
  );
});

t.test('reload: a changed Corefile is handed over once, unchanged or unreadable ones are not', async (t) => {
  const { watchCorefile } = await import('../../../src/dns/reload.ts');
  let text = 'a';
  let fail = false;
  const seen: string[] = [];
  const w = watchCorefile(
    '/Corefile',
    'a',
    {
      intervalMs: 5,
      jitterMs: 5,
      read: async () => {
        if (fail) throw new Error('gone');
        return text;
      },
    },
    async (next) => void seen.push(next),
  );
  t.teardown(() => w.stop());
  await new Promise((r) => setTimeout(r, 40));
  t.same(seen, [], 'unchanged: nothing');
  fail = true;
  await new Promise((r) => setTimeout(r, 30));
  fail = false;
  text = 'b';
  await new Promise((r) => setTimeout(r, 60));
  t.same(seen, ['b'], 'changed: once');
  w.stop();
  text = 'c';
  await new Promise((r) => setTimeout(r, 40));
  t.same(seen, ['b'], 'stopped: nothing more');
});

t.test('--port folding two blocks of one zone onto one port is refused too', async (t) => {
  const { startDns } = await import('../../../src/dns/dns.ts');
  const { silentLogger } = await import('../../../src/common/log.ts');
  const { testCluster } = await import('./fixtures.ts');
  const blocks = parseCorefile('.:53 {\n  errors\n}\n.:1053 {\n  log\n}\n');
  await t.rejects(
    startDns(testCluster(), blocks, {
      log: silentLogger,
      version: 'test',
      host: '127.0.0.1',
      port: 0,
      healthAddr: '',
      readyAddr: '',
      metricsAddr: '',
    }),
    { code: 'KDP_DNS_CONFIG', message: /cannot serve dns:\/\/\.:0 - it is already defined/ },
  );
});
