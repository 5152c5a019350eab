// The errors plugin: logs why a request failed (the `error` a plugin put on its SERVFAIL reply, such as an
// upstream's timeout) as `RCODE NAME. TYPE: error`. `consolidate DURATION REGEXP [LEVEL]` folds the
// errors matching REGEXP into one line per DURATION, "N errors like 'REGEXP' occurred in last DURATION",
// as CoreDNS does, so a dead upstream does not flood the log.
import type { Logger } from '../../common/log.ts';
import type { DnsReply, DnsRequest, Next, Plugin } from '../chain.ts';
import type { ConsolidateRule } from '../corefile.ts';
import { rcodeName } from '../wire.ts';

interface RuleState {
  readonly rule: ConsolidateRule;
  readonly re: RegExp;
  count: number;
  timer: { cancel(): void } | undefined;
}

interface ErrorsDeps {
  readonly log: Logger;
  /** schedules fn after ms (tests: a fake clock) */
  readonly schedule?: (fn: () => void, ms: number) => { cancel(): void };
}

const defaultSchedule = (fn: () => void, ms: number) => {
  const t = setTimeout(fn, ms);
  t.unref();
  return { cancel: () => clearTimeout(t) };
};

function showDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h0m0s`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m0s`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

export class ErrorsPlugin implements Plugin {
  readonly name = 'errors';
  readonly #log: Logger;
  readonly #rules: RuleState[];
  readonly #schedule: NonNullable<ErrorsDeps['schedule']>;

  constructor(rules: readonly ConsolidateRule[], deps: ErrorsDeps) {
    this.#log = deps.log;
    this.#schedule = deps.schedule ?? defaultSchedule;
    this.#rules = rules.map((rule) => ({ rule, re: new RegExp(rule.pattern), count: 0, timer: undefined }));
  }

  async serve(req: DnsRequest, next: Next): Promise<DnsReply> {
    const r = await next();
    if (r.error !== undefined)
      this.report(`${rcodeName(r.rcode)} ${req.question.name}. ${req.qtype}: ${r.error}`, r.plugin);
    return r;
  }

  /** Logs one error line, or counts it under the first consolidate rule it matches. */
  report(line: string, plugin: string): void {
    const st = this.#rules.find((s) => s.re.test(line));
    if (!st) {
      this.#log.error({ plugin }, line);
      return;
    }
    st.count++;
    if (st.timer) return;
    st.timer = this.#schedule(() => this.#flush(st), st.rule.durationMs);
  }

  #flush(st: RuleState): void {
    const n = st.count;
    st.count = 0;
    st.timer = undefined;
    if (n > 0)
      this.#log[st.rule.level](
        { count: n, pattern: st.rule.pattern },
        `${n} errors like '${st.rule.pattern}' occurred in last ${showDuration(st.rule.durationMs)}`,
      );
  }

  async close(): Promise<void> {
    for (const st of this.#rules) {
      st.timer?.cancel();
      this.#flush(st);
    }
  }
}
