import { describe, expect, it } from 'vitest';
import { createMemoryStore, idempotent } from 'trpc-idempotency';
import { createManualClock, describeStoreConformance, resetIdempotentStore } from 'trpc-idempotency/testing';
import { createT } from '../server/helpers';

describe('resetIdempotentStore', () => {
  // Built once, before any reset, as an app's router is built when its module loads.
  const t = createT();
  let runs = 0;
  const router = t.router({
    create: t.procedure.use(idempotent()).mutation(() => ++runs),
  });
  const call = (key: string) => t.createCallerFactory(router)({ headers: { 'idempotency-key': key } }).create();

  it('makes the zero-config idempotent forget its keys, in middlewares built before the reset', async () => {
    expect([await call('reset-1'), await call('reset-1')]).toEqual([1, 1]);
    resetIdempotentStore();
    expect([await call('reset-1'), await call('reset-1')]).toEqual([2, 2]);
    expect(runs).toBe(2);
  });

  it('leaves keys alone until it is called', async () => {
    resetIdempotentStore();
    const before = runs;
    await call('reset-2');
    await call('reset-2');
    expect(runs).toBe(before + 1);
  });
});

// The published entry runs the suite as a store author would: here on the memory store and a manual clock.
describeStoreConformance(
  'trpc-idempotency/testing on createMemoryStore',
  async () => {
    const clock = createManualClock();
    return { store: createMemoryStore({ clock }), advance: (ms) => clock.advance(ms), close: async () => {} };
  },
  { lockTtlMs: 1_000 },
);
