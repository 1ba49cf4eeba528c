import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createRedisStore } from '../../src/redis';
import { connectRedis, randomPrefix, redisTarget } from '../helpers/redisClients';
import { startMonitor } from '../helpers/redisMonitor';
import { commandName } from '../../src/redis/scripts';

describe('createRedisStore scripts', () => {
  const clients: Redis[] = [];
  const client = (): Redis => {
    const redis = connectRedis();
    clients.push(redis);
    return redis;
  };
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((redis) => redis.quit()));
  });

  it('runs again after SCRIPT FLUSH (EVALSHA gets NOSCRIPT, ioredis falls back to EVAL once)', async () => {
    const redis = client();
    const store = createRedisStore({ redis, prefix: randomPrefix() });
    const id = randomUUID();
    expect((await store.claim({ id, partition: 'p', token: 'a', fingerprint: '', lockTtlMs: 10_000 })).status).toBe('acquired');
    // Use complete once on another record too, so both scripts run by SHA on this connection before the flush.
    const other = randomUUID();
    await store.claim({ id: other, partition: 'p', token: 'o', fingerprint: '', lockTtlMs: 10_000 });
    await store.complete({ id: other, token: 'o', result: 'o', ttlMs: 60_000 });
    const admin = client();
    await admin.script('FLUSH');
    expect(await admin.script('EXISTS', '0'.repeat(40))).toEqual([0]);

    const monitor = await startMonitor(redisTarget().url);
    try {
      const commands = await monitor.record(async () => {
        expect(await store.claim({ id, partition: 'p', token: 'b', fingerprint: '', lockTtlMs: 10_000 })).toMatchObject({
          status: 'in_progress',
        });
      });
      // EVALSHA -> NOSCRIPT -> EVAL: the outcome is right and nothing else is sent.
      expect(commands.map((c) => c.name)).toEqual(['evalsha', 'eval']);
      const again = await monitor.record(() => store.complete({ id, token: 'a', result: 'r', ttlMs: 60_000 }));
      expect(again.map((c) => c.name)).toEqual(['evalsha', 'eval']);
    } finally {
      await monitor.stop();
    }
    expect(await store.claim({ id, partition: 'p', token: 'c', fingerprint: '', lockTtlMs: 10_000 })).toEqual({
      status: 'completed',
      result: 'r',
      expiresInMs: expect.any(Number),
    });
  });

  it('registers its commands under names carrying the package version, once per client', async () => {
    const redis = client();
    const version = (await import('../../package.json', { with: { type: 'json' } })).default.version;
    expect(commandName('claim')).toBe(`trpcIdempotency_${version.replace(/\W/g, '_')}_claim`);
    const first = createRedisStore({ redis, prefix: randomPrefix() });
    const methods = redis as unknown as Record<string, unknown>;
    const claimMethod = methods[commandName('claim')];
    expect(typeof claimMethod).toBe('function');
    const second = createRedisStore({ redis, prefix: randomPrefix() });
    expect(methods[commandName('claim')]).toBe(claimMethod);
    const id = randomUUID();
    expect((await first.claim({ id, partition: 'p', token: 'a', fingerprint: '', lockTtlMs: 10_000 })).status).toBe('acquired');
    expect((await second.claim({ id, partition: 'p', token: 'b', fingerprint: '', lockTtlMs: 10_000 })).status).toBe('acquired');
  });
});
