import { describe, expect, it } from 'vitest';
import { IdempotencyError } from '../../src/errors';
import type { Completion } from '../../src/server/finish';
import { completeClaim, releaseClaim } from '../../src/server/finish';
import { holdLease, leaseSignal } from '../../src/server/lease';
import { createManualClock } from '../helpers/manualClock';
import { claimOn, scriptedStore } from '../helpers/scriptedStore';

// lockTtlMs 3,000: the lease is renewed every 1,000 ms, and the background retry waits at most 1,000 ms.
const LOCK_TTL = 3_000;

// 'é' is two bytes in UTF-8: the completed event counts bytes, not UTF-16 units.
const DONE: Completion = { text: '{"ok":"café"}', outcome: 'ok', durationMs: 12 };
const COMPLETED = { type: 'completed', bytes: 14, outcome: 'ok', durationMs: 12, path: 'orders.create', keyHash: 'key-hash' };

const setup = ({ ttlMs = 60_000, listen = true }: { ttlMs?: number; listen?: boolean } = {}) => {
  const clock = createManualClock();
  const fake = scriptedStore(clock);
  const { claim, events } = claimOn(clock, fake.store, { lockTtlMs: LOCK_TTL, ttlMs, listen });
  const start = clock.now();
  const lease = holdLease(claim, start);
  const signal = leaseSignal(lease);
  /** When (ms after the start) each call of `operation` was made. */
  const times = (operation: 'renew' | 'complete' | 'release') => fake.callsOf(operation).map((c) => c.at - start);
  return { clock, fake, claim, events, lease, signal, times };
};

const storeError = (operation: string, error: unknown) => ({ type: 'store_error', operation, error, failedOpen: false, path: 'orders.create', keyHash: 'key-hash' });
const leaseLost = (phase: string) => ({ type: 'lease_lost', phase, path: 'orders.create', keyHash: 'key-hash' });
const corrupt = () => new IdempotencyError('RECORD_CORRUPT', 'the stored record is not one of ours');

describe('completeClaim', () => {
  it('stores the result under the claim’s token for ttlMs, answers `ok`, reports it completed and ends the lease', async () => {
    const s = setup();
    expect(await completeClaim(s.claim, s.lease, DONE)).toBe('ok');
    expect(s.fake.callsOf('complete').map((c) => c.request)).toEqual([{ id: 'key-hash', token: 'token-1', result: DONE.text, ttlMs: 60_000 }]);
    expect(s.events).toEqual([COMPLETED]);
    await s.clock.advance(10 * LOCK_TTL);
    expect(s.times('renew')).toEqual([]);
    expect(s.signal.aborted).toBe(false);
  });

  it('retries a failed store at once, after 50 ms, then 100 ms more, reporting each failure, and answers `ok` when one succeeds', async () => {
    const s = setup();
    const down = new Error('store down');
    s.fake.script.complete.push(down, down);
    const settled = completeClaim(s.claim, s.lease, DONE);
    await s.clock.advance(149);
    expect(s.times('complete')).toEqual([0, 50]);
    await s.clock.advance(1);
    expect(await settled).toBe('ok');
    expect(s.times('complete')).toEqual([0, 50, 150]);
    expect(s.events).toEqual([storeError('complete', down), storeError('complete', down), COMPLETED]);
  });

  it('answers `lost` when another claim owns the key: no completed event, a lease_lost one, and the lease ends', async () => {
    const s = setup();
    s.fake.script.complete.push('lost');
    expect(await completeClaim(s.claim, s.lease, DONE)).toBe('lost');
    expect(s.events).toEqual([leaseLost('complete')]);
    await s.clock.advance(10 * LOCK_TTL);
    expect(s.times('complete')).toEqual([0]);
    expect(s.times('renew')).toEqual([]);
  });

  it('answers `corrupt` at the first corrupt record, without retrying, and ends the lease', async () => {
    const s = setup();
    const error = corrupt();
    s.fake.script.complete.push(error);
    const settled = completeClaim(s.claim, s.lease, DONE);
    await s.clock.advance(10 * LOCK_TTL);
    expect(await settled).toBe('corrupt');
    expect(s.events).toEqual([storeError('complete', error)]);
    expect(s.times('complete')).toEqual([0]);
    expect(s.times('renew')).toEqual([]);
  });

  it('retries a store that says it is unavailable like any failure: only a corrupt record stops the retries', async () => {
    const s = setup();
    const unavailable = new IdempotencyError('STORE_UNAVAILABLE', 'the store timed out');
    s.fake.fallback.complete = unavailable;
    const settled = completeClaim(s.claim, s.lease, DONE);
    await s.clock.advance(150);
    expect(await settled).toBe('failed');
    await s.clock.advance(400);
    expect(s.times('complete')).toEqual([0, 50, 150, 550]);
    expect(s.events).toEqual(Array.from({ length: 4 }, () => storeError('complete', unavailable)));
  });

  it('answers the same with nobody listening for events', async () => {
    const s = setup({ listen: false });
    s.fake.script.complete.push(new Error('store down'), 'lost');
    const settled = completeClaim(s.claim, s.lease, DONE);
    await s.clock.advance(50);
    expect(await settled).toBe('lost');
    const t = setup({ listen: false });
    t.fake.script.complete.push(corrupt());
    const corrupted = completeClaim(t.claim, t.lease, DONE);
    await t.clock.advance(10 * LOCK_TTL);
    expect(await corrupted).toBe('corrupt');
    const u = setup({ listen: false });
    expect(await completeClaim(u.claim, u.lease, DONE)).toBe('ok');
  });

  describe('when three attempts fail (`failed`: the result is stored later)', () => {
    /** Three quick failures: completeClaim answers `failed` 150 ms in, and the background retry starts. */
    const failing = async (options: { ttlMs?: number; listen?: boolean } = {}) => {
      const s = setup(options);
      const down = new Error('store down');
      s.fake.fallback.complete = down;
      const settled = completeClaim(s.claim, s.lease, DONE);
      await s.clock.advance(150);
      expect(await settled).toBe('failed');
      return { ...s, down };
    };

    it('keeps retrying after 400 ms, then twice as long each time, at most lockTtlMs / 3 apart', async () => {
      const s = await failing();
      await s.clock.advance(5_000);
      expect(s.times('complete')).toEqual([0, 50, 150, 550, 1_350, 2_350, 3_350, 4_350]);
      expect(s.events).toEqual(Array.from({ length: 8 }, () => storeError('complete', s.down)));
    });

    it('keeps the lease renewed while it retries, so no retry of the call takes the key over', async () => {
      const s = await failing();
      await s.clock.advance(4_850);
      expect(s.times('renew')).toEqual([1_000, 2_000, 3_000, 4_000, 5_000]);
      expect(s.signal.aborted).toBe(false);
    });

    it('reports the result completed once a retry stores it, and then ends the lease', async () => {
      const s = await failing();
      s.fake.script.complete.push(s.down, 'ok'); // fails at 550, stored at 1,350
      await s.clock.advance(1_350 - 150);
      expect(s.times('complete')).toEqual([0, 50, 150, 550, 1_350]);
      expect(s.events.at(-1)).toEqual(COMPLETED);
      expect(s.events.filter((e) => e.type === 'completed')).toHaveLength(1);
      await s.clock.advance(10 * LOCK_TTL);
      expect(s.times('complete')).toHaveLength(5);
      expect(s.times('renew')).toEqual([1_000]);
    });

    it('stops at `lost`: another claim owns the key, so no completed event, a lease_lost one, and the lease ends', async () => {
      const s = await failing();
      s.fake.script.complete.push('lost'); // at 550
      await s.clock.advance(400);
      expect(s.events.slice(3)).toEqual([leaseLost('complete')]);
      await s.clock.advance(10 * LOCK_TTL);
      expect(s.times('complete')).toEqual([0, 50, 150, 550]);
      expect(s.times('renew')).toEqual([]);
    });

    it('stops at a corrupt record and ends the lease', async () => {
      const s = await failing();
      const error = corrupt();
      s.fake.script.complete.push(error); // at 550
      await s.clock.advance(400);
      expect(s.events.at(-1)).toEqual(storeError('complete', error));
      await s.clock.advance(10 * LOCK_TTL);
      expect(s.times('complete')).toEqual([0, 50, 150, 550]);
      expect(s.times('renew')).toEqual([]);
    });

    it('gives up once ttlMs has passed since it started, and ends the lease', async () => {
      // Started at 150, until 1,350: the attempt at 1,350 is the last.
      const s = await failing({ ttlMs: 1_200 });
      await s.clock.advance(10 * LOCK_TTL);
      expect(s.times('complete')).toEqual([0, 50, 150, 550, 1_350]);
      expect(s.times('renew')).toEqual([1_000]);
      expect(s.signal.aborted).toBe(false);
    });

    it('does the same with nobody listening for events', async () => {
      const s = await failing({ listen: false });
      s.fake.script.complete.push(s.down, 'lost');
      await s.clock.advance(10 * LOCK_TTL);
      expect(s.times('complete')).toEqual([0, 50, 150, 550, 1_350]);
      const t = await failing({ listen: false });
      t.fake.script.complete.push('ok');
      await t.clock.advance(10 * LOCK_TTL);
      expect(t.times('complete')).toEqual([0, 50, 150, 550]);
      expect(t.times('renew')).toEqual([]);
    });
  });
});

describe('releaseClaim', () => {
  it('ends the lease, then gives the key up under the claim’s token', async () => {
    const s = setup();
    await releaseClaim(s.claim, s.lease);
    expect(s.fake.callsOf('release').map((c) => c.request)).toEqual([{ id: 'key-hash', token: 'token-1' }]);
    expect(s.fake.callsOf('complete')).toEqual([]);
    expect(s.events).toEqual([]);
    await s.clock.advance(10 * LOCK_TTL);
    expect(s.times('renew')).toEqual([]);
  });

  it('retries a failed release after 50 ms and 100 ms more, then gives up, reporting each failure', async () => {
    const s = setup();
    const down = new Error('store down');
    s.fake.fallback.release = down;
    const released = releaseClaim(s.claim, undefined);
    await s.clock.advance(10 * LOCK_TTL);
    await released;
    expect(s.times('release')).toEqual([0, 50, 150]);
    expect(s.events).toEqual([storeError('release', down), storeError('release', down), storeError('release', down)]);
  });

  it('reports a release the store refuses as a lost lease', async () => {
    const s = setup();
    s.fake.script.release.push('lost');
    await releaseClaim(s.claim, s.lease);
    expect(s.events).toEqual([leaseLost('release')]);
  });
});
