import { TRPCError } from '@trpc/server';
import type { IdempotencyError, IdempotencyErrorCode } from '../errors';
import { isIdempotencyError } from '../errors';
import type { IdempotencyErrorData } from '../wire';

const TRPC_CODES = {
  KEY_MISSING: 'BAD_REQUEST',
  KEY_INVALID: 'BAD_REQUEST',
  IN_PROGRESS: 'CONFLICT',
  MISMATCH: 'UNPROCESSABLE_CONTENT',
  NOT_STORED: 'CONFLICT',
  STORE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  // A per-scope quota of the store (e.g. the memory store's running claims per partition): this caller is asked
  // to slow down, the store itself is fine.
  QUOTA_EXCEEDED: 'TOO_MANY_REQUESTS',
  RECORD_CORRUPT: 'INTERNAL_SERVER_ERROR',
  LEASE_LOST: 'CONFLICT',
  INVALID_OPTION: 'INTERNAL_SERVER_ERROR',
  STEP_DUPLICATE: 'INTERNAL_SERVER_ERROR',
  // Stored as the key's answer: the same request gets it again until an operator decides.
  STEP_INDETERMINATE: 'CONFLICT',
} as const satisfies Record<IdempotencyErrorCode, TRPCError['code']>;

const REASONS = {
  KEY_MISSING: 'key_missing',
  KEY_INVALID: 'key_invalid',
  IN_PROGRESS: 'in_progress',
  MISMATCH: 'mismatch',
  NOT_STORED: 'not_stored',
  STORE_UNAVAILABLE: 'store_unavailable',
  QUOTA_EXCEEDED: 'quota_exceeded',
  RECORD_CORRUPT: 'record_corrupt',
  LEASE_LOST: 'lease_lost',
  INVALID_OPTION: 'invalid_option',
  STEP_DUPLICATE: 'step_duplicate',
  STEP_INDETERMINATE: 'step_indeterminate',
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
