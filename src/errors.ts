
export type IdempotencyErrorCode =
  | 'KEY_MISSING'
  | 'KEY_INVALID'
  | 'IN_PROGRESS'
  | 'MISMATCH'
  | 'NOT_STORED'
  | 'STORE_UNAVAILABLE'
  | 'QUOTA_EXCEEDED'
  | 'RECORD_CORRUPT'
  | 'LEASE_LOST'
  | 'INVALID_OPTION'
  | 'INPUT_TOO_LARGE'
  /** A durable step name was used twice in one attempt (a bug in the procedure). */
  | 'STEP_DUPLICATE'
  /** An at-most-once step was started by an earlier attempt and never finished: it may or may not have run. */
  | 'STEP_INDETERMINATE';

export interface IdempotencyErrorOptions extends ErrorOptions {
  /** For IN_PROGRESS, STORE_UNAVAILABLE and QUOTA_EXCEEDED: when a retry may succeed. */
  retryAfterMs?: number | undefined;
}

/**
 * The one error class of trpc-idempotency. Recognise it with `isIdempotencyError` (works across two copies of
 * the package) or `instanceof`. The middleware turns it into a TRPCError with this error as `cause`.
 */
export class IdempotencyError extends Error {
  override readonly name = 'IdempotencyError' as const;
  readonly code: IdempotencyErrorCode;
  readonly retryAfterMs: number | undefined;

  constructor(code: IdempotencyErrorCode, message: string, options?: IdempotencyErrorOptions) {
    super(`trpc-idempotency: ${message}`, options);
    this.code = code;
    this.retryAfterMs = options?.retryAfterMs;
  }
}

export const isIdempotencyError = (error: unknown): error is IdempotencyError =>
  error instanceof IdempotencyError ||
  (error instanceof Error && error.name === 'IdempotencyError' && typeof (error as { code?: unknown }).code === 'string');
