import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import { createPostgresStore, createPostgresTable, postgresStoreDefaults, postgresTableSql } from '../../src/stores/postgres';
import type { PostgresStoreOptions } from '../../src/stores/postgres';
import { connectPool, dropTable, randomTable } from '../helpers/postgresClients';
import { thrownBy } from '../server/helpers';

describe('createPostgresStore options', () => {
  const pool = { connect: () => Promise.reject(new Error('unused')), query: () => Promise.reject(new Error('unused')) } as unknown as pg.Pool;

  it.each([
    ['pool', { pool: undefined }],
    ['pool', { pool: {} }],
    ['table', { table: 'Bad-Name' }],
    ['table', { table: 'a.b.c' }],
    ['table', { table: 'x; DROP TABLE users' }],
    ['table', { table: `t${'x'.repeat(60)}` }],
    ['operationTimeoutMs', { operationTimeoutMs: 0 }],
    ['leaseGraceMs', { leaseGraceMs: -1 }],
    ['releasedTtlMs', { releasedTtlMs: Number.NaN }],
    ['waitPollIntervalMs', { waitPollIntervalMs: 1 }],
    ['sweepIntervalMs', { sweepIntervalMs: -1 }],
    ['sweepBatchSize', { sweepBatchSize: 0 }],
  ])('rejects a bad %s at creation, naming it', (name, override) => {
    const error = thrownBy(() => createPostgresStore({ pool, ...override } as unknown as PostgresStoreOptions));
    expect(isIdempotencyError(error) && error.code).toBe('INVALID_OPTION');
    expect((error as Error).message).toContain(`createPostgresStore: option "${name}"`);
  });

  it('documents each default once, in one object, and matches the JSDoc @default tags', () => {
    const source = readFileSync(new URL('../../src/stores/postgres/options.ts', import.meta.url), 'utf8');
    const tags = [...source.matchAll(/@default (.+?)(?: \*\/)?$/gm)].map((m) => m[1]?.trim());
    expect(tags).toEqual(
      Object.values(postgresStoreDefaults).map((value) => (typeof value === 'string' ? `'${value}'` : String(value))),
    );
  });

  it('rejects a non-positive lease or TTL per call', async () => {
    const store = createPostgresStore({ pool, sweepIntervalMs: 0 });
    await expect(store.claim({ id: 'x', token: 't', fingerprint: '', partition: 'p', lockTtlMs: 0 })).rejects.toMatchObject({
      code: 'INVALID_OPTION',
    });
    await expect(store.complete({ id: 'x', token: 't', result: '', ttlMs: Number.NaN })).rejects.toMatchObject({
      code: 'INVALID_OPTION',
    });
    await store.close();
  });
});

describe('postgresTableSql and createPostgresTable', () => {
  it('quotes and qualifies every name, and leaves no placeholder behind', () => {
    const sql = postgresTableSql('app.idem');
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "app"."idem"');
    expect(sql).toContain('"app"."idem_claim_v1"');
    expect(sql).toContain("pg_notify('app.idem', p_id)");
    expect(sql).not.toMatch(/\{\{/);
    expect(postgresTableSql()).toContain('"trpc_idempotency"');
  });

  // Not under Stryker (STRYKER_MUTATOR_WORKER is set in its workers): mutating sqlFiles.ts instruments the file this
  // compares byte for byte with its SQL sources.
  it.skipIf(process.env.STRYKER_MUTATOR_WORKER !== undefined)('is up to date with src/stores/postgres/sql/*.sql (run `npm run gen:sql`)', () => {
    const script = fileURLToPath(new URL('../../scripts/genSql.mjs', import.meta.url));
    const check = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('creates the table from four processes at once, and again, without an error', async () => {
    const table = randomTable();
    const pools = Array.from({ length: 4 }, () => connectPool({ max: 1 }));
    try {
      await Promise.all(pools.map((p) => createPostgresTable(p, table)));
      await createPostgresTable(pools[0] as pg.Pool, table);
      const store = createPostgresStore({ pool: pools[0] as pg.Pool, table, sweepIntervalMs: 0 });
      expect((await store.claim({ id: 'a', token: 't', fingerprint: '', partition: 'p', lockTtlMs: 1000 })).status).toBe('acquired');
      await store.close();
    } finally {
      await dropTable(pools[0] as pg.Pool, table);
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('answers STORE_UNAVAILABLE naming createPostgresTable when the table was never created', async () => {
    const pool = connectPool();
    const store = createPostgresStore({ pool, table: randomTable(), sweepIntervalMs: 0 });
    try {
      const error = await store.claim({ id: 'a', token: 't', fingerprint: '', partition: 'p', lockTtlMs: 1000 }).catch((e: unknown) => e);
      expect(isIdempotencyError(error) && error.code).toBe('STORE_UNAVAILABLE');
      expect((error as Error).message).toContain('createPostgresTable');
    } finally {
      await store.close();
      await pool.end();
    }
  });
});
