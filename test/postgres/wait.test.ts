import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import type { PostgresStore, PostgresStoreOptions } from '../../src/stores/postgres';
import { connectPool, dropTable, randomTable, sleep } from '../helpers/postgresClients';

/** Counts the store's statements by kind, client side (names of the prepared statements), on every checkout. */
const countStatements = (pool: pg.Pool): Map<string, number> => {
  const counts = new Map<string, number>();
  const wrapped = new WeakSet<object>();
  pool.on('acquire', (client) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    client.query = ((...args: unknown[]) => {
      const first = args[0] as { name?: string } | string;
      const kind = typeof first === 'string' ? (first.split(' ')[0] ?? '') : (/_v1_([a-z]+)_/.exec(first.name ?? '')?.[1] ?? '?');
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
      return query(...args);
    }) as typeof client.query;
  });
  return counts;
};

describe('createPostgresStore wait', () => {
  const opened: Array<{ store: PostgresStore; pool: pg.Pool; table: string }> = [];
  const open = async (options: Partial<PostgresStoreOptions> = {}) => {
    const pool = connectPool();
    const table = randomTable();
    await createPostgresTable(pool, table);
    const counts = countStatements(pool);
    const store = createPostgresStore({ pool, table, sweepIntervalMs: 0, ...options });
    opened.push({ store, pool, table });
    return { store, pool, counts, table };
  };
  afterEach(async () => {
    for (const { store, pool, table } of opened.splice(0)) {
      await store.close();
      await dropTable(pool, table);
      await pool.end();
    }
  });

  it('wakes waiters by NOTIFY, not by polling: one LISTEN and one read for 50 waiters, no poll', async () => {
    // A poll every 10 minutes and a lease of 10 minutes: nothing but the notification can wake the waiters.
    const { store, counts } = await open({ waitPollIntervalMs: 600_000 });
    const id = randomUUID();
    await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 600_000 });
    const waiting = Promise.all(Array.from({ length: 50 }, () => store.wait({ id, timeoutMs: 20_000 })));
    // Let the watch start (LISTEN, then one read) before completing.
    for (let i = 0; i < 200 && (counts.get('peek') ?? 0) === 0; i++) await sleep(5);
    expect(await store.complete({ id, token: 'owner', result: 'r', ttlMs: 60_000 })).toEqual({ status: 'ok' });
    expect((await waiting).every((o) => o.status === 'settled')).toBe(true);
    expect(counts.get('LISTEN')).toBe(1);
    expect(counts.get('peek')).toBe(1);
  });

  it('listens once per store: later waits on other keys reuse the connection', async () => {
    const { store, counts } = await open();
    for (let i = 0; i < 3; i++) {
      const id = randomUUID();
      await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 60_000 });
      const waiting = store.wait({ id, timeoutMs: 10_000 });
      for (let j = 0; j < 200 && (counts.get('peek') ?? 0) <= i; j++) await sleep(5);
      await store.release({ id, token: 'owner' });
      expect(await waiting).toEqual({ status: 'settled' });
    }
    expect(counts.get('LISTEN')).toBe(1);
  });

  it('still settles by polling when the notification is lost (listening connection killed)', async () => {
    const { store, pool, counts, table } = await open({ waitPollIntervalMs: 50 });
    const id = randomUUID();
    await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 600_000 });
    const waiting = store.wait({ id, timeoutMs: 10_000 });
    for (let i = 0; i < 200 && (counts.get('peek') ?? 0) === 0; i++) await sleep(5);
    // End this store's listening backend (its LISTEN names this test's table): the completion below, written
    // behind the store's back, notifies nobody.
    const ended = await pool.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1', [
      `LISTEN "${table}"`,
    ]);
    expect(ended.rowCount).toBe(1);
    await pool.query(`UPDATE ${table} SET state = 'c', result = 'r', lease_until = NULL WHERE id = $1`, [id]);
    expect(await waiting).toEqual({ status: 'settled' });
    expect(counts.get('peek')).toBeGreaterThanOrEqual(2);
  });
});
