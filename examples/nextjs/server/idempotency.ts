/**
 * The store every instance shares. On serverless hosting (Vercel, Lambda, Cloud Run) each instance is its own
 * process, started and stopped at will, and a retry lands on whichever instance is free: a memory store per
 * instance would only dedupe retries that happen to hit the same warm instance, so the same key would run again
 * on the next. Keys must live in Redis (or PostgreSQL) that all instances reach.
 */
import { Redis } from 'ioredis';
import { createRedisStore } from 'trpc-idempotency/redis';

const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('Set REDIS_URL (e.g. redis://default:password@host:6379): serverless instances share no memory');

// One connection per instance, made when the instance loads this module and reused by every request it serves.
export const redis = new Redis(redisUrl);
// Without a listener ioredis prints "Unhandled error event" on every reconnect; the store reports failures itself.
redis.on('error', (error) => console.error('redis:', error.message));

export const store = createRedisStore({ redis, prefix: process.env.IDEMPOTENCY_PREFIX ?? 'shop:idem:' });
