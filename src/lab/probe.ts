// Tiny network probes to run inside lab namespaces (where no UDP-capable nc exists):
//   node src/lab/probe.ts udp HOST PORT MESSAGE [TIMEOUT_MS]   prints the reply; exit 1 on timeout
//   node src/lab/probe.ts connect HOST PORT [TIMEOUT_MS]       prints connected | refused | timeout | unreachable
//   node src/lab/probe.ts loop HOST PORT SECONDS [TIMEOUT_MS]  HTTP GET /, a new connection each, one after the
//                                                             other for SECONDS; prints JSON {ok, failed, errors}
// `connect` tells a REJECT (refused at once) from a DROP (timeout). `loop` counts every request that did not
// get a 200 in TIMEOUT_MS (default 1000) as failed, with its error.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { request } from 'node:http';
import { isIPv6 } from 'node:net';

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
} else {
  process.stderr.write(
    'usage: probe.ts udp HOST PORT MESSAGE [TIMEOUT_MS] | connect HOST PORT [TIMEOUT_MS] | loop HOST PORT SECONDS [TIMEOUT_MS]\n',
  );
  process.exit(2);
}
