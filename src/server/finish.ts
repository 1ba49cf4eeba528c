import type { Clock } from '../clock';
import { DEFAULTS } from '../constants';
import { isIdempotencyError } from '../errors';
import type { Claim } from './claim';
import type { Lease } from './lease';
import { stopLease } from './lease';

/** A result to store, and what the completed event reports once it is stored. */
export interface Completion {
  /** The encoded result (see storedResult). */
  text: string;
  outcome: 'ok' | 'error';
  durationMs: number;
}

/**
 * How storing a result ended: `ok` stored (the key replays it), `lost` another claim owns the key (it will replay
 * that owner's result, not this one), `failed` not stored yet (a background retry goes on), `corrupt` never.
 */
export type Settled = 'ok' | 'lost' | 'failed' | 'corrupt';

const delay = (clock: Clock, ms: number): Promise<void> => new Promise((resolve) => clock.setTimeout(resolve, ms));
const isCorrupt = (error: unknown): boolean => isIdempotencyError(error) && error.code === 'RECORD_CORRUPT';

/** One attempt at storing the result (`text`) or at giving the key up (`text` undefined). */
const attempt = (claim: Claim, text: string | undefined): Promise<{ status: 'ok' | 'lost' }> =>
  text === undefined
    ? claim.store.release({ id: claim.id, token: claim.token })
    : claim.store.complete({ id: claim.id, token: claim.token, result: text, ttlMs: claim.ttlMs });

/** A few quick attempts (the caller is waiting). complete and release are idempotent per token, so a reply lost
 * on the way back is simply retried. */
const withRetries = async (claim: Claim, text: string | undefined): Promise<Settled> => {
  const operation = text === undefined ? 'release' : 'complete';
  for (let tries = 1; ; tries++) {
    try {
      const outcome = await attempt(claim, text);
      if (outcome.status === 'lost') claim.emit?.({ type: 'lease_lost', phase: operation, path: claim.path, keyHash: claim.id });
      return outcome.status;
    } catch (error) {
      claim.emit?.({ type: 'store_error', operation, error, failedOpen: false, path: claim.path, keyHash: claim.id });
      if (isCorrupt(error)) return 'corrupt';
      if (tries >= DEFAULTS.completeAttempts) return 'failed';
      await delay(claim.clock, DEFAULTS.completeRetryDelayMs * 2 ** (tries - 1));
    }
  }
};

const completed = (claim: Claim, { text, outcome, durationMs }: Completion): void =>
  claim.emit?.({ type: 'completed', bytes: Buffer.byteLength(text), outcome, durationMs, path: claim.path, keyHash: claim.id });

/**
 * The procedure ran but its result could not be stored yet. Giving the key up would let a retry run the
 * procedure again, so keep trying to store the result, until it is stored, until the store says another claim
 * owns the key (`lost`), or until `ttlMs`. The lease is renewed meanwhile for as long as that works: a store
 * outage shorter than the lease never lets a retry in. A longer one may (the lease ends), but a late complete is
 * still accepted while nobody has taken the key over, so retrying matters even then.
 */
const completeLater = async (claim: Claim, lease: Lease, done: Completion): Promise<void> => {
  const { clock, now } = claim;
  const until = now() + claim.ttlMs;
  const maxDelayMs = Math.max(1, Math.floor(claim.lockTtlMs / 3));
  let delayMs = DEFAULTS.completeRetryDelayMs * 2 ** DEFAULTS.completeAttempts;
  try {
    while (now() < until) {
      await delay(clock, Math.min(delayMs, maxDelayMs));
      delayMs *= 2;
      try {
        const outcome = await attempt(claim, done.text);
        if (outcome.status === 'ok') completed(claim, done);
        else claim.emit?.({ type: 'lease_lost', phase: 'complete', path: claim.path, keyHash: claim.id });
        return;
      } catch (error) {
        claim.emit?.({ type: 'store_error', operation: 'complete', error, failedOpen: false, path: claim.path, keyHash: claim.id });
        if (isCorrupt(error)) return;
      }
    }
  } finally {
    stopLease(lease);
  }
};

/**
 * Stores the claim's result and says how that ended: only `ok` lets the caller see the result as executed (see
 * execute). The lease stops here, or is kept by the background retry while storing fails.
 */
export const completeClaim = async (claim: Claim, lease: Lease, done: Completion): Promise<Settled> => {
  const settled = await withRetries(claim, done.text);
  if (settled === 'ok') completed(claim, done);
  if (settled === 'failed') void completeLater(claim, lease, done);
  else stopLease(lease);
  return settled;
};

/** Gives the key up without a result: the next call with it runs the procedure again. Ends the lease, if one was held. */
export const releaseClaim = async (claim: Claim, lease: Lease | undefined): Promise<void> => {
  if (lease) stopLease(lease);
  await withRetries(claim, undefined);
};
