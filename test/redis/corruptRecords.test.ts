import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { isIdempotencyError } from '../../src/errors';
import { createRedisStore } from '../../src/redis';
import type { RedisStore } from '../../src/redis';
import { connectRedis, randomPrefix } from '../helpers/redisClients';

// A key holding something the store did not write: a clear RECORD_CORRUPT error naming the key, and the
// value is never overwritten or deleted.
describe('createRedisStore on foreign or corrupt records', () => {
  let redis: Redis;
  let store: RedisStore;
  const prefix = randomPrefix();
  beforeAll(() => {
    redis = connectRedis();
    store = createRedisStore({ redis, prefix });
  });
  afterAll(async () => {
    await store.close();
    await redis.quit();
  });

  const cases: Array<[string, (key: string) => Promise<unknown>, RegExp]> = [
    ['a plain string', (key) => redis.set(key, 'hello'), /holds a string, not a hash/],
    ['a list', (key) => redis.rpush(key, 'a', 'b'), /holds a list, not a hash/],
    ['a hash without our fields', (key) => redis.hset(key, 'name', 'x'), /hash without a schema version/],
    ['a hash of another schema version', (key) => redis.hset(key, 'v', '2', 's', 'p'), /schema version 2, expected 1/],
    [
      'our hash with an unknown state',
      (key) => redis.hset(key, 'v', '1', 's', 'zzz', 't', 'tok', 'f', '', 'n', '5'),
      /unknown state zzz/,
    ],
    [
      'an in-progress hash without a lease end',
      (key) => redis.hset(key, 'v', '1', 's', 'p', 't', 'tok', 'f', '', 'n', '5'),
      /in progress without a whole-number lease end/,
    ],
    [
      'a released hash whose fence is "inf"',
      (key) => redis.hset(key, 'v', '1', 's', 'r', 't', 'tok', 'f', '', 'n', 'inf'),
      /fence is not a whole number/,
    ],
    [
      'a released hash whose fence is "nan"',
      (key) => redis.hset(key, 'v', '1', 's', 'r', 't', 'tok', 'f', '', 'n', 'nan'),
      /fence is not a whole number/,
    ],
    [
      'an in-progress hash whose lease end is "1e400"',
      (key) => redis.hset(key, 'v', '1', 's', 'p', 't', 'tok', 'f', '', 'n', '5', 'e', '1e400'),
      /without a whole-number lease end/,
    ],
    [
      'a completed hash without a result',
      (key) => redis.hset(key, 'v', '1', 's', 'c', 't', 'tok', 'f', '', 'n', '5'),
      /completed without a result/,
    ],
  ];

  for (const [what, write, reason] of cases) {
    it(`throws RECORD_CORRUPT for ${what} and leaves it intact`, async () => {
      const id = randomUUID();
      const key = `${prefix}{${id}}`;
      await write(key);
      const before = await redis.dump(key);
      const calls = [
        () => store.claim({ id, partition: 'p', token: 'tok', fingerprint: '', lockTtlMs: 10_000 }),
        () => store.renew({ id, token: 'tok', lockTtlMs: 10_000 }),
        () => store.complete({ id, token: 'tok', result: 'r', ttlMs: 60_000 }),
        () => store.release({ id, token: 'tok' }),
        () => store.wait({ id, timeoutMs: 1000 }),
      ];
      // A completed record without a result only shows up when its result is read (claim).
      const checked = what.startsWith('a completed') ? calls.slice(0, 1) : calls;
      for (const call of checked) {
        const error = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(isIdempotencyError(error) && error.code).toBe('RECORD_CORRUPT');
        expect((error as Error).message).toContain(`record ${key} `);
        expect((error as Error).message).toMatch(reason);
      }
      expect(await redis.dump(key)).toEqual(before);
      expect(await redis.pttl(key)).toBe(-1);
    });
  }
});
