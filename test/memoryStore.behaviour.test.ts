import { getEventListeners } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/constants';
import { IdempotencyError } from '../src/errors';
import type { ClaimOutcome } from '../src/store';
import { createMemoryStore } from '../src/stores/memoryStore';
import type { MemoryStoreOptions } from '../src/stores/memoryStore';
import { createManualClock } from '../src/testing/manualClock';

const DAY = 24 * 60 * 60 * 1000;

/** A store on a manual clock, with one-line helpers (as in memoryStore.partitions.test.ts). */
const setup = (options: MemoryStoreOptions = {}) => {
  const clock = createManualClock();
  const store = createMemoryStore({ clock, ...options });
  const claim = (partition: string, id: string, { token = `t-${id}`, lockTtlMs = 60_000, fingerprint = '' } = {}) =>
    store.claim({ id, partition, token, fingerprint, lockTtlMs });
  const complete = (id: string, { result = `r-${id}`, ttlMs = DAY, token = `t-${id}` } = {}) =>
    store.complete({ id, token, result, ttlMs });
  const pay = async (partition: string, id: string, stored: { result?: string; ttlMs?: number } = {}) => {
    expect((await claim(partition, id)).status).toBe('acquired');
    expect(await complete(id, stored)).toEqual({ status: 'ok' });
  };
  let retries = 0;
  /** What a retry of `id` would get: 'completed' (replays), 'in_progress', or 'acquired' (runs again). */
  const retry = async (partition: string, id: string) => (await claim(partition, id, { token: `retry-${id}-${retries++}` })).status;
  return { clock, store, claim, complete, pay, retry };
};

const errorOf = async (promise: Promise<unknown>): Promise<IdempotencyError> => {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(IdempotencyError);
  return error as IdempotencyError;
};

const acquired = (outcome: ClaimOutcome) => {
  if (outcome.status !== 'acquired') throw new Error(`expected acquired, got ${outcome.status}`);
  return outcome;
};

describe('createMemoryStore: time limits are exact', () => {
  it('replays a completed result until ttlMs has passed, and runs the key again from that millisecond', async () => {
    const s = setup();
    await s.pay('p', 'k', { ttlMs: 1_000 });
    await s.clock.advance(999);
    expect(await s.retry('p', 'k')).toBe('completed');
    const s2 = setup();
    await s2.pay('p', 'k', { ttlMs: 1_000 });
    await s2.clock.advance(1_000);
    expect(await s2.retry('p', 'k')).toBe('acquired');
  });

  it('answers in_progress with the time left on the lease, down to its last millisecond, and hands the key over when it ends', async () => {
    const s = setup();
    await s.claim('p', 'k', { lockTtlMs: 1_000 });
    await s.clock.advance(400);
    expect(await s.claim('p', 'k', { token: 'other' })).toEqual({ status: 'in_progress', retryAfterMs: 600 });
    await s.clock.advance(599);
    expect(await s.claim('p', 'k', { token: 'other' })).toEqual({ status: 'in_progress', retryAfterMs: 1 });
    await s.clock.advance(1);
    expect(await s.claim('p', 'k', { token: 'other' })).toMatchObject({ status: 'acquired', takeover: true });
  });

  it('renews a lease up to its last millisecond, and refuses the owner once it has ended', async () => {
    const s = setup();
    await s.claim('p', 'k', { token: 'owner', lockTtlMs: 1_000 });
    await s.clock.advance(999);
    expect(await s.store.renew({ id: 'k', token: 'owner', lockTtlMs: 1_000 })).toEqual({ status: 'ok' });
    await s.clock.advance(1_000);
    expect(await s.store.renew({ id: 'k', token: 'owner', lockTtlMs: 1_000 })).toEqual({ status: 'lost' });
  });

  it('extends the lease by lockTtlMs from the renewal: others wait for the renewed end, not the first one', async () => {
    const s = setup();
    await s.claim('p', 'k', { token: 'owner', lockTtlMs: 10_000 });
    await s.clock.advance(8_000);
    await s.store.renew({ id: 'k', token: 'owner', lockTtlMs: 10_000 });
    await s.clock.advance(5_000); // 13 s: past the first lease, 5 s into the renewed one
    expect(await s.claim('p', 'k', { token: 'other' })).toEqual({ status: 'in_progress', retryAfterMs: 5_000 });
  });

  it('tells a waiter whose timeout ends with the lease that the key settled, not that it timed out', async () => {
    const s = setup();
    await s.claim('p', 'k', { lockTtlMs: 1_000 });
    const waiting = s.store.wait({ id: 'k', timeoutMs: 1_000 });
    await s.clock.advance(1_000);
    expect(await waiting).toEqual({ status: 'settled' });
  });

  it('answers a waiter at once, settled, when the lease has already ended', async () => {
    const s = setup();
    await s.claim('p', 'k', { lockTtlMs: 1_000 });
    await s.clock.advance(1_000);
    expect(await s.store.wait({ id: 'k', timeoutMs: 60_000 })).toEqual({ status: 'settled' });
    expect(s.clock.pending()).toBe(0);
  });

  it('answers timeout at once, and arms no timer, for a waiter whose signal has already aborted', async () => {
    const s = setup();
    await s.claim('p', 'k');
    const controller = new AbortController();
    controller.abort();
    expect(await s.store.wait({ id: 'k', timeoutMs: 60_000, signal: controller.signal })).toEqual({ status: 'timeout' });
    expect(s.clock.pending()).toBe(0);
  });
});

describe('createMemoryStore: waiters clean up after themselves', () => {
  it('answers a waiter at once, settled, when the record has expired', async () => {
    const s = setup();
    await s.claim('p', 'k', { lockTtlMs: 1_000 });
    await s.clock.advance(1_000 + DEFAULTS.leaseGraceMs);
    expect(await s.store.wait({ id: 'k', timeoutMs: 60_000 })).toEqual({ status: 'settled' });
  });

  it("leaves no listener on the caller's signal once a waiter settles, times out or is aborted", async () => {
    const s = setup();
    await s.claim('p', 'k', { token: 'owner' });
    const controller = new AbortController();
    const listeners = () => getEventListeners(controller.signal, 'abort').length;
    const timedOut = s.store.wait({ id: 'k', timeoutMs: 1_000, signal: controller.signal });
    expect(listeners()).toBe(1);
    await s.clock.advance(1_000);
    expect(await timedOut).toEqual({ status: 'timeout' });
    const settled = s.store.wait({ id: 'k', timeoutMs: 10_000, signal: controller.signal });
    await s.complete('k', { token: 'owner' });
    expect(await settled).toEqual({ status: 'settled' });
    expect(listeners()).toBe(0);
  });
});

describe('createMemoryStore: takeovers and fences', () => {
  it('reports a takeover only for a key whose owner crashed, not for a fresh or released key', async () => {
    const s = setup();
    expect(acquired(await s.claim('p', 'fresh')).takeover).toBe(false);
    await s.claim('p', 'released', { token: 'a' });
    await s.store.release({ id: 'released', token: 'a' });
    expect(acquired(await s.claim('p', 'released', { token: 'b' })).takeover).toBe(false);
    await s.claim('p', 'crashed', { token: 'a', lockTtlMs: 1_000 });
    await s.clock.advance(1_000);
    expect(acquired(await s.claim('p', 'crashed', { token: 'b' })).takeover).toBe(true);
  });

  it('gives fences that grow with the clock, so a store made later (a restarted process) never reuses an earlier fence', async () => {
    const clock = createManualClock();
    const first = createMemoryStore({ clock });
    const fences: number[] = [];
    for (let i = 0; i < 3; i++) {
      fences.push(acquired(await first.claim({ id: 'k', partition: 'p', token: `t${i}`, fingerprint: '', lockTtlMs: 1_000 })).fence);
      await first.release({ id: 'k', token: `t${i}` });
    }
    await clock.advance(1);
    const restarted = createMemoryStore({ clock });
    const fence = acquired(await restarted.claim({ id: 'k', partition: 'p', token: 'after', fingerprint: '', lockTtlMs: 1_000 })).fence;
    expect(fence).toBeGreaterThan(Math.max(...fences));
  });

  it('replays to a claim without a fingerprint whatever fingerprint the record has', async () => {
    const s = setup();
    await s.claim('p', 'k', { fingerprint: 'f' });
    await s.complete('k');
    expect(await s.claim('p', 'k', { token: 'x', fingerprint: '' })).toEqual({ status: 'completed', result: 'r-k' });
  });

  it('hands an acquired claim no steps when the key has none', async () => {
    const s = setup();
    expect(acquired(await s.claim('p', 'k')).steps.size).toBe(0);
  });
});

describe('createMemoryStore: making room', () => {
  it('refuses a result larger than the whole store at once, evicting nothing for it', async () => {
    const s = setup({ maxBytes: 10_000, maxBytesPerPartition: 1_000_000 });
    await s.pay('p', 'kept');
    await s.claim('p', 'huge');
    const error = await errorOf(s.complete('huge', { result: 'x'.repeat(10_000) }));
    expect(error.code).toBe('STORE_UNAVAILABLE');
    expect(error.message).toMatch(/can never fit/);
    expect(error.retryAfterMs).toBe(DEFAULTS.maxRetryAfterMs);
    expect(await s.retry('p', 'kept')).toBe('completed');
    expect(await s.retry('p', 'huge')).toBe('in_progress');
  });

  it('gives up a crashed claim before a released record, and a released record before a completed one', async () => {
    const s = setup({ maxEntriesPerPartition: 3 });
    await s.claim('p', 'crashed', { lockTtlMs: 1_000 });
    await s.claim('p', 'released');
    await s.store.release({ id: 'released', token: 't-released' });
    await s.pay('p', 'done');
    await s.clock.advance(1_000); // 'crashed' is past its lease, within its grace period
    await s.claim('p', 'n1'); // full: the crashed claim goes
    // Gone: claimed again, it is a fresh key, not a takeover.
    expect(acquired(await s.claim('p', 'crashed', { token: 'again' })).takeover).toBe(false);
    // That claim needed room too: the released record went, the completed one stays.
    expect(await s.retry('p', 'done')).toBe('completed');
  });

  it("takes a crashed claim of any partition before anyone's completed record when the store is full", async () => {
    const s = setup({ maxEntries: 3 });
    await s.claim('a', 'crashed', { lockTtlMs: 1_000 });
    await s.pay('b', 'b0');
    await s.pay('c', 'c0');
    await s.clock.advance(1_000);
    expect((await s.claim('d', 'd0')).status).toBe('acquired');
    expect(await s.retry('b', 'b0')).toBe('completed');
    expect(await s.retry('c', 'c0')).toBe('completed');
  });

  it("finds the claim that crashed first, even after another claim's lease was renewed past it", async () => {
    const s = setup({ maxEntries: 2 });
    await s.claim('a', 'renewed', { token: 'ra', lockTtlMs: 10_000 });
    await s.claim('b', 'crashed', { lockTtlMs: 20_000 });
    await s.store.renew({ id: 'renewed', token: 'ra', lockTtlMs: 60_000 });
    await s.clock.advance(20_000); // 'crashed' has just reached the end of its lease; 'renewed' still runs
    expect((await s.claim('c', 'c0')).status).toBe('acquired');
    expect((await s.claim('a', 'renewed', { token: 'x' })).status).toBe('in_progress');
  });

  it("takes over the slot of a partition's claim that crashed first, even after another of its claims was renewed", async () => {
    const s = setup({ maxRunningPerPartition: 2 });
    await s.claim('p', 'renewed', { token: 'ra', lockTtlMs: 10_000 });
    await s.claim('p', 'crashed', { lockTtlMs: 20_000 });
    await s.store.renew({ id: 'renewed', token: 'ra', lockTtlMs: 60_000 });
    await s.clock.advance(20_000);
    expect((await s.claim('p', 'third')).status).toBe('acquired');
    expect((await s.claim('p', 'renewed', { token: 'x' })).status).toBe('in_progress');
  });

  it('stores the result of an owner completing after its lease ended (nobody took over), even when its partition must make room', async () => {
    const s = setup({ maxEntriesPerPartition: 2, maxBytes: 4_000 });
    await s.pay('p', 'old');
    await s.claim('p', 'late', { lockTtlMs: 1_000 });
    await s.clock.advance(1_500);
    // About 3.5 kB: with 'old' (0.5 kB) over the 4 kB budget, so 'old' must go.
    expect(await s.complete('late', { result: 'r'.repeat(1_500) })).toEqual({ status: 'ok' });
    expect(await s.claim('p', 'late', { token: 'x' })).toEqual({ status: 'completed', result: 'r'.repeat(1_500) });
    expect(await s.retry('p', 'old')).toBe('acquired');
  });

  it('stores the result of an owner completing after its lease ended, when room must come from another partition', async () => {
    const s = setup({ maxBytes: 6_000, reservedEntriesPerPartition: 1 });
    for (let i = 0; i < 6; i++) await s.pay('big', `b${i}`);
    await s.claim('p', 'late', { lockTtlMs: 1_000 });
    await s.clock.advance(1_500);
    // About 2.9 kB: with big's 3.2 kB over the 6 kB budget, so big's oldest must go.
    expect(await s.complete('late', { result: 'r'.repeat(1_200) })).toEqual({ status: 'ok' });
    expect(await s.claim('p', 'late', { token: 'x' })).toEqual({ status: 'completed', result: 'r'.repeat(1_200) });
    expect(await s.retry('big', 'b5')).toBe('completed');
  });

  it('stores the result of an owner completing after its lease ended, when its own partition is the largest and the store is full', async () => {
    const s = setup({ maxBytes: 6_000 });
    await s.pay('other', 'o0');
    for (let i = 0; i < 4; i++) await s.pay('p', `p${i}`);
    await s.claim('p', 'late', { lockTtlMs: 1_000 });
    await s.clock.advance(1_500);
    // About 3.5 kB: 'p' would hold 5.7 kB of the 6 kB, 'other' 0.5 kB: the store is full, 'p' gives up 'p0'.
    expect(await s.complete('late', { result: 'r'.repeat(1_500) })).toEqual({ status: 'ok' });
    expect(await s.claim('p', 'late', { token: 'x' })).toEqual({ status: 'completed', result: 'r'.repeat(1_500) });
    expect(await s.retry('other', 'o0')).toBe('completed');
  });

  it('tells an owner whose record has expired (lease and grace over) that it lost, and stores nothing', async () => {
    const s = setup();
    await s.claim('p', 'k', { token: 'owner', lockTtlMs: 1_000 });
    await s.clock.advance(1_000 + DEFAULTS.leaseGraceMs);
    expect(await s.complete('k', { token: 'owner' })).toEqual({ status: 'lost' });
    expect(acquired(await s.claim('p', 'k', { token: 'next' })).takeover).toBe(false);
  });

  it('stops counting a crashed claim against the running cap once it is taken over', async () => {
    const s = setup({ maxRunningPerPartition: 1 });
    await s.claim('p', 'k', { token: 'crashed', lockTtlMs: 1_000 });
    await s.clock.advance(1_000);
    expect(acquired(await s.claim('p', 'k', { token: 'new-owner' })).takeover).toBe(true);
    // One live claim in 'p' now, the new owner's: a second key waits for it.
    expect((await errorOf(s.claim('p', 'j'))).code).toBe('QUOTA_EXCEEDED');
  });

  it('still gives up a crashed claim before a completed record after a refused takeover put it back', async () => {
    const s = setup({ maxEntriesPerPartition: 2, maxRunningPerPartition: 1 });
    await s.pay('a', 'old');
    await s.claim('a', 'k', { token: 'crashed', lockTtlMs: 1_000 });
    await s.claim('b', 'busy');
    await s.clock.advance(1_000);
    expect((await errorOf(s.claim('b', 'k', { token: 'refused' }))).code).toBe('QUOTA_EXCEEDED');
    await s.pay('a', 'n');
    expect(await s.retry('a', 'old')).toBe('completed');
  });

  it('lets a caller at its fair share reuse the room of its own released records', async () => {
    const s = setup({ maxEntries: 4 });
    await s.pay('a', 'a0');
    await s.pay('a', 'a1');
    await s.pay('b', 'b0');
    await s.claim('d', 'd0');
    await s.store.release({ id: 'd0', token: 't-d0' });
    // Full; 'a' holds half, but would not then hold more than 'd': nobody gives up a result for 'd'.
    expect((await s.claim('d', 'd1')).status).toBe('acquired');
    for (const [p, id] of [['a', 'a0'], ['a', 'a1'], ['b', 'b0']] as const) expect(await s.retry(p, id)).toBe('completed');
  });

  it('makes room for a record exactly as large as maxBytesPerPartition', async () => {
    const s = setup({ maxBytesPerPartition: 1_000 });
    await s.pay('p', 'a');
    // 512 + 2 * (1 + 3 + 240) = 1,000 bytes: 'a' goes.
    expect((await s.claim('p', 'k', { fingerprint: 'f'.repeat(240) })).status).toBe('acquired');
  });

  it("never evicts a new owner's claim as the crashed claim it took over", async () => {
    const s = setup({ maxEntries: 2 });
    await s.claim('p', 'k', { token: 'crashed', lockTtlMs: 1_000 });
    await s.clock.advance(1_000);
    expect(acquired(await s.claim('p', 'k', { token: 'new-owner', lockTtlMs: 60_000 })).takeover).toBe(true);
    await s.claim('q', 'other');
    // Full of live claims: the newcomer is refused; nothing of the new owner's goes.
    expect((await errorOf(s.claim('r', 'z'))).code).toBe('STORE_UNAVAILABLE');
    expect(await s.retry('p', 'k')).toBe('in_progress');
    expect(await s.complete('k', { token: 'new-owner' })).toEqual({ status: 'ok' });
  });

  it('never takes a record from a partition that would be left no larger than the claimant', async () => {
    const s = setup({ maxEntries: 6 });
    for (let i = 0; i < 3; i++) await s.pay('a', `a${i}`);
    for (let i = 0; i < 2; i++) await s.pay('b', `b${i}`);
    await s.pay('c', 'c0');
    // 'b' claims a third record: 'a' holds 3 of 6, more than its fair third, but no more than 'b' would then hold.
    expect((await errorOf(s.claim('b', 'b2'))).code).toBe('STORE_UNAVAILABLE');
    for (let i = 0; i < 3; i++) expect(await s.retry('a', `a${i}`)).toBe('completed');
  });

  it('keeps up to an eighth of a small store per partition (the default reserve) from other partitions', async () => {
    const s = setup({ maxEntries: 80 });
    for (let i = 0; i < 10; i++) await s.pay('steady', `s${i}`); // 80 / 8 = 10: at its reserve
    for (let i = 0; i < 70; i++) await s.pay(`minted-${i}`, `m${i}`);
    expect((await errorOf(s.claim('newcomer', 'n0'))).code).toBe('STORE_UNAVAILABLE');
    expect(await s.retry('steady', 's0')).toBe('completed');
  });

  it('lets a partition just over its reserve give up its oldest record to a newcomer', async () => {
    const s = setup({ maxEntries: 80 });
    for (let i = 0; i < 11; i++) await s.pay('steady', `s${i}`);
    for (let i = 0; i < 69; i++) await s.pay(`minted-${i}`, `m${i}`);
    expect((await s.claim('newcomer', 'n0')).status).toBe('acquired');
    expect(await s.retry('steady', 's1')).toBe('completed');
  });

  it('keeps the reserve it is given: reservedEntriesPerPartition records are never evicted by other partitions', async () => {
    const s = setup({ maxEntries: 20, reservedEntriesPerPartition: 5 });
    for (let i = 0; i < 5; i++) await s.pay('steady', `s${i}`);
    for (let i = 0; i < 15; i++) await s.pay(`minted-${i}`, `m${i}`);
    expect((await errorOf(s.claim('newcomer', 'n0'))).code).toBe('STORE_UNAVAILABLE');
    expect(await s.retry('steady', 's0')).toBe('completed');
  });

  it('names the bounds in the error that refuses a claim on a full store', async () => {
    const s = setup({ maxEntries: 1 });
    await s.claim('a', 'a0');
    const error = await errorOf(s.claim('b', 'b0'));
    expect(error.code).toBe('STORE_UNAVAILABLE');
    expect(error.message).toContain('1 records');
    expect(error.retryAfterMs).toBe(DEFAULTS.maxRetryAfterMs);
  });
});

describe('createMemoryStore: expiry before eviction', () => {
  it('evicts a record that expires this very millisecond before any live one', async () => {
    const s = setup({ maxEntries: 3 });
    await s.pay('p', 'short', { ttlMs: 1_000 });
    await s.pay('p', 'b');
    await s.pay('p', 'c');
    await s.clock.advance(1_000);
    await s.pay('p', 'd');
    expect(await s.retry('p', 'b')).toBe('completed');
    expect(await s.retry('p', 'c')).toBe('completed');
  });
});

describe('createMemoryStore: the soonest expiry and the soonest lease end are found wherever they are', () => {
  it('sweeps an expired record stored after longer-lived ones before evicting any of them', async () => {
    const s = setup({ maxEntries: 4 });
    await s.pay('p', 'long1', { ttlMs: 5 * DAY });
    await s.pay('p', 'long2', { ttlMs: 3 * DAY });
    await s.pay('p', 'long3', { ttlMs: 4 * DAY });
    await s.pay('p', 'short', { ttlMs: 1_000 });
    await s.clock.advance(1_000);
    await s.pay('p', 'new');
    for (const id of ['long1', 'long2', 'long3', 'new']) expect(await s.retry('p', id)).toBe('completed');
  });

  it("takes the crashed claim of any partition even when it was claimed after claims with longer leases", async () => {
    const s = setup({ maxEntries: 4 });
    await s.claim('a', 'a0', { lockTtlMs: 50_000 });
    await s.claim('b', 'b0', { lockTtlMs: 30_000 });
    await s.claim('c', 'c0', { lockTtlMs: 40_000 });
    await s.claim('d', 'crashed', { lockTtlMs: 1_000 });
    await s.clock.advance(1_000);
    expect((await s.claim('e', 'e0')).status).toBe('acquired');
    for (const [p, id] of [['a', 'a0'], ['b', 'b0'], ['c', 'c0']] as const) expect(await s.retry(p, id)).toBe('in_progress');
  });

  it('gives a slot at the running cap to the crashed claim of the partition even when it was claimed last', async () => {
    const s = setup({ maxRunningPerPartition: 3 });
    await s.claim('p', 'a', { lockTtlMs: 50_000 });
    await s.claim('p', 'b', { lockTtlMs: 30_000 });
    await s.claim('p', 'crashed', { lockTtlMs: 1_000 });
    await s.clock.advance(1_000);
    expect((await s.claim('p', 'd')).status).toBe('acquired');
  });
});

describe('createMemoryStore: bounds are inclusive', () => {
  // Each record below counts 512 + 2 * (id + token + result) bytes: ids 'k0'..'k9', tokens 't-k0'.., results of 494
  // characters make exactly 1,512 bytes.
  const exact = (i: number) => ({ result: 'x'.repeat(494), id: `k${i}` });

  it('fills maxBytesPerPartition to the byte before evicting anything', async () => {
    const s = setup({ maxBytesPerPartition: 3 * 1_512 });
    for (let i = 0; i < 3; i++) await s.pay('p', exact(i).id, { result: exact(i).result });
    for (let i = 0; i < 3; i++) expect(await s.claim('p', `k${i}`, { token: 'x' })).toMatchObject({ status: 'completed' });
  });

  it('fills maxBytes to the byte across partitions before evicting anything', async () => {
    const s = setup({ maxBytes: 3 * 1_512 });
    for (let i = 0; i < 3; i++) await s.pay(`p${i}`, exact(i).id, { result: exact(i).result });
    for (let i = 0; i < 3; i++) expect(await s.claim(`p${i}`, `k${i}`, { token: 'x' })).toMatchObject({ status: 'completed' });
  });

  it('refuses a newcomer once maxBytes is full of records other partitions keep in reserve', async () => {
    const s = setup({ maxBytes: 3 * 1_512 });
    for (let i = 0; i < 3; i++) await s.pay(`p${i}`, exact(i).id, { result: exact(i).result });
    expect((await errorOf(s.claim('newcomer', 'n0'))).code).toBe('STORE_UNAVAILABLE');
  });

  it('evicts for the first byte over maxBytes', async () => {
    const s = setup({ maxBytes: 3 * 1_512 - 1 });
    for (let i = 0; i < 3; i++) await s.pay('p', exact(i).id, { result: exact(i).result });
    expect(await s.retry('p', 'k0')).toBe('acquired');
  });
});

describe('createMemoryStore: a refused claim changes nothing', () => {
  it('leaves a crashed claim in place when its takeover is refused: the next claim still takes it over, with its steps', async () => {
    const s = setup({ maxRunningPerPartition: 1 });
    await s.claim('a', 'k', { token: 'crashed', lockTtlMs: 1_000 });
    await s.store.recordStep({ id: 'k', token: 'crashed', name: 'charge', text: 'ch_1', keepMs: DAY });
    await s.claim('b', 'busy'); // 'b' is at its running cap with a live claim
    await s.clock.advance(1_000);
    expect((await errorOf(s.claim('b', 'k', { token: 'refused' }))).code).toBe('QUOTA_EXCEEDED');
    const next = acquired(await s.claim('a', 'k', { token: 'next' }));
    expect(next.takeover).toBe(true);
    expect(Object.fromEntries(next.steps)).toEqual({ charge: 'ch_1' });
  });

  it('leaves a crashed claim without steps in place when its takeover is refused: the next claim is still a takeover', async () => {
    const s = setup({ maxRunningPerPartition: 1 });
    await s.claim('a', 'k', { token: 'crashed', lockTtlMs: 1_000 });
    await s.claim('b', 'busy');
    await s.clock.advance(1_000);
    expect((await errorOf(s.claim('b', 'k', { token: 'refused' }))).code).toBe('QUOTA_EXCEEDED');
    expect(acquired(await s.claim('a', 'k', { token: 'next' })).takeover).toBe(true);
  });

  it("keeps counting a scope's records after one of its claims is refused: its cap still holds", async () => {
    const s = setup({ maxEntriesPerPartition: 2, maxRunningPerPartition: 1 });
    await s.pay('p', 'a');
    await s.claim('p', 'b');
    expect((await errorOf(s.claim('p', 'c'))).code).toBe('QUOTA_EXCEEDED');
    await s.complete('b');
    await s.pay('p', 'c');
    // Two records at most: 'a', the oldest, went for 'c'.
    expect(await s.retry('p', 'c')).toBe('completed');
    expect(await s.retry('p', 'a')).toBe('acquired');
  });

  it('keeps the steps of a released key when a claim resuming it is refused', async () => {
    const s = setup({ maxRunningPerPartition: 1 });
    await s.claim('a', 'k', { token: 'first' });
    await s.store.recordStep({ id: 'k', token: 'first', name: 'charge', text: 'ch_1', keepMs: DAY });
    await s.store.release({ id: 'k', token: 'first' });
    await s.claim('b', 'busy');
    expect((await errorOf(s.claim('b', 'k', { token: 'refused' }))).code).toBe('QUOTA_EXCEEDED');
    expect(Object.fromEntries(acquired(await s.claim('a', 'k', { token: 'next' })).steps)).toEqual({ charge: 'ch_1' });
  });

  it('still counts a key restored after a refused claim: it is evicted in its turn, not twice or never', async () => {
    const s = setup({ maxEntriesPerPartition: 2, maxRunningPerPartition: 1 });
    await s.claim('a', 'k', { token: 'first' });
    await s.store.recordStep({ id: 'k', token: 'first', name: 'charge', text: 'ch_1', keepMs: DAY });
    await s.store.release({ id: 'k', token: 'first' });
    await s.claim('b', 'busy');
    await errorOf(s.claim('b', 'k', { token: 'refused' }));
    await s.pay('a', 'a1');
    // 'a' holds k (released with steps, oldest) and a1; one more record evicts k, the oldest that costs a rerun.
    await s.pay('a', 'a2');
    expect(acquired(await s.claim('a', 'k', { token: 'next' })).steps.size).toBe(0);
    expect(await s.retry('a', 'a2')).toBe('completed');
  });
});

describe('createMemoryStore: steps count against the byte budget', () => {
  const bytes = (chars: number) => 'x'.repeat(chars);

  it("makes room for a step from the partition's own oldest completed records", async () => {
    const s = setup({ maxBytesPerPartition: 30_000 });
    await s.pay('p', 'old', { result: bytes(6_000) });
    await s.pay('p', 'newer', { result: bytes(6_000) });
    await s.claim('p', 'k', { token: 'owner' });
    expect(await s.store.recordStep({ id: 'k', token: 'owner', name: 'big', text: bytes(5_000), keepMs: DAY })).toEqual({ status: 'ok' });
    expect(await s.retry('p', 'old')).toBe('acquired');
    expect(await s.retry('p', 'newer')).toBe('completed');
  });

  it('refuses a step that cannot fit beside live claims with QUOTA_EXCEEDED, recording nothing', async () => {
    const s = setup({ maxBytesPerPartition: 10_000 });
    await s.claim('p', 'k', { token: 'owner' });
    await s.claim('p', 'other', { fingerprint: bytes(2_000) }); // about 4.5 kB, live
    const error = await errorOf(s.store.recordStep({ id: 'k', token: 'owner', name: 'big', text: bytes(2_500), keepMs: DAY }));
    expect(error.code).toBe('QUOTA_EXCEEDED');
    await s.store.release({ id: 'k', token: 'owner' });
    expect(acquired(await s.claim('p', 'k', { token: 'next' })).steps.size).toBe(0);
  });

  it('keeps counting the steps of a released key: room for others still comes from it', async () => {
    const s = setup({ maxBytesPerPartition: 10_000 });
    await s.claim('p', 'k', { token: 'owner' });
    await s.store.recordStep({ id: 'k', token: 'owner', name: 'big', text: bytes(4_000), keepMs: DAY });
    await s.store.release({ id: 'k', token: 'owner' });
    // k counts about 8.6 kB with its steps: a 1.5 kB record does not fit beside it, and k (the oldest) goes.
    await s.pay('p', 'a', { result: bytes(500) });
    expect(acquired(await s.claim('p', 'k', { token: 'next' })).steps.size).toBe(0);
  });

  it('stops counting the steps once the key completes: a completed record costs its result only', async () => {
    const s = setup({ maxBytesPerPartition: 25_000 });
    await s.claim('p', 'k', { token: 'owner' });
    await s.store.recordStep({ id: 'k', token: 'owner', name: 'big', text: bytes(9_000), keepMs: 1_000 });
    await s.complete('k', { token: 'owner', result: 'done' });
    // 18 kB of steps are gone with the completion: a 20 kB record now fits beside k without evicting it.
    await s.pay('p', 'next', { result: bytes(10_000) });
    expect(await s.retry('p', 'k')).toBe('completed');
  });

  it('keeps a completed record for its ttlMs only, however long its steps were to be kept', async () => {
    const s = setup();
    await s.claim('p', 'k', { token: 'owner' });
    await s.store.recordStep({ id: 'k', token: 'owner', name: 'charge', text: 'ch_1', keepMs: DAY });
    await s.complete('k', { token: 'owner', ttlMs: 1_000 });
    await s.clock.advance(1_000);
    expect(await s.retry('p', 'k')).toBe('acquired');
  });
});

describe('createMemoryStore: quota hints', () => {
  it("hints a retry when the partition's oldest lease ends, for a partition at its running cap", async () => {
    const s = setup({ maxRunningPerPartition: 2 });
    await s.claim('p', 'a', { lockTtlMs: 500 });
    await s.claim('p', 'b', { lockTtlMs: 60_000 });
    await s.clock.advance(200);
    const error = await errorOf(s.claim('p', 'c'));
    expect(error.code).toBe('QUOTA_EXCEEDED');
    expect(error.retryAfterMs).toBe(300);
    expect(error.message).toContain('2 idempotent calls in progress');
  });

  it('hints a retry when the oldest lease ends for a partition whose byte cap holds only live claims', async () => {
    const s = setup({ maxBytesPerPartition: 2_000 });
    await s.claim('p', 'a', { lockTtlMs: 700 });
    await s.claim('p', 'b', { lockTtlMs: 60_000 });
    await s.clock.advance(100);
    // About 1.3 kB with its fingerprint: more than the two live claims leave.
    const error = await errorOf(s.claim('p', 'c', { fingerprint: 'f'.repeat(400) }));
    expect(error.code).toBe('QUOTA_EXCEEDED');
    expect(error.retryAfterMs).toBe(600);
    expect(error.message).toContain('2000 bytes');
    expect(await s.retry('p', 'a')).toBe('in_progress');
  });
});

describe('createMemoryStore: options', () => {
  it('accepts 1 for every bound: a one-record store keeps its newest result', async () => {
    const s = setup({
      maxEntries: 1,
      maxEntriesPerPartition: 1,
      maxRunningPerPartition: 1,
      reservedEntriesPerPartition: 1,
      maxBytes: 1_000,
      maxBytesPerPartition: 1_000,
    });
    await s.pay('p', 'a');
    await s.pay('p', 'b');
    expect(await s.retry('p', 'b')).toBe('completed');
  });

  for (const name of ['maxEntries', 'reservedEntriesPerPartition'] as const) {
    for (const value of [0, -1, 2.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      it(`throws INVALID_OPTION naming ${name} and the value when it is ${value}`, () => {
        let error: unknown;
        try {
          createMemoryStore({ [name]: value });
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(IdempotencyError);
        expect((error as IdempotencyError).code).toBe('INVALID_OPTION');
        expect((error as IdempotencyError).message).toBe(`trpc-idempotency: createMemoryStore: ${name} must be a positive integer, got ${String(value)}`);
      });
    }
  }
});

describe('createMemoryStore: refused callers leave nothing behind', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const used = (): number => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };

  it('keeps no trace of the scopes of refused claims: minting new scopes against a full store costs no memory', async () => {
    const s = setup({ maxEntries: 1 });
    await s.claim('holder', 'live');
    const refuse = async (from: number, n: number) => {
      for (let i = from; i < from + n; i++) expect((await errorOf(s.claim(`minted-${i}`, `k${i}`))).code).toBe('STORE_UNAVAILABLE');
    };
    await refuse(0, 500); // warm up: code and shapes settle before measuring
    const before = used();
    await refuse(500, 5_000);
    expect(used() - before).toBeLessThan(2 * 1024 * 1024);
    expect(await s.retry('holder', 'live')).toBe('in_progress');
  });

  it('keeps no trace of a scope once its records are gone', async () => {
    const s = setup();
    await s.claim('after', 'x', { lockTtlMs: DAY });
    const before = used();
    for (let i = 0; i < 5_000; i++) await s.pay(`scope-${i}`, `k${i}`, { result: 'r', ttlMs: 1_000 });
    await s.clock.advance(1_000);
    // Every claim sweeps two expired records: 2,500 claims (of one key, in progress) let all 5,000 go.
    for (let i = 0; i < 2_500; i++) expect((await s.claim('after', 'x', { token: 'poll' })).status).toBe('in_progress');
    expect(used() - before).toBeLessThan(2 * 1024 * 1024);
    // The store is still in use (or the collector could free all of it, leaks included, before measuring).
    expect(await s.retry('after', 'x')).toBe('in_progress');
  });
});
