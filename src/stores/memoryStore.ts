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
  StepOutcome,
  StepRequest,
  WaitOutcome,
  WaitRequest,
} from '../store';
import { createIndexedHeap } from './indexedHeap';
import type { Partition, Rec } from './memoryRecords';
import { append, listOf, newPartition, recordBytes, stepBytesOf, unlink } from './memoryRecords';
import { NO_STEPS } from '../store';

/**
 * Bounds of the memory store. Records are kept per partition (the scope of the call, see
 * `ClaimRequest.partition`). When a claim or a result needs room:
 * 1. expired records go first, whoever they belong to;
 * 2. a partition over its own cap (`maxEntriesPerPartition`, `maxBytesPerPartition`) gives up its own records:
 *    crashed claims (lease over), then released records (no result), then its oldest completed records; with
 *    nothing of its own to give up (only live claims), the claim fails with QUOTA_EXCEEDED (429);
 * 3. when the whole store is full (`maxEntries`, `maxBytes`), records are taken from the partition that holds
 *    the largest share of the store, only if that is the claimant itself or a partition holding more than the
 *    claimant would hold with the new record (in a full store that is also more than its fair share: 1/N of the
 *    store, N = partitions holding records, the claimant included) and more than `reservedEntriesPerPartition`
 *    records. A partition at or under its reserve, or at or under its fair share, never loses a completed
 *    record to another partition's traffic; when nobody is over, the claimant
 *    may give up only its own crashed claims and released records, and otherwise fails with STORE_UNAVAILABLE
 *    (503, retryable). An in-progress claim with a live lease is never evicted.
 *
 * Every bound is checked against counters in O(1); making room costs O(log n) per record removed (indexed heaps
 * and per-partition lists, which hold nothing but the current records). Without `scope`, every call shares one
 * partition and the store behaves as one pool, oldest finished record first.
 */
export interface MemoryStoreOptions {
  /**
   * Records kept at most, across all partitions.
   * @default 10000
   */
  maxEntries?: number;
  /**
   * Bytes kept at most, across all partitions: each record counts 2 bytes per UTF-16 unit of its result, id,
   * token and fingerprint (the most V8 holds for a string) plus a fixed 512 bytes. Keep it well above the
   * middleware's `maxResultBytes`: a result that cannot fit is never stored (its key stays in progress).
   * @default 67108864 (64 MiB)
   */
  maxBytes?: number;
  /**
   * Records one partition keeps at most; past it, the partition evicts its own oldest finished records.
   * At most `maxEntries`.
   * @default maxEntries
   */
  maxEntriesPerPartition?: number;
  /**
   * Bytes one partition keeps at most, counted as for `maxBytes`; past it, the partition evicts its own oldest
   * finished records. At most `maxBytes`.
   * @default maxBytes
   */
  maxBytesPerPartition?: number;
  /**
   * In-progress claims one partition may hold at once; a claim past it fails with QUOTA_EXCEEDED (tRPC
   * TOO_MANY_REQUESTS, retryable). Keeps one scope's slow mutations from filling the store. At most
   * `maxEntriesPerPartition`.
   * @default 1000
   */
  maxRunningPerPartition?: number;
  /**
   * Records of one partition that another partition's traffic never evicts, whatever the shares: a partition
   * holding this many records or fewer loses them only to its own claims, to expiry, or to nothing. With scopes
   * a client can mint (one record each), the fair share of every partition shrinks as they multiply; this floor
   * keeps a caller's recent results safe even then, and a full store refuses newcomers (503) instead. At most
   * `maxEntriesPerPartition`; unless set, also at most an eighth of `maxEntries` (a small store still lets a
   * flooder's records go).
   * @default 16
   */
  reservedEntriesPerPartition?: number;
  /**
   * The store's time source. Inject a manual clock in tests.
   * @default systemClock
   */
  clock?: Clock;
}

const positiveInteger = (name: string, value: number): number => {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new IdempotencyError('INVALID_OPTION', `createMemoryStore: ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
};

/**
 * An in-process store: the zero-configuration default. It dedupes within one process only; use the Redis store
 * when several processes serve the same mutations.
 */
export const createMemoryStore = (options: MemoryStoreOptions = {}): IdempotencyStore => {
  const maxEntries = positiveInteger('maxEntries', options.maxEntries ?? DEFAULTS.maxEntries);
  const maxBytes = positiveInteger('maxBytes', options.maxBytes ?? DEFAULTS.maxBytes);
  const partEntries = Math.min(maxEntries, positiveInteger('maxEntriesPerPartition', options.maxEntriesPerPartition ?? maxEntries));
  const partBytes = Math.min(maxBytes, positiveInteger('maxBytesPerPartition', options.maxBytesPerPartition ?? maxBytes));
  const partRunning = Math.min(
    partEntries,
    positiveInteger('maxRunningPerPartition', options.maxRunningPerPartition ?? DEFAULTS.maxRunningPerPartition),
  );
  const reserved = Math.min(
    partEntries,
    options.reservedEntriesPerPartition === undefined
      ? Math.max(1, Math.min(DEFAULTS.reservedEntriesPerPartition, Math.floor(maxEntries / 8)))
      : positiveInteger('reservedEntriesPerPartition', options.reservedEntriesPerPartition),
  );
  const clock = options.clock ?? systemClock;

  const records = new Map<string, Rec>();
  const partitions = new Map<string, Partition>();
  const waiters = new Map<string, Set<() => void>>();
  let totalBytes = 0;

  /** Every record, soonest expiry first. */
  const expiry = createIndexedHeap<Rec>((a, b) => a.expiresAt < b.expiresAt, {
    get: (r) => r.expiryIndex,
    set: (r, i) => (r.expiryIndex = i),
  });
  /** Every in-progress record, the lease that ends first on top: crashed claims anyone may give up. */
  const leases = createIndexedHeap<Rec>((a, b) => a.leaseUntil < b.leaseUntil, {
    get: (r) => r.leaseIndex,
    set: (r, i) => (r.leaseIndex = i),
  });
  /** A partition's share of the store: the larger of its entry and byte shares (one number for two bounds). */
  const share = (p: Partition): number => Math.max(p.entries / maxEntries, p.bytes / maxBytes);
  /** Partitions holding records, largest share first. */
  const byShare = createIndexedHeap<Partition>((a, b) => share(a) > share(b), {
    get: (p) => p.heapIndex,
    set: (p, i) => (p.heapIndex = i),
  });

  const partitionOf = (id: string): Partition => {
    let p = partitions.get(id);
    if (!p) partitions.set(id, (p = newPartition(id)));
    return p;
  };
  /** Counts `entries` and `bytes` more (or less) against the record's partition and the store. */
  const account = (p: Partition, entries: number, bytes: number): void => {
    const wasEmpty = p.entries === 0;
    p.entries += entries;
    p.bytes += bytes;
    totalBytes += bytes;
    if (p.entries === 0) {
      byShare.remove(p);
      partitions.delete(p.id);
    } else if (wasEmpty) byShare.push(p);
    else byShare.update(p);
  };

  /** Removes a record from every structure at once: nothing keeps it (or its result) alive afterwards. */
  const drop = (r: Rec): void => {
    records.delete(r.id);
    expiry.remove(r);
    if (r.state === 'in_progress') {
      r.part.running.remove(r);
      leases.remove(r);
    } else unlink(listOf(r), r);
    account(r.part, -1, -r.bytes);
  };

  /** Adds an in-progress record to every structure (its partition looked up again: it may have emptied). */
  const insert = (r: Rec): void => {
    const p = partitionOf(r.part.id);
    r.part = p;
    records.set(r.id, r);
    expiry.push(r);
    p.running.push(r);
    leases.push(r);
    account(p, 1, r.bytes);
  };

  /** Puts back a record `drop` took out (a refused claim): in progress, or released with its steps. */
  const restore = (r: Rec): void => {
    if (r.state === 'in_progress') return insert(r);
    const p = partitionOf(r.part.id);
    r.part = p;
    records.set(r.id, r);
    expiry.push(r);
    append(listOf(r), r);
    account(p, 1, r.bytes);
  };

  /** Drops records whose time is over, soonest first, at most `limit` of them. */
  const sweep = (now: number, limit: number): void => {
    for (let top = expiry.peek(); top && top.expiresAt <= now && limit > 0; top = expiry.peek(), limit--) drop(top);
  };

  const live = (id: string, now: number): Rec | undefined => {
    const r = records.get(id);
    if (r && r.expiresAt <= now) {
      drop(r);
      return undefined;
    }
    return r;
  };

  /**
   * Gives up one record of `p` that costs nobody a second run, or, unless `harmlessOnly`, its oldest completed
   * record. Expired records are gone already (swept first). `self` (a record being completed) is never taken.
   */
  const reclaim = (p: Partition, now: number, { self, harmlessOnly }: { self: Rec | undefined; harmlessOnly: boolean }): boolean => {
    const crashed = p.running.peek();
    const victim =
      crashed && crashed !== self && crashed.leaseUntil <= now
        ? crashed
        : (p.released.head ?? (harmlessOnly ? undefined : p.completed.head));
    if (!victim) return false;
    drop(victim);
    return true;
  };

  /**
   * Makes room for `entries` more records and `bytes` more bytes in partition `p`, or throws. See
   * `MemoryStoreOptions` for the order.
   */
  const makeRoom = (p: Partition, need: { entries: number; bytes: number; self?: Rec }, now: number): void => {
    const partFits = (): boolean => p.entries + need.entries <= partEntries && p.bytes + need.bytes <= partBytes;
    const storeFits = (): boolean => records.size + need.entries <= maxEntries && totalBytes + need.bytes <= maxBytes;
    if (partFits() && storeFits()) return;
    if (need.bytes > partBytes) {
      throw new IdempotencyError(
        'STORE_UNAVAILABLE',
        `a record of ${need.bytes} bytes can never fit in the memory store (maxBytesPerPartition ${partBytes}); raise it above maxResultBytes`,
        { retryAfterMs: DEFAULTS.maxRetryAfterMs },
      );
    }
    sweep(now, Number.POSITIVE_INFINITY);
    while (!partFits()) {
      if (!reclaim(p, now, { self: need.self, harmlessOnly: false })) {
        throw new IdempotencyError(
          'QUOTA_EXCEEDED',
          `this caller's share of the memory store is full (${partEntries} records, ${partBytes} bytes) and every record in it is still in progress; retry later`,
          { retryAfterMs: retryHint(p, now) },
        );
      }
    }
    while (!storeFits()) {
      // A crashed claim (lease over) of any partition costs nobody a second run: anyone may take it over anyway.
      const crashed = leases.peek();
      if (crashed && crashed !== need.self && crashed.leaseUntil <= now) {
        drop(crashed);
        continue;
      }
      const largest = byShare.peek() as Partition;
      // A record is taken only from a partition that would still hold more than the claimant: with every holder
      // at its fair share, a newcomer is refused rather than take one. That partition is then also over its fair
      // share, 1/N of the store among the N partitions holding records, the claimant counted: the store does not
      // fit, so on the bound it overflows 1 < (others' shares, each <= largest's) + claimantAfter < N x largest's.
      // (So no separate 1/N test: measured by mutation, it never changed an outcome, by entries or by bytes.)
      const claimantAfter = Math.max((p.entries + need.entries) / maxEntries, (p.bytes + need.bytes) / maxBytes);
      // A partition at or under its reserve never loses a record to another partition, however many there are.
      const flooding = largest === p || (largest.entries > reserved && share(largest) > claimantAfter + 1e-9);
      if (flooding && reclaim(largest, now, { self: need.self, harmlessOnly: false })) continue;
      if (reclaim(p, now, { self: need.self, harmlessOnly: true })) continue;
      throw new IdempotencyError(
        'STORE_UNAVAILABLE',
        `memory store is full (${maxEntries} records, ${maxBytes} bytes) and no record may be evicted for this caller (raise maxEntries or maxBytes)`,
        { retryAfterMs: DEFAULTS.maxRetryAfterMs },
      );
    }
  };

  /** When the partition's oldest live lease ends, within the usual retry hint. */
  const retryHint = (p: Partition, now: number): number =>
    Math.min(DEFAULTS.maxRetryAfterMs, Math.max(1, (p.running.peek()?.leaseUntil ?? now) - now));

  const notify = (id: string): void => {
    const set = waiters.get(id);
    if (!set) return;
    waiters.delete(id);
    for (const wake of set) wake();
  };

  /** Fences grow per claim and with the clock, so a record that expired or was evicted never restarts lower. */
  const nextFence = (previous: number | undefined, now: number): number => Math.max((previous ?? 0) + 1, now * 1000);

  const owned = (id: string, token: string, now: number): Rec | undefined => {
    const r = live(id, now);
    return r && r.token === token ? r : undefined;
  };

  /** Turns an in-progress record into a finished one, in place, counting its new size. */
  const finish = (r: Rec, { state, result, expiresAt }: { state: 'completed' | 'released'; result: string; expiresAt: number }): void => {
    r.part.running.remove(r);
    leases.remove(r);
    if (state === 'completed') {
      // The final result is all a retry needs: the steps go.
      r.steps = undefined;
      r.stepBytes = 0;
      r.keepUntil = 0;
    }
    const bytes = recordBytes(r, result);
    account(r.part, 0, bytes - r.bytes);
    r.bytes = bytes;
    r.state = state;
    r.result = result;
    r.expiresAt = Math.max(expiresAt, r.keepUntil);
    expiry.update(r);
    append(listOf(r), r);
    notify(r.id);
  };

  return {
    async claim({ id, partition, token, fingerprint, lockTtlMs }: ClaimRequest): Promise<ClaimOutcome> {
      const now = clock.now();
      // Two due records per claim clear expired records at least as fast as claims add new ones, so a store that
      // is never full still lets go of them (and of their results) soon after they expire.
      sweep(now, 2);
      const r = live(id, now);
      // A released record without steps behaves as absent; with steps it is resumed, by the same input only.
      if (r?.state === 'completed' || r?.state === 'in_progress' || r?.steps) {
        if (r.fingerprint !== '' && fingerprint !== '' && r.fingerprint !== fingerprint) return { status: 'mismatch' };
        if (r.state === 'completed') return { status: 'completed', result: r.result };
        if (r.state === 'in_progress' && r.leaseUntil > now) return { status: 'in_progress', retryAfterMs: Math.max(1, r.leaseUntil - now) };
      }
      // A new owner for a free id (absent, released, or a lease that ran out). The record is made anew in the
      // claimant's partition: the old one goes first, so its room counts for the new one, and comes back if the
      // claim is refused (a crashed claim must still read as a takeover next time).
      const fence = nextFence(r?.fence, now);
      const takeover = r?.state === 'in_progress';
      if (r) drop(r);
      const p = partitionOf(partition);
      // Steps outlive their owners: the new record carries them, and their retention.
      const steps = r?.steps;
      const stepBytes = r?.stepBytes ?? 0;
      const keepUntil = r?.keepUntil ?? 0;
      const bytes = recordBytes({ id, token, fingerprint, stepBytes }, '');
      try {
        if (p.running.size >= partRunning) {
          const oldest = p.running.peek() as Rec;
          if (oldest.leaseUntil > now) {
            throw new IdempotencyError(
              'QUOTA_EXCEEDED',
              `this caller already has ${partRunning} idempotent calls in progress (maxRunningPerPartition); retry when one has finished`,
              { retryAfterMs: retryHint(p, now) },
            );
          }
          drop(oldest); // a crashed claim: anyone could take it over already
        }
        makeRoom(p, { entries: 1, bytes }, now);
      } catch (error) {
        if (p.entries === 0) partitions.delete(p.id);
        if (r && (r.state === 'in_progress' || r.steps)) restore(r);
        throw error;
      }
      insert({
        id,
        part: p,
        state: 'in_progress',
        token,
        fingerprint,
        fence,
        leaseUntil: now + lockTtlMs,
        expiresAt: Math.max(now + lockTtlMs + DEFAULTS.leaseGraceMs, keepUntil),
        result: '',
        steps,
        stepBytes,
        keepUntil,
        bytes,
        expiryIndex: -1,
        runningIndex: -1,
        leaseIndex: -1,
        prev: undefined,
        next: undefined,
      });
      return { status: 'acquired', fence, takeover, steps: steps ?? NO_STEPS };
    },

    async renew({ id, token, lockTtlMs }: RenewRequest): Promise<LeaseOutcome> {
      const now = clock.now();
      const r = owned(id, token, now);
      if (r?.state !== 'in_progress' || r.leaseUntil <= now) return { status: 'lost' };
      r.leaseUntil = now + lockTtlMs;
      r.part.running.update(r);
      leases.update(r);
      // The record must outlive the renewed lease, or it would expire under a live owner and its key run again.
      r.expiresAt = Math.max(r.expiresAt, now + lockTtlMs + DEFAULTS.leaseGraceMs);
      expiry.update(r);
      return { status: 'ok' };
    },

    async complete({ id, token, result, ttlMs }: CompleteRequest): Promise<LeaseOutcome> {
      const now = clock.now();
      const r = owned(id, token, now);
      if (r?.state === 'completed') return { status: 'ok' };
      if (r?.state !== 'in_progress') return { status: 'lost' };
      // May throw when the result does not fit: the record then stays in progress (never released), and the
      // middleware keeps trying to store it.
      makeRoom(r.part, { entries: 0, bytes: recordBytes(r, result) - r.bytes, self: r }, now);
      finish(r, { state: 'completed', result, expiresAt: now + ttlMs });
      return { status: 'ok' };
    },

    async release({ id, token }: LeaseRequest): Promise<LeaseOutcome> {
      const now = clock.now();
      const r = owned(id, token, now);
      if (r?.state === 'released') return { status: 'ok' };
      if (r?.state !== 'in_progress') return { status: 'lost' };
      finish(r, { state: 'released', result: '', expiresAt: now + DEFAULTS.releasedTtlMs });
      return { status: 'ok' };
    },

    async recordStep({ id, token, name, text, keepMs }: StepRequest): Promise<StepOutcome> {
      const now = clock.now();
      const r = owned(id, token, now);
      if (r?.state !== 'in_progress') return { status: 'lost' };
      const recorded = r.steps?.get(name);
      if (recorded !== undefined) return { status: 'exists', text: recorded };
      const added = stepBytesOf(name, text);
      // May throw (QUOTA_EXCEEDED, STORE_UNAVAILABLE) when the step does not fit: nothing is recorded.
      makeRoom(r.part, { entries: 0, bytes: added, self: r }, now);
      (r.steps ??= new Map()).set(name, text);
      r.stepBytes += added;
      r.bytes += added;
      account(r.part, 0, added);
      r.keepUntil = Math.max(r.keepUntil, now + keepMs);
      r.expiresAt = Math.max(r.expiresAt, r.keepUntil);
      expiry.update(r);
      return { status: 'ok' };
    },

    wait({ id, timeoutMs, signal }: WaitRequest): Promise<WaitOutcome> {
      const now = clock.now();
      const r = live(id, now);
      if (r?.state !== 'in_progress' || r.leaseUntil <= now) return Promise.resolve({ status: 'settled' });
      if (signal?.aborted) return Promise.resolve({ status: 'timeout' });
      return new Promise<WaitOutcome>((resolve) => {
        const timers: TimerHandle[] = [];
        const settle = (outcome: WaitOutcome): void => {
          for (const timer of timers) clock.clearTimeout(timer);
          waiters.get(id)?.delete(wake);
          signal?.removeEventListener('abort', onAbort);
          resolve(outcome);
        };
        const wake = (): void => settle({ status: 'settled' });
        const onAbort = (): void => settle({ status: 'timeout' });
        let set = waiters.get(id);
        if (!set) waiters.set(id, (set = new Set()));
        set.add(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
        const untilLease = r.leaseUntil - now;
        if (untilLease <= timeoutMs) {
          // The lease may be renewed meanwhile: then this just wakes the waiter, whose next claim says in_progress.
          timers.push(clock.setTimeout(wake, untilLease));
        } else {
          timers.push(clock.setTimeout(() => settle({ status: 'timeout' }), timeoutMs));
        }
      });
    },
  };
};
