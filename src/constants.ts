/**
 * Every default of trpc-idempotency, in one place. Option types repeat these values in their `@default` tags;
 * `test/server/options.test.ts` checks that the two agree.
 */
export const DEFAULTS = {
  /** Request header carrying the key. */
  headerName: 'idempotency-key',
  /** Input field carrying the key; `false` reads no input field. */
  inputKey: false as string | false,
  required: false,
  onInProgress: 'reject' as 'reject' | 'wait',
  waitTimeoutMs: 10_000,
  ttlMs: 24 * 60 * 60 * 1000,
  lockTtlMs: 30_000,
  maxResultBytes: 1024 * 1024,
  onStoreError: 'fail-closed' as 'fail-closed' | 'fail-open',
  /** Run the procedure in the store's transaction (transactional mode). */
  transactional: false as boolean,
  /** Hash the raw input and answer UNPROCESSABLE_CONTENT when a key comes back with another input. */
  fingerprint: true as boolean,
  /**
   * The default fingerprint's budget, measured on the input as a tree (a shared object counts once per path).
   * Past it the input is refused (PAYLOAD_TOO_LARGE) before anything runs: the fingerprint, like superjson, walks
   * the input as a tree, so shared references could otherwise make one small request cost 2^depth steps.
   */
  maxInputDepth: 100,
  maxInputNodes: 100_000,
  maxInputChars: 1024 * 1024,
  /**
   * Longest retry hint given to an in-progress duplicate. The lease says when a crashed owner's key frees up,
   * but a live owner usually finishes much sooner: clients should come back soon, not after the whole lease.
   */
  maxRetryAfterMs: 1_000,
  /** Attempts to store a result before giving up and reporting it. */
  completeAttempts: 3,
  completeRetryDelayMs: 50,
  /** Memory store: records kept at most. */
  maxEntries: 10_000,
  /** Memory store: bytes kept at most (result text at 2 bytes per UTF-16 unit, plus a fixed overhead per record). */
  maxBytes: 64 * 1024 * 1024,
  /** Memory store: in-progress claims one partition (scope) may hold at once. */
  maxRunningPerPartition: 1_000,
  /**
   * Memory store: records of a partition that another partition's traffic can never evict. Scopes a client can
   * mint (many one-record partitions) would otherwise shrink every fair share until a victim's second record
   * counts as "more than its share".
   */
  reservedEntriesPerPartition: 16,
  /**
   * How long an in-progress record outlives its lease, so a crashed owner's key is taken over (`takeover: true`)
   * rather than looking fresh; then it is cleaned up. Memory store; the Redis store's `leaseGraceMs` default.
   */
  leaseGraceMs: 60_000,
  /** How long a released record keeps its fence in the memory store. */
  releasedTtlMs: 60_000,
  /** The per-process cache of completed records in front of the store: off unless asked for. */
  localCache: false as false | { maxEntries?: number; maxBytes?: number },
  /** Its bounds when on (`localCache: {}`). */
  localCacheLimits: { maxEntries: 1_000, maxBytes: 8 * 1024 * 1024 },
  /** Client: `idempotentRetry` for tRPC's retryLink. */
  retry: { maxAttempts: 4, baseDelayMs: 200, maxDelayMs: 10_000 },
} as const;
