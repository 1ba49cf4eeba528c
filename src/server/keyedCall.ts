import { TRPCError } from '@trpc/server';
import type { DelayQueue } from '../delayQueue';
import { IdempotencyError, isIdempotencyError } from '../errors';
import type { ClaimOutcome, IdempotencyStore, WaitOutcome, WaitRequest } from '../store';
import type { Claim } from './claim';
import type { IdempotencyEvent } from './events';
import type { Settled } from './finish';
import { completeClaim, releaseClaim } from './finish';
import type { Lease } from './lease';
import { holdLease, leaseSignal } from './lease';
import type { IdempotencyExecution, IdempotentMiddleware } from './middleware';
import type { ResolvedGlobalOptions } from './options';
import type { ReportTarget } from './reporting';
import { reportKey } from './reporting';
import type { StepAttempt } from './steps';
import { closeSteps, executionStep, openSteps, stepErrorVerdict, STEPS } from './steps';
import { decodeStoredResult, encodeError, encodeValue, notStoredError } from './storedResult';
import { toTRPCError } from './trpcErrors';

/**
 * The two ends of a keyed call once the store has answered its claim: `replay` a completed key, or `execute` an
 * acquired one under a lease and store what it returns. Module functions over two records (`Guard`, `KeyedCall`)
 * rather than closures made per call.
 */

type MiddlewareOpts = Parameters<IdempotentMiddleware>[0];
type MiddlewareResult = Awaited<ReturnType<MiddlewareOpts['next']>>;

/** What one middleware (one procedure's options) holds for all its calls. */
export interface Guard {
  options: ResolvedGlobalOptions;
  store: IdempotencyStore;
  /** Interval time (see intervalTime): durations, the wait deadline and the lease. */
  now: () => number;
  /** `undefined` when nobody listens: events are then not even built. Calls use their own (`KeyedCall.emit`). */
  emit: ((event: IdempotencyEvent, ctx: unknown) => void) | undefined;
  /** The shared renewal queue for this clock and lockTtlMs, looked up once (see delayQueue). */
  renewals: DelayQueue;
}

/** One keyed call, as the replay and execute steps need it; `carrier` is `undefined` off HTTP. */
export interface KeyedCall extends ReportTarget {
  opts: MiddlewareOpts;
  keyHash: string;
  token: string;
  /** `guard.emit` with this call's ctx; `undefined` when nobody listens. */
  emit: ((event: IdempotencyEvent) => void) | undefined;
  startedAt: number;
  /** When the latest claim was sent (interval time): the lease it won ends no later than this + lockTtlMs. */
  claimedAt: number;
}

type Acquired = Extract<ClaimOutcome, { status: 'acquired' }>;

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
  step: { value: executionStep },
}) as object;

/** Fields are set one by one, always in this order, so every execution shares one hidden class. */
const createExecution = (call: KeyedCall, { fence, takeover }: Acquired, steps: StepAttempt): IdempotencyExecution => {
  const execution = Object.create(executionPrototype) as IdempotencyExecution & { [LEASE]: Lease; [STEPS]: StepAttempt };
  execution.key = call.key;
  execution.keyHash = call.keyHash;
  execution.fence = fence;
  execution.takeover = takeover;
  execution[LEASE] = steps.lease;
  execution[STEPS] = steps;
  return execution;
};

// tRPC checks the marker's type only; the runtime ignores it (see trpc-v11-notes section 1).
const MIDDLEWARE_MARKER = 'middlewareMarker' as any;

/** What a store failure means to the caller: the store's own errors as they are, anything else STORE_UNAVAILABLE. */
export const storeUnavailable = (error: unknown): IdempotencyError =>
  isIdempotencyError(error) && (error.code === 'RECORD_CORRUPT' || error.code === 'STORE_UNAVAILABLE' || error.code === 'QUOTA_EXCEEDED')
    ? error
    : new IdempotencyError('STORE_UNAVAILABLE', 'the idempotency store cannot be reached; the procedure was not run', {
        cause: error,
        retryAfterMs: 1000,
      });

/** Waits for a key in progress to settle (`onInProgress: 'wait'`); a store failure while waiting is a 503. */
export const waitForKey = async (call: KeyedCall, wait: (request: WaitRequest) => Promise<WaitOutcome>, timeoutMs: number): Promise<void> => {
  try {
    await wait({ id: call.keyHash, timeoutMs, signal: call.opts.signal });
  } catch (error) {
    call.emit?.({ type: 'store_error', operation: 'wait', error, failedOpen: false, path: call.opts.path, keyHash: call.keyHash });
    reportKey(call, 'store_unavailable');
    throw toTRPCError(storeUnavailable(error));
  }
};

/** A key used before with another input: UNPROCESSABLE_CONTENT, whatever the mode that claimed it. */
export const refuseMismatch = (call: KeyedCall): never => {
  const { path } = call.opts;
  call.emit?.({ type: 'mismatch', path, keyHash: call.keyHash });
  reportKey(call, 'mismatch');
  throw toTRPCError(
    new IdempotencyError('MISMATCH', `this idempotency key was already used for mutation "${path}" with a different input; use a new key for a new request`),
  );
};

/** A key another call holds: CONFLICT, with the lease left as the retry hint, capped at `maxRetryAfterMs`. */
export const refuseInProgress = (guard: Guard, call: KeyedCall, leaseLeftMs: number): never => {
  const { path } = call.opts;
  const retryAfterMs = Math.min(leaseLeftMs, guard.options.maxRetryAfterMs);
  call.emit?.({ type: 'conflict', retryAfterMs, waitedMs: guard.now() - call.startedAt, path, keyHash: call.keyHash });
  reportKey(call, 'in_progress', retryAfterMs);
  throw toTRPCError(
    new IdempotencyError('IN_PROGRESS', `a request with this idempotency key is still in progress for mutation "${path}"; retry after ${retryAfterMs} ms`, {
      retryAfterMs,
    }),
  );
};

/** A claim outcome outside the store contract: claiming again would spin forever. */
export const refuseUnknownOutcome = (call: KeyedCall, outcome: { status?: unknown }): never => {
  reportKey(call, 'store_unavailable');
  throw toTRPCError(new IdempotencyError('RECORD_CORRUPT', `the store returned an unknown claim outcome ${JSON.stringify(outcome.status)}`));
};

/** A completed key: its stored result, as the first call returned it. */
export const replay = (guard: Guard, call: KeyedCall, text: string): Promise<MiddlewareResult> => {
  const { opts } = call;
  let stored;
  try {
    stored = decodeStoredResult(guard.options.serializer, text);
  } catch (error) {
    reportKey(call, 'store_unavailable');
    throw toTRPCError(error as IdempotencyError);
  }
  call.emit?.({ type: 'replayed', outcome: stored.kind, durationMs: guard.now() - call.startedAt, path: opts.path, keyHash: call.keyHash });
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
export const execute = async (guard: Guard, call: KeyedCall, acquired: Acquired): Promise<MiddlewareResult> => {
  const { options, store, now, renewals } = guard;
  const { emit } = call;
  const { opts, keyHash } = call;
  const { path } = opts;
  const { clock, ttlMs, lockTtlMs } = options;
  const claim: Claim = { store, clock, now, renewals, emit, id: keyHash, token: call.token, path, ttlMs, lockTtlMs };
  if (now() >= call.claimedAt + lockTtlMs) {
    // The claim's answer came back after the lease it won could have ended: another request may own the key by
    // now, and running the procedure could run it twice. Give the key up (a no-op if it changed hands), run
    // nothing, and answer as for a store too slow to use: the client may retry.
    reportKey(call, 'store_unavailable');
    await releaseClaim(claim, undefined);
    emit?.({ type: 'lease_lost', phase: 'claim', path, keyHash });
    throw toTRPCError(
      new IdempotencyError(
        'STORE_UNAVAILABLE',
        `the idempotency store answered the claim after its ${lockTtlMs} ms lease could have ended; the procedure was not run`,
        { retryAfterMs: 1000 },
      ),
    );
  }
  const lease = holdLease(claim, call.claimedAt);
  const runStartedAt = now();
  const steps = openSteps(options, acquired, lease);
  let result: MiddlewareResult;
  try {
    result = await opts.next({ ctx: { idempotency: createExecution(call, acquired, steps) } });
  } catch (error) {
    // tRPC turns procedure errors into results; only a broken inner middleware gets here. Nothing was stored.
    closeSteps(steps);
    await releaseClaim(claim, lease);
    throw error;
  }
  closeSteps(steps);
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
  const settled = await completeClaim(claim, lease, { text, outcome: result.ok ? 'ok' : 'error', durationMs });
  if (settled === 'ok') {
    reportKey(call, 'executed');
    return result;
  }
  // The key does not replay this outcome (another owner's, or none yet): answering it as executed could give two
  // callers of one key two different answers. Fail closed; a retry with the same key gets the key's final answer.
  reportKey(call, settled === 'lost' ? 'lease_lost' : 'store_unavailable');
  // Written here, without store text, and it must say the procedure ran: sent as written.
  throw toTRPCError(notKept(settled, path), true);
};

/** Why an outcome the procedure returned is not the caller's answer: the key will not (or not yet) replay it. */
const notKept = (settled: Exclude<Settled, 'ok'>, path: string): IdempotencyError => {
  const ran = `mutation "${path}" ran, but`;
  switch (settled) {
    case 'lost':
      return new IdempotencyError(
        'LEASE_LOST',
        `${ran} its lease on this idempotency key was lost to another request before its result was stored; ` +
          'retry with the same key to get the final result',
      );
    case 'failed':
      return new IdempotencyError(
        'STORE_UNAVAILABLE',
        `${ran} the idempotency store failed while storing its result; it is still being stored: retry with the same key to get it`,
        { retryAfterMs: 1000 },
      );
    case 'corrupt':
      return new IdempotencyError('RECORD_CORRUPT', `${ran} its result cannot be stored: the record of this key is corrupt`);
  }
};

/** `shouldStoreError`, where a throwing policy means "don't store". */
const storesError = (options: ResolvedGlobalOptions, error: TRPCError): boolean => {
  const verdict = stepErrorVerdict(error);
  if (verdict !== undefined) return verdict;
  try {
    return options.shouldStoreError(error);
  } catch {
    return false;
  }
};
