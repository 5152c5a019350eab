// kdp dns in lab tests and benchmarks: the argv of a server process, and the upstream dnsmasq.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Lab } from '../../src/lab/lab.ts';
import type { Spawned } from '../../src/common/exec-adapter.ts';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** `kdp dns` with a Corefile, a manifests directory, JSON logs, no lameduck; `extra` flags after those. */
export function kdpDnsArgv(corefile: string, manifests: string, ...extra: string[]): string[] {
  return [
    process.execPath,
    CLI,
    '--log-format',
    'json',
    'dns',
    '--corefile',
    corefile,
    '--manifests',
    manifests,
    '--lameduck',
    '0',
    ...extra,
  ];
}

/**
 * The lab's upstream DNS server: dnsmasq on the underlay host address, port 53, answering
 * outside.example (203.0.113.7) and NXDOMAIN for other names under example; `extra` config lines added.
 * Its config and pid file go to `dir`.
 */
export function startUpstreamDnsmasq(lab: Lab, dir: string, extra: readonly string[] = []): Spawned {
  writeFileSync(
    join(dir, 'dnsmasq.conf'),
    [
      'no-resolv',
      'no-hosts',
      'bind-interfaces',
      `listen-address=${lab.plan.underlayHost4}`,
      'port=53',
      'address=/outside.example/203.0.113.7',
      'local=/example/',
      ...extra,
      '',
    ].join('\n'),
  );
  return lab.spawn(lab.underlay, [
    'dnsmasq',
    '-k',
    `--conf-file=${join(dir, 'dnsmasq.conf')}`,
    `--pid-file=${join(dir, 'dnsmasq.pid')}`,
    '--user=root',
  ]);
}
