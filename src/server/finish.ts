import type { Clock } from '../clock';
import { intervalTime } from '../clock';
import { DEFAULTS } from '../constants';
import { isIdempotencyError } from '../errors';
import type { IdempotencyStore } from '../store';
import type { IdempotencyEvent } from './events';
import type { Lease } from './lease';

/** One claim, as the finishing steps need it. */
export interface Claim {
  store: IdempotencyStore;
  clock: Clock;
  /** `undefined` when nobody listens: events are then not even built. */
  emit: ((event: IdempotencyEvent) => void) | undefined;
  /** The record and the token that owns it. */
  id: string;
  token: string;
  path: string;
  ttlMs: number;
  lockTtlMs: number;
}

/** What the completed event reports once a result is stored. */
export interface Completion {
  outcome: 'ok' | 'error';
  durationMs: number;
}

type Settled = 'ok' | 'lost' | 'failed' | 'corrupt';

const delay = (clock: Clock, ms: number): Promise<void> => new Promise((resolve) => clock.setTimeout(resolve, ms));
const isCorrupt = (error: unknown): boolean => isIdempotencyError(error) && error.code === 'RECORD_CORRUPT';

/** A few quick attempts (the caller is waiting). complete and release are idempotent per token, so a reply lost
 * on the way back is simply retried. */
const withRetries = async (
  claim: Claim,
  operation: 'complete' | 'release',
  run: () => Promise<{ status: 'ok' | 'lost' }>,
): Promise<Settled> => {
  for (let attempt = 1; ; attempt++) {
    try {
      const outcome = await run();
      if (outcome.status === 'lost') claim.emit?.({ type: 'lease_lost', phase: operation, path: claim.path, keyHash: claim.id });
      return outcome.status;
    } catch (error) {
      claim.emit?.({ type: 'store_error', operation, error, failedOpen: false, path: claim.path, keyHash: claim.id });
      if (isCorrupt(error)) return 'corrupt';
      if (attempt >= DEFAULTS.completeAttempts) return 'failed';
      await delay(claim.clock, DEFAULTS.completeRetryDelayMs * 2 ** (attempt - 1));
    }
  }
};

const completeOnce = (claim: Claim, text: string) =>
  claim.store.complete({ id: claim.id, token: claim.token, result: text, ttlMs: claim.ttlMs });

const completed = (claim: Claim, text: string, done: Completion): void =>
  claim.emit?.({ type: 'completed', bytes: Buffer.byteLength(text), ...done, path: claim.path, keyHash: claim.id });

/**
 * The procedure ran but its result could not be stored yet. Giving the key up would let a retry run the
 * procedure again, so keep trying to store the result, until it is stored, until the store says another claim
 * owns the key (`lost`), or until `ttlMs`. The lease is renewed meanwhile for as long as that works: a store
 * outage shorter than the lease never lets a retry in. A longer one may (the lease ends), but a late complete is
 * still accepted while nobody has taken the key over, so retrying matters even then.
 */
const completeLater = async (claim: Claim, text: string, { lease, done }: { lease: Lease; done: Completion }): Promise<void> => {
  const { clock } = claim;
  const now = intervalTime(clock);
  const until = now() + claim.ttlMs;
  const maxDelayMs = Math.max(1, Math.floor(claim.lockTtlMs / 3));
  let delayMs = DEFAULTS.completeRetryDelayMs * 2 ** DEFAULTS.completeAttempts;
  try {
    while (now() < until) {
      await delay(clock, Math.min(delayMs, maxDelayMs));
      delayMs *= 2;
      try {
        const outcome = await completeOnce(claim, text);
        if (outcome.status === 'ok') completed(claim, text, done);
        else claim.emit?.({ type: 'lease_lost', phase: 'complete', path: claim.path, keyHash: claim.id });
        return;
      } catch (error) {
        claim.emit?.({ type: 'store_error', operation: 'complete', error, failedOpen: false, path: claim.path, keyHash: claim.id });
        if (isCorrupt(error)) return;
      }
    }
  } finally {
    lease.stop();
  }
};

/** Stores the claim's result. The lease stops here, or is kept by the background retry while storing fails. */
export const completeClaim = async (claim: Claim, text: string, { lease, done }: { lease: Lease; done: Completion }): Promise<void> => {
  const settled = await withRetries(claim, 'complete', () => completeOnce(claim, text));
  if (settled === 'ok') completed(claim, text, done);
  if (settled === 'failed') void completeLater(claim, text, { lease, done });
  else lease.stop();
};

/** Gives the key up without a result: the next call with it runs the procedure again. */
export const releaseClaim = async (claim: Claim, lease: Lease): Promise<void> => {
  lease.stop();
  await withRetries(claim, 'release', () => claim.store.release({ id: claim.id, token: claim.token }));
};
