import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore } from '../../src/redis';
import type { RedisStore } from '../../src/redis';
import type { ClaimOutcome } from '../../src/store';
import { connectRedis, randomPrefix } from '../helpers/redisClients';

const fenceOf = (outcome: ClaimOutcome): number => {
  if (outcome.status !== 'acquired') throw new Error(`expected acquired, got ${JSON.stringify(outcome)}`);
  return outcome.fence;
};

describe('createRedisStore fencing and atomicity', () => {
  const prefix = randomPrefix();
  let clients: Redis[];
  let stores: RedisStore[];
  beforeAll(() => {
    clients = Array.from({ length: 4 }, () => connectRedis());
    stores = clients.map((redis) => createRedisStore({ redis, prefix }));
  });
  afterAll(async () => {
    await Promise.all(clients.map((redis) => redis.quit()));
  });

  it('derives the fence from Redis time in µs, and keeps it growing after the record vanished', async () => {
    const [store] = stores as [RedisStore];
    const [redis] = clients as [Redis];
    const id = randomUUID();
    const [seconds, micros] = await redis.time();
    const first = fenceOf(await store.claim({ id, partition: 'p', token: 'a', fingerprint: '', lockTtlMs: 10_000 }));
    expect(first).toBeGreaterThanOrEqual(Number(seconds) * 1e6 + Number(micros));
    expect(Number.isSafeInteger(first)).toBe(true);
    await redis.del(`${prefix}{${id}}`); // as if the record had expired
    const second = fenceOf(await store.claim({ id, partition: 'p', token: 'b', fingerprint: '', lockTtlMs: 10_000 }));
    expect(second).toBeGreaterThan(first);
  });

  it('grows by at least one when a fence from the future is stored (clock behind the last fence)', async () => {
    const [store] = stores as [RedisStore];
    const [redis] = clients as [Redis];
    const id = randomUUID();
    const future = 9_000_000_000_000_000; // far beyond Redis time in µs, still a safe integer
    await redis.hset(`${prefix}{${id}}`, 'v', '1', 's', 'r', 't', 'old', 'f', '', 'n', String(future));
    expect(fenceOf(await store.claim({ id, partition: 'p', token: 'a', fingerprint: '', lockTtlMs: 10_000 }))).toBe(future + 1);
  });

  it('gives exactly one of 400 concurrent claims over 4 connections the key', async () => {
    const id = randomUUID();
    const outcomes = await Promise.all(
      Array.from({ length: 400 }, (_, i) =>
        (stores[i % 4] as RedisStore).claim({ id, partition: 'p', token: `t${i}`, fingerprint: 'f', lockTtlMs: 10_000 }),
      ),
    );
    expect(outcomes.filter((o) => o.status === 'acquired')).toHaveLength(1);
    expect(outcomes.filter((o) => o.status === 'in_progress')).toHaveLength(399);
  });

  it('lets exactly one of many concurrent claimers take over an expired lease', async () => {
    const id = randomUUID();
    const first = fenceOf(await (stores[0] as RedisStore).claim({ id, partition: 'p', token: 'dead', fingerprint: '', lockTtlMs: 100 }));
    await new Promise((resolve) => setTimeout(resolve, 150));
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        (stores[i % 4] as RedisStore).claim({ id, partition: 'p', token: `t${i}`, fingerprint: '', lockTtlMs: 10_000 }),
      ),
    );
    const winners = outcomes.filter((o) => o.status === 'acquired');
    expect(winners).toHaveLength(1);
    expect(winners[0]).toMatchObject({ takeover: true });
    expect(fenceOf(winners[0] as ClaimOutcome)).toBeGreaterThan(first);
    expect(outcomes.filter((o) => o.status === 'in_progress')).toHaveLength(199);
  });
});
