// Raw HTTP/1 bytes over one connection, for the tests of the ingress front's parsing and framing (ingress-front,
// ingress-smuggling): what comes back, collected until the server closes or the connection goes quiet.
import { connect } from 'node:net';
import type { Socket } from 'node:net';

/** The status codes of the HTTP/1 answers in `out`, in order. */
export const statuses = (out: string): number[] =>
  [...out.matchAll(/^HTTP\/1\.[01] (\d{3})/gm)].map((m) => Number(m[1]));

/**
 * Writes `chunks` on `s` once `ready` has fired (`o.gapMs` apart) and collects what comes back: until the server
 * closes, or until the connection has been quiet for `o.quietMs` (400) once `o.answers` (0) status lines are in;
 * 20 s at most. The quiet window starts only after the answers a request must get: counted from the write, it
 * cut off answers a loaded machine took longer than 400 ms to send (seen at loads 7 and 9).
 */
export function exchange(
  s: Socket,
  ready: 'connect' | 'secureConnect',
  chunks: readonly (string | Buffer)[],
  o: { answers?: number; quietMs?: number; gapMs?: number } = {},
): Promise<string> {
  const { answers = 0, quietMs = 400, gapMs = 0 } = o;
  return new Promise((resolve) => {
    let out = '';
    let sent = false;
    let quiet: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(quiet);
      clearTimeout(limit);
      s.destroy();
      resolve(out);
    };
    const limit = setTimeout(done, 20_000);
    const arm = () => {
      if (!sent || statuses(out).length < answers) return;
      clearTimeout(quiet);
      quiet = setTimeout(done, quietMs);
    };
    s.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      arm();
    });
    s.on('error', done);
    s.on('close', done);
    s.once(ready, async () => {
      for (const c of chunks) {
        s.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
      sent = true;
      arm();
    });
  });
}

/**
 * GET `path` (Host `host`, Connection: close) on a new connection to 127.0.0.1:`port` from a client that does not
 * read for 400 ms and then until `hold` resolves (what else a test wants done meanwhile), so the server's writes
 * to it back up; then reads to the end and returns the body (what follows the head). `track` gets the socket (a
 * test's teardown destroys it).
 */
export async function stalledBody(
  port: number,
  path: string,
  host: string,
  track: (s: Socket) => void = () => {},
  hold: () => Promise<unknown> = async () => {},
): Promise<Buffer> {
  const s = connect(port, '127.0.0.1');
  track(s);
  await new Promise((r) => s.once('connect', r));
  s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  s.pause();
  await new Promise((r) => setTimeout(r, 400));
  await hold();
  const parts: Buffer[] = [];
  s.on('data', (b: Buffer) => parts.push(b));
  const ended = new Promise((r) => s.once('end', r));
  s.resume();
  await ended;
  const all = Buffer.concat(parts);
  return all.subarray(all.indexOf('\r\n\r\n') + 4);
}
