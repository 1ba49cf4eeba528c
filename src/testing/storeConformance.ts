import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClaimOutcome, ClaimRequest, IdempotencyStore } from '../store';

/** What a store's test file hands the shared suite. */
export interface StoreHarness {
  store: IdempotencyStore;
  /** Let `ms` pass on the store's clock: a manual clock's advance, or a real wait for Redis. */
  advance(ms: number): Promise<void>;
  close(): Promise<void>;
}

export interface ConformanceOptions {
  /** A lease short enough to expire within a test; real-clock stores need a few hundred ms. */
  lockTtlMs: number;
}

const newId = (): string => `rec-${randomUUID()}`;
const token = (): string => randomUUID();

/**
 * The store with `expiresInMs` (an optional hint, see ClaimOutcome) checked and taken off completed outcomes, so
 * the cases below compare outcomes whole. `expiryOf` reads the hint before it is taken off.
 */
const HINTS = new WeakMap<IdempotencyStore, IdempotencyStore>();
const checkingExpiry = (store: IdempotencyStore): IdempotencyStore => {
  const checked: IdempotencyStore = {
    claim: async (request) => {
      const outcome = await store.claim(request);
      if (outcome.status !== 'completed' || !('expiresInMs' in outcome)) return outcome;
      expect(Number.isSafeInteger(outcome.expiresInMs) && (outcome.expiresInMs as number) >= 0).toBe(true);
      return { status: 'completed', result: outcome.result };
    },
    renew: (request) => store.renew(request),
    complete: (request) => store.complete(request),
    release: (request) => store.release(request),
    wait: (request) => store.wait(request),
    recordStep: (request) => store.recordStep(request),
  };
  HINTS.set(checked, store);
  return checked;
};
const expiryOf = async (store: IdempotencyStore, request: ClaimRequest): Promise<{ expiresInMs?: number | undefined }> => {
  const outcome = await (HINTS.get(store) ?? store).claim(request);
  if (outcome.status !== 'completed') throw new Error(`expected completed, got ${JSON.stringify(outcome)}`);
  return { expiresInMs: outcome.expiresInMs };
};

const acquiredFence = (outcome: ClaimOutcome): number => {
  if (outcome.status !== 'acquired') throw new Error(`expected acquired, got ${JSON.stringify(outcome)}`);
  return outcome.fence;
};

/**
 * The contract every IdempotencyStore must meet (see `IdempotencyStore`): registers a vitest `describe` block of
 * cases run against fresh harnesses. A store's own test file calls it, then adds the cases only that store has.
 * Each case uses new random record ids, so harnesses may share one backing database.
 *
 * @example
 * // myStore.test.ts (vitest)
 * import { createManualClock, describeStoreConformance } from 'trpc-idempotency/testing';
 * describeStoreConformance('myStore', async () => {
 *   const clock = createManualClock();
 *   const store = createMyStore({ clock });
 *   return { store, advance: (ms) => clock.advance(ms), close: async () => store.close() };
 * }, { lockTtlMs: 1_000 });
 */
export const describeStoreConformance = (
  name: string,
  makeHarness: () => Promise<StoreHarness>,
  { lockTtlMs }: ConformanceOptions,
): void => {
  describe(`${name}: IdempotencyStore conformance`, () => {
    let h: StoreHarness;
    beforeEach(async () => {
      const harness = await makeHarness();
      h = { ...harness, store: checkingExpiry(harness.store) };
    });
    afterEach(async () => {
      await h.close();
    });
    const ttlMs = 60_000;

    it('gives exactly one of many concurrent claims the key', async () => {
      const id = newId();
      const outcomes = await Promise.all(
        Array.from({ length: 100 }, () => h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs: 10_000 })),
      );
      expect(outcomes.filter((o) => o.status === 'acquired')).toHaveLength(1);
      expect(outcomes.filter((o) => o.status === 'in_progress')).toHaveLength(99);
    });

    it('reports in_progress with the time left on the lease', async () => {
      const id = newId();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs: 10_000 }));
      const second = await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs: 10_000 });
      expect(second.status).toBe('in_progress');
      if (second.status !== 'in_progress') return;
      expect(second.retryAfterMs).toBeGreaterThan(0);
      expect(second.retryAfterMs).toBeLessThanOrEqual(10_000);
    });

    it('replays the completed result byte for byte, to any claimer, until the TTL', async () => {
      const id = newId();
      const owner = token();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: 'f', lockTtlMs }));
      const result = 'o{"json":{"héllo":"wörld ✓","n":1}}';
      expect(await h.store.complete({ id, token: owner, result, ttlMs })).toEqual({ status: 'ok' });
      for (let i = 0; i < 3; i++) {
        expect(await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs })).toEqual({
          status: 'completed',
          result,
        });
      }
    });

    it('reports mismatch for another fingerprint, in progress and completed', async () => {
      const id = newId();
      const owner = token();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: 'a', lockTtlMs: 10_000 }));
      expect(await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'b', lockTtlMs: 10_000 })).toEqual({
        status: 'mismatch',
      });
      await h.store.complete({ id, token: owner, result: 'r', ttlMs });
      expect(await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'b', lockTtlMs: 10_000 })).toEqual({
        status: 'mismatch',
      });
      expect(await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'a', lockTtlMs: 10_000 })).toEqual({
        status: 'completed',
        result: 'r',
      });
    });

    it("does not compare fingerprints when either side is ''", async () => {
      const id = newId();
      const owner = token();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: '', lockTtlMs: 10_000 }));
      await h.store.complete({ id, token: owner, result: 'r', ttlMs });
      expect((await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'x', lockTtlMs: 10_000 })).status).toBe(
        'completed',
      );
    });

    it('lets a new owner take over an expired lease with a larger fence', async () => {
      const id = newId();
      const first = token();
      const fence1 = acquiredFence(await h.store.claim({ id, partition: 'p', token: first, fingerprint: 'f', lockTtlMs }));
      await h.advance(lockTtlMs + 50);
      const second = token();
      const outcome = await h.store.claim({ id, partition: 'p', token: second, fingerprint: 'f', lockTtlMs });
      expect(outcome).toMatchObject({ status: 'acquired', takeover: true });
      expect(acquiredFence(outcome)).toBeGreaterThan(fence1);
      // The old owner lost everything; the new owner's record is intact.
      expect(await h.store.renew({ id, token: first, lockTtlMs })).toEqual({ status: 'lost' });
      expect(await h.store.complete({ id, token: first, result: 'stale', ttlMs })).toEqual({ status: 'lost' });
      expect(await h.store.release({ id, token: first })).toEqual({ status: 'lost' });
      expect(await h.store.complete({ id, token: second, result: 'fresh', ttlMs })).toEqual({ status: 'ok' });
      expect(await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs })).toEqual({
        status: 'completed',
        result: 'fresh',
      });
    });

    it('keeps a renewed lease alive past its first expiry', async () => {
      const id = newId();
      const owner = token();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: 'f', lockTtlMs }));
      for (let i = 0; i < 3; i++) {
        await h.advance(Math.floor(lockTtlMs / 2));
        expect(await h.store.renew({ id, token: owner, lockTtlMs })).toEqual({ status: 'ok' });
      }
      expect((await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs })).status).toBe('in_progress');
    });

    it('only lets the owner renew, complete or release', async () => {
      const id = newId();
      const owner = token();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: 'f', lockTtlMs: 10_000 }));
      const intruder = token();
      expect(await h.store.renew({ id, token: intruder, lockTtlMs: 10_000 })).toEqual({ status: 'lost' });
      expect(await h.store.complete({ id, token: intruder, result: 'x', ttlMs })).toEqual({ status: 'lost' });
      expect(await h.store.release({ id, token: intruder })).toEqual({ status: 'lost' });
      expect((await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs: 10_000 })).status).toBe(
        'in_progress',
      );
    });

    it('never lets anything overwrite a completed record', async () => {
      const id = newId();
      const owner = token();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: 'f', lockTtlMs }));
      await h.store.complete({ id, token: owner, result: 'first', ttlMs });
      expect(await h.store.release({ id, token: owner })).toEqual({ status: 'lost' });
      expect(await h.store.renew({ id, token: owner, lockTtlMs })).toEqual({ status: 'lost' });
      await h.advance(lockTtlMs + 50);
      expect(await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs })).toEqual({
        status: 'completed',
        result: 'first',
      });
    });

    it('answers ok again when the same owner repeats complete or release (lost replies are retried)', async () => {
      const a = newId();
      const ownerA = token();
      acquiredFence(await h.store.claim({ id: a, partition: 'p', token: ownerA, fingerprint: 'f', lockTtlMs: 10_000 }));
      expect(await h.store.complete({ id: a, token: ownerA, result: 'r', ttlMs })).toEqual({ status: 'ok' });
      expect(await h.store.complete({ id: a, token: ownerA, result: 'r', ttlMs })).toEqual({ status: 'ok' });
      const b = newId();
      const ownerB = token();
      acquiredFence(await h.store.claim({ id: b, partition: 'p', token: ownerB, fingerprint: 'f', lockTtlMs: 10_000 }));
      expect(await h.store.release({ id: b, token: ownerB })).toEqual({ status: 'ok' });
      expect(await h.store.release({ id: b, token: ownerB })).toEqual({ status: 'ok' });
    });

    it('frees a released key for the next claim, with a larger fence', async () => {
      const id = newId();
      const owner = token();
      const fence1 = acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: 'f', lockTtlMs: 10_000 }));
      expect(await h.store.release({ id, token: owner })).toEqual({ status: 'ok' });
      const next = await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs: 10_000 });
      expect(next).toMatchObject({ status: 'acquired', takeover: false });
      expect(acquiredFence(next)).toBeGreaterThan(fence1);
    });

    it('keeps fencing tokens strictly increasing across many takeovers and releases', async () => {
      const id = newId();
      const fences: number[] = [];
      for (let i = 0; i < 10; i++) {
        const owner = token();
        fences.push(acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: 'f', lockTtlMs: 10_000 })));
        await h.store.release({ id, token: owner });
      }
      for (let i = 1; i < fences.length; i++) expect(fences[i]).toBeGreaterThan(fences[i - 1] as number);
      expect(fences.every((f) => Number.isSafeInteger(f) && f > 0)).toBe(true);
    });

    it('reports the time left on a completed record, if at all, as at most its TTL', async () => {
      const id = newId();
      const owner = token();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: 'f', lockTtlMs }));
      await h.store.complete({ id, token: owner, result: 'r', ttlMs });
      const replay = await expiryOf(h.store, { id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs });
      if (replay.expiresInMs === undefined) return;
      expect(replay.expiresInMs).toBeGreaterThan(0);
      expect(replay.expiresInMs).toBeLessThanOrEqual(ttlMs);
    });

    it('forgets a completed record after its TTL', async () => {
      const id = newId();
      const owner = token();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: 'f', lockTtlMs }));
      await h.store.complete({ id, token: owner, result: 'r', ttlMs: lockTtlMs });
      await h.advance(lockTtlMs + 50);
      expect((await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'g', lockTtlMs })).status).toBe('acquired');
    });

    it('identifies a record by its id alone: a claim naming another partition meets the same record', async () => {
      const id = newId();
      const owner = token();
      acquiredFence(await h.store.claim({ id, partition: 'partition-a', token: owner, fingerprint: 'f', lockTtlMs: 10_000 }));
      expect((await h.store.claim({ id, partition: 'partition-b', token: token(), fingerprint: 'f', lockTtlMs: 10_000 })).status).toBe(
        'in_progress',
      );
      expect(await h.store.claim({ id, partition: 'partition-b', token: token(), fingerprint: 'g', lockTtlMs: 10_000 })).toEqual({
        status: 'mismatch',
      });
      await h.store.complete({ id, token: owner, result: 'r', ttlMs });
      expect(await h.store.claim({ id, partition: 'partition-c', token: token(), fingerprint: 'f', lockTtlMs })).toEqual({
        status: 'completed',
        result: 'r',
      });
    });

    it('keeps different ids of one partition apart, and each reachable from any partition', async () => {
      const [a, b] = [newId(), newId()];
      const [ta, tb] = [token(), token()];
      acquiredFence(await h.store.claim({ id: a, partition: 'shared', token: ta, fingerprint: 'f', lockTtlMs: 10_000 }));
      acquiredFence(await h.store.claim({ id: b, partition: 'shared', token: tb, fingerprint: 'f', lockTtlMs: 10_000 }));
      expect(await h.store.release({ id: a, token: ta })).toEqual({ status: 'ok' });
      expect(await h.store.complete({ id: b, token: tb, result: 'B', ttlMs })).toEqual({ status: 'ok' });
      expect((await h.store.claim({ id: a, partition: 'other', token: token(), fingerprint: 'f', lockTtlMs })).status).toBe('acquired');
      expect(await h.store.claim({ id: b, partition: 'other', token: token(), fingerprint: 'f', lockTtlMs })).toEqual({
        status: 'completed',
        result: 'B',
      });
    });

    it('keeps records of different ids apart', async () => {
      const [a, b] = [newId(), newId()];
      const [ta, tb] = [token(), token()];
      acquiredFence(await h.store.claim({ id: a, partition: 'p', token: ta, fingerprint: 'f', lockTtlMs: 10_000 }));
      acquiredFence(await h.store.claim({ id: b, partition: 'p', token: tb, fingerprint: 'f', lockTtlMs: 10_000 }));
      await h.store.complete({ id: a, token: ta, result: 'A', ttlMs });
      await h.store.complete({ id: b, token: tb, result: 'B', ttlMs });
      expect(await h.store.claim({ id: a, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs })).toEqual({
        status: 'completed',
        result: 'A',
      });
      expect(await h.store.claim({ id: b, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs })).toEqual({
        status: 'completed',
        result: 'B',
      });
    });

    it('wakes a waiter promptly when the owner completes', async () => {
      const id = newId();
      const owner = token();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: 'f', lockTtlMs: 10_000 }));
      let settled = false;
      const waiting = h.store.wait({ id, timeoutMs: 10_000 }).then((o) => {
        settled = true;
        return o;
      });
      await h.advance(5);
      expect(settled).toBe(false);
      await h.store.complete({ id, token: owner, result: 'r', ttlMs });
      expect(await waiting).toEqual({ status: 'settled' });
    });

    it('wakes a waiter when the owner releases', async () => {
      const id = newId();
      const owner = token();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: 'f', lockTtlMs: 10_000 }));
      const waiting = h.store.wait({ id, timeoutMs: 10_000 });
      await h.advance(5);
      await h.store.release({ id, token: owner });
      expect(await waiting).toEqual({ status: 'settled' });
    });

    it('wakes many waiters on one key at once', async () => {
      const id = newId();
      const owner = token();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: owner, fingerprint: 'f', lockTtlMs: 10_000 }));
      const waiting = Promise.all(Array.from({ length: 50 }, () => h.store.wait({ id, timeoutMs: 10_000 })));
      await h.advance(5);
      await h.store.complete({ id, token: owner, result: 'r', ttlMs });
      expect((await waiting).every((o) => o.status === 'settled')).toBe(true);
    });

    it('wakes a waiter when the lease expires, so it can take over', async () => {
      const id = newId();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs }));
      const waiting = h.store.wait({ id, timeoutMs: lockTtlMs * 20 });
      await h.advance(lockTtlMs + 50);
      expect(await waiting).toEqual({ status: 'settled' });
      expect((await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs })).status).toBe('acquired');
    });

    it('returns settled at once for a key that is not in progress', async () => {
      expect(await h.store.wait({ id: newId(), timeoutMs: 10_000 })).toEqual({ status: 'settled' });
    });

    it('times out a waiter while the owner still runs', async () => {
      const id = newId();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs: 60_000 }));
      const waiting = h.store.wait({ id, timeoutMs: lockTtlMs });
      await h.advance(lockTtlMs + 50);
      expect(await waiting).toEqual({ status: 'timeout' });
    });

    it('stops waiting when the signal aborts', async () => {
      const id = newId();
      acquiredFence(await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs: 60_000 }));
      const controller = new AbortController();
      const waiting = h.store.wait({ id, timeoutMs: 60_000, signal: controller.signal });
      await h.advance(5);
      controller.abort();
      expect(await waiting).toEqual({ status: 'timeout' });
    });
  });
};
