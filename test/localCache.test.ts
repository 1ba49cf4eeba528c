import { describe, expect, it } from 'vitest';
import { createIdempotency, IdempotencyError } from '../src/index';
import type { ClaimOutcome, ClaimRequest, IdempotencyStore } from '../src/store';
import { NO_STEPS } from '../src/store';
import { withLocalCache } from '../src/stores/localCache';
import { createMemoryStore } from '../src/stores/memoryStore';
import { createManualClock } from './helpers/manualClock';
import { spyStore } from './server/helpers';

const claimOf = (id: string, fingerprint = 'f', token = `t-${Math.random()}`): ClaimRequest => ({
  id,
  partition: 'p',
  token,
  fingerprint,
  lockTtlMs: 10_000,
});

/** A memory store on a manual clock, its calls counted, behind the cache (`ttlMs` per completion). */
const setup = (bounds: { maxEntries?: number; maxBytes?: number } = {}) => {
  const clock = createManualClock();
  const spy = spyStore(createMemoryStore({ clock }));
  const store = withLocalCache(spy.store, { ...bounds, clock });
  const complete = async (id: string, result: string, { fingerprint = 'f', ttlMs = 60_000 } = {}) => {
    const request = claimOf(id, fingerprint);
    expect((await store.claim(request)).status).toBe('acquired');
    expect(await store.complete({ id, token: request.token, result, ttlMs })).toEqual({ status: 'ok' });
  };
  const innerClaims = () => spy.callsOf('claim').length;
  return { clock, spy, store, complete, innerClaims };
};

/** A store that answers every claim `completed` with the given time left, counting claims. */
const completedStore = (expiresInMs: number | undefined) => {
  let claims = 0;
  const store: IdempotencyStore = {
    claim: async () => {
      claims += 1;
      return (expiresInMs === undefined
        ? { status: 'completed', result: 'r' }
        : { status: 'completed', result: 'r', expiresInMs }) satisfies ClaimOutcome;
    },
    renew: async () => ({ status: 'lost' }),
    complete: async () => ({ status: 'lost' }),
    release: async () => ({ status: 'lost' }),
    wait: async () => ({ status: 'settled' }),
    recordStep: async () => ({ status: 'lost' }),
  };
  return { store, claims: () => claims };
};

describe('withLocalCache', () => {
  it('answers a replay of a record this process completed without calling the store', async () => {
    const s = setup();
    await s.complete('a', 'result of a');
    const before = s.innerClaims();
    for (let i = 0; i < 3; i++) expect(await s.store.claim(claimOf('a'))).toEqual({ status: 'completed', result: 'result of a' });
    expect(s.innerClaims()).toBe(before);
  });

  it('answers mismatch for another fingerprint of its own completion, and completed for "do not compare"', async () => {
    const s = setup();
    await s.complete('a', 'r', { fingerprint: 'f' });
    const before = s.innerClaims();
    expect(await s.store.claim(claimOf('a', 'g'))).toEqual({ status: 'mismatch' });
    expect(await s.store.claim(claimOf('a', ''))).toEqual({ status: 'completed', result: 'r' });
    expect(s.innerClaims()).toBe(before);
  });

  it('asks the store when a record learnt from a claim is claimed with another fingerprint', async () => {
    const inner = completedStore(60_000);
    const store = withLocalCache(inner.store, { clock: createManualClock() });
    await store.claim(claimOf('a', 'f'));
    await store.claim(claimOf('a', 'f'));
    expect(inner.claims()).toBe(1);
    await store.claim(claimOf('a', 'g')); // the stored fingerprint may be 'f' or '' : only the store knows
    expect(inner.claims()).toBe(2);
  });

  it('drops its own completion once the TTL it was stored with has passed', async () => {
    const s = setup();
    await s.complete('a', 'r', { ttlMs: 1_000 });
    await s.clock.advance(999);
    const before = s.innerClaims();
    expect((await s.store.claim(claimOf('a'))).status).toBe('completed');
    expect(s.innerClaims()).toBe(before);
    await s.clock.advance(1);
    expect((await s.store.claim(claimOf('a'))).status).toBe('acquired'); // the store forgot it too
    expect(s.innerClaims()).toBe(before + 1);
  });

  it('keeps a record learnt from a claim for the time left the store reported, from when the claim was sent', async () => {
    const clock = createManualClock();
    const inner = completedStore(500);
    const store = withLocalCache(inner.store, { clock });
    await store.claim(claimOf('a'));
    await clock.advance(499);
    await store.claim(claimOf('a'));
    expect(inner.claims()).toBe(1);
    await clock.advance(1);
    await store.claim(claimOf('a'));
    expect(inner.claims()).toBe(2);
  });

  it('does not cache a record learnt from a store that reports no time left', async () => {
    const inner = completedStore(undefined);
    const store = withLocalCache(inner.store, { clock: createManualClock() });
    await store.claim(claimOf('a'));
    await store.claim(claimOf('a'));
    expect(inner.claims()).toBe(2);
  });

  it('dates a completion retried after a failure from its first attempt: the record may have expired from then', async () => {
    const clock = createManualClock();
    const memory = createMemoryStore({ clock });
    let failures = 1;
    const flaky: IdempotencyStore = {
      ...memory,
      claim: (r) => memory.claim(r),
      complete: async (request) => {
        const outcome = await memory.complete(request); // reaches the store, then the reply is lost
        if (failures-- > 0) throw new IdempotencyError('STORE_UNAVAILABLE', 'reply lost');
        return outcome;
      },
    };
    const spy = spyStore(flaky);
    const store = withLocalCache(spy.store, { clock });
    const request = claimOf('a');
    await store.claim(request);
    await expect(store.complete({ id: 'a', token: request.token, result: 'r', ttlMs: 1_000 })).rejects.toThrow('reply lost');
    await clock.advance(400);
    expect(await store.complete({ id: 'a', token: request.token, result: 'r', ttlMs: 1_000 })).toEqual({ status: 'ok' });
    await clock.advance(599);
    const before = spy.callsOf('claim').length;
    expect((await store.claim(claimOf('a'))).status).toBe('completed');
    expect(spy.callsOf('claim').length).toBe(before);
    await clock.advance(1); // 1000 ms after the first attempt: the store's record is gone
    expect((await store.claim(claimOf('a'))).status).toBe('acquired');
  });

  it('evicts the least recently used entry past maxEntries', async () => {
    const s = setup({ maxEntries: 2 });
    await s.complete('a', 'A');
    await s.complete('b', 'B');
    await s.store.claim(claimOf('a')); // a is now the most recently used
    await s.complete('c', 'C');
    const before = s.innerClaims();
    await s.store.claim(claimOf('a'));
    await s.store.claim(claimOf('c'));
    expect(s.innerClaims()).toBe(before);
    expect(await s.store.claim(claimOf('b'))).toEqual({ status: 'completed', result: 'B' }); // from the store
    expect(s.innerClaims()).toBe(before + 1);
  });

  it('keeps its bytes under maxBytes, and never caches a result larger than it', async () => {
    // An entry counts 128 bytes plus 2 per UTF-16 unit of id, result and fingerprint: 'a' + 100 + 'f' = 332.
    const s = setup({ maxBytes: 700 });
    await s.complete('a', 'x'.repeat(100));
    await s.complete('b', 'y'.repeat(100));
    await s.complete('c', 'z'.repeat(100)); // 3 x 332 > 700: a goes
    const before = s.innerClaims();
    await s.store.claim(claimOf('b'));
    await s.store.claim(claimOf('c'));
    expect(s.innerClaims()).toBe(before);
    await s.store.claim(claimOf('a'));
    expect(s.innerClaims()).toBe(before + 1);
    await s.complete('big', 'w'.repeat(400));
    const afterBig = s.innerClaims();
    expect((await s.store.claim(claimOf('big'))).status).toBe('completed');
    expect(s.innerClaims()).toBe(afterBig + 1);
  });

  it('forgets an entry when the store says the record is no longer completed (deleted by hand)', async () => {
    const inner = completedStore(60_000);
    let answer: ClaimOutcome | undefined;
    const store = withLocalCache({ ...inner.store, claim: async (r) => answer ?? inner.store.claim(r) }, { clock: createManualClock() });
    await store.claim(claimOf('a', 'f'));
    answer = { status: 'acquired', fence: 1, takeover: false, steps: NO_STEPS };
    expect((await store.claim(claimOf('a', 'g'))).status).toBe('acquired'); // another fingerprint: asks the store
    answer = { status: 'in_progress', retryAfterMs: 5 };
    expect((await store.claim(claimOf('a', 'f'))).status).toBe('in_progress');
  });
});

describe('createIdempotency localCache option', () => {
  it('is off by default and validated when on', () => {
    expect(() => createIdempotency({ localCache: false })).not.toThrow();
    expect(() => createIdempotency({ localCache: {} })).not.toThrow();
    expect(() => createIdempotency({ localCache: { maxEntries: 10, maxBytes: 4096 } })).not.toThrow();
    expect(() => createIdempotency({ localCache: true as never })).toThrow(/option "localCache" must be false or/);
    expect(() => createIdempotency({ localCache: { maxEntries: 0 } })).toThrow(/option "localCache"/);
    expect(() => createIdempotency({ localCache: { maxItems: 5 } as never })).toThrow(/option "localCache"/);
    expect(() => createIdempotency().idempotent({ localCache: {} } as never)).toThrow(/"localCache" is not an option here/);
  });
});
