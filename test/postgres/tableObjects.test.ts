import { describe, expect, it } from 'vitest';
import { createPostgresTable } from '../../src/stores/postgres';
import { connectPool, dropTable, postgresTarget, randomTable } from '../helpers/postgresClients';

// Everything createPostgresTable makes is named after the table, in the table's schema (the SQL files' headers), so
// an operator can find, review and drop a store's objects by name, and two stores in one schema never share one.
describe('createPostgresTable objects', () => {
  it('creates the table, its expiry index, its fencing sequence and its functions, each named after the table', async () => {
    const pool = connectPool();
    const { schema } = postgresTarget();
    const table = randomTable();
    const name = table.slice(schema.length + 1);
    try {
      await createPostgresTable(pool, table);
      const relations = await pool.query<{ relname: string; relkind: string }>(
        `SELECT relname, relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND relname LIKE $2 ORDER BY relname`,
        [schema, `${name}%`],
      );
      expect(relations.rows).toEqual([
        { relname: name, relkind: 'r' },
        { relname: `${name}_expires_at`, relkind: 'i' },
        { relname: `${name}_fence`, relkind: 'S' },
        { relname: `${name}_pkey`, relkind: 'i' },
      ]);
      const functions = await pool.query<{ proname: string }>(
        `SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = $1 AND proname LIKE $2 ORDER BY proname`,
        [schema, `${name}%`],
      );
      expect(functions.rows.map((row) => row.proname)).toEqual(
        ['check', 'claim', 'complete', 'peek', 'release', 'renew', 'step', 'sweep', 'tx_claim', 'tx_complete', 'tx_peek'].map(
          (fn) => `${name}_${fn}_v1`,
        ),
      );
    } finally {
      await dropTable(pool, table).catch(() => {});
      await pool.query(`DROP FUNCTION IF EXISTS ${table}_check_v1`).catch(() => {});
      await pool.end();
    }
  });
});
