import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRedisStore } from '../../src/redis';
import { randomPrefix, redisTarget } from '../helpers/redisClients';
import { startRedisServer } from '../helpers/redisServer';

/** Claims and completes one record shaped like the middleware's, and returns Redis' own accounting of it. */
const measure = async (redis: Redis): Promise<{ bytes: number; encoding: string }> => {
  const prefix = randomPrefix();
  const store = createRedisStore({ redis, prefix });
  const id = 'x'.repeat(43); // the middleware's ids: URL-safe base64 of a SHA-256
  const token = randomUUID();
  const result = JSON.stringify({ json: { id: 'ord_123', amount: 4200, note: 'n'.repeat(140) } }).padEnd(200, ' ');
  expect(result).toHaveLength(200);
  await store.claim({ id, partition: 'p', token, fingerprint: 'f'.repeat(43), lockTtlMs: 30_000 });
  await store.complete({ id, token, result, ttlMs: 86_400_000 });
  const key = `${prefix}{${id}}`;
  const bytes = Number(await redis.memory('USAGE', key, 'SAMPLES', 0));
  const encoding = String(await redis.object('ENCODING', key));
  await store.close();
  return { bytes, encoding };
};

describe('createRedisStore memory', () => {
  it('keeps a completed record with a 200-byte result in under 1 KB (default Redis config)', async () => {
    const redis = new Redis(redisTarget().url);
    try {
      const { bytes, encoding } = await measure(redis);
      console.info(`MEMORY USAGE, completed record, 200-byte result, default config: ${bytes} bytes (${encoding})`);
      // A 200-byte field is over hash-max-listpack-value (64), so Redis uses a real hash table.
      expect(encoding).toBe('hashtable');
      expect(bytes).toBeGreaterThan(200);
      expect(bytes).toBeLessThan(1024);
    } finally {
      await redis.quit();
    }
  });

  it.runIf(redisTarget().canSpawn)('keeps it compact (listpack) when hash-max-listpack-value covers the result', async () => {
    const server = await startRedisServer({ args: ['--hash-max-listpack-value', '1024'] });
    const redis = new Redis(server.url);
    try {
      const { bytes, encoding } = await measure(redis);
      console.info(`MEMORY USAGE, same record, hash-max-listpack-value 1024: ${bytes} bytes (${encoding})`);
      expect(encoding).toBe('listpack');
      expect(bytes).toBeLessThan(600);
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });
});
