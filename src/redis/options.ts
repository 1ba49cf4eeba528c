import type { Cluster, Redis } from 'ioredis';
import { DEFAULTS } from '../constants';
import { IdempotencyError } from '../errors';

export interface RedisStoreOptions {
  /**
   * Your connected ioredis client: a `Redis` or a `Cluster` (ioredis 5 or 6). The store sends its commands on
   * it and never closes it. Its `keyPrefix`, if any, is honoured. Only `wait()` opens a connection of its own
   * (a `duplicate()` of this client, for pub/sub), lazily, the first time something waits.
   */
  redis: Redis | Cluster;
  /**
   * Start of every record key, after the client's `keyPrefix`. Each record is `<prefix>{<id>}`: the braces make
   * one hash tag per record, so records spread over a cluster. Must not contain `{` or `}`.
   * @default 'idem:'
   */
  prefix?: string;
  /**
   * Upper bound on every store call. A call that gets no answer in time (Redis down, stalled, or the client
   * reconnecting) fails with `IdempotencyError('STORE_UNAVAILABLE')`. Never retried internally.
   * @default 2000
   */
  operationTimeoutMs?: number;
  /**
   * How long an in-progress record outlives its lease, in ms. Until someone takes the key over, the owner can
   * still complete after its lease ran out; after lease + grace Redis deletes a crashed claim.
   * @default 60000
   */
  leaseGraceMs?: number;
  /** How long a released record (and its fencing token) is kept, in ms. @default 60000 */
  releasedTtlMs?: number;
  /**
   * While waiting, how often the record is re-read in case a pub/sub message was missed (e.g. the
   * subscriber reconnected), in ms. Completion and release are announced by pub/sub; lease expiry is
   * watched with a timer at the lease end.
   * @default 1000
   */
  waitPollIntervalMs?: number;
}

export type ResolvedRedisStoreOptions = Required<RedisStoreOptions>;

export const redisStoreDefaults = {
  prefix: 'idem:',
  operationTimeoutMs: 2000,
  leaseGraceMs: DEFAULTS.leaseGraceMs,
  releasedTtlMs: DEFAULTS.releasedTtlMs,
  waitPollIntervalMs: 1000,
} as const satisfies Omit<ResolvedRedisStoreOptions, 'redis'>;

/** Defaults merged and every option checked once, at creation. */
export const resolveRedisStoreOptions = (options: RedisStoreOptions): ResolvedRedisStoreOptions => {
  const resolved: ResolvedRedisStoreOptions = { ...redisStoreDefaults, ...definedOnly(options) };
  const { redis, prefix } = resolved;
  if (typeof redis !== 'object' || redis === null || typeof redis.defineCommand !== 'function') {
    throw invalid('redis', 'must be a connected ioredis Redis or Cluster instance');
  }
  if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
    throw invalid('prefix', 'must be a string without "{" or "}" (the store adds one hash tag per record)');
  }
  checkInteger('operationTimeoutMs', resolved.operationTimeoutMs, 1);
  checkInteger('leaseGraceMs', resolved.leaseGraceMs, 0);
  checkInteger('releasedTtlMs', resolved.releasedTtlMs, 1);
  checkInteger('waitPollIntervalMs', resolved.waitPollIntervalMs, 10);
  return resolved;
};

// ---- internal helpers ----

const invalid = (name: string, rule: string): IdempotencyError =>
  new IdempotencyError('INVALID_OPTION', `createRedisStore: option "${name}" ${rule}`);

const checkInteger = (name: string, value: unknown, min: number): void => {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw invalid(name, `must be an integer >= ${min}, got ${String(value)}`);
  }
};

const definedOnly = (options: RedisStoreOptions): RedisStoreOptions =>
  Object.fromEntries(Object.entries(options ?? {}).filter(([, value]) => value !== undefined)) as RedisStoreOptions;
