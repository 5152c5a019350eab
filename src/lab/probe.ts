// Tiny network probes to run inside lab namespaces (where no UDP-capable nc exists):
//   node src/lab/probe.ts udp HOST PORT MESSAGE [TIMEOUT_MS]   prints the reply; exit 1 on timeout
//   node src/lab/probe.ts connect HOST PORT [TIMEOUT_MS]       prints connected | refused | timeout | unreachable
//   node src/lab/probe.ts loop HOST PORT SECONDS [TIMEOUT_MS]  HTTP GET /, a new connection each, one after the
//                                                             other for SECONDS; prints JSON {ok, failed, errors}
//   node src/lab/probe.ts serve SOCKET                          many probes from one process (below)
// `connect` tells a REJECT (refused at once) from a DROP (timeout). `loop` counts every request that did not
// get a 200 in TIMEOUT_MS (default 1000) as failed, with its error.
// `serve` answers HTTP on a unix socket (a file: the test reaches it without any network traffic): POST / with
// a JSON array of {proto: 'tcp'|'udp', host, port, timeoutMs} runs them all at once from this namespace and
// answers the array of outcomes (connected | replied | refused | timeout | unreachable | error:CODE). The
// reachability matrices of the NetworkPolicy e2e tests are probed this way: one process per pod, not one per probe.
import { createSocket } from 'node:dgram';
import { createServer, request } from 'node:http';
import { connect } from 'node:net';
import { isIPv6 } from 'node:net';
import { rmSync } from 'node:fs';

interface ProbeJob {
  readonly proto: 'tcp' | 'udp';
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
}

const errName = (e: NodeJS.ErrnoException) =>
  e.code === 'ECONNREFUSED'
    ? 'refused'
    : e.code === 'EHOSTUNREACH' || e.code === 'ENETUNREACH'
      ? 'unreachable'
      : `error:${e.code}`;

function probeTcp(j: ProbeJob): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: j.host, port: j.port });
    const done = (what: string) => {
      s.destroy();
      resolve(what);
    };
    s.setTimeout(j.timeoutMs, () => done('timeout'));
    s.on('connect', () => done('connected'));
    s.on('error', (e: NodeJS.ErrnoException) => done(errName(e)));
  });
}

function probeUdp(j: ProbeJob): Promise<string> {
  return new Promise((resolve) => {
    const sock = createSocket(isIPv6(j.host) ? 'udp6' : 'udp4');
    const done = (what: string) => {
      clearTimeout(timer);
      sock.close();
      resolve(what);
    };
    const timer = setTimeout(() => done('timeout'), j.timeoutMs);
    sock.on('message', () => done('replied'));
    // an ICMP port unreachable comes back as ECONNREFUSED on a connected socket
    sock.on('error', (e: NodeJS.ErrnoException) => done(errName(e)));
    sock.connect(j.port, j.host, () => sock.send('probe'));
  });
}

function serve(path: string): void {
  rmSync(path, { force: true });
  const srv = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let jobs: ProbeJob[];
      try {
        jobs = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ProbeJob[];
      } catch {
        res.writeHead(400).end('bad JSON\n');
        return;
      }
      void Promise.all(jobs.map((j) => (j.proto === 'udp' ? probeUdp(j) : probeTcp(j)))).then((out) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out)),
      );
    });
  });
  srv.listen(path, () => process.stdout.write('ready\n'));
  for (const sig of ['SIGTERM', 'SIGINT'] as const)
    process.on(sig, () => {
      rmSync(path, { force: true });
      process.exit(0);
    });
}

const [mode, host = '', portS = '', ...rest] = process.argv.slice(2);
const port = Number(portS);

if (mode === 'udp') {
  const [msg = 'ping', timeoutS = '2000'] = rest;
  const sock = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  const timer = setTimeout(() => {
    process.stdout.write('timeout\n');
    process.exit(1);
  }, Number(timeoutS));
  sock.on('message', (m) => {
    clearTimeout(timer);
    process.stdout.write(m.toString('utf8') + '\n');
    sock.close();
  });
  sock.send(msg, port, host);
} else if (mode === 'connect') {
  const [timeoutS = '2000'] = rest;
  const t0 = Date.now();
  const s = connect({ host, port });
  const done = (what: string, code: number) => {
    process.stdout.write(`${what} ${Date.now() - t0}ms\n`);
    s.destroy();
    process.exit(code);
  };
  s.setTimeout(Number(timeoutS), () => done('timeout', 1));
  s.on('connect', () => done('connected', 0));
  s.on('error', (e: NodeJS.ErrnoException) =>
    done(
      e.code === 'ECONNREFUSED'
        ? 'refused'
        : e.code === 'EHOSTUNREACH' || e.code === 'ENETUNREACH'
          ? 'unreachable'
          : `error:${e.code}`,
      1,
    ),
  );
} else if (mode === 'loop') {
  const [secondsS = '5', timeoutS = '1000'] = rest;
  const end = Date.now() + Number(secondsS) * 1000;
  let ok = 0;
  let failed = 0;
  const errors: Record<string, number> = {};
  const once = () =>
    new Promise<void>((resolve) => {
      let done = false;
      const fail = (why: string) => {
        if (done) return;
        done = true;
        failed++;
        errors[why] = (errors[why] ?? 0) + 1;
        resolve();
      };
      const req = request({ host, port, path: '/', agent: false, timeout: Number(timeoutS) }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) return fail(`status ${res.statusCode}`);
          if (!done) ok++;
          done = true;
          resolve();
        });
        res.on('error', (e) => fail(e.message));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
      req.end();
    });
  while (Date.now() < end) await once();
  process.stdout.write(JSON.stringify({ ok, failed, errors }) + '\n');
} else if (mode === 'serve') {
  serve(host);
} else {
  process.stderr.write(
    'usage: probe.ts udp HOST PORT MESSAGE [TIMEOUT_MS] | connect HOST PORT [TIMEOUT_MS] | loop HOST PORT SECONDS [TIMEOUT_MS] | serve SOCKET\n',
  );
  process.exit(2);
}
