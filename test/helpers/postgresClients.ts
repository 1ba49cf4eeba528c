import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { PoolConfig } from 'pg';
import { inject } from 'vitest';
import type { ProvidedPostgres } from './postgresSetup';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import type { PostgresStoreOptions } from '../../src/stores/postgres';
import type { StoreHarness } from '../../src/testing/storeConformance';
import { startPostgresServer } from './postgresServer';

/** The PostgreSQL the global setup found; throws its setup error (what to install) when there is none. */
export const postgresTarget = (): ProvidedPostgres & { url: string } => {
  const postgres = inject('postgres');
  if (!postgres.url) throw new Error(postgres.setupError ?? 'no PostgreSQL for the tests');
  return { ...postgres, url: postgres.url };
};

/** A pool on the test database, with the `'error'` listener node-postgres asks for. */
export const connectPool = (config: PoolConfig = {}): pg.Pool => {
  const pool = new pg.Pool({ connectionString: postgresTarget().url, max: 10, ...config });
  pool.on('error', () => {});
  return pool;
};

/** Pool settings that make this run's schema the only one unqualified names resolve to. */
export const inRunSchema = (): PoolConfig => ({ options: `-c search_path=${postgresTarget().schema}` });

/** A fresh table name in this run's schema, so tests never see each other's rows. */
export const randomTable = (schema: string = postgresTarget().schema): string =>
  `${schema}.t_${randomUUID().replace(/-/g, '').slice(0, 12)}`;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A Postgres store on a fresh table of the shared server, with a pool of its own; `close` drops the table. */
export const freshPostgresStore = async (options: Partial<PostgresStoreOptions> = {}, poolConfig: PoolConfig = {}) => {
  const pool = connectPool(poolConfig);
  const table = options.table ?? randomTable();
  await createPostgresTable(pool, table);
  const store = createPostgresStore({ pool, table, ...options });
  return {
    pool,
    table,
    store,
    close: async (): Promise<void> => {
      await store.close();
      await dropTable(pool, table);
      await pool.end();
    },
  };
};

/**
 * A store on `table` of a PostgreSQL server of its own, to stop or stall (never the shared one): the user's pool
 * with node-postgres defaults (max 4, no connection timeout) and the 'error' listener it asks for; no sweeps.
 * `stop` resumes the server if stalled, then closes the store, the pool and the server.
 */
export const storeOnOwnServer = async (table: string, options: Partial<PostgresStoreOptions> = {}) => {
  const server = await startPostgresServer();
  const pool = new pg.Pool({ connectionString: server.url, max: 4 });
  pool.on('error', () => {});
  await createPostgresTable(pool, table);
  const store = createPostgresStore({ pool, table, sweepIntervalMs: 0, ...options });
  return {
    server,
    pool,
    store,
    stop: async (): Promise<void> => {
      server.resume();
      await store.close();
      await pool.end().catch(() => {});
      await server.stop();
    },
  };
};

/** The conformance suite's harness over a Postgres store on a fresh table (created here, dropped at close). */
export const postgresStoreHarness = async (
  options: Partial<PostgresStoreOptions> = {},
  poolConfig: PoolConfig = {},
): Promise<StoreHarness> => {
  const { store, close } = await freshPostgresStore(options, poolConfig);
  // A real database has a real clock: `advance` is a real wait.
  return { store, advance: sleep, close };
};

/** Drops a store's table and everything created with it (sequence and functions). */
export const dropTable = async (pool: pg.Pool, table: string): Promise<void> => {
  const functions = ['claim', 'renew', 'complete', 'release', 'step', 'peek', 'sweep', 'tx_claim', 'tx_complete', 'tx_peek'].map((name) => `${table}_${name}_v1`);
  await pool.query(
    [
      ...functions.map((fn) => `DROP FUNCTION IF EXISTS ${fn}`),
      `DROP TABLE IF EXISTS ${table} CASCADE`,
      `DROP SEQUENCE IF EXISTS ${table}_fence`,
    ].join(';\n'),
  );
};
