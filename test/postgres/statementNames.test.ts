import { describe, expect, it } from 'vitest';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import { connectPool, dropTable, postgresTarget } from '../helpers/postgresClients';

// node-postgres names the store's prepared statements; PostgreSQL keeps 63 bytes of a name. Two stores on one
// pool whose table names differ only past that point must not share a prepared statement.
describe('createPostgresStore prepared statement names', () => {
  it('keeps two stores with long table names apart on one connection, in every statement', async () => {
    const { schema } = postgresTarget();
    // Valid names (each part at most 48 characters, 63 in all) that differ only in their last character.
    const long = 'x'.repeat(63 - schema.length - 1 - 'idem__1'.length);
    const tables = [`${schema}.idem_${long}_1`, `${schema}.idem_${long}_2`];
    const pool = connectPool({ max: 1 }); // one connection: both stores prepare their statements on it
    const warnings: unknown[] = [];
    const report = console.error; // pg-protocol's serializer reports a long name there
    console.error = (...args: unknown[]) => void warnings.push(args);
    try {
      for (const table of tables) await createPostgresTable(pool, table);
      const stores = tables.map((table) => createPostgresStore({ pool, table, sweepIntervalMs: 0 }));
      const claim = { id: 'k', partition: 'p', token: 't', fingerprint: 'f', lockTtlMs: 10_000 };
      for (const store of stores) expect((await store.claim(claim)).status).toBe('acquired');
      for (const table of tables) {
        const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
        expect(rows[0]?.n).toBe(1);
      }
      // Every statement of both stores, each prepared on the one connection.
      for (const store of stores) {
        expect(await store.renew({ id: 'k', token: 't', lockTtlMs: 10_000 })).toEqual({ status: 'ok' });
        expect(await store.recordStep({ id: 'k', token: 't', name: 's', text: 'x', keepMs: 10_000 })).toEqual({ status: 'ok' });
        expect(await store.release({ id: 'k', token: 't' })).toEqual({ status: 'ok' });
        expect((await store.claim({ ...claim, token: 'u' })).status).toBe('acquired');
        expect(await store.complete({ id: 'k', token: 'u', result: 'r', ttlMs: 10_000 })).toEqual({ status: 'ok' });
        expect(await store.sweep()).toBe(0);
      }
      for (const store of stores) expect(await store.claim(claim)).toEqual({ status: 'completed', result: 'r' });
      // node-postgres warns about every name past 63 characters ("can cause conflicts and silent errors").
      expect(warnings).toEqual([]);
      for (const store of stores) await store.close();
    } finally {
      console.error = report;
      for (const table of tables) await dropTable(pool, table).catch(() => {});
      await pool.end();
    }
  });
});
