import type { Pool } from 'pg';
import type { TableNames } from './tableNames';
import { DEFAULT_TABLE } from './options';
import {
  claimSql,
  completeSql,
  peekSql,
  releaseSql,
  renewSql,
  stepSql,
  sweepSql,
  tableSql,
  txClaimSql,
  txCompleteSql,
  txPeekSql,
} from './sqlFiles';
import { tableNames } from './tableNames';

/**
 * The SQL that creates a store's table and everything it needs (expiry index, fencing sequence, functions), for
 * your migration tool. Idempotent: every statement is `IF NOT EXISTS` or `OR REPLACE`. Schema version 1.
 *
 * @example
 * // in a migration
 * await db.query(postgresTableSql('trpc_idempotency'));
 */
export const postgresTableSql = (table: string = DEFAULT_TABLE): string => renderSchema(tableNames(table, 'postgresTableSql'));

/**
 * Creates the table (and its index, sequence and functions) when missing, for apps without a migration tool.
 * Safe to run at every start, from several processes at once: one transaction under an advisory lock.
 */
export const createPostgresTable = async (pool: Pick<Pool, 'query'>, table: string = DEFAULT_TABLE): Promise<void> => {
  const names = tableNames(table, 'createPostgresTable');
  // One simple-protocol query string: the statements run in one implicit transaction, in one round trip. The
  // lock keeps two processes from replacing the same function at once ("tuple concurrently updated").
  await pool.query(
    `SELECT pg_advisory_xact_lock(hashtext(${literal(`trpc-idempotency:${names.table}`)}));\n${renderSchema(names)}`,
  );
};

/** Fills the SQL files' placeholders for one table. */
export const renderSchema = (names: TableNames): string =>
  [tableSql, stepSql, claimSql, renewSql, completeSql, releaseSql, peekSql, sweepSql, txClaimSql, txCompleteSql, txPeekSql]
    .map((sql) => sql.replace(/\{\{(\w+)\}\}/g, (_match, key: string) => placeholder(names, key)))
    .join('\n');

/** Function names as called by the store. */
export const functionNames = (names: TableNames) =>
  ({
    claim: names.object(`claim_v${SCHEMA_VERSION}`),
    renew: names.object(`renew_v${SCHEMA_VERSION}`),
    complete: names.object(`complete_v${SCHEMA_VERSION}`),
    release: names.object(`release_v${SCHEMA_VERSION}`),
    step: names.object(`step_v${SCHEMA_VERSION}`),
    peek: names.object(`peek_v${SCHEMA_VERSION}`),
    sweep: names.object(`sweep_v${SCHEMA_VERSION}`),
    // the transactional mode (see transaction.ts)
    txClaim: names.object(`tx_claim_v${SCHEMA_VERSION}`),
    txComplete: names.object(`tx_complete_v${SCHEMA_VERSION}`),
    txPeek: names.object(`tx_peek_v${SCHEMA_VERSION}`),
  }) as const;

/** The record layout the SQL files write and read (column `v`). */
export const SCHEMA_VERSION = 1;

// ---- internal helpers ----

const placeholder = (names: TableNames, key: string): string => {
  switch (key) {
    case 'table':
      return names.quoted;
    case 'index':
      return names.local('expires_at');
    case 'fenceSeq':
      return names.object('fence');
    case 'check':
      return names.object(`check_v${SCHEMA_VERSION}`);
    case 'channel':
      return literal(names.channel);
    case 'lockPrefix':
      return literal(`trpc-idempotency:${names.table}:`);
    default: {
      const functions: Record<string, string> = functionNames(names);
      const name = functions[key];
      if (name === undefined) throw new Error(`trpc-idempotency: unknown placeholder {{${key}}} in the SQL files`);
      return name;
    }
  }
};

/** A string literal; table names are checked identifiers, so only quotes would need escaping. */
const literal = (text: string): string => `'${text.replace(/'/g, "''")}'`;
