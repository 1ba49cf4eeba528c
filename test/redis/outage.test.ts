import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import { createRedisStore } from '../../src/redis';
import type { RedisStore } from '../../src/redis';
import { randomPrefix, redisTarget, sleep } from '../helpers/redisClients';
import type { RedisServer } from '../helpers/redisServer';
import { startRedisServer } from '../helpers/redisServer';

const operationTimeoutMs = 500;
/** Scheduling slack on top of the bound. */
const slackMs = 250;

/** Runs `call`, expects STORE_UNAVAILABLE, returns how long it took. */
const failsUnavailable = async (call: () => Promise<unknown>): Promise<number> => {
  const start = performance.now();
  const error = await call().then(
    (value) => new Error(`expected STORE_UNAVAILABLE, got ${JSON.stringify(value)}`),
    (e: unknown) => e,
  );
  const elapsed = performance.now() - start;
  expect(isIdempotencyError(error) && error.code, String(error)).toBe('STORE_UNAVAILABLE');
  return elapsed;
};

// Each test stops, stalls or restarts its own redis-server: never the shared ones.
describe.runIf(redisTarget().canSpawn)('createRedisStore when Redis is down or stalled', () => {
  let server: RedisServer;
  let redis: Redis;
  let store: RedisStore;
  const prefix = randomPrefix();
  const claim = (id: string, token: string = randomUUID(), lockTtlMs = 10_000) =>
    store.claim({ id, partition: 'p', token, fingerprint: '', lockTtlMs });

  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server.stop();
  });
  beforeAll(() => {
    // The user's client with ioredis defaults: offline queue on, 20 retries per request, auto-reconnect.
    redis = new Redis(server.url);
    redis.on('error', () => {});
    store = createRedisStore({ redis, prefix, operationTimeoutMs });
  });
  afterEach(async () => {
    server.resume();
    if (redis.status !== 'ready') await restartAndReconnect();
  });
  /** Restarts the server and waits for the client to be ready (listening first: ioredis may be quicker). */
  const restartAndReconnect = async (): Promise<void> => {
    const ready = new Promise<void>((resolve) => redis.once('ready', () => resolve()));
    await server.restart().catch(() => {});
    if (redis.status !== 'ready') await ready;
  };
  afterAll(async () => {
    await store.close();
    redis.disconnect();
  });

  it('fails every call within operationTimeoutMs while Redis is killed, then works again after a restart', async () => {
    const id = randomUUID();
    const token = randomUUID();
    expect((await claim(id, token)).status).toBe('acquired');
    await server.kill();
    for (const call of [
      () => claim(randomUUID()),
      () => store.renew({ id, token, lockTtlMs: 10_000 }),
      () => store.complete({ id, token, result: 'r', ttlMs: 60_000 }),
      () => store.release({ id, token }),
      () => store.wait({ id, timeoutMs: 5_000 }),
    ]) {
      expect(await failsUnavailable(call)).toBeLessThan(operationTimeoutMs + slackMs);
    }
    await sleep(300); // calls keep failing fast while ioredis reconnects in the background
    expect(await failsUnavailable(() => claim(randomUUID()))).toBeLessThan(operationTimeoutMs + slackMs);

    await restartAndReconnect();
    // The same store, untouched: the first call after the reconnect succeeds.
    const fresh = randomUUID();
    expect((await claim(fresh)).status).toBe('acquired');
    expect((await claim(fresh)).status).toBe('in_progress');
  });

  it('fails within the bound while Redis is stalled (SIGSTOP), and answers again after SIGCONT', async () => {
    const id = randomUUID();
    await claim(id, 'owner');
    server.pause();
    const elapsed = await failsUnavailable(() => claim(id));
    expect(elapsed).toBeGreaterThanOrEqual(operationTimeoutMs - 5);
    expect(elapsed).toBeLessThan(operationTimeoutMs + slackMs);
    expect(await failsUnavailable(() => store.wait({ id, timeoutMs: 5_000 }))).toBeLessThan(
      operationTimeoutMs + slackMs,
    );
    server.resume();
    expect((await claim(id)).status).toBe('in_progress');
    expect(await store.complete({ id, token: 'owner', result: 'r', ttlMs: 60_000 })).toEqual({ status: 'ok' });
  });

  it('fails every caller of a batch within the bound while Redis is stalled, and batches work again after SIGCONT', async () => {
    const ids = Array.from({ length: 10 }, () => randomUUID());
    server.pause();
    const start = performance.now();
    const results = await Promise.allSettled(ids.map((id) => claim(id)));
    const elapsed = performance.now() - start;
    for (const result of results) {
      const reason = result.status === 'rejected' ? (result.reason as unknown) : undefined;
      expect(isIdempotencyError(reason) && reason.code, String(reason)).toBe('STORE_UNAVAILABLE');
    }
    expect(elapsed).toBeLessThan(operationTimeoutMs + slackMs);
    server.resume();
    // The stalled batch may still land once Redis resumes (leases that expire): fresh ids afterwards.
    const outcomes = await Promise.all(ids.map(() => claim(randomUUID())));
    expect(outcomes.every((o) => o.status === 'acquired')).toBe(true);
  });

  it('fails a complete within the bound when Redis dies between claim and complete', async () => {
    const id = randomUUID();
    const token = randomUUID();
    expect((await claim(id, token)).status).toBe('acquired');
    // ... the procedure runs; Redis dies before its result is stored ...
    await server.kill();
    expect(
      await failsUnavailable(() => store.complete({ id, token, result: 'r', ttlMs: 60_000 })),
    ).toBeLessThan(operationTimeoutMs + slackMs);
  });

  it('fails a claim within the default bound (2000 ms) with the default options', async () => {
    const defaults = createRedisStore({ redis, prefix: randomPrefix() });
    server.pause();
    const elapsed = await failsUnavailable(() => defaults.claim({ id: 'x', partition: 'p', token: 't', fingerprint: '', lockTtlMs: 1000 }));
    expect(elapsed).toBeGreaterThanOrEqual(1_995);
    expect(elapsed).toBeLessThan(2_000 + slackMs);
  });

  it('takes over a lease that ran out while Redis was stalled; the old owner cannot clobber the new record', async () => {
    const id = randomUUID();
    const lockTtlMs = 200;
    const first = await claim(id, 'old', lockTtlMs);
    expect(first.status).toBe('acquired');
    // The old owner's procedure is running; Redis stalls past the lease, so its renewal fails.
    server.pause();
    expect(await failsUnavailable(() => store.renew({ id, token: 'old', lockTtlMs }))).toBeLessThan(
      operationTimeoutMs + slackMs,
    );
    server.resume();
    const second = await claim(id, 'new', lockTtlMs);
    expect(second).toMatchObject({ status: 'acquired', takeover: true });
    if (first.status !== 'acquired' || second.status !== 'acquired') return;
    expect(second.fence).toBeGreaterThan(first.fence);
    // The old owner finishes late: everything it tries is refused, nothing is written.
    expect(await store.renew({ id, token: 'old', lockTtlMs })).toEqual({ status: 'lost' });
    expect(await store.complete({ id, token: 'old', result: 'stale', ttlMs: 60_000 })).toEqual({ status: 'lost' });
    expect(await store.release({ id, token: 'old' })).toEqual({ status: 'lost' });
    expect(await redis.hget(`${prefix}{${id}}`, 't')).toBe('new');
    expect(await store.complete({ id, token: 'new', result: 'fresh', ttlMs: 60_000 })).toEqual({ status: 'ok' });
    expect(await claim(id)).toEqual({ status: 'completed', result: 'fresh', expiresInMs: expect.any(Number) });
  });
});
