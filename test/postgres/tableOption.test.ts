import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import { createPostgresStore, createPostgresTable, postgresTableSql } from '../../src/stores/postgres';
import type { PostgresStoreOptions } from '../../src/stores/postgres';
import { connectPool, dropTable, postgresTarget, randomTable } from '../helpers/postgresClients';
import { thrownBy } from '../server/helpers';

const pool = { connect: () => Promise.reject(new Error('unused')), query: () => Promise.reject(new Error('unused')) } as unknown as pg.Pool;
const create = (table: unknown): unknown => thrownBy(() => createPostgresStore({ pool, table } as unknown as PostgresStoreOptions));

// The table option's rules (docs: lowercase identifiers, each part at most 48 characters so the longest derived
// name, `<table>_tx_complete_v1`, fits PostgreSQL's 63; the whole name at most 63, since it is also the NOTIFY channel).
describe('the table option', () => {
  it.each([
    ['a part of 48 characters', 'x'.repeat(48)],
    ['a schema of 48 characters', `${'s'.repeat(48)}.idem`],
    ['a one-letter schema', 'x.idem'],
    ['63 characters in all', `${'s'.repeat(31)}.${'t'.repeat(31)}`],
  ])('accepts %s', (_case, table) => {
    expect(create(table)).toBeUndefined();
  });

  it.each([
    ['a table part of 49 characters', 'x'.repeat(49)],
    ['a schema part of 49 characters', `${'s'.repeat(49)}.idem`],
    ['64 characters in all, each part within 48', `${'s'.repeat(32)}.${'t'.repeat(31)}`],
    ['a value that is not a string, even one that reads as a valid name', ['idem']],
  ])('rejects %s at creation', (_case, table) => {
    const error = create(table);
    expect(isIdempotencyError(error) && error.code).toBe('INVALID_OPTION');
  });

  it('says in its error what a table name may be, and what it got', async () => {
    const message = (create('Idem') as Error).message;
    expect(message).toContain('createPostgresStore: option "table" must be a lowercase identifier');
    expect(message).toContain('at most 48 characters and 63 in all');
    expect(message).toContain('got "Idem"');
    expect((thrownBy(() => postgresTableSql('a.b.c')) as Error).message).toContain('postgresTableSql: option "table"');
    const rejected = createPostgresTable({ query: () => Promise.reject(new Error('unused')) }, 'a.b.c');
    await expect(rejected).rejects.toThrow('createPostgresTable: option "table"');
  });

  it('qualifies every name with a one-letter schema, and keeps the index name unqualified', () => {
    const sql = postgresTableSql('x.idem');
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "x"."idem"');
    expect(sql).toContain('CREATE INDEX IF NOT EXISTS "idem_expires_at" ON "x"."idem"');
    expect(sql).toContain('"x"."idem_claim_v1"');
    expect(sql).toContain("pg_notify('x.idem', p_id)");
  });

  it('gives each of two tables in one schema its own expiry index', async () => {
    const db = connectPool();
    const tables = [randomTable(), randomTable()];
    try {
      for (const table of tables) await createPostgresTable(db, table);
      const { rows } = await db.query<{ tablename: string; indexdef: string }>(
        `SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = ANY($2) AND indexdef LIKE '%(expires_at)'`,
        [postgresTarget().schema, tables.map((table) => table.split('.')[1])],
      );
      expect(rows.map((row) => row.tablename).sort()).toEqual(tables.map((table) => table.split('.')[1]).sort());
    } finally {
      for (const table of tables) await dropTable(db, table).catch(() => {});
      await db.end();
    }
  });
});
