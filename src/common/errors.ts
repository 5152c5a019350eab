// One error hierarchy for kdp. Every error carries a stable code (documented in docs/errors.md,
// enforced by test/unit/common/errors.test.ts). Inner layers throw; only the top level logs.

export const ErrorCodes = {
  KDP_INTERNAL: 'an invariant was broken; a bug in kdp',
  KDP_USAGE: 'a command line that kdp cannot act on (unknown subcommand or flag, bad value)',
  KDP_EXEC_FAILED: 'an external command (ip, nft, iptables-restore, ...) exited non-zero or could not start',
  KDP_EXEC_TIMEOUT: 'an external command did not finish within its time limit',
  KDP_NOT_ROOT: 'the operation needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)',
  KDP_LAB_INVALID: 'a lab request that cannot be built (bad node count, name, address plan)',
  KDP_LAB_SETUP: 'building the lab of network namespaces failed; what was built was removed',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

const brand = Symbol.for('kdp.error');

export class KdpError extends Error {
  readonly code: string;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(code: ErrorCode | (string & {}), message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KdpError';
    this.code = code;
    this.details = Object.freeze({ ...options?.details });
    Object.defineProperty(this, brand, { value: true });
  }

  // instanceof still works when two copies of this module are loaded (bundled CNI plugins + library)
  static override [Symbol.hasInstance](obj: unknown): boolean {
    return typeof obj === 'object' && obj !== null && (obj as Record<symbol, unknown>)[brand] === true;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, ...this.details };
  }
}

export function isKdpError(err: unknown, code?: string): err is KdpError {
  return err instanceof KdpError && (code === undefined || err.code === code);
}

/** The message of anything thrown, for logs and wrapped errors. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
