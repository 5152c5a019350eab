// Warm CNI service: `kdp cni serve` keeps one Node process per node that runs the plugin verbs for
// requests forwarded by the plugin files' preamble over a unix socket (a Perl thin client), so a runtime's exec of
// a plugin costs sh + perl instead of a Node start. Same verbs, same skeleton, same error JSON; without
// a listening socket the plugin runs the verbs itself. The default socket is keyed by the network
// namespace (/run/kdp-cni/<netns inode>.sock): the server serves the node it runs in, and a plugin
// exec'd in that node finds it.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdirSync, readlinkSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../common/log.ts';
import { runPlugin } from '../cnispec/skel.ts';
import type { PluginVerbs } from '../cnispec/skel.ts';
import { epochMs } from '../cnispec/trace.ts';
import { createWarmContext } from './warm.ts';
import type { WarmContext } from './warm.ts';
import type { Trace } from '../cnispec/trace.ts';
import type { CniRequest } from '../cnispec/types.ts';

export const SOCKET_DIR = '/run/kdp-cni';

/** The socket path for the network namespace this process is in. */
export function defaultSocketPath(): string {
  const link = readlinkSync('/proc/self/ns/net'); // net:[4026531840]
  return `${SOCKET_DIR}/${link.replace(/^net:\[/, '').replace(/\]$/, '')}.sock`;
}

const HEADERS: Record<string, string> = {
  'x-cni-command': 'CNI_COMMAND',
  'x-cni-containerid': 'CNI_CONTAINERID',
  'x-cni-netns': 'CNI_NETNS',
  'x-cni-ifname': 'CNI_IFNAME',
  'x-cni-args': 'CNI_ARGS',
  'x-cni-path': 'CNI_PATH',
};

export interface CniServer {
  readonly path: string;
  readonly served: () => number;
  close(): Promise<void>;
}

export async function startCniServer(opts: {
  socketPath?: string;
  log: Logger;
  verbs: Readonly<Record<string, (warm?: WarmContext) => PluginVerbs>>;
  /** pre-spawned children and lock agents (src/cni/warm.ts); false = every child spawned per call, as exec'd plugins do */
  warm?: boolean;
}): Promise<CniServer> {
  const path = opts.socketPath ?? defaultSocketPath();
  const warm = opts.warm === false ? undefined : createWarmContext();
  const verbs = Object.fromEntries(Object.entries(opts.verbs).map(([k, make]) => [k, make(warm)]));
  let served = 0;
  let inFlight = 0;
  // children are spawned for the pool only when no call is running: a spawn blocks the event loop until exec
  const refill = () => {
    if (inFlight === 0) warm?.exec.refill();
  };
  // no HTTP timeouts: a request waits as long as the plugin work does (100 concurrent ADDs on an overloaded
  // node took minutes, and Node's default headersTimeout answered some of them 408 before they ran)
  const server: Server = createServer({ headersTimeout: 0, requestTimeout: 0, keepAliveTimeout: 0 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    inFlight++;
    res.once('close', () => {
      inFlight--;
      if (inFlight === 0) setImmediate(refill);
    });
    req.on('end', () => {
      const t0 = performance.now();
      const received = epochMs();
      const clientStart = Number(req.headers['x-kdp-trace']);
      let traceLine = '';
      const plugin = (req.url ?? '/').slice(1);
      const v = verbs[plugin];
      const env: Record<string, string | undefined> = { ...process.env };
      for (const [h, k] of Object.entries(HEADERS)) env[k] = (req.headers[h] as string | undefined) ?? '';
      env.KDP_CNI_TRACE = clientStart > 0 ? '1' : undefined; // the client asks for a trace, not the server's env
      let out = '';
      const write = (s: string) => void (out += s);
      const done = (code: number) => {
        served++;
        opts.log.info(
          {
            plugin,
            command: env.CNI_COMMAND,
            containerId: env.CNI_CONTAINERID,
            code,
            ms: Math.round(performance.now() - t0),
            prespawned: warm?.exec.hits ?? 0,
            lockAgents: warm?.locks.size ?? 0,
          },
          'cni request',
        );
        res.writeHead(code === 0 ? 200 : 500, {
          'content-type': 'application/json',
          ...(traceLine ? { 'x-kdp-trace': traceLine } : {}),
        });
        res.end(out);
      };
      if (!v) {
        out =
          JSON.stringify({
            cniVersion: '1.1.0',
            code: 999,
            msg: `kdp cni serve: unknown plugin ${JSON.stringify(plugin)}`,
          }) + '\n';
        done(1);
        return;
      }
      const writeTrace = (trace: Trace, r: CniRequest) => {
        trace.marks.unshift(['client start', clientStart], ['received', received]);
        trace.mark('answered');
        traceLine = trace.line({ command: r.command, containerId: r.containerId }).trim();
      };
      void runPlugin(async () => v, {
        env,
        readStdin: () => Buffer.concat(chunks).toString('utf8'),
        write,
        writeTrace,
      }).then(done, (err: unknown) => {
        out = JSON.stringify({ cniVersion: '1.1.0', code: 999, msg: String(err) }) + '\n';
        done(1);
      });
    });
  });
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rmSync(path, { force: true }); // a socket left by a crashed server
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  refill();
  return {
    path,
    served: () => served,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        rmSync(path, { force: true });
      }).then(async () => {
        warm?.locks.close();
        await warm?.exec.close();
      }),
  };
}
