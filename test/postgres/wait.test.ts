import { randomUUID } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { createServer } from 'node:net';
import pg from 'pg';
import { isIdempotencyError } from '../../src/errors';
import { afterEach, describe, expect, it, vi } from 'vitest';
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
  const open = async (options: Partial<PostgresStoreOptions> = {}, poolConfig: pg.PoolConfig = {}) => {
    const pool = connectPool(poolConfig);
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

  /**
   * Backends still listening for the table (its LISTEN is their last query), seen from a pool of its own: a
   * connection handed back to the store's pool could run this very query and hide itself.
   */
  const listeners = async (table: string): Promise<number> => {
    const observer = connectPool({ max: 1 });
    try {
      const { rows } = await observer.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = $1', [
        `LISTEN "${table}"`,
      ]);
      return rows[0]?.n ?? 0;
    } finally {
      await observer.end();
    }
  };
  /** Polls for up to 3 s: well within the pool's 10 s idle timeout, which would close a pooled connection too. */
  const untilZero = async (count: () => Promise<number>): Promise<number> => {
    const deadline = Date.now() + 3_000;
    let n = await count();
    while (n > 0 && Date.now() < deadline) {
      await sleep(10);
      n = await count();
    }
    return n;
  };

  it('wakes a waiter at the lease end even when it polls rarely (the owner crashed)', async () => {
    const { store } = await open({ waitPollIntervalMs: 600_000 });
    const id = randomUUID();
    await store.claim({ id, token: 'crashed', fingerprint: '', partition: 'p', lockTtlMs: 300 });
    const started = Date.now();
    expect(await store.wait({ id, timeoutMs: 8_000 })).toEqual({ status: 'settled' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('keeps the other waiters of a key waiting when one of them gives up', async () => {
    const { store, counts } = await open({ waitPollIntervalMs: 600_000 });
    const id = randomUUID();
    await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 600_000 });
    const controller = new AbortController();
    const leaving = store.wait({ id, timeoutMs: 20_000, signal: controller.signal });
    const staying = [store.wait({ id, timeoutMs: 20_000 }), store.wait({ id, timeoutMs: 20_000 })];
    for (let i = 0; i < 200 && (counts.get('peek') ?? 0) === 0; i++) await sleep(5);
    controller.abort();
    expect(await leaving).toEqual({ status: 'timeout' });
    await store.complete({ id, token: 'owner', result: 'r', ttlMs: 60_000 });
    expect(await Promise.all(staying)).toEqual([{ status: 'settled' }, { status: 'settled' }]);
  });

  it('answers timeout at once, without a read, to a wait whose signal was aborted before it began', async () => {
    const { store, counts } = await open();
    const id = randomUUID();
    await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 600_000 });
    const started = Date.now();
    expect(await store.wait({ id, timeoutMs: 20_000, signal: AbortSignal.abort() })).toEqual({ status: 'timeout' });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(counts.get('LISTEN')).toBeUndefined();
    expect(counts.get('peek')).toBeUndefined();
  });

  it('keeps waiting through notifications of other keys, and wakes on its own', async () => {
    // Nothing but a notification can wake the waiter of a: no poll, no lease end in sight.
    const { store, counts } = await open({ waitPollIntervalMs: 600_000 });
    const [a, b] = [randomUUID(), randomUUID()];
    for (const id of [a, b]) await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 600_000 });
    let settled = false;
    const waiting = store.wait({ id: a, timeoutMs: 8_000 }).then((outcome) => {
      settled = true;
      return outcome;
    });
    for (let i = 0; i < 200 && (counts.get('peek') ?? 0) === 0; i++) await sleep(5);
    await store.complete({ id: b, token: 'owner', result: 'r', ttlMs: 60_000 });
    await store.release({ id: b, token: 'owner' });
    await sleep(50);
    expect(settled).toBe(false);
    await store.complete({ id: a, token: 'owner', result: 'r', ttlMs: 60_000 });
    expect(await waiting).toEqual({ status: 'settled' });
    expect(counts.get('LISTEN')).toBe(1);
  });

  it('ends every wait as timeout at close, and closes the listening connection instead of pooling it', async () => {
    const { store, counts, table } = await open({ waitPollIntervalMs: 600_000 });
    const [a, b] = [randomUUID(), randomUUID()];
    for (const id of [a, b]) await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 600_000 });
    const waiting = Promise.all([store.wait({ id: a, timeoutMs: 20_000 }), store.wait({ id: b, timeoutMs: 20_000 })]);
    for (let i = 0; i < 200 && (counts.get('peek') ?? 0) < 2; i++) await sleep(5);
    expect(await listeners(table)).toBe(1);
    const closedAt = Date.now();
    await store.close();
    expect(await waiting).toEqual([{ status: 'timeout' }, { status: 'timeout' }]);
    expect(Date.now() - closedAt).toBeLessThan(5_000); // at close, not at their own timeout
    // Destroyed, not handed back to the pool still listening: its backend goes away.
    expect(await untilZero(() => listeners(table))).toBe(0);
  });

  it('closes the listening connection a minute after the last wait ends, and listens again for the next wait', async () => {
    const { store, counts, table } = await open({ waitPollIntervalMs: 600_000 });
    const [a, b] = [randomUUID(), randomUUID()];
    for (const id of [a, b]) await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 600_000 });
    const first = store.wait({ id: a, timeoutMs: 20_000 });
    for (let i = 0; i < 200 && (counts.get('peek') ?? 0) === 0; i++) await sleep(5);
    // The store's idle timer on a fake clock (set when the last wait ends); sockets stay real.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      await store.complete({ id: a, token: 'owner', result: 'r', ttlMs: 60_000 });
      expect(await first).toEqual({ status: 'settled' });
      vi.advanceTimersByTime(59_000);
      expect(await listeners(table)).toBe(1);
      vi.advanceTimersByTime(1_000);
    } finally {
      vi.useRealTimers();
    }
    expect(await untilZero(() => listeners(table))).toBe(0);
    const second = store.wait({ id: b, timeoutMs: 20_000 });
    for (let i = 0; i < 200 && (counts.get('peek') ?? 0) < 2; i++) await sleep(5);
    await store.release({ id: b, token: 'owner' });
    expect(await second).toEqual({ status: 'settled' });
    expect(counts.get('LISTEN')).toBe(2);
  });

  it('keeps listening while any wait remains, however long ago another wait ended', async () => {
    const { store, counts, table } = await open({ waitPollIntervalMs: 600_000 });
    const [a, b] = [randomUUID(), randomUUID()];
    for (const id of [a, b]) await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 600_000 });
    const first = store.wait({ id: a, timeoutMs: 20_000 });
    const second = store.wait({ id: b, timeoutMs: 20_000 });
    for (let i = 0; i < 200 && (counts.get('peek') ?? 0) < 2; i++) await sleep(5);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      await store.complete({ id: a, token: 'owner', result: 'r', ttlMs: 60_000 });
      expect(await first).toEqual({ status: 'settled' });
      vi.advanceTimersByTime(120_000);
    } finally {
      vi.useRealTimers();
    }
    expect(await listeners(table)).toBe(1);
    // Still woken by NOTIFY (nothing else would: no poll, no lease end in sight).
    await store.release({ id: b, token: 'owner' });
    expect(await second).toEqual({ status: 'settled' });
  });

  it('listens again on a new connection once the listening one is lost, so later completions wake by NOTIFY', async () => {
    const { store, pool, counts, table } = await open({ waitPollIntervalMs: 600_000 });
    const [a, b] = [randomUUID(), randomUUID()];
    for (const id of [a, b]) await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 600_000 });
    void store.wait({ id: a, timeoutMs: 20_000 });
    for (let i = 0; i < 200 && (counts.get('peek') ?? 0) === 0; i++) await sleep(5);
    const connections = pool.totalCount;
    const observer = connectPool({ max: 1 });
    await observer
      .query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1', [`LISTEN "${table}"`])
      .finally(() => observer.end());
    // The store has seen its listening connection go once the pool no longer counts it.
    for (let i = 0; i < 300 && pool.totalCount >= connections; i++) await sleep(10);
    expect(pool.totalCount).toBe(connections - 1);
    const second = store.wait({ id: b, timeoutMs: 8_000 });
    for (let i = 0; i < 200 && (counts.get('peek') ?? 0) < 2; i++) await sleep(5);
    await store.complete({ id: b, token: 'owner', result: 'r', ttlMs: 60_000 });
    expect(await second).toEqual({ status: 'settled' });
    expect(counts.get('LISTEN')).toBe(2);
  });

  it("leaves no listener on the caller's signal once the wait is over", async () => {
    const { store } = await open();
    const id = randomUUID();
    const controller = new AbortController();
    expect(await store.wait({ id, timeoutMs: 10_000, signal: controller.signal })).toEqual({ status: 'settled' });
    await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 600_000 });
    const waiting = store.wait({ id, timeoutMs: 10_000, signal: controller.signal });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    await store.release({ id, token: 'owner' });
    expect(await waiting).toEqual({ status: 'settled' });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('stops reading a key once its last waiter gives up', async () => {
    const { store, counts } = await open({ waitPollIntervalMs: 50 });
    const id = randomUUID();
    await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 600_000 });
    const controller = new AbortController();
    const waiting = store.wait({ id, timeoutMs: 20_000, signal: controller.signal });
    for (let i = 0; i < 200 && (counts.get('peek') ?? 0) < 2; i++) await sleep(5);
    controller.abort();
    expect(await waiting).toEqual({ status: 'timeout' });
    await sleep(100); // a read in flight at the abort lands
    const reads = counts.get('peek');
    await sleep(300); // six poll intervals
    expect(counts.get('peek')).toBe(reads);
  });

  it('never listens again after close, when close came during a read', async () => {
    // Two connections: the listening one, and one the test holds, so the waiter's first read waits for it.
    const { store, pool, counts } = await open({ waitPollIntervalMs: 10 }, { max: 2 });
    const id = randomUUID();
    await store.claim({ id, token: 'owner', fingerprint: '', partition: 'p', lockTtlMs: 600_000 });
    const held = await pool.connect();
    const waiting = store.wait({ id, timeoutMs: 20_000 });
    for (let i = 0; i < 400 && pool.waitingCount === 0; i++) await sleep(5);
    expect(pool.waitingCount).toBe(1);
    await store.close();
    expect(await waiting).toEqual({ status: 'timeout' });
    // The read goes out now and finds the key still held: the store is closed, so no poll and no new LISTEN.
    held.release();
    for (let i = 0; i < 400 && (counts.get('peek') ?? 0) === 0; i++) await sleep(5);
    await sleep(200); // twenty poll intervals
    expect(counts.get('peek')).toBe(1);
    expect(counts.get('LISTEN')).toBe(1);
  });

  it('gives up a connection that comes after its LISTEN timed out: the pool slot is not lost', async () => {
    const { store, pool } = await open({ operationTimeoutMs: 200 }, { max: 1 });
    const held = await pool.connect();
    const error = await store.wait({ id: randomUUID(), timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(isIdempotencyError(error) && error.code).toBe('STORE_UNAVAILABLE');
    expect((error as Error).message).toBe('trpc-idempotency: postgres listen got no answer within 200 ms (operationTimeoutMs)');
    // The pool hands the connection to the listen that gave up; the next call still gets it.
    held.release();
    for (let i = 0; i < 400 && pool.waitingCount > 0; i++) await sleep(5);
    expect(pool.waitingCount).toBe(0);
    const claimed = await store.claim({ id: randomUUID(), token: 't', fingerprint: '', partition: 'p', lockTtlMs: 10_000 });
    expect(claimed.status).toBe('acquired');
  });

  it('fails a wait at once with STORE_UNAVAILABLE, naming the cause, when PostgreSQL refuses connections', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as { port: number };
    await new Promise((resolve) => closed.close(resolve));
    const pool = new pg.Pool({ host: '127.0.0.1', port, user: 'postgres', database: 'test' });
    pool.on('error', () => {});
    const store = createPostgresStore({ pool, operationTimeoutMs: 5_000, sweepIntervalMs: 0 });
    try {
      const started = Date.now();
      const error = await store.wait({ id: 'k', timeoutMs: 10_000 }).catch((e: unknown) => e);
      expect(isIdempotencyError(error) && error.code).toBe('STORE_UNAVAILABLE');
      expect((error as Error).message).toContain('postgres listen failed');
      expect(Date.now() - started).toBeLessThan(2_500);
    } finally {
      await store.close();
      await pool.end();
    }
  });
});
