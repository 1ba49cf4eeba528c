/**
 * The Redis store alone, without tRPC or the middleware: node CPU per store call with 64 concurrent callers,
 * next to plain ioredis commands (one GET; the seed baseline's GET + SET NX + SET). Uses the bench's own
 * redis-server. Bundle it like run.ts does (tsx's keepNames would inflate the figures):
 *
 *   npx esbuild bench/storeOnly.ts --bundle --platform=node --format=esm --packages=external \
 *     --outfile=.bench-out/storeOnly.mjs && node .bench-out/storeOnly.mjs
 */
import { Redis } from 'ioredis';
import { createRedisStore } from '../src/redis/index';
import { createRedisKv } from './baseline';
import { median, runWindow } from './load';
import { startBenchRedis } from './redisServer';

const CONCURRENCY = 64;
const POOL = 256;

const main = async (): Promise<void> => {
  const server = await startBenchRedis();
  const redis = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: 1 });
  try {
    await redis.ping();
    const store = createRedisStore({ redis, prefix: 'store-only:' });
    const result = JSON.stringify({ json: { id: 1, createdAt: new Date().toISOString(), total: 42 }, meta: { values: { createdAt: ['Date'] } } });
    const fingerprint = 'f'.repeat(43);
    for (let i = 0; i < POOL; i++) {
      await store.claim({ id: `r${i}`, partition: 'p', token: 't', fingerprint, lockTtlMs: 10_000 });
      await store.complete({ id: `r${i}`, token: 't', result, ttlMs: 600_000 });
      await redis.set(`store-only:g${i}`, result);
    }
    const kv = createRedisKv(redis);
    let seq = 0;
    const loops: Array<[string, (key: string) => Promise<unknown>]> = [
      ['ioredis GET', (key) => redis.get(`store-only:g${key}`)],
      ['store replay (claim of a completed key)', (key) => store.claim({ id: `r${key}`, partition: 'p', token: 'x', fingerprint, lockTtlMs: 10_000 })],
      [
        'store fresh (claim + complete)',
        async () => {
          const id = `f${seq++}`;
          await store.claim({ id, partition: 'p', token: 't', fingerprint, lockTtlMs: 10_000 });
          await store.complete({ id, token: 't', result, ttlMs: 60_000 });
        },
      ],
      [
        'ioredis GET + SET NX + SET (baseline, fresh)',
        async (key) => {
          // The seed's own commands (bench/baseline.ts), on a key it has not seen.
          const fresh = `store-only:s${seq++}`;
          await kv.get(`store-only:g${key}`);
          await kv.setNx(fresh, 'processing', 10_000);
          await kv.set(fresh, result, 60_000);
        },
      ],
    ];
    for (const [name, call] of loops) {
      const perCall: number[] = [];
      for (let round = 0; round < 4; round++) {
        const before = process.cpuUsage();
        const window = await runWindow(async (key) => void (await call(key)), (n) => String(n % POOL), { concurrency: CONCURRENCY, durationMs: 500 });
        const cpu = process.cpuUsage(before);
        if (round > 0) perCall.push((cpu.user + cpu.system) / window.ops);
      }
      console.log(`${name.padEnd(46)} ${median(perCall).toFixed(2)} us node CPU per call (median of 3)`);
    }
    await store.close();
  } finally {
    redis.disconnect();
    await server.stop();
  }
};

void main();
