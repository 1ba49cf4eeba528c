import type { TRPC_ERROR_CODE_KEY } from '@trpc/server';
import { TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { createIdempotency, createMemoryStore, defaultShouldStoreError } from '../../src/index';
import type { IdempotencyOptions } from '../../src/index';
import { createManualClock } from '../helpers/manualClock';
import type { TestContext } from './helpers';
import { createT, eventLog, trpcErrorOf } from './helpers';

/** `fail` throws what the test sets, counting runs. */
const setup = (options: IdempotencyOptions<TestContext> = {}) => {
  const t = createT();
  const clock = createManualClock();
  const log = eventLog();
  const { idempotent } = createIdempotency<TestContext>({ store: createMemoryStore({ clock }), clock, onEvent: log.onEvent, ...options });
  let runs = 0;
  let thrower: () => unknown = () => 'ok';
  const router = t.router({
    fail: t.procedure.use(idempotent()).mutation(() => {
      runs++;
      return thrower();
    }),
  });
  const api = t.createCallerFactory(router)({ headers: { 'idempotency-key': 'err-key' } });
  return {
    api,
    log,
    runs: () => runs,
    throws: (fn: () => unknown) => {
      thrower = fn;
    },
  };
};

const FINAL: TRPC_ERROR_CODE_KEY[] = ['BAD_REQUEST', 'NOT_FOUND', 'FORBIDDEN', 'PAYMENT_REQUIRED', 'CONFLICT', 'PRECONDITION_FAILED', 'UNPROCESSABLE_CONTENT'];
const RELEASED: TRPC_ERROR_CODE_KEY[] = [
  'TOO_MANY_REQUESTS',
  'TIMEOUT',
  'CLIENT_CLOSED_REQUEST',
  'UNAUTHORIZED',
  'INTERNAL_SERVER_ERROR',
  'NOT_IMPLEMENTED',
  'BAD_GATEWAY',
  'SERVICE_UNAVAILABLE',
  'GATEWAY_TIMEOUT',
];

describe('createIdempotency', () => {
  describe('final errors', () => {
    for (const code of FINAL) {
      it(`replays a stored ${code} with the same code and message without running again`, async () => {
        const { api, runs, throws, log } = setup();
        throws(() => {
          throw new TRPCError({ code, message: `nope: ${code}` });
        });
        const first = await trpcErrorOf(api.fail());
        throws(() => 'would succeed now');
        const replay = await trpcErrorOf(api.fail());
        expect(first.code).toBe(code);
        expect(replay.code).toBe(code);
        expect(replay.message).toBe(`nope: ${code}`);
        expect(runs()).toBe(1);
        expect(log.ofType('completed')).toEqual([expect.objectContaining({ outcome: 'error' })]);
        expect(log.ofType('replayed')).toEqual([expect.objectContaining({ outcome: 'error' })]);
      });
    }
  });

  describe('released errors', () => {
    for (const code of RELEASED) {
      it(`releases the key on ${code}, so a retry runs again`, async () => {
        const { api, runs, throws, log } = setup();
        throws(() => {
          throw new TRPCError({ code, message: 'try again' });
        });
        expect((await trpcErrorOf(api.fail())).code).toBe(code);
        throws(() => 'second try');
        expect(await api.fail()).toBe('second try');
        expect(runs()).toBe(2);
        expect(log.ofType('released')).toEqual([expect.objectContaining({ code, path: 'fail' })]);
        expect(await api.fail()).toBe('second try');
        expect(runs()).toBe(2);
      });
    }

    it('releases the key when the procedure throws a plain Error', async () => {
      const { api, runs, throws } = setup();
      throws(() => {
        throw new Error('db down');
      });
      expect((await trpcErrorOf(api.fail())).code).toBe('INTERNAL_SERVER_ERROR');
      throws(() => 'ok');
      expect(await api.fail()).toBe('ok');
      expect(runs()).toBe(2);
    });
  });

  describe('a broken inner middleware', () => {
    it('releases the key and keeps tRPC\'s own message when an inner middleware forgets to return next()', async () => {
      const t = createT();
      const clock = createManualClock();
      const log = eventLog();
      const { idempotent } = createIdempotency<TestContext>({ store: createMemoryStore({ clock }), clock, onEvent: log.onEvent });
      let runs = 0;
      const router = t.router({
        forgetful: t.procedure
          .use(idempotent())
          .use(async ({ next }) => {
            await next();
            return undefined as never;
          })
          .mutation(() => ++runs),
      });
      const api = t.createCallerFactory(router)({ headers: { 'idempotency-key': 'forgot' } });
      const first = await trpcErrorOf(api.forgetful());
      expect(first.code).toBe('INTERNAL_SERVER_ERROR');
      expect(first.message).toMatch(/did you forget to `return next\(\)`/);
      // Not stuck in progress until the lease runs out: the key was released.
      const second = await trpcErrorOf(api.forgetful());
      expect(second.code).toBe('INTERNAL_SERVER_ERROR');
      expect(runs).toBe(2);
      // Observers see the call as the client did: an internal error, not a stored outcome.
      expect(log.ofType('released').map((e) => e.code)).toEqual(['INTERNAL_SERVER_ERROR', 'INTERNAL_SERVER_ERROR']);
    });
  });

  describe('shouldStoreError', () => {
    it('stores what the override says is final', async () => {
      const { api, runs, throws } = setup({ shouldStoreError: (e) => e.code === 'TOO_MANY_REQUESTS' });
      throws(() => {
        throw new TRPCError({ code: 'TOO_MANY_REQUESTS', message: 'slow down' });
      });
      await trpcErrorOf(api.fail());
      throws(() => 'ok');
      const replay = await trpcErrorOf(api.fail());
      expect(replay.code).toBe('TOO_MANY_REQUESTS');
      expect(replay.message).toBe('slow down');
      expect(runs()).toBe(1);
    });

    it('releases what the override says is not final', async () => {
      const { api, runs, throws } = setup({ shouldStoreError: () => false });
      throws(() => {
        throw new TRPCError({ code: 'NOT_FOUND', message: 'gone' });
      });
      await trpcErrorOf(api.fail());
      throws(() => 'ok');
      expect(await api.fail()).toBe('ok');
      expect(runs()).toBe(2);
    });

    it('releases the key when the override throws', async () => {
      const { api, runs, throws } = setup({
        shouldStoreError: () => {
          throw new Error('buggy predicate');
        },
      });
      throws(() => {
        throw new TRPCError({ code: 'NOT_FOUND', message: 'gone' });
      });
      expect((await trpcErrorOf(api.fail())).code).toBe('NOT_FOUND');
      throws(() => 'ok');
      expect(await api.fail()).toBe('ok');
      expect(runs()).toBe(2);
    });

    it('exports the default predicate with final client errors only', () => {
      for (const code of FINAL) expect(defaultShouldStoreError(new TRPCError({ code }))).toBe(true);
      for (const code of RELEASED) expect(defaultShouldStoreError(new TRPCError({ code }))).toBe(false);
    });
  });
});
