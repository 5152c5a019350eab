// The facts of a TLS ClientHello the HTTPS port decides on before any TLS library sees it: the server name (SNI,
// RFC 6066 section 3) and the ALPN protocols offered (RFC 7301), read from the first TLS record (RFC 8446 section
// 5.1 and 4.1.2). Pure: the bytes are peeked, never consumed.

export interface ClientHello {
  /** the host_name of the server_name extension, lower-cased; '' without one */
  readonly serverName: string;
  /** the protocol names of the application_layer_protocol_negotiation extension, in the client's order */
  readonly alpn: readonly string[];
}

const HANDSHAKE = 22;
const CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;

/**
 * The ClientHello at the start of `b`; 'partial' when the first record is not all there yet; undefined when it is
 * not a ClientHello this reader takes (another record type, a hello split over records, a malformed one): node:tls
 * reads those itself and answers as it does.
 */
export function readClientHello(b: Uint8Array): ClientHello | 'partial' | undefined {
  if (b.length < 5) return b.length === 0 || b[0] === HANDSHAKE ? 'partial' : undefined;
  if (b[0] !== HANDSHAKE || b[1] !== 3) return undefined;
  const recLen = (b[3]! << 8) | b[4]!;
  if (recLen < 4 || recLen > 16384) return undefined;
  if (b.length < 5 + recLen) return 'partial';
  const end = 5 + recLen;
  if (b[5] !== CLIENT_HELLO) return undefined;
  const msgLen = (b[6]! << 16) | (b[7]! << 8) | b[8]!;
  if (9 + msgLen > end) return undefined; // the hello goes on in a later record
  const msgEnd = 9 + msgLen;
  let p = 9 + 2 + 32; // legacy_version, random
  if (p + 1 > msgEnd) return undefined;
  p += 1 + b[p]!; // legacy_session_id
  if (p + 2 > msgEnd) return undefined;
  p += 2 + ((b[p]! << 8) | b[p + 1]!); // cipher_suites
  if (p + 1 > msgEnd) return undefined;
  p += 1 + b[p]!; // legacy_compression_methods
  if (p === msgEnd) return { serverName: '', alpn: [] }; // no extensions
  if (p + 2 > msgEnd) return undefined;
  const extEnd = p + 2 + ((b[p]! << 8) | b[p + 1]!);
  if (extEnd !== msgEnd) return undefined;
  p += 2;
  let serverName = '';
  const alpn: string[] = [];
  const seen = new Set<number>();
  while (p < extEnd) {
    if (p + 4 > extEnd) return undefined;
    const type = (b[p]! << 8) | b[p + 1]!;
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    const body = p + 4;
    p = body + len;
    if (p > extEnd) return undefined;
    if (seen.has(type)) return undefined; // RFC 8446 4.2: no extension twice
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      if (len < 2 || body + 2 + ((b[body]! << 8) | b[body + 1]!) !== p) return undefined;
      for (let q = body + 2; q < p;) {
        if (q + 3 > p) return undefined;
        const nameType = b[q]!;
        const nameLen = (b[q + 1]! << 8) | b[q + 2]!;
        if (q + 3 + nameLen > p) return undefined;
        if (nameType === 0) {
          if (serverName !== '' || nameLen === 0) return undefined;
          serverName = latin1(b, q + 3, q + 3 + nameLen).toLowerCase();
        }
        q += 3 + nameLen;
      }
    } else if (type === EXT_ALPN) {
      if (len < 2 || body + 2 + ((b[body]! << 8) | b[body + 1]!) !== p) return undefined;
      for (let q = body + 2; q < p;) {
        const l = b[q]!;
        if (l === 0 || q + 1 + l > p) return undefined;
        alpn.push(latin1(b, q + 1, q + 1 + l));
        q += 1 + l;
      }
    }
  }
  return { serverName, alpn };
}

function latin1(b: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i]!);
  return s;
}
