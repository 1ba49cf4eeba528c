import { randomUUID } from 'node:crypto';
import { initTRPC } from '@trpc/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdempotency, idempotencyErrorData } from '../../src/index';
import type { IdempotencyExecution, IdempotencyStore } from '../../src/index';
import { createRedisStore } from '../../src/redis';
import type { RedisStore } from '../../src/redis';
import { connectRedis, randomPrefix, sleep } from '../helpers/redisClients';
import type { Redis } from 'ioredis';

// The old owner is "paused" past its lease: its process believes renewals work (they are faked), while Redis'
// clock ends the lease and a second owner takes the key over.
describe('durable steps on Redis when the owner is paused past its lease', () => {
  let redis: Redis;
  let store: RedisStore;
  beforeAll(() => {
    redis = connectRedis();
    store = createRedisStore({ redis, prefix: randomPrefix() });
  });
  afterAll(async () => {
    await store.close();
    await redis.quit();
  });

  it("refuses the old owner's late step write and aborts its signal; the new owner's steps stand", async () => {
    const paused: IdempotencyStore = { ...store, renew: async () => ({ status: 'ok' }) };
    const t = initTRPC.context<{ headers: Record<string, string> }>().create();
    const oldApp = createIdempotency({ store: paused, lockTtlMs: 300 });
    const newApp = createIdempotency({ store, lockTtlMs: 300 });
    const calls: string[] = [];
    let resume: () => void = () => {};
    let pause: () => void = () => {};
    const pausedAtEmail = new Promise<void>((resolve) => (pause = resolve));
    const body = (owner: string) => async ({ ctx }: { ctx: { idempotency: IdempotencyExecution | null } }) => {
      const steps = ctx.idempotency as IdempotencyExecution;
      const charge = await steps.step('charge', () => (calls.push(`charge by ${owner}`), 'ch_1'));
      if (owner === 'old') {
        await new Promise<void>((resolve) => {
          resume = resolve;
          pause();
        });
        try {
          await steps.step('email', () => (calls.push('email by old'), 'm_old'));
        } finally {
          expect(steps.signal.aborted).toBe(true);
        }
      }
      const email = await steps.step('email', () => (calls.push(`email by ${owner}`), `m_${owner}`));
      return { charge, email };
    };
    const oldRouter = t.router({ order: t.procedure.use(oldApp.idempotent()).mutation(body('old')) });
    const newRouter = t.router({ order: t.procedure.use(newApp.idempotent()).mutation(body('new')) });
    const key = randomUUID();
    const headers = { 'idempotency-key': key };

    const oldCall = t.createCallerFactory(oldRouter)({ headers }).order().catch((error: unknown) => error);
    // The old owner holds the key and has recorded its charge. Its lease began before that (at its claim), so
    // 350 ms from here the lease (300 ms, Redis time) is over, however slow the machine; the old owner does not know.
    await pausedAtEmail;
    await sleep(350);
    const fresh = await t.createCallerFactory(newRouter)({ headers }).order();
    expect(fresh).toEqual({ charge: 'ch_1', email: 'm_new' });
    resume();
    const oldError = await oldCall;
    expect(idempotencyErrorData(oldError)?.reason).toBe('lease_lost');
    // The old owner's fn ran (no downstream key here) but its record was refused; the new owner's answer stands.
    expect(calls).toEqual(['charge by old', 'email by new', 'email by old']);
    expect(await t.createCallerFactory(newRouter)({ headers }).order()).toEqual({ charge: 'ch_1', email: 'm_new' });
  });
});
