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
  RECORD_CORRUPT: 'INTERNAL_SERVER_ERROR',
  LEASE_LOST: 'CONFLICT',
  INVALID_OPTION: 'INTERNAL_SERVER_ERROR',
  INPUT_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
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
  INPUT_TOO_LARGE: 'input_too_large',
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
