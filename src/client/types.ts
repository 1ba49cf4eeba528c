import type { KeyStatus } from '../wire';

/**
 * What the client learned about one call. Pass an empty object as `context.idempotency` and `idempotencyLink`
 * fills it in: `key` before the request is sent, `replayed` and `status` when the call settles.
 *
 * @example
 * const info: IdempotencyCallInfo = {};
 * await client.order.create.mutate(input, { context: { idempotency: info } });
 * info.replayed; // true when the server replayed a stored result (or a stored error)
 */
export interface IdempotencyCallInfo {
  /** The key sent with the call (generated, or the caller's `context.idempotencyKey`). */
  key?: string;
  /**
   * `true`: the server replayed a stored outcome; `false`: it did not (it ran the procedure, or refused the key);
   * `null`: unknown (no response; `deferred` because the response was streamed; or `omitted` because the batch
   * was larger than the server reports on).
   */
  replayed?: boolean | null;
  /** What the server reported for this call (`Idempotency-Statuses` or `Idempotency-Status`), or `null` when it reported nothing usable. */
  status?: KeyStatus | null;
}

/** Codes of the misconfiguration warnings. Each is reported once per link (or retry helper). */
export type IdempotencyWarningCode =
  /** A keyed mutation's request went out without `headers: idempotencyHeaders` on the HTTP link. */
  | 'headers_missing'
  /** The response had no status header (`Idempotency-Status`, or `Idempotency-Statuses` on a batch): the server lacks `idempotencyResponseMeta()` (or CORS hides it). */
  | 'status_missing'
  /** The server reported that no idempotent procedure saw the call's key: the procedure lacks the `idempotent()` middleware. */
  | 'key_not_seen'
  /** The server left out per-call statuses (`omitted`): the batch had more calls than it reports on. */
  | 'statuses_omitted'
  /** `idempotencyHeaders` refused a batch whose `Idempotency-Keys` header would pass its budget; nothing was sent. */
  | 'batch_too_large'
  /** The link saw the same operation twice: it sits after `retryLink` (or another retrying link). */
  | 'behind_retry'
  /** `idempotentRetry` refused to retry a failed mutation because it carries no key. */
  | 'unkeyed_mutation';

/** A misconfiguration the client noticed, with the fix in `message`. */
export interface IdempotencyWarning {
  code: IdempotencyWarningCode;
  message: string;
  /** The procedure path of the call that revealed it. */
  path: string;
}

declare module '@trpc/client' {
  interface OperationContext {
    /** Use this idempotency key for the call instead of a generated one (`idempotencyLink`). */
    idempotencyKey?: string;
    /** An object `idempotencyLink` fills with the call's key and whether the server replayed it. */
    idempotency?: IdempotencyCallInfo;
  }
}
