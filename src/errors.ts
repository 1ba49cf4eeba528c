import { TRPCError } from '@trpc/server';
import type { IdempotencyErrorData } from './wire';

export type IdempotencyErrorCode =
  | 'KEY_MISSING'
  | 'KEY_INVALID'
  | 'IN_PROGRESS'
  | 'MISMATCH'
  | 'NOT_STORED'
  | 'STORE_UNAVAILABLE'
  | 'RECORD_CORRUPT'
  | 'LEASE_LOST'
  | 'INVALID_OPTION';

export interface IdempotencyErrorOptions extends ErrorOptions {
  /** For IN_PROGRESS and STORE_UNAVAILABLE: when a retry may succeed. */
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

const TRPC_CODES = {
  KEY_MISSING: 'BAD_REQUEST',
  KEY_INVALID: 'BAD_REQUEST',
  IN_PROGRESS: 'CONFLICT',
  MISMATCH: 'UNPROCESSABLE_CONTENT',
  NOT_STORED: 'CONFLICT',
  STORE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  RECORD_CORRUPT: 'INTERNAL_SERVER_ERROR',
  LEASE_LOST: 'CONFLICT',
  INVALID_OPTION: 'INTERNAL_SERVER_ERROR',
} as const satisfies Record<IdempotencyErrorCode, TRPCError['code']>;

const REASONS = {
  KEY_MISSING: 'key_missing',
  KEY_INVALID: 'key_invalid',
  IN_PROGRESS: 'in_progress',
  MISMATCH: 'mismatch',
  NOT_STORED: 'not_stored',
  STORE_UNAVAILABLE: 'store_unavailable',
  RECORD_CORRUPT: 'record_corrupt',
  LEASE_LOST: 'lease_lost',
  INVALID_OPTION: 'invalid_option',
} as const satisfies Record<IdempotencyErrorCode, IdempotencyErrorData['reason']>;

/** The single place where idempotency failures become tRPC errors. */
export const toTRPCError = (error: IdempotencyError): TRPCError =>
  new TRPCError({ code: TRPC_CODES[error.code], message: error.message, cause: error });

/**
 * For your `errorFormatter`: the idempotency details of an error, or `undefined`.
 *
 * @example
 * errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, idempotency: idempotencyErrorData(error) } })
 */
export const idempotencyErrorData = (error: unknown): IdempotencyErrorData | undefined => {
  const cause = error instanceof TRPCError || (error instanceof Error && error.name === 'TRPCError') ? error.cause : error;
  if (!isIdempotencyError(cause)) return undefined;
  const data: IdempotencyErrorData = { reason: REASONS[cause.code] };
  if (cause.retryAfterMs !== undefined) data.retryAfterMs = cause.retryAfterMs;
  return data;
};
