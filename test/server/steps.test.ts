import { TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency, createMemoryStore, idempotencyErrorData, stepsOf } from '../../src/index';
import type { IdempotencyExecution, IdempotencyOptions, IdempotencyStore } from '../../src/index';
import { createManualClock } from '../helpers/manualClock';
import type { TestContext } from './helpers';
import { createT, deferred, eventLog, spyStore, trpcErrorOf } from './helpers';

type Body = (ctx: IdempotencyExecution, input: { sku: string }) => Promise<unknown>;

const setup = (options: IdempotencyOptions<TestContext> = {}, overrides: Partial<IdempotencyStore> = {}) => {
  const t = createT();
  const clock = createManualClock();
  const spy = spyStore(createMemoryStore({ clock }), overrides);
  const log = eventLog();
  const { idempotent } = createIdempotency<TestContext>({ store: spy.store, clock, onEvent: log.onEvent, lockTtlMs: 3_000, ...options });
  let runs = 0;
  let body: Body = async () => 'ok';
  const router = t.router({
    order: t.procedure
      .input(z.object({ sku: z.string() }))
      .use(idempotent())
      .mutation(({ ctx, input }) => {
        runs++;
        return body(ctx.idempotency as IdempotencyExecution, input);
      }),
    unkeyed: t.procedure.use(idempotent()).mutation(({ ctx }) => stepsOf(ctx.idempotency).step('direct', () => 'ran directly')),
  });
  const caller = (key = 'order-key') => t.createCallerFactory(router)({ headers: { 'idempotency-key': key } });
  return {
    clock,
    spy,
    log,
    call: (sku = 'book', key = 'order-key') => caller(key).order({ sku }),
    unkeyed: () => t.createCallerFactory(router)({ headers: {} }).unkeyed(),
    runs: () => runs,
    body: (next: Body) => {
      body = next;
    },
  };
};

/** A fake downstream call: counts calls per step name. */
const counter = () => {
  const calls = new Map<string, number>();
  return {
    hit: <T>(name: string, value: T) => {
      calls.set(name, (calls.get(name) ?? 0) + 1);
      return value;
    },
    of: (name: string) => calls.get(name) ?? 0,
  };
};

const transient = () => new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'mail server down' });

describe('ctx.idempotency.step', () => {
  it('runs fn once, records it before resolving, and returns the value as the serializer gives it back', async () => {
    const s = setup();
    const original = { at: new Date(5), tags: new Map([['a', 1n]]) };
    let returned: unknown;
    s.body(async (ctx) => {
      returned = await ctx.step('charge', () => original);
      return 'done';
    });
    expect(await s.call()).toBe('done');
    expect(returned).toEqual(original);
    expect(returned).not.toBe(original); // deserialized: a replay sees exactly this
    expect((returned as typeof original).at).toBeInstanceOf(Date);
    expect((returned as typeof original).tags.get('a')).toBe(1n);
    expect(s.spy.callsOf('recordStep')).toHaveLength(1);
    expect(s.log.ofType('step_recorded')).toEqual([expect.objectContaining({ name: 'charge', outcome: 'ok', path: 'order' })]);
  });

  it('resumes after a transient error: recorded steps are replayed without calling fn, the next step runs, then the key completes', async () => {
    const s = setup();
    const downstream = counter();
    let failMail = true;
    const seen: unknown[] = [];
    s.body(async (ctx) => {
      const charge = await ctx.step('charge', () => downstream.hit('charge', { id: 'ch_1', at: new Date(7) }));
      seen.push(charge);
      await ctx.step('email', () => {
        if (failMail) throw transient();
        return downstream.hit('email', true);
      });
      return { charge };
    });
    expect((await trpcErrorOf(s.call())).code).toBe('INTERNAL_SERVER_ERROR');
    expect(s.log.ofType('released')).toHaveLength(1);
    failMail = false;
    expect(await s.call()).toEqual({ charge: { id: 'ch_1', at: new Date(7) } });
    expect(downstream.of('charge')).toBe(1);
    expect(downstream.of('email')).toBe(1);
    expect(seen[0]).toEqual(seen[1]); // the first run and the replay saw the same value
    expect(s.log.ofType('step_replayed')).toEqual([expect.objectContaining({ name: 'charge' })]);
    // Completed: later retries replay the result without running anything.
    expect(await s.call()).toEqual({ charge: { id: 'ch_1', at: new Date(7) } });
    expect(s.runs()).toBe(2);
  });

  it('costs one store call per new step and none per replayed step', async () => {
    const s = setup();
    let fail = true;
    s.body(async (ctx) => {
      await ctx.step('a', () => 1);
      await ctx.step('b', () => 2);
      if (fail) throw transient();
      await ctx.step('c', () => 3);
      return 'ok';
    });
    await trpcErrorOf(s.call());
    expect(s.spy.callsOf('recordStep').map((r) => r.name)).toEqual(['a', 'b']);
    fail = false;
    const before = s.spy.calls.length;
    expect(await s.call()).toBe('ok');
    expect(s.spy.calls.slice(before).map((c) => c.method)).toEqual(['claim', 'recordStep', 'complete']);
  });

  it('hands fn a step key that is the same for every attempt and owner, and differs per step and per key', async () => {
    const s = setup();
    const keys: string[] = [];
    let fail = true;
    s.body(async (ctx) => {
      await ctx.step('a', ({ stepKey }) => {
        keys.push(stepKey);
        if (fail) throw transient();
        return 1;
      });
      await ctx.step('b', ({ stepKey }) => keys.push(stepKey));
      return 'ok';
    });
    await trpcErrorOf(s.call());
    fail = false;
    await s.call();
    await s.call('book', 'another-key');
    expect(keys[0]).toBe(keys[1]);
    expect(keys[0]).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new Set(keys).size).toBe(keys.length - 1);
  });

  it('gives a takeover owner the steps of a crashed owner; the old owner is refused when it writes again, and its signal aborts', async () => {
    const lastWrite = deferred();
    // The old owner believes its renewals work (a paused process): only the store knows its lease ran out.
    const s = setup({}, {});
    const downstream = counter();
    let attempt = 0;
    let oldSignal: AbortSignal | undefined;
    let oldError: unknown;
    s.body(async (ctx) => {
      const mine = ++attempt;
      await ctx.step('charge', () => downstream.hit('charge', 'ch_1'));
      if (mine === 1) {
        oldSignal = ctx.signal;
        await lastWrite.promise;
        try {
          await ctx.step('email', () => downstream.hit('email-old', true));
        } catch (error) {
          oldError = error;
          throw error;
        }
      }
      await ctx.step('email', () => downstream.hit('email', true));
      return 'done';
    });
    s.spy.override('renew', async () => ({ status: 'ok' }));
    const first = s.call();
    await s.clock.advance(3_100);
    expect(await s.call()).toBe('done');
    expect(s.spy.callsOf('claim').length).toBe(2);
    lastWrite.resolve();
    expect((await trpcErrorOf(first)).code).toBe('CONFLICT');
    expect(idempotencyErrorData(oldError)?.reason).toBe('lease_lost');
    expect(oldSignal?.aborted).toBe(true);
    expect(downstream.of('charge')).toBe(1);
    expect(downstream.of('email')).toBe(1);
    expect(downstream.of('email-old')).toBe(1); // fn ran (at-least-once without a downstream key) but its record was refused
    expect(s.log.ofType('lease_lost')).toContainEqual(expect.objectContaining({ phase: 'step' }));
    expect(await s.call()).toBe('done');
  });

  it('refuses a step name used twice in one attempt before fn runs (STEP_DUPLICATE), and runs distinct names in parallel', async () => {
    const s = setup();
    const downstream = counter();
    s.body(async (ctx) => {
      const [a, b] = await Promise.all([ctx.step('a', () => downstream.hit('a', 1)), ctx.step('b', () => downstream.hit('b', 2))]);
      await ctx.step('a', () => downstream.hit('a-again', 3));
      return a + b;
    });
    const error = await trpcErrorOf(s.call());
    expect(error.code).toBe('INTERNAL_SERVER_ERROR');
    expect(idempotencyErrorData(error)?.reason).toBe('step_duplicate');
    expect(downstream.of('a-again')).toBe(0);
    expect(downstream.of('a') + downstream.of('b')).toBe(2);
  });

  it('ignores a recorded step the new code never reaches and reports it in steps_unused', async () => {
    const s = setup();
    let version = 1;
    s.body(async (ctx) => {
      if (version === 1) {
        await ctx.step('charge-v1', () => 1);
        throw transient();
      }
      return ctx.step('charge-v2', () => 2);
    });
    await trpcErrorOf(s.call());
    version = 2;
    expect(await s.call()).toBe(2);
    expect(s.log.ofType('steps_unused')).toEqual([expect.objectContaining({ names: ['charge-v1'], path: 'order' })]);
  });

  it('records an oversized step as not stored: the attempt goes on, a later one gets NOT_STORED (stored as the answer) instead of calling fn', async () => {
    const s = setup({ maxResultBytes: 100 });
    const downstream = counter();
    let fail = true;
    s.body(async (ctx) => {
      const big = await ctx.step('report', () => downstream.hit('report', 'x'.repeat(500)));
      if (fail) throw transient();
      return big.length;
    });
    await trpcErrorOf(s.call());
    expect(s.log.ofType('step_recorded')).toEqual([expect.objectContaining({ name: 'report', outcome: 'not_stored', bytes: 511 })]);
    fail = false;
    const error = await trpcErrorOf(s.call());
    expect(error.code).toBe('CONFLICT');
    expect(error.message).toMatch(/step "report" of mutation "order" already ran/);
    expect(downstream.of('report')).toBe(1);
    // The key's answer now: replayed without running the procedure.
    const runs = s.runs();
    expect((await trpcErrorOf(s.call())).message).toBe(error.message);
    expect(s.runs()).toBe(runs);
  });

  it('records an unserializable step as not stored', async () => {
    const s = setup();
    let fail = true;
    s.body(async (ctx) => {
      // A stream cannot be recorded (the same rule as a procedure's streamed output).
      await ctx.step('stream', () => ({ async *[Symbol.asyncIterator]() {} }));
      if (fail) throw transient();
      return 'ok';
    });
    await trpcErrorOf(s.call());
    fail = false;
    expect((await trpcErrorOf(s.call())).message).toMatch(/could not be serialized/);
  });

  it('records nothing when fn throws, so the next attempt calls it again', async () => {
    const s = setup();
    const downstream = counter();
    let fail = true;
    s.body(async (ctx) =>
      ctx.step('charge', () => {
        downstream.hit('charge', 0);
        if (fail) throw new TRPCError({ code: 'BAD_REQUEST', message: 'card declined' });
        return 'charged';
      }),
    );
    // BAD_REQUEST is final for the procedure: stored as the key's answer. A new key retries the step.
    expect((await trpcErrorOf(s.call())).code).toBe('BAD_REQUEST');
    expect(s.spy.callsOf('recordStep')).toHaveLength(0);
    fail = false;
    expect(await s.call('book', 'k2')).toBe('charged');
    expect(downstream.of('charge')).toBe(2);
  });

  it('records a final error with storeErrors: later attempts get it without calling fn', async () => {
    const s = setup();
    const downstream = counter();
    let failLater = true;
    s.body(async (ctx) => {
      let declined: unknown;
      try {
        await ctx.step(
          'charge',
          () => {
            downstream.hit('charge', 0);
            throw new TRPCError({ code: 'PAYMENT_REQUIRED', message: 'card declined' });
          },
          { storeErrors: true },
        );
      } catch (error) {
        declined = error;
      }
      if (failLater) throw transient();
      return (declined as TRPCError).message;
    });
    await trpcErrorOf(s.call());
    failLater = false;
    expect(await s.call()).toBe('card declined');
    expect(downstream.of('charge')).toBe(1);
    expect(s.log.ofType('step_recorded')).toEqual([expect.objectContaining({ outcome: 'error' })]);
  });

  it('at most once: an attempt that finds the step started but not finished does not call fn, and its STEP_INDETERMINATE is stored as the answer', async () => {
    const s = setup();
    const downstream = counter();
    const never = deferred();
    let attempt = 0;
    s.body(async (ctx) => {
      const mine = ++attempt;
      return ctx.step(
        'wire-transfer',
        async () => {
          downstream.hit('wire', 0);
          if (mine === 1) await never.promise; // the process "dies" here
          return 'sent';
        },
        { atMostOnce: true },
      );
    });
    s.spy.override('renew', async () => ({ status: 'ok' })); // the first owner never notices
    void s.call().catch(() => {});
    await s.clock.advance(3_100);
    const error = await trpcErrorOf(s.call());
    expect(error.code).toBe('CONFLICT');
    expect(idempotencyErrorData(error)?.reason).toBe('step_indeterminate');
    expect(downstream.of('wire')).toBe(1);
    const runs = s.runs();
    expect((await trpcErrorOf(s.call())).message).toBe(error.message);
    expect(s.runs()).toBe(runs);
    expect(s.spy.callsOf('recordStep').map((r) => r.name)).toEqual(['\u0001wire-transfer']);
  });

  it('at most once: a finished step is replayed like any other', async () => {
    const s = setup();
    const downstream = counter();
    let fail = true;
    s.body(async (ctx) => {
      const sent = await ctx.step('wire', () => downstream.hit('wire', 'sent'), { atMostOnce: true });
      if (fail) throw transient();
      return sent;
    });
    await trpcErrorOf(s.call());
    fail = false;
    expect(await s.call()).toBe('sent');
    expect(downstream.of('wire')).toBe(1);
  });

  it('answers a different input on a key with recorded steps with UNPROCESSABLE_CONTENT, never a resume', async () => {
    const s = setup();
    const downstream = counter();
    s.body(async (ctx, input) => {
      await ctx.step('charge', () => downstream.hit(`charge-${input.sku}`, 1));
      throw transient();
    });
    await trpcErrorOf(s.call('book'));
    const error = await trpcErrorOf(s.call('lamp'));
    expect(error.code).toBe('UNPROCESSABLE_CONTENT');
    expect(downstream.of('charge-lamp')).toBe(0);
  });

  it('refuses a bad step name or a step after the procedure returned with INVALID_OPTION', async () => {
    const s = setup();
    let kept: IdempotencyExecution | undefined;
    s.body(async (ctx) => {
      kept = ctx;
      return 'ok';
    });
    await s.call();
    const late = await trpcErrorOf((kept as IdempotencyExecution).step('late', () => 1));
    expect(idempotencyErrorData(late)?.reason).toBe('invalid_option');
    s.body(async (ctx) => ctx.step('bad\nname', () => 1));
    const bad = await trpcErrorOf(s.call('book', 'k3'));
    expect(bad.message).toMatch(/needs a name of 1 to 200 characters/);
  });

  it('fails a step whose record cannot be written with SERVICE_UNAVAILABLE; the retry calls it again with the same step key', async () => {
    let down = true;
    const s = setup();
    const real = s.spy.store.recordStep;
    s.spy.store.recordStep = (request) => (down ? Promise.reject(new Error('connection reset')) : real(request));
    const keys: string[] = [];
    s.body(async (ctx) => ctx.step('charge', ({ stepKey }) => keys.push(stepKey)));
    const error = await trpcErrorOf(s.call());
    expect(error.code).toBe('SERVICE_UNAVAILABLE');
    expect(s.log.ofType('store_error')).toEqual([expect.objectContaining({ operation: 'step' })]);
    down = false;
    expect(await s.call()).toBe(2);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toBe(keys[1]);
  });

  it('stepsOf(null).step runs fn directly when the call has no key', async () => {
    const s = setup();
    expect(await s.unkeyed()).toBe('ran directly');
    expect(s.spy.callsOf('recordStep')).toHaveLength(0);
  });
});
