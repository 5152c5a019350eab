// Bad input, CNI: network configurations and environments mutated at random go through the request parser and
// every config reader a verb runs before it touches the system (bridge, host-local IPAM, portMappings, GC
// attachments, prevResult). Each must either accept the input or throw a KdpError that maps to one of the
// spec's error codes (never a TypeError, which the skeleton would report as the catch-all 999), and whatever
// is accepted must be safe to put into the nft script and the data directory.
import t from 'tap';
import { isIP } from 'node:net';
import { isKdpError } from '../../../src/common/errors.ts';
import { loadBridgeConfig } from '../../../src/cni/bridge.ts';
import { containerIps, portMappings } from '../../../src/cni/portmap.ts';
import { CNI_CODES, errorJson, parseRequest, runPlugin } from '../../../src/cnispec/skel.ts';
import type { PluginVerbs } from '../../../src/cnispec/skel.ts';
import type { CniResult } from '../../../src/cnispec/types.ts';
import { loadIpamConfig } from '../../../src/ipam/config.ts';
import { validAttachments } from '../../../src/ipam/host-local.ts';
import { fuzzSeed, mutate, pick, rng } from '../../helpers/fuzz.ts';

const bridgeConf = {
  cniVersion: '1.1.0',
  name: 'kdp-net',
  type: 'kdp-bridge',
  bridge: 'kdp0',
  isGateway: true,
  ipMasq: true,
  hairpinMode: true,
  mtu: 1450,
  clusterCIDRs: ['198.19.0.0/16'],
  ipam: {
    type: 'kdp-host-local',
    ranges: [
      [{ subnet: '198.19.1.0/24', rangeStart: '198.19.1.10', rangeEnd: '198.19.1.200', gateway: '198.19.1.1' }],
      [{ subnet: 'fd00:19:1::/64' }],
    ],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '10.96.0.0/12', gw: '198.19.1.1' }],
    dataDir: '/run/kdp-fuzz/ipam',
  },
  runtimeConfig: {
    portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '198.18.0.11' }],
    ips: ['198.19.1.20/24'],
    mac: '0a:58:c6:13:01:14',
  },
  args: { cni: { ips: ['198.19.1.21'] } },
  'cni.dev/valid-attachments': [{ containerID: 'abc', ifname: 'eth0' }],
};
const prevResult: CniResult = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'kdp0', mac: '0a:58:c6:13:01:01' },
    { name: 'eth0', mac: '0a:58:c6:13:01:14', sandbox: '/run/netns/x' },
  ],
  ips: [{ address: '198.19.1.20/24', gateway: '198.19.1.1', interface: 1 }],
  routes: [{ dst: '0.0.0.0/0' }],
};
const portmapConf = {
  cniVersion: '1.1.0',
  name: 'kdp-net',
  type: 'kdp-portmap',
  capabilities: { portMappings: true },
  runtimeConfig: bridgeConf.runtimeConfig,
  prevResult,
};
const env = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'abc',
  CNI_NETNS: '/run/netns/x',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=a',
};

/** What a verb reads before acting: the readers the bridge, IPAM and portmap verbs call. */
function readAll(
  config: Record<string, unknown>,
  args: Record<string, string>,
): { hostIps: string[]; podIps: string[]; name?: string; dataDir?: string } {
  const out: { hostIps: string[]; podIps: string[]; name?: string; dataDir?: string } = { hostIps: [], podIps: [] };
  if (config.type === 'kdp-portmap') {
    out.hostIps = portMappings(config).flatMap((m) => (m.hostIP ? [m.hostIP] : []));
    if (config.prevResult) out.podIps = containerIps(config.prevResult as CniResult);
    return out;
  }
  loadBridgeConfig(config, args);
  const ipam = loadIpamConfig(config, args);
  validAttachments(config);
  out.hostIps = portMappings(config).flatMap((m) => (m.hostIP ? [m.hostIP] : []));
  return { ...out, name: ipam.name, dataDir: ipam.dataDir };
}

function classify(err: unknown): string | undefined {
  if (isKdpError(err) && CNI_CODES[err.code] !== undefined) return undefined;
  return isKdpError(err) ? `KdpError ${err.code} has no CNI code` : `threw ${String(err)}`;
}

t.test('mutated network configurations: accepted safely or rejected with a spec error code', async (t) => {
  const seed = fuzzSeed();
  const r = rng(seed + 2);
  const N = Number(process.env.FUZZ_ITERATIONS ?? 4000);
  const problems: string[] = [];
  let accepted = 0;
  for (let i = 0; i < N && problems.length < 5; i++) {
    const base = r() < 0.75 ? bridgeConf : portmapConf;
    const { value, log } = mutate(r, base);
    const e: Record<string, string> = { ...env };
    if (r() < 0.2) {
      const k = pick(r, Object.keys(env));
      e[k] = String(pick(r, ['', 'x'.repeat(40), 'a b', '../x', 'DEL', 'VERSIONX', 'a=b;;c', '=x', 'eth0:1']));
      log.push(`env ${k}=${e[k]}`);
    }
    const where = `seed ${seed} iteration ${i} (${String(base.type)}: ${log.join('; ')})`;
    try {
      const req = parseRequest(e, JSON.stringify(value));
      const got = readAll(req.config, req.args);
      accepted++;
      for (const ip of [...got.hostIps, ...got.podIps])
        if (isIP(ip) === 0) problems.push(`${where}: accepted address ${JSON.stringify(ip)}`);
      if (got.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(got.name))
        problems.push(`${where}: accepted network name ${JSON.stringify(got.name)}`);
      if (got.dataDir !== undefined && (!got.dataDir.startsWith('/') || /[\n\0]/.test(got.dataDir)))
        problems.push(`${where}: accepted dataDir ${JSON.stringify(got.dataDir)}`);
    } catch (err) {
      const p = classify(err);
      if (p) problems.push(`${where}: ${p}`);
    }
  }
  t.same(problems, [], 'no crash, every rejection has a CNI code, nothing unsafe accepted');
  t.ok(accepted > N / 20, `the mutations also produce accepted configs (${accepted})`);
});

t.test('the skeleton answers every mutated request with the spec error JSON, never the catch-all', async (t) => {
  const seed = fuzzSeed();
  const r = rng(seed + 3);
  const verbs: PluginVerbs = {
    add: async (req) => {
      readAll(req.config, req.args);
      return { cniVersion: req.cniVersion, ips: [] };
    },
    del: async (req) => void readAll(req.config, req.args),
    check: async (req) => void readAll(req.config, req.args),
    status: async () => undefined,
    gc: async (req) => void validAttachments(req.config),
  };
  const problems: string[] = [];
  for (let i = 0; i < 1000 && problems.length < 5; i++) {
    const { value } = mutate(r, bridgeConf);
    const stdin = r() < 0.1 ? JSON.stringify(value).slice(0, Math.floor(r() * 200)) : JSON.stringify(value);
    const cmd = pick(r, ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS']);
    let out = '';
    const code = await runPlugin(async () => verbs, {
      env: { ...env, CNI_COMMAND: cmd },
      readStdin: () => stdin,
      write: (s) => (out += s),
    });
    if (code === 0) continue;
    let parsed: { code?: unknown; msg?: unknown; cniVersion?: unknown };
    try {
      parsed = JSON.parse(out) as typeof parsed;
    } catch {
      problems.push(`iteration ${i}: error output is not JSON: ${out.slice(0, 80)}`);
      continue;
    }
    if (
      typeof parsed.code !== 'number' ||
      parsed.code === 999 ||
      typeof parsed.msg !== 'string' ||
      typeof parsed.cniVersion !== 'string'
    ) {
      problems.push(`seed ${seed} iteration ${i} ${cmd}: ${out.trim().slice(0, 200)}`);
    }
  }
  t.same(problems, [], 'error JSON with a spec code and a message');
  t.equal(errorJson(new TypeError('x'), '1.1.0').code, 999, 'a crash would show as 999 (what this test rules out)');
});
