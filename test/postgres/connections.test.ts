import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IdempotencyError } from '../../src/errors';
import { isIdempotencyError } from '../../src/errors';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import { connectPool, dropTable, postgresTarget, randomTable } from '../helpers/postgresClients';

/** The error `call` rejects with (fails the test when it resolves). */
const rejection = async (call: () => Promise<unknown>): Promise<unknown> =>
  call().then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (error: unknown) => error,
  );

const unavailable = (error: unknown): IdempotencyError => {
  expect(isIdempotencyError(error) && error.code, String(error)).toBe('STORE_UNAVAILABLE');
  return error as IdempotencyError;
};

/** A TCP proxy to the test database whose connections the test can cut, as a network failure would. */
const startProxy = async (): Promise<{ url: string; cut(): void; close(): Promise<void> }> => {
  const target = new URL(postgresTarget().url);
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  };
  const server = net.createServer((inbound) => {
    const outbound = net.connect(Number(target.port || 5432), target.hostname);
    track(inbound);
    track(outbound);
    inbound.pipe(outbound).pipe(inbound);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = new URL(target.href);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as AddressInfo).port);
  return {
    url: url.href,
    cut: () => {
      for (const socket of sockets) socket.resetAndDestroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
};

describe('createPostgresStore connections', () => {
  let pool: pg.Pool;
  const table = randomTable();
  const claimOf = (id: string, token: string = randomUUID()) => ({ id, token, fingerprint: '', partition: 'p', lockTtlMs: 10_000 });

  beforeAll(async () => {
    pool = connectPool();
    await createPostgresTable(pool, table);
  });
  afterAll(async () => {
    await dropTable(pool, table);
    await pool.end();
  });

  it('never runs a call that timed out waiting for a pooled connection once one frees up', async () => {
    const small = connectPool({ max: 1 });
    const store = createPostgresStore({ pool: small, table, operationTimeoutMs: 200, sweepIntervalMs: 0 });
    const held = await small.connect(); // the pool's only connection, busy elsewhere
    const id = randomUUID();
    try {
      const error = unavailable(await rejection(() => store.claim(claimOf(id))));
      expect(error.message).toContain('operationTimeoutMs');
      expect(error.retryAfterMs).toBe(200);
    } finally {
      held.release();
    }
    try {
      // This claim queues behind the timed-out one: the key is still free, nobody holds a lease on it.
      expect(await store.claim(claimOf(id))).toMatchObject({ status: 'acquired', takeover: false });
      expect(small.totalCount).toBe(1);
    } finally {
      await store.close();
      await small.end();
    }
  });

  it('fails at once, keeping the cause, when PostgreSQL refuses connections', async () => {
    const probe = net.createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const refused = new pg.Pool({ connectionString: `postgresql://postgres@127.0.0.1:${port}/test` });
    refused.on('error', () => {});
    const store = createPostgresStore({ pool: refused, table, operationTimeoutMs: 20_000, sweepIntervalMs: 0 });
    try {
      const start = performance.now();
      const error = unavailable(await rejection(() => store.claim(claimOf(randomUUID()))));
      expect(performance.now() - start).toBeLessThan(5_000);
      expect((error.cause as { code?: unknown }).code).toBe('ECONNREFUSED');
      expect(error.message).toContain('ECONNREFUSED');
      // Not a missing table: no hint to create one.
      expect(error.message).not.toContain('createPostgresTable');
      expect(error.retryAfterMs).toBe(20_000);
    } finally {
      await store.close();
      await refused.end();
    }
  });

  it('fails at once when its connection drops mid-statement, without crashing the process, and goes on with a new one', async () => {
    const proxy = await startProxy();
    const proxied = new pg.Pool({ connectionString: proxy.url, max: 1 });
    proxied.on('error', () => {});
    const store = createPostgresStore({ pool: proxied, table, operationTimeoutMs: 20_000, sweepIntervalMs: 0 });
    const locker = await pool.connect();
    // node-postgres emits 'error' on a connection that breaks: unheard, it would end the process.
    const crashes: unknown[] = [];
    const onCrash = (error: unknown): void => void crashes.push(error);
    process.on('uncaughtException', onCrash);
    try {
      const id = randomUUID();
      expect((await store.claim(claimOf(id))).status).toBe('acquired');
      // A row lock held elsewhere keeps the next claim of this key waiting inside PostgreSQL.
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM ${table} WHERE id = $1 FOR UPDATE`, [id]);
      const start = performance.now();
      const blocked = rejection(() => store.claim(claimOf(id)));
      for (let i = 0; i < 200; i++) {
        const { rows } = await locker.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%claim_v1%'",
        );
        if (rows[0]?.n) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      proxy.cut();
      unavailable(await blocked);
      expect(performance.now() - start).toBeLessThan(5_000);
      await locker.query('ROLLBACK');
      expect((await store.claim(claimOf(randomUUID()))).status).toBe('acquired');
      expect(crashes).toEqual([]);
    } finally {
      process.off('uncaughtException', onCrash);
      await locker.query('ROLLBACK').catch(() => {});
      locker.release();
      await store.close();
      await proxied.end();
      await proxy.close();
    }
  });

  it('leaves no listener behind on a pooled connection, however many calls it serves', async () => {
    const single = connectPool({ max: 1 });
    const store = createPostgresStore({ pool: single, table, sweepIntervalMs: 0 });
    const listeners = async (): Promise<number> => {
      const client = await single.connect();
      const n = client.listenerCount('error');
      client.release();
      return n;
    };
    try {
      await store.claim(claimOf(randomUUID()));
      const after1 = await listeners();
      for (let i = 0; i < 20; i++) await store.claim(claimOf(randomUUID()));
      expect(await listeners()).toBe(after1);
    } finally {
      await store.close();
      await single.end();
    }
  });

  it('names the failing call, and createPostgresTable, when the table is gone but its functions are left', async () => {
    const dropped = randomTable();
    await createPostgresTable(pool, dropped);
    await pool.query(`DROP TABLE ${dropped} CASCADE`);
    const store = createPostgresStore({ pool, table: dropped, sweepIntervalMs: 0 });
    const id = randomUUID();
    const token = randomUUID();
    try {
      for (const [op, call] of [
        ['claim', () => store.claim(claimOf(id, token))],
        ['renew', () => store.renew({ id, token, lockTtlMs: 10_000 })],
        ['complete', () => store.complete({ id, token, result: 'r', ttlMs: 10_000 })],
        ['release', () => store.release({ id, token })],
        ['step', () => store.recordStep({ id, token, name: 's', text: 'x', keepMs: 10_000 })],
        ['peek', () => store.wait({ id, timeoutMs: 10_000 })],
        ['sweep', () => store.sweep()],
      ] as const) {
        const error = unavailable(await rejection(call));
        expect(error.message).toContain(`postgres ${op} failed: `);
        expect(error.message).toContain('createPostgresTable');
      }
    } finally {
      await store.close();
      await dropTable(pool, dropped);
    }
  });

  it('reports a reply its functions never give as a broken invariant, not as an outage', async () => {
    const foreign = randomTable();
    await createPostgresTable(pool, foreign);
    // A function of another version, or edited by hand, that answers NULL.
    await pool.query(`DROP FUNCTION ${foreign}_claim_v1`);
    await pool.query(
      `CREATE FUNCTION ${foreign}_claim_v1(text, text, text, text, bigint, bigint) RETURNS text LANGUAGE sql AS 'SELECT NULL::text'`,
    );
    const store = createPostgresStore({ pool, table: foreign, sweepIntervalMs: 0 });
    try {
      const error = await rejection(() => store.claim(claimOf(randomUUID())));
      expect(isIdempotencyError(error)).toBe(false);
      expect((error as Error).message).toContain('unexpected reply to the claim statement');
    } finally {
      await store.close();
      await dropTable(pool, foreign);
    }
  });
});
