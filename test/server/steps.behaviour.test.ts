import { createHash } from 'node:crypto';
import { TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { IdempotencyError } from '../../src/errors';
import { createIdempotency, createMemoryStore, idempotencyErrorData, stepsOf } from '../../src/index';
import type { IdempotencyExecution, IdempotencyOptions } from '../../src/index';
import { refusedStep, stepErrorVerdict, stepKeyOf } from '../../src/server/steps';
import { createManualClock } from '../helpers/manualClock';
import type { TestContext } from './helpers';
import { createT, eventLog, spyStore, trpcErrorOf } from './helpers';

type Body = (ctx: IdempotencyExecution) => Promise<unknown>;

/** One keyed mutation whose body each test sets, on a spied memory store and a manual clock (as in steps.test.ts). */
const setup = (options: IdempotencyOptions<TestContext> = {}) => {
  const t = createT();
  const clock = createManualClock();
  const spy = spyStore(createMemoryStore({ clock }));
  const log = eventLog();
  const { idempotent } = createIdempotency<TestContext>({ store: spy.store, clock, onEvent: log.onEvent, lockTtlMs: 3_000, ...options });
  let body: Body = async () => 'ok';
  const router = t.router({
    order: t.procedure
      .input(z.object({ sku: z.string() }))
      .use(idempotent())
      .mutation(({ ctx }) => body(ctx.idempotency as IdempotencyExecution)),
  });
  return {
    clock,
    spy,
    log,
    call: (key = 'order-key') => t.createCallerFactory(router)({ headers: { 'idempotency-key': key } }).order({ sku: 'book' }),
    body: (next: Body) => {
      body = next;
    },
  };
};

const transient = () => new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'mail server down' });

describe('ctx.idempotency.step: names and arguments', () => {
  it('accepts a name of 200 characters and refuses 201, an empty name, control characters and a non-string, before fn runs', async () => {
    const s = setup();
    let ran = 0;
    let name: unknown = '';
    s.body(async (ctx) => ctx.step(name as string, () => ++ran));
    name = 'n'.repeat(200);
    expect(await s.call('ok-200')).toBe(1);
    for (const [i, bad] of ['n'.repeat(201), '', 'tab\there', 'nul\u0000', 'unit\u001fsep', 'del\u007f', 42, undefined].entries()) {
      name = bad;
      const error = await trpcErrorOf(s.call(`bad-${i}`));
      expect(idempotencyErrorData(error)?.reason).toBe('invalid_option');
      // The name is quoted, at most 60 characters of it: a hostile name is not echoed whole.
      expect((error.cause as IdempotencyError).message).toBe(
        `trpc-idempotency: a step of mutation "order" needs a name of 1 to 200 characters without control characters, got ${String(JSON.stringify(bad)).slice(0, 60)}`,
      );
    }
    expect(ran).toBe(1);
  });

  it('refuses a step whose fn is not a function with INVALID_OPTION', async () => {
    const s = setup();
    s.body(async (ctx) => ctx.step('charge', 'not a function' as never));
    const error = await trpcErrorOf(s.call());
    expect(idempotencyErrorData(error)?.reason).toBe('invalid_option');
    expect(error.message).toContain('step "charge" of mutation "order": fn must be a function');
  });

  it('keeps step keys stable across versions: the base64url SHA-256 of "step", the record id and the name', () => {
    const expected = createHash('sha256').update('step\nkey-hash\ncharge').digest('base64url');
    expect(stepKeyOf('key-hash', 'charge')).toBe(expected);
    expect(stepKeyOf('key-hash', 'charge')).toBe('eX0XAR_1jPrTV-WbgHOsBT9bVXW50ydAZgQWJfI641E');
  });
});

describe('ctx.idempotency.step: steps a later attempt does not reach', () => {
  it('reports every recorded step as unused when the next attempt calls no step at all, and completes the key', async () => {
    const s = setup();
    let version = 1;
    s.body(async (ctx) => {
      if (version === 2) return 'no steps now';
      await ctx.step('charge', () => 1);
      await ctx.step('email', () => true);
      throw transient();
    });
    await trpcErrorOf(s.call());
    version = 2;
    expect(await s.call()).toBe('no steps now');
    expect(s.log.ofType('steps_unused').map((e) => e.names)).toEqual([['charge', 'email']]);
  });
});

describe('ctx.idempotency.step: misuse', () => {
  it('names the step and the mutation when a step name is used twice in one attempt, or after the procedure returned', async () => {
    const s = setup();
    let kept: IdempotencyExecution | undefined;
    s.body(async (ctx) => {
      kept = ctx;
      await ctx.step('a', () => 1);
      return ctx.step('a', () => 2);
    });
    const twice = await trpcErrorOf(s.call());
    expect(idempotencyErrorData(twice)?.reason).toBe('step_duplicate');
    expect((twice.cause as IdempotencyError).message).toContain('step "a" of mutation "order" was called twice in one attempt');
    const late = await trpcErrorOf((kept as IdempotencyExecution).step('b', () => 1));
    expect((late.cause as IdempotencyError).message).toContain('step "b" of mutation "order" was called after the procedure returned');
  });
});

describe('ctx.idempotency.step: events', () => {
  it('reports a recorded step with its bytes and how long fn took, and a replayed step by name', async () => {
    const s = setup();
    let fail = true;
    s.body(async (ctx) => {
      await ctx.step('charge', async () => {
        await s.clock.advance(250);
        return 'ch_1';
      });
      if (fail) throw transient();
      return 'ok';
    });
    await trpcErrorOf(s.call());
    const [recorded] = s.log.ofType('step_recorded');
    const text = (s.spy.callsOf('recordStep')[0] as { text: string }).text;
    expect(recorded).toMatchObject({ name: 'charge', outcome: 'ok', bytes: Buffer.byteLength(text), durationMs: 250, path: 'order' });
    expect(recorded?.keyHash).toMatch(/^[A-Za-z0-9_-]+$/);
    fail = false;
    expect(await s.call()).toBe('ok');
    expect(s.log.ofType('step_replayed')).toEqual([{ type: 'step_replayed', name: 'charge', path: 'order', keyHash: recorded?.keyHash }]);
    expect(s.log.ofType('steps_unused')).toEqual([]);
  });

  it('names each unreached step once in steps_unused, an at-most-once step as its own name', async () => {
    const s = setup();
    let version = 1;
    s.body(async (ctx) => {
      if (version === 1) {
        await ctx.step('wire', () => 'sent', { atMostOnce: true });
        await ctx.step('email', () => true);
        throw transient();
      }
      return ctx.step('email', () => false);
    });
    await trpcErrorOf(s.call());
    version = 2;
    expect(await s.call()).toBe(true);
    expect(s.log.ofType('steps_unused').map((e) => e.names)).toEqual([['wire']]);
  });
});

describe('ctx.idempotency.step: when the lease or the store fails', () => {
  it('does not call fn once the lease is known lost', async () => {
    const s = setup();
    let ran = 0;
    s.spy.override('renew', async () => ({ status: 'lost' }));
    s.body(async (ctx) => {
      await s.clock.advance(3_000); // a renewal is due, and refused
      return ctx.step('charge', () => ++ran);
    });
    const error = await trpcErrorOf(s.call());
    expect(idempotencyErrorData(error)?.reason).toBe('lease_lost');
    expect(ran).toBe(0);
  });

  it("passes on the store's own refusal (quota) as it is, and never stores it as the key's answer", async () => {
    const s = setup({ shouldStoreError: () => true });
    let full = true;
    s.spy.override('recordStep', async (request) => {
      if (full) throw new IdempotencyError('QUOTA_EXCEEDED', 'partition full', { retryAfterMs: 700 });
      return s.spy.inner.recordStep(request);
    });
    let ran = 0;
    s.body(async (ctx) => ctx.step('charge', () => ++ran));
    const error = await trpcErrorOf(s.call());
    expect(error.code).toBe('TOO_MANY_REQUESTS');
    expect(idempotencyErrorData(error)).toEqual({ reason: 'quota_exceeded', retryAfterMs: 700 });
    expect(s.log.ofType('store_error')).toEqual([expect.objectContaining({ operation: 'step', failedOpen: false, path: 'order' })]);
    full = false;
    expect(await s.call()).toBe(2);
  });

  it("passes on the store's own RECORD_CORRUPT and STORE_UNAVAILABLE as they are, with the store's retry hint", async () => {
    for (const [code, reason] of [
      ['RECORD_CORRUPT', 'record_corrupt'],
      ['STORE_UNAVAILABLE', 'store_unavailable'],
    ] as const) {
      const s = setup();
      s.spy.override('recordStep', async () => {
        throw new IdempotencyError(code, 'from the store', { retryAfterMs: 250 });
      });
      s.body(async (ctx) => ctx.step('charge', () => 1));
      const error = await trpcErrorOf(s.call());
      expect(idempotencyErrorData(error)).toEqual({ reason, retryAfterMs: 250 });
    }
  });

  it('answers any other failure of the store, even an IdempotencyError of another kind, as a store that cannot record', async () => {
    const s = setup();
    s.spy.override('recordStep', async () => {
      throw new IdempotencyError('LEASE_LOST', 'odd');
    });
    s.body(async (ctx) => ctx.step('charge', () => 1));
    expect(idempotencyErrorData(await trpcErrorOf(s.call()))).toEqual({ reason: 'store_unavailable', retryAfterMs: 1_000 });
  });

  it('answers an unreachable store with SERVICE_UNAVAILABLE and a one-second retry hint, keeping the failure as the cause', async () => {
    const s = setup({ shouldStoreError: () => true });
    const reset = new Error('connection reset');
    s.spy.override('recordStep', async () => {
      throw reset;
    });
    s.body(async (ctx) => ctx.step('charge', () => 1));
    const error = await trpcErrorOf(s.call());
    expect(error.code).toBe('SERVICE_UNAVAILABLE');
    expect(idempotencyErrorData(error)).toEqual({ reason: 'store_unavailable', retryAfterMs: 1_000 });
    expect((error.cause as IdempotencyError).message).toContain('could not record a step');
    expect((error.cause as IdempotencyError).cause).toBe(reset);
  });

  it('fails with LEASE_LOST, and reports it, when the store refuses the write because another owner has the key', async () => {
    const s = setup();
    s.spy.override('recordStep', async () => ({ status: 'lost' }));
    s.body(async (ctx) => ctx.step('charge', () => 1));
    const error = await trpcErrorOf(s.call());
    expect(idempotencyErrorData(error)?.reason).toBe('lease_lost');
    expect(s.log.ofType('lease_lost')).toEqual([expect.objectContaining({ phase: 'step', path: 'order' })]);
  });

  it('answers a step record it cannot read with RECORD_CORRUPT, never a rerun of fn', async () => {
    const s = setup();
    let ran = 0;
    s.spy.override('claim', async (request) => {
      const outcome = await s.spy.inner.claim(request);
      return outcome.status === 'acquired' ? { ...outcome, steps: new Map([['charge', 'garbage']]) } : outcome;
    });
    s.body(async (ctx) => ctx.step('charge', () => ++ran));
    const error = await trpcErrorOf(s.call());
    expect(idempotencyErrorData(error)?.reason).toBe('record_corrupt');
    expect(ran).toBe(0);
  });
});

describe('ctx.idempotency.step: another owner recorded first', () => {
  /** The store already holds `text` under a name when this attempt writes it (an owner that raced ahead). */
  const recordedFirst = (s: ReturnType<typeof setup>, name: string, text: string) =>
    s.spy.override('recordStep', async (request) => (request.name === name ? { status: 'exists', text } : s.spy.inner.recordStep(request)));

  it("goes on with the recorded value, not its own fn's", async () => {
    const s = setup();
    recordedFirst(s, 'charge', '1o{"json":"theirs"}');
    s.body(async (ctx) => ctx.step('charge', () => 'mine'));
    expect(await s.call()).toBe('theirs');
  });

  it('replays a recorded value instead of its own error, with storeErrors', async () => {
    const s = setup();
    recordedFirst(s, 'charge', '1o{"json":"theirs"}');
    s.body(async (ctx) =>
      ctx.step(
        'charge',
        () => {
          throw new TRPCError({ code: 'PAYMENT_REQUIRED', message: 'card declined' });
        },
        { storeErrors: true },
      ),
    );
    expect(await s.call()).toBe('theirs');
  });

  it('does not call an at-most-once fn when another owner recorded its start first (STEP_INDETERMINATE)', async () => {
    const s = setup();
    recordedFirst(s, '\u0001wire', '1s');
    let ran = 0;
    s.body(async (ctx) => ctx.step('wire', () => ++ran, { atMostOnce: true }));
    const error = await trpcErrorOf(s.call());
    expect(idempotencyErrorData(error)?.reason).toBe('step_indeterminate');
    expect((error.cause as IdempotencyError).message).toContain(
      'step "wire" of mutation "order" is at-most-once and an earlier attempt started it without finishing',
    );
    expect(ran).toBe(0);
  });
});

describe('ctx.idempotency.step: without onEvent', () => {
  it('records, replays, reports nothing and fails cleanly when no onEvent is given', async () => {
    const s = setup({ onEvent: undefined });
    let fail = true;
    let ran = 0;
    s.body(async (ctx) => {
      const a = await ctx.step('a', () => ++ran);
      const declined = await ctx
        .step(
          'declined',
          () => {
            throw new TRPCError({ code: 'PAYMENT_REQUIRED', message: 'card declined' });
          },
          { storeErrors: true },
        )
        .catch((error: unknown) => error);
      // The step's own error, recorded: not a crash while reporting it.
      expect(declined).toMatchObject({ code: 'PAYMENT_REQUIRED', message: 'card declined' });
      if (fail) throw transient();
      return a;
    });
    expect((await trpcErrorOf(s.call())).message).toBe('mail server down');
    fail = false;
    expect(await s.call()).toBe(1); // replayed
    // A recorded step the next attempt never reaches: unused, and reported to nobody.
    s.body(async (ctx) => {
      await ctx.step('old', () => 1);
      throw transient();
    });
    await trpcErrorOf(s.call('k-unused'));
    s.body(async () => 'renamed');
    expect(await s.call('k-unused')).toBe('renamed');
    // Recorded as not stored, and a write the store refuses or fails: each would be reported.
    s.body(async (ctx) => ctx.step('big', () => ({ async *[Symbol.asyncIterator]() {} })));
    await s.call('k-not-stored');
    s.spy.override('recordStep', async () => ({ status: 'lost' }));
    s.body(async (ctx) => ctx.step('lost', () => 1));
    expect(idempotencyErrorData(await trpcErrorOf(s.call('k-lost')))?.reason).toBe('lease_lost');
    s.spy.override('recordStep', async () => {
      throw new Error('down');
    });
    expect(idempotencyErrorData(await trpcErrorOf(s.call('k-down')))?.reason).toBe('store_unavailable');
    expect(s.log.events).toEqual([]);
  });
});

describe('ctx.idempotency.step: errors with storeErrors', () => {
  const declining = (s: ReturnType<typeof setup>, error: () => unknown) => {
    let ran = 0;
    let failLater = true;
    s.body(async (ctx) => {
      let caught: unknown;
      try {
        await ctx.step(
          'charge',
          () => {
            ran++;
            throw error();
          },
          { storeErrors: true },
        );
      } catch (e) {
        caught = e;
      }
      if (failLater) throw transient();
      return caught instanceof TRPCError ? `${caught.code}: ${caught.message}` : String(caught);
    });
    return {
      ran: () => ran,
      succeed: () => {
        failLater = false;
      },
    };
  };

  it('gives the attempt that records an error that same error', async () => {
    const s = setup();
    const d = declining(s, () => new TRPCError({ code: 'PAYMENT_REQUIRED', message: 'card declined' }));
    d.succeed();
    expect(await s.call()).toBe('PAYMENT_REQUIRED: card declined');
    expect(s.spy.callsOf('recordStep')).toHaveLength(1);
  });

  it('reports a recorded error with its bytes and how long fn took', async () => {
    const s = setup();
    s.body(async (ctx) =>
      ctx
        .step(
          'charge',
          async () => {
            await s.clock.advance(120);
            throw new TRPCError({ code: 'PAYMENT_REQUIRED', message: 'card declined' });
          },
          { storeErrors: true },
        )
        .catch(() => 'declined'),
    );
    expect(await s.call()).toBe('declined');
    const text = (s.spy.callsOf('recordStep')[0] as { text: string }).text;
    expect(s.log.ofType('step_recorded')).toEqual([
      expect.objectContaining({ name: 'charge', outcome: 'error', bytes: Buffer.byteLength(text), durationMs: 120 }),
    ]);
  });

  it('replays a recorded error with its code and message', async () => {
    const s = setup();
    const d = declining(s, () => new TRPCError({ code: 'PAYMENT_REQUIRED', message: 'card declined' }));
    await trpcErrorOf(s.call());
    d.succeed();
    expect(await s.call()).toBe('PAYMENT_REQUIRED: card declined');
    expect(d.ran()).toBe(1);
  });

  it('records nothing for an error shouldStoreError calls transient, or for a policy that throws', async () => {
    for (const shouldStoreError of [
      () => false,
      () => {
        throw new Error('policy bug');
      },
    ]) {
      const s = setup({ shouldStoreError });
      const d = declining(s, () => new TRPCError({ code: 'PAYMENT_REQUIRED', message: 'card declined' }));
      await trpcErrorOf(s.call());
      d.succeed();
      await s.call();
      expect(d.ran()).toBe(2);
      expect(s.spy.callsOf('recordStep')).toHaveLength(0);
    }
  });

  it('records nothing for a thrown value that is not a TRPCError', async () => {
    // Any TRPCError but the procedure's transient one would be final.
    const s = setup({ shouldStoreError: (error) => error.code !== 'INTERNAL_SERVER_ERROR' });
    const d = declining(s, () => new Error('plain'));
    await trpcErrorOf(s.call());
    d.succeed();
    await s.call();
    expect(d.ran()).toBe(2);
    expect(s.spy.callsOf('recordStep')).toHaveLength(0);
  });
});

describe('stepErrorVerdict', () => {
  const withCause = (code: IdempotencyError['code']) => new TRPCError({ code: 'CONFLICT', cause: new IdempotencyError(code, 'x') });

  it("always stores a step's own verdict (NOT_STORED, STEP_INDETERMINATE) as the key's answer", () => {
    expect(stepErrorVerdict(withCause('NOT_STORED'))).toBe(true);
    expect(stepErrorVerdict(withCause('STEP_INDETERMINATE'))).toBe(true);
  });

  it("never stores the idempotency layer's transient failures, so a retry can resume", () => {
    for (const code of ['LEASE_LOST', 'STORE_UNAVAILABLE', 'QUOTA_EXCEEDED', 'RECORD_CORRUPT'] as const) {
      expect(stepErrorVerdict(withCause(code))).toBe(false);
    }
  });

  it('leaves every other error to shouldStoreError', () => {
    expect(stepErrorVerdict(withCause('INVALID_OPTION'))).toBeUndefined();
    expect(stepErrorVerdict(new TRPCError({ code: 'BAD_REQUEST', cause: new Error('app') }))).toBeUndefined();
    expect(stepErrorVerdict(new TRPCError({ code: 'BAD_REQUEST' }))).toBeUndefined();
  });
});

describe('steps without a key', () => {
  it('runs fn once with fence 0, a fresh random step key and a signal that never aborts', async () => {
    const seen: { stepKey: string; fence: number; aborted: boolean }[] = [];
    for (const idempotency of [null, undefined]) {
      const result = await stepsOf(idempotency).step('charge', ({ stepKey, fence, signal }) => {
        seen.push({ stepKey, fence, aborted: signal.aborted });
        return 'charged';
      });
      expect(result).toBe('charged');
    }
    expect(seen.map((s) => s.fence)).toEqual([0, 0]);
    expect(seen.map((s) => s.aborted)).toEqual([false, false]);
    expect(seen[0]?.stepKey).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(seen[0]?.stepKey).not.toBe(seen[1]?.stepKey);
  });

  it('refuses every step where steps cannot be recorded, saying why, without calling fn', async () => {
    let ran = 0;
    const error = await refusedStep('steps are refused inside a transactional procedure')('charge', () => ++ran).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCError);
    expect(idempotencyErrorData(error)?.reason).toBe('invalid_option');
    expect((error as TRPCError).message).toContain('steps are refused inside a transactional procedure');
    expect(ran).toBe(0);
  });
});
