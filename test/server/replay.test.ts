import { TRPCError } from '@trpc/server';
import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { createIdempotency, createMemoryStore } from '../../src/index';
import type { IdempotencyOptions } from '../../src/index';
import { createManualClock } from '../helpers/manualClock';
import type { TestContext } from './helpers';
import { createT, eventLog, trpcErrorOf } from './helpers';

/** `echo` returns a rich value built from its input; `make` returns whatever the test hands it. */
const setup = (options: IdempotencyOptions<TestContext> = {}, perProcedure: Parameters<ReturnType<typeof createIdempotency>['idempotent']>[0] = {}) => {
  const t = createT();
  const clock = createManualClock();
  const log = eventLog();
  const store = createMemoryStore({ clock });
  const { idempotent } = createIdempotency<TestContext>({ store, clock, onEvent: log.onEvent, ...options });
  let runs = 0;
  let output: () => unknown = () => null;
  const router = t.router({
    echo: t.procedure
      .use(idempotent(perProcedure))
      .input((raw: unknown) => raw)
      .mutation(({ input }) => ({ input, run: ++runs })),
    make: t.procedure.use(idempotent(perProcedure)).mutation(() => {
      runs++;
      return output();
    }),
  });
  const api = (key = 'k1') => t.createCallerFactory(router)({ headers: { 'idempotency-key': key } });
  return {
    api,
    clock,
    log,
    store,
    runs: () => runs,
    returns: (fn: () => unknown) => {
      output = fn;
    },
  };
};

describe('createIdempotency', () => {
  describe('fingerprint', () => {
    it('answers UNPROCESSABLE_CONTENT when the same key comes with another input', async () => {
      const { api, runs, log } = setup();
      await api().echo({ amount: 1 });
      const error = await trpcErrorOf(api().echo({ amount: 2 }));
      expect(error.code).toBe('UNPROCESSABLE_CONTENT');
      expect(error.message).toMatch(/different input/);
      expect(runs()).toBe(1);
      expect(log.ofType('mismatch')).toHaveLength(1);
    });

    it('replays when only the key order of the input differs', async () => {
      const { api, runs } = setup();
      const first = await api().echo({ a: 1, b: { c: 2, d: 3 } });
      const second = await api().echo({ b: { d: 3, c: 2 }, a: 1 });
      expect(runs()).toBe(1);
      expect(second).toEqual(first);
    });

    it('tells a Date from its ISO string', async () => {
      const { api, runs } = setup();
      const when = new Date('2024-01-02T03:04:05.000Z');
      await api().echo({ when });
      const error = await trpcErrorOf(api().echo({ when: when.toISOString() }));
      expect(error.code).toBe('UNPROCESSABLE_CONTENT');
      expect(runs()).toBe(1);
    });

    it('tells 1n from 1', async () => {
      const { api, runs } = setup();
      await api().echo({ amount: 1n });
      const error = await trpcErrorOf(api().echo({ amount: 1 }));
      expect(error.code).toBe('UNPROCESSABLE_CONTENT');
      expect(runs()).toBe(1);
    });

    it('replays another input when the procedure sets fingerprint: false', async () => {
      const { api, runs } = setup({}, { fingerprint: false });
      const first = await api().echo({ amount: 1 });
      const second = await api().echo({ amount: 2 });
      expect(runs()).toBe(1);
      expect(second).toEqual(first);
    });

    it('uses a custom fingerprint function', async () => {
      const { api, runs } = setup({ fingerprint: (raw) => String((raw as { account: string }).account) });
      await api().echo({ account: 'A', note: 'x' });
      const replay = await api().echo({ account: 'A', note: 'y' });
      expect(replay.run).toBe(1);
      const error = await trpcErrorOf(api().echo({ account: 'B', note: 'x' }));
      expect(error.code).toBe('UNPROCESSABLE_CONTENT');
      expect(runs()).toBe(1);
    });

    it('replays, once a deploy turns the fingerprint off, the keys stored while inputs were compared', async () => {
      const t = createT();
      const clock = createManualClock();
      const store = createMemoryStore({ clock });
      let runs = 0;
      const deploy = (perProcedure: { fingerprint: boolean }) => {
        const { idempotent } = createIdempotency<TestContext>({ store, clock });
        const router = t.router({
          echo: t.procedure
            .use(idempotent(perProcedure))
            .input((raw: unknown) => raw)
            .mutation(({ input }) => ({ input, run: ++runs })),
        });
        return t.createCallerFactory(router)({ headers: { 'idempotency-key': 'k1' } });
      };
      const first = await deploy({ fingerprint: true }).echo({ amount: 1 });
      // The retry reaches the new version with an input that changed on the way (a client-side timestamp, say).
      const retry = await deploy({ fingerprint: false }).echo({ amount: 1, sentAt: 2 });
      expect(retry).toEqual(first);
      expect(runs).toBe(1);
    });

    it("passes on the app's own error from a fingerprint function as it is, and runs nothing", async () => {
      const { api, runs, log } = setup({
        fingerprint: (raw) => {
          const { account } = raw as { account?: string };
          if (account === undefined) throw new TRPCError({ code: 'BAD_REQUEST', message: 'an order needs an account' });
          return account;
        },
      });
      const error = await trpcErrorOf(api().echo({ note: 'x' }));
      expect(error.code).toBe('BAD_REQUEST');
      expect(error.message).toBe('an order needs an account');
      expect(runs()).toBe(0);
      expect(log.ofType('claimed')).toHaveLength(0);
    });
  });

  describe('replayed results', () => {
    it('replays a deep-equal value with Date, Map, Set, BigInt and undefined properties', async () => {
      const { api, runs, returns } = setup();
      returns(() => ({
        at: new Date('2024-01-02T03:04:05.000Z'),
        map: new Map<string, unknown>([['a', 1n], ['b', new Set([1, 2])]]),
        set: new Set(['x']),
        big: 2n ** 70n,
        missing: undefined,
        nested: [{ when: new Date(0), u: undefined }],
      }));
      const first = await api().make();
      const replay = (await api().make()) as typeof first & Record<string, unknown>;
      expect(runs()).toBe(1);
      expect(replay).toEqual(first);
      expect(replay).not.toBe(first);
      expect(replay.at).toBeInstanceOf(Date);
      expect(replay.map).toBeInstanceOf(Map);
      expect(replay.set).toBeInstanceOf(Set);
      expect(typeof replay.big).toBe('bigint');
      expect(Object.keys(replay)).toContain('missing');
    });

    it('replays a circular value with its cycle intact (superjson keeps referential equality)', async () => {
      const { api, runs, returns, log } = setup();
      returns(() => {
        const node: { name: string; self?: unknown; list: unknown[] } = { name: 'loop', list: [] };
        node.self = node;
        node.list.push(node);
        return node;
      });
      await api().make();
      const replay = (await api().make()) as { name: string; self: unknown; list: unknown[] };
      expect(runs()).toBe(1);
      expect(log.ofType('not_stored')).toHaveLength(0);
      expect(replay.name).toBe('loop');
      expect(replay.self).toBe(replay);
      expect(replay.list[0]).toBe(replay);
    });

    it('replays undefined and null results', async () => {
      const { api, runs, returns } = setup();
      returns(() => undefined);
      expect(await api('u').make()).toBeUndefined();
      expect(await api('u').make()).toBeUndefined();
      returns(() => null);
      expect(await api('n').make()).toBeNull();
      expect(await api('n').make()).toBeNull();
      expect(runs()).toBe(2);
    });

    it('runs again once ttlMs has passed', async () => {
      const { api, runs, clock } = setup({ ttlMs: 60_000 });
      await api().echo({ a: 1 });
      await clock.advance(59_999);
      expect((await api().echo({ a: 1 })).run).toBe(1);
      await clock.advance(1);
      expect((await api().echo({ a: 1 })).run).toBe(2);
      expect(runs()).toBe(2);
    });

    it('takes ttlMs from the procedure over the instance', async () => {
      const { api, runs, clock } = setup({ ttlMs: 60_000 }, { ttlMs: 1_000 });
      await api().echo({ a: 1 });
      await clock.advance(1_000);
      await api().echo({ a: 1 });
      expect(runs()).toBe(2);
    });
  });

  describe('maxResultBytes', () => {
    it('returns a too-large result the first time, then CONFLICT not_stored without running again', async () => {
      const { api, runs, returns, log } = setup({ maxResultBytes: 100 });
      const big = { text: 'x'.repeat(500) };
      returns(() => big);
      expect(await api().make()).toEqual(big);
      const [notStored] = log.ofType('not_stored');
      expect(notStored).toMatchObject({ reason: 'too_large', limitBytes: 100, path: 'make' });
      expect(notStored?.bytes).toBeGreaterThan(500);
      const error = await trpcErrorOf(api().make());
      expect(error.code).toBe('CONFLICT');
      expect(error.message).toMatch(/larger than maxResultBytes/);
      expect((error.cause as { code?: string }).code).toBe('NOT_STORED');
      expect(runs()).toBe(1);
    });

    it('counts the limit in UTF-8 bytes, not characters', async () => {
      const { api, runs, returns, log } = setup({ maxResultBytes: 150 });
      const text = 'é'.repeat(100);
      returns(() => text);
      expect(await api().make()).toBe(text);
      expect(log.ofType('not_stored')[0]?.bytes).toBeGreaterThan(200);
      expect((await trpcErrorOf(api().make())).code).toBe('CONFLICT');
      expect(runs()).toBe(1);
    });

    it('keeps a result exactly at the limit', async () => {
      const value = 'x'.repeat(50);
      const { api, runs, returns } = setup({ maxResultBytes: Buffer.byteLength(superjson.stringify(value)) });
      returns(() => value);
      await api().make();
      expect(await api().make()).toBe(value);
      expect(runs()).toBe(1);
    });

    it('returns an unserializable result the first time, then CONFLICT not_stored without running again', async () => {
      const { api, runs, returns, log } = setup();
      const value = {
        get boom(): never {
          throw new Error('cannot read');
        },
      };
      returns(() => value);
      expect(await api().make()).toBe(value);
      expect(log.ofType('not_stored')).toEqual([expect.objectContaining({ reason: 'unserializable', path: 'make' })]);
      const error = await trpcErrorOf(api().make());
      expect(error.code).toBe('CONFLICT');
      expect(error.message).toMatch(/could not be serialized/);
      expect(runs()).toBe(1);
    });

    it('treats a result the serializer throws on as unserializable', async () => {
      const { api, runs, returns } = setup({
        serializer: {
          serialize: (v) => {
            if (v === 'secret') throw new Error('no');
            return JSON.stringify(v);
          },
          deserialize: (s) => JSON.parse(s),
        },
      });
      returns(() => 'secret');
      expect(await api().make()).toBe('secret');
      expect((await trpcErrorOf(api().make())).code).toBe('CONFLICT');
      expect(runs()).toBe(1);
    });
  });
});
