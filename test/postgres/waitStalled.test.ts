import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import type { PostgresStore } from '../../src/stores/postgres';
import { postgresTarget, sleep, storeOnOwnServer } from '../helpers/postgresClients';
import type { PostgresServer } from '../helpers/postgresServer';

const operationTimeoutMs = 500;
/** Scheduling slack on top of the bound. */
const slackMs = 300;

// The first wait of a store opens its listening connection (checkout + LISTEN): bounded like every other call.
// Stalls its own PostgreSQL server: never the shared one.
describe.runIf(postgresTarget().canSpawn)('createPostgresStore wait while PostgreSQL is stalled', () => {
  let server: PostgresServer;
  let pool: pg.Pool;
  let store: PostgresStore;
  const table = 'stalled';

  let stop: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    ({ server, pool, store, stop } = await storeOnOwnServer(table, { operationTimeoutMs }));
  });
  afterAll(() => stop?.());

  it('fails within operationTimeoutMs, saying so, and closes the connection that comes late', async () => {
    const id = randomUUID();
    await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 60_000 });
    await pool.query('SELECT 1'); // an idle connection in the pool: the listener's checkout gets it at once
    server.pause();
    const started = performance.now();
    const error = await store.wait({ id, timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(operationTimeoutMs + slackMs);
    expect(isIdempotencyError(error) && error.code, String(error)).toBe('STORE_UNAVAILABLE');
    expect((error as Error).message).toContain(`postgres listen got no answer within ${operationTimeoutMs} ms`);
    server.resume();
    // The late LISTEN's connection is closed, not kept or handed back still listening.
    const checkedOut = () => pool.totalCount - pool.idleCount;
    for (let i = 0; i < 100 && checkedOut() > 0; i++) await sleep(20);
    expect(checkedOut()).toBe(0);
    // Seen from a connection of its own (one handed back to the pool could run this query and hide itself).
    const observer = new pg.Client({ connectionString: server.url });
    await observer.connect();
    try {
      const { rows } = await observer.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = $1', [
        `LISTEN "${table}"`,
      ]);
      expect(rows[0]?.n).toBe(0);
    } finally {
      await observer.end();
    }
    // And the next wait listens again.
    const waiting = store.wait({ id, timeoutMs: 10_000 });
    await sleep(100);
    await store.release({ id, token: 'owner' });
    expect(await waiting).toEqual({ status: 'settled' });
  });
});
