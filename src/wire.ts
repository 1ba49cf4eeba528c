/**
 * The HTTP wire format shared by the server middleware and the client link. Header names are lower case
 * (HTTP header names are case-insensitive; Fetch `Headers` and Node both normalise to lower case).
 *
 * Request:
 * - `Idempotency-Key: <key>` on a request with one call (httpLink). On a batch it applies to batch index 0 only.
 * - `Idempotency-Keys: ["k0",null,"k2"]` on a batch (httpBatchLink): a JSON array indexed by the call's
 *   `batchIndex`, `null` where a call has no key. When present it wins over `Idempotency-Key`.
 *   A key is 1 to 255 characters of visible ASCII (0x21-0x7E). An IETF-style quoted sf-string
 *   (`"abc"`) is accepted in `Idempotency-Key` and unquoted.
 *
 * Response (set by `idempotencyResponseMeta`, non-streamed responses only):
 * - `Idempotency-Status: {"k0":"replayed","k2":"executed"}`: what the server did with each key it saw.
 *   A key the client sent that is missing here was never seen by an idempotent procedure.
 *   With httpBatchStreamLink the head is written before any procedure runs: the value is then `deferred`.
 * - `Idempotency-Statuses: ["executed",null,"replayed"]` on a batch: the same per call, a JSON array indexed by
 *   batch position, `null` where a call had no key. It tells apart two calls that sent the same key in one batch.
 * - `Idempotent-Replayed: true` when the request had a single call and it was a replay (as Stripe does).
 * - `Retry-After: <seconds>` when a call got CONFLICT because its key is in progress.
 * - `Idempotency-Status: {}` when the request carried keys that no idempotent procedure saw.
 * - `Access-Control-Expose-Headers` lists the headers above on requests with an `Origin`, so browsers on
 *   another origin can read them.
 */
export const KEY_HEADER = 'idempotency-key';
export const KEYS_HEADER = 'idempotency-keys';
export const STATUS_HEADER = 'idempotency-status';
export const STATUSES_HEADER = 'idempotency-statuses';
export const REPLAYED_HEADER = 'idempotent-replayed';
export const RETRY_AFTER_HEADER = 'retry-after';
/** Response headers a cross-origin browser client needs to read. */
export const EXPOSED_HEADERS = ['idempotency-status', 'idempotency-statuses', 'idempotent-replayed', 'retry-after'] as const;

/** Value of `Idempotency-Status` when the response head was sent before the calls ran (streaming). */
export const STATUS_DEFERRED = 'deferred';

/** Longest key accepted, as Stripe does. */
export const MAX_KEY_LENGTH = 255;

/** Characters a key may hold: visible ASCII, 0x21 to 0x7E (no spaces, no control characters). */
export const KEY_PATTERN = /^[\x21-\x7e]+$/;

/** Whether `key` is a valid idempotency key: a string of 1 to 255 visible ASCII characters. */
export const isValidKey = (key: unknown): key is string =>
  typeof key === 'string' && key.length <= MAX_KEY_LENGTH && KEY_PATTERN.test(key);

/** What the server did with one key, as reported in `Idempotency-Status`. */
export type KeyStatus =
  /** The procedure ran and its outcome was stored (a retry replays it). */
  | 'executed'
  /** The procedure ran and failed with an error that is not stored: a retry runs it again. */
  | 'released'
  | 'replayed'
  | 'in_progress'
  | 'mismatch'
  | 'not_stored'
  | 'store_unavailable';

/** Data added to a TRPCError's `data.idempotency` by `idempotencyErrorData` in your error formatter. */
export interface IdempotencyErrorData {
  /** Why the idempotency layer refused the call. */
  reason:
    | 'key_missing'
    | 'key_invalid'
    | 'in_progress'
    | 'mismatch'
    | 'not_stored'
    | 'store_unavailable'
    | 'record_corrupt'
    | 'lease_lost'
    | 'invalid_option'
    /** The input is past the default fingerprint's budget (depth, values or string length) or holds a cycle. */
    | 'input_too_large';
  /** Retry after this many milliseconds (in-progress conflicts and store outages only). */
  retryAfterMs?: number;
}
