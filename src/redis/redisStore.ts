import type { IdempotencyStore } from '../store';
import type { RedisStoreOptions } from './options';
import { IdempotencyError } from '../errors';
import { withDeadline } from './deadline';
import { createRecordKeys } from './keys';
import { resolveRedisStoreOptions } from './options';
import { parseClaimReply, parseLeaseReply, parsePeekReply } from './replies';
import type { StoreScripts } from './scripts';
import { registerScripts } from './scripts';
import { createWaitHub } from './waitHub';

export interface RedisStore extends IdempotencyStore {
  /**
   * Ends pending waits (as `timeout`) and closes the store's own subscriber connection if `wait()` opened one.
   * Never closes your client. Optional: the subscriber also closes after a minute without waiters and when
   * your client ends.
   */
  close(): Promise<void>;
}

/**
 * The Redis store: one hash per record, each decision one atomic Lua script run by SHA.
 * Round trips: a fresh call costs 2 (claim, complete), a replay 1, a concurrent duplicate 1.
 *
 * @example
 * const store = createRedisStore({ redis: new Redis(process.env.REDIS_URL) });
 */
export const createRedisStore = (options: RedisStoreOptions): RedisStore => {
  // config time: options checked once, scripts registered once on the client
  const { redis, prefix, operationTimeoutMs, leaseGraceMs, releasedTtlMs, waitPollIntervalMs } =
    resolveRedisStoreOptions(options);
  const scripts = registerScripts(redis);
  const keys = createRecordKeys(prefix, redis);
  const grace = String(leaseGraceMs);
  const released = String(releasedTtlMs);

  // call time: one bounded round trip per store call
  const call = async <T>(step: Step<T>): Promise<T> => {
    const { script, id, send, parse } = step;
    const reply = await withDeadline(redis, { op: script, timeoutMs: operationTimeoutMs }, () => send(keys.record(id)));
    return parse(reply, { script, key: keys.full(id) });
  };

  const hub = createWaitHub({
    client: redis,
    channelOf: keys.full,
    peek: (id) => call({ script: 'peek', id, send: (key) => scripts.peek(key, []), parse: parsePeekReply }),
    pollIntervalMs: waitPollIntervalMs,
    operationTimeoutMs,
  });

  return {
    claim: ({ id, token, fingerprint, lockTtlMs }) =>
      call({
        script: 'claim',
        id,
        send: (key) => scripts.claim(key, [token, fingerprint, millis('lockTtlMs', lockTtlMs), grace]),
        parse: parseClaimReply,
      }),
    renew: ({ id, token, lockTtlMs }) =>
      call({
        script: 'renew',
        id,
        send: (key) => scripts.renew(key, [token, millis('lockTtlMs', lockTtlMs), grace]),
        parse: parseLeaseReply,
      }),
    complete: ({ id, token, result, ttlMs }) =>
      call({
        script: 'complete',
        id,
        send: (key) => scripts.complete(key, [token, result, millis('ttlMs', ttlMs)]),
        parse: parseLeaseReply,
      }),
    release: ({ id, token }) =>
      call({
        script: 'release',
        id,
        send: (key) => scripts.release(key, [token, released]),
        parse: parseLeaseReply,
      }),
    wait: (request) => hub.wait(request),
    close: () => hub.close(),
  };
};

// ---- internal helpers ----

/** One store call: which script, on which record, how to send it and how to read the reply. */
interface Step<T> {
  script: keyof StoreScripts;
  id: string;
  send(key: string): Promise<unknown>;
  parse(reply: unknown, context: { script: string; key: string }): T;
}

/** Durations go to Lua as whole milliseconds >= 1, written out in full (no exponent). */
const millis = (name: string, value: number): string => {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new IdempotencyError('INVALID_OPTION', `redis store: ${name} must be a positive number of ms, got ${String(value)}`);
  }
  return Math.ceil(value).toFixed(0);
};
