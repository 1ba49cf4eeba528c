import { randomBytes } from 'node:crypto';
import type { TRPCMiddlewareFunction } from '@trpc/server';
import { TRPCError } from '@trpc/server';
import { intervalTime } from '../clock';
import { DEFAULTS } from '../constants';
import { IdempotencyError, isIdempotencyError } from '../errors';
import { toTRPCError } from './trpcErrors';
import type { ClaimOutcome, IdempotencyStore } from '../store';
import type { KeyStatus } from '../wire';
import type { IdempotencyEvent } from './events';
import { fingerprintInput, sha256Base64url } from './fingerprint';
import type { Claim } from './finish';
import { completeClaim, releaseClaim } from './finish';
import { findRequestHeaders } from './headers';
import type { Lease } from './lease';
import { holdLease } from './lease';
import type { ResolvedGlobalOptions } from './options';
import { reportKey } from './reporting';
import { keyMissing, resolveKey } from './resolveKey';
import { decodeStoredResult, encodeError, encodeValue, notStoredError } from './storedResult';

/** What a guarded procedure sees as `ctx.idempotency`; `null` when the call came without a key. */
export interface IdempotencyExecution {
  /** The client's key. */
  key: string;
  /** The record id: a hash of (scope, path, key). */
  keyHash: string;
  /**
   * Grows with every new claim of this key (takeovers included). Pass it to downstream writes and have them
   * reject a token lower than one they have seen: that stops a paused owner that lost its lease.
   */
  fence: number;
  /** `true` when this claim took over a lease that had expired: an earlier attempt may have run partly. */
  takeover: boolean;
  /** Aborts when the lease is lost (another owner may now run): stop writing. */
  readonly signal: AbortSignal;
}

export interface IdempotencyContext {
  idempotency: IdempotencyExecution | null;
}

const LEASE = Symbol('lease');

/**
 * `signal` lives on a shared prototype and makes the AbortSignal on first read: most procedures never read it,
 * and a getter written in an object literal would make every such literal slow to create.
 */
const executionPrototype = Object.create(null, {
  signal: {
    get(this: { [LEASE]: Lease }): AbortSignal {
      return this[LEASE].signal();
    },
    enumerable: true,
  },
}) as object;

const createExecution = (fields: Omit<IdempotencyExecution, 'signal'>, lease: Lease): IdempotencyExecution =>
  Object.assign(Object.create(executionPrototype) as object, fields, { [LEASE]: lease }) as unknown as IdempotencyExecution;

/** The middleware `idempotent()` returns; `.use()` it on mutation procedures. */
export type IdempotentMiddleware = TRPCMiddlewareFunction<any, any, any, IdempotencyContext, any>;

// tRPC checks the marker's type only; the runtime ignores it (see trpc-v11-notes section 1).
const MIDDLEWARE_MARKER = 'middlewareMarker' as any;

/**
 * Owner tokens: unique per claim across processes (a random 128-bit prefix per process, then a counter). Only
 * uniqueness matters: a token is never shown to clients. Cheaper than a UUID per call.
 */
const TOKEN_PREFIX = randomBytes(16).toString('base64url');
let tokenCounter = 0;
const newToken = (): string => `${TOKEN_PREFIX}.${(tokenCounter++).toString(36)}`;

const recordId = (scope: string, path: string, key: string): string => sha256Base64url(JSON.stringify([scope, path, key]));

const storeUnavailable = (error: unknown): IdempotencyError =>
  isIdempotencyError(error) && (error.code === 'RECORD_CORRUPT' || error.code === 'STORE_UNAVAILABLE')
    ? error
    : new IdempotencyError('STORE_UNAVAILABLE', 'the idempotency store cannot be reached; the procedure was not run', {
        cause: error,
        retryAfterMs: 1000,
      });

/** Builds the middleware for one procedure's resolved options. */
export const createMiddleware = (options: ResolvedGlobalOptions, store: IdempotencyStore): IdempotentMiddleware => {
  const { clock, serializer } = options;
  // Durations, deadlines and the lease are intervals: measured on a time that never jumps (see intervalTime).
  const now = intervalTime(clock);
  const storesError = (error: TRPCError): boolean => {
    try {
      return options.shouldStoreError(error);
    } catch {
      return false;
    }
  };
  const listening = options.onEvent !== undefined;
  const emit = (event: IdempotencyEvent): void => {
    try {
      options.onEvent?.(event);
    } catch {
      // An observer must never change what the caller gets.
    }
  };

  return async (opts) => {
    if (opts.type !== 'mutation') return opts.next();
    const startedAt = now();
    const request = findRequestHeaders(opts.ctx);
    const carrier = request?.carrier;
    const { path } = opts;

    let key: string | undefined;
    try {
      key = await resolveKey(opts, options, request);
    } catch (error) {
      if (isIdempotencyError(error)) throw toTRPCError(error);
      throw error;
    }
    if (key === undefined) {
      if (options.required) throw toTRPCError(keyMissing(path, options));
      return opts.next({ ctx: { idempotency: null } });
    }

    const rawInput = await opts.getRawInput();
    const scope = options.scope?.({ ctx: opts.ctx, path });
    if (scope !== undefined && scope !== null && typeof scope !== 'string' && typeof scope !== 'number') {
      // '[object Object]' would put every caller in one scope: refuse rather than share.
      throw toTRPCError(new IdempotencyError('INVALID_OPTION', `scope() must return a string or number, got ${typeof scope}`));
    }
    const keyHash = recordId(scope === undefined || scope === null ? '' : String(scope), path, key);
    const base = { path, keyHash };
    let fingerprint: string;
    try {
      fingerprint =
        options.fingerprint === false ? '' : options.fingerprint === true ? fingerprintInput(rawInput) : options.fingerprint(rawInput);
    } catch (error) {
      // An input the fingerprint cannot compare: refuse (the procedure does not run) rather than replay blindly.
      if (isIdempotencyError(error)) throw toTRPCError(error);
      throw error;
    }
    const token = newToken();
    const report = (status: KeyStatus, retryAfterMs?: number): void => reportKey(carrier, { key, batchIndex: opts.batchIndex, status, retryAfterMs });
    const deadline = startedAt + options.waitTimeoutMs;

    for (;;) {
      const claimStartedAt = now();
      let outcome: ClaimOutcome;
      try {
        outcome = await store.claim({ id: keyHash, token, fingerprint, lockTtlMs: options.lockTtlMs });
      } catch (error) {
        const failure = storeUnavailable(error);
        const failOpen = failure.code === 'STORE_UNAVAILABLE' && options.onStoreError === 'fail-open';
        emit({ type: 'store_error', operation: 'claim', error, failedOpen: failOpen, ...base });
        report('store_unavailable');
        if (failOpen) return opts.next({ ctx: { idempotency: null } });
        throw toTRPCError(failure);
      }

      switch (outcome.status) {
        case 'acquired':
          if (listening) emit({ type: 'claimed', fence: outcome.fence, takeover: outcome.takeover, durationMs: now() - claimStartedAt, ...base });
          return execute(outcome.fence, outcome.takeover, claimStartedAt);
        case 'completed':
          return replay(outcome.result);
        case 'mismatch':
          emit({ type: 'mismatch', ...base });
          report('mismatch');
          throw toTRPCError(
            new IdempotencyError('MISMATCH', `this idempotency key was already used for mutation "${path}" with a different input; use a new key for a new request`),
          );
        case 'in_progress': {
          const at = now();
          if (options.onInProgress === 'wait' && at < deadline && !opts.signal?.aborted) {
            try {
              await store.wait({ id: keyHash, timeoutMs: deadline - at, signal: opts.signal });
            } catch (error) {
              emit({ type: 'store_error', operation: 'wait', error, failedOpen: false, ...base });
              report('store_unavailable');
              throw toTRPCError(storeUnavailable(error));
            }
            continue;
          }
          const retryAfterMs = Math.min(outcome.retryAfterMs, DEFAULTS.maxRetryAfterMs);
          emit({ type: 'conflict', retryAfterMs, waitedMs: at - startedAt, ...base });
          report('in_progress', retryAfterMs);
          throw toTRPCError(
            new IdempotencyError('IN_PROGRESS', `a request with this idempotency key is still in progress for mutation "${path}"; retry after ${retryAfterMs} ms`, {
              retryAfterMs,
            }),
          );
        }
        default:
          // A store outside the contract: claiming again would spin forever.
          report('store_unavailable');
          throw toTRPCError(
            new IdempotencyError('RECORD_CORRUPT', `the store returned an unknown claim outcome ${JSON.stringify((outcome as { status?: unknown }).status)}`),
          );
      }
    }

    function replay(text: string) {
      let stored;
      try {
        stored = decodeStoredResult(serializer, text);
      } catch (error) {
        report('store_unavailable');
        throw toTRPCError(error as IdempotencyError);
      }
      if (listening) emit({ type: 'replayed', outcome: stored.kind, durationMs: now() - startedAt, ...base });
      if (stored.kind === 'ok') {
        report('replayed');
        return Promise.resolve({ ok: true as const, data: stored.data, marker: MIDDLEWARE_MARKER });
      }
      if (stored.kind === 'error') {
        report('replayed');
        throw new TRPCError({ code: stored.code, message: stored.message });
      }
      report('not_stored');
      throw toTRPCError(notStoredError(stored, path));
    }

    async function execute(fence: number, takeover: boolean, claimedAt: number) {
      const claim: Claim = { store, clock, emit: listening ? emit : undefined, id: keyHash, token, path, ttlMs: options.ttlMs, lockTtlMs: options.lockTtlMs };
      const lease = holdLease({
        store,
        clock,
        id: keyHash,
        token,
        lockTtlMs: options.lockTtlMs,
        claimedAt,
        onLost: () => emit({ type: 'lease_lost', phase: 'renew', ...base }),
        onRenewError: (error) => emit({ type: 'store_error', operation: 'renew', error, failedOpen: false, ...base }),
      });
      const runStartedAt = now();
      let result: Awaited<ReturnType<typeof opts.next>>;
      try {
        result = await opts.next({ ctx: { idempotency: createExecution({ key: key as string, keyHash, fence, takeover }, lease) } });
      } catch (error) {
        // tRPC turns procedure errors into results; only a broken inner middleware gets here. Nothing was stored.
        await releaseClaim(claim, lease);
        throw error;
      }
      const durationMs = now() - runStartedAt;
      if (!result) {
        // An inner middleware forgot `return next()`: nothing to store. Free the key and let tRPC say what went wrong.
        report('released');
        await releaseClaim(claim, lease);
        emit({ type: 'released', code: 'INTERNAL_SERVER_ERROR', durationMs, ...base });
        return result;
      }

      let text: string;
      if (result.ok) {
        const encoded = encodeValue(serializer, result.data as unknown, options.maxResultBytes);
        if (encoded.notStored) emit({ type: 'not_stored', ...encoded.notStored, limitBytes: options.maxResultBytes, ...base });
        text = encoded.text;
      } else if (storesError(result.error)) {
        text = encodeError(serializer, result.error.code, result.error.message);
      } else {
        report('released');
        await releaseClaim(claim, lease);
        emit({ type: 'released', code: result.error.code, durationMs, ...base });
        return result;
      }
      report('executed');
      await completeClaim(claim, text, { lease, done: { outcome: result.ok ? 'ok' : 'error', durationMs } });
      return result;
    }
  };
};
