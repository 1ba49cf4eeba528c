import type { Operation, TRPCClientError } from '@trpc/client';
import type { IdempotencyErrorData } from '../wire';
import { readKeyStatus, readRetryAfterMs, responseHeaders } from './responseStatus';
import type { IdempotencyWarning } from './types';
import { createWarnOnce } from './warnings';
import { DEFAULTS } from '../constants';
import { batchPositionOf } from './headers';

/** What `retryLink` passes to `retry`. */
export interface IdempotentRetryFnOptions {
  op: Operation;
  error: TRPCClientError<any>;
  /** Attempts made so far, the first one included. */
  attempts: number;
}

export interface IdempotentRetryOptions {
  /**
   * Attempts in total, the first one included (so `4` means up to three retries). Applies to queries too.
   * @default 4
   */
  maxAttempts?: number;
  /**
   * Backoff before retry n is a random delay up to `baseDelayMs * 2 ** (n - 1)` ("full jitter"), capped at
   * `maxDelayMs`.
   * @default 200
   */
  baseDelayMs?: number;
  /**
   * Longest wait before a retry. The server's hint (`data.idempotency.retryAfterMs`, else `Retry-After`) is a lower
   * bound on the wait, and is capped here too.
   * @default 10_000
   */
  maxDelayMs?: number;
  /**
   * Decides whether a failed query is retried (queries carry no key, so the mutation rules do not apply).
   * Subscriptions are never retried.
   * @default never retry queries
   */
  retryQueries?: (opts: IdempotentRetryFnOptions) => boolean;
  /**
   * Receives the `unkeyed_mutation` warning (a failed mutation had no key: idempotencyLink is missing or placed
   * after retryLink), at most once. What it throws is ignored: the call fails with its own error.
   * @default `console.warn`
   */
  onWarning?: (warning: IdempotencyWarning) => void;
  /**
   * Source of randomness for the jitter, in [0, 1).
   * @default Math.random
   */
  random?: () => number;
}

/** The options `retryLink` takes. */
export interface IdempotentRetryLinkOptions {
  retry: (opts: IdempotentRetryFnOptions) => boolean;
  retryDelayMs: (attempts: number) => number;
}

/**
 * Options for tRPC's `retryLink` that retry keyed mutations when a retry is safe and useful: no response (network
 * error), 5xx (SERVICE_UNAVAILABLE included) for a key the server reports on (`Idempotency-Status` or
 * `data.idempotency`), or CONFLICT because the key is still in progress or its lease was lost (the procedure ran,
 * another request owns the key: a retry gets the key's final answer). Never on other client
 * errors (4xx: a payload mismatch, a non-in-progress CONFLICT...), never on a replayed outcome, never for a
 * mutation without a key, and never for a call the server answered without processing its key. Waits with capped
 * exponential backoff and full jitter, at least as long as the server asked.
 *
 * @example
 * links: [idempotencyLink(), retryLink(idempotentRetry({ maxAttempts: 4 })), httpBatchLink({ url, headers: idempotencyHeaders })]
 */
export const idempotentRetry = (options: IdempotentRetryOptions = {}): IdempotentRetryLinkOptions => {
  // config time: options resolved once
  const maxAttempts = resolveNumber(options, 'maxAttempts');
  const baseDelayMs = resolveNumber(options, 'baseDelayMs');
  const maxDelayMs = resolveNumber(options, 'maxDelayMs');
  const random = options.random ?? Math.random;
  const warn = createWarnOnce(options.onWarning);

  const delayFor = (attempts: number, hintMs: number | undefined): number => {
    const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.max(0, attempts - 1));
    return Math.round(Math.min(maxDelayMs, Math.max(hintMs ?? 0, random() * ceiling)));
  };

  /*
   * retryLink calls `retry({ op, error, attempts })` and, only when it returns true, `retryDelayMs(attempts)`
   * synchronously right after, in the same error callback (retryLink.ts, `attempt()`). No other operation's
   * retry can run in between, so `retry` leaves the delay it computed (with the server's hint) here and
   * `retryDelayMs` takes it.
   */
  let pending: { attempts: number; delayMs: number } | undefined;

  const retry = (opts: IdempotentRetryFnOptions): boolean => {
    pending = undefined;
    const decision = decide(opts);
    if (decision.retry) pending = { attempts: opts.attempts, delayMs: delayFor(opts.attempts, decision.hintMs) };
    return decision.retry;
  };

  const decide = ({ op, error, attempts }: IdempotentRetryFnOptions): Decision => {
    if (attempts >= maxAttempts || isAbort(op, error) || op.type === 'subscription') return NO;
    if (op.type === 'query') return { retry: options.retryQueries?.({ op, error, attempts }) ?? false, hintMs: hintOf(error) };
    const key = op.context.idempotencyKey;
    if (typeof key !== 'string') {
      try {
        warn({ code: 'unkeyed_mutation', path: op.path, message: UNKEYED });
      } catch {
        // The call fails with its own error anyway; a throwing onWarning must not break retryLink.
      }
      return NO;
    }
    return decideKeyed(error, op);
  };

  return {
    retry,
    retryDelayMs: (attempts) => {
      const handed = pending;
      pending = undefined;
      return handed?.attempts === attempts ? handed.delayMs : delayFor(attempts, undefined);
    },
  };
};

// ---- internal helpers ----

type Decision = { retry: boolean; hintMs?: number | undefined };
const NO: Decision = { retry: false };

const UNKEYED =
  'trpc-idempotency: idempotentRetry() did not retry a failed mutation because it has no idempotency key. ' +
  'Add idempotencyLink() to `links`, before retryLink().';

const decideKeyed = (error: TRPCClientError<any>, op: Operation): Decision => {
  const key = op.context.idempotencyKey as string;
  const data = error.data as { code?: unknown; httpStatus?: unknown; idempotency?: IdempotencyErrorData } | undefined;
  const headers = responseHeaders(error.meta);
  // No response at all (a network error): the server never got the call, or stored its outcome. A response whose
  // body is not JSON (a proxy's HTML 502 for a crashed upstream) leaves no meta either, but it is an answer: like
  // any 5xx without a sign of the idempotency layer, it may come after an unprotected procedure ran.
  if (headers === undefined && !data) return { retry: !isUnreadableResponse(error) };
  const found = readKeyStatus(error.meta, key, batchPositionOf(op.context));
  const keyStatus = found.kind === 'reported' ? found.status : undefined;
  const reason = data?.idempotency?.reason;
  // A stored outcome is final and a mismatch never heals; a key the server never processed means it may not be
  // protected (the procedure lacks the middleware), so a retry could run it twice.
  if (keyStatus === 'replayed' || keyStatus === 'mismatch' || reason === 'mismatch') return NO;
  if (found.kind === 'not_seen' && !reason) return NO;
  const hintMs = hintOf(error);
  // A lost lease: the procedure ran but another request owns the key now; a retry gets the key's final answer.
  if (reason === 'in_progress' || keyStatus === 'in_progress' || reason === 'lease_lost' || keyStatus === 'lease_lost') {
    return { retry: true, hintMs };
  }
  const code = data?.code;
  if (code === 'CONFLICT') {
    const unexplained = reason === undefined && keyStatus === undefined;
    return { retry: unexplained && readRetryAfterMs(error.meta) !== undefined, hintMs };
  }
  const httpStatus =
    typeof data?.httpStatus === 'number' ? data.httpStatus : (error.meta?.response as { status?: number } | undefined)?.status;
  const serverError = code === 'SERVICE_UNAVAILABLE' || (typeof httpStatus === 'number' && httpStatus >= 500);
  // Retry a server error only when the server showed that the idempotency layer handled this key (a status for
  // it, or idempotency error data): a 5xx from a procedure without the middleware may come after its side effects.
  return { retry: serverError && (keyStatus !== undefined || reason !== undefined), hintMs };
};

const hintOf = (error: TRPCClientError<any>): number | undefined => {
  const fromData = (error.data as { idempotency?: IdempotencyErrorData } | undefined)?.idempotency?.retryAfterMs;
  return typeof fromData === 'number' && fromData >= 0 ? fromData : readRetryAfterMs(error.meta);
};

/** tRPC's HTTP links fail with the `SyntaxError` of `response.json()` when a response's body is not JSON. */
const isUnreadableResponse = (error: TRPCClientError<any>): boolean =>
  (error.cause as { name?: unknown } | undefined)?.name === 'SyntaxError';

const isAbort = (op: Operation, error: TRPCClientError<any>): boolean =>
  op.signal?.aborted === true || (error.cause as { name?: unknown } | undefined)?.name === 'AbortError';

const RETRY_DEFAULTS = DEFAULTS.retry;

const resolveNumber = (options: IdempotentRetryOptions, name: keyof typeof RETRY_DEFAULTS): number => {
  const value = options[name] ?? RETRY_DEFAULTS[name];
  const integer = name === 'maxAttempts';
  const valid =
    typeof value === 'number' && Number.isFinite(value) && (integer ? Number.isInteger(value) && value >= 1 : value >= 0);
  if (!valid) {
    throw new TypeError(
      `trpc-idempotency: idempotentRetry option \`${name}\` must be ${integer ? 'an integer >= 1' : 'a finite number >= 0'}, got ${String(value)}`,
    );
  }
  return value;
};
