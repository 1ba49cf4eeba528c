import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import type { PostgresStore } from '../../src/stores/postgres';
import { connectPool, dropTable, randomTable } from '../helpers/postgresClients';

describe('createPostgresStore expiry', () => {
  let pool: pg.Pool;
  let store: PostgresStore;
  const table = randomTable();
  const batch = 3;

  beforeAll(async () => {
    pool = connectPool();
    await createPostgresTable(pool, table);
    store = createPostgresStore({ pool, table, sweepIntervalMs: 0, sweepBatchSize: batch });
  });
  afterAll(async () => {
    await store.close();
    await dropTable(pool, table);
    await pool.end();
  });

  /** Completes a fresh key, then moves its expiry `ms` from now (negative: already expired). */
  const completed = async (expiresInMs: number, result = 'r'): Promise<string> => {
    const id = randomUUID();
    const token = randomUUID();
    await store.claim({ id, token, fingerprint: 'f', partition: 'p', lockTtlMs: 10_000 });
    await store.complete({ id, token, result, ttlMs: 60_000 });
    await pool.query(`UPDATE ${table} SET expires_at = clock_timestamp() + $2 * interval '1 millisecond' WHERE id = $1`, [
      id,
      expiresInMs,
    ]);
    return id;
  };
  const count = async (): Promise<number> => Number((await pool.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);

  it('never replays an expired row, swept or not: the key is claimed afresh', async () => {
    const id = await completed(-1, 'old');
    const outcome = await store.claim({ id, token: randomUUID(), fingerprint: 'other', partition: 'p', lockTtlMs: 10_000 });
    expect(outcome).toMatchObject({ status: 'acquired', takeover: false });
  });

  it('never reads an expired in-progress row as a live lease', async () => {
    const id = randomUUID();
    await store.claim({ id, token: randomUUID(), fingerprint: 'f', partition: 'p', lockTtlMs: 60_000 });
    await pool.query(`UPDATE ${table} SET expires_at = clock_timestamp() - interval '1 ms' WHERE id = $1`, [id]);
    expect(await store.wait({ id, timeoutMs: 5_000 })).toEqual({ status: 'settled' });
    expect(await store.claim({ id, token: randomUUID(), fingerprint: 'f', partition: 'p', lockTtlMs: 10_000 })).toMatchObject({
      status: 'acquired',
      takeover: false,
    });
  });

  it(`deletes every expired row in batches of sweepBatchSize (${batch}) and keeps the live ones`, async () => {
    await pool.query(`DELETE FROM ${table}`);
    const live = await Promise.all(Array.from({ length: 4 }, () => completed(60_000)));
    await Promise.all(Array.from({ length: 10 }, () => completed(-1)));
    const statements: string[] = [];
    const onAcquire = (client: pg.PoolClient): void => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      client.query = ((...args: unknown[]) => {
        statements.push(String((args[0] as { name?: string }).name));
        client.query = query as typeof client.query;
        return query(...args);
      }) as typeof client.query;
    };
    pool.on('acquire', onAcquire);
    try {
      expect(await store.sweep()).toBe(10);
    } finally {
      pool.off('acquire', onAcquire);
    }
    // 3 + 3 + 3 + 1: four statements, none deleting more than the batch.
    expect(statements).toHaveLength(4);
    expect(await count()).toBe(4);
    for (const id of live) expect((await store.claim({ id, token: randomUUID(), fingerprint: 'f', partition: 'p', lockTtlMs: 1 })).status).toBe('completed');
  });

  it('sweeps on its own every sweepIntervalMs', async () => {
    await pool.query(`DELETE FROM ${table}`);
    const auto = createPostgresStore({ pool, table, sweepIntervalMs: 50 });
    try {
      await completed(-1);
      for (let i = 0; i < 100 && (await count()) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await count()).toBe(0);
    } finally {
      await auto.close();
    }
  });
});
