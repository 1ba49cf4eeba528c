import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import { createRedisStore } from '../../src/redis';
import type { RedisStore } from '../../src/redis';
import { MAX_BATCH, MAX_BATCH_CHARS } from '../../src/redis/batcher';
import { keySlot } from '../../src/redis/slot';
import type { ClaimOutcome } from '../../src/store';
import { connectCluster, connectRedis, hasCluster, randomPrefix } from '../helpers/redisClients';
import type { MonitoredStore, RedisMonitor } from '../helpers/redisMonitor';
import { monitoredStore } from '../helpers/redisMonitor';

// Calls made in the same tick share one script run (one EVALSHA with one KEYS entry per record).
describe('createRedisStore batching (single node)', () => {
  let setup: MonitoredStore;
  let redis: Redis;
  let store: RedisStore;
  let monitor: RedisMonitor;
  const prefix = randomPrefix();
  const claim = (id: string, token: string = randomUUID(), fingerprint = 'f') =>
    store.claim({ id, partition: 'p', token, fingerprint, lockTtlMs: 10_000 });
  const evalshas = (commands: Array<{ name: string; args: string[] }>) => commands.filter((c) => c.name === 'evalsha' || c.name === 'eval');

  beforeAll(async () => {
    ({ redis, store, monitor } = setup = await monitoredStore(prefix));
  });
  afterAll(() => setup.close());

  it('sends N concurrent claims, completes and replays on N keys as one EVALSHA each, every caller with its own outcome', async () => {
    const n = 20;
    const ids = Array.from({ length: n }, () => randomUUID());
    const tokens = ids.map(() => randomUUID());
    let claimed: ClaimOutcome[] = [];
    const claims = await monitor.record(async () => {
      claimed = await Promise.all(ids.map((id, i) => claim(id, tokens[i])));
    });
    expect(claims.map((c) => c.name)).toEqual(['evalsha']);
    expect(claims[0]?.args[1]).toBe(String(n));
    expect(claims[0]?.args.slice(2, 2 + n)).toEqual(ids.map((id) => `${prefix}{${id}}`));
    expect(claimed.every((o) => o.status === 'acquired')).toBe(true);

    const completes = await monitor.record(async () => {
      const done = await Promise.all(
        ids.map((id, i) => store.complete({ id, token: tokens[i] as string, result: `result of ${id}`, ttlMs: 60_000 })),
      );
      expect(done.every((o) => o.status === 'ok')).toBe(true);
    });
    expect(completes.map((c) => c.name)).toEqual(['evalsha']);

    const replays = await monitor.record(async () => {
      const replayed = await Promise.all(ids.map((id) => claim(id)));
      expect(replayed).toEqual(ids.map((id) => ({ status: 'completed', result: `result of ${id}`, expiresInMs: expect.any(Number) })));
    });
    expect(replays.map((c) => c.name)).toEqual(['evalsha']);

    // Each record holds its own owner's token.
    for (const [i, id] of ids.entries()) expect(await redis.hget(`${prefix}{${id}}`, 't')).toBe(tokens[i]);
  });

  it(`splits a tick with more than ${MAX_BATCH} calls into batches of at most ${MAX_BATCH}`, async () => {
    const n = MAX_BATCH * 2 + 5;
    const ids = Array.from({ length: n }, () => randomUUID());
    const commands = await monitor.record(async () => {
      const outcomes = await Promise.all(ids.map((id) => claim(id)));
      expect(outcomes.every((o) => o.status === 'acquired')).toBe(true);
    });
    expect(evalshas(commands).map((c) => Number(c.args[1]))).toEqual([MAX_BATCH, MAX_BATCH, 5]);
  });

  it('sends a batch early once its arguments reach MAX_BATCH_CHARS (large results)', async () => {
    const ids = Array.from({ length: 6 }, () => randomUUID());
    await Promise.all(ids.map((id) => claim(id, `t-${id}`)));
    const big = 'x'.repeat(Math.ceil(MAX_BATCH_CHARS / 2));
    const commands = await monitor.record(async () => {
      const done = await Promise.all(ids.map((id) => store.complete({ id, token: `t-${id}`, result: big, ttlMs: 60_000 })));
      expect(done.every((o) => o.status === 'ok')).toBe(true);
    });
    expect(evalshas(commands).map((c) => Number(c.args[1]))).toEqual([2, 2, 2]);
    expect(await claim(ids[5] as string)).toEqual({ status: 'completed', result: big, expiresInMs: expect.any(Number) });
  });

  it('sends calls of different ticks separately (a batch of one at concurrency 1)', async () => {
    const commands = await monitor.record(async () => {
      await claim(randomUUID());
      await claim(randomUUID());
    });
    expect(commands.map((c) => [c.name, c.args[1]])).toEqual([
      ['evalsha', '1'],
      ['evalsha', '1'],
    ]);
  });

  it('handles claims of one key inside one batch in order: exactly one acquires', async () => {
    const id = randomUUID();
    const commands = await monitor.record(async () => {
      const outcomes = await Promise.all(Array.from({ length: 8 }, () => claim(id)));
      expect(outcomes.filter((o) => o.status === 'acquired')).toHaveLength(1);
      expect(outcomes[0]?.status).toBe('acquired');
      expect(outcomes.slice(1).every((o) => o.status === 'in_progress')).toBe(true);
    });
    expect(commands.map((c) => c.name)).toEqual(['evalsha']);

    // Another fingerprint in the same batch as the first claim: the second one sees a mismatch.
    const other = randomUUID();
    const [first, second] = await Promise.all([claim(other, 'a', 'fp-1'), claim(other, 'b', 'fp-2')]);
    expect(first?.status).toBe('acquired');
    expect(second).toEqual({ status: 'mismatch' });
  });

  it('gives each caller of a mixed batch its own outcome (completed, in progress, acquired, mismatch)', async () => {
    const done = randomUUID();
    await claim(done, 'd');
    await store.complete({ id: done, token: 'd', result: 'stored', ttlMs: 60_000 });
    const busy = randomUUID();
    await claim(busy, 'b');
    const fresh = randomUUID();
    const commands = await monitor.record(async () => {
      const outcomes = await Promise.all([claim(done), claim(busy), claim(fresh), claim(done, 'x', 'other')]);
      expect(outcomes[0]).toEqual({ status: 'completed', result: 'stored', expiresInMs: expect.any(Number) });
      expect(outcomes[1]?.status).toBe('in_progress');
      expect(outcomes[2]).toMatchObject({ status: 'acquired', takeover: false });
      expect(outcomes[3]).toEqual({ status: 'mismatch' });
    });
    expect(commands.map((c) => c.name)).toEqual(['evalsha']);
  });

  it('fails only the caller of a corrupt record inside a batch; the others go on', async () => {
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const corruptKey = `${prefix}{${ids[1]}}`;
    await redis.set(corruptKey, 'foreign');
    const results = await Promise.allSettled(ids.map((id) => claim(id, `t-${id}`)));
    expect(results[0]).toMatchObject({ status: 'fulfilled', value: { status: 'acquired' } });
    expect(results[2]).toMatchObject({ status: 'fulfilled', value: { status: 'acquired' } });
    const failed = results[1];
    expect(failed?.status).toBe('rejected');
    const error = failed?.status === 'rejected' ? (failed.reason as unknown) : undefined;
    expect(isIdempotencyError(error) && error.code).toBe('RECORD_CORRUPT');
    expect((error as Error).message).toContain(`record ${corruptKey} holds a string`);
    expect(await redis.get(corruptKey)).toBe('foreign');

    // Same for completes and releases in one batch.
    const finishes = await Promise.allSettled([
      store.complete({ id: ids[0] as string, token: `t-${ids[0]}`, result: 'r', ttlMs: 60_000 }),
      store.complete({ id: ids[1] as string, token: 'x', result: 'r', ttlMs: 60_000 }),
      store.release({ id: ids[2] as string, token: `t-${ids[2]}` }),
      store.release({ id: ids[1] as string, token: 'x' }),
    ]);
    expect(finishes.map((r) => (r.status === 'fulfilled' ? r.value.status : (r.reason as { code?: string }).code))).toEqual([
      'ok',
      'RECORD_CORRUPT',
      'ok',
      'RECORD_CORRUPT',
    ]);
  });

  it('rejects a call with a bad duration on its own; the rest of its tick is sent', async () => {
    const good = randomUUID();
    const [bad, ok] = await Promise.allSettled([
      store.claim({ id: randomUUID(), partition: 'p', token: 't', fingerprint: '', lockTtlMs: Number.NaN }),
      claim(good),
    ]);
    expect(bad?.status === 'rejected' && (bad.reason as { code?: string }).code).toBe('INVALID_OPTION');
    expect(ok).toMatchObject({ status: 'fulfilled', value: { status: 'acquired' } });
  });

  it('works with a keyPrefix client: ioredis prefixes every KEYS entry of a batch', async () => {
    const prefixed = connectRedis({ keyPrefix: 'app:' });
    const prefixedStore = createRedisStore({ redis: prefixed, prefix });
    try {
      const ids = [randomUUID(), randomUUID()];
      const outcomes = await Promise.all(ids.map((id) => prefixedStore.claim({ id, partition: 'p', token: 't', fingerprint: '', lockTtlMs: 10_000 })));
      expect(outcomes.every((o) => o.status === 'acquired')).toBe(true);
      for (const id of ids) expect(await redis.hget(`app:${prefix}{${id}}`, 't')).toBe('t');
    } finally {
      await prefixedStore.close();
      await prefixed.quit();
    }
  });
});

describe('keySlot', () => {
  it('matches the Redis Cluster key slot (hash tags included)', () => {
    // ioredis' own slot function, for the keys where it follows the spec
    const calculateSlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;
    const keys = ['', 'a', 'foo', '{user1000}.following', 'foo{{bar}}zap', 'foo{bar}{zap}', 'idem:{é-ü-✓}', 'app:idem:{x}'];
    for (let i = 0; i < 200; i++) keys.push(`test-${randomUUID().slice(0, 8)}:{${randomUUID()}}`);
    for (const key of keys) expect(keySlot(key), key).toBe(calculateSlot(key));
    expect(keySlot('123456789')).toBe(0x31c3 & 0x3fff); // CRC16/XMODEM check value
    // The spec: "{" followed at once by "}" is no tag, the whole key is hashed (cluster-key-slot differs here).
    expect(keySlot('foo{}{bar}')).toBe(8363);
    expect(keySlot('foo{}{bar}')).not.toBe(keySlot('bar'));
  });
});

describe.runIf(hasCluster())('createRedisStore batching on a 3-master cluster', () => {
  let cluster: Cluster;
  let store: RedisStore;
  const prefix = randomPrefix();
  /** numkeys of every script run the client sent. */
  const sent: number[] = [];
  beforeAll(() => {
    cluster = connectCluster({ keyPrefix: 'app:' }) as Cluster;
    const target = cluster as unknown as { sendCommand(command: { name: string; args: unknown[] }): unknown };
    const original = target.sendCommand.bind(cluster);
    target.sendCommand = (command) => {
      if (command.name === 'evalsha' || command.name === 'eval') sent.push(Number(command.args[1]));
      return original(command);
    };
    store = createRedisStore({ redis: cluster, prefix });
  });
  beforeAll(async () => {
    // Before counting: learn the slot map (a MOVED redirect resends a command) and load the scripts on every
    // master (a NOSCRIPT fallback resends as EVAL), with ids spread over all shards.
    const warm = Array.from({ length: 48 }, () => randomUUID());
    await Promise.all(warm.map((id) => store.claim({ id, partition: 'p', token: 'w', fingerprint: '', lockTtlMs: 10_000 })));
    await Promise.all(warm.map((id) => store.complete({ id, token: 'w', result: 'r', ttlMs: 60_000 })));
    sent.length = 0;
  });
  afterAll(async () => {
    await store.close();
    await cluster.quit();
  });

  it('groups a batch by hash slot: one script run per slot, every caller with its own outcome', async () => {
    // Three ids whose records share one slot, plus ids on other slots.
    const bySlot = new Map<number, string[]>();
    let shared: string[] | undefined;
    for (let n = 0; !shared; n++) {
      const id = `same-${n}`;
      const slot = keySlot(`app:${prefix}{${id}}`);
      const ids = bySlot.get(slot) ?? [];
      ids.push(id);
      bySlot.set(slot, ids);
      if (ids.length === 3) shared = ids;
    }
    const slots = new Set([keySlot(`app:${prefix}{${shared[0]}}`)]);
    const others: string[] = [];
    while (others.length < 12) {
      const id = randomUUID();
      const slot = keySlot(`app:${prefix}{${id}}`);
      if (slots.has(slot)) continue;
      slots.add(slot);
      others.push(id);
    }
    // The slots the store computes are the cluster's own.
    const node = cluster.nodes('master')[0] as Redis;
    for (const key of [...[...shared, ...others.slice(0, 3)].map((id) => `app:${prefix}{${id}}`), 'foo{}{bar}']) {
      expect(await node.cluster('KEYSLOT', key)).toBe(keySlot(key));
    }

    const all = [...shared, ...others];
    sent.length = 0;
    const outcomes = await Promise.all(all.map((id) => store.claim({ id, partition: 'p', token: `t-${id}`, fingerprint: '', lockTtlMs: 10_000 })));
    expect(outcomes.every((o) => o.status === 'acquired')).toBe(true);
    expect([...sent].sort((a, b) => b - a)).toEqual([3, ...others.map(() => 1)]);

    sent.length = 0;
    const done = await Promise.all(all.map((id) => store.complete({ id, token: `t-${id}`, result: id, ttlMs: 60_000 })));
    expect(done.every((o) => o.status === 'ok')).toBe(true);
    expect(sent).toHaveLength(1 + others.length);
    const replays = await Promise.all(all.map((id) => store.claim({ id, partition: 'p', token: 'x', fingerprint: '', lockTtlMs: 10_000 })));
    expect(replays).toEqual(all.map((id) => ({ status: 'completed', result: id, expiresInMs: expect.any(Number) })));
  });
});
