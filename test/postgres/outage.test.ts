import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import type { PostgresStore } from '../../src/stores/postgres';
import { postgresTarget, sleep, storeOnOwnServer } from '../helpers/postgresClients';
import type { PostgresServer } from '../helpers/postgresServer';

const operationTimeoutMs = 500;
/** Scheduling slack on top of the bound. */
const slackMs = 300;

/** Runs `call`, expects STORE_UNAVAILABLE, returns how long it took. */
const failsUnavailable = async (call: () => Promise<unknown>): Promise<number> => {
  const start = performance.now();
  const error = await call().then(
    (value) => new Error(`expected STORE_UNAVAILABLE, got ${JSON.stringify(value)}`),
    (e: unknown) => e,
  );
  const elapsed = performance.now() - start;
  expect(isIdempotencyError(error) && error.code, String(error)).toBe('STORE_UNAVAILABLE');
  return elapsed;
};

// Each test stops or stalls its own PostgreSQL server: never the shared one.
describe.runIf(postgresTarget().canSpawn)('createPostgresStore when PostgreSQL is down or stalled', () => {
  let server: PostgresServer;
  let store: PostgresStore;
  const table = 'outage';
  const claim = (id: string = randomUUID(), token: string = randomUUID()) =>
    store.claim({ id, token, fingerprint: '', partition: 'p', lockTtlMs: 10_000 });

  let stop: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    ({ server, store, stop } = await storeOnOwnServer(table, { operationTimeoutMs }));
  });
  afterEach(() => {
    server.resume();
  });
  afterAll(() => stop?.());

  it('fails every call within operationTimeoutMs while PostgreSQL is down, then works again once it is back', async () => {
    const id = randomUUID();
    const token = randomUUID();
    expect((await claim(id, token)).status).toBe('acquired');
    // A waiter holds the listening connection when the server goes.
    const waiting = store.wait({ id, timeoutMs: 30_000 });
    await sleep(100);
    await server.kill();
    expect(await failsUnavailable(() => waiting)).toBeLessThan(30_000);
    for (const call of [
      () => claim(),
      () => store.renew({ id, token, lockTtlMs: 10_000 }),
      () => store.complete({ id, token, result: 'r', ttlMs: 60_000 }),
      () => store.release({ id, token }),
      () => store.wait({ id, timeoutMs: 5_000 }),
      () => store.sweep(),
    ]) {
      expect(await failsUnavailable(call)).toBeLessThan(operationTimeoutMs + slackMs);
    }

    await server.restart();
    // Same pool, same store: the broken connections were dropped, new ones are opened.
    expect(await store.complete({ id, token, result: 'r', ttlMs: 60_000 })).toEqual({ status: 'ok' });
    expect(await claim(id)).toEqual({ status: 'completed', result: 'r' });
    const next = randomUUID();
    const nextToken = randomUUID();
    expect((await claim(next, nextToken)).status).toBe('acquired');
    const woken = store.wait({ id: next, timeoutMs: 10_000 });
    await sleep(100);
    await store.release({ id: next, token: nextToken });
    expect(await woken).toEqual({ status: 'settled' });
  });

  it('fails within operationTimeoutMs while PostgreSQL is stalled (every process stopped), closing those connections', async () => {
    expect((await claim()).status).toBe('acquired');
    server.pause();
    const elapsed = await Promise.all(Array.from({ length: 6 }, () => failsUnavailable(() => claim())));
    for (const ms of elapsed) expect(ms).toBeLessThan(operationTimeoutMs + slackMs);
    server.resume();
    // The timed-out connections were closed, not handed back with a statement still running on them.
    expect((await claim()).status).toBe('acquired');
  });
});
