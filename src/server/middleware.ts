import { randomBytes } from 'node:crypto';
import type { TRPCMiddlewareFunction } from '@trpc/server';
import { intervalTime } from '../clock';
import { delayQueue } from '../delayQueue';
import type { IdempotencyError } from '../errors';
import { isIdempotencyError } from '../errors';
import type { ClaimOutcome, IdempotencyStore } from '../store';
import type { IdempotencyEvent } from './events';
import { fingerprintInput } from './fingerprint';
import { findRequestHeaders } from './headers';
import { keyFromHeaders, keyHeaderNames } from './key';
import type { Guard, KeyedCall } from './keyedCall';
import { execute, refuseInProgress, refuseMismatch, refuseUnknownOutcome, replay, storeUnavailable, waitForKey } from './keyedCall';
import { renewInterval } from './lease';
import type { ResolvedGlobalOptions } from './options';
import type { StepFn, StepOptions } from './steps';
import { reportKey } from './reporting';
import { partitionOf } from './partition';
import { keyMissing, noHeadersWarning, resolveKey } from './resolveKey';
import { recordId, scopeText } from './scope';
import { toTRPCError } from './trpcErrors';
import { runTransactional } from './transactional';

/** What a guarded procedure sees as `ctx.idempotency`; `null` when the call came without a key. */
export interface IdempotencyExecution {
  /** The client's key. */
  key: string;
  /** The record id: a hash of (scope, name, key); the name is the procedure path unless `name` is set. */
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
  /**
   * A durable step: the first attempt runs `fn`, records its value under the key before resolving, and resolves
   * with the value as the serializer gives it back; an attempt that resumes the key (after a crash, a lost lease,
   * a released transient error) gets the recorded value without calling `fn`. Name every step explicitly (one
   * name once per attempt); pass `stepKey` to the downstream service as its idempotency key. See docs/steps.md;
   * `runStep` does the same for calls without a key.
   */
  step<T>(name: string, fn: StepFn<T>, options?: StepOptions): Promise<T>;
}

export interface IdempotencyContext {
  idempotency: IdempotencyExecution | null;
}

/** The middleware `idempotent()` returns; `.use()` it on mutation procedures. */
export type IdempotentMiddleware = TRPCMiddlewareFunction<any, any, any, IdempotencyContext, any>;

/**
 * Owner tokens: unique per claim across processes (a random 128-bit prefix per process, then a counter). Only
 * uniqueness matters: a token is never shown to clients. Cheaper than a UUID per call.
 */
const TOKEN_PREFIX = randomBytes(16).toString('base64url');
let tokenCounter = 0;
const newToken = (): string => `${TOKEN_PREFIX}.${(tokenCounter++).toString(36)}`;

/** Builds the middleware for one procedure's resolved options. */
export const createMiddleware = (options: ResolvedGlobalOptions, store: IdempotencyStore): IdempotentMiddleware => {
  const { onEvent } = options;
  const guard: Guard = {
    options,
    store,
    // Durations, deadlines and the lease are intervals: measured on a time that never jumps (see intervalTime).
    now: intervalTime(options.clock),
    emit: onEvent
      ? (event, ctx) => {
          try {
            onEvent(event, { ctx });
          } catch {
            // An observer must never change what the caller gets.
          }
        }
      : undefined,
    renewals: delayQueue(options.clock, renewInterval(options.lockTtlMs)),
  };
  const { now } = guard;
  const names = keyHeaderNames(options.headerName);
  // Without getKey and inputKey the key comes from the headers only: read it without an await.
  const headersOnly = options.getKey === undefined && options.inputKey === false;
  // Procedures already warned that they can never see a key; bounded by the router's procedures.
  const warnedPaths = new Set<string>();

  return async (opts) => {
    if (opts.type !== 'mutation') return opts.next();
    const startedAt = now();
    const request = findRequestHeaders(opts.ctx);
    const carrier = request?.carrier;
    const { path, batchIndex } = opts;
    // Events carry the call's ctx: one small closure per call, only when someone listens.
    const emit = guard.emit && ((event: IdempotencyEvent): void => guard.emit?.(event, opts.ctx));

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
      if (options.required) throw toTRPCError(keyMissing(path, options, request === undefined));
      // No headers and no other source: no call of this procedure can ever carry a key. Say so, once.
      const blind = headersOnly && request === undefined;
      if (blind && !warnedPaths.has(path)) {
        warnedPaths.add(path);
        console.warn(noHeadersWarning(path));
      }
      emit?.({ type: 'unguarded', reason: blind ? 'no_headers' : 'no_key', path });
      return opts.next({ ctx: { idempotency: null } });
    }

    const rawInput = await opts.getRawInput();
    const scope: unknown = options.scope?.({ ctx: opts.ctx, path });
    let scoped: string;
    try {
      scoped = scopeText(scope);
    } catch (error) {
      throw toTRPCError(error as IdempotencyError);
    }
    const keyHash = recordId(scoped, options.name ?? path, key);
    let fingerprint: string;
    try {
      const { fingerprint: how } = options;
      fingerprint = how === false ? '' : how === true ? fingerprintInput(rawInput, options) : how(rawInput);
    } catch (error) {
      // An input the fingerprint cannot compare or that is past its budget: refuse (nothing runs) rather than replay blindly.
      if (isIdempotencyError(error)) throw toTRPCError(error);
      throw error;
    }
    const call: KeyedCall = { opts, carrier, key, batchIndex, keyHash, token: newToken(), startedAt, claimedAt: startedAt, emit };
    const deadline = startedAt + options.waitTimeoutMs;
    const partition = partitionOf(scoped);
    // A capability of the store, checked once by the options (see TransactionalStore).
    if (options.transactional) return runTransactional(guard, call, { partition, fingerprint, deadline });

    for (;;) {
      call.claimedAt = now();
      let outcome: ClaimOutcome;
      try {
        outcome = await store.claim({ id: keyHash, partition, token: call.token, fingerprint, lockTtlMs: options.lockTtlMs });
      } catch (error) {
        const failure = storeUnavailable(error);
        const failOpen = failure.code === 'STORE_UNAVAILABLE' && options.onStoreError === 'fail-open';
        emit?.({ type: 'store_error', operation: 'claim', error, failedOpen: failOpen, path, keyHash });
        reportKey(call, 'store_unavailable');
        if (failOpen) {
          emit?.({ type: 'unguarded', reason: 'fail_open', path, keyHash });
          return opts.next({ ctx: { idempotency: null } });
        }
        throw toTRPCError(failure);
      }

      switch (outcome.status) {
        case 'acquired':
          emit?.({ type: 'claimed', fence: outcome.fence, takeover: outcome.takeover, durationMs: now() - call.claimedAt, path, keyHash });
          return execute(guard, call, outcome);
        case 'completed':
          return replay(guard, call, outcome.result);
        case 'mismatch':
          return refuseMismatch(call);
        case 'in_progress': {
          const at = now();
          if (options.onInProgress === 'wait' && at < deadline && !opts.signal?.aborted) {
            await waitForKey(call, (request) => store.wait(request), deadline - at);
            continue;
          }
          return refuseInProgress(guard, call, outcome.retryAfterMs);
        }
        default:
          return refuseUnknownOutcome(call, outcome);
      }
    }
  };
};
