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
  INPUT_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
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
  INPUT_TOO_LARGE: 'input_too_large',
  STEP_DUPLICATE: 'step_duplicate',
  STEP_INDETERMINATE: 'step_indeterminate',
} as const satisfies Record<IdempotencyErrorCode, IdempotencyErrorData['reason']>;

/**
 * What clients are told instead of the error's own message, for codes whose message may carry the store's
 * internals (a Redis record key, Redis' own error text with a script SHA, the memory store's size). Both are only
 * raised before the procedure runs. The details stay on the TRPCError's `cause` (this IdempotencyError, with the
 * store's error as its own `cause`) and in the `store_error` event's `error`: they are for logs, not callers.
 */
const PLAIN_MESSAGES: Partial<Record<IdempotencyErrorCode, string>> = {
  // Raised before the procedure runs. The middleware's own errors after a run (its result could not be stored)
  // carry no store internals and say that the procedure ran: they are sent as written (`asWritten`).
  STORE_UNAVAILABLE: 'trpc-idempotency: the idempotency store cannot be reached; the procedure was not run; retry later',
  RECORD_CORRUPT: "trpc-idempotency: this idempotency key's stored record cannot be read; the procedure was not run",
};

/**
 * The single place where idempotency failures become tRPC errors. Messages about the client's own request (an
 * invalid or missing key, another input, a key in progress) are sent as they are; store failures get a plain
 * message (see PLAIN_MESSAGES), and the error itself goes to `cause` for the server's logs. `asWritten` sends the
 * message as it is: only for errors the middleware wrote itself, with no store text in them.
 */
export const toTRPCError = (error: IdempotencyError, asWritten = false): TRPCError =>
  new TRPCError({
    code: TRPC_CODES[error.code],
    message: (asWritten ? undefined : PLAIN_MESSAGES[error.code]) ?? error.message,
    cause: error,
  });

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
