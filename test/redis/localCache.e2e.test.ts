import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency } from '../../src/index';
import { createRedisStore } from '../../src/redis';
import type { RedisStore } from '../../src/redis';
import { connectRedis, randomPrefix } from '../helpers/redisClients';
import type { MonitoredStore } from '../helpers/redisMonitor';
import { monitoredStore, warmUpScripts } from '../helpers/redisMonitor';
import { createT, rejectionOf } from '../server/helpers';

/** One "process": its own createIdempotency (and local cache) over a Redis store; `runs` counts executions. */
const makeProcess = (store: RedisStore, localCache: { maxEntries?: number } | false = {}) => {
  const t = createT();
  const { idempotent } = createIdempotency({ store, localCache });
  let runs = 0;
  const router = t.router({
    pay: t.procedure
      .input(z.object({ amount: z.number() }))
      .use(idempotent())
      .mutation(({ input }) => {
        runs += 1;
        return { paid: input.amount, run: runs };
      }),
  });
  const caller = t.createCallerFactory(router);
  return {
    pay: (key: string, amount: number) => caller({ headers: { 'idempotency-key': key } }).pay({ amount }),
    runs: () => runs,
  };
};

// The local cache against a real Redis, its commands counted with MONITOR.
describe('localCache on the Redis store', () => {
  const prefix = randomPrefix();
  let m: MonitoredStore;
  beforeAll(async () => {
    m = await monitoredStore(prefix);
  });
  afterAll(async () => {
    await m.close();
  });
  const names = (commands: { name: string }[]) => commands.map((c) => c.name);

  it('replays a key this process completed with no Redis command at all', async () => {
    const a = makeProcess(m.store);
    const key = randomUUID();
    const fresh = await m.monitor.record(async () => expect(await a.pay(key, 5)).toEqual({ paid: 5, run: 1 }));
    expect(names(fresh)).toEqual(['evalsha', 'evalsha']);
    const replays = await m.monitor.record(async () => {
      for (let i = 0; i < 5; i++) expect(await a.pay(key, 5)).toEqual({ paid: 5, run: 1 });
    });
    expect(names(replays)).toEqual([]);
    expect(a.runs()).toBe(1);
  });

  it('costs every replay one command without the cache (the same calls, localCache: false)', async () => {
    const a = makeProcess(m.store, false);
    const key = randomUUID();
    await a.pay(key, 5);
    const replays = await m.monitor.record(async () => {
      for (let i = 0; i < 3; i++) await a.pay(key, 5);
    });
    expect(names(replays)).toEqual(['evalsha', 'evalsha', 'evalsha']);
  });

  it('is per process: another process (its own client) asks Redis once, then replays from its own cache', async () => {
    const redisB = connectRedis();
    const storeB = createRedisStore({ redis: redisB, prefix });
    try {
      await warmUpScripts(storeB);
      const a = makeProcess(m.store);
      const key = randomUUID();
      expect(await a.pay(key, 9)).toEqual({ paid: 9, run: 1 });
      const b = makeProcess(storeB);
      const first = await m.monitor.record(async () => expect(await b.pay(key, 9)).toEqual({ paid: 9, run: 1 }));
      expect(names(first)).toEqual(['evalsha']);
      const later = await m.monitor.record(async () => expect(await b.pay(key, 9)).toEqual({ paid: 9, run: 1 }));
      expect(names(later)).toEqual([]);
      expect(b.runs()).toBe(0);
    } finally {
      await storeB.close();
      await redisB.quit();
    }
  });

  it('still answers UNPROCESSABLE_CONTENT for another input: from the cache for its own completions, from Redis otherwise', async () => {
    const a = makeProcess(m.store);
    const b = makeProcess(m.store);
    const key = randomUUID();
    await a.pay(key, 1);
    const own = await m.monitor.record(async () => {
      expect((await rejectionOf(a.pay(key, 2))).code).toBe('UNPROCESSABLE_CONTENT');
    });
    expect(names(own)).toEqual([]);
    await b.pay(key, 1); // b learns the record from a claim: it knows only the fingerprint it claimed with
    const learnt = await m.monitor.record(async () => {
      expect((await rejectionOf(b.pay(key, 2))).code).toBe('UNPROCESSABLE_CONTENT');
    });
    expect(names(learnt)).toEqual(['evalsha']);
    expect(a.runs() + b.runs()).toBe(1);
  });

  it('keeps an entry learnt from a claim no longer than the record: Redis reports its PTTL', async () => {
    const key = randomUUID();
    const id = `ttl-${key}`;
    await warmUpScripts(m.store);
    expect((await m.store.claim({ id, partition: 'p', token: 'o', fingerprint: 'f', lockTtlMs: 10_000 })).status).toBe('acquired');
    await m.store.complete({ id, token: 'o', result: 'r', ttlMs: 60_000 });
    const replay = await m.store.claim({ id, partition: 'p', token: 'x', fingerprint: 'f', lockTtlMs: 10_000 });
    expect(replay).toMatchObject({ status: 'completed', result: 'r' });
    const left = (replay as { expiresInMs: number }).expiresInMs;
    expect(left).toBeGreaterThan(50_000);
    expect(left).toBeLessThanOrEqual(60_000);
  });
});
