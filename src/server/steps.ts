import { randomUUID } from 'node:crypto';
import { TRPCError } from '@trpc/server';
import { IdempotencyError, isIdempotencyError } from '../errors';
import type { RecordedSteps, StepOutcome } from '../store';
import { sha256Base64url } from './fingerprint';
import type { Lease } from './lease';
import { leaseSignal, leaseTakenOver } from './lease';
import type { IdempotencyExecution } from './middleware';
import type { ResolvedGlobalOptions } from './options';
import { decodeStoredResult, encodeError, encodeValue, notStoredError } from './storedResult';
import { toTRPCError } from './trpcErrors';

/**
 * Durable steps: `ctx.idempotency.step(name, fn)` runs `fn` once per key, records what it returned under the key
 * before resolving, and hands the recorded value back, without calling `fn`, to any later attempt that resumes the
 * key (a retry after a crash, a lost lease or a released transient error). See docs/steps.md.
 *
 * A step's record is the text the store keeps under its name (the stored-result format, see storedResult):
 *   1o<serialized value>   the value, as the serializer wrote it
 *   1e<serialized error>   a final error of `fn` (only with `storeErrors`)
 *   1n<json>               `fn` ran, but its value was too large or not serializable: never run again
 * and, for an at-most-once step, a marker recorded under `STARTED + name` before `fn` runs.
 */

/** What a step's `fn` receives. */
export interface StepContext {
  /**
   * The same for every attempt and every owner of this key and step name (a hash of the record id and the name;
   * URL-safe base64, 43 characters). Send it as the downstream service's idempotency key: that makes the step
   * exactly-once even when a crash comes between the call and its record.
   */
  stepKey: string;
  /** The fence of the claim running this attempt (see `IdempotencyExecution.fence`). */
  fence: number;
  /** Aborts when the lease is lost: another owner may now run the key. */
  signal: AbortSignal;
}

export interface StepOptions {
  /**
   * Record "started" before calling `fn`. An attempt that finds a step started but not finished does not call
   * `fn` again: it fails with STEP_INDETERMINATE (tRPC CONFLICT), stored as the key's answer, so an operator
   * decides. For calls that must never run twice and have no downstream idempotency key. Costs one more round
   * trip per step.
   * @default false
   */
  atMostOnce?: boolean;
  /**
   * Record a TRPCError that `fn` throws when `shouldStoreError` calls it final, so later attempts get the same
   * error without calling `fn`. Otherwise nothing is recorded and the next attempt calls `fn` again.
   * @default false
   */
  storeErrors?: boolean;
}

export type StepFn<T> = (step: StepContext) => T | Promise<T>;

/** One attempt's view of the steps: made per acquired claim, read by `step()`. */
export interface StepAttempt {
  readonly lease: Lease;
  readonly options: ResolvedGlobalOptions;
  /** What earlier attempts recorded, from the claim. */
  readonly recorded: RecordedSteps;
  readonly fence: number;
  /** Names this attempt has stepped through; made on the first step. */
  used: Set<string> | undefined;
  /** Set when the procedure has returned: later `step()` calls are refused. */
  closed: boolean;
}

/** The steps of one acquired claim; costs one small record per call, nothing more until a step runs. */
export const openSteps = (
  options: ResolvedGlobalOptions,
  { fence, steps }: { fence: number; steps: RecordedSteps },
  lease: Lease,
): StepAttempt => ({ lease, options, recorded: steps, fence, used: undefined, closed: false });

/** Longest step name, in UTF-16 units. */
export const MAX_STEP_NAME_LENGTH = 200;

/** Where an execution (`ctx.idempotency`) keeps its StepAttempt. */
export const STEPS = Symbol('steps');

/** `ctx.idempotency.step`: one step of the execution's attempt (a method on the executions' shared prototype). */
// eslint-disable-next-line max-params -- `this` is the execution, not a parameter: the public method takes three
export function executionStep<T>(this: { [STEPS]: StepAttempt }, name: string, fn: StepFn<T>, options?: StepOptions): Promise<T> {
  return runStepIn(this[STEPS], name, { fn, options: options ?? {} });
}

/** Runs one step of an attempt: replays what was recorded, or runs `fn` and records it. */
const runStepIn = async <T>(attempt: StepAttempt, name: string, { fn, options }: { fn: StepFn<T>; options: StepOptions }): Promise<T> => {
  const { lease } = attempt;
  const { emit, path, id: keyHash } = lease.claim;
  checkName(name, path);
  if (typeof fn !== 'function') throw toTRPCError(invalid(`step "${name}" of mutation "${path}": fn must be a function`));
  if (attempt.closed) {
    throw toTRPCError(invalid(`step "${name}" of mutation "${path}" was called after the procedure returned; await every step`));
  }
  const used = (attempt.used ??= new Set());
  if (used.has(name)) {
    // Before fn runs: two calls of one name cannot both be "the" step, and call order never tells them apart.
    throw toTRPCError(
      new IdempotencyError('STEP_DUPLICATE', `step "${name}" of mutation "${path}" was called twice in one attempt; give each step its own name`),
    );
  }
  used.add(name);

  const recorded = attempt.recorded.get(name);
  if (recorded !== undefined) {
    emit?.({ type: 'step_replayed', name, path, keyHash });
    return replayStep(attempt, name, recorded);
  }
  if (options.atMostOnce && attempt.recorded.has(STARTED + name)) throw indeterminate(name, path);
  if (lease.lostWith) throw toTRPCError(lease.lostWith);

  const startedAt = lease.claim.now();
  if (options.atMostOnce) {
    const marker = await write(attempt, STARTED + name, STARTED_TEXT);
    // Someone recorded the marker after our claim read the steps: only an owner can, so this attempt is not one.
    if (marker !== undefined) throw indeterminate(name, path);
  }
  let value: T;
  try {
    value = await fn({ stepKey: stepKeyOf(keyHash, name), fence: attempt.fence, signal: leaseSignal(lease) });
  } catch (error) {
    if (options.storeErrors && error instanceof TRPCError && storesError(attempt.options, error)) {
      const text = encodeError(attempt.options.serializer, error.code, error.message);
      const existing = await write(attempt, name, text);
      emit?.({ type: 'step_recorded', name, outcome: 'error', bytes: Buffer.byteLength(text), durationMs: lease.claim.now() - startedAt, path, keyHash });
      if (existing !== undefined) return replayStep(attempt, name, existing);
    }
    throw error;
  }
  const { serializer, maxResultBytes } = attempt.options;
  const encoded = encodeValue(serializer, value, maxResultBytes);
  const existing = await write(attempt, name, encoded.text);
  const durationMs = lease.claim.now() - startedAt;
  if (encoded.notStored) {
    emit?.({ type: 'step_recorded', name, outcome: 'not_stored', bytes: encoded.notStored.bytes ?? 0, durationMs, path, keyHash });
    // This attempt goes on with the value it has; a later one gets NOT_STORED instead of running fn again.
    return value;
  }
  emit?.({ type: 'step_recorded', name, outcome: 'ok', bytes: Buffer.byteLength(encoded.text), durationMs, path, keyHash });
  // A first run sees what a replay will see: the value as the serializer gives it back.
  return replayStep(attempt, name, existing ?? encoded.text);
};

/**
 * Ends an attempt's steps once the procedure has returned; reports recorded names this attempt never reached
 * (a renamed or removed step after a code change): they are ignored, not replayed.
 */
export const closeSteps = (attempt: StepAttempt): void => {
  attempt.closed = true;
  const { recorded, used } = attempt;
  if (recorded.size === 0) return;
  const unused: string[] = [];
  for (const name of recorded.keys()) {
    const base = name.startsWith(STARTED) ? name.slice(STARTED.length) : name;
    if (!used?.has(base) && !unused.includes(base)) unused.push(base);
  }
  const { emit, path, id: keyHash } = attempt.lease.claim;
  if (unused.length > 0) emit?.({ type: 'steps_unused', names: unused, path, keyHash });
};

/**
 * Whether an error the procedure failed with must be stored (`true`), must not be (`false`), or is up to
 * `shouldStoreError` (`undefined`). A step's verdict (NOT_STORED, STEP_INDETERMINATE) is the key's final answer
 * whatever the policy says; the idempotency layer's own transient failures (a lost lease, an unreachable store)
 * never are, or a retry could never resume.
 */
export const stepErrorVerdict = (error: TRPCError): boolean | undefined => {
  const cause = error.cause;
  if (!isIdempotencyError(cause)) return undefined;
  switch (cause.code) {
    case 'NOT_STORED':
    case 'STEP_INDETERMINATE':
      return true;
    case 'LEASE_LOST':
    case 'STORE_UNAVAILABLE':
    case 'QUOTA_EXCEEDED':
    case 'RECORD_CORRUPT':
      return false;
    default:
      return undefined;
  }
};

/** A `step` that always refuses, for executions that cannot record steps (e.g. inside a database transaction). */
export const refusedStep =
  (why: string): IdempotencyExecution['step'] =>
  () =>
    Promise.reject(toTRPCError(invalid(why)));

/**
 * Steps whether or not the call has a key: `ctx.idempotency` itself when it has one, otherwise a `step` that runs
 * `fn` directly (once: without a key there is no retry to resume), with a random step key, fence 0 and a signal
 * that never aborts. Procedure code then needs no branch.
 *
 * @example
 * const charge = await stepsOf(ctx.idempotency).step('charge', ({ stepKey }) => payments.charge(input, { idempotencyKey: stepKey }));
 */
export const stepsOf = (idempotency: Pick<IdempotencyExecution, 'step'> | null | undefined): Pick<IdempotencyExecution, 'step'> =>
  idempotency ?? UNKEYED;

const UNKEYED: Pick<IdempotencyExecution, 'step'> = {
  step: (_name, fn) => Promise.resolve().then(() => fn({ stepKey: randomUUID(), fence: 0, signal: new AbortController().signal })),
};

/** The step key: a hash of the record id and the step name, the same for every attempt and owner. */
export const stepKeyOf = (keyHash: string, name: string): string => sha256Base64url(`step\n${keyHash}\n${name}`);

// ---- internal helpers ----

/** Prefix of an at-most-once step's "started" marker; names may not contain control characters, so no clash. */
const STARTED = '\u0001';
const STARTED_TEXT = '1s';

// C0 controls and DEL: the marker prefix, and characters a PostgreSQL text or a log line should not carry.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

const invalid = (message: string): IdempotencyError => new IdempotencyError('INVALID_OPTION', message);

const checkName = (name: unknown, path: string): void => {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_STEP_NAME_LENGTH || CONTROL.test(name)) {
    throw toTRPCError(
      invalid(
        `a step of mutation "${path}" needs a name of 1 to ${MAX_STEP_NAME_LENGTH} characters without control characters, got ${JSON.stringify(name)?.slice(0, 60)}`,
      ),
    );
  }
};

const indeterminate = (name: string, path: string): TRPCError =>
  toTRPCError(
    new IdempotencyError(
      'STEP_INDETERMINATE',
      `step "${name}" of mutation "${path}" is at-most-once and an earlier attempt started it without finishing; whether it took effect is unknown, so it was not run again`,
    ),
  );

/** A recorded step: its value, its recorded error (thrown), or NOT_STORED. */
const replayStep = <T>(attempt: StepAttempt, name: string, text: string): T => {
  const { path } = attempt.lease.claim;
  let stored;
  try {
    stored = decodeStoredResult(attempt.options.serializer, text);
  } catch (error) {
    throw toTRPCError(error as IdempotencyError);
  }
  if (stored.kind === 'ok') return stored.data as T;
  if (stored.kind === 'error') throw new TRPCError({ code: stored.code, message: stored.message });
  const base = notStoredError(stored, path);
  throw toTRPCError(new IdempotencyError('NOT_STORED', `step "${name}" of ${base.message.replace(/^trpc-idempotency: /, '')}`));
};

/**
 * Records one step; resolves `undefined` when recorded now, or the text already recorded under the name. A
 * refused write means another owner has the key: the lease is given up (its signal aborts) and LEASE_LOST thrown.
 */
const write = async (attempt: StepAttempt, name: string, text: string): Promise<string | undefined> => {
  const { lease } = attempt;
  const { store, id, token, ttlMs, emit, path } = lease.claim;
  let outcome: StepOutcome;
  try {
    outcome = await store.recordStep({ id, token, name, text, keepMs: ttlMs });
  } catch (error) {
    emit?.({ type: 'store_error', operation: 'step', error, failedOpen: false, path, keyHash: id });
    if (isIdempotencyError(error) && (error.code === 'RECORD_CORRUPT' || error.code === 'QUOTA_EXCEEDED' || error.code === 'STORE_UNAVAILABLE')) {
      throw toTRPCError(error);
    }
    throw toTRPCError(
      new IdempotencyError('STORE_UNAVAILABLE', 'the idempotency store could not record a step; retry to resume after the last recorded step', {
        cause: error,
        retryAfterMs: 1000,
      }),
    );
  }
  if (outcome.status === 'ok') return undefined;
  if (outcome.status === 'exists') return outcome.text;
  emit?.({ type: 'lease_lost', phase: 'step', path, keyHash: id });
  throw toTRPCError(leaseTakenOver(lease));
};

/** `shouldStoreError`, where a throwing policy means "don't store". */
const storesError = (options: ResolvedGlobalOptions, error: TRPCError): boolean => {
  try {
    return options.shouldStoreError(error);
  } catch {
    return false;
  }
};
