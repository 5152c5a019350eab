// The DNS server's UDP socket, behind one small interface with two implementations:
// - 'mmsg': the native addon native/udp/kdp_udp.c (built by scripts/build-native.ts): recvmmsg fills up to
//   SLOTS datagrams per system call into buffers this module holds, JavaScript runs once per batch, and the
//   answers left in the batch's slots go out with one sendmmsg. No Buffer, rinfo or SendWrap per datagram.
// - 'dgram': node:dgram, one datagram per callback and per send (the fallback when the addon is not built).
// The handler answers synchronously when it can (the fast paths); otherwise it takes the query's peer and
// answers later through sendLater().
import { createSocket } from 'node:dgram';
import type { RemoteInfo, Socket } from 'node:dgram';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { KdpError } from '../common/errors.ts';

export type UdpIo = 'mmsg' | 'dgram';

/** Sends an answer given after the handler returned to the query's sender. */
export type UdpReply = (answer: Buffer) => void;

/**
 * Answers one datagram: the answer bytes now (the fast paths), or undefined after taking `later()` when an
 * answer will follow through it. `msg` is valid only during the call (copy it to keep it).
 */
export type DatagramHandler = (msg: Buffer, client: string, later: () => UdpReply) => Buffer | undefined;

export interface UdpEndpoint {
  readonly io: UdpIo;
  readonly port: number;
  close(): Promise<void>;
}

export interface UdpOptions {
  /** an IP literal ('::' binds both families, as node:dgram's udp6 with ipv6Only false) */
  readonly host: string;
  readonly port: number;
  readonly reusePort: boolean;
  readonly onDatagram: DatagramHandler;
  readonly onError: (err: Error) => void;
}

export interface Native {
  readonly SLOT: number;
  readonly META: number;
  open(
    host: string,
    port: number,
    reusePort: boolean,
    slots: number,
    rx: Buffer,
    meta: Buffer,
    tx: Buffer,
    onBatch: (n: number) => void,
    onError: (err: Error) => void,
  ): [unknown, number];
  sendTo(handle: unknown, data: Buffer, sockaddr: Buffer): void;
  close(handle: unknown): void;
}

/** where scripts/build-native.ts puts the addon */
const NATIVE_PATH = fileURLToPath(new URL('../../native/build/kdp_udp.node', import.meta.url));

let native: Native | undefined | null = null;
let loadError = '';

/** The addon, or undefined when it is not built or does not load (why: nativeUnavailable()). */
export function loadNative(): Native | undefined {
  if (native !== null) return native;
  native = undefined;
  if (!existsSync(NATIVE_PATH)) loadError = `${NATIVE_PATH} not built (npm run build:native)`;
  else {
    try {
      native = createRequire(import.meta.url)(NATIVE_PATH) as Native;
    } catch (err) {
      loadError = (err as Error).message;
    }
  }
  return native;
}

export function nativeUnavailable(): string {
  loadNative();
  return loadError;
}

/** datagrams read per recvmmsg */
const SLOTS = 32;

/** Opens the socket with `io` ('mmsg' throws when the addon is missing). Bind errors carry the errno code. */
export async function openUdp(io: UdpIo, opts: UdpOptions): Promise<UdpEndpoint> {
  if (io === 'dgram') return openDgram(opts);
  const n = loadNative();
  if (!n) throw new KdpError('KDP_DNS_CONFIG', `--udp-io mmsg: the addon is unavailable: ${loadError}`);
  return openMmsg(n, opts);
}

function openMmsg(n: Native, opts: UdpOptions): UdpEndpoint {
  const { SLOT, META } = n;
  const rx = Buffer.allocUnsafeSlow(SLOTS * SLOT);
  const tx = Buffer.allocUnsafeSlow(SLOTS * SLOT);
  const meta = Buffer.alloc(SLOTS * META);
  const words = new Uint32Array(meta.buffer, meta.byteOffset, meta.length / 4);
  const W = META / 4;
  // the last sender's address text, reused while the same address sends (a resolver sends many queries)
  let lastText = '';
  const lastAddr = new Uint32Array(6);
  let slot = -1;
  let closed = false;
  // `handle` is read by answers given later, which run only after open() returned
  const later = (): UdpReply => {
    const to = Buffer.from(meta.subarray(slot * META + 16, slot * META + 44));
    return (answer) => {
      if (!closed) n.sendTo(handle, answer, to);
    };
  };
  const clientOf = (i: number): string => {
    // the family and words 1-5 of the sockaddr (sin_addr is word 1; sin6_flowinfo and sin6_addr words 1-5)
    const w = i * W + 4;
    const fam = meta[i * META + 12] as number;
    if (
      lastAddr[0] === fam &&
      lastAddr[1] === words[w + 1] &&
      lastAddr[2] === words[w + 2] &&
      lastAddr[3] === words[w + 3] &&
      lastAddr[4] === words[w + 4] &&
      lastAddr[5] === words[w + 5]
    )
      return lastText;
    lastAddr[0] = fam;
    for (let k = 1; k <= 5; k++) lastAddr[k] = words[w + k] as number;
    const at = i * META + 48;
    lastText = meta.toString('latin1', at, at + (meta[i * META + 13] as number));
    return lastText;
  };
  const onBatch = (count: number): void => {
    for (let i = 0; i < count; i++) {
      const len = words[i * W] as number;
      const at = i * SLOT;
      slot = i;
      let answer: Buffer | undefined;
      try {
        answer = opts.onDatagram(rx.subarray(at, at + len), clientOf(i), later);
      } catch (err) {
        opts.onError(err as Error);
        continue;
      }
      if (answer && answer.length <= SLOT) {
        answer.copy(tx, at);
        words[i * W + 1] = answer.length;
      }
    }
    slot = -1;
  };
  const [handle, port] = n.open(opts.host, opts.port, opts.reusePort, SLOTS, rx, meta, tx, onBatch, opts.onError);
  return {
    io: 'mmsg',
    port,
    async close() {
      if (closed) return;
      closed = true;
      n.close(handle);
    },
  };
}

async function openDgram(opts: UdpOptions): Promise<UdpEndpoint> {
  // answers go to the address a query came from, always an IP literal: resolve it in place (the default
  // lookup defers every send by a tick)
  const lookup = (address: string, _o: unknown, cb: (err: Error | null, address: string, family: number) => void) =>
    cb(null, address, address.includes(':') ? 6 : 4);
  const udp: Socket = createSocket({
    type: opts.host.includes(':') ? 'udp6' : 'udp4',
    reuseAddr: false,
    reusePort: opts.reusePort,
    ipv6Only: false,
    lookup: lookup as never,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      // exclusive: a cluster worker binds its own socket instead of asking the primary for a shared one
      udp.bind({ port: opts.port, address: opts.host, exclusive: true }, () => {
        udp.removeListener('error', reject);
        resolve();
      });
    });
  } catch (err) {
    udp.close();
    throw err;
  }
  let closed = false;
  const send = (answer: Buffer, to: RemoteInfo) => {
    if (closed) return;
    try {
      udp.send(answer, to.port, to.address);
    } catch {
      // a source no answer can go to (port 0, closed socket): dropped
    }
  };
  udp.on('message', (msg, rinfo) => {
    let answer: Buffer | undefined;
    try {
      answer = opts.onDatagram(msg, rinfo.address, () => (a) => send(a, rinfo));
    } catch (err) {
      opts.onError(err as Error);
      return;
    }
    if (answer) send(answer, rinfo);
  });
  udp.on('error', opts.onError);
  return {
    io: 'dgram',
    port: udp.address().port,
    close: () =>
      new Promise<void>((r) => {
        if (closed) return r();
        closed = true;
        udp.close(() => r());
      }),
  };
}
