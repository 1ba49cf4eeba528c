import { initTRPC, TRPCError } from '@trpc/server';
import { Redis } from 'ioredis';
import superjson from 'superjson';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { IdempotencyEvent, IdempotencyExecution } from '../../src/index';
import { createIdempotency } from '../../src/index';
import { createRedisStore } from '../../src/redis';
import type { RedisStore } from '../../src/redis';
import { randomPrefix, redisTarget, sleep } from '../helpers/redisClients';
import type { RedisServer } from '../helpers/redisServer';
import { startRedisServer } from '../helpers/redisServer';

/**
 * Faults through the real middleware on a real, dedicated redis-server that each test kills, stalls or
 * restarts: what the caller gets, and how many times the procedure's side effect happened.
 */

const gate = () => {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
};

/** A downstream system that keeps the largest fence it saw per key and refuses older writers. */
const fencedLedger = () => {
  const rows = new Map<string, { fence: number; value: number }>();
  return {
    rows,
    write(key: string, fence: number, value: number): boolean {
      const row = rows.get(key);
      if (row && row.fence >= fence) return false;
      rows.set(key, { fence, value });
      return true;
    },
  };
};

interface Setup {
  server: RedisServer;
  redis: Redis;
  store: RedisStore;
}

describe.runIf(redisTarget().canSpawn)('the middleware on Redis under faults', () => {
  const open: Setup[] = [];
  afterEach(async () => {
    for (const { server, redis, store } of open.splice(0)) {
      server.resume();
      await store.close();
      redis.disconnect();
      await server.stop();
    }
  });

  const setup = async ({ persistent, lockTtlMs }: { persistent: boolean; lockTtlMs: number }) => {
    const server = await startRedisServer({ args: persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : [] });
    const redis = new Redis(server.url);
    redis.on('error', () => {});
    const store = createRedisStore({ redis, prefix: randomPrefix(), operationTimeoutMs: 200 });
    open.push({ server, redis, store });
    const events: IdempotencyEvent[] = [];
    const listeners = new Set<(event: IdempotencyEvent) => void>();
    const t = initTRPC.context<{ key: string }>().create({ transformer: superjson });
    const { idempotent } = createIdempotency<{ key: string }>({
      store,
      lockTtlMs,
      getKey: ({ ctx }) => ctx.key,
      onEvent: (event) => {
        events.push(event);
        for (const listener of listeners) listener(event);
      },
    });
    const ledger = fencedLedger();
    const seen: IdempotencyExecution[] = [];
    const gates: ReturnType<typeof gate>[] = [];
    const started: (() => void)[] = [];
    const router = t.router({
      charge: t.procedure
        .input(z.object({ cents: z.number() }))
        .use(idempotent())
        .mutation(async ({ ctx, input }) => {
          const execution = ctx.idempotency as IdempotencyExecution;
          seen.push(execution);
          started.shift()?.();
          await gates[seen.length - 1]?.opened;
          if (execution.signal.aborted) throw new TRPCError({ code: 'CONFLICT', message: 'lease lost, not charging' });
          if (!ledger.write(execution.key, execution.fence, input.cents)) {
            throw new TRPCError({ code: 'CONFLICT', message: 'a newer owner already charged' });
          }
          return { charged: input.cents, fence: execution.fence, at: new Date(1) };
        }),
    });
    const caller = t.createCallerFactory(router)({ key: 'order-1' });
    /** Resolves when the next execution of the procedure starts. */
    const nextStart = () => new Promise<void>((resolve) => started.push(resolve));
    const nextEvent = (type: IdempotencyEvent['type']) =>
      new Promise<IdempotencyEvent>((resolve) => {
        const listener = (event: IdempotencyEvent) => {
          if (event.type !== type) return;
          listeners.delete(listener);
          resolve(event);
        };
        listeners.add(listener);
      });
    const waitReady = async () => {
      if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
    };
    return { server, redis, caller, ledger, seen, gates, events, nextStart, nextEvent, waitReady };
  };

  it('Redis killed between claim and complete: the caller gets a retryable 503 (its result is not stored yet), a retry after the restart replays it, never runs it again', async () => {
    const s = await setup({ persistent: true, lockTtlMs: 6_000 });
    s.gates.push(gate());
    const starting = s.nextStart();
    const first = s.caller.charge({ cents: 500 });
    await starting;
    await s.server.kill();
    const stored = s.nextEvent('completed');
    s.gates[0]?.open();
    // Not `executed` with a result the key may never replay: the procedure ran, its result is still being stored.
    await expect(first).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE', message: expect.stringMatching(/ran, but .*still being stored/) });

    // While Redis is down a retry is refused (fail closed), not run.
    await expect(s.caller.charge({ cents: 500 })).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });

    // Back (the claim survived in the AOF): the middleware, still holding the lease, stores the result.
    await s.server.restart();
    await s.waitReady();
    await stored;
    expect(await s.caller.charge({ cents: 500 })).toEqual({ charged: 500, fence: s.seen[0]?.fence, at: new Date(1) });
    expect(s.seen).toHaveLength(1);
    expect(s.ledger.rows.get('order-1')?.value).toBe(500);
  });

  it('Redis stalled (SIGSTOP) past the lease: a retry takes over, and the fence keeps the charge single', async () => {
    const s = await setup({ persistent: false, lockTtlMs: 600 });
    s.gates.push(gate(), gate());
    const firstStarting = s.nextStart();
    const first = s.caller.charge({ cents: 700 });
    await firstStarting;
    const lost = s.nextEvent('lease_lost');
    s.server.pause();
    await sleep(1_200); // Redis' clock runs on while it is stopped: the 600 ms lease ends
    s.server.resume();
    await lost;
    expect(s.seen[0]?.signal.aborted).toBe(true);

    // A retry takes the key over and charges, with a larger fence.
    const secondStarting = s.nextStart();
    const second = s.caller.charge({ cents: 700 });
    await secondStarting;
    s.gates[1]?.open();
    const charged = await second;
    expect(s.seen[1]?.takeover).toBe(true);
    expect(s.seen[1]?.fence).toBeGreaterThan(s.seen[0]?.fence ?? Infinity);

    // The paused first owner wakes up: its lease is gone, so it does not charge and cannot overwrite the result.
    s.gates[0]?.open();
    await expect(first).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(s.ledger.rows.get('order-1')).toEqual({ fence: s.seen[1]?.fence, value: 700 });
    expect(await s.caller.charge({ cents: 700 })).toEqual(charged);
    expect(s.seen).toHaveLength(2);
  });

  it('Redis restarted with persistence: a completed key still replays and the same store works on', async () => {
    const s = await setup({ persistent: true, lockTtlMs: 6_000 });
    const first = await s.caller.charge({ cents: 900 });
    await s.server.restart();
    await s.waitReady();
    expect(await s.caller.charge({ cents: 900 })).toEqual(first);
    expect(s.seen).toHaveLength(1);
  });

  it('Redis restarted without persistence forgets its records: the documented limit, a retry runs again', async () => {
    const s = await setup({ persistent: false, lockTtlMs: 6_000 });
    await s.caller.charge({ cents: 300 });
    await s.server.restart();
    await s.waitReady();
    const again = await s.caller.charge({ cents: 300 });
    expect(s.seen).toHaveLength(2);
    // The second run got a fresh claim: nothing marks it as a takeover, which is why docs/redis.md asks for AOF.
    expect(s.seen[1]?.takeover).toBe(false);
    expect(again.charged).toBe(300);
  });
});
