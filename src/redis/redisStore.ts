import type { ClaimOutcome, IdempotencyStore } from '../store';
import type { RedisStoreOptions } from './options';
import { IdempotencyError } from '../errors';
import { withDeadline } from './deadline';
import { createRecordKeys } from './keys';
import { resolveRedisStoreOptions } from './options';
import type { PeekOutcome } from './replies';
import { parseClaimReply, parseLeaseReply, parsePeekReply, parseStepReply } from './replies';
import type { BatchScriptName } from './scripts';
import { registerScripts } from './scripts';
import type { BatchQueueOptions } from './batcher';
import { createBatchQueue } from './batcher';
import { createWaitHub } from './waitHub';
import { createClaimRunner } from './redisTime';

export interface RedisStore extends IdempotencyStore {
  /**
   * Ends pending waits (as `timeout`) and closes the store's own subscriber connection if `wait()` opened one.
   * Never closes your client. Optional: the subscriber also closes after a minute without waiters and when
   * your client ends.
   */
  close(): Promise<void>;
}

/**
 * The Redis store: one hash per record, each decision one atomic Lua script run by SHA. Claims, renewals,
 * completions and releases made in the same tick are sent together, one script run per batch (per hash slot on
 * a cluster): see `createBatchQueue`.
 * Round trips: a fresh call costs at most 2 (claim, complete), a replay at most 1, a concurrent duplicate at
 * most 1; under concurrency, fewer (calls share script runs). Once per client (and per cluster master), and
 * after a minute without claims, a claim first reads Redis' clock: one more (see redisTime). A durable step
 * costs 1 when recorded and none when replayed (recorded steps come back with the claim).
 *
 * @example
 * const store = createRedisStore({ redis: new Redis(process.env.REDIS_URL) });
 */
export const createRedisStore = (options: RedisStoreOptions): RedisStore => {
  // config time: options checked once, scripts registered once on the client
  const { redis, prefix, operationTimeoutMs, leaseGraceMs, releasedTtlMs, waitPollIntervalMs } =
    resolveRedisStoreOptions(options);
  const run = registerScripts(redis);
  const keys = createRecordKeys(prefix, redis);
  const grace = String(leaseGraceMs);
  const queue = <T>(script: BatchScriptName, shared: string[], parse: BatchQueueOptions<T>['parse']) =>
    createBatchQueue<T>({ client: redis, keys, run, script, shared, parse, timeoutMs: operationTimeoutMs });
  // Claims carry a deadline in Redis time (ARGV[2], filled in per run; '0' would refuse them all), and a claim
  // that acquired although its reply came too late is given back at once: its caller got STORE_UNAVAILABLE.
  const claims = createBatchQueue<ClaimOutcome>({
    client: redis,
    keys,
    run: createClaimRunner(redis, run, operationTimeoutMs),
    script: 'claim',
    shared: [grace, '0'],
    parse: parseClaimReply,
    timeoutMs: operationTimeoutMs,
    late: (id, [token], outcome) => {
      if (outcome.status === 'acquired' && token !== undefined) releases(id, [token]).catch(() => {});
    },
  });
  const renewals = queue('renew', [grace], parseLeaseReply);
  const completions = queue('complete', [], parseLeaseReply);
  const releases = queue('release', [String(releasedTtlMs)], parseLeaseReply);
  const steps = queue('step', [], parseStepReply);
  const lockTtl = millisOf('lockTtlMs');
  const ttl = millisOf('ttlMs');
  const keep = millisOf('keepMs');

  // peek (waiters only, shared per key) stays one record per script run
  const peek = async (id: string): Promise<PeekOutcome> => {
    const reply = await withDeadline(redis, { op: 'peek', timeoutMs: operationTimeoutMs }, () =>
      run('peek', [keys.record(id)], []),
    );
    return parsePeekReply(reply, { script: 'peek', key: keys.full(id) });
  };
  const hub = createWaitHub({
    client: redis,
    channelOf: keys.full,
    peek,
    pollIntervalMs: waitPollIntervalMs,
    operationTimeoutMs,
  });

  return {
    // A bad duration rejects that call only (never thrown synchronously). The claim's partition is not used:
    // Redis memory is the operator's (maxmemory-policy must be noeviction, see store.ts).
    claim: ({ id, token, fingerprint, lockTtlMs }) =>
      guard(() => claims(id, [token, fingerprint, lockTtl(lockTtlMs)])),
    renew: ({ id, token, lockTtlMs }) => guard(() => renewals(id, [token, lockTtl(lockTtlMs)])),
    complete: ({ id, token, result, ttlMs }) => guard(() => completions(id, [token, result, ttl(ttlMs)])),
    release: ({ id, token }) => releases(id, [token]),
    recordStep: ({ id, token, name, text, keepMs }) => guard(() => steps(id, [token, name, text, keep(keepMs)])),
    wait: (request) => hub.wait(request),
    close: () => hub.close(),
  };
};

// ---- internal helpers ----

/**
 * Durations go to Lua as whole milliseconds >= 1, written out in full (no exponent). Remembers the last value:
 * a store sees the same lockTtlMs and ttlMs on almost every call.
 */
const millisOf = (name: string): ((value: number) => string) => {
  let lastValue = Number.NaN;
  let lastText = '';
  return (value) => {
    if (value === lastValue) return lastText;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new IdempotencyError('INVALID_OPTION', `redis store: ${name} must be a positive number of ms, got ${String(value)}`);
    }
    lastText = Math.ceil(value).toFixed(0);
    lastValue = value;
    return lastText;
  };
};

const guard = <T>(call: () => Promise<T>): Promise<T> => {
  try {
    return call();
  } catch (error) {
    return Promise.reject(error);
  }
};
