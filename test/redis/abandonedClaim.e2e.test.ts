import { initTRPC } from '@trpc/server';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import type { IdempotencyExecution } from '../../src/index';
import { createIdempotency } from '../../src/index';
import { createRedisStore } from '../../src/redis';
import type { RedisStore } from '../../src/redis';
import { randomPrefix, redisTarget, sleep } from '../helpers/redisClients';
import type { RedisServer } from '../helpers/redisServer';
import { startRedisServer } from '../helpers/redisServer';

/**
 * A claim the middleware gave up on (Redis stalled: 503 after operationTimeoutMs) stays in the socket and runs
 * when Redis resumes. It must not hold the key afterwards, nor take it over from a live owner.
 */

const operationTimeoutMs = 200;

const gate = () => {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
};

/** One app instance: its own ioredis client (connection) and store on the shared prefix. */
const instance = (server: RedisServer, { prefix, lockTtlMs }: { prefix: string; lockTtlMs: number }, runs: IdempotencyExecution[]) => {
  const redis = new Redis(server.url);
  redis.on('error', () => {});
  const store = createRedisStore({ redis, prefix, operationTimeoutMs });
  const t = initTRPC.context<{ key: string }>().create();
  const { idempotent } = createIdempotency<{ key: string }>({ store, lockTtlMs, getKey: ({ ctx }) => ctx.key });
  const gates: ReturnType<typeof gate>[] = [];
  const started: (() => void)[] = [];
  const router = t.router({
    charge: t.procedure.use(idempotent()).mutation(async ({ ctx }) => {
      const execution = ctx.idempotency as IdempotencyExecution;
      runs.push(execution);
      started.shift()?.();
      await gates.shift()?.opened;
      // The side effect is done: a lease lost meanwhile does not undo it.
      return { run: runs.length, fence: execution.fence };
    }),
  });
  const caller = t.createCallerFactory(router)({ key: 'order-1' });
  const nextStart = () => new Promise<void>((resolve) => started.push(resolve));
  return { redis, store, caller, gates, nextStart };
};

describe.runIf(redisTarget().canSpawn)('a claim abandoned during a Redis stall', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  const start = async () => {
    const server = await startRedisServer();
    cleanup.push(async () => {
      server.resume();
      await server.stop();
    });
    return server;
  };
  const track = <TApp extends { redis: Redis; store: RedisStore }>(app: TApp): TApp => {
    cleanup.push(async () => {
      await app.store.close();
      app.redis.disconnect();
    });
    return app;
  };

  it('does not hold the key once Redis resumes: the next call runs at once, not flagged as a takeover', async () => {
    const server = await start();
    const runs: IdempotencyExecution[] = [];
    const app = track(instance(server, { prefix: randomPrefix(), lockTtlMs: 30_000 }, runs));
    await app.redis.ping();
    server.pause();
    await expect(app.caller.charge()).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    await sleep(100); // well past the claim's deadline
    server.resume();
    // The next command on the same connection runs after the stalled claim: it has landed by then.
    await app.redis.ping();
    expect(await app.caller.charge()).toEqual({ run: 1, fence: runs[0]?.fence });
    expect(runs).toHaveLength(1);
    expect(runs[0]?.takeover).toBe(false);
  });

  it('does not take the key over from a live owner whose lease lapsed during the stall: one execution overall', async () => {
    const server = await start();
    const prefix = randomPrefix();
    const runs: IdempotencyExecution[] = [];
    const lockTtlMs = 600;
    const a = track(instance(server, { prefix, lockTtlMs }, runs));
    const b = track(instance(server, { prefix, lockTtlMs }, runs));
    await Promise.all([a.redis.ping(), b.redis.ping()]);
    const finish = gate();
    a.gates.push(finish);
    const aStarted = a.nextStart();
    const owner = a.caller.charge();
    await aStarted;

    server.pause();
    // A retry on another instance: its claim waits in the socket; the middleware gives up on it.
    await expect(b.caller.charge()).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    await sleep(lockTtlMs + 200); // the owner's lease ends in Redis time while Redis is stopped
    server.resume();
    await b.redis.ping(); // B's stalled claim has run by now

    // The owner finishes: the stalled claim took nothing, so its result is stored and it is the key's answer.
    finish.open();
    const answer = await owner;
    expect(answer).toEqual({ run: 1, fence: runs[0]?.fence });
    // Every retry replays it, on either instance; nothing runs a second time (before: the stalled claim took the
    // key, the owner's result was refused and a retry ran the charge again once that claim's lease ran out).
    for (let i = 0; i < 4; i++) {
      const retry = await (i % 2 ? a : b).caller.charge().catch((error: unknown) => error);
      if (retry && typeof retry === 'object' && 'code' in retry && retry.code === 'CONFLICT') await sleep(lockTtlMs);
      else expect(retry).toEqual(answer);
    }
    expect(await b.caller.charge()).toEqual(answer);
    expect(runs).toHaveLength(1);
  });

  it('gives a claim back when its acquired reply comes after the store gave up on it', async () => {
    const server = await start();
    const prefix = randomPrefix();
    const redis = new Redis(server.url);
    redis.on('error', () => {});
    const store = createRedisStore({ redis, prefix, operationTimeoutMs });
    track({ redis, store });
    // Warm up: the store knows Redis' clock and the script is loaded.
    await store.claim({ id: 'warm', token: 'w', fingerprint: '', partition: 'p', lockTtlMs: 10_000 });

    const claim = store.claim({ id: 'late', token: 'late-token', fingerprint: '', partition: 'p', lockTtlMs: 30_000 });
    // Block this process while Redis answers at once: the deadline fires before the reply is read.
    const until = performance.now() + operationTimeoutMs + 100;
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        while (performance.now() < until) {
          // busy: Redis has run the claim (acquired) but its reply sits unread in the socket
        }
        resolve();
      }),
    );
    const error = await claim.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isIdempotencyError(error) && error.code).toBe('STORE_UNAVAILABLE');
    // The late acquired reply is followed by a release on the same connection: read the record after it.
    let state: string | null = null;
    for (let i = 0; i < 50 && state !== 'r'; i++) {
      await redis.ping();
      state = await redis.hget(`${prefix}{late}`, 's');
    }
    expect(state).toBe('r');
    expect(await store.claim({ id: 'late', token: 'next', fingerprint: '', partition: 'p', lockTtlMs: 30_000 })).toMatchObject({
      status: 'acquired',
      takeover: false,
    });
  });
});
