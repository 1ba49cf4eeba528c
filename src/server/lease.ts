import type { TimerHandle } from '../clock';
import { IdempotencyError } from '../errors';
import type { Claim } from './claim';

/**
 * A claim kept alive while its procedure runs; read it with `leaseSignal`, end it with `stopLease`. A record,
 * not an object of closures: one is made per fresh call, and a fast procedure ends it before any renewal.
 */
export interface Lease {
  readonly claim: Claim;
  readonly interval: number;
  /** The next renewal, as the queue's entry callback; made once per lease. */
  readonly tick: () => void;
  /** Made only if the procedure asks: Node makes every AbortSignal transferable, which costs more than the rest. */
  controller: AbortController | undefined;
  lostWith: IdempotencyError | undefined;
  /** The lease is known to last until then (`now()` time). */
  confirmedUntil: number;
  /** Cancels the next renewal; renewals share one timer per clock and interval (see delayQueue). */
  cancelRenewal: (() => void) | undefined;
  /** Fires when the last confirmed lease runs out: a renewal that never answers must not keep the owner in the dark. */
  expiry: TimerHandle | undefined;
  stopped: boolean;
}

/**
 * Keeps a claim alive while the procedure runs: renews every `lockTtlMs / 3`, so a fast procedure costs no
 * renewal at all. If renewal fails or never answers, it keeps trying until the lease would have run out, then
 * gives up, and says so with a `lease_lost` event. `claimedAt` is when the claim was sent, read with
 * `intervalTime(clock)`: the store's lease started no later than that, so it ends no later than that + lockTtlMs.
 */
export const holdLease = (claim: Claim, claimedAt: number): Lease => {
  const { lockTtlMs } = claim;
  const interval = renewInterval(lockTtlMs);
  const lease: Lease = {
    claim,
    interval,
    tick: () => void renew(lease),
    controller: undefined,
    lostWith: undefined,
    confirmedUntil: claimedAt + lockTtlMs,
    cancelRenewal: undefined,
    expiry: undefined,
    stopped: false,
  };
  schedule(lease);
  // A claim whose reply came late may have little lease left: watch its end before the first renewal.
  if (lease.confirmedUntil <= claim.now() + interval) armExpiry(lease);
  return lease;
};

/** How often a lease is renewed: every third of it. */
export const renewInterval = (lockTtlMs: number): number => Math.max(1, Math.floor(lockTtlMs / 3));

/** A signal that aborts when the lease is lost (the procedure should stop writing); made on first call. */
export const leaseSignal = (lease: Lease): AbortSignal => {
  if (!lease.controller) {
    lease.controller = new AbortController();
    if (lease.lostWith) lease.controller.abort(lease.lostWith);
  }
  return lease.controller.signal;
};

/** Ends the lease: no more renewals, no loss reported. */
export const stopLease = (lease: Lease): void => {
  lease.stopped = true;
  clearTimers(lease);
};

// ---- internal helpers ----

const clearTimers = (lease: Lease): void => {
  lease.cancelRenewal?.();
  if (lease.expiry !== undefined) lease.claim.clock.clearTimeout(lease.expiry);
};

const armExpiry = (lease: Lease): void => {
  const { clock } = lease.claim;
  if (lease.expiry !== undefined) clock.clearTimeout(lease.expiry);
  lease.expiry = clock.setTimeout(() => lose(lease, 'unreachable'), Math.max(0, lease.confirmedUntil - lease.claim.now()));
};

/**
 * The store refused a write of this owner because another owner has the key (e.g. a step): the lease ends as a
 * lost renewal would end it (its signal aborts). Returns the LEASE_LOST error to throw.
 */
export const leaseTakenOver = (lease: Lease): IdempotencyError => {
  abort(lease, 'taken over');
  return lease.lostWith as IdempotencyError;
};

const abort = (lease: Lease, reason: string, error?: unknown): void => {
  if (lease.lostWith) return;
  lease.stopped = true;
  clearTimers(lease);
  lease.lostWith = new IdempotencyError('LEASE_LOST', `the lease on this idempotency key was lost (${reason}); stop writing`, { cause: error });
  lease.controller?.abort(lease.lostWith);
};

const lose = (lease: Lease, reason: 'lost' | 'unreachable', error?: unknown): void => {
  if (lease.stopped) return;
  abort(lease, reason, error);
  const { emit, path, id } = lease.claim;
  emit?.({ type: 'lease_lost', phase: 'renew', path, keyHash: id });
};

const renew = async (lease: Lease): Promise<void> => {
  if (lease.stopped) return;
  const { store, id, token, lockTtlMs, emit, path } = lease.claim;
  const startedAt = lease.claim.now();
  // Armed only once a renewal is in flight: a fast procedure pays for no timer of its own.
  armExpiry(lease);
  try {
    const outcome = await store.renew({ id, token, lockTtlMs });
    if (lease.stopped) return;
    if (outcome.status === 'lost') return lose(lease, 'lost');
    lease.confirmedUntil = startedAt + lockTtlMs;
    armExpiry(lease);
  } catch (error) {
    if (lease.stopped) return;
    emit?.({ type: 'store_error', operation: 'renew', error, failedOpen: false, path, keyHash: id });
    if (lease.claim.now() + lease.interval >= lease.confirmedUntil) return lose(lease, 'unreachable', error);
  }
  schedule(lease);
};

const schedule = (lease: Lease): void => {
  if (!lease.stopped) lease.cancelRenewal = lease.claim.renewals.add(lease.tick);
};
