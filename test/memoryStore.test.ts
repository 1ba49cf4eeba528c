import { describe, expect, it } from 'vitest';
import { IdempotencyError } from '../src/errors';
import { createMemoryStore } from '../src/stores/memoryStore';
import { DEFAULTS } from '../src/constants';
import { describeStepConformance } from '../src/testing/stepConformance';
import { describeStoreConformance } from '../src/testing/storeConformance';
import { createManualClock } from './helpers/manualClock';

describeStoreConformance(
  'createMemoryStore',
  async () => {
    const clock = createManualClock();
    return { store: createMemoryStore({ clock }), advance: (ms) => clock.advance(ms), close: async () => {} };
  },
  { lockTtlMs: 1_000 },
);

describe('createMemoryStore', () => {
  it('evicts the oldest finished records when full, never an in-progress claim', async () => {
    const clock = createManualClock();
    const store = createMemoryStore({ clock, maxEntries: 3 });
    await store.claim({ id: 'live', partition: 'p', token: 't', fingerprint: '', lockTtlMs: 60_000 });
    for (const id of ['a', 'b', 'c', 'd']) {
      await store.claim({ id, partition: 'p', token: id, fingerprint: '', lockTtlMs: 60_000 });
      await store.complete({ id, token: id, result: id, ttlMs: 60_000 });
    }
    expect((await store.claim({ id: 'live', partition: 'p', token: 'x', fingerprint: '', lockTtlMs: 60_000 })).status).toBe('in_progress');
    expect(await store.claim({ id: 'd', partition: 'p', token: 'x', fingerprint: '', lockTtlMs: 60_000 })).toEqual({ status: 'completed', result: 'd' });
    // 'a' and 'b' were evicted to make room.
    expect((await store.claim({ id: 'a', partition: 'p', token: 'x', fingerprint: '', lockTtlMs: 60_000 })).status).toBe('acquired');
  });

  it('skips a finished id that was claimed again when evicting, and keeps evicting oldest first over many rounds', async () => {
    const clock = createManualClock();
    const store = createMemoryStore({ clock, maxEntries: 3 });
    const claim = (id: string, token = id) => store.claim({ id, partition: 'p', token, fingerprint: '', lockTtlMs: 60_000 });
    await claim('b');
    await store.release({ id: 'b', token: 'b' }); // 'b' is queued as finished...
    await claim('b', 'b2'); // ...then running again: its queue entry is stale
    for (let i = 0; i < 50; i++) {
      await claim(`k${i}`);
      await store.complete({ id: `k${i}`, token: `k${i}`, result: String(i), ttlMs: 60_000 });
    }
    expect((await claim('b', 'x')).status).toBe('in_progress');
    expect(await claim('k49', 'x')).toEqual({ status: 'completed', result: '49' });
    expect(await claim('k48', 'x')).toEqual({ status: 'completed', result: '48' });
    expect((await claim('k47', 'x')).status).toBe('acquired');
  });

  it('evicts by the record that finished, not by a stale queue entry of the same id', async () => {
    const clock = createManualClock();
    const store = createMemoryStore({ clock, maxEntries: 3 });
    const claim = (id: string, token = id) => store.claim({ id, partition: 'p', token, fingerprint: '', lockTtlMs: 60_000 });
    const complete = (id: string, token = id) => store.complete({ id, token, result: id, ttlMs: 600_000 });
    await claim('b');
    await complete('b');
    await claim('a');
    await store.release({ id: 'a', token: 'a' }); // queued as released...
    await claim('c');
    await complete('c');
    await claim('a', 'a2');
    await complete('a', 'a2'); // ...then completed last: the newest record
    await claim('d'); // full: evicts the oldest finished record, 'b'
    await complete('d');
    await claim('e'); // full again: the stale 'a' item must not evict the new 'a'; 'c' goes
    expect(await claim('a', 'x')).toEqual({ status: 'completed', result: 'a' });
    expect((await claim('c', 'x')).status).toBe('acquired');
  });

  it('keeps a crashed claim past its lease for a grace period, so the next claim is a takeover', async () => {
    const clock = createManualClock();
    const store = createMemoryStore({ clock });
    await store.claim({ id: 'k', partition: 'p', token: 'crashed', fingerprint: '', lockTtlMs: 1_000 });
    await clock.advance(30_000);
    expect(await store.claim({ id: 'k', partition: 'p', token: 'next', fingerprint: '', lockTtlMs: 1_000 })).toMatchObject({ takeover: true });
  });

  it('fails closed when every slot holds a live claim', async () => {
    const clock = createManualClock();
    const store = createMemoryStore({ clock, maxEntries: 2 });
    await store.claim({ id: 'a', partition: 'pa', token: 'a', fingerprint: '', lockTtlMs: 60_000 });
    await store.claim({ id: 'b', partition: 'pb', token: 'b', fingerprint: '', lockTtlMs: 60_000 });
    const error = await store.claim({ id: 'c', partition: 'pc', token: 'c', fingerprint: '', lockTtlMs: 60_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdempotencyError);
    expect((error as IdempotencyError).code).toBe('STORE_UNAVAILABLE');
    await clock.advance(60_001);
    expect((await store.claim({ id: 'c', partition: 'pc', token: 'c', fingerprint: '', lockTtlMs: 60_000 })).status).toBe('acquired');
  });

  it('rejects a bad maxEntries at once, naming it', () => {
    expect(() => createMemoryStore({ maxEntries: 0 })).toThrow(/maxEntries/);
  });

  it('leaves no timer behind after a waiter settles', async () => {
    const clock = createManualClock();
    const store = createMemoryStore({ clock });
    await store.claim({ id: 'k', partition: 'p', token: 't', fingerprint: '', lockTtlMs: 60_000 });
    const waiting = store.wait({ id: 'k', timeoutMs: 10_000 });
    expect(clock.pending()).toBe(1);
    await store.complete({ id: 'k', token: 't', result: 'r', ttlMs: 1000 });
    await waiting;
    expect(clock.pending()).toBe(0);
  });
});

describeStepConformance(
  'createMemoryStore',
  async () => {
    const clock = createManualClock();
    return { store: createMemoryStore({ clock }), advance: (ms) => clock.advance(ms), close: async () => {} };
  },
  { lockTtlMs: 1_000, leaseGraceMs: DEFAULTS.leaseGraceMs, releasedTtlMs: DEFAULTS.releasedTtlMs },
);
