import { TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { createIdempotency, createMemoryStore, idempotencyErrorData, IdempotencyError } from '../../src/index';
import type { IdempotencyExecution, IdempotencyOptions, IdempotencyStore } from '../../src/index';
import { createManualClock } from '../helpers/manualClock';
import type { TestContext } from './helpers';
import { createT, deferred, eventLog, spyStore, trpcErrorOf } from './helpers';

const setup = (overrides: Partial<IdempotencyStore> = {}, options: IdempotencyOptions<TestContext> = {}) => {
  const t = createT();
  const clock = createManualClock();
  const spy = spyStore(createMemoryStore({ clock }), overrides);
  const log = eventLog();
  const { idempotent } = createIdempotency<TestContext>({ store: spy.store, clock, onEvent: log.onEvent, ...options });
  let runs = 0;
  const seen: (IdempotencyExecution | null)[] = [];
  let behaviour: () => unknown = () => ({ charged: 42, at: new Date(5) });
  const router = t.router({
    charge: t.procedure.use(idempotent()).mutation(({ ctx }) => {
      runs++;
      seen.push(ctx.idempotency);
      return behaviour();
    }),
  });
  const api = t.createCallerFactory(router)({ headers: { 'idempotency-key': 'store-key' } });
  return {
    api,
    clock,
    spy,
    log,
    seen,
    runs: () => runs,
    behave: (fn: () => unknown) => {
      behaviour = fn;
    },
  };
};

const failing = (message = 'connection refused') => () => Promise.reject(new Error(message));

/**
 * A charge that ran while the store refuses renew and complete (lease 30 s): its caller got SERVICE_UNAVAILABLE
 * (the result is not stored, so it is nobody's answer yet); `recover()` brings them back.
 */
const chargeWhileRenewAndCompleteAreDown = async () => {
  let down = true;
  const s = setup({}, { lockTtlMs: 30_000 });
  for (const method of ['complete', 'renew'] as const) {
    s.spy.override(method, (request) =>
      down ? Promise.reject(new Error(`${method} down`)) : (s.spy.inner[method] as (r: unknown) => Promise<any>)(request),
    );
  }
  const call = trpcErrorOf(s.api.charge());
  await s.clock.advance(150);
  expect((await call).code).toBe('SERVICE_UNAVAILABLE');
  return { s, recover: () => void (down = false) };
};

describe('createIdempotency', () => {
  describe('when the store fails to claim', () => {
    it('answers SERVICE_UNAVAILABLE and does not run the procedure (fail-closed default)', async () => {
      const s = setup({ claim: failing() });
      const error = await trpcErrorOf(s.api.charge());
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toMatch(/cannot be reached; the procedure was not run/);
      expect(idempotencyErrorData(error)).toEqual({ reason: 'store_unavailable', retryAfterMs: 1000 });
      expect(s.runs()).toBe(0);
      expect(s.log.ofType('store_error')).toEqual([expect.objectContaining({ operation: 'claim', failedOpen: false })]);
    });

    it("runs the procedure unguarded with onStoreError: 'fail-open' and reports failedOpen", async () => {
      const s = setup({ claim: failing() }, { onStoreError: 'fail-open' });
      expect(await s.api.charge()).toEqual({ charged: 42, at: new Date(5) });
      expect(s.runs()).toBe(1);
      expect(s.seen).toEqual([null]);
      expect(s.log.ofType('store_error')).toEqual([expect.objectContaining({ operation: 'claim', failedOpen: true, path: 'charge' })]);
      expect(s.spy.callsOf('complete')).toHaveLength(0);
    });

    it('does not fail open on a corrupt record: INTERNAL_SERVER_ERROR and nothing runs', async () => {
      const corrupt = new IdempotencyError('RECORD_CORRUPT', 'record is not ours');
      const s = setup({ claim: () => Promise.reject(corrupt) }, { onStoreError: 'fail-open' });
      const error = await trpcErrorOf(s.api.charge());
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(idempotencyErrorData(error)?.reason).toBe('record_corrupt');
      expect(s.runs()).toBe(0);
      expect(s.log.ofType('store_error')[0]?.failedOpen).toBe(false);
    });
  });

  describe("when the store refuses a claim past a partition's running quota", () => {
    // One running claim per partition: a call whose procedure is still running holds the only slot.
    const atQuota = (onStoreError: 'fail-closed' | 'fail-open') => {
      const t = createT();
      const clock = createManualClock();
      const { idempotent } = createIdempotency<TestContext>({ store: createMemoryStore({ clock, maxRunningPerPartition: 1 }), clock, onStoreError });
      const slow = deferred();
      let runs = 0;
      const router = t.router({
        charge: t.procedure.use(idempotent()).mutation(async () => {
          runs++;
          if (runs === 1) await slow.promise;
          return runs;
        }),
      });
      const api = (key: string) => t.createCallerFactory(router)({ headers: { 'idempotency-key': key } });
      return { api, runs: () => runs, finish: () => slow.resolve() };
    };

    it('answers TOO_MANY_REQUESTS with the retry hint, not SERVICE_UNAVAILABLE, and does not run the procedure', async () => {
      const s = atQuota('fail-closed');
      const first = s.api('first').charge();
      const error = await trpcErrorOf(s.api('second').charge());
      expect(error.code).toBe('TOO_MANY_REQUESTS');
      expect(idempotencyErrorData(error)).toEqual({ reason: 'quota_exceeded', retryAfterMs: 1000 });
      expect(s.runs()).toBe(1);
      s.finish();
      expect(await first).toBe(1);
    });

    it("refuses it with onStoreError: 'fail-open' too: a quota is the store's answer, not an outage", async () => {
      const s = atQuota('fail-open');
      const first = s.api('first').charge();
      expect((await trpcErrorOf(s.api('second').charge())).code).toBe('TOO_MANY_REQUESTS');
      expect(s.runs()).toBe(1);
      s.finish();
      expect(await first).toBe(1);
    });
  });

  describe('when the store fails with an IdempotencyError that is not a store answer', () => {
    it('answers SERVICE_UNAVAILABLE, as for any other store failure, not the error’s own code', async () => {
      // A custom store passing on an error of another layer: KEY_INVALID would tell the client its key is bad.
      const foreign = new IdempotencyError('KEY_INVALID', 'a key check inside the store');
      const s = setup({ claim: () => Promise.reject(foreign) });
      const error = await trpcErrorOf(s.api.charge());
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(idempotencyErrorData(error)).toEqual({ reason: 'store_unavailable', retryAfterMs: 1000 });
      expect((error.cause as { cause?: unknown }).cause).toBe(foreign);
      expect(s.runs()).toBe(0);
    });
  });

  describe('when the memory store is full of live claims', () => {
    const full = async (onStoreError: 'fail-closed' | 'fail-open') => {
      const t = createT();
      const clock = createManualClock();
      const store = createMemoryStore({ clock, maxEntries: 1 });
      const { idempotent } = createIdempotency<TestContext>({ store, clock, onStoreError });
      let runs = 0;
      const router = t.router({ charge: t.procedure.use(idempotent()).mutation(() => ++runs) });
      const api = (key: string) => t.createCallerFactory(router)({ headers: { 'idempotency-key': key } });
      // A live claim on another record holds the only slot.
      await store.claim({ id: 'another-record', partition: 'p', token: 'held', fingerprint: '', lockTtlMs: 60_000 });
      return { api, runs: () => runs };
    };

    it('answers SERVICE_UNAVAILABLE for a new key and does not run it', async () => {
      const s = await full('fail-closed');
      const error = await trpcErrorOf(s.api('other').charge());
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      // The client gets a plain message; the store's own words stay on the cause, for the server's logs.
      expect(error.message).toMatch(/cannot be reached; the procedure was not run/);
      expect((error.cause as Error).message).toMatch(/memory store is full/);
      expect(s.runs()).toBe(0);
    });

    it("runs a new key unguarded with onStoreError: 'fail-open'", async () => {
      const s = await full('fail-open');
      expect(await s.api('other').charge()).toBe(1);
      expect(await s.api('other').charge()).toBe(2);
    });
  });

  describe('when the store fails to complete', () => {
    it('retries complete, returns the result and stores it when a later attempt succeeds', async () => {
      let failures = 2;
      const s = setup();
      // The middleware calls the store object it was given, so swapping a method takes effect at once.
      const real = s.spy.store.complete;
      s.spy.store.complete = (request) => (failures-- > 0 ? Promise.reject(new Error('timeout')) : real(request));
      const call = s.api.charge();
      await s.clock.advance(50);
      await s.clock.advance(100);
      expect(await call).toEqual({ charged: 42, at: new Date(5) });
      expect(s.log.ofType('store_error').map((e) => e.operation)).toEqual(['complete', 'complete']);
      expect(s.log.ofType('completed')).toHaveLength(1);
      s.behave(() => 'second run');
      expect(await s.api.charge()).toEqual({ charged: 42, at: new Date(5) });
      expect(s.runs()).toBe(1);
    });

    it('answers a retryable SERVICE_UNAVAILABLE, not the unstored result, and reports store_error when complete always fails', async () => {
      const s = setup({ complete: failing('complete down') });
      const call = trpcErrorOf(s.api.charge());
      await s.clock.advance(50);
      await s.clock.advance(100);
      // Answering the result as executed could contradict what the key replays later (another owner may take over
      // before it is stored): fail closed, the procedure ran and a retry with the same key gets the final answer.
      const error = await call;
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toMatch(/ran, but the idempotency store failed while storing its result; it is still being stored: retry with the same key/);
      expect(idempotencyErrorData(error)).toEqual({ reason: 'store_unavailable', retryAfterMs: 1000 });
      expect(s.runs()).toBe(1);
      const errors = s.log.ofType('store_error');
      expect(errors).toHaveLength(3);
      expect(errors.every((e) => e.operation === 'complete' && (e.error as Error).message === 'complete down')).toBe(true);
      expect(s.log.ofType('completed')).toHaveLength(0);
    });

    it('keeps the key and retries complete in the background while the lease holds: no second run', async () => {
      let completeFailures = 0;
      let down = true;
      const s = setup({}, { lockTtlMs: 30_000 });
      s.spy.override('complete', (request) => {
        if (down) {
          completeFailures++;
          return Promise.reject(new Error('complete down'));
        }
        return s.spy.inner.complete(request);
      });
      const call = trpcErrorOf(s.api.charge());
      await s.clock.advance(150);
      expect((await call).code).toBe('SERVICE_UNAVAILABLE');
      // Far past the lease: renewals still succeed, so a retry gets CONFLICT, never a second run.
      for (let i = 0; i < 4; i++) {
        await s.clock.advance(30_000);
        expect((await trpcErrorOf(s.api.charge())).code).toBe('CONFLICT');
      }
      expect(s.runs()).toBe(1);
      expect(completeFailures).toBeGreaterThan(3);
      down = false;
      await s.clock.advance(30_000);
      expect(s.log.ofType('completed')).toHaveLength(1);
      expect(await s.api.charge()).toEqual({ charged: 42, at: new Date(5) });
      expect(s.runs()).toBe(1);
      expect(s.spy.callsOf('renew').length).toBeGreaterThan(10);
    });

    it('stores the result once the store is back, even after an outage longer than the lease, if nobody took over', async () => {
      const { s, recover } = await chargeWhileRenewAndCompleteAreDown();
      await s.clock.advance(35_000); // the lease is over locally: renewals failed all along
      expect(s.log.ofType('lease_lost')).toHaveLength(1);
      recover();
      await s.clock.advance(60_000); // no retry meanwhile: the background completion gets through
      expect(s.log.ofType('completed')).toHaveLength(1);
      expect(await s.api.charge()).toEqual({ charged: 42, at: new Date(5) });
      expect(s.runs()).toBe(1);
    });

    it('lets the key be taken over once the whole store (renew too) stayed down past the lease', async () => {
      const { s, recover } = await chargeWhileRenewAndCompleteAreDown();
      await s.clock.advance(30_000);
      expect(s.log.ofType('lease_lost')).toHaveLength(1);
      recover();
      const takeover = s.api.charge();
      await s.clock.advance(150);
      await takeover;
      // The documented limit: an outage longer than the lease can lead to a second run, flagged as a takeover.
      expect(s.runs()).toBe(2);
      expect(s.seen[1]?.takeover).toBe(true);
    });

    it('does not retry complete when the store reports a corrupt record, and answers INTERNAL_SERVER_ERROR, not the unstored result', async () => {
      const s = setup({ complete: () => Promise.reject(new IdempotencyError('RECORD_CORRUPT', 'bad')) });
      const error = await trpcErrorOf(s.api.charge());
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(idempotencyErrorData(error)?.reason).toBe('record_corrupt');
      expect(s.spy.callsOf('complete')).toHaveLength(1);
    });
  });

  describe('when the store fails to release', () => {
    it("returns the procedure's own error and reports store_error", async () => {
      const s = setup({ release: failing('release down') });
      s.behave(() => {
        throw new TRPCError({ code: 'TIMEOUT', message: 'upstream slow' });
      });
      const call = trpcErrorOf(s.api.charge());
      await s.clock.advance(50);
      await s.clock.advance(100);
      const error = await call;
      expect(error.code).toBe('TIMEOUT');
      expect(error.message).toBe('upstream slow');
      expect(s.log.ofType('store_error').map((e) => e.operation)).toEqual(['release', 'release', 'release']);
    });
  });

  describe('when the store fails to wait', () => {
    it('answers SERVICE_UNAVAILABLE', async () => {
      const s = setup(
        { claim: async () => ({ status: 'in_progress', retryAfterMs: 500 }), wait: failing('wait down') },
        { onInProgress: 'wait' },
      );
      const error = await trpcErrorOf(s.api.charge());
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(s.runs()).toBe(0);
      // The call was refused, not run unguarded.
      expect(s.log.ofType('store_error')).toEqual([expect.objectContaining({ operation: 'wait', failedOpen: false })]);
    });
  });

  describe('when the store answers something outside its contract', () => {
    it('answers INTERNAL_SERVER_ERROR at once for an unknown claim outcome instead of claiming again', async () => {
      let claims = 0;
      const s = setup({
        claim: async () => {
          // Bounded so a regression fails instead of spinning forever.
          if (++claims > 5) throw new Error('claimed again and again');
          return { status: 'bogus' } as never;
        },
      });
      const error = await trpcErrorOf(s.api.charge());
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).not.toMatch(/bogus/);
      expect((error.cause as Error).message).toMatch(/unknown claim outcome "bogus"/);
      expect(claims).toBe(1);
      expect(s.runs()).toBe(0);
    });
  });

  describe('when the stored result is corrupt', () => {
    for (const [name, text] of [
      ['text it did not write', 'garbage'],
      ['an ok body that does not parse', '1o{not json'],
      ['an error without a code', '1e{"json":{"message":"x"}}'],
      ['an unknown marker', '1n{"reason":"why"}'],
      ['an error with a code tRPC does not have', '1e{"json":{"code":"NOPE","message":"x"}}'],
      ['an unknown kind', '1z{}'],
    ] as const) {
      it(`answers INTERNAL_SERVER_ERROR and overwrites nothing for ${name}`, async () => {
        const s = setup({ claim: async () => ({ status: 'completed', result: text }) });
        const error = await trpcErrorOf(s.api.charge());
        expect(error.code).toBe('INTERNAL_SERVER_ERROR');
        expect(error.message).toMatch(/stored record cannot be read; the procedure was not run/);
        expect((error.cause as Error).message).toMatch(/the stored result cannot be read .*; the record was left as it is/);
        expect(idempotencyErrorData(error)?.reason).toBe('record_corrupt');
        expect(s.runs()).toBe(0);
        expect(s.spy.callsOf('complete')).toHaveLength(0);
        expect(s.spy.callsOf('release')).toHaveLength(0);
      });
    }
  });
});
