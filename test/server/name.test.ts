import { describe, expect, it } from 'vitest';
import { createIdempotency, createMemoryStore, IdempotencyError } from '../../src/index';
import type { IdempotencyOptions, IdempotencyStore, IdempotentOptions } from '../../src/index';
import { createManualClock } from '../helpers/manualClock';
import type { TestContext } from './helpers';
import { createT, eventLog, trpcErrorOf } from './helpers';

/** One release of an app: `order.create` (v1) or `orders.place` (v2, the same mutation moved), on a shared store. */
const release = (store: IdempotencyStore, procedure: IdempotentOptions<TestContext> = {}) => {
  const t = createT();
  const log = eventLog();
  const { idempotent } = createIdempotency<TestContext>({ store, clock: createManualClock(), onEvent: log.onEvent });
  const runs: unknown[] = [];
  const create = t.procedure
    .use(idempotent(procedure))
    .input((raw: unknown) => raw as { item: string })
    .mutation(({ input }) => {
      runs.push(input);
      return { order: runs.length, item: input.item };
    });
  const router = t.router({ order: t.router({ create }), orders: t.router({ place: create }) });
  const caller = (key: string) => t.createCallerFactory(router)({ headers: { 'idempotency-key': key } });
  return { caller, runs, log };
};

describe('idempotent({ name })', () => {
  it('replays across a rename: the moved procedure named after its old path finds the old keys', async () => {
    const store = createMemoryStore();
    const v1 = release(store);
    const first = await v1.caller('k1').order.create({ item: 'book' });

    const v2 = release(store, { name: 'order.create' });
    const again = await v2.caller('k1').orders.place({ item: 'book' });
    expect(again).toEqual(first);
    expect(v2.runs).toHaveLength(0);
    // Events still say where the call arrived.
    expect(v2.log.ofType('replayed').map((event) => event.path)).toEqual(['orders.place']);
    expect(v2.log.ofType('replayed').map((event) => event.keyHash)).toEqual(v1.log.ofType('claimed').map((event) => event.keyHash));
  });

  it('without a name, the same key at another path is another request', async () => {
    const store = createMemoryStore();
    const v1 = release(store);
    await v1.caller('k1').order.create({ item: 'book' });
    const v2 = release(store);
    await v2.caller('k1').orders.place({ item: 'book' });
    expect([v1.runs.length, v2.runs.length]).toEqual([1, 1]);
  });

  it('shares keys between two procedures with one name, the fingerprint still checked', async () => {
    const app = release(createMemoryStore(), { name: 'checkout' });
    const first = await app.caller('k2').order.create({ item: 'pen' });
    expect(await app.caller('k2').orders.place({ item: 'pen' })).toEqual(first);
    const error = await trpcErrorOf(app.caller('k2').orders.place({ item: 'ink' }));
    expect(error.code).toBe('UNPROCESSABLE_CONTENT');
    expect(app.runs).toHaveLength(1);
    expect(app.log.ofType('claimed').map((event) => event.path)).toEqual(['order.create']);
    expect(app.log.ofType('mismatch').map((event) => event.path)).toEqual(['orders.place']);
  });

  it('refuses an empty name, naming the option', () => {
    const { idempotent } = createIdempotency();
    const error = (() => {
      try {
        idempotent({ name: '' });
      } catch (thrown) {
        return thrown;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(IdempotencyError);
    expect((error as IdempotencyError).message).toMatch(/idempotent: option "name" must be a non-empty string/);
  });

  it('refuses name in createIdempotency: every procedure would share its keys', () => {
    expect(() => createIdempotency({ name: 'all' } as IdempotencyOptions)).toThrow(/createIdempotency: option "name" is not an option here/);
  });
});
