import type { Clock } from '../clock';
import { intervalTime, systemClock } from '../clock';
import { DEFAULTS } from '../constants';
import { IdempotencyError } from '../errors';
import type { ClaimOutcome, ClaimRequest, CompleteRequest, IdempotencyStore, LeaseOutcome, LeaseRequest } from '../store';

/**
 * Bounds of the per-process cache of completed records (`localCache` in `createIdempotency`). Entries go least
 * recently used first; an evicted entry only costs its next replay a store round trip, never a record.
 */
export interface LocalCacheOptions {
  /**
   * Completed records kept at most.
   * @default 1000
   */
  maxEntries?: number;
  /**
   * Bytes kept at most: each entry counts 2 bytes per UTF-16 unit of its id, result and fingerprint plus a fixed
   * 128 bytes. A result larger than this is never cached.
   * @default 8388608 (8 MiB)
   */
  maxBytes?: number;
}

/**
 * A store in front of `inner` that answers the claim of a completed record from this process' memory: a
 * replay then costs no store round trip. A completed record never changes until it expires, so the answer is
 * the store's own, with two limits:
 * - an entry is kept no longer than its record: a record this process completed, for `ttlMs` from the moment
 *   `complete` was first sent (the store set its expiry later than that); a record learnt from a claim, for the
 *   time left the store reported (`expiresInMs`, read when the claim was sent), and not at all when the store
 *   does not report it;
 * - a record deleted by hand (or evicted by Redis under memory pressure) is still replayed from the cache until
 *   its entry would have expired.
 * Fingerprints are checked as the store would: a record this process completed answers `mismatch` itself; a record
 * learnt from a claim only knows the fingerprint it was claimed with, so another fingerprint asks the store.
 * Every other call goes to `inner` unchanged.
 */
export const withLocalCache = (
  inner: IdempotencyStore,
  options: LocalCacheOptions & { clock?: Clock } = {},
): IdempotencyStore => {
  const maxEntries = positiveInteger('maxEntries', options.maxEntries ?? DEFAULTS.localCacheLimits.maxEntries);
  const maxBytes = positiveInteger('maxBytes', options.maxBytes ?? DEFAULTS.localCacheLimits.maxBytes);
  const now = intervalTime(options.clock ?? systemClock);

  /** Completed records, least recently used first (a Map keeps insertion order; a hit re-inserts). */
  const entries = new Map<string, Entry>();
  let bytes = 0;
  /** Claims this process acquired and has not finished: the fingerprint their record holds. */
  const pending = new Map<string, Pending>();

  const drop = (id: string, entry: Entry): void => {
    entries.delete(id);
    bytes -= entry.bytes;
  };

  const put = (id: string, result: string, { fingerprint, exact, expiresAt }: Omit<Entry, 'outcome' | 'bytes'>): void => {
    const old = entries.get(id);
    if (old) drop(id, old);
    const size = ENTRY_OVERHEAD + 2 * (id.length + result.length + fingerprint.length);
    if (size > maxBytes || expiresAt <= now()) return;
    const outcome: ClaimOutcome = Object.freeze({ status: 'completed', result });
    entries.set(id, { outcome, fingerprint, exact, expiresAt, bytes: size });
    bytes += size;
    for (const [oldest, entry] of entries) {
      if (entries.size <= maxEntries && bytes <= maxBytes) break;
      drop(oldest, entry);
    }
  };

  /** The cached answer for `request`, or `undefined` when only the store can tell. */
  const lookup = (request: ClaimRequest, at: number): ClaimOutcome | undefined => {
    const entry = entries.get(request.id);
    if (!entry) return undefined;
    if (entry.expiresAt <= at) {
      drop(request.id, entry);
      return undefined;
    }
    const asked = request.fingerprint;
    let answer: ClaimOutcome | undefined;
    if (asked === '' || asked === entry.fingerprint) answer = entry.outcome;
    else if (entry.exact) answer = entry.fingerprint === '' ? entry.outcome : MISMATCH;
    if (answer) {
      // Most recently used: to the end of the Map's order.
      entries.delete(request.id);
      entries.set(request.id, entry);
    }
    return answer;
  };

  const learn = (request: ClaimRequest, sentAt: number, outcome: ClaimOutcome): ClaimOutcome => {
    const { id } = request;
    if (outcome.status === 'completed') {
      if (outcome.expiresInMs !== undefined) {
        put(id, outcome.result, { fingerprint: request.fingerprint, exact: false, expiresAt: sentAt + outcome.expiresInMs });
      }
      return outcome;
    }
    if (outcome.status === 'mismatch') return outcome;
    // The record is not (or no longer) completed: it was deleted, or expired early.
    const stale = entries.get(id);
    if (stale) drop(id, stale);
    if (outcome.status === 'acquired') {
      pending.delete(id);
      pending.set(id, { token: request.token, fingerprint: request.fingerprint, completeSentAt: undefined });
      if (pending.size > maxEntries) pending.delete(pending.keys().next().value as string);
    }
    return outcome;
  };

  const finished = (request: LeaseRequest, own: Pending | undefined): void => {
    if (own && pending.get(request.id) === own) pending.delete(request.id);
  };

  return {
    claim: (request) => {
      const sentAt = now();
      const cached = lookup(request, sentAt);
      if (cached) return Promise.resolve(cached);
      return inner.claim(request).then((outcome) => learn(request, sentAt, outcome));
    },
    renew: (request) => inner.renew(request),
    // Steps belong to records in progress, which are never cached.
    recordStep: (request) => inner.recordStep(request),
    complete: (request: CompleteRequest): Promise<LeaseOutcome> => {
      const own = pending.get(request.id);
      const mine = own?.token === request.token ? own : undefined;
      // A retried complete may be answered "ok" for an earlier attempt that reached the store: the record's
      // expiry was set no earlier than the first attempt was sent.
      if (mine) mine.completeSentAt ??= now();
      return inner.complete(request).then((outcome) => {
        if (mine) {
          finished(request, mine);
          if (outcome.status === 'ok') {
            const expiresAt = (mine.completeSentAt as number) + request.ttlMs;
            put(request.id, request.result, { fingerprint: mine.fingerprint, exact: true, expiresAt });
          }
        }
        return outcome;
      });
    },
    release: (request) => {
      const own = pending.get(request.id);
      if (own?.token === request.token) finished(request, own);
      return inner.release(request);
    },
    wait: (request) => inner.wait(request),
  };
};

// ---- internal helpers ----

interface Entry {
  /** The answer itself, made once: every replay of the entry shares it. */
  outcome: ClaimOutcome;
  /** The fingerprint the record was completed with (`exact`), or the one it was claimed with. */
  fingerprint: string;
  /** `true` when this process completed the record: its fingerprint is the stored one. */
  exact: boolean;
  /** Interval time after which the entry is not used. */
  expiresAt: number;
  bytes: number;
}

interface Pending {
  token: string;
  fingerprint: string;
  completeSentAt: number | undefined;
}

const ENTRY_OVERHEAD = 128;
const MISMATCH: ClaimOutcome = Object.freeze({ status: 'mismatch' });

const positiveInteger = (name: string, value: number): number => {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new IdempotencyError('INVALID_OPTION', `localCache: ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
};
