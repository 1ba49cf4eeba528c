import { TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { createIdempotency, createMemoryStore, idempotencyErrorData, isIdempotencyError } from '../../src/index';
import type { IdempotencyExecution, IdempotencyOptions, IdempotencyStore } from '../../src/index';
import { createManualClock } from '../helpers/manualClock';
import type { Deferred, TestContext } from './helpers';
import { createT, deferred, eventLog, spyStore, trpcErrorOf } from './helpers';

const LOCK_TTL = 3_000;

/** `work` runs until the test opens its gate; every run's ctx.idempotency is kept. */
const setup = (overrides: Partial<IdempotencyStore> = {}, options: IdempotencyOptions<TestContext> = {}) => {
  const t = createT();
  const clock = createManualClock();
  const inner = createMemoryStore({ clock });
  const spy = spyStore(inner, overrides);
  const log = eventLog();
  const { idempotent } = createIdempotency<TestContext>({ store: spy.store, clock, lockTtlMs: LOCK_TTL, onEvent: log.onEvent, ...options });
  const executions: IdempotencyExecution[] = [];
  const gates: Deferred[] = [];
  const started: Deferred[] = Array.from({ length: 10 }, () => deferred());
  const router = t.router({
    work: t.procedure.use(idempotent()).mutation(async ({ ctx }) => {
      const run = executions.length;
      executions.push(ctx.idempotency as IdempotencyExecution);
      const gate = deferred();
      gates.push(gate);
      started[run]?.resolve();
      await gate.promise;
      return { run };
    }),
    quick: t.procedure.use(idempotent()).mutation(({ ctx }) => {
      executions.push(ctx.idempotency as IdempotencyExecution);
      if (executions.length < 3) throw new TRPCError({ code: 'SERVICE_UNAVAILABLE' });
      return 'done';
    }),
  });
  const api = (key = 'lease-key') => t.createCallerFactory(router)({ headers: { 'idempotency-key': key } });
  /** The record id of `key` on `work`, learnt from a claim the spy refuses (nothing runs). */
  const idOf = async (key: string): Promise<string> => {
    const refusing = spyStore(inner, { claim: () => Promise.reject(new Error('probe')) });
    const probe = createIdempotency<TestContext>({ store: refusing.store, clock, lockTtlMs: LOCK_TTL });
    const probeRouter = t.router({ work: t.procedure.use(probe.idempotent()).mutation(() => 'never') });
    await trpcErrorOf(t.createCallerFactory(probeRouter)({ headers: { 'idempotency-key': key } }).work());
    return refusing.callsOf('claim')[0].id as string;
  };
  return { api, clock, inner, spy, log, executions, gates, started, idOf };
};

describe('createIdempotency', () => {
  describe('leases', () => {
    it('renews the lease every lockTtlMs / 3 so a long procedure keeps its key past lockTtlMs', async () => {
      const s = setup();
      const first = s.api().work();
      await s.started[0]?.promise;
      await s.clock.advance(10 * LOCK_TTL);
      expect(s.spy.callsOf('renew')).toHaveLength(30);
      const error = await trpcErrorOf(s.api().work());
      expect(error.code).toBe('CONFLICT');
      expect(idempotencyErrorData(error)?.reason).toBe('in_progress');
      expect(s.executions).toHaveLength(1);
      expect(s.executions[0]?.signal.aborted).toBe(false);
      s.gates[0]?.resolve();
      expect(await first).toEqual({ run: 0 });
    });

    it('leaves no timer behind once the procedure has finished', async () => {
      const s = setup();
      const first = s.api().work();
      await s.started[0]?.promise;
      s.gates[0]?.resolve();
      await first;
      // Renewals share one timer per interval: it may still be armed, but fires for nothing and stops.
      expect(s.clock.pending()).toBeLessThanOrEqual(1);
      await s.clock.advance(LOCK_TTL / 3);
      expect(s.clock.pending()).toBe(0);
      await s.clock.advance(10 * LOCK_TTL);
      expect(s.spy.callsOf('renew')).toHaveLength(0);
    });

    it('renews many concurrent leases on one shared timer, each on its own schedule', async () => {
      const s = setup();
      const calls = Array.from({ length: 5 }, (_, i) => s.api(`many-${i}`).work());
      await Promise.all(s.started.slice(0, 5).map((d) => d.promise));
      expect(s.clock.pending()).toBe(1);
      await s.clock.advance(LOCK_TTL);
      expect(s.spy.callsOf('renew')).toHaveLength(15);
      // Finished leases stop renewing; the others go on.
      s.gates[0]?.resolve();
      s.gates[1]?.resolve();
      await Promise.all(calls.slice(0, 2));
      await s.clock.advance(LOCK_TTL);
      expect(s.spy.callsOf('renew')).toHaveLength(15 + 9);
      for (const gate of s.gates.slice(2)) gate.resolve();
      await Promise.all(calls);
      await s.clock.advance(LOCK_TTL);
      expect(s.spy.callsOf('renew')).toHaveLength(24);
      expect(s.clock.pending()).toBe(0);
    });

    it('gives ctx.idempotency the key, the record id, a fence, takeover and a live signal', async () => {
      const s = setup();
      const first = s.api('ctx-key').work();
      await s.started[0]?.promise;
      const execution = s.executions[0];
      expect(execution).toMatchObject({ key: 'ctx-key', takeover: false });
      expect(execution?.keyHash).toBe(s.spy.callsOf('claim')[0].id);
      expect(execution?.fence).toBeGreaterThan(0);
      expect(execution?.signal).toBeInstanceOf(AbortSignal);
      expect(execution?.signal.aborted).toBe(false);
      expect(s.log.ofType('claimed')).toEqual([expect.objectContaining({ keyHash: execution?.keyHash, fence: execution?.fence, takeover: false })]);
      s.gates[0]?.resolve();
      await first;
    });

    it('blocks the key while a crashed owner holds it, then lets the next call take over with a larger fence', async () => {
      const s = setup();
      const id = await s.idOf('crash-key');
      const crashed = await s.inner.claim({ id, partition: 'p', token: 'crashed-owner', fingerprint: '', lockTtlMs: LOCK_TTL });
      if (crashed.status !== 'acquired') throw new Error('setup: expected to acquire');

      await s.clock.advance(LOCK_TTL - 1);
      expect((await trpcErrorOf(s.api('crash-key').work())).code).toBe('CONFLICT');
      expect(s.executions).toHaveLength(0);

      await s.clock.advance(1);
      const next = s.api('crash-key').work();
      await s.started[0]?.promise;
      expect(s.executions[0]?.takeover).toBe(true);
      expect(s.executions[0]?.fence).toBeGreaterThan(crashed.fence);
      expect(s.log.ofType('claimed')).toEqual([expect.objectContaining({ takeover: true })]);
      s.gates[0]?.resolve();
      expect(await next).toEqual({ run: 0 });
      // The crashed owner can no longer write.
      expect(await s.inner.complete({ id, token: 'crashed-owner', result: 'late', ttlMs: 1_000 })).toEqual({ status: 'lost' });
    });

    it("takes over a crashed owner's key when the lease runs out while a duplicate waits", async () => {
      const s = setup({}, { onInProgress: 'wait', waitTimeoutMs: 10_000 });
      const id = await s.idOf('crash-wait');
      await s.inner.claim({ id, partition: 'p', token: 'crashed-owner', fingerprint: '', lockTtlMs: LOCK_TTL });
      const waiting = s.api('crash-wait').work();
      await s.clock.advance(LOCK_TTL - 1);
      expect(s.executions).toHaveLength(0);
      await s.clock.advance(1);
      await s.started[0]?.promise;
      expect(s.executions[0]?.takeover).toBe(true);
      s.gates[0]?.resolve();
      expect(await waiting).toEqual({ run: 0 });
    });

    it('aborts ctx.idempotency.signal and reports lease_lost when renew says lost', async () => {
      const s = setup({ renew: async () => ({ status: 'lost' }) });
      const first = s.api().work();
      await s.started[0]?.promise;
      const signal = s.executions[0]?.signal as AbortSignal;
      await s.clock.advance(LOCK_TTL / 3 - 1);
      expect(signal.aborted).toBe(false);
      await s.clock.advance(1);
      expect(signal.aborted).toBe(true);
      expect(isIdempotencyError(signal.reason) && signal.reason.code).toBe('LEASE_LOST');
      expect(s.log.ofType('lease_lost')).toEqual([
        expect.objectContaining({ phase: 'renew', path: 'work', keyHash: s.executions[0]?.keyHash }),
      ]);
      // No further renewals after the loss.
      await s.clock.advance(10 * LOCK_TTL);
      expect(s.spy.callsOf('renew')).toHaveLength(1);
      s.gates[0]?.resolve();
      await first;
    });

    it('gives an already aborted signal when the procedure first reads it after the lease was lost', async () => {
      const s = setup({ renew: async () => ({ status: 'lost' }) });
      const first = s.api().work();
      await s.started[0]?.promise;
      await s.clock.advance(LOCK_TTL / 3);
      expect(s.log.ofType('lease_lost')).toHaveLength(1);
      const { signal } = s.executions[0] as IdempotencyExecution; // first read, after the loss
      expect(signal.aborted).toBe(true);
      expect(isIdempotencyError(signal.reason) && signal.reason.code).toBe('LEASE_LOST');
      expect(s.executions[0]?.signal).toBe(signal); // one signal per execution
      s.gates[0]?.resolve();
      await first;
    });

    it('aborts the signal by the end of the lease when a renewal never answers', async () => {
      const s = setup({ renew: () => new Promise(() => undefined) });
      const first = s.api().work();
      await s.started[0]?.promise;
      const signal = s.executions[0]?.signal as AbortSignal;
      await s.clock.advance(LOCK_TTL - 1);
      expect(signal.aborted).toBe(false);
      await s.clock.advance(1);
      // The store's lease is over and another caller may take the key: the owner must know.
      expect(signal.aborted).toBe(true);
      expect(s.log.ofType('lease_lost')).toEqual([expect.objectContaining({ phase: 'renew' })]);
      s.gates[0]?.resolve();
      await first;
      expect(s.clock.pending()).toBe(0);
    });

    it('measures the lease from when the claim was sent, so a late claim reply does not stretch it', async () => {
      const real: { store?: IdempotencyStore } = {};
      const s = setup({
        renew: () => new Promise(() => undefined),
        claim: async (request) => {
          const outcome = await (real.store as IdempotencyStore).claim(request); // the store's lease starts now...
          await new Promise<void>((resolve) => s.clock.setTimeout(() => resolve(), 1_000)); // ...the reply arrives 1 s later
          return outcome;
        },
      });
      real.store = s.inner;
      const first = s.api().work();
      await s.clock.advance(1_000);
      await s.started[0]?.promise;
      const signal = s.executions[0]?.signal as AbortSignal;
      await s.clock.advance(LOCK_TTL - 1_000 - 1);
      expect(signal.aborted).toBe(false);
      await s.clock.advance(1);
      // The store would now let another caller take the key over: the owner knows at the same moment.
      expect(signal.aborted).toBe(true);
      s.gates[0]?.resolve();
      await first;
    });

    it('runs nothing, gives the key up and answers SERVICE_UNAVAILABLE when the claim is answered after its lease could have ended', async () => {
      const real: { store?: IdempotencyStore } = {};
      const s = setup({
        claim: async (request) => {
          const outcome = await (real.store as IdempotencyStore).claim(request); // the store's lease starts now...
          await new Promise<void>((resolve) => s.clock.setTimeout(() => resolve(), LOCK_TTL)); // ...the reply comes a whole lease later
          return outcome;
        },
      });
      real.store = s.inner;
      const late = trpcErrorOf(s.api().work());
      await s.clock.advance(LOCK_TTL);
      const error = await late;
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(idempotencyErrorData(error)).toEqual({ reason: 'store_unavailable', retryAfterMs: 1000 });
      // For the server's logs (clients get the generic store_unavailable text): why nothing ran.
      expect((error.cause as Error).message).toMatch(/answered the claim after its 3000 ms lease could have ended; the procedure was not run/);
      expect(s.executions).toHaveLength(0);
      expect(s.spy.callsOf('release')).toHaveLength(1);
      expect(s.log.ofType('lease_lost').map((e) => e.phase)).toEqual(['claim']);
      expect(s.clock.pending()).toBe(0);

      // The key was given up: a prompt claim runs the procedure, once.
      s.spy.override('claim', (request) => s.inner.claim(request));
      const next = s.api().work();
      await s.started[0]?.promise;
      s.gates[0]?.resolve();
      expect(await next).toEqual({ run: 0 });
      expect(s.executions).toHaveLength(1);
    });

    it("keeps the new owner's result when a finisher that lost its lease completes late, and answers that finisher LEASE_LOST", async () => {
      const s = setup({ renew: () => Promise.reject(new Error('store unreachable')) });
      const stale = s.api().work();
      await s.started[0]?.promise;
      await s.clock.advance(LOCK_TTL);
      // Renewals failed until the lease would have run out: the signal says stop writing.
      expect(s.executions[0]?.signal.aborted).toBe(true);
      expect(s.log.ofType('store_error').every((e) => e.operation === 'renew')).toBe(true);
      expect(s.log.ofType('lease_lost')).toHaveLength(1);

      const fresh = s.api().work();
      await s.started[1]?.promise;
      expect(s.executions[1]?.takeover).toBe(true);
      expect(s.executions[1]?.fence).toBeGreaterThan(s.executions[0]?.fence as number);
      s.gates[1]?.resolve();
      expect(await fresh).toEqual({ run: 1 });

      // The stale finisher's result will never be replayed: it gets a retryable LEASE_LOST, never `{ run: 0 }`.
      s.gates[0]?.resolve();
      const error = await trpcErrorOf(stale);
      expect(error.code).toBe('CONFLICT');
      expect(error.message).toMatch(/lease on this idempotency key was lost .*retry with the same key to get the final result/);
      expect(idempotencyErrorData(error)).toEqual({ reason: 'lease_lost' });
      expect(s.log.ofType('lease_lost').map((e) => e.phase)).toEqual(['renew', 'complete']);
      expect(await s.api().work()).toEqual({ run: 1 });
      expect(s.executions).toHaveLength(2);
    });

    it('hands out a larger fence on every new claim of a key', async () => {
      const s = setup();
      await trpcErrorOf(s.api('fences').quick());
      await s.clock.advance(1);
      await trpcErrorOf(s.api('fences').quick());
      await s.clock.advance(1);
      expect(await s.api('fences').quick()).toBe('done');
      const fences = s.executions.map((e) => e.fence);
      expect(fences).toHaveLength(3);
      expect(fences[1]).toBeGreaterThan(fences[0] as number);
      expect(fences[2]).toBeGreaterThan(fences[1] as number);
    });

    it('hands out a larger fence even when no time passes between claims', async () => {
      const s = setup();
      await trpcErrorOf(s.api('fences0').quick());
      await trpcErrorOf(s.api('fences0').quick());
      await s.api('fences0').quick();
      const [a, b, c] = s.executions.map((e) => e.fence);
      expect(b).toBeGreaterThan(a as number);
      expect(c).toBeGreaterThan(b as number);
    });
  });
});
