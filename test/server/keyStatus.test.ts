import { initTRPC } from '@trpc/server';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { createIdempotency, createMemoryStore, IdempotencyError, idempotencyResponseMeta } from '../../src/index';
import type { IdempotencyStore } from '../../src/index';
import { createManualClock } from '../helpers/manualClock';
import { spyStore } from './helpers';

/**
 * The Idempotency-Status header tells the client what happened to its key (whether a retry runs the procedure
 * again), also when the store misbehaves at the end of a run. No `onEvent` here: nobody listening must change
 * nothing.
 */
const setup = (overrides: Partial<IdempotencyStore> = {}, options: { maxResultBytes?: number; onInProgress?: 'wait' } = {}) => {
  const t = initTRPC.context<{ req: Request }>().create({ transformer: superjson });
  const clock = createManualClock();
  const spy = spyStore(createMemoryStore({ clock }), overrides);
  const { idempotent } = createIdempotency({ store: spy.store, clock, ...options });
  let runs = 0;
  const router = t.router({
    pay: t.procedure.use(idempotent()).mutation(() => ({ paid: ++runs })),
    forgetful: t.procedure
      .use(idempotent())
      .use(async ({ next }) => {
        await next();
        return undefined as never;
      })
      .mutation(() => ++runs),
  });
  const call = async (path: string, key: string) => {
    const response = await fetchRequestHandler({
      endpoint: '/trpc',
      router,
      req: new Request(`http://localhost/trpc/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ json: null }),
      }),
      createContext: ({ req }) => ({ req }),
      responseMeta: idempotencyResponseMeta(),
    });
    const body = (await response.json()) as { error?: { json: { message: string } } };
    return {
      status: response.status,
      key: (JSON.parse(response.headers.get('idempotency-status') ?? 'null') as Record<string, string>)[key],
      message: body.error?.json.message,
    };
  };
  return { call, spy, clock, runs: () => runs };
};

describe('the Idempotency-Status of a key', () => {
  it("is 'lease_lost' when another request owns the key by the time the result is stored", async () => {
    const s = setup({ complete: () => Promise.resolve({ status: 'lost' }) });
    const answer = await s.call('pay', 'k-lost');
    expect(answer).toMatchObject({ status: 409, key: 'lease_lost' });
    expect(answer.message).toMatch(/mutation "pay" ran, but its lease on this idempotency key was lost/);
  });

  it("is 'store_unavailable' when the store fails to claim the key, and nothing runs", async () => {
    const s = setup({ claim: () => Promise.reject(new Error('store down')) });
    const answer = await s.call('pay', 'k-down');
    expect(answer).toMatchObject({ status: 503, key: 'store_unavailable' });
    expect(answer.message).toMatch(/the procedure was not run/);
    expect(s.runs()).toBe(0);
  });

  it("is 'store_unavailable' when the store fails while storing the result", async () => {
    const s = setup({ complete: () => Promise.reject(new Error('store down')) });
    const failed = s.call('pay', 'k-failed');
    for (let i = 0; i < 10; i++) await s.clock.advance(1_000); // the quick attempts to store it, a backoff apart
    const answer = await failed;
    expect(answer).toMatchObject({ status: 503, key: 'store_unavailable' });
    expect(answer.message).toMatch(/mutation "pay" ran, but the idempotency store failed while storing its result/);
  });

  it("is 'store_unavailable' when a stored result cannot be read back, and nothing runs again", async () => {
    const s = setup({ claim: () => Promise.resolve({ status: 'completed', result: 'not a stored result' }) });
    const answer = await s.call('pay', 'k-garbled');
    expect(answer).toMatchObject({ key: 'store_unavailable' });
    expect(answer.status).toBeGreaterThanOrEqual(500);
    expect(s.runs()).toBe(0);
  });

  it("is 'not_stored' when the first result was too large to keep, and nothing runs again", async () => {
    const s = setup({}, { maxResultBytes: 1 });
    expect(await s.call('pay', 'k-big')).toMatchObject({ status: 200, key: 'executed' });
    expect(await s.call('pay', 'k-big')).toMatchObject({ status: 409, key: 'not_stored' });
    expect(s.runs()).toBe(1);
  });

  it("is 'released' when an inner middleware forgets to return next(), and a retry runs again", async () => {
    const s = setup();
    const first = await s.call('forgetful', 'k-forgot');
    expect(first).toMatchObject({ status: 500, key: 'released' });
    expect(first.message).toMatch(/did you forget to `return next\(\)`/);
    expect(await s.call('forgetful', 'k-forgot')).toMatchObject({ status: 500, key: 'released' });
    expect(s.runs()).toBe(2);
  });

  it("is 'store_unavailable' when the claim is answered after its lease could have ended, and nothing runs", async () => {
    const real: { store?: IdempotencyStore } = {};
    const s = setup({
      claim: async (request) => {
        const outcome = await (real.store as IdempotencyStore).claim(request);
        await new Promise<void>((resolve) => s.clock.setTimeout(() => resolve(), request.lockTtlMs));
        return outcome;
      },
    });
    real.store = s.spy.inner;
    const late = s.call('pay', 'k-late');
    await s.clock.advance(60_000);
    const answer = await late;
    expect(answer).toMatchObject({ status: 503, key: 'store_unavailable' });
    expect(answer.message).toMatch(/the procedure was not run/);
    expect(s.runs()).toBe(0);
    expect(s.spy.callsOf('release')).toHaveLength(1);
  });
});

describe('the Idempotency-Status of a key the store fails before anything runs', () => {
  it("is 'store_unavailable' when the store fails while the call waits for the key in progress, and nothing runs", async () => {
    const s = setup(
      { claim: () => Promise.resolve({ status: 'in_progress', retryAfterMs: 500 }), wait: () => Promise.reject(new Error('wait down')) },
      { onInProgress: 'wait' },
    );
    expect(await s.call('pay', 'k-wait')).toMatchObject({ status: 503, key: 'store_unavailable' });
    expect(s.runs()).toBe(0);
  });

  it("is 'store_unavailable' when the store answers a claim outside its contract, and nothing runs", async () => {
    const s = setup({ claim: () => Promise.resolve({ status: 'bogus' } as never) });
    expect(await s.call('pay', 'k-bogus')).toMatchObject({ status: 500, key: 'store_unavailable' });
    expect(s.runs()).toBe(0);
  });
});

describe('a result the store refuses as corrupt', () => {
  it('is answered INTERNAL_SERVER_ERROR saying the mutation ran but its result cannot be stored', async () => {
    const s = setup({ complete: () => Promise.reject(new IdempotencyError('RECORD_CORRUPT', 'bad')) });
    const answer = await s.call('pay', 'k-corrupt');
    expect(answer.status).toBe(500);
    expect(answer.message).toMatch(/mutation "pay" ran, but its result cannot be stored: the record of this key is corrupt/);
    expect(s.runs()).toBe(1);
  });
});
