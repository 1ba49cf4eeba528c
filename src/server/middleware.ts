import { createHash, randomUUID } from 'node:crypto';
import type { TRPCMiddlewareFunction } from '@trpc/server';
import { TRPCError } from '@trpc/server';
import { DEFAULTS } from '../constants';
import { IdempotencyError, isIdempotencyError } from '../errors';
import { toTRPCError } from './trpcErrors';
import type { ClaimOutcome, IdempotencyStore, LeaseOutcome } from '../store';
import type { KeyStatus } from '../wire';
import type { IdempotencyEvent } from './events';
import { fingerprintInput } from './fingerprint';
import { findRequestHeaders } from './headers';
import type { Lease } from './lease';
import { holdLease } from './lease';
import { keyFromHeaders, validateKey } from './key';
import type { ResolvedGlobalOptions } from './options';
import { reportKey } from './reporting';
import { decodeStoredResult, encodeError, encodeNotStored, encodeOk } from './storedResult';

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
  signal: AbortSignal;
}

export interface IdempotencyContext {
  idempotency: IdempotencyExecution | null;
}

/** The middleware `idempotent()` returns; `.use()` it on mutation procedures. */
export type IdempotentMiddleware = TRPCMiddlewareFunction<any, any, any, IdempotencyContext, any>;

// tRPC checks the marker's type only; the runtime ignores it (see trpc-v11-notes section 1).
const MIDDLEWARE_MARKER = 'middlewareMarker' as any;

const recordId = (scope: string, path: string, key: string): string =>
  createHash('sha256').update(JSON.stringify([scope, path, key])).digest('base64url');

const isStream = (value: unknown): boolean =>
  typeof value === 'object' &&
  value !== null &&
  (Symbol.asyncIterator in value || typeof (value as { subscribe?: unknown }).subscribe === 'function');

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
  const emit = (event: IdempotencyEvent): void => {
    try {
      options.onEvent?.(event);
    } catch {
      // An observer must never change what the caller gets.
    }
  };
  const delay = (ms: number): Promise<void> => new Promise((resolve) => clock.setTimeout(resolve, ms));

  /** complete/release with brief retries: their replies can be lost, and both are idempotent per token. */
  const settle = async (
    operation: 'complete' | 'release',
    run: () => Promise<LeaseOutcome>,
    base: { path: string; keyHash: string },
  ): Promise<'ok' | 'lost' | 'failed' | 'corrupt'> => {
    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = await run();
        if (outcome.status === 'lost') emit({ type: 'lease_lost', phase: operation, ...base });
        return outcome.status;
      } catch (error) {
        emit({ type: 'store_error', operation, error, failedOpen: false, ...base });
        if (isIdempotencyError(error) && error.code === 'RECORD_CORRUPT') return 'corrupt';
        if (attempt >= DEFAULTS.completeAttempts) return 'failed';
        await delay(DEFAULTS.completeRetryDelayMs * 2 ** (attempt - 1));
      }
    }
  };

  return async (opts) => {
    if (opts.type !== 'mutation') return opts.next();
    const startedAt = clock.now();
    const request = findRequestHeaders(opts.ctx);
    const carrier = request?.carrier;
    const { path } = opts;

    let key: string | undefined;
    try {
      key = await resolveKey();
    } catch (error) {
      if (isIdempotencyError(error)) throw toTRPCError(error);
      throw error;
    }
    if (key === undefined) {
      if (options.required) {
        const where = options.getKey
          ? 'from getKey'
          : options.inputKey
            ? `in the ${options.headerName} header or input field "${options.inputKey}"`
            : `in the ${options.headerName} header`;
        throw toTRPCError(new IdempotencyError('KEY_MISSING', `mutation "${path}" requires an idempotency key ${where}`));
      }
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
    const fingerprint =
      options.fingerprint === false ? '' : options.fingerprint === true ? fingerprintInput(rawInput) : options.fingerprint(rawInput);
    const token = randomUUID();
    const report = (status: KeyStatus, retryAfterMs?: number): void => reportKey(carrier, { key, batchIndex: opts.batchIndex, status, retryAfterMs });
    const deadline = startedAt + options.waitTimeoutMs;

    for (;;) {
      const claimStartedAt = clock.now();
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
          emit({ type: 'claimed', fence: outcome.fence, takeover: outcome.takeover, durationMs: clock.now() - claimStartedAt, ...base });
          return execute(outcome.fence, outcome.takeover);
        case 'completed':
          return replay(outcome.result);
        case 'mismatch':
          emit({ type: 'mismatch', ...base });
          report('mismatch');
          throw toTRPCError(
            new IdempotencyError('MISMATCH', `this idempotency key was already used for mutation "${path}" with a different input; use a new key for a new request`),
          );
        case 'in_progress': {
          const now = clock.now();
          if (options.onInProgress === 'wait' && now < deadline && !opts.signal?.aborted) {
            try {
              await store.wait({ id: keyHash, timeoutMs: deadline - now, signal: opts.signal });
            } catch (error) {
              emit({ type: 'store_error', operation: 'wait', error, failedOpen: false, ...base });
              report('store_unavailable');
              throw toTRPCError(storeUnavailable(error));
            }
            continue;
          }
          const retryAfterMs = Math.min(outcome.retryAfterMs, DEFAULTS.maxRetryAfterMs);
          emit({ type: 'conflict', retryAfterMs, waitedMs: now - startedAt, ...base });
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

    async function resolveKey(): Promise<string | undefined> {
      if (options.getKey) {
        const value = await options.getKey({ ctx: opts.ctx, rawInput: await opts.getRawInput(), path, batchIndex: opts.batchIndex });
        return value === undefined || value === null ? undefined : validateKey(value, 'the key returned by getKey');
      }
      if (options.inputKey) {
        const raw = await opts.getRawInput();
        if (typeof raw === 'object' && raw !== null && options.inputKey in raw) {
          const value = (raw as Record<string, unknown>)[options.inputKey];
          if (value !== undefined && value !== null) return validateKey(value, `input field "${options.inputKey}"`);
        }
      }
      return request ? keyFromHeaders(request, options.headerName, opts.batchIndex) : undefined;
    }

    function replay(text: string) {
      let stored;
      try {
        stored = decodeStoredResult(serializer, text);
      } catch (error) {
        report('store_unavailable');
        throw toTRPCError(error as IdempotencyError);
      }
      emit({ type: 'replayed', outcome: stored.kind, durationMs: clock.now() - startedAt, ...base });
      if (stored.kind === 'ok') {
        report('replayed');
        return Promise.resolve({ ok: true as const, data: stored.data, marker: MIDDLEWARE_MARKER });
      }
      if (stored.kind === 'error') {
        report('replayed');
        throw new TRPCError({ code: stored.code, message: stored.message });
      }
      report('not_stored');
      const size = stored.bytes === undefined ? '' : ` (${stored.bytes} bytes)`;
      throw toTRPCError(
        new IdempotencyError(
          'NOT_STORED',
          stored.reason === 'too_large'
            ? `mutation "${path}" already ran with this idempotency key, but its result${size} was larger than maxResultBytes and was not kept; it will not run again`
            : `mutation "${path}" already ran with this idempotency key, but its result could not be serialized and was not kept; it will not run again`,
        ),
      );
    }

    async function execute(fence: number, takeover: boolean) {
      const lease = holdLease({
        store,
        clock,
        id: keyHash,
        token,
        lockTtlMs: options.lockTtlMs,
        onLost: () => emit({ type: 'lease_lost', phase: 'renew', ...base }),
        onRenewError: (error) => emit({ type: 'store_error', operation: 'renew', error, failedOpen: false, ...base }),
      });
      const runStartedAt = clock.now();
      let result: Awaited<ReturnType<typeof opts.next>>;
      try {
        result = await opts.next({ ctx: { idempotency: { key: key as string, keyHash, fence, takeover, signal: lease.signal } } });
      } catch (error) {
        // tRPC turns procedure errors into results; only a broken inner middleware gets here. Nothing was stored.
        lease.stop();
        await settle('release', () => storeRelease(), base);
        throw error;
      }
      const durationMs = clock.now() - runStartedAt;
      if (!result) {
        lease.stop();
        // An inner middleware forgot `return next()`: nothing to store. Free the key and let tRPC say what went wrong.
        report('released');
        await settle('release', () => storeRelease(), base);
        emit({ type: 'released', code: 'INTERNAL_SERVER_ERROR', durationMs, ...base });
        return result;
      }

      let text: string;
      let outcome: 'ok' | 'error';
      if (result.ok) {
        outcome = 'ok';
        text = encodeResult(result.data as unknown);
      } else {
        let store = false;
        try {
          store = options.shouldStoreError(result.error);
        } catch {
          store = false;
        }
        if (!store) {
          lease.stop();
          report('released');
          await settle('release', () => storeRelease(), base);
          emit({ type: 'released', code: result.error.code, durationMs, ...base });
          return result;
        }
        outcome = 'error';
        text = encodeError(serializer, result.error.code, result.error.message);
      }
      report('executed');
      const done = { outcome, durationMs };
      const settled = await settle('complete', () => storeComplete(text), base);
      if (settled === 'ok') emit({ type: 'completed', outcome, bytes: Buffer.byteLength(text), durationMs, ...base });
      if (settled === 'failed' && !lease.signal.aborted) void completeLater(text, lease, done);
      else lease.stop();
      return result;
    }

    /**
     * The procedure ran but its result could not be stored yet. Giving the key up now would let a retry run the
     * procedure again, so keep the lease alive and keep trying to store the result, for as long as the lease can
     * be held (until `ttlMs`). A store outage shorter than the lease therefore never causes a second run.
     */
    async function completeLater(text: string, lease: Lease, done: { outcome: 'ok' | 'error'; durationMs: number }) {
      const until = clock.now() + options.ttlMs;
      const maxDelayMs = Math.max(1, Math.floor(options.lockTtlMs / 3));
      let delayMs = DEFAULTS.completeRetryDelayMs * 2 ** DEFAULTS.completeAttempts;
      try {
        while (!lease.signal.aborted && clock.now() < until) {
          await delay(Math.min(delayMs, maxDelayMs));
          delayMs *= 2;
          if (lease.signal.aborted) return;
          try {
            const outcome = await storeComplete(text);
            if (outcome.status === 'ok') emit({ type: 'completed', bytes: Buffer.byteLength(text), ...done, ...base });
            else emit({ type: 'lease_lost', phase: 'complete', ...base });
            return;
          } catch (error) {
            emit({ type: 'store_error', operation: 'complete', error, failedOpen: false, ...base });
            if (isIdempotencyError(error) && error.code === 'RECORD_CORRUPT') return;
          }
        }
      } finally {
        lease.stop();
      }
    }

    function storeComplete(text: string): Promise<LeaseOutcome> {
      return store.complete({ id: keyHash, token, result: text, ttlMs: options.ttlMs });
    }
    function storeRelease(): Promise<LeaseOutcome> {
      return store.release({ id: keyHash, token });
    }

    function encodeResult(data: unknown): string {
      let body: string;
      try {
        if (isStream(data)) throw new Error('streamed output');
        body = serializer.serialize(data);
      } catch {
        emit({ type: 'not_stored', reason: 'unserializable', limitBytes: options.maxResultBytes, ...base });
        return encodeNotStored('unserializable');
      }
      const bytes = Buffer.byteLength(body);
      if (bytes > options.maxResultBytes) {
        emit({ type: 'not_stored', reason: 'too_large', bytes, limitBytes: options.maxResultBytes, ...base });
        return encodeNotStored('too_large', bytes);
      }
      return encodeOk(body);
    }
  };
};
