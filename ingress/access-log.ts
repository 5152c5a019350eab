// Access log in ingress-nginx's default log-format-upstream:
// $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
// $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr
// $upstream_response_length $upstream_response_time $upstream_status $req_id
// Lines are buffered and written once per event-loop turn.

interface AccessEntry {
  readonly remoteAddr: string;
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly status: number;
  readonly bodyBytesSent: number;
  readonly referer: string | undefined;
  readonly userAgent: string | undefined;
  readonly requestLength: number;
  /** seconds */
  readonly requestTime: number;
  readonly upstreamName: string;
  readonly alternativeUpstreamName: string;
  readonly upstreamAddr: string;
  readonly upstreamResponseLength: string;
  readonly upstreamResponseTime: string;
  readonly upstreamStatus: string;
  readonly requestId: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/** nginx $time_local (in UTC): 24/Nov/2026:00:19:38 +0000 */
export function timeLocal(d: Date): string {
  return `${p2(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} +0000`;
}

/** nginx escapes " and non-printable bytes as \xHH in log strings */
function esc(s: string | undefined): string {
  if (s === undefined || s === '') return '-';
  return s.replace(
    // eslint-disable-next-line no-control-regex -- escaping control characters is the point
    /["\\\x00-\x1f\x7f-\uffff]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0').slice(-2).toUpperCase()}`,
  );
}

export function formatAccessLine(e: AccessEntry, now: Date): string {
  return (
    `${e.remoteAddr} - - [${timeLocal(now)}] "${esc(`${e.method} ${e.url} HTTP/${e.httpVersion}`)}" ${e.status} ${e.bodyBytesSent} ` +
    `"${esc(e.referer)}" "${esc(e.userAgent)}" ${e.requestLength} ${e.requestTime.toFixed(3)} [${e.upstreamName}] [${e.alternativeUpstreamName}] ` +
    `${e.upstreamAddr} ${e.upstreamResponseLength} ${e.upstreamResponseTime} ${e.upstreamStatus} ${e.requestId}`
  );
}

export interface AccessLog {
  write(e: AccessEntry): void;
}

export class BufferedAccessLog implements AccessLog {
  readonly #out: (chunk: string) => void;
  #buf: string[] = [];
  #scheduled = false;
  constructor(out: (chunk: string) => void) {
    this.#out = out;
  }
  write(e: AccessEntry): void {
    this.#buf.push(formatAccessLine(e, new Date()));
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }
  flush(): void {
    this.#scheduled = false;
    if (this.#buf.length === 0) return;
    const text = this.#buf.join('\n') + '\n';
    this.#buf = [];
    this.#out(text);
  }
}
