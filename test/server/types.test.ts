import { initTRPC } from '@trpc/server';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency, idempotent } from '../../src/index';
import type { GetKeyOptions, IdempotencyExecution } from '../../src/index';

interface AppContext {
  user: { id: string; admin: boolean };
  headers: Record<string, string>;
}

describe('createIdempotency', () => {
  it('leaves ctx and input inference untouched and types ctx.idempotency', async () => {
    const t = initTRPC.context<AppContext>().create();
    const { idempotent: guard } = createIdempotency<AppContext>({
      scope: ({ ctx, path }) => {
        expectTypeOf(ctx).toEqualTypeOf<AppContext>();
        expectTypeOf(path).toEqualTypeOf<string>();
        return ctx.user.id;
      },
      getKey: (opts) => {
        expectTypeOf(opts).toEqualTypeOf<GetKeyOptions<AppContext>>();
        expectTypeOf(opts.batchIndex).toEqualTypeOf<number>();
        return opts.ctx.headers['idempotency-key'];
      },
    });
    const router = t.router({
      before: t.procedure
        .use(guard())
        .input(z.object({ amount: z.number(), note: z.string().optional() }))
        .mutation(({ input, ctx }) => {
          expectTypeOf(input).toEqualTypeOf<{ amount: number; note?: string | undefined }>();
          expectTypeOf(ctx.user).toEqualTypeOf<{ id: string; admin: boolean }>();
          expectTypeOf(ctx.idempotency).toEqualTypeOf<IdempotencyExecution | null>();
          return { amount: input.amount, key: ctx.idempotency?.key ?? null };
        }),
      after: t.procedure
        .input(z.object({ id: z.string() }))
        .use(guard({ fingerprint: false }))
        .mutation(({ input, ctx }) => {
          expectTypeOf(input.id).toEqualTypeOf<string>();
          expectTypeOf(ctx.headers).toEqualTypeOf<Record<string, string>>();
          if (ctx.idempotency) {
            expectTypeOf(ctx.idempotency.fence).toEqualTypeOf<number>();
            expectTypeOf(ctx.idempotency.signal).toEqualTypeOf<AbortSignal>();
            expectTypeOf(ctx.idempotency.takeover).toEqualTypeOf<boolean>();
            expectTypeOf(ctx.idempotency.keyHash).toEqualTypeOf<string>();
          }
          return input.id;
        }),
      zeroConfig: t.procedure.use(idempotent()).mutation(({ ctx }) => {
        expectTypeOf(ctx.idempotency).toEqualTypeOf<IdempotencyExecution | null>();
        expectTypeOf(ctx.user.admin).toEqualTypeOf<boolean>();
        return true;
      }),
    });
    const caller = t.createCallerFactory(router)({ user: { id: 'u', admin: false }, headers: { 'idempotency-key': 'typed' } });
    const result = await caller.before({ amount: 3 });
    expectTypeOf(result).toEqualTypeOf<{ amount: number; key: string | null }>();
    expect(result).toEqual({ amount: 3, key: 'typed' });
    expectTypeOf(caller.after).parameter(0).toEqualTypeOf<{ id: string }>();
    expect(await caller.after({ id: 'x' })).toBe('x');
  });

  it('rejects mistyped options at compile time', () => {
    // @ts-expect-error ttlMs is a number of milliseconds
    expect(() => createIdempotency({ ttlMs: '1d' })).toThrow(/ttlMs/);
    // @ts-expect-error onInProgress is 'reject' or 'wait'
    expect(() => createIdempotency({ onInProgress: 'queue' })).toThrow(/onInProgress/);
    const { idempotent: guard } = createIdempotency();
    // @ts-expect-error store is instance-wide, not per procedure
    expect(() => guard({ store: undefined, headerName: 'x' })).toThrow(/headerName/);
  });
});
