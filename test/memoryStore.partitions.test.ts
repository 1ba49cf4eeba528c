import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it, vi } from 'vitest';
import { IdempotencyError } from '../src/errors';
import { RECORD_OVERHEAD_BYTES } from '../src/stores/memoryRecords';
import { createMemoryStore } from '../src/stores/memoryStore';
import type { MemoryStoreOptions } from '../src/stores/memoryStore';
import { createManualClock } from './helpers/manualClock';

const DAY = 24 * 60 * 60 * 1000;

/** A store on a manual clock, with one-line helpers for claim, complete and "does this id still replay". */
const setup = (options: MemoryStoreOptions = {}) => {
  const clock = createManualClock();
  const store = createMemoryStore({ clock, ...options });
  const claim = (partition: string, id: string, { token = `t-${id}`, lockTtlMs = 60_000 } = {}) =>
    store.claim({ id, partition, token, fingerprint: '', lockTtlMs });
  const complete = (id: string, { result = `r-${id}`, ttlMs = DAY, token = `t-${id}` } = {}) =>
    store.complete({ id, token, result, ttlMs });
  const pay = async (partition: string, id: string, stored: { result?: string; ttlMs?: number } = {}) => {
    expect((await claim(partition, id)).status).toBe('acquired');
    expect(await complete(id, stored)).toEqual({ status: 'ok' });
  };
  /** What a retry of `id` would get: 'completed' (replays) or 'acquired' (runs again). */
  const retry = async (partition: string, id: string) => (await claim(partition, id, { token: `retry-${id}-${Math.random()}` })).status;
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

describe('createMemoryStore: one partition never evicts another', () => {
  it("keeps a victim's completed record while an attacker fills the store 11 times over, in miniature", async () => {
    const s = setup({ maxEntries: 100 });
    await s.pay('victim', 'K');
    for (let i = 0; i < 1_100; i++) await s.pay('attacker', `a${i}`);
    expect(await s.retry('victim', 'K')).toBe('completed');
    // The attacker paid with its own records: its newest still replay, its oldest were evicted.
    expect(await s.retry('attacker', 'a1099')).toBe('completed');
    expect(await s.retry('attacker', 'a0')).toBe('acquired');
  });

  it('takes room for a small partition from the partition holding more than its fair share', async () => {
    const s = setup({ maxEntries: 10 });
    for (let i = 0; i < 9; i++) await s.pay('big', `b${i}`);
    await s.pay('small', 's0');
    // Full: 'small' (1 of 10) claims again; 'big' (9 of 10, over its half) gives up its oldest record.
    await s.pay('small', 's1');
    expect(await s.retry('big', 'b0')).toBe('acquired');
    expect(await s.retry('small', 's0')).toBe('completed');
    expect(await s.retry('small', 's1')).toBe('completed');
  });

  it('refuses a newcomer with STORE_UNAVAILABLE rather than evict partitions at their fair share', async () => {
    const s = setup({ maxEntries: 4 });
    for (const p of ['a', 'b', 'c', 'd']) await s.pay(p, `${p}0`);
    const error = await errorOf(s.claim('newcomer', 'n0'));
    expect(error.code).toBe('STORE_UNAVAILABLE');
    expect(error.retryAfterMs).toBeGreaterThan(0);
    for (const p of ['a', 'b', 'c', 'd']) expect(await s.retry(p, `${p}0`)).toBe('completed');
  });

  it('admits a newcomer to a store that one partition filled alone, taking the room from that partition', async () => {
    // One caller filling the store must not block every caller that holds nothing yet, for as long as its
    // records live (ttlMs: a day by default).
    const s = setup({ maxEntries: 100 });
    for (let i = 0; i < 150; i++) await s.pay('flooder', `f${i}`);
    await s.pay('newcomer', 'n0');
    await s.pay('second', 's0');
    expect(await s.retry('newcomer', 'n0')).toBe('completed');
    expect(await s.retry('second', 's0')).toBe('completed');
    expect(await s.retry('flooder', 'f149')).toBe('completed');
  });

  it('evicts a partition over its own entry cap from its own oldest records, never from another partition', async () => {
    const s = setup({ maxEntries: 100, maxEntriesPerPartition: 3 });
    await s.pay('victim', 'K');
    for (let i = 0; i < 5; i++) await s.pay('attacker', `a${i}`);
    expect(await s.retry('victim', 'K')).toBe('completed');
    expect(await s.retry('attacker', 'a4')).toBe('completed');
    expect(await s.retry('attacker', 'a3')).toBe('completed');
    expect(await s.retry('attacker', 'a1')).toBe('acquired');
  });

  it('finds a record by its id alone, whatever partition a later claim names', async () => {
    const s = setup();
    await s.pay('one', 'k');
    expect(await s.retry('another', 'k')).toBe('completed');
  });
});

describe('createMemoryStore: byte budget', () => {
  const result = (chars: number, tag: string) => tag.padEnd(chars, '.');
  // A record with a 10,000-character result counts 2 bytes a unit plus overhead: about 20.6 kB.
  const size = (id: string, chars: number) => RECORD_OVERHEAD_BYTES + 2 * (id.length + `t-${id}`.length + chars);

  it('keeps no more result bytes than maxBytes, evicting the oldest finished records', async () => {
    const maxBytes = 5 * size('k0', 10_000) + 100;
    const s = setup({ maxBytes });
    for (let i = 0; i < 10; i++) await s.pay('p', `k${i}`, { result: result(10_000, `r${i}`) });
    const replaying: string[] = [];
    // Oldest first: a retry that runs again would itself take room, so check the newest first.
    for (let i = 9; i >= 0; i--) if ((await s.retry('p', `k${i}`)) === 'completed') replaying.push(`k${i}`);
    expect(replaying).toEqual(['k9', 'k8', 'k7', 'k6', 'k5']);
  });

  it("keeps a victim's record while another partition stores more bytes than the whole budget", async () => {
    const s = setup({ maxBytes: 200_000 });
    await s.pay('victim', 'K', { result: 'victim result' });
    for (let i = 0; i < 40; i++) await s.pay('attacker', `a${i}`, { result: result(10_000, `a${i}`) });
    expect(await s.claim('victim', 'K', { token: 'x' })).toEqual({ status: 'completed', result: 'victim result' });
  });

  it('never takes bytes from a partition that would be left holding no more than the claimant', async () => {
    const unit = size('a0', 10_000);
    const s = setup({ maxBytes: 10 * unit, reservedEntriesPerPartition: 1 });
    for (let i = 0; i < 4; i++) await s.pay('a', `a${i}`, { result: result(10_000, `a${i}`) });
    for (let i = 0; i < 3; i++) await s.pay('c', `c${i}`, { result: result(10_000, `c${i}`) });
    for (let i = 0; i < 2; i++) await s.pay('b', `b${i}`, { result: result(10_000, `b${i}`) });
    await s.claim('b', 'b2');
    // 'b' stores a result of three units: 12 units for 10. 'a' holds 4 of 10, more than its fair third, but fewer than
    // the 5 'b' would then hold: nobody gives up a result for it, and 'b' has nothing of its own to give up.
    const error = await errorOf(s.complete('b2', { result: result(30_000, 'b2') }));
    expect(error.code).toBe('STORE_UNAVAILABLE');
    for (let i = 0; i < 4; i++) expect(await s.retry('a', `a${i}`)).toBe('completed');
    expect(await s.retry('b', 'b2')).toBe('in_progress');
  });

  it('takes bytes for a claimant from a partition that would still hold more than it', async () => {
    const unit = size('a0', 10_000);
    const s = setup({ maxBytes: 10 * unit, reservedEntriesPerPartition: 1 });
    for (let i = 0; i < 6; i++) await s.pay('a', `a${i}`, { result: result(10_000, `a${i}`) });
    for (let i = 0; i < 3; i++) await s.pay('b', `b${i}`, { result: result(10_000, `b${i}`) });
    await s.claim('b', 'b3');
    // Two units for 'b' (11 for 10, then 'b' holds 5): 'a', at 6, gives up its oldest and still holds more.
    expect(await s.complete('b3', { result: result(20_000, 'b3') })).toEqual({ status: 'ok' });
    // Newest first: a retry that runs again takes room itself.
    for (let i = 5; i > 0; i--) expect(await s.retry('a', `a${i}`)).toBe('completed');
    expect(await s.retry('b', 'b3')).toBe('completed');
    expect(await s.retry('a', 'a0')).toBe('acquired');
  });

  it('caps a partition at maxBytesPerPartition from its own records', async () => {
    const s = setup({ maxBytesPerPartition: 3 * size('a0', 10_000) });
    for (let i = 0; i < 5; i++) await s.pay('a', `a${i}`, { result: result(10_000, `a${i}`) });
    expect(await s.retry('a', 'a4')).toBe('completed');
    expect(await s.retry('a', 'a0')).toBe('acquired');
  });

  it('refuses to store a result that can never fit, and keeps the key in progress (never released)', async () => {
    const s = setup({ maxBytes: 10_000 });
    await s.claim('p', 'k');
    const error = await errorOf(s.complete('k', { result: result(20_000, 'big') }));
    expect(error.code).toBe('STORE_UNAVAILABLE');
    expect((await s.retry('p', 'k'))).toBe('in_progress');
  });

  it('counts what it replaced: a record claimed anew frees its old result bytes', async () => {
    const s = setup({ maxBytes: 2 * size('other', 10_000) });
    await s.pay('p', 'k', { result: result(10_000, 'one'), ttlMs: 1_000 });
    await s.clock.advance(2_000);
    // The expired record's bytes are returned when 'k' is claimed again, so both fit without evicting 'other'.
    await s.pay('p', 'other', { result: result(10_000, 'other') });
    await s.pay('p', 'k', { result: result(10_000, 'two') });
    expect(await s.retry('p', 'other')).toBe('completed');
    expect(await s.retry('p', 'k')).toBe('completed');
  });
});

describe('createMemoryStore: running claims', () => {
  it('refuses a partition past maxRunningPerPartition with QUOTA_EXCEEDED, while other partitions still claim', async () => {
    const s = setup({ maxRunningPerPartition: 3 });
    for (let i = 0; i < 3; i++) expect((await s.claim('flood', `f${i}`, { token: `t${i}`, lockTtlMs: 6_000 })).status).toBe('acquired');
    const error = await errorOf(s.claim('flood', 'f3'));
    expect(error.code).toBe('QUOTA_EXCEEDED');
    expect(error.retryAfterMs).toBe(1_000);
    expect((await s.claim('other', 'o0')).status).toBe('acquired');
    // A finished claim frees its slot at once.
    await s.store.complete({ id: 'f0', token: 't0', result: 'r', ttlMs: DAY });
    expect((await s.claim('flood', 'f3')).status).toBe('acquired');
  });

  it('lets a partition at its running cap take the slot of a crashed claim (lease over)', async () => {
    const s = setup({ maxRunningPerPartition: 2 });
    await s.claim('p', 'a', { token: 'ta', lockTtlMs: 1_000 });
    await s.claim('p', 'b', { token: 'tb', lockTtlMs: 60_000 });
    await s.clock.advance(1_001);
    expect((await s.claim('p', 'c')).status).toBe('acquired');
    expect(await s.store.complete({ id: 'a', token: 'ta', result: 'late', ttlMs: DAY })).toEqual({ status: 'lost' });
  });

  it('refuses claims on a store full of running claims without walking its records', async () => {
    const n = 20_000;
    const s = setup({ maxEntries: n });
    for (let i = 0; i < n; i++) await s.claim(`p${i}`, `k${i}`);
    const proto = Map.prototype as unknown as Record<string | symbol, (...args: unknown[]) => unknown>;
    const spies = [Symbol.iterator, 'entries', 'values', 'keys', 'forEach'].map((name) => vi.spyOn(proto, name as 'keys'));
    try {
      for (let i = 0; i < 1_000; i++) expect((await errorOf(s.claim(`q${i}`, `x${i}`))).code).toBe('STORE_UNAVAILABLE');
      expect(spies.map((spy) => spy.mock.calls.length)).toEqual([0, 0, 0, 0, 0]);
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });
});

describe('createMemoryStore: expiry, renewal and fences (issue 14)', () => {
  it('evicts an expired record before any live one when full', async () => {
    const s = setup({ maxEntries: 3 });
    await s.pay('p', 'short', { result: 'r', ttlMs: 1_000 });
    await s.pay('p', 'b');
    await s.pay('p', 'c');
    await s.clock.advance(2_000);
    await s.pay('p', 'd');
    expect(await s.retry('p', 'b')).toBe('completed');
    expect(await s.retry('p', 'c')).toBe('completed');
  });

  it('keeps a renewed record alive past the end of its first lease and grace period', async () => {
    const s = setup();
    await s.claim('p', 'k', { token: 'owner', lockTtlMs: 60_000 });
    // Renew every 30 s for 5 minutes: well past claim + lease + 60 s grace.
    for (let t = 0; t < 300_000; t += 30_000) {
      await s.clock.advance(30_000);
      expect(await s.store.renew({ id: 'k', token: 'owner', lockTtlMs: 60_000 })).toEqual({ status: 'ok' });
    }
    expect((await s.claim('p', 'k', { token: 'intruder' })).status).toBe('in_progress');
    expect(await s.complete('k', { result: 'r', ttlMs: DAY, token: 'owner' })).toEqual({ status: 'ok' });
  });

  const fenceOf = async (s: ReturnType<typeof setup>, id: string, token: string) => {
    const outcome = await s.claim('p', id, { token });
    if (outcome.status !== 'acquired') throw new Error(`expected acquired, got ${outcome.status}`);
    return outcome.fence;
  };

  it('never restarts fences below an old owner after the record expires', async () => {
    const s = setup();
    let fence = 0;
    for (let i = 0; i < 5; i++) {
      fence = await fenceOf(s, 'k', `t${i}`);
      await s.store.release({ id: 'k', token: `t${i}` });
    }
    await s.clock.advance(1);
    await s.complete('k', { result: 'r', ttlMs: 1, token: 'never' }); // not the owner: no effect
    await s.clock.advance(24 * 60 * 60 * 1000); // released record forgotten
    expect(await fenceOf(s, 'k', 'next')).toBeGreaterThan(fence);
  });

  it('never restarts fences below an old owner after the record is evicted', async () => {
    const s = setup({ maxEntries: 2 });
    let fence = 0;
    for (let i = 0; i < 5; i++) {
      fence = await fenceOf(s, 'k', `t${i}`);
      if (i < 4) await s.store.release({ id: 'k', token: `t${i}` });
    }
    await s.complete('k', { result: 'r', ttlMs: DAY, token: 't4' });
    await s.clock.advance(1);
    await s.pay('p', 'x');
    await s.pay('p', 'y'); // evicts 'k', the oldest finished
    expect(await fenceOf(s, 'k', 'next')).toBeGreaterThan(fence);
  });
});

describe('createMemoryStore: nothing keeps a replaced or expired result alive', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  /** Live bytes after a full collection; twice, a turn apart, so a freed Buffer's backing store is gone too. */
  const used = async (): Promise<number> => {
    for (let i = 0; i < 2; i++) {
      gc();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const { heapUsed, external } = process.memoryUsage();
    return heapUsed + external;
  };
  const MB = 1024 * 1024;
  // An external string: its 40 MiB are counted in `external` and freed as soon as nothing references it.
  const big = (): string => Buffer.alloc(40 * MB, 120).toString('latin1');

  it('frees a result whose record expired and was claimed anew', async () => {
    const s = setup({ maxBytes: 2 ** 40 });
    await s.pay('p', 'k', { result: big(), ttlMs: 1_000 });
    const before = await used();
    await s.clock.advance(2_000);
    await s.pay('p', 'k', { result: 'small' });
    expect(before - (await used())).toBeGreaterThan(30 * MB);
  });

  it('frees an expired result at the next claim of any key', async () => {
    const s = setup({ maxBytes: 2 ** 40 });
    await s.pay('p', 'k', { result: big(), ttlMs: 1_000 });
    const before = await used();
    await s.clock.advance(2_000);
    await s.claim('p', 'unrelated');
    expect(before - (await used())).toBeGreaterThan(30 * MB);
  });

  it('frees a result its record was evicted for', async () => {
    const s = setup({ maxEntries: 2, maxBytes: 2 ** 40 });
    await s.pay('p', 'k', { result: big() });
    const before = await used();
    await s.pay('p', 'x');
    await s.pay('p', 'y');
    expect(await s.retry('p', 'y')).toBe('completed');
    expect(before - (await used())).toBeGreaterThan(30 * MB);
  });
});

describe('createMemoryStore: options', () => {
  for (const name of ['maxBytes', 'maxEntriesPerPartition', 'maxBytesPerPartition', 'maxRunningPerPartition'] as const) {
    for (const value of [0, 1.5, Number.NaN]) {
      it(`throws INVALID_OPTION naming ${name} when it is ${value}`, () => {
        let error: unknown;
        try {
          createMemoryStore({ [name]: value });
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(IdempotencyError);
        expect((error as IdempotencyError).code).toBe('INVALID_OPTION');
        expect((error as IdempotencyError).message).toContain(name);
      });
    }
  }
});
