/**
 * The store contract. A store keeps one record per idempotency key and makes four decisions atomically:
 * who owns a key (claim), whether the owner still holds it (renew), and what the key finally means
 * (complete or release). Every expected outcome is a value; a store throws only for I/O failures and for
 * records it cannot read (an `IdempotencyError` with code `RECORD_CORRUPT`).
 *
 * A record moves through these states:
 *
 *   (absent) --claim--> in_progress --complete--> completed --(ttlMs passes)--> (absent)
 *                          |   ^  \--release--> released (behaves as absent, keeps the fence and the steps)
 *                          |   |
 *                          +---+ renew (same token) / claim after the lease expired (new token, takeover)
 *
 * Durable steps (`recordStep`): while a record is in progress its owner may record named steps (opaque texts,
 * written once, never overwritten). They belong to the record, not to the claim:
 * - a claim that acquires a released record, or takes over an expired lease, gets every recorded step back in
 *   its `acquired` outcome (no extra round trip), so the procedure resumes after its last recorded step;
 * - such a record is a mismatch for another fingerprint even when released: a different input never resumes
 *   someone else's steps;
 * - release keeps them; complete drops them (the final result is all a retry needs);
 * - a record with steps is kept at least `keepMs` (the middleware passes `ttlMs`) after its latest step, in
 *   every state but completed: renewals, releases and takeovers never shorten that, so a slow client's retry
 *   still finds the steps (without steps a released record is kept only briefly, an in-progress one only for
 *   its lease plus a grace period).
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
   * memory is the operator's, and `maxmemory-policy` must be `noeviction`: every record has an expiry, so a
   * `volatile-*` policy may evict a live record as well as an `allkeys-*` one, and its key would run again.
   */
  partition: string;
  /** Random token of this claim; only its holder may renew, complete or release. */
  token: string;
  /** Fingerprint of the request input; `''` means "do not compare". */
  fingerprint: string;
  /** How long the claim lasts unless renewed. */
  lockTtlMs: number;
}

/**
 * The steps recorded on a record, name -> the text `recordStep` wrote (opaque to the store, kept byte for byte).
 * Empty for a record without steps; treat it as read-only.
 */
export type RecordedSteps = ReadonlyMap<string, string>;

/** The steps of a record that has none: one shared empty map (never written to). */
export const NO_STEPS: RecordedSteps = new Map<string, string>();

export type ClaimOutcome =
  /**
   * The caller owns the key and must run the procedure. `fence` is larger than any fence this key had. `steps`:
   * what earlier owners recorded (see `recordStep`), `NO_STEPS` when nothing.
   */
  | { status: 'acquired'; fence: number; takeover: boolean; steps: RecordedSteps }
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

export interface StepRequest extends LeaseRequest {
  /** The step's name, 1 to 200 characters (the middleware checks it); unique per record. */
  name: string;
  /** Opaque text to hand back with later claims; stores keep it byte for byte. */
  text: string;
  /** The record (and its steps) is kept at least this long from now, in every state but completed. */
  keepMs: number;
}

/**
 * `ok`: recorded now. `exists`: this name was already recorded (by this or an earlier owner); nothing is written
 * and `text` is what was recorded (a retried write whose first reply was lost reads its own text back). `lost`:
 * the token does not own an in-progress record (taken over, completed, released, expired): nothing is written.
 */
export type StepOutcome = { status: 'ok' } | { status: 'exists'; text: string } | { status: 'lost' };

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
  /** Give the key up without a result (a retry runs again, after the recorded steps); only the current owner can. */
  release(request: LeaseRequest): Promise<LeaseOutcome>;
  /**
   * Record one durable step of the current owner, in one round trip. Only the token that owns the in-progress
   * record may (after its lease ran out too, as long as nobody took the key over, like `complete`); a name is
   * written once and never overwritten.
   */
  recordStep(request: StepRequest): Promise<StepOutcome>;
  /** Resolve once the record is no longer in progress, or at the timeout. Never throws on timeout. */
  wait(request: WaitRequest): Promise<WaitOutcome>;
}

/**
 * An optional capability of the contract: a store that can run the procedure inside the same database transaction
 * as its record (the transactional mode, `idempotent({ transactional: true })`). `begin` claims the key inside a
 * new transaction and hands the open transaction to the middleware; the procedure's writes through its `client`,
 * the claim and the stored result then commit in one COMMIT, or none of them does. Checked once, when options are
 * resolved (`isTransactionalStore`): the middleware never asks which store it has.
 *
 *   begin ──acquired──> procedure writes on `client` ──commit(result)──> COMMIT: writes + completed record
 *     │                                            └──commit(error, discardWrites)──> ROLLBACK TO SAVEPOINT, COMMIT
 *     │                                            └──rollback()──> ROLLBACK: no writes, no record, key free at once
 *     └──completed / mismatch / in_progress: nothing is held (the store ends its transaction itself)
 *
 * A crash anywhere before COMMIT leaves nothing behind: no lease to wait out, a retry runs at once
 * (`takeover: false`).
 */
export interface TransactionalStore<TClient = unknown> extends IdempotencyStore {
  readonly transactional: TransactionalCapability<TClient>;
}

export interface TransactionalCapability<TClient> {
  /**
   * Opens a transaction and claims the key in it without waiting on another transaction of the same key (that
   * one is `in_progress`). Bounded in time (connection checkout included); throws `STORE_UNAVAILABLE` when the
   * database cannot be used, with nothing begun.
   */
  begin(request: ClaimRequest): Promise<TransactionalClaim<TClient>>;
  /** As `IdempotencyStore.wait`, for keys whose owner is an open transaction (its record is not visible yet). */
  wait(request: WaitRequest): Promise<WaitOutcome>;
}

export type TransactionalClaim<TClient> =
  | { status: 'acquired'; fence: number; takeover: boolean; transaction: OpenTransaction<TClient> }
  | Exclude<ClaimOutcome, { status: 'acquired' }>;

/** The transaction of an acquired key. Exactly one of `commit` and `rollback` is called, once. */
export interface OpenTransaction<TClient> {
  /** The transaction's connection: the procedure's queries on it are part of the transaction. */
  readonly client: TClient;
  /** Aborts when the connection is lost: the transaction is gone, nothing of it will commit. */
  readonly signal: AbortSignal;
  /**
   * Stores `result` as the record's final result and commits. `discardWrites` first rolls back what the
   * procedure wrote (a final error is stored, its writes are not). Never throws: the outcome says what happened.
   */
  commit(request: { result: string; ttlMs: number; discardWrites: boolean }): Promise<CommitOutcome>;
  /** Rolls everything back (writes, claim): the key is free at once. Never throws. */
  rollback(): Promise<void>;
}

export type CommitOutcome =
  /** The writes and the record are durable. */
  | { status: 'committed' }
  /**
   * Nothing was committed, and that is certain: `serialization` (a serialization failure or deadlock: retry),
   * `connection_lost` (lost before COMMIT was sent), `aborted` (a statement of the procedure failed and left the
   * transaction aborted, or COMMIT itself failed, e.g. a deferred constraint), `ended` (the procedure ended the
   * transaction itself with COMMIT or ROLLBACK on the client).
   */
  | { status: 'rolled_back'; reason: 'serialization' | 'connection_lost' | 'aborted' | 'ended'; error: unknown }
  /** The connection was lost while COMMIT was in flight: it may or may not have committed. The record says which. */
  | { status: 'unknown'; error: unknown };

/** Whether a store declares the transactional capability. */
export const isTransactionalStore = (store: unknown): store is TransactionalStore =>
  typeof store === 'object' &&
  store !== null &&
  typeof (store as { transactional?: { begin?: unknown } }).transactional?.begin === 'function' &&
  typeof (store as { transactional: { wait?: unknown } }).transactional.wait === 'function';
