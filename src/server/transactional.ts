import type { TRPCMiddlewareFunction } from '@trpc/server';
import { TRPCError } from '@trpc/server';
import { IdempotencyError } from '../errors';
import type { CommitOutcome, TransactionalClaim, TransactionalStore } from '../store';
import type { Guard, KeyedCall } from './keyedCall';
import { refuseInProgress, refuseMismatch, refuseUnknownOutcome, replay, storeUnavailable as unavailable, waitForKey } from './keyedCall';
import type { IdempotencyExecution, IdempotentMiddleware } from './middleware';
import type { ResolvedGlobalOptions } from './options';
import { reportKey } from './reporting';
import { encodeError, encodeValue } from './storedResult';
import { refusedStep } from './steps';
import { toTRPCError } from './trpcErrors';

/**
 * The transactional mode (`idempotent({ transactional: true })`): the claim, the procedure's writes on
 * `ctx.idempotency.client` and the stored result share one database transaction of the store's (see
 * `TransactionalStore`). Where the store mode has a lease, renewals and a completion that may fail after the
 * procedure ran, this mode has a transaction: it commits whole, or nothing of it happened and the key is free.
 *
 *   begin(claim) ─acquired─> procedure ─ok─────────────────> commit(result)            -> executed
 *                                      ─final error─────────> commit(error, discard)    -> executed (error replayed)
 *                                      ─other error─────────> rollback                  -> released (key free)
 *                                      ─connection lost / serialization failure ─> rollback -> SERVICE_UNAVAILABLE
 *               ─completed─> replay   ─mismatch─> UNPROCESSABLE_CONTENT   ─in_progress─> CONFLICT or wait
 */

/** `ctx.idempotency` in a transactional procedure: the execution, plus the open transaction's connection. */
export interface TransactionalExecution<TClient = unknown> extends IdempotencyExecution {
  /**
   * The connection of the open transaction (a node-postgres `PoolClient` with the PostgreSQL store). Every write
   * the procedure makes through it commits with the stored result, or not at all. Never send BEGIN, COMMIT or
   * ROLLBACK on it (use SAVEPOINTs for nested work). `signal` aborts when this connection is lost.
   */
  readonly client: TClient;
}

export interface TransactionalContext<TClient = unknown> {
  idempotency: TransactionalExecution<TClient> | null;
}

/** The middleware `idempotent({ transactional: true })` returns. */
export type TransactionalMiddleware<TClient = unknown> = TRPCMiddlewareFunction<any, any, any, TransactionalContext<TClient>, any>;

/** What the middleware has worked out for one keyed call before its claim. */
export interface TransactionalRequest {
  partition: string;
  fingerprint: string;
  /** Interval time after which an in-progress duplicate stops waiting. */
  deadline: number;
}

type MiddlewareResult = Awaited<ReturnType<Parameters<IdempotentMiddleware>[0]['next']>>;
type Acquired<TClient> = Extract<TransactionalClaim<TClient>, { status: 'acquired' }>;

/** Claims the key in a new transaction and answers the call from there. The store's capability was checked by the options. */
export const runTransactional = async (guard: Guard, call: KeyedCall, request: TransactionalRequest): Promise<MiddlewareResult> => {
  const { options, now } = guard;
  const { emit } = call;
  const { transactional } = guard.store as TransactionalStore;
  const { opts, keyHash } = call;
  const { path } = opts;
  for (;;) {
    call.claimedAt = now();
    let outcome: TransactionalClaim<unknown>;
    try {
      outcome = await transactional.begin({
        id: keyHash,
        partition: request.partition,
        token: call.token,
        fingerprint: request.fingerprint,
        lockTtlMs: options.lockTtlMs,
      });
    } catch (error) {
      emit?.({ type: 'store_error', operation: 'claim', error, failedOpen: false, path, keyHash });
      reportKey(call, 'store_unavailable');
      throw toTRPCError(unavailable(error));
    }
    switch (outcome.status) {
      case 'acquired':
        emit?.({ type: 'claimed', fence: outcome.fence, takeover: outcome.takeover, durationMs: now() - call.claimedAt, path, keyHash });
        return runInTransaction(guard, call, outcome);
      case 'completed':
        return replay(guard, call, outcome.result);
      case 'mismatch':
        return refuseMismatch(call);
      case 'in_progress': {
        const at = now();
        if (options.onInProgress === 'wait' && at < request.deadline && !opts.signal?.aborted) {
          await waitForKey(call, (waitRequest) => transactional.wait(waitRequest), request.deadline - at);
          continue;
        }
        return refuseInProgress(guard, call, outcome.retryAfterMs);
      }
      default:
        return refuseUnknownOutcome(call, outcome);
    }
  }
};

// ---- internal helpers ----

const TRANSACTIONAL_STEP = refusedStep(
  'durable steps are not available in a transactional procedure: a step recorded inside the transaction would ' +
    'roll back with the attempt it has to outlive (see docs/steps.md)',
);

/** Runs the procedure in the acquired transaction, then commits its outcome with it or rolls everything back. */
const runInTransaction = async (guard: Guard, call: KeyedCall, acquired: Acquired<unknown>): Promise<MiddlewareResult> => {
  const { options, now } = guard;
  const { emit } = call;
  const { opts, keyHash } = call;
  const { path } = opts;
  const { transaction } = acquired;
  const execution: TransactionalExecution = {
    key: call.key,
    keyHash,
    fence: acquired.fence,
    takeover: acquired.takeover,
    signal: transaction.signal,
    client: transaction.client,
    // A step recorded in this transaction would roll back with the very attempt it has to outlive.
    step: TRANSACTIONAL_STEP,
  };
  const runStartedAt = now();
  let result: MiddlewareResult;
  try {
    result = await opts.next({ ctx: { idempotency: execution } });
  } catch (error) {
    // tRPC turns procedure errors into results; only a broken inner middleware gets here. Nothing is kept.
    await transaction.rollback();
    throw error;
  }
  const durationMs = now() - runStartedAt;
  const released = async (code: TRPCError['code']): Promise<void> => {
    reportKey(call, 'released');
    await transaction.rollback();
    emit?.({ type: 'released', code, durationMs, path, keyHash });
  };
  if (!result) {
    // An inner middleware forgot `return next()`: nothing to store.
    await released('INTERNAL_SERVER_ERROR');
    return result;
  }

  let text: string;
  if (result.ok) {
    const encoded = encodeValue(options.serializer, result.data as unknown, options.maxResultBytes);
    if (encoded.notStored) emit?.({ type: 'not_stored', ...encoded.notStored, limitBytes: options.maxResultBytes, path, keyHash });
    text = encoded.text;
  } else {
    const serialization = serializationFailureIn(result.error);
    if (!serialization && !transaction.signal.aborted && storesError(options, result.error)) {
      text = encodeError(options.serializer, result.error.code, result.error.message);
    } else {
      // The ROLLBACK also tells whether the connection is still there (a terminated backend is often noticed
      // only now).
      await transaction.rollback();
      // The connection lost is the transaction's own (its signal), not any connection a SQLSTATE came from: a
      // session-ending error of another connection the procedure used is the procedure's own answer.
      const reason = serialization ? 'serialization' : transaction.signal.aborted ? 'connection_lost' : undefined;
      // The procedure failed because its transaction did: not its answer, and nothing of it is kept.
      if (reason) return failed(guard, call, { reason, cause: result.error });
      reportKey(call, 'released');
      emit?.({ type: 'released', code: result.error.code, durationMs, path, keyHash });
      return result;
    }
  }

  const committed = await transaction.commit({ result: text, ttlMs: options.ttlMs, discardWrites: !result.ok });
  if (committed.status === 'committed') {
    reportKey(call, 'executed');
    emit?.({ type: 'completed', bytes: Buffer.byteLength(text), outcome: result.ok ? 'ok' : 'error', durationMs, path, keyHash });
    return result;
  }
  emit?.({ type: 'store_error', operation: 'complete', error: committed.error, failedOpen: false, path, keyHash });
  return failed(guard, call, { reason: committed.status === 'unknown' ? 'unknown' : committed.reason, cause: committed.error });
};

type Failure = Extract<CommitOutcome, { status: 'rolled_back' }>['reason'] | 'unknown';

/** Answers a call whose transaction did not commit (or may not have): retryable, except for a broken procedure. */
const failed = (guard: Guard, call: KeyedCall, { reason, cause }: { reason: Failure; cause: unknown }): never => {
  const { path } = call.opts;
  if (reason === 'aborted' || reason === 'ended') {
    // The procedure's own doing (a failed statement it swallowed, a COMMIT it sent): the same call would fail again.
    reportKey(call, 'released');
    call.emit?.({ type: 'released', code: 'INTERNAL_SERVER_ERROR', durationMs: guard.now() - call.claimedAt, path, keyHash: call.keyHash });
    throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: FAILURES[reason](path), cause });
  }
  reportKey(call, 'store_unavailable');
  // Written here, with no database text in it, and it must say what happened to the run: sent as written.
  throw toTRPCError(new IdempotencyError('STORE_UNAVAILABLE', FAILURES[reason](path), { cause, retryAfterMs: reason === 'serialization' ? 100 : 1000 }), true);
};

const FAILURES: Record<Failure, (path: string) => string> = {
  serialization: (path) =>
    `mutation "${path}" hit a serialization failure or deadlock in its transaction; nothing was committed, retry the call`,
  connection_lost: (path) =>
    `the database connection of mutation "${path}" was lost before COMMIT; nothing was committed, retry the call`,
  unknown: (path) =>
    `the database connection of mutation "${path}" was lost during COMMIT; retry the call: it replays the result if the COMMIT landed, or runs if it did not`,
  aborted: (path) =>
    `the transaction of mutation "${path}" was aborted by a failed statement (or its COMMIT failed); nothing was committed`,
  ended: (path) =>
    `mutation "${path}" ended its transaction itself (COMMIT or ROLLBACK on ctx.idempotency.client); its result was not stored`,
};

/** `shouldStoreError`, where a throwing policy means "don't store". */
const storesError = (options: ResolvedGlobalOptions, error: TRPCError): boolean => {
  try {
    return options.shouldStoreError(error);
  } catch {
    return false;
  }
};

/**
 * Whether the procedure's error is a serialization failure or deadlock (SQLSTATE 40001/40P01) on it or on any of
 * its first 8 causes, rather than the procedure's own answer: nothing was committed and the same call may succeed.
 */
const serializationFailureIn = (error: unknown): boolean => {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (code === '40001' || code === '40P01') return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
};
