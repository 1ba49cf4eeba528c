import type { Clock, TimerHandle } from '../clock';
import { systemClock } from '../clock';
import { DEFAULTS } from '../constants';
import { IdempotencyError } from '../errors';
import type {
  ClaimOutcome,
  ClaimRequest,
  CompleteRequest,
  IdempotencyStore,
  LeaseOutcome,
  LeaseRequest,
  RenewRequest,
  WaitOutcome,
  WaitRequest,
} from '../store';

export interface MemoryStoreOptions {
  /**
   * Records kept at most. When full, expired records go first, then the oldest completed or released ones; an
   * in-progress claim is never evicted (a claim that finds only live claims fails with STORE_UNAVAILABLE).
   * @default 10000
   */
  maxEntries?: number;
  /**
   * The store's time source. Inject a manual clock in tests.
   * @default systemClock
   */
  clock?: Clock;
}

type Entry =
  | { state: 'in_progress'; token: string; fingerprint: string; fence: number; leaseUntil: number; expiresAt: number }
  | { state: 'completed'; token: string; fingerprint: string; fence: number; result: string; expiresAt: number }
  | { state: 'released'; token: string; fence: number; expiresAt: number };

/**
 * An in-process store: the zero-configuration default. It dedupes within one process only; use the Redis store
 * when several processes serve the same mutations.
 */
export const createMemoryStore = (options: MemoryStoreOptions = {}): IdempotencyStore => {
  const maxEntries = options.maxEntries ?? DEFAULTS.maxEntries;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new IdempotencyError('INVALID_OPTION', `createMemoryStore: maxEntries must be a positive integer, got ${String(maxEntries)}`);
  }
  const clock = options.clock ?? systemClock;
  const entries = new Map<string, Entry>();
  const waiters = new Map<string, Set<() => void>>();

  const live = (id: string, now: number): Entry | undefined => {
    const entry = entries.get(id);
    if (entry && entry.expiresAt <= now) {
      entries.delete(id);
      return undefined;
    }
    return entry;
  };

  const notify = (id: string): void => {
    const set = waiters.get(id);
    if (!set) return;
    waiters.delete(id);
    for (const wake of set) wake();
  };

  // No entry expires before this: a lower bound (expiry times only grow, deletions keep it valid), made exact by
  // each sweep. A full store therefore sweeps for expired records only when one can exist, instead of scanning
  // all maxEntries records on every new claim.
  let earliestExpiry = Number.POSITIVE_INFINITY;
  const put = (id: string, entry: Entry): void => {
    entries.set(id, entry);
    if (entry.expiresAt < earliestExpiry) earliestExpiry = entry.expiresAt;
  };

  /**
   * Finished records (completed or released) in the order they finished, oldest first. An item whose id now
   * holds another record (claimed again, finished again, evicted) is stale and skipped: only the very record
   * that was queued can be evicted by its item.
   */
  let finished: { id: string; entry: Entry }[] = [];
  let head = 0;
  const isCurrent = (item: { id: string; entry: Entry }): boolean => entries.get(item.id) === item.entry;
  const compactFinished = (): void => {
    if (head > 1024 && head * 2 > finished.length) {
      finished = finished.slice(head);
      head = 0;
    } else if (finished.length - head > maxEntries * 2) {
      finished = finished.slice(head).filter(isCurrent);
      head = 0;
    }
  };
  const markFinished = (id: string, entry: Entry): void => {
    finished.push({ id, entry });
    if (finished.length - head > maxEntries * 2) compactFinished();
  };

  const makeRoom = (now: number): void => {
    if (entries.size < maxEntries) return;
    if (earliestExpiry <= now) {
      earliestExpiry = Number.POSITIVE_INFINITY;
      for (const [id, entry] of entries) {
        if (entry.expiresAt <= now) entries.delete(id);
        else if (entry.expiresAt < earliestExpiry) earliestExpiry = entry.expiresAt;
      }
    }
    // Oldest finished first, from the queue: iterating the Map from its start would skip over every slot
    // deleted since its last rehash, O(maxEntries) per claim in a store that stays full.
    while (entries.size >= maxEntries && head < finished.length) {
      const item = finished[head++] as { id: string; entry: Entry };
      if (isCurrent(item)) entries.delete(item.id);
    }
    compactFinished();
    if (entries.size >= maxEntries) {
      // Only running claims left: expired leases may go (rare, so a scan is fine).
      for (const [id, entry] of entries) {
        if (entries.size < maxEntries) return;
        if (entry.state === 'in_progress' && entry.leaseUntil <= now) entries.delete(id);
      }
    }
    if (entries.size >= maxEntries) {
      throw new IdempotencyError(
        'STORE_UNAVAILABLE',
        `memory store is full: ${maxEntries} keys are in progress (raise maxEntries)`,
      );
    }
  };

  const nextFence = (previous: number | undefined, now: number): number =>
    Math.max((previous ?? 0) + 1, now * 1000);

  const owned = (id: string, token: string, now: number): Entry | undefined => {
    const entry = live(id, now);
    return entry && entry.token === token ? entry : undefined;
  };

  return {
    async claim({ id, token, fingerprint, lockTtlMs }: ClaimRequest): Promise<ClaimOutcome> {
      const now = clock.now();
      const entry = live(id, now);
      if (entry?.state === 'completed' || entry?.state === 'in_progress') {
        if (entry.fingerprint !== '' && fingerprint !== '' && entry.fingerprint !== fingerprint) {
          return { status: 'mismatch' };
        }
        if (entry.state === 'completed') return { status: 'completed', result: entry.result };
        if (entry.leaseUntil > now) return { status: 'in_progress', retryAfterMs: Math.max(1, entry.leaseUntil - now) };
      }
      if (!entry) makeRoom(now);
      const fence = nextFence(entry?.fence, now);
      put(id, {
        state: 'in_progress',
        token,
        fingerprint,
        fence,
        leaseUntil: now + lockTtlMs,
        expiresAt: now + lockTtlMs + DEFAULTS.leaseGraceMs,
      });
      return { status: 'acquired', fence, takeover: entry?.state === 'in_progress' };
    },

    async renew({ id, token, lockTtlMs }: RenewRequest): Promise<LeaseOutcome> {
      const now = clock.now();
      const entry = owned(id, token, now);
      if (entry?.state !== 'in_progress' || entry.leaseUntil <= now) return { status: 'lost' };
      entry.leaseUntil = now + lockTtlMs;
      entry.expiresAt = Math.max(entry.expiresAt, now + lockTtlMs + DEFAULTS.leaseGraceMs);
      return { status: 'ok' };
    },

    async complete({ id, token, result, ttlMs }: CompleteRequest): Promise<LeaseOutcome> {
      const now = clock.now();
      const entry = owned(id, token, now);
      if (entry?.state === 'completed') return { status: 'ok' };
      if (entry?.state !== 'in_progress') return { status: 'lost' };
      const done: Entry = { state: 'completed', token, fingerprint: entry.fingerprint, fence: entry.fence, result, expiresAt: now + ttlMs };
      put(id, done);
      markFinished(id, done);
      notify(id);
      return { status: 'ok' };
    },

    async release({ id, token }: LeaseRequest): Promise<LeaseOutcome> {
      const now = clock.now();
      const entry = owned(id, token, now);
      if (entry?.state === 'released') return { status: 'ok' };
      if (entry?.state !== 'in_progress') return { status: 'lost' };
      const released: Entry = { state: 'released', token, fence: entry.fence, expiresAt: now + DEFAULTS.releasedTtlMs };
      put(id, released);
      markFinished(id, released);
      notify(id);
      return { status: 'ok' };
    },

    wait({ id, timeoutMs, signal }: WaitRequest): Promise<WaitOutcome> {
      const now = clock.now();
      const entry = live(id, now);
      if (entry?.state !== 'in_progress' || entry.leaseUntil <= now) return Promise.resolve({ status: 'settled' });
      if (signal?.aborted) return Promise.resolve({ status: 'timeout' });
      return new Promise<WaitOutcome>((resolve) => {
        const timers: TimerHandle[] = [];
        const finish = (outcome: WaitOutcome): void => {
          for (const timer of timers) clock.clearTimeout(timer);
          waiters.get(id)?.delete(wake);
          signal?.removeEventListener('abort', onAbort);
          resolve(outcome);
        };
        const wake = (): void => finish({ status: 'settled' });
        const onAbort = (): void => finish({ status: 'timeout' });
        let set = waiters.get(id);
        if (!set) waiters.set(id, (set = new Set()));
        set.add(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
        const untilLease = entry.leaseUntil - now;
        if (untilLease <= timeoutMs) {
          // The lease may be renewed meanwhile: then this just wakes the waiter, whose next claim says in_progress.
          timers.push(clock.setTimeout(wake, untilLease));
        } else {
          timers.push(clock.setTimeout(() => finish({ status: 'timeout' }), timeoutMs));
        }
      });
    },
  };
};
