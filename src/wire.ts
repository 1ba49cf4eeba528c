/**
 * The HTTP wire format shared by the server middleware and the client link. Header names are lower case
 * (HTTP header names are case-insensitive; Fetch `Headers` and Node both normalise to lower case).
 *
 * Request:
 * - `Idempotency-Key: <key>` on a request with one call (httpLink). On a batch it applies to batch index 0 only.
 * - `Idempotency-Keys: ["k0",null,"k2"]` on a batch (httpBatchLink): a JSON array indexed by the call's
 *   `batchIndex`, `null` where a call has no key. When present it wins over `Idempotency-Key`. It is parsed once
 *   per request; only each call's own element is checked, and a list shorter than the batch leaves the later
 *   calls without a key.
 * - A key is 1 to 255 characters of visible ASCII (0x21-0x7E). One rule for both headers: spaces and tabs around
 *   a key are dropped and an RFC 8941 sf-string (`"abc"`, with `\"` and `\\` escapes) is unquoted, in
 *   `Idempotency-Key` and in every element of `Idempotency-Keys`, so `"abc"` and `abc` are one key. A value that
 *   opens with `"` but is not a whole sf-string is refused (KEY_INVALID). Statuses name the unquoted key.
 *
 * Response (set by `idempotencyResponseMeta`, non-streamed responses only). Whatever the batch size, these headers
 * together stay under `RESPONSE_HEADERS_BUDGET` (1,536 bytes), so they fit a proxy's one-page head buffer (nginx's
 * `proxy_buffer_size` is 4 or 8 KB for the whole head) and undici's 16 KB limit with room for the app's own:
 * - `Idempotency-Statuses: er-p` on a batch (httpBatchLink): one character per call, by batch position, saying
 *   what the server did with that call's key (`STATUS_LETTERS`: `e` executed, `r` replayed, `l` released,
 *   `p` in_progress, `m` mismatch, `n` not_stored, `u` store_unavailable, `x` lease_lost), `-` where the
 *   call had no key or no idempotent procedure saw it. Two calls that sent one key are told apart. A batch of more than
 *   `MAX_REPORTED_CALLS` (1,024) calls gets `Idempotency-Statuses: omitted` instead: the calls ran as usual, but
 *   the client cannot tell replays (`replayed: null`).
 * - `Idempotency-Status: {"k0":"replayed"}` on a request with one call (httpLink): what the server did with each
 *   key it saw (one, normally); `{}` when the request carried a key that no idempotent procedure saw; `omitted`
 *   past `MAX_STATUS_LENGTH`. Batches get no per-key map: it cost ~61 bytes per call.
 *   With httpBatchStreamLink the head is written before any procedure runs: the value is then `deferred`.
 * - `Idempotent-Replayed: true` when the request had a single call and it was a replay (as Stripe does).
 * - `Retry-After: <seconds>` when a call got CONFLICT because its key is in progress.
 * - `Access-Control-Expose-Headers` lists the headers above on requests with an `Origin`, so browsers on
 *   another origin can read them, merged with what the app already exposes (its `responseMeta` headers, and the
 *   Node response's own header, e.g. set by the `cors` package, when ctx carries `res`).
 *
 * Request budget: `idempotencyHeaders` refuses (before sending anything) a batch whose `Idempotency-Keys` value
 * would pass `MAX_KEYS_HEADER_LENGTH` (4,096 bytes: 100 UUID keys take 3,901), because servers and proxies refuse
 * larger heads (Node's default `maxHeaderSize` is 16 KB for the whole head, nginx's `large_client_header_buffers`
 * 8 KB per line). Bound batches with httpBatchLink's `maxItems` (100 for UUID keys).
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

/** Value of `Idempotency-Statuses` (or `Idempotency-Status`) when reporting would pass the response budget. */
export const STATUSES_OMITTED = 'omitted';

/** Most calls a batch's `Idempotency-Statuses` reports on (one byte each); larger batches get `omitted`. */
export const MAX_REPORTED_CALLS = 1024;

/** Longest `Idempotency-Status` value (one 255-character key and its status take 279); longer gets `omitted`. */
export const MAX_STATUS_LENGTH = 512;

/**
 * Bytes that our response header lines (`name: value\r\n`, the app's own exposed names aside) never pass, whatever
 * the batch size: the longest `Idempotency-Statuses`, `Retry-After` and our part of `Access-Control-Expose-Headers`.
 */
export const RESPONSE_HEADERS_BUDGET = 1536;

/** Longest `Idempotency-Keys` value `idempotencyHeaders` sends: 100 UUID v4 keys take 3,901 bytes. */
export const MAX_KEYS_HEADER_LENGTH = 4096;

/** `Idempotency-Statuses` letter per status; `-` (`NO_STATUS_LETTER`) where nothing was reported. */
export const STATUS_LETTERS = {
  executed: 'e',
  replayed: 'r',
  released: 'l',
  in_progress: 'p',
  mismatch: 'm',
  not_stored: 'n',
  store_unavailable: 'u',
  lease_lost: 'x',
} as const satisfies Record<KeyStatus, string>;

/** `Idempotency-Statuses` letter of a call with no key, or whose key no idempotent procedure saw. */
export const NO_STATUS_LETTER = '-';

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
  | 'store_unavailable'
  /**
   * The procedure ran, but another request took the key over before its result was stored: the key replays that
   * request's outcome, not this one. Retry with the same key to get it.
   */
  | 'lease_lost';

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
    | 'quota_exceeded'
    | 'record_corrupt'
    | 'lease_lost'
    | 'invalid_option'
    /** The input is past the default fingerprint's budget (depth, values or string length) or holds a cycle. */
    | 'input_too_large'
    | 'step_duplicate'
    | 'step_indeterminate';
  /** Retry after this many milliseconds (in-progress conflicts, store outages and quotas only). */
  retryAfterMs?: number;
}
