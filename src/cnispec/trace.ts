// Per-phase timing of one plugin call (KDP_CNI_TRACE=1): wall-clock marks in epoch milliseconds, so the
// marks of the Perl thin client, the warm server and the harness that exec'd the plugin line up on one
// clock. The exec path prints the trace to stderr; `kdp cni serve` hands it back to the thin client in the
// X-Kdp-Trace response header, which prints it to stderr. Nothing is recorded unless tracing is on.

/** Milliseconds since the epoch with sub-millisecond resolution (CLOCK_REALTIME, comparable across processes). */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export interface Span {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

export class Trace {
  readonly marks: [string, number][] = [];
  readonly spans: Span[] = [];

  mark(name: string, at = epochMs()): void {
    this.marks.push([name, at]);
  }

  /** Times one step (a child process, a lock); the promise is returned unchanged. */
  span<T>(name: string, p: Promise<T>): Promise<T> {
    const start = epochMs();
    const end = () => void this.spans.push({ name, start, end: epochMs() });
    p.then(end, end);
    return p;
  }

  /** One line: `kdp-trace <json>`; the bench parses it. */
  line(what: Readonly<Record<string, string>>): string {
    const r = (x: number) => Math.round(x * 100) / 100;
    return `kdp-trace ${JSON.stringify({ ...what, marks: this.marks.map(([n, t]) => [n, r(t)]), spans: this.spans.map((s) => [s.name, r(s.start), r(s.end)]) })}\n`;
  }
}

/** A no-op stand-in when tracing is off, so callers need no branches. */
class NoTrace extends Trace {
  override mark(): void {}
  override span<T>(_name: string, p: Promise<T>): Promise<T> {
    return p;
  }
}

export const NO_TRACE: Trace = new NoTrace();
