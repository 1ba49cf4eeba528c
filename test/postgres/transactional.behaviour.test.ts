import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import type { ClaimRequest, TransactionalClaim } from '../../src/store';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import type { PostgresStore } from '../../src/stores/postgres';
import { postgresTarget } from '../helpers/postgresClients';
import type { PostgresServer } from '../helpers/postgresServer';
import { startPostgresServer } from '../helpers/postgresServer';
import { rejectionOf } from '../server/helpers';

/** A claim request for `id` (a fresh one by default). */
const claimOf = (id: string = randomUUID()): ClaimRequest => ({ id, partition: 'p', token: randomUUID(), fingerprint: '', lockTtlMs: 10_000 });

type Acquired = Extract<TransactionalClaim<pg.PoolClient>, { status: 'acquired' }>;

/** `begin`, expecting the key to be acquired. */
const acquire = async (store: PostgresStore, request: ClaimRequest = claimOf()): Promise<Acquired> => {
  const claim = await store.transactional.begin(request);
  if (claim.status !== 'acquired') throw new Error(`expected acquired, got ${JSON.stringify(claim)}`);
  return claim;
};

// Each test here stalls its own PostgreSQL server: never the shared one.
describe.runIf(postgresTarget().canSpawn)('transactional mode when PostgreSQL stalls', () => {
  const operationTimeoutMs = 300;
  let server: PostgresServer;
  let pool: pg.Pool;
  let store: PostgresStore;

  beforeAll(async () => {
    server = await startPostgresServer();
    pool = new pg.Pool({ connectionString: server.url, max: 4 });
    pool.on('error', () => {});
    await createPostgresTable(pool, 'stall');
    store = createPostgresStore({ pool, table: 'stall', operationTimeoutMs, sweepIntervalMs: 0 });
  });
  afterEach(() => {
    server.resume();
  });
  afterAll(async () => {
    await store?.close();
    await pool?.end().catch(() => {});
    await server?.stop();
  });

  it('fails a waiter with STORE_UNAVAILABLE within operationTimeoutMs when its read of the key gets no answer', async () => {
    const holder = await acquire(store);
    try {
      const id = (await holder.transaction.client.query<{ id: string }>('SELECT id FROM stall')).rows[0]?.id as string;
      // The waiter's first read (a connection of its own, given back after) finds the key held; then everything stops.
      const firstRead = once(pool, 'release');
      const waiting = store.transactional.wait({ id, timeoutMs: 20_000 });
      await firstRead;
      server.pause();
      const started = performance.now();
      const error = await rejectionOf(waiting);
      const elapsed = performance.now() - started;
      expect(isIdempotencyError(error) && error.code, String(error)).toBe('STORE_UNAVAILABLE');
      expect(String((error as Error).message)).toMatch(/no answer within 300 ms \(operationTimeoutMs\)/);
      // The next read is due within 101 ms (the key's retry hint), then bounded by operationTimeoutMs.
      expect(elapsed).toBeLessThan(101 + operationTimeoutMs + 700);
    } finally {
      server.resume();
      await holder.transaction.rollback();
    }
  });
});
