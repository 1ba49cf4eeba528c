import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisStore } from '../../src/redis';
import type { MonitoredStore, RedisMonitor } from '../helpers/redisMonitor';
import { monitoredStore } from '../helpers/redisMonitor';

// Round trips as Redis counts them (MONITOR), so a regression that adds a command fails here.
describe('createRedisStore round trips', () => {
  let setup: MonitoredStore;
  let store: RedisStore;
  let monitor: RedisMonitor;
  const claim = (id: string, token: string = randomUUID()) => store.claim({ id, partition: 'p', token, fingerprint: 'f', lockTtlMs: 10_000 });

  beforeAll(async () => {
    ({ store, monitor } = setup = await monitoredStore());
  });
  afterAll(() => setup.close());

  it('costs 2 commands for a fresh call (claim, complete), each one EVALSHA', async () => {
    const id = randomUUID();
    const token = randomUUID();
    const commands = await monitor.record(async () => {
      expect((await claim(id, token)).status).toBe('acquired');
      expect(await store.complete({ id, token, result: 'r', ttlMs: 60_000 })).toEqual({ status: 'ok' });
    });
    expect(commands.map((c) => c.name)).toEqual(['evalsha', 'evalsha']);
  });

  it('costs 1 command for a replay and 1 for a concurrent duplicate', async () => {
    const done = randomUUID();
    const doneToken = randomUUID();
    await claim(done, doneToken);
    await store.complete({ id: done, token: doneToken, result: 'r', ttlMs: 60_000 });
    const replay = await monitor.record(async () => {
      expect(await claim(done)).toEqual({ status: 'completed', result: 'r', expiresInMs: expect.any(Number) });
    });
    expect(replay.map((c) => c.name)).toEqual(['evalsha']);

    const busy = randomUUID();
    await claim(busy);
    const duplicate = await monitor.record(async () => {
      expect((await claim(busy)).status).toBe('in_progress');
    });
    expect(duplicate.map((c) => c.name)).toEqual(['evalsha']);
  });

  it("runs a replay's script without reading Redis' clock (HMGET and PTTL only); a fresh claim reads it once", async () => {
    const done = randomUUID();
    const doneToken = randomUUID();
    await claim(done, doneToken);
    await store.complete({ id: done, token: doneToken, result: 'r', ttlMs: 60_000 });
    const replay = await monitor.record(() => claim(done), { lua: true });
    expect(replay.map((c) => c.name)).toEqual(['evalsha', 'hmget', 'pttl']);

    const fresh = await monitor.record(() => claim(randomUUID()), { lua: true });
    expect(fresh.filter((c) => c.name === 'time')).toHaveLength(1);
    expect(fresh.filter((c) => c.source !== 'lua').map((c) => c.name)).toEqual(['evalsha']);
  });

  it('keeps taking fresh keys after a run of replays (a replay brings no clock sample, and none is made up)', async () => {
    const done = randomUUID();
    const doneToken = randomUUID();
    await claim(done, doneToken);
    await store.complete({ id: done, token: doneToken, result: 'r', ttlMs: 60_000 });
    for (let i = 0; i < 5; i++) expect((await claim(done)).status).toBe('completed');
    // A made-up sample (Redis time 0) would put every deadline in the past: the claim would come back too late.
    const fresh = await monitor.record(async () => expect((await claim(randomUUID())).status).toBe('acquired'));
    expect(fresh.map((c) => c.name)).toEqual(['evalsha']);
  });

  it('costs 1 command per renew and per release', async () => {
    const id = randomUUID();
    const token = randomUUID();
    await claim(id, token);
    const commands = await monitor.record(async () => {
      expect(await store.renew({ id, token, lockTtlMs: 10_000 })).toEqual({ status: 'ok' });
      expect(await store.release({ id, token })).toEqual({ status: 'ok' });
    });
    expect(commands.map((c) => c.name)).toEqual(['evalsha', 'evalsha']);
  });

  it('passes the record key in KEYS with one hash tag per record', async () => {
    const id = randomUUID();
    const commands = await monitor.record(() => claim(id));
    const [evalsha] = commands;
    expect(evalsha?.args[1]).toBe('1');
    expect(evalsha?.args[2]).toMatch(new RegExp(`^test-[0-9a-f]{8}:\\{${id}\\}$`));
  });
});
