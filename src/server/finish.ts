import type { Clock } from '../clock';
import { DEFAULTS } from '../constants';
import { isIdempotencyError } from '../errors';
import type { IdempotencyStore } from '../store';
import type { IdempotencyEvent } from './events';
import type { Lease } from './lease';

export interface FinishOptions {
  store: IdempotencyStore;
  clock: Clock;
  emit: (event: IdempotencyEvent) => void;
  /** The record and the claim that owns it. */
  id: string;
  token: string;
  path: string;
  ttlMs: number;
  lockTtlMs: number;
}

export type Settled = 'ok' | 'lost' | 'failed' | 'corrupt';

/** What the completed event reports once a result is stored. */
export interface Completion {
  outcome: 'ok' | 'error';
  durationMs: number;
}

/**
 * Ends one claim: stores its result (complete) or gives the key up (release). Both are idempotent per token, so
 * a reply lost on the way back is simply retried.
 */
export const createFinisher = (options: FinishOptions) => {
  const { store, clock, emit, id, token, path } = options;
  const base = { path, keyHash: id };
  const delay = (ms: number): Promise<void> => new Promise((resolve) => clock.setTimeout(resolve, ms));

  /** A few quick attempts; the caller is waiting. */
  const withRetries = async (operation: 'complete' | 'release', run: () => Promise<{ status: 'ok' | 'lost' }>): Promise<Settled> => {
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

  const completeOnce = (text: string) => store.complete({ id, token, result: text, ttlMs: options.ttlMs });
  const completed = (text: string, done: Completion): void =>
    emit({ type: 'completed', bytes: Buffer.byteLength(text), ...done, ...base });

  /**
   * The procedure ran but its result could not be stored yet. Giving the key up now would let a retry run the
   * procedure again, so keep the lease alive and keep trying to store the result for as long as the lease can
   * be held (at most `ttlMs`). A store outage shorter than the lease therefore never causes a second run.
   */
  const completeLater = async (text: string, lease: Lease, done: Completion): Promise<void> => {
    const until = clock.now() + options.ttlMs;
    const maxDelayMs = Math.max(1, Math.floor(options.lockTtlMs / 3));
    let delayMs = DEFAULTS.completeRetryDelayMs * 2 ** DEFAULTS.completeAttempts;
    try {
      while (!lease.signal.aborted && clock.now() < until) {
        await delay(Math.min(delayMs, maxDelayMs));
        delayMs *= 2;
        if (lease.signal.aborted) return;
        try {
          const outcome = await completeOnce(text);
          if (outcome.status === 'ok') completed(text, done);
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
  };

  return {
    /** Stores the result; the lease is stopped here, or kept by `completeLater` while storing is retried. */
    complete: async (text: string, lease: Lease, done: Completion): Promise<void> => {
      const settled = await withRetries('complete', () => completeOnce(text));
      if (settled === 'ok') completed(text, done);
      if (settled === 'failed' && !lease.signal.aborted) void completeLater(text, lease, done);
      else lease.stop();
    },
    release: async (lease: Lease): Promise<void> => {
      lease.stop();
      await withRetries('release', () => store.release({ id, token }));
    },
  };
};
