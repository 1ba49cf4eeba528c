import { TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency, createMemoryStore } from '../../src/index';
import type { IdempotencyEvent, IdempotencyExecution } from '../../src/index';
import { createManualClock } from '../helpers/manualClock';
import type { TestContext } from './helpers';
import { createT, deferred } from './helpers';

const KEY = 'raw-secret-key-123';

/** Runs one scenario that makes every event type fire; returns what the callers saw. */
const scenario = async (onEvent: (event: IdempotencyEvent) => void) => {
  const t = createT();
  const clock = createManualClock();
  const inner = createMemoryStore({ clock });
  let lose = false;
  const store = { ...inner, renew: (r: Parameters<typeof inner.renew>[0]) => (lose ? Promise.resolve({ status: 'lost' as const }) : inner.renew(r)) };
  const { idempotent } = createIdempotency<TestContext>({ store, clock, lockTtlMs: 3_000, maxResultBytes: 64, onEvent });
  const runs = { work: 0, big: 0, flaky: 0, slow: 0, broken: 0 };
  const executions: IdempotencyExecution[] = [];
  const gate = deferred();
  const started = deferred();
  const router = t.router({
    work: t.procedure
      .use(idempotent())
      .input(z.object({ n: z.number() }))
      .mutation(async ({ input, ctx }) => {
        executions.push(ctx.idempotency as IdempotencyExecution);
        runs.work++;
        await clock.advance(250);
        return { n: input.n };
      }),
    big: t.procedure.use(idempotent()).mutation(() => {
      runs.big++;
      return 'x'.repeat(100);
    }),
    flaky: t.procedure.use(idempotent()).mutation(async () => {
      runs.flaky++;
      await clock.advance(40);
      throw new TRPCError({ code: 'TIMEOUT' });
    }),
    slow: t.procedure.use(idempotent()).mutation(async () => {
      runs.slow++;
      started.resolve();
      await gate.promise;
      return 'slow';
    }),
  });
  const api = t.createCallerFactory(router)({ headers: { 'idempotency-key': KEY } });
  const outcomes: unknown[] = [];
  const settle = async (p: Promise<unknown>) => outcomes.push(await p.then((v) => ({ ok: v }), (e: TRPCError) => ({ code: e.code })));

  await settle(api.work({ n: 1 })); // claimed, completed
  await settle(api.work({ n: 1 })); // replayed
  await settle(api.work({ n: 2 })); // mismatch
  await settle(api.big()); // not_stored, completed
  await settle(api.flaky()); // released
  const slow = api.slow();
  await started.promise;
  await settle(api.slow()); // conflict
  lose = true;
  await clock.advance(1_000); // lease_lost (renew)
  gate.resolve();
  await settle(slow);
  const failing = createIdempotency<TestContext>({
    store: { ...inner, claim: () => Promise.reject(new Error('down')) },
    clock,
    onEvent,
  });
  const brokenRouter = t.router({
    broken: t.procedure.use(failing.idempotent()).mutation(() => {
      runs.broken++;
      return 'never';
    }),
  });
  await settle(t.createCallerFactory(brokenRouter)({ headers: { 'idempotency-key': KEY } }).broken()); // store_error
  return { outcomes, runs, executions };
};

describe('createIdempotency', () => {
  describe('onEvent', () => {
    it('fires every event type with path and keyHash, never the raw key', async () => {
      const events: IdempotencyEvent[] = [];
      const { executions } = await scenario((e) => events.push(e));
      expect(new Set(events.map((e) => e.type))).toEqual(
        new Set(['claimed', 'completed', 'replayed', 'mismatch', 'not_stored', 'released', 'conflict', 'lease_lost', 'store_error']),
      );
      for (const event of events) {
        expect(event.path).toMatch(/^(work|big|flaky|slow|broken)$/);
        expect(event.keyHash).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(event.keyHash).not.toContain(KEY);
      }
      expect(JSON.stringify(events.map(({ ...e }) => ({ ...e, error: undefined })))).not.toContain(KEY);
      const workHash = executions[0]?.keyHash;
      expect(events.filter((e) => e.path === 'work').every((e) => e.keyHash === workHash)).toBe(true);
    });

    it('reports durations measured on the injected clock', async () => {
      const events: IdempotencyEvent[] = [];
      await scenario((e) => events.push(e));
      const completed = events.find((e) => e.type === 'completed' && e.path === 'work');
      expect(completed).toMatchObject({ outcome: 'ok', durationMs: 250 });
      expect((completed as { bytes: number }).bytes).toBeGreaterThan(0);
      expect(events.find((e) => e.type === 'released')).toMatchObject({ code: 'TIMEOUT', durationMs: 40, path: 'flaky' });
      expect(events.find((e) => e.type === 'replayed')).toMatchObject({ outcome: 'ok', durationMs: 0, path: 'work' });
      expect(events.find((e) => e.type === 'claimed')).toMatchObject({ takeover: false, durationMs: 0 });
      expect(events.find((e) => e.type === 'conflict')).toMatchObject({ path: 'slow', retryAfterMs: 1_000, waitedMs: 0 });
      expect(events.find((e) => e.type === 'not_stored')).toMatchObject({ path: 'big', reason: 'too_large', limitBytes: 64 });
      expect(events.find((e) => e.type === 'lease_lost')).toMatchObject({ path: 'slow', phase: 'renew' });
      expect(events.find((e) => e.type === 'store_error')).toMatchObject({ path: 'broken', operation: 'claim', failedOpen: false });
    });

    it('changes nothing when onEvent throws', async () => {
      const quiet = await scenario(() => undefined);
      const noisy = await scenario(() => {
        throw new Error('observer bug');
      });
      expect(noisy.outcomes).toEqual(quiet.outcomes);
      expect(noisy.runs).toEqual(quiet.runs);
      expect(quiet.outcomes).toEqual([
        { ok: { n: 1 } },
        { ok: { n: 1 } },
        { code: 'UNPROCESSABLE_CONTENT' },
        { ok: 'x'.repeat(100) },
        { code: 'TIMEOUT' },
        { code: 'CONFLICT' },
        { ok: 'slow' },
        { code: 'SERVICE_UNAVAILABLE' },
      ]);
      expect(quiet.runs).toEqual({ work: 1, big: 1, flaky: 1, slow: 1, broken: 0 });
    });
  });
});

describe('onEvent info', () => {
  it("passes every event the call's tRPC ctx, to correlate events with the request", async () => {
    const t = createT();
    const seen: { type: string; requestId: unknown }[] = [];
    const { idempotent } = createIdempotency<TestContext & { requestId: string }>({
      store: createMemoryStore(),
      onEvent: (event, { ctx }) => seen.push({ type: event.type, requestId: ctx.requestId }),
    });
    const router = t.router({ work: t.procedure.use(idempotent()).mutation(() => 'done') });
    const call = (requestId: string) =>
      t.createCallerFactory(router)({ headers: { 'idempotency-key': 'ctx-key' }, requestId } as TestContext & { requestId: string }).work();
    await call('r1');
    await call('r2');
    expect(seen).toEqual([
      { type: 'claimed', requestId: 'r1' },
      { type: 'completed', requestId: 'r1' },
      { type: 'replayed', requestId: 'r2' },
    ]);
  });
});
