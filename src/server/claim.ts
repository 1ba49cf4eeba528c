import type { Clock } from '../clock';
import type { DelayQueue } from '../delayQueue';
import type { IdempotencyStore } from '../store';
import type { IdempotencyEvent } from './events';

/** One claim, as the lease and the finishing steps need it. */
export interface Claim {
  store: IdempotencyStore;
  clock: Clock;
  /** `intervalTime(clock)`: leases and retry windows are intervals. */
  now: () => number;
  /** Where renewals wait: the shared queue for this clock and `lockTtlMs / 3` (see delayQueue). */
  renewals: DelayQueue;
  /** `undefined` when nobody listens: events are then not even built. */
  emit: ((event: IdempotencyEvent) => void) | undefined;
  /** The record and the token that owns it. */
  id: string;
  token: string;
  path: string;
  ttlMs: number;
  lockTtlMs: number;
}
