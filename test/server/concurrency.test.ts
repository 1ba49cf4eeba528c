import { TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { createIdempotency, createMemoryStore, idempotencyErrorData } from '../../src/index';
import type { IdempotencyOptions } from '../../src/index';
import { createManualClock } from '../helpers/manualClock';
import type { TestContext } from './helpers';
import { createT, deferred, eventLog, trpcErrorOf } from './helpers';

/** `pay` waits for the test's gate before it returns, so duplicates arrive while it runs. */
const setup = (options: IdempotencyOptions<TestContext> = {}) => {
  const t = createT();
  const clock = createManualClock();
  const log = eventLog();
  const { idempotent } = createIdempotency<TestContext>({ store: createMemoryStore({ clock }), clock, onEvent: log.onEvent, ...options });
  let runs = 0;
  const gate = deferred();
  const started = deferred();
  let behaviour: (run: number) => unknown = (run) => ({ paid: true, run, at: new Date(run) });
  const router = t.router({
    pay: t.procedure.use(idempotent()).mutation(async () => {
      const run = ++runs;
      started.resolve();
      await gate.promise;
      return behaviour(run);
    }),
  });
  const caller = (signal?: AbortSignal) =>
    t.createCallerFactory(router)({ headers: { 'idempotency-key': 'race' } }, signal ? { signal } : undefined);
  return {
    caller,
    clock,
    log,
    runs: () => runs,
    get started() {
      return started.promise;
    },
    open: () => gate.resolve(),
    behave: (fn: (run: number) => unknown) => {
      behaviour = fn;
    },
  };
};

const N = 100;

describe('createIdempotency', () => {
  describe("onInProgress: 'reject'", () => {
    it(`runs once for ${N} concurrent calls and answers the others CONFLICT with retryAfterMs`, async () => {
      const s = setup({ lockTtlMs: 30_000 });
      const calls = Array.from({ length: N }, () => s.caller().pay());
      await s.started;
      const early = await Promise.allSettled(calls.slice(1));
      s.open();
      const first = await calls[0];
      expect(s.runs()).toBe(1);
      expect(first).toMatchObject({ paid: true, run: 1 });
      for (const result of early) {
        expect(result.status).toBe('rejected');
        const error = (result as PromiseRejectedResult).reason as TRPCError;
        expect(error).toBeInstanceOf(TRPCError);
        expect(error.code).toBe('CONFLICT');
        const data = idempotencyErrorData(error);
        expect(data?.reason).toBe('in_progress');
        // The hint is capped at 1 s: a live owner may finish any moment.
        expect(data?.retryAfterMs).toBe(1_000);
      }
      expect(s.log.ofType('conflict')).toHaveLength(N - 1);
      expect(s.log.ofType('claimed')).toHaveLength(1);
    });

    it(`runs once when ${N} concurrent calls race a procedure that returns at once`, async () => {
      const s = setup();
      s.open();
      const results = await Promise.allSettled(Array.from({ length: N }, () => s.caller().pay()));
      expect(s.runs()).toBe(1);
      for (const result of results) {
        if (result.status === 'fulfilled') expect(result.value).toEqual({ paid: true, run: 1, at: new Date(1) });
        else expect((result.reason as TRPCError).code).toBe('CONFLICT');
      }
      expect(results.some((r) => r.status === 'fulfilled')).toBe(true);
    });

    it('reports retryAfterMs as the time left on the lease when that is under the 1 s cap', async () => {
      const s = setup({ lockTtlMs: 900 });
      const first = s.caller().pay();
      await s.started;
      await s.clock.advance(200);
      const error = await trpcErrorOf(s.caller().pay());
      // Renewal runs every 300 ms: at 200 ms the lease has 700 ms left.
      expect(idempotencyErrorData(error)?.retryAfterMs).toBe(700);
      expect(s.log.ofType('conflict')[0]?.retryAfterMs).toBe(700);
      s.open();
      await first;
    });
    it('caps the retry hint at maxRetryAfterMs, an option', async () => {
      const s = setup({ lockTtlMs: 30_000, maxRetryAfterMs: 250 });
      const first = s.caller().pay();
      await s.started;
      const error = await trpcErrorOf(s.caller().pay());
      expect(idempotencyErrorData(error)?.retryAfterMs).toBe(250);
      expect(s.log.ofType('conflict')[0]?.retryAfterMs).toBe(250);
      s.open();
      await first;
    });
  });

  describe("onInProgress: 'wait'", () => {
    it('gives all 50 concurrent callers the first result and runs once', async () => {
      const s = setup({ onInProgress: 'wait' });
      const calls = Array.from({ length: 50 }, () => s.caller().pay());
      await s.started;
      s.open();
      const results = await Promise.all(calls);
      expect(s.runs()).toBe(1);
      for (const result of results) expect(result).toEqual({ paid: true, run: 1, at: new Date(1) });
      expect(s.log.ofType('replayed')).toHaveLength(49);
    });

    it('answers CONFLICT once waitTimeoutMs has passed', async () => {
      const s = setup({ onInProgress: 'wait', waitTimeoutMs: 1_000, lockTtlMs: 30_000 });
      const first = s.caller().pay();
      await s.started;
      let settled = false;
      const second = trpcErrorOf(s.caller().pay()).finally(() => {
        settled = true;
      });
      await s.clock.advance(999);
      expect(settled).toBe(false);
      await s.clock.advance(1);
      const error = await second;
      expect(error.code).toBe('CONFLICT');
      expect(idempotencyErrorData(error)?.reason).toBe('in_progress');
      expect(s.log.ofType('conflict')[0]?.waitedMs).toBe(1_000);
      s.open();
      await first;
      expect(s.runs()).toBe(1);
    });

    it('stops waiting when the caller aborts', async () => {
      const s = setup({ onInProgress: 'wait', waitTimeoutMs: 60_000 });
      const first = s.caller().pay();
      await s.started;
      const controller = new AbortController();
      const second = trpcErrorOf(s.caller(controller.signal).pay());
      await s.clock.advance(0);
      controller.abort();
      expect((await second).code).toBe('CONFLICT');
      s.open();
      await first;
      expect(s.runs()).toBe(1);
    });

    it('gives waiters CONFLICT not_stored when the first result was too large to keep', async () => {
      const s = setup({ onInProgress: 'wait', maxResultBytes: 10 });
      s.behave(() => 'x'.repeat(100));
      const first = s.caller().pay();
      await s.started;
      const waiters = Array.from({ length: 10 }, () => trpcErrorOf(s.caller().pay()));
      await s.clock.advance(0);
      s.open();
      expect(await first).toBe('x'.repeat(100));
      for (const error of await Promise.all(waiters)) {
        expect(error.code).toBe('CONFLICT');
        expect(idempotencyErrorData(error)?.reason).toBe('not_stored');
      }
      expect(s.runs()).toBe(1);
    });

    it('lets exactly one waiter run again when the first call is released', async () => {
      const s = setup({ onInProgress: 'wait' });
      s.behave((run) => {
        if (run === 1) throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'flaky' });
        return { paid: true, run, at: new Date(run) };
      });
      const first = trpcErrorOf(s.caller().pay());
      await s.started;
      const waiters = Array.from({ length: 20 }, () => s.caller().pay());
      await s.clock.advance(0);
      s.open();
      expect((await first).code).toBe('SERVICE_UNAVAILABLE');
      const results = await Promise.all(waiters);
      expect(s.runs()).toBe(2);
      for (const result of results) expect(result).toEqual({ paid: true, run: 2, at: new Date(2) });
    });
  });
});
