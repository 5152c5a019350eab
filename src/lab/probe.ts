// Tiny network probes to run inside lab namespaces (where no UDP-capable nc exists):
//   node src/lab/probe.ts udp HOST PORT MESSAGE [TIMEOUT_MS]   prints the reply; exit 1 on timeout
//   node src/lab/probe.ts connect HOST PORT [TIMEOUT_MS]       prints connected | refused | timeout | unreachable
// `connect` tells a REJECT (refused at once) from a DROP (timeout).
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
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
} else {
  process.stderr.write('usage: probe.ts udp HOST PORT MESSAGE [TIMEOUT_MS] | connect HOST PORT [TIMEOUT_MS]\n');
  process.exit(2);
}
