import { afterEach, describe, expect, it, vi } from 'vitest';
import { createIdempotency, createMemoryStore } from '../../src/index';
import type { IdempotencyExecution } from '../../src/index';
import type { TestContext } from './helpers';
import { createT, deferred, spyStore } from './helpers';

// The system clock, for real: leases are intervals and must not move when the wall clock is stepped.
describe('leases on the system clock', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('keeps renewing and keeps the lease when the wall clock steps back a minute mid-run', async () => {
    const t = createT();
    const renewed = deferred();
    let renewals = 0;
    const spy = spyStore(createMemoryStore());
    spy.override('renew', async () => {
      renewals++;
      if (renewals === 3) renewed.resolve();
      return { status: 'ok' as const };
    });
    const { idempotent } = createIdempotency<TestContext>({ store: spy.store, lockTtlMs: 300 });
    const gate = deferred();
    let execution: IdempotencyExecution | null = null;
    const router = t.router({
      run: t.procedure.use(idempotent()).mutation(async ({ ctx }) => {
        execution = ctx.idempotency;
        const wall = Date.now();
        vi.spyOn(Date, 'now').mockImplementation(() => wall - 60_000);
        await gate.promise;
        return 'done';
      }),
    });
    const call = t.createCallerFactory(router)({ headers: { 'idempotency-key': 'wall-step' } }).run();
    // Renewals every 100 ms; on the wall clock the next one would be a minute away and the lease would lapse.
    await renewed.promise;
    expect((execution as IdempotencyExecution | null)?.signal.aborted).toBe(false);
    gate.resolve();
    expect(await call).toBe('done');
  }, 3_000); // three renewals take 300 ms; on the wall clock they would take a minute
});
