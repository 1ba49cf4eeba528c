import { randomBytes } from 'node:crypto';
import type { TRPCMiddlewareFunction } from '@trpc/server';
import { TRPCError } from '@trpc/server';
import { intervalTime } from '../clock';
import { DEFAULTS } from '../constants';
import { IdempotencyError, isIdempotencyError } from '../errors';
import { toTRPCError } from './trpcErrors';
import type { ClaimOutcome, IdempotencyStore } from '../store';
import type { Claim } from './claim';
import type { IdempotencyEvent } from './events';
import { fingerprintInput, sha256Base64url } from './fingerprint';
import { completeClaim, releaseClaim } from './finish';
import { findRequestHeaders } from './headers';
import { keyFromHeaders, keyHeaderNames } from './key';
import type { Lease } from './lease';
import { holdLease, leaseSignal } from './lease';
import type { ResolvedGlobalOptions } from './options';
import type { ReportTarget } from './reporting';
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
      return leaseSignal(this[LEASE]);
    },
    enumerable: true,
  },
}) as object;

/** Fields are set one by one, always in this order, so every execution shares one hidden class. */
const createExecution = (call: KeyedCall, { fence, takeover }: Acquired, lease: Lease): IdempotencyExecution => {
  const execution = Object.create(executionPrototype) as IdempotencyExecution & { [LEASE]: Lease };
  execution.key = call.key;
  execution.keyHash = call.keyHash;
  execution.fence = fence;
  execution.takeover = takeover;
  execution[LEASE] = lease;
  return execution;
};

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

type MiddlewareOpts = Parameters<IdempotentMiddleware>[0];
type MiddlewareResult = Awaited<ReturnType<MiddlewareOpts['next']>>;

/** What one middleware (one procedure's options) holds for all its calls. */
interface Guard {
  options: ResolvedGlobalOptions;
  store: IdempotencyStore;
  /** Interval time (see intervalTime): durations, the wait deadline and the lease. */
  now: () => number;
  /** `undefined` when nobody listens: events are then not even built. */
  emit: ((event: IdempotencyEvent) => void) | undefined;
}

/** One keyed call, as the replay and execute steps need it; `carrier` is `undefined` off HTTP. */
interface KeyedCall extends ReportTarget {
  opts: MiddlewareOpts;
  keyHash: string;
  token: string;
  startedAt: number;
  /** When the latest claim was sent (interval time): the lease it won ends no later than this + lockTtlMs. */
  claimedAt: number;
}

type Acquired = Extract<ClaimOutcome, { status: 'acquired' }>;

/** Builds the middleware for one procedure's resolved options. */
export const createMiddleware = (options: ResolvedGlobalOptions, store: IdempotencyStore): IdempotentMiddleware => {
  const { onEvent } = options;
  const guard: Guard = {
    options,
    store,
    // Durations, deadlines and the lease are intervals: measured on a time that never jumps (see intervalTime).
    now: intervalTime(options.clock),
    emit: onEvent
      ? (event) => {
          try {
            onEvent(event);
          } catch {
            // An observer must never change what the caller gets.
          }
        }
      : undefined,
  };
  const { now, emit } = guard;
  const names = keyHeaderNames(options.headerName);
  // Without getKey and inputKey the key comes from the headers only: read it without an await.
  const headersOnly = options.getKey === undefined && options.inputKey === false;

  return async (opts) => {
    if (opts.type !== 'mutation') return opts.next();
    const startedAt = now();
    const request = findRequestHeaders(opts.ctx);
    const carrier = request?.carrier;
    const { path, batchIndex } = opts;

    let key: string | undefined;
    try {
      key = headersOnly
        ? request && keyFromHeaders(request, names, batchIndex)
        : await resolveKey(opts, options, { request, names });
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
    let fingerprint: string;
    try {
      const { fingerprint: how } = options;
      fingerprint = how === false ? '' : how === true ? fingerprintInput(rawInput) : how(rawInput);
    } catch (error) {
      // An input the fingerprint cannot compare: refuse (the procedure does not run) rather than replay blindly.
      if (isIdempotencyError(error)) throw toTRPCError(error);
      throw error;
    }
    const call: KeyedCall = { opts, carrier, key, batchIndex, keyHash, token: newToken(), startedAt, claimedAt: startedAt };
    const deadline = startedAt + options.waitTimeoutMs;

    for (;;) {
      call.claimedAt = now();
      let outcome: ClaimOutcome;
      try {
        outcome = await store.claim({ id: keyHash, token: call.token, fingerprint, lockTtlMs: options.lockTtlMs });
      } catch (error) {
        const failure = storeUnavailable(error);
        const failOpen = failure.code === 'STORE_UNAVAILABLE' && options.onStoreError === 'fail-open';
        emit?.({ type: 'store_error', operation: 'claim', error, failedOpen: failOpen, path, keyHash });
        reportKey(call, 'store_unavailable');
        if (failOpen) return opts.next({ ctx: { idempotency: null } });
        throw toTRPCError(failure);
      }

      switch (outcome.status) {
        case 'acquired':
          emit?.({ type: 'claimed', fence: outcome.fence, takeover: outcome.takeover, durationMs: now() - call.claimedAt, path, keyHash });
          return execute(guard, call, outcome);
        case 'completed':
          return replay(guard, call, outcome.result);
        case 'mismatch':
          emit?.({ type: 'mismatch', path, keyHash });
          reportKey(call, 'mismatch');
          throw toTRPCError(
            new IdempotencyError('MISMATCH', `this idempotency key was already used for mutation "${path}" with a different input; use a new key for a new request`),
          );
        case 'in_progress': {
          const at = now();
          if (options.onInProgress === 'wait' && at < deadline && !opts.signal?.aborted) {
            try {
              await store.wait({ id: keyHash, timeoutMs: deadline - at, signal: opts.signal });
            } catch (error) {
              emit?.({ type: 'store_error', operation: 'wait', error, failedOpen: false, path, keyHash });
              reportKey(call, 'store_unavailable');
              throw toTRPCError(storeUnavailable(error));
            }
            continue;
          }
          const retryAfterMs = Math.min(outcome.retryAfterMs, DEFAULTS.maxRetryAfterMs);
          emit?.({ type: 'conflict', retryAfterMs, waitedMs: at - startedAt, path, keyHash });
          reportKey(call, 'in_progress', retryAfterMs);
          throw toTRPCError(
            new IdempotencyError('IN_PROGRESS', `a request with this idempotency key is still in progress for mutation "${path}"; retry after ${retryAfterMs} ms`, {
              retryAfterMs,
            }),
          );
        }
        default:
          // A store outside the contract: claiming again would spin forever.
          reportKey(call, 'store_unavailable');
          throw toTRPCError(
            new IdempotencyError('RECORD_CORRUPT', `the store returned an unknown claim outcome ${JSON.stringify((outcome as { status?: unknown }).status)}`),
          );
      }
    }
  };
};

// ---- internal helpers ----

/** A completed key: its stored result, as the first call returned it. */
const replay = (guard: Guard, call: KeyedCall, text: string): Promise<MiddlewareResult> => {
  const { opts } = call;
  let stored;
  try {
    stored = decodeStoredResult(guard.options.serializer, text);
  } catch (error) {
    reportKey(call, 'store_unavailable');
    throw toTRPCError(error as IdempotencyError);
  }
  guard.emit?.({ type: 'replayed', outcome: stored.kind, durationMs: guard.now() - call.startedAt, path: opts.path, keyHash: call.keyHash });
  if (stored.kind === 'ok') {
    reportKey(call, 'replayed');
    return Promise.resolve({ ok: true as const, data: stored.data, marker: MIDDLEWARE_MARKER });
  }
  if (stored.kind === 'error') {
    reportKey(call, 'replayed');
    throw new TRPCError({ code: stored.code, message: stored.message });
  }
  reportKey(call, 'not_stored');
  throw toTRPCError(notStoredError(stored, opts.path));
};

/** An acquired key: runs the procedure under a lease, then stores its result (or gives the key up). */
const execute = async (guard: Guard, call: KeyedCall, acquired: Acquired): Promise<MiddlewareResult> => {
  const { options, store, now, emit } = guard;
  const { opts, keyHash } = call;
  const { path } = opts;
  const claim: Claim = { store, clock: options.clock, emit, id: keyHash, token: call.token, path, ttlMs: options.ttlMs, lockTtlMs: options.lockTtlMs };
  const lease = holdLease(claim, call.claimedAt);
  const runStartedAt = now();
  let result: MiddlewareResult;
  try {
    result = await opts.next({ ctx: { idempotency: createExecution(call, acquired, lease) } });
  } catch (error) {
    // tRPC turns procedure errors into results; only a broken inner middleware gets here. Nothing was stored.
    await releaseClaim(claim, lease);
    throw error;
  }
  const durationMs = now() - runStartedAt;
  if (!result) {
    // An inner middleware forgot `return next()`: nothing to store. Free the key and let tRPC say what went wrong.
    reportKey(call, 'released');
    await releaseClaim(claim, lease);
    emit?.({ type: 'released', code: 'INTERNAL_SERVER_ERROR', durationMs, path, keyHash });
    return result;
  }

  let text: string;
  if (result.ok) {
    const encoded = encodeValue(options.serializer, result.data as unknown, options.maxResultBytes);
    if (encoded.notStored) emit?.({ type: 'not_stored', ...encoded.notStored, limitBytes: options.maxResultBytes, path, keyHash });
    text = encoded.text;
  } else if (storesError(options, result.error)) {
    text = encodeError(options.serializer, result.error.code, result.error.message);
  } else {
    reportKey(call, 'released');
    await releaseClaim(claim, lease);
    emit?.({ type: 'released', code: result.error.code, durationMs, path, keyHash });
    return result;
  }
  reportKey(call, 'executed');
  await completeClaim(claim, lease, { text, outcome: result.ok ? 'ok' : 'error', durationMs });
  return result;
};

/** `shouldStoreError`, where a throwing policy means "don't store". */
const storesError = (options: ResolvedGlobalOptions, error: TRPCError): boolean => {
  try {
    return options.shouldStoreError(error);
  } catch {
    return false;
  }
};
