/**
 * Redis store on a single node, behind the standalone adapter. Every process that shares the Redis shares the
 * keys: a retry that lands on another instance replays the first instance's result.
 * Run: `REDIS_URL=redis://127.0.0.1:6380 npx tsx examples/redis/server.ts`.
 */
import type { Cluster } from 'ioredis';
import { Redis } from 'ioredis';
import { createRedisStore } from 'trpc-idempotency/redis';
import { isMain } from '../shared/orders';
import { start as startStandalone } from '../standalone/server';

export interface RedisExampleOptions {
  port?: number;
  /** @default process.env.REDIS_URL */
  redisUrl?: string;
  /** Start of every record key, so several apps can share one Redis. */
  prefix?: string;
}

export const start = async ({ port = 3000, redisUrl = process.env.REDIS_URL, prefix = 'shop:idem:' }: RedisExampleOptions = {}) => {
  if (!redisUrl) throw new Error('Set REDIS_URL, e.g. REDIS_URL=redis://127.0.0.1:6380');
  // Your connected client; the store sends its commands on it and never closes it.
  return startOnRedis(new Redis(redisUrl), { port, prefix });
};

/** The same standalone server as examples/standalone, on a Redis store over `redis`; closing it quits `redis`. */
export const startOnRedis = async (redis: Redis | Cluster, { port, prefix }: { port: number; prefix: string }) => {
  const app = await startStandalone(port, { store: createRedisStore({ redis, prefix }) });
  return {
    ...app,
    close: async () => {
      await app.close();
      await redis.quit();
    },
  };
};

if (isMain(import.meta.url)) {
  const { url } = await start({ port: Number(process.env.PORT ?? 3000) });
  console.log(`redis example listening on ${url}`);
}
