import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClaimOutcome, RecordedSteps } from '../store';
import type { StoreHarness } from './storeConformance';

export interface StepConformanceOptions {
  /** A lease short enough to expire within a test. */
  lockTtlMs: number;
  /** How long the harness's store keeps an in-progress record past its lease (its leaseGraceMs). */
  leaseGraceMs: number;
  /** How long the harness's store keeps a released record without steps (its releasedTtlMs). */
  releasedTtlMs: number;
}

const newId = (): string => `rec-${randomUUID()}`;
const token = (): string => randomUUID();

const stepsOf = (outcome: ClaimOutcome): Record<string, string> => {
  if (outcome.status !== 'acquired') throw new Error(`expected acquired, got ${JSON.stringify(outcome)}`);
  return Object.fromEntries([...(outcome.steps as RecordedSteps)].sort(([a], [b]) => (a < b ? -1 : 1)));
};

/**
 * The durable-step part of the store contract (see `recordStep` in src/store.ts). Retention is checked against
 * the harness's own short grace and released TTL, so real-clock stores wait a little, not a minute.
 */
export const describeStepConformance = (
  name: string,
  makeHarness: () => Promise<StoreHarness>,
  { lockTtlMs, leaseGraceMs, releasedTtlMs }: StepConformanceOptions,
): void => {
  describe(`${name}: durable steps conformance`, () => {
    let h: StoreHarness;
    beforeEach(async () => {
      h = await makeHarness();
    });
    afterEach(async () => {
      await h.close();
    });
    const keepMs = 600_000;
    const claim = (id: string, owner: string, fingerprint = 'f') =>
      h.store.claim({ id, partition: 'p', token: owner, fingerprint, lockTtlMs });

    it('acquires a fresh key with no steps', async () => {
      expect(stepsOf(await claim(newId(), token()))).toEqual({});
    });

    it('hands every recorded step, byte for byte, to the next claim after a release', async () => {
      const id = newId();
      const first = token();
      stepsOf(await claim(id, first));
      const texts = { charge: '1o{"json":{"id":"ch_1","note":"héllo ✓ \\u0000 \n"}}', 'e-mail:sent ✓': '1o{"json":true}', 'a.b{c}': '' };
      for (const [stepName, text] of Object.entries(texts)) {
        expect(await h.store.recordStep({ id, token: first, name: stepName, text, keepMs })).toEqual({ status: 'ok' });
      }
      expect(await h.store.release({ id, token: first })).toEqual({ status: 'ok' });
      const next = await claim(id, token());
      expect(next).toMatchObject({ status: 'acquired', takeover: false });
      expect(stepsOf(next)).toEqual(Object.fromEntries(Object.entries(texts).sort(([a], [b]) => (a < b ? -1 : 1))));
    });

    it('hands the steps to an owner that takes over an expired lease, after renewals and past lease + grace', async () => {
      const id = newId();
      const first = token();
      stepsOf(await claim(id, first));
      expect(await h.store.recordStep({ id, token: first, name: 'charge', text: 'c1', keepMs })).toEqual({ status: 'ok' });
      expect(await h.store.renew({ id, token: first, lockTtlMs })).toEqual({ status: 'ok' });
      await h.advance(lockTtlMs + leaseGraceMs + 100);
      const next = await claim(id, token());
      expect(next).toMatchObject({ status: 'acquired', takeover: true });
      expect(stepsOf(next)).toEqual({ charge: 'c1' });
    });

    it('keeps a released record with steps past the released TTL, and forgets it after keepMs', async () => {
      const id = newId();
      const first = token();
      const keep = releasedTtlMs + leaseGraceMs + lockTtlMs * 4;
      stepsOf(await claim(id, first));
      await h.store.recordStep({ id, token: first, name: 'charge', text: 'c1', keepMs: keep });
      await h.store.release({ id, token: first });
      await h.advance(releasedTtlMs + 100);
      const second = token();
      expect(stepsOf(await claim(id, second))).toEqual({ charge: 'c1' });
      // The new owner's claim and its release do not shorten what the step asked for...
      await h.store.release({ id, token: second });
      await h.advance(releasedTtlMs + 100);
      expect(stepsOf(await h.store.claim({ id, partition: 'p', token: token(), fingerprint: 'f', lockTtlMs: 10 }))).toEqual({ charge: 'c1' });
      // ...but once keepMs has passed (and the lease and grace), the record is gone.
      await h.advance(keep + 100);
      expect(stepsOf(await claim(id, token()))).toEqual({});
    });

    it('only lets the owner of the in-progress record record a step', async () => {
      const id = newId();
      const first = token();
      stepsOf(await claim(id, first));
      expect(await h.store.recordStep({ id, token: token(), name: 'a', text: 'x', keepMs })).toEqual({ status: 'lost' });
      expect(await h.store.recordStep({ id: newId(), token: first, name: 'a', text: 'x', keepMs })).toEqual({ status: 'lost' });
      await h.advance(lockTtlMs + 50);
      const second = token();
      stepsOf(await claim(id, second));
      // The paused old owner comes back after the takeover: refused, nothing written.
      expect(await h.store.recordStep({ id, token: first, name: 'late', text: 'stale', keepMs })).toEqual({ status: 'lost' });
      expect(await h.store.recordStep({ id, token: second, name: 'b', text: 'y', keepMs })).toEqual({ status: 'ok' });
      expect(await h.store.release({ id, token: second })).toEqual({ status: 'ok' });
      // A released owner records nothing either.
      expect(await h.store.recordStep({ id, token: second, name: 'c', text: 'z', keepMs })).toEqual({ status: 'lost' });
      expect(stepsOf(await claim(id, token()))).toEqual({ b: 'y' });
    });

    it('lets an owner record a step after its lease ran out while nobody took the key over (like complete)', async () => {
      const id = newId();
      const first = token();
      stepsOf(await claim(id, first));
      await h.advance(lockTtlMs + 50);
      expect(await h.store.recordStep({ id, token: first, name: 'a', text: 'x', keepMs })).toEqual({ status: 'ok' });
      expect(stepsOf(await claim(id, token()))).toEqual({ a: 'x' });
    });

    it('never overwrites a recorded step: a second write answers exists with the recorded text', async () => {
      const id = newId();
      const first = token();
      stepsOf(await claim(id, first));
      expect(await h.store.recordStep({ id, token: first, name: 'charge', text: 'one', keepMs })).toEqual({ status: 'ok' });
      expect(await h.store.recordStep({ id, token: first, name: 'charge', text: 'two', keepMs })).toEqual({ status: 'exists', text: 'one' });
      await h.store.release({ id, token: first });
      const second = token();
      expect(stepsOf(await claim(id, second))).toEqual({ charge: 'one' });
      expect(await h.store.recordStep({ id, token: second, name: 'charge', text: 'three', keepMs })).toEqual({ status: 'exists', text: 'one' });
    });

    it('records exactly one of many concurrent writes of one name', async () => {
      const id = newId();
      const owner = token();
      stepsOf(await claim(id, owner));
      const outcomes = await Promise.all(
        Array.from({ length: 20 }, (_, i) => h.store.recordStep({ id, token: owner, name: 'charge', text: `t${i}`, keepMs })),
      );
      expect(outcomes.filter((o) => o.status === 'ok')).toHaveLength(1);
      const winner = `t${outcomes.findIndex((o) => o.status === 'ok')}`;
      expect(outcomes.filter((o) => o.status === 'exists').every((o) => o.status === 'exists' && o.text === winner)).toBe(true);
    });

    it('drops the steps on complete: the completed record lives ttlMs, then the key starts fresh', async () => {
      const id = newId();
      const owner = token();
      stepsOf(await claim(id, owner));
      await h.store.recordStep({ id, token: owner, name: 'charge', text: 'c1', keepMs });
      expect(await h.store.complete({ id, token: owner, result: 'done', ttlMs: lockTtlMs })).toEqual({ status: 'ok' });
      expect(await h.store.recordStep({ id, token: owner, name: 'more', text: 'x', keepMs })).toEqual({ status: 'lost' });
      expect(await claim(id, token())).toMatchObject({ status: 'completed', result: 'done' });
      await h.advance(lockTtlMs + 100);
      expect(stepsOf(await claim(id, token()))).toEqual({});
    });

    it('answers mismatch for another fingerprint on a released key with steps, and resumes the same one', async () => {
      const id = newId();
      const first = token();
      stepsOf(await claim(id, first, 'a'));
      await h.store.recordStep({ id, token: first, name: 'charge', text: 'c1', keepMs });
      await h.store.release({ id, token: first });
      expect(await claim(id, token(), 'b')).toEqual({ status: 'mismatch' });
      expect(stepsOf(await claim(id, token(), 'a'))).toEqual({ charge: 'c1' });
    });

    it('still treats a released key without steps as absent, whatever the fingerprint', async () => {
      const id = newId();
      const first = token();
      stepsOf(await claim(id, first, 'a'));
      await h.store.release({ id, token: first });
      expect(stepsOf(await claim(id, token(), 'b'))).toEqual({});
    });
  });
};
