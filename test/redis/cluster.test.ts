import { randomUUID } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore } from '../../src/redis';
import type { RedisStore } from '../../src/redis';
import { connectCluster, hasCluster, randomPrefix, sleep } from '../helpers/redisClients';

describe.runIf(hasCluster())('createRedisStore on a 3-master cluster', () => {
  let cluster: Cluster;
  let store: RedisStore;
  const prefix = randomPrefix();
  beforeAll(() => {
    cluster = connectCluster() as Cluster;
    store = createRedisStore({ redis: cluster, prefix });
  });
  afterAll(async () => {
    await store.close();
    await cluster.quit();
  });

  it('spreads records over every master (one hash tag per record, not per prefix)', async () => {
    const ids = Array.from({ length: 60 }, () => randomUUID());
    await Promise.all(ids.map((id) => store.claim({ id, partition: 'p', token: id, fingerprint: '', lockTtlMs: 10_000 })));
    const masters = cluster.nodes('master');
    expect(masters).toHaveLength(3);
    const counts = await Promise.all(masters.map(async (node) => (await node.keys(`${prefix}*`)).length));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(60);
    for (const count of counts) expect(count).toBeGreaterThan(0);
  });

  it('wakes waiters on keys owned by every master (PUBLISH reaches the one subscriber node)', async () => {
    const ids = Array.from({ length: 30 }, () => randomUUID());
    await Promise.all(ids.map((id) => store.claim({ id, partition: 'p', token: id, fingerprint: '', lockTtlMs: 10_000 })));
    const waits = ids.map((id) => store.wait({ id, timeoutMs: 5_000 }));
    await sleep(50);
    const start = performance.now();
    await Promise.all(ids.map((id) => store.complete({ id, token: id, result: id, ttlMs: 60_000 })));
    expect((await Promise.all(waits)).every((o) => o.status === 'settled')).toBe(true);
    // Well under the 1000 ms fallback poll: every wake-up came by pub/sub.
    expect(performance.now() - start).toBeLessThan(500);
  });
});
