// The CNI protocol skeleton: reads CNI_* env and the config on stdin, dispatches one verb, prints the
// result (or the spec's error JSON with a non-zero exit). The verbs are loaded lazily so VERSION costs
// nothing beyond this file. I/O is injected (env, stdin, stdout) so tests drive it without processes.
import { readFileSync } from 'node:fs';
import { KdpError, errorMessage, isKdpError } from '../common/errors.ts';
import { Trace } from './trace.ts';
import type { CniRequest, CniResult } from './types.ts';

export const SUPPORTED_VERSIONS: readonly string[] = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
export const LATEST_VERSION = '1.1.0';

export interface PluginVerbs {
  add(req: CniRequest): Promise<CniResult>;
  del(req: CniRequest): Promise<void>;
  check(req: CniRequest): Promise<void>;
  status(req: CniRequest): Promise<void>;
  gc(req: CniRequest): Promise<void>;
}

export interface PluginIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readStdin(): string;
  write(text: string): void;
  /** receives the trace of a call when KDP_CNI_TRACE is set (exec path: stderr; server: the response) */
  writeTrace?(trace: Trace, req: CniRequest): void;
}

/** KdpError code -> CNI numeric error code (spec "Error"; 100+ are ours; 999 as the reference plugins). */
export const CNI_CODES: Readonly<Record<string, number>> = {
  KDP_CNI_INCOMPATIBLE_VERSION: 1,
  KDP_CNI_UNSUPPORTED_FIELD: 2,
  KDP_CNI_UNKNOWN_CONTAINER: 3,
  KDP_CNI_INVALID_ENV: 4,
  KDP_CNI_IO: 5,
  KDP_CNI_DECODE: 6,
  KDP_CNI_INVALID_CONFIG: 7,
  KDP_CNI_TRY_AGAIN: 11,
  KDP_CNI_NOT_AVAILABLE: 50,
  KDP_IPAM_EXHAUSTED: 100,
  KDP_IPAM_CONFLICT: 101,
};

export function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

export function versionJson(): string {
  return JSON.stringify({ cniVersion: LATEST_VERSION, supportedVersions: SUPPORTED_VERSIONS });
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const COMMANDS = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC'] as const;

export function parseCniArgs(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!s) return out;
  for (const kv of s.split(';')) {
    if (kv === '') continue;
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new KdpError('KDP_CNI_INVALID_ENV', `CNI_ARGS: invalid pair ${JSON.stringify(kv)}`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

/** Builds the request from env + stdin; throws coded errors for what the spec says must be rejected. */
export function parseRequest(env: Readonly<Record<string, string | undefined>>, stdin: string): CniRequest {
  const command = env.CNI_COMMAND;
  if (!command) throw new KdpError('KDP_CNI_INVALID_ENV', 'required env variable CNI_COMMAND missing');
  if (!(COMMANDS as readonly string[]).includes(command))
    throw new KdpError('KDP_CNI_INVALID_ENV', `unknown CNI_COMMAND: ${command}`);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(stdin) as Record<string, unknown>;
  } catch (err) {
    throw new KdpError('KDP_CNI_DECODE', `decoding the network configuration failed: ${errorMessage(err)}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config))
    throw new KdpError('KDP_CNI_DECODE', 'the network configuration is not a JSON object');
  const cniVersion = config.cniVersion;
  if (typeof cniVersion !== 'string' || cniVersion === '')
    throw new KdpError('KDP_CNI_INVALID_CONFIG', 'cniVersion missing from the network configuration');
  if (!SUPPORTED_VERSIONS.includes(cniVersion)) {
    throw new KdpError(
      'KDP_CNI_INCOMPATIBLE_VERSION',
      `incompatible CNI versions: config is ${JSON.stringify(cniVersion)}, plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`,
    );
  }
  // libcni's rule for network names: they become directory names and rule comments
  if (config.name !== undefined && (typeof config.name !== 'string' || !NAME_RE.test(config.name))) {
    throw new KdpError(
      'KDP_CNI_INVALID_CONFIG',
      `invalid network name ${JSON.stringify(config.name)}: must match ${NAME_RE.source}`,
    );
  }
  if (command === 'CHECK' && !versionAtLeast(cniVersion, '0.4.0'))
    throw new KdpError('KDP_CNI_INCOMPATIBLE_VERSION', `config version ${cniVersion} does not allow CHECK`);
  if ((command === 'STATUS' || command === 'GC') && !versionAtLeast(cniVersion, '1.1.0')) {
    throw new KdpError('KDP_CNI_INCOMPATIBLE_VERSION', `config version ${cniVersion} does not allow ${command}`);
  }
  const perContainer = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const missing: string[] = [];
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  const netns = env.CNI_NETNS ?? '';
  if (perContainer && containerId === '') missing.push('CNI_CONTAINERID');
  if ((command === 'ADD' || command === 'CHECK') && netns === '') missing.push('CNI_NETNS');
  if (perContainer && ifname === '') missing.push('CNI_IFNAME');
  if (missing.length > 0)
    throw new KdpError('KDP_CNI_INVALID_ENV', `required env variables [${missing.join(',')}] missing`);
  if (perContainer && !ID_RE.test(containerId))
    throw new KdpError('KDP_CNI_INVALID_ENV', `invalid CNI_CONTAINERID ${JSON.stringify(containerId)}`);
  if (perContainer && (ifname.length > 15 || /[/\s:]/.test(ifname) || ifname === '.' || ifname === '..')) {
    throw new KdpError('KDP_CNI_INVALID_ENV', `invalid CNI_IFNAME ${JSON.stringify(ifname)}`);
  }
  return {
    command: command as CniRequest['command'],
    containerId,
    netns,
    ifname,
    args: parseCniArgs(env.CNI_ARGS),
    path: (env.CNI_PATH ?? '').split(':').filter((p) => p !== ''),
    config,
    stdin,
    cniVersion,
    env,
    ...(env.KDP_CNI_TRACE ? { trace: new Trace() } : {}),
  };
}

export function errorJson(err: unknown, cniVersion: string): { code: number; json: string } {
  const code = isKdpError(err) ? (CNI_CODES[err.code] ?? 999) : 999;
  const details = isKdpError(err) ? err.code : err instanceof Error ? err.name : 'error';
  return { code, json: JSON.stringify({ cniVersion, code, msg: errorMessage(err), details }) };
}

/** Versions before 1.0.0 carry ips[].version. */
export function convertResult(result: CniResult, cniVersion: string): CniResult {
  if (versionAtLeast(cniVersion, '1.0.0')) return { ...result, cniVersion };
  return {
    ...result,
    cniVersion,
    ips: result.ips?.map((ip) => ({ ...ip, version: ip.address.includes(':') ? '6' : '4' })),
  };
}

/** Runs one invocation; returns the exit code. VERSION never loads the verbs. */
export async function runPlugin(load: () => Promise<PluginVerbs>, io: PluginIo): Promise<number> {
  if (io.env.CNI_COMMAND === 'VERSION') {
    io.write(versionJson() + '\n');
    return 0;
  }
  let cniVersion = LATEST_VERSION;
  let traced: CniRequest | undefined;
  try {
    const stdin = io.readStdin();
    const req = parseRequest(io.env, stdin);
    cniVersion = req.cniVersion;
    req.trace?.mark('parsed');
    if (req.trace) traced = req;
    const verbs = await load();
    req.trace?.mark('loaded');
    switch (req.command) {
      case 'ADD': {
        const result = await verbs.add(req);
        io.write(JSON.stringify(convertResult(result, req.cniVersion)) + '\n');
        break;
      }
      case 'DEL':
        await verbs.del(req);
        break;
      case 'CHECK':
        await verbs.check(req);
        break;
      case 'STATUS':
        await verbs.status(req);
        break;
      case 'GC':
        await verbs.gc(req);
        break;
    }
    return 0;
  } catch (err) {
    io.write(errorJson(err, cniVersion).json + '\n');
    return 1;
  } finally {
    if (traced?.trace) {
      traced.trace.mark('result');
      io.writeTrace?.(traced.trace, traced);
    }
  }
}

/**
 * The whole body of a plugin's entry file: runs the verbs `load` gives against this process's env, stdin and
 * stdout, and sets the exit code. A trace (KDP_CNI_TRACE=1) goes to stderr with the process start as first mark.
 */
export function runPluginProcess(load: () => Promise<PluginVerbs>): void {
  void runPlugin(load, {
    env: process.env,
    readStdin: () => readFileSync(0, 'utf8'),
    write: (s) => void process.stdout.write(s),
    writeTrace: (trace, req) => {
      trace.marks.unshift(['node start', performance.timeOrigin]);
      process.stderr.write(trace.line({ command: req.command, containerId: req.containerId }));
    },
  }).then((code) => {
    process.exitCode = code;
  });
}
