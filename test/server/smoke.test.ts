import { initTRPC } from '@trpc/server';
import superjson from 'superjson';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency, createMemoryStore } from '../../src/index';
import type { IdempotencyExecution } from '../../src/index';

describe('smoke', () => {
  it('runs once, replays the rest, keeps ctx and input types', async () => {
    const t = initTRPC.context<{ user: string; idempotencyKey?: string }>().create({ transformer: superjson });
    const { idempotent } = createIdempotency<{ user: string }>({
      store: createMemoryStore(),
      getKey: ({ ctx }) => (ctx as { idempotencyKey?: string }).idempotencyKey,
      scope: ({ ctx }) => ctx.user,
    });
    let runs = 0;
    const router = t.router({
      create: t.procedure
        .input(z.object({ n: z.number() }))
        .use(idempotent())
        .mutation(({ input, ctx }) => {
          expectTypeOf(input.n).toEqualTypeOf<number>();
          expectTypeOf(ctx.user).toEqualTypeOf<string>();
          expectTypeOf(ctx.idempotency).toEqualTypeOf<IdempotencyExecution | null>();
          runs++;
          return { n: input.n, at: new Date(0), m: new Map([['a', 1n]]) };
        }),
    });
    const caller = t.createCallerFactory(router)({ user: 'u1', idempotencyKey: 'k1' });
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => caller.create({ n: 1 })));
    expect(runs).toBe(1);
    const ok = results.filter((r) => r.status === 'fulfilled');
    expect(ok.length).toBeGreaterThanOrEqual(1);
    const again = await caller.create({ n: 1 });
    expect(again.at).toBeInstanceOf(Date);
    expect(again.m.get('a')).toBe(1n);
    expect(runs).toBe(1);
  });
});
