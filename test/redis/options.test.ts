import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { isIdempotencyError } from '../../src/errors';
import { createRedisStore, redisStoreDefaults } from '../../src/redis';
import type { RedisStoreOptions } from '../../src/redis';
import { connectRedis } from '../helpers/redisClients';
import { thrownBy } from '../server/helpers';

describe('createRedisStore options', () => {
  const redis = connectRedis({ lazyConnect: true }) as Redis;

  it.each([
    ['redis', { redis: undefined }],
    ['redis', { redis: {} }],
    ['prefix', { prefix: 'idem:{all}:' }],
    ['prefix', { prefix: 42 }],
    ['operationTimeoutMs', { operationTimeoutMs: 0 }],
    ['operationTimeoutMs', { operationTimeoutMs: 1.5 }],
    ['leaseGraceMs', { leaseGraceMs: -1 }],
    ['releasedTtlMs', { releasedTtlMs: Number.NaN }],
    ['waitPollIntervalMs', { waitPollIntervalMs: 1 }],
  ])('rejects a bad %s at creation, naming it', (name, override) => {
    const error = thrownBy(() => createRedisStore({ redis, ...override } as unknown as RedisStoreOptions));
    expect(isIdempotencyError(error) && error.code).toBe('INVALID_OPTION');
    expect((error as Error).message).toContain(`"${name}"`);
  });

  it('documents each default once, in one object, and matches the JSDoc @default tags', async () => {
    const { readFileSync } = await import('node:fs');
    const source = readFileSync(new URL('../../src/redis/options.ts', import.meta.url), 'utf8');
    const tags = [...source.matchAll(/@default (.+?)(?: \*\/)?$/gm)].map((m) => m[1]?.trim());
    expect(tags).toEqual(Object.values(redisStoreDefaults).map((value) => (typeof value === 'string' ? `'${value}'` : String(value))));
  });

  it('rejects a non-positive lease or TTL per call', async () => {
    const store = createRedisStore({ redis });
    await expect(store.claim({ id: 'x', partition: 'p', token: 't', fingerprint: '', lockTtlMs: 0 })).rejects.toMatchObject({
      code: 'INVALID_OPTION',
    });
    await expect(store.complete({ id: 'x', token: 't', result: '', ttlMs: Number.NaN })).rejects.toMatchObject({
      code: 'INVALID_OPTION',
    });
    redis.disconnect();
  });
});
