import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createRedisStore } from '../../src/redis';
import type { RedisStore, RedisStoreOptions } from '../../src/redis';
import { connectRedis, randomPrefix, redisTarget, sleep } from '../helpers/redisClients';
import { startMonitor } from '../helpers/redisMonitor';

describe('createRedisStore wait', () => {
  const opened: Array<{ store: RedisStore; redis: Redis }> = [];
  const open = (options: Partial<RedisStoreOptions> = {}) => {
    const redis = connectRedis();
    const prefix = randomPrefix();
    const store = createRedisStore({ redis, prefix, ...options });
    opened.push({ store, redis });
    return { store, redis, prefix };
  };
  afterEach(async () => {
    for (const { store, redis } of opened.splice(0)) {
      await store.close();
      await redis.quit();
    }
  });

  it('wakes a waiter within a few ms of complete (pub/sub), measured over 30 runs', async () => {
    const { store } = open();
    const latencies: number[] = [];
    for (let i = 0; i < 30; i++) {
      const id = randomUUID();
      await store.claim({ id, partition: 'p', token: 'owner', fingerprint: '', lockTtlMs: 10_000 });
      const waiting = store.wait({ id, timeoutMs: 5_000 });
      await sleep(20); // let the waiter subscribe and read the record once
      const start = performance.now();
      let completedAt = 0;
      const completing = store.complete({ id, token: 'owner', result: 'r', ttlMs: 60_000 }).then(() => {
        completedAt = performance.now();
      });
      expect(await waiting).toEqual({ status: 'settled' });
      const wokeAt = performance.now();
      await completing;
      latencies.push(wokeAt - start);
      expect(completedAt === 0 || wokeAt - completedAt < 50).toBe(true);
    }
    latencies.sort((a, b) => a - b);
    const median = latencies[15] ?? Number.NaN;
    const p95 = latencies[28] ?? Number.NaN;
    console.info(
      `wait wake-up latency from sending complete: median ${median.toFixed(2)} ms, p95 ${p95.toFixed(2)} ms, max ${(latencies[29] ?? 0).toFixed(2)} ms`,
    );
    // Far below the 1000 ms fallback poll: the wake-up came from pub/sub.
    expect(p95).toBeLessThan(100);
  });

  it('shares one subscription and one poll per key: 50 waiters cost what 1 waiter costs', async () => {
    const { store } = open();
    const monitor = await startMonitor(redisTarget().url);
    const measure = async (waiters: number) => {
      const id = randomUUID();
      await store.claim({ id, partition: 'p', token: 'owner', fingerprint: '', lockTtlMs: 10_000 });
      const commands = await monitor.record(async () => {
        const waiting = Promise.all(Array.from({ length: waiters }, () => store.wait({ id, timeoutMs: 10_000 })));
        await sleep(1_300); // one fallback poll (1000 ms) falls inside
        await store.complete({ id, token: 'owner', result: 'r', ttlMs: 60_000 });
        const outcomes = await waiting;
        expect(outcomes.every((o) => o.status === 'settled')).toBe(true);
        await sleep(20); // the unsubscribe
      });
      return commands.map((c) => c.name);
    };
    try {
      await measure(1); // opens the subscriber connection and loads the scripts
      const one = await measure(1);
      const fifty = await measure(50);
      console.info(`commands while waiting, 1 waiter: ${one.join(' ')}; 50 waiters: ${fifty.join(' ')}`);
      expect(fifty.filter((name) => name === 'subscribe')).toHaveLength(1);
      expect(fifty.filter((name) => name === 'unsubscribe')).toHaveLength(1);
      expect(fifty.length).toBeLessThanOrEqual(6); // subscribe, peek, poll, complete, unsubscribe (+1 poll of slack)
      expect(fifty.length).toBeLessThanOrEqual(one.length + 1);
    } finally {
      await monitor.stop();
    }
  });

  it('falls back to polling when no message comes (the record settled without a publish)', async () => {
    const { store, redis, prefix } = open({ waitPollIntervalMs: 100 });
    const id = randomUUID();
    await store.claim({ id, partition: 'p', token: 'owner', fingerprint: '', lockTtlMs: 10_000 });
    const start = performance.now();
    const waiting = store.wait({ id, timeoutMs: 5_000 });
    await sleep(30);
    // Settle the record behind the store's back: no pub/sub message.
    await redis.hset(`${prefix}{${id}}`, 's', 'r');
    expect(await waiting).toEqual({ status: 'settled' });
    expect(performance.now() - start).toBeLessThan(1_000);
  });

  it('keeps waiting through lease renewals and wakes on the completion', async () => {
    const { store } = open();
    const id = randomUUID();
    await store.claim({ id, partition: 'p', token: 'owner', fingerprint: '', lockTtlMs: 200 });
    let settledAt = 0;
    const waiting = store.wait({ id, timeoutMs: 5_000 }).then((outcome) => {
      settledAt = performance.now();
      return outcome;
    });
    for (let i = 0; i < 6; i++) {
      await sleep(70);
      expect(await store.renew({ id, token: 'owner', lockTtlMs: 200 })).toEqual({ status: 'ok' });
    }
    expect(settledAt).toBe(0);
    const completedAt = performance.now();
    await store.complete({ id, token: 'owner', result: 'r', ttlMs: 60_000 });
    expect(await waiting).toEqual({ status: 'settled' });
    expect(settledAt).toBeGreaterThanOrEqual(completedAt);
  });

  it('works when your client runs without an offline queue (the subscriber is a new connection)', async () => {
    const redis = connectRedis({ enableOfflineQueue: false });
    await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
    const store = createRedisStore({ redis, prefix: randomPrefix() });
    opened.push({ store, redis });
    const id = randomUUID();
    await store.claim({ id, partition: 'p', token: 'owner', fingerprint: '', lockTtlMs: 10_000 });
    const waiting = store.wait({ id, timeoutMs: 5_000 });
    await sleep(30);
    await store.complete({ id, token: 'owner', result: 'r', ttlMs: 60_000 });
    expect(await waiting).toEqual({ status: 'settled' });
  });

  it('still wakes when its subscriber connection is killed and the completion is published meanwhile', async () => {
    const name = `killed-sub-${randomUUID().slice(0, 8)}`;
    const redis = connectRedis({ connectionName: name });
    const store = createRedisStore({ redis, prefix: randomPrefix(), waitPollIntervalMs: 200 });
    opened.push({ store, redis });
    const id = randomUUID();
    await store.claim({ id, partition: 'p', token: 'owner', fingerprint: '', lockTtlMs: 10_000 });
    const waiting = store.wait({ id, timeoutMs: 5_000 });
    await sleep(30);
    // Kill only this store's subscriber (it inherits the client's name and is the one with subscriptions).
    const list = String(await redis.client('LIST'));
    const subscriberIds = list
      .split('\n')
      .filter((line) => line.includes(`name=${name} `) && / sub=[1-9]/.test(line))
      .map((line) => /id=(\d+)/.exec(line)?.[1]);
    expect(subscriberIds).toHaveLength(1);
    await redis.client('KILL', 'ID', subscriberIds[0] as string);
    await store.complete({ id, token: 'owner', result: 'r', ttlMs: 60_000 });
    const start = performance.now();
    expect(await waiting).toEqual({ status: 'settled' });
    expect(performance.now() - start).toBeLessThan(1_000);
  });

  it('lets many concurrent waiters on many keys settle independently', async () => {
    const { store } = open();
    const ids = Array.from({ length: 20 }, () => randomUUID());
    for (const id of ids) await store.claim({ id, partition: 'p', token: id, fingerprint: '', lockTtlMs: 10_000 });
    const waits = ids.map((id) => store.wait({ id, timeoutMs: 400 }));
    await sleep(30);
    const [finished, ...still] = ids;
    await store.complete({ id: finished as string, token: finished as string, result: 'r', ttlMs: 60_000 });
    const outcomes = await Promise.all(waits);
    expect(outcomes[0]).toEqual({ status: 'settled' });
    expect(outcomes.slice(1).every((o) => o.status === 'timeout')).toBe(true);
    expect(still).toHaveLength(19);
  });
});
