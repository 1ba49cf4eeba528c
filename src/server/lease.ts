import type { Clock, TimerHandle } from '../clock';
import { intervalTime } from '../clock';
import { delayQueue } from '../delayQueue';
import { IdempotencyError } from '../errors';
import type { IdempotencyStore } from '../store';

export interface LeaseOptions {
  store: IdempotencyStore;
  clock: Clock;
  id: string;
  token: string;
  lockTtlMs: number;
  /**
   * When the claim was sent, read with `intervalTime(clock)`: the store's lease started no later than this, so it
   * ends no later than this + lockTtlMs.
   */
  claimedAt: number;
  /** Called once when the lease is gone (renew said lost, or the store stayed unreachable past the lease). */
  onLost: (reason: 'lost' | 'unreachable', error?: unknown) => void;
  onRenewError: (error: unknown) => void;
}

export interface Lease {
  /** A signal that aborts when the lease is lost (the procedure should stop writing); made on first call. */
  signal(): AbortSignal;
  stop(): void;
}

/**
 * Keeps a claim alive while the procedure runs: renews every `lockTtlMs / 3`, so a fast procedure costs no
 * renewal at all. If renewal fails or never answers, it keeps trying until the lease would have run out, then gives up.
 */
export const holdLease = (options: LeaseOptions): Lease => {
  const { store, clock, id, token, lockTtlMs } = options;
  const now = intervalTime(clock);
  // Made only if the procedure asks: Node makes every AbortSignal transferable, which costs more than the rest
  // of the lease put together.
  let controller: AbortController | undefined;
  let lostWith: IdempotencyError | undefined;
  const interval = Math.max(1, Math.floor(lockTtlMs / 3));
  let confirmedUntil = options.claimedAt + lockTtlMs;
  const renewals = delayQueue(clock, interval);
  /** Cancels the next renewal; renewals share one timer per clock and interval (see delayQueue). */
  let cancelRenewal: (() => void) | undefined;
  /** Fires when the last confirmed lease runs out: a renewal that never answers must not keep the owner in the dark. */
  let expiry: TimerHandle | undefined;
  let stopped = false;

  const clearTimers = (): void => {
    cancelRenewal?.();
    if (expiry !== undefined) clock.clearTimeout(expiry);
  };
  const armExpiry = (): void => {
    if (expiry !== undefined) clock.clearTimeout(expiry);
    expiry = clock.setTimeout(() => lose('unreachable'), Math.max(0, confirmedUntil - now()));
  };

  const lose = (reason: 'lost' | 'unreachable', error?: unknown): void => {
    if (stopped) return;
    stopped = true;
    clearTimers();
    lostWith = new IdempotencyError('LEASE_LOST', `the lease on this idempotency key was lost (${reason}); stop writing`, { cause: error });
    controller?.abort(lostWith);
    options.onLost(reason, error);
  };

  const tick = async (): Promise<void> => {
    if (stopped) return;
    const startedAt = now();
    // Armed only once a renewal is in flight: a fast procedure pays for no timer of its own.
    armExpiry();
    try {
      const outcome = await store.renew({ id, token, lockTtlMs });
      if (stopped) return;
      if (outcome.status === 'lost') return lose('lost');
      confirmedUntil = startedAt + lockTtlMs;
      armExpiry();
    } catch (error) {
      if (stopped) return;
      options.onRenewError(error);
      if (now() + interval >= confirmedUntil) return lose('unreachable', error);
    }
    schedule();
  };

  const schedule = (): void => {
    if (!stopped) cancelRenewal = renewals.add(() => void tick());
  };

  schedule();
  // A claim whose reply came late may have little lease left: watch its end before the first renewal.
  if (confirmedUntil <= now() + interval) armExpiry();
  return {
    signal: () => {
      if (!controller) {
        controller = new AbortController();
        if (lostWith) controller.abort(lostWith);
      }
      return controller.signal;
    },
    stop: () => {
      stopped = true;
      clearTimers();
    },
  };
};
