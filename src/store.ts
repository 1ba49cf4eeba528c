/**
 * The store contract. A store keeps one record per idempotency key and makes four decisions atomically:
 * who owns a key (claim), whether the owner still holds it (renew), and what the key finally means
 * (complete or release). Every expected outcome is a value; a store throws only for I/O failures and for
 * records it cannot read (an `IdempotencyError` with code `RECORD_CORRUPT`).
 *
 * A record moves through these states:
 *
 *   (absent) --claim--> in_progress --complete--> completed --(ttlMs passes)--> (absent)
 *                          |   ^  \--release--> released (behaves as absent, keeps the fence)
 *                          |   |
 *                          +---+ renew (same token) / claim after the lease expired (new token, takeover)
 *
 * Time is the store's own clock (the memory store's injected clock, Redis' `TIME`), never the caller's.
 *
 * A store bounds its own I/O: every call settles (or throws) within a bounded time, or a stalled store would
 * hang the request. The Redis store does this with `operationTimeoutMs`.
 */

/** The partition of calls that have no scope (see `ClaimRequest.partition`); never a SHA-256 in base64url. */
export const GLOBAL_PARTITION = 'global';

/** Identifies one record. `id` is already a hash of (scope, path, key): stores never see raw keys. */
export interface RecordRef {
  /** Record identity, e.g. `3q2-7w...` (URL-safe base64 of a SHA-256). */
  id: string;
}

export interface ClaimRequest extends RecordRef {
  /**
   * Which caller population the record belongs to: an opaque id derived from the middleware's `scope` (a SHA-256,
   * URL-safe base64, of the same scope value that goes into the record id; calls without a scope share the fixed
   * partition `GLOBAL_PARTITION`). The `id` alone identifies the record: two claims with the same `id` meet the
   * same record whatever their partitions say, and a store never needs the partition to find one.
   *
   * A store may use it for quotas and fair eviction only: to bound what one scope holds (entries, bytes, running
   * claims), to refuse a scope over its quota, and to evict a flooding scope's own records rather than another
   * scope's. The memory store does all of that (see `MemoryStoreOptions`). The Redis store ignores it: Redis
   * memory is the operator's, and `maxmemory-policy` must be `noeviction` or a `volatile-*` policy (an
   * `allkeys-*` policy may evict a live record, and its key would run again).
   */
  partition: string;
  /** Random token of this claim; only its holder may renew, complete or release. */
  token: string;
  /** Fingerprint of the request input; `''` means "do not compare". */
  fingerprint: string;
  /** How long the claim lasts unless renewed. */
  lockTtlMs: number;
}

export type ClaimOutcome =
  /** The caller owns the key and must run the procedure. `fence` is larger than any fence this key had. */
  | { status: 'acquired'; fence: number; takeover: boolean }
  /** Another owner holds a live lease. `retryAfterMs` is the time left on that lease. */
  | { status: 'in_progress'; retryAfterMs: number }
  /**
   * The key already has a final result (opaque text written by `complete`). `expiresInMs`: the record's time
   * left, when the store knows it (the Redis store does): a per-process cache of completed records
   * (`localCache`) keeps a record it learnt from a claim no longer than this, and not at all without it.
   */
  | { status: 'completed'; result: string; expiresInMs?: number }
  /** The record was made by a request with another fingerprint. */
  | { status: 'mismatch' };

export interface LeaseRequest extends RecordRef {
  token: string;
}

export interface RenewRequest extends LeaseRequest {
  lockTtlMs: number;
}

export interface CompleteRequest extends LeaseRequest {
  /** Opaque text to replay; stores keep it byte for byte. */
  result: string;
  /** How long the completed record is kept. */
  ttlMs: number;
}

/** `lost`: the token no longer owns the record (lease expired and taken over, or completed/released). */
export type LeaseOutcome = { status: 'ok' } | { status: 'lost' };

export interface WaitRequest extends RecordRef {
  /** Give up after this long. */
  timeoutMs: number;
  /** Stops waiting early (e.g. the HTTP request was aborted). */
  signal?: AbortSignal | undefined;
}

/**
 * `settled`: the record stopped being in progress (completed, released, lease expired or removed), so a new
 * `claim` decides what happens next. `timeout`: still in progress after `timeoutMs` (or the signal fired).
 */
export type WaitOutcome = { status: 'settled' } | { status: 'timeout' };

export interface IdempotencyStore {
  /** Atomically: take the key, or report who has it or what it holds. */
  claim(request: ClaimRequest): Promise<ClaimOutcome>;
  /** Extend the lease of the current owner to `lockTtlMs` from now. */
  renew(request: RenewRequest): Promise<LeaseOutcome>;
  /** Store the final result; only the current owner can. */
  complete(request: CompleteRequest): Promise<LeaseOutcome>;
  /** Give the key up without a result (a retry runs again); only the current owner can. */
  release(request: LeaseRequest): Promise<LeaseOutcome>;
  /** Resolve once the record is no longer in progress, or at the timeout. Never throws on timeout. */
  wait(request: WaitRequest): Promise<WaitOutcome>;
}
