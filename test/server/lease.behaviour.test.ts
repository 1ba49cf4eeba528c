import { describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import type { IdempotencyError } from '../../src/errors';
import { holdLease, leaseSignal, renewInterval, stopLease } from '../../src/server/lease';
import { createManualClock } from '../helpers/manualClock';
import { claimOn, scriptedStore } from '../helpers/scriptedStore';
import type { LeaseOutcome } from '../../src/store';
import { deferred } from './helpers';

// lockTtlMs 3,000: renewed every 1,000 ms.
const LOCK_TTL = 3_000;
const INTERVAL = 1_000;

/** A lease claimed `ago` ms before now (the claim's reply took that long), on a store whose renew the test scripts. */
const setup = ({ ago = 0, listen = true }: { ago?: number; listen?: boolean } = {}) => {
  const clock = createManualClock();
  const fake = scriptedStore(clock);
  const { claim, events } = claimOn(clock, fake.store, { lockTtlMs: LOCK_TTL, listen });
  const start = clock.now();
  const lease = holdLease(claim, start - ago);
  const signal = leaseSignal(lease);
  /** Milliseconds since the lease was taken. */
  const elapsed = () => clock.now() - start;
  return { clock, fake, claim, events, lease, signal, elapsed, renewedAt: () => fake.callsOf('renew').map((c) => c.at - start) };
};

const lostWith = (signal: AbortSignal): IdempotencyError => {
  expect(signal.aborted).toBe(true);
  const reason: unknown = signal.reason;
  if (!isIdempotencyError(reason)) throw new Error(`aborted with ${String(reason)}, not an IdempotencyError`);
  return reason;
};

describe('holdLease', () => {
  it('renews every lockTtlMs / 3 with the claim’s id, token and lockTtlMs, and keeps the lease while renewals succeed', async () => {
    const s = setup();
    await s.clock.advance(4 * INTERVAL);
    expect(s.renewedAt()).toEqual([1_000, 2_000, 3_000, 4_000]);
    expect(s.fake.callsOf('renew')[0]?.request).toEqual({ id: 'key-hash', token: 'token-1', lockTtlMs: LOCK_TTL });
    expect(s.signal.aborted).toBe(false);
    expect(s.events).toEqual([]);
  });

  it('renews every third of the lease', () => {
    expect(renewInterval(3_000)).toBe(1_000);
    expect(renewInterval(10)).toBe(3);
    expect(renewInterval(3)).toBe(1);
  });

  it('arms no expiry timer of its own for a fresh claim until a renewal is in flight (a fast procedure pays for none)', () => {
    const s = setup();
    // The one pending timer is the shared renewal queue's.
    expect(s.clock.pending()).toBe(1);
  });

  describe('a claim whose reply came with little lease left', () => {
    it('loses the lease when what was left runs out, before the first renewal is due', async () => {
      const s = setup({ ago: LOCK_TTL - 400 });
      await s.clock.advance(399);
      expect(s.signal.aborted).toBe(false);
      await s.clock.advance(1);
      const error = lostWith(s.signal);
      expect(error.code).toBe('LEASE_LOST');
      expect(error.message).toBe('trpc-idempotency: the lease on this idempotency key was lost (unreachable); stop writing');
      expect(s.events).toEqual([{ type: 'lease_lost', phase: 'renew', path: 'orders.create', keyHash: 'key-hash' }]);
    });

    it('never renews a lease it has already lost', async () => {
      const s = setup({ ago: LOCK_TTL - 400 });
      await s.clock.advance(10 * LOCK_TTL);
      expect(s.fake.callsOf('renew')).toEqual([]);
      expect(s.events).toHaveLength(1);
      expect(s.clock.pending()).toBe(0);
    });
  });

  describe('when the store answers a renewal', () => {
    it('extends the lease to lockTtlMs after the renewal was sent, not after its reply came', async () => {
      const s = setup();
      const reply = deferred<LeaseOutcome>();
      s.fake.script.renew.push(reply.promise);
      s.fake.fallback.renew = new Promise(() => {}); // every later renewal never answers
      // Sent at 1,000, answered at 2,500: the lease lasts until 1,000 + 3,000, past the 3,000 it was known to last
      // until, although the next renewal is only sent at 3,500.
      await s.clock.advance(2_500);
      reply.resolve({ status: 'ok' });
      await s.clock.advance(4_000 - s.elapsed() - 1);
      expect(s.renewedAt()).toEqual([1_000, 3_500]);
      expect(s.signal.aborted).toBe(false);
      await s.clock.advance(1);
      expect(lostWith(s.signal).message).toContain('(unreachable)');
    });

    it('loses the lease at once when the store says another claim owns the key, and renews no more', async () => {
      const s = setup();
      s.fake.script.renew.push('lost');
      await s.clock.advance(INTERVAL);
      const error = lostWith(s.signal);
      expect(error.code).toBe('LEASE_LOST');
      expect(error.message).toBe('trpc-idempotency: the lease on this idempotency key was lost (lost); stop writing');
      expect(error.cause).toBeUndefined();
      expect(s.events).toEqual([{ type: 'lease_lost', phase: 'renew', path: 'orders.create', keyHash: 'key-hash' }]);
      await s.clock.advance(10 * LOCK_TTL);
      expect(s.renewedAt()).toEqual([1_000]);
      expect(s.clock.pending()).toBe(0);
    });
  });

  describe('when renewals fail', () => {
    it('keeps the lease and retries at the next interval while more than an interval of lease is left', async () => {
      const s = setup();
      const down = new Error('store down');
      s.fake.script.renew.push(down);
      await s.clock.advance(INTERVAL);
      expect(s.signal.aborted).toBe(false);
      expect(s.events).toEqual([{ type: 'store_error', operation: 'renew', error: down, failedOpen: false, path: 'orders.create', keyHash: 'key-hash' }]);
      await s.clock.advance(3 * INTERVAL);
      expect(s.renewedAt()).toEqual([1_000, 2_000, 3_000, 4_000]);
      expect(s.signal.aborted).toBe(false);
    });

    it('gives the lease up as unreachable, with the store’s error as cause, once less than an interval of it would be left at the next renewal', async () => {
      const s = setup();
      const down = new Error('store down');
      s.fake.fallback.renew = down;
      await s.clock.advance(INTERVAL);
      expect(s.signal.aborted).toBe(false);
      // At 2,000 the lease (until 3,000) would have run out by the next renewal: lost now, not at 3,000.
      await s.clock.advance(INTERVAL);
      const error = lostWith(s.signal);
      expect(error.message).toContain('(unreachable)');
      expect(error.cause).toBe(down);
      expect(s.events.map((e) => e.type)).toEqual(['store_error', 'store_error', 'lease_lost']);
      await s.clock.advance(10 * LOCK_TTL);
      expect(s.renewedAt()).toEqual([1_000, 2_000]);
    });

    it('loses the lease when it runs out while a renewal never answers', async () => {
      const s = setup();
      s.fake.fallback.renew = new Promise(() => {});
      await s.clock.advance(LOCK_TTL - 1);
      expect(s.signal.aborted).toBe(false);
      await s.clock.advance(1);
      expect(lostWith(s.signal).message).toContain('(unreachable)');
      expect(s.events).toEqual([{ type: 'lease_lost', phase: 'renew', path: 'orders.create', keyHash: 'key-hash' }]);
      expect(s.renewedAt()).toEqual([1_000]);
    });

    it('reports a lost lease once, even when a renewal that outlived the lease answers `lost` later', async () => {
      const s = setup();
      const reply = deferred<LeaseOutcome>();
      s.fake.script.renew.push(reply.promise);
      await s.clock.advance(LOCK_TTL);
      const error = lostWith(s.signal);
      reply.resolve({ status: 'lost' });
      await s.clock.advance(LOCK_TTL);
      expect(s.events).toHaveLength(1);
      expect(s.signal.reason).toBe(error);
      expect(error.message).toContain('(unreachable)');
    });
  });

  describe('with nobody listening for events', () => {
    it('still retries a failed renewal', async () => {
      const s = setup({ listen: false });
      s.fake.script.renew.push(new Error('store down'));
      await s.clock.advance(2 * INTERVAL);
      expect(s.renewedAt()).toEqual([1_000, 2_000]);
      expect(s.signal.aborted).toBe(false);
    });

    it('still aborts the signal when the lease runs out', async () => {
      const s = setup({ listen: false, ago: LOCK_TTL - 400 });
      await s.clock.advance(400);
      expect(lostWith(s.signal).code).toBe('LEASE_LOST');
    });

    it('still aborts the signal when the store says the lease is lost', async () => {
      const s = setup({ listen: false });
      s.fake.script.renew.push('lost');
      await s.clock.advance(INTERVAL);
      expect(lostWith(s.signal).message).toContain('(lost)');
    });
  });
});

describe('leaseSignal', () => {
  it('gives the procedure one signal, however often it asks', () => {
    const s = setup();
    expect(leaseSignal(s.lease)).toBe(s.signal);
  });

  it('is already aborted, with the loss, when first asked for after the lease was lost', async () => {
    const clock = createManualClock();
    const fake = scriptedStore(clock);
    fake.script.renew.push('lost');
    const { claim, events } = claimOn(clock, fake.store, { lockTtlMs: LOCK_TTL });
    const lease = holdLease(claim, clock.now());
    await clock.advance(INTERVAL);
    expect(events).toEqual([{ type: 'lease_lost', phase: 'renew', path: 'orders.create', keyHash: 'key-hash' }]);
    const signal = leaseSignal(lease);
    expect(lostWith(signal).message).toContain('(lost)');
  });
});

describe('stopLease', () => {
  it('ends renewals without reporting a loss and leaves no timer behind', async () => {
    const s = setup();
    await s.clock.advance(INTERVAL);
    stopLease(s.lease);
    await s.clock.advance(10 * LOCK_TTL);
    expect(s.renewedAt()).toEqual([1_000]);
    expect(s.signal.aborted).toBe(false);
    expect(s.events).toEqual([]);
    expect(s.clock.pending()).toBe(0);
  });

  it('lets a renewal in flight when the call finished change nothing once it answers', async () => {
    const s = setup();
    const reply = deferred<LeaseOutcome>();
    s.fake.script.renew.push(reply.promise);
    await s.clock.advance(INTERVAL);
    stopLease(s.lease);
    expect(s.clock.pending()).toBe(0);
    reply.resolve({ status: 'ok' });
    await s.clock.advance(0);
    // Not even an expiry timer for the lease the reply confirmed.
    expect(s.clock.pending()).toBe(0);
    await s.clock.advance(10 * LOCK_TTL);
    expect(s.renewedAt()).toEqual([1_000]);
    expect(s.clock.pending()).toBe(0);
    expect(s.signal.aborted).toBe(false);
    expect(s.events).toEqual([]);
  });

  it('reports nothing when a renewal in flight when the call finished fails afterwards', async () => {
    const s = setup();
    const reply = deferred<LeaseOutcome>();
    s.fake.script.renew.push(reply.promise);
    await s.clock.advance(INTERVAL);
    stopLease(s.lease);
    reply.reject(new Error('store down'));
    await s.clock.advance(10 * LOCK_TTL);
    expect(s.renewedAt()).toEqual([1_000]);
    expect(s.signal.aborted).toBe(false);
    expect(s.events).toEqual([]);
  });

  it('reports nothing when a renewal in flight when the call finished answers `lost` afterwards', async () => {
    const s = setup();
    const reply = deferred<LeaseOutcome>();
    s.fake.script.renew.push(reply.promise);
    await s.clock.advance(INTERVAL);
    stopLease(s.lease);
    reply.resolve({ status: 'lost' });
    await s.clock.advance(10 * LOCK_TTL);
    expect(s.signal.aborted).toBe(false);
    expect(s.events).toEqual([]);
  });
});
