import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import { initTRPC } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency } from '../../src/index';
import { createRedisStore } from '../../src/redis';
import type { RedisStore } from '../../src/redis';
import { connectRedis, randomPrefix, redisTarget } from '../helpers/redisClients';
import type { RedisMonitor } from '../helpers/redisMonitor';
import { startMonitor } from '../helpers/redisMonitor';

/** `pay` holds its caller until the test calls the resolver handed to `onSlow`. */
const makeRouter = (store: RedisStore, onSlow: (resolve: () => void) => void) => {
  const t = initTRPC.context<{ req: unknown }>().create();
  const { idempotent } = createIdempotency({ store });
  return t.router({
    pay: t.procedure
      .input(z.object({ amount: z.number(), slow: z.boolean().optional() }))
      .use(idempotent())
      .mutation(async ({ input }) => {
        if (input.slow) await new Promise<void>((resolve) => onSlow(resolve));
        return { paid: input.amount };
      }),
  });
};
type PayRouter = ReturnType<typeof makeRouter>;

// Round trips to Redis through the real middleware and a real HTTP server, as Redis counts them.
describe('createRedisStore behind createIdempotency: Redis commands per call', () => {
  let redis: Redis;
  let store: RedisStore;
  let monitor: RedisMonitor;
  let url: string;
  let close: () => Promise<void>;
  let release: () => void = () => {};

  beforeAll(async () => {
    redis = connectRedis();
    store = createRedisStore({ redis, prefix: randomPrefix() });
    const router = makeRouter(store, (resolve) => (release = resolve));
    const server = createHTTPServer({ router, createContext: ({ req }) => ({ req }) });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => new Promise<void>((resolve) => server.close(() => resolve()));
    monitor = await startMonitor(redisTarget().url);
    // Warm up: ioredis sends each script as EVAL once per connection, then EVALSHA.
    await pay(randomUUID(), 1);
  });
  afterAll(async () => {
    await monitor.stop();
    await close();
    await store.close();
    await redis.quit();
  });

  const pay = (key: string, amount: number, slow = false) =>
    createTRPCClient<PayRouter>({ links: [httpLink({ url, headers: { 'idempotency-key': key } })] }).pay.mutate({
      amount,
      slow,
    });

  it('a fresh call costs 2 (claim, complete) and a replay 1', async () => {
    const key = randomUUID();
    const fresh = await monitor.record(async () => expect(await pay(key, 5)).toEqual({ paid: 5 }));
    expect(fresh.map((c) => c.name)).toEqual(['evalsha', 'evalsha']);
    const replay = await monitor.record(async () => expect(await pay(key, 5)).toEqual({ paid: 5 }));
    expect(replay.map((c) => c.name)).toEqual(['evalsha']);
  });

  it('a concurrent duplicate costs 1 (its claim answers in_progress)', async () => {
    const key = randomUUID();
    const first = pay(key, 7, true);
    await new Promise((resolve) => setTimeout(resolve, 100)); // the first call holds the claim
    const duplicate = await monitor.record(async () => {
      const error = await pay(key, 7, true).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TRPCClientError);
      expect((error as TRPCClientError<any>).data?.code).toBe('CONFLICT');
    });
    expect(duplicate.map((c) => c.name)).toEqual(['evalsha']);
    release();
    expect(await first).toEqual({ paid: 7 });
  });
});
