import type { Pool } from 'pg';
import { DEFAULTS } from '../../constants';
import { IdempotencyError } from '../../errors';
import type { TableNames } from './tableNames';
import { tableNames } from './tableNames';

export interface PostgresStoreOptions {
  /**
   * Your node-postgres `Pool` (pg 8). The store borrows a connection per call and never ends the pool. Only
   * `wait()` holds one connection of it (for `LISTEN`), lazily, while something waits and for a minute after.
   * Give the pool an `'error'` listener, as node-postgres asks: an idle connection that breaks (the database
   * restarts) otherwise crashes the process.
   */
  pool: Pool;
  /**
   * The table, optionally schema-qualified (`'app.idempotency'`): lowercase letters, digits and `_`. Create it
   * with `createPostgresTable(pool, table)` or run `postgresTableSql(table)` in a migration.
   * @default 'trpc_idempotency'
   */
  table?: string;
  /**
   * Upper bound on every store call, pool checkout included. A call that gets no answer in time fails with
   * `IdempotencyError('STORE_UNAVAILABLE')` and its connection is closed, not returned to the pool. Never
   * retried internally.
   * @default 2000
   */
  operationTimeoutMs?: number;
  /**
   * How long an in-progress record outlives its lease, in ms. Until someone takes the key over, the owner can
   * still complete after its lease ran out; after lease + grace the row counts as absent and the sweep deletes it.
   * @default 60000
   */
  leaseGraceMs?: number;
  /** How long a released record is kept (a repeated release still answers ok), in ms. @default 60000 */
  releasedTtlMs?: number;
  /**
   * While waiting, how often the record is re-read in case a notification was missed (the listening connection
   * broke, or a pooler that drops `LISTEN` sits in between), in ms. Completion and release are announced with
   * `NOTIFY`; lease expiry is watched with a timer at the lease end.
   * @default 1000
   */
  waitPollIntervalMs?: number;
  /**
   * How often expired rows are deleted, in ms (`0`: never, e.g. when a cron job calls `store.sweep()`). Expired
   * rows never read as live whether or not they are deleted yet.
   * @default 60000
   */
  sweepIntervalMs?: number;
  /** Rows deleted per statement by the sweep, so no statement holds many row locks for long. @default 1000 */
  sweepBatchSize?: number;
  /**
   * Transactional mode (`idempotent({ transactional: true })`): the isolation level of the procedure's
   * transaction. A serialization failure (or deadlock) under it is answered SERVICE_UNAVAILABLE with nothing
   * committed: the client retries, the procedure is never re-run silently on the server.
   * @default 'read committed'
   */
  isolationLevel?: 'read committed' | 'repeatable read' | 'serializable';
  /**
   * Transactional mode: `statement_timeout` for the procedure's statements, in ms, set with `SET LOCAL` semantics
   * (the pooled connection's next user gets its own setting back). `0` keeps the session's setting.
   * @default 0
   */
  transactionStatementTimeoutMs?: number;
  /**
   * Transactional mode: `idle_in_transaction_session_timeout`, in ms, also local to the transaction. A process
   * that stalls or is cut off mid-procedure holds its key (and its row locks) until the server ends the session
   * after this long idle; everything of it then rolls back and the key is free. Keep it above the longest pause
   * of a procedure between two queries (a call to another service). `0` keeps the session's setting.
   * @default 60000
   */
  transactionIdleTimeoutMs?: number;
}

export type ResolvedPostgresStoreOptions = Required<Omit<PostgresStoreOptions, 'table'>> & { table: TableNames };

/** The table used when no `table` option is given. */
export const DEFAULT_TABLE = 'trpc_idempotency';

export const postgresStoreDefaults = {
  table: DEFAULT_TABLE,
  operationTimeoutMs: 2000,
  leaseGraceMs: DEFAULTS.leaseGraceMs,
  releasedTtlMs: DEFAULTS.releasedTtlMs,
  waitPollIntervalMs: 1000,
  sweepIntervalMs: 60_000,
  sweepBatchSize: 1000,
  isolationLevel: 'read committed',
  transactionStatementTimeoutMs: 0,
  transactionIdleTimeoutMs: 60_000,
} as const satisfies Omit<Required<PostgresStoreOptions>, 'pool'>;

/** Defaults merged and every option checked once, at creation. */
export const resolvePostgresStoreOptions = (options: PostgresStoreOptions): ResolvedPostgresStoreOptions => {
  const merged = { ...postgresStoreDefaults, ...definedOnly(options) };
  const { pool } = merged;
  if (typeof pool !== 'object' || pool === null || typeof pool.connect !== 'function' || typeof pool.query !== 'function') {
    throw invalid('pool', 'must be a node-postgres (pg 8) Pool');
  }
  checkInteger('operationTimeoutMs', merged.operationTimeoutMs, 1);
  checkInteger('leaseGraceMs', merged.leaseGraceMs, 0);
  checkInteger('releasedTtlMs', merged.releasedTtlMs, 1);
  checkInteger('waitPollIntervalMs', merged.waitPollIntervalMs, 10);
  checkInteger('sweepIntervalMs', merged.sweepIntervalMs, 0);
  checkInteger('sweepBatchSize', merged.sweepBatchSize, 1);
  if (!ISOLATION_LEVELS.includes(merged.isolationLevel)) {
    throw invalid('isolationLevel', `must be one of ${ISOLATION_LEVELS.map((level) => `'${level}'`).join(', ')}, got ${String(merged.isolationLevel)}`);
  }
  checkInteger('transactionStatementTimeoutMs', merged.transactionStatementTimeoutMs, 0);
  checkInteger('transactionIdleTimeoutMs', merged.transactionIdleTimeoutMs, 0);
  return { ...merged, table: tableNames(merged.table, 'createPostgresStore') };
};

// ---- internal helpers ----

const ISOLATION_LEVELS: readonly unknown[] = ['read committed', 'repeatable read', 'serializable'];

const invalid = (name: string, rule: string): IdempotencyError =>
  new IdempotencyError('INVALID_OPTION', `createPostgresStore: option "${name}" ${rule}`);

const checkInteger = (name: string, value: unknown, min: number): void => {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw invalid(name, `must be an integer >= ${min}, got ${String(value)}`);
  }
};

const definedOnly = (options: PostgresStoreOptions): PostgresStoreOptions =>
  Object.fromEntries(Object.entries(options ?? {}).filter(([, value]) => value !== undefined)) as PostgresStoreOptions;
