import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import type { PostgresStore, PostgresStoreOptions } from '../../src/stores/postgres';
import { connectPool, dropTable, postgresTarget, randomTable, storeOnOwnServer } from '../helpers/postgresClients';
import type { PostgresServer } from '../helpers/postgresServer';
import { rejectionOf } from '../server/helpers';
import { claimOf, acquire, storeOn, lockWaitIn, backendPid, deferredUniqueSql } from './fixtures/transactionalBehaviour';

// The store's transactional capability (begin, wait, commit, rollback) on its own, beyond its happy paths
// (transactional.test.ts), on real PostgreSQL; last, on a spawned server that stalls.

describe('the transactional capability of the PostgreSQL store', () => {
  it('answers in_progress, not an error, when a transaction commits the key between its snapshot and its lock (40001)', async () => {
    const { pool, table, store, close } = await storeOn({ isolationLevel: 'repeatable read' });
    const admin = await pool.connect();
    try {
      // A released store-mode record of the key: the claim locks its row.
      const id = randomUUID();
      const token = randomUUID();
      expect((await store.claim({ ...claimOf(id), token })).status).toBe('acquired');
      expect(await store.release({ id, token })).toEqual({ status: 'ok' });
      // Another transaction holds the row: the claim takes its snapshot, then waits for the row lock...
      await admin.query('BEGIN');
      await admin.query(`UPDATE ${table} SET expires_at = expires_at WHERE id = $1`, [id]);
      const beginning = store.transactional.begin(claimOf(id));
      await lockWaitIn(pool, `${table.split('.').pop()}_tx_claim`);
      // ...and that transaction commits a new version of the row: its snapshot is too old to claim.
      await admin.query('COMMIT');
      expect(await beginning).toEqual({ status: 'in_progress', retryAfterMs: 100 });
      // Nothing of that attempt is left: the next one claims the key.
      const next = await acquire(store, claimOf(id));
      await next.transaction.rollback();
    } finally {
      admin.release();
      await close();
    }
  });

  it('rejects STORE_UNAVAILABLE saying to create the table when its functions are missing, and leaves the pool clean', async () => {
    // Two connections: a waiter listens on one of them.
    const pool = connectPool({ max: 2 });
    const store = createPostgresStore({ pool, table: randomTable(), sweepIntervalMs: 0 });
    try {
      const error = await rejectionOf(store.transactional.begin(claimOf()));
      expect(isIdempotencyError(error) && error.code, String(error)).toBe('STORE_UNAVAILABLE');
      expect((error as Error).message).toMatch(/^trpc-idempotency: postgres begin failed: .*create the table first: createPostgresTable/);
      // The aborted transaction did not go back to the pool: the next statement runs.
      expect((await pool.query<{ n: number }>('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
      // A waiter's read says the same.
      const waitError = await rejectionOf(store.transactional.wait({ id: randomUUID(), timeoutMs: 5000 }));
      expect(isIdempotencyError(waitError) && waitError.code, String(waitError)).toBe('STORE_UNAVAILABLE');
      expect((waitError as Error).message).toMatch(/^trpc-idempotency: postgres peek failed: .*create the table first: createPostgresTable/);
    } finally {
      await store.close();
      await pool.end();
    }
  });

  it('answers RECORD_CORRUPT naming the row and table for a row it did not write, and gives its connection back', async () => {
    const { pool, table, store, close } = await storeOn({}, { max: 1 });
    try {
      const id = randomUUID();
      await pool.query(
        `INSERT INTO ${table} (id, v, state, token, fingerprint, fence, lease_until, expires_at, result)
         VALUES ($1, 2, 'p', 'tok', '', 1, clock_timestamp() + interval '1 hour', clock_timestamp() + interval '1 hour', NULL)`,
        [id],
      );
      const error = await rejectionOf(store.transactional.begin(claimOf(id)));
      expect(isIdempotencyError(error) && error.code, String(error)).toBe('RECORD_CORRUPT');
      expect((error as Error).message).toContain(`row ${JSON.stringify(id)} of table ${table}`);
      // The pool has one connection: it came back, rolled back.
      const next = await acquire(store);
      await next.transaction.rollback();
    } finally {
      await close();
    }
  });

  it('holds a key per table: a transaction holding a key in one table never holds the same key in another', async () => {
    const one = await storeOn();
    const other = await storeOn();
    const id = randomUUID();
    const held = await acquire(one.store, claimOf(id));
    // The same record id in another table (another app, another tenant's schema) is a key of its own.
    const there = await other.store.transactional.begin(claimOf(id));
    try {
      expect(there.status).toBe('acquired');
      expect(await one.store.transactional.begin(claimOf(id))).toEqual({ status: 'in_progress', retryAfterMs: 100 });
    } finally {
      if (there.status === 'acquired') await there.transaction.rollback();
      await held.transaction.rollback();
      await one.close();
      await other.close();
    }
  });

  it('wait: times out while a transaction holds the key, and settles when it commits', async () => {
    const { store, close } = await storeOn();
    try {
      const id = randomUUID();
      const holder = await acquire(store, claimOf(id));
      expect(await store.transactional.wait({ id, timeoutMs: 150 })).toEqual({ status: 'timeout' });
      const waiting = store.transactional.wait({ id, timeoutMs: 10_000 });
      expect(await holder.transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false })).toEqual({ status: 'committed' });
      expect(await waiting).toEqual({ status: 'settled' });
      expect(await store.transactional.begin(claimOf(id))).toEqual({ status: 'completed', result: 'r' });
    } finally {
      await close();
    }
  });

  it('refuses a second commit or rollback of one transaction: its connection may serve another call by then', async () => {
    const { store, close } = await storeOn();
    try {
      const committed = await acquire(store);
      expect(await committed.transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false })).toEqual({ status: 'committed' });
      await expect(committed.transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false })).rejects.toThrow(
        'trpc-idempotency: a transaction was committed or rolled back twice',
      );
      await expect(committed.transaction.rollback()).rejects.toThrow(/committed or rolled back twice/);
      const rolledBack = await acquire(store);
      await rolledBack.transaction.rollback();
      await expect(rolledBack.transaction.rollback()).rejects.toThrow(/committed or rolled back twice/);
    } finally {
      await close();
    }
  });

  it("sets the options' statement and idle timeouts for the transaction only; 0 keeps the session's own", async () => {
    const pool = connectPool({ max: 1, options: '-c statement_timeout=4321 -c idle_in_transaction_session_timeout=8765' });
    const table = randomTable();
    await createPostgresTable(pool, table);
    const settingsIn = async (options: Partial<PostgresStoreOptions>): Promise<string[]> => {
      const store = createPostgresStore({ pool, table, sweepIntervalMs: 0, ...options });
      try {
        const { transaction } = await acquire(store);
        const { rows } = await transaction.client.query<{ s: string; i: string }>(
          "SELECT current_setting('statement_timeout') AS s, current_setting('idle_in_transaction_session_timeout') AS i",
        );
        await transaction.rollback();
        return [rows[0]?.s ?? '', rows[0]?.i ?? ''];
      } finally {
        await store.close();
      }
    };
    try {
      expect(await settingsIn({ transactionStatementTimeoutMs: 1500, transactionIdleTimeoutMs: 2500 })).toEqual(['1500ms', '2500ms']);
      // The defaults: the session's statement_timeout, and a minute idle.
      expect(await settingsIn({})).toEqual(['4321ms', '1min']);
      expect(await settingsIn({ transactionIdleTimeoutMs: 0 })).toEqual(['4321ms', '8765ms']);
      // The pooled connection's next user gets the session's settings back.
      const { rows } = await pool.query<{ s: string; i: string }>(
        "SELECT current_setting('statement_timeout') AS s, current_setting('idle_in_transaction_session_timeout') AS i",
      );
      expect(rows).toEqual([{ s: '4321ms', i: '8765ms' }]);
    } finally {
      await dropTable(pool, table);
      await pool.end();
    }
  });

  it('gives each connection back without listeners of its own: a connection used by many calls carries none of them', async () => {
    const { pool, store, close } = await storeOn({}, { max: 1 });
    let client: pg.PoolClient | undefined;
    pool.on('acquire', (acquired: pg.PoolClient) => {
      client = acquired;
    });
    const listeners = () => [client?.listenerCount('error'), client?.listenerCount('end')];
    try {
      const id = randomUUID();
      const first = await acquire(store, claimOf(id));
      await first.transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false });
      const after1 = listeners();
      for (let i = 0; i < 5; i++) {
        const { transaction } = await acquire(store);
        if (i % 2 === 0) await transaction.rollback();
        else await transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false });
        // A replay, whose ROLLBACK goes out after the answer.
        expect(await store.transactional.begin(claimOf(id))).toEqual({ status: 'completed', result: 'r' });
      }
      // The replay's ROLLBACK is on its way: the next checkout waits for it.
      await (await pool.connect()).release();
      expect(listeners()).toEqual(after1);
    } finally {
      await close();
    }
  });

  it('aborts the signal with the server’s error when the backend is terminated; commit then rolls back without sending COMMIT', async () => {
    const { pool, store, close } = await storeOn();
    try {
      const { transaction } = await acquire(store);
      const pid = await backendPid(transaction.client);
      const aborted = once(transaction.signal, 'abort');
      const ended = new Promise((resolve) => transaction.client.once('end', resolve));
      await pool.query('SELECT pg_terminate_backend($1)', [pid]);
      await aborted;
      expect(transaction.signal.reason).toMatchObject({ code: '57P01' });
      // The socket's close follows (node-postgres reports it as an error too): the server's reason is kept.
      await ended;
      const outcome = await transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false });
      expect(outcome).toEqual({ status: 'rolled_back', reason: 'connection_lost', error: transaction.signal.reason });
    } finally {
      await close();
    }
  });

  it('commit answers rolled_back (aborted) when COMMIT itself fails on a deferred constraint: nothing of it is kept', async () => {
    const { pool, table, store, close } = await storeOn();
    const checked = `${table}_checked`;
    await pool.query(deferredUniqueSql(checked));
    try {
      const id = randomUUID();
      const { transaction } = await acquire(store, claimOf(id));
      await transaction.client.query(`INSERT INTO ${checked} (v) VALUES (1), (1)`);
      const outcome = await transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false });
      expect(outcome).toMatchObject({ status: 'rolled_back', reason: 'aborted', error: { code: '23505' } });
      expect((await pool.query(`SELECT * FROM ${checked}`)).rows).toEqual([]);
      const next = await acquire(store, claimOf(id));
      await next.transaction.rollback();
    } finally {
      await pool.query(`DROP TABLE IF EXISTS ${checked}`);
      await close();
    }
  });

  it('commit answers unknown when COMMIT gets no answer in time, and a late error of that connection is ignored', async () => {
    const { pool, table, store, close } = await storeOn({ operationTimeoutMs: 300 });
    const slow = `${table}_slow`;
    await pool.query(`
      CREATE TABLE ${slow} (v int);
      CREATE FUNCTION ${slow}_sleep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER sleep AFTER INSERT ON ${slow} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${slow}_sleep();`);
    try {
      const { transaction } = await acquire(store);
      const { client } = transaction;
      await client.query(`INSERT INTO ${slow} (v) VALUES (1)`);
      const outcome = await transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false });
      expect(outcome).toMatchObject({ status: 'unknown' });
      expect(String((outcome as { error: unknown }).error)).toMatch(/postgres got no answer within 300 ms \(operationTimeoutMs\)/);
      // The connection was closed; a socket error it reports now must not crash the process.
      expect(() => client.emit('error', new Error('late socket error'))).not.toThrow();
    } finally {
      await pool.query(`DROP TABLE IF EXISTS ${slow}; DROP FUNCTION IF EXISTS ${slow}_sleep`);
      await close();
    }
  });

  it('closes a connection that breaks as its ROLLBACK is sent, instead of keeping its pool slot', async () => {
    const { pool, store, close } = await storeOn({}, { max: 1 });
    try {
      const { transaction } = await acquire(store);
      // node-postgres' socket, cut under it: the ROLLBACK goes out on a dead connection.
      (transaction.client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      await transaction.rollback();
      expect(pool.totalCount).toBe(0);
      const next = await acquire(store);
      await next.transaction.rollback();
    } finally {
      await close();
    }
  });
});


// Each test here stalls its own PostgreSQL server: never the shared one.
describe.runIf(postgresTarget().canSpawn)('transactional mode when PostgreSQL stalls', () => {
  const operationTimeoutMs = 300;
  let server: PostgresServer;
  let pool: pg.Pool;
  let store: PostgresStore;
  let stop: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    ({ server, pool, store, stop } = await storeOnOwnServer('stall', { operationTimeoutMs }));
  });
  afterEach(() => {
    server.resume();
  });
  afterAll(() => stop?.());

  it('bounds begin by operationTimeoutMs from its start: the wait for a pooled connection counts', async () => {
    // One connection, busy for 70% of the bound when begin asks for it; the server stalls as it is given back.
    const busyPool = new pg.Pool({ connectionString: server.url, max: 1 });
    busyPool.on('error', () => {});
    const busyStore = createPostgresStore({ pool: busyPool, table: 'stall', operationTimeoutMs: 1000, sweepIntervalMs: 0 });
    const busy = await busyPool.connect();
    try {
      const started = performance.now();
      const beginning = rejectionOf(busyStore.transactional.begin(claimOf()));
      await new Promise((resolve) => setTimeout(resolve, 700));
      server.pause();
      busy.release();
      const error = await beginning;
      const elapsed = performance.now() - started;
      expect(isIdempotencyError(error) && error.code, String(error)).toBe('STORE_UNAVAILABLE');
      expect(String((error as Error).message)).toMatch(/no answer within 1000 ms \(operationTimeoutMs\)/);
      // 1000 ms from the start, not 1000 from the checkout (1700).
      expect(elapsed).toBeGreaterThanOrEqual(990);
      expect(elapsed).toBeLessThan(1450);
    } finally {
      server.resume();
      await busyStore.close();
      await busyPool.end();
    }
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

