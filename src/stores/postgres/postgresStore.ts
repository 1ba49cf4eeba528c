import { createHash } from 'node:crypto';
import type { PoolClient } from 'pg';
import type { TransactionalStore } from '../../store';
import type { PostgresStoreOptions } from './options';
import { IdempotencyError } from '../../errors';
import { boundedQuery } from './boundedQuery';
import { resolvePostgresStoreOptions } from './options';
import { parseClaimReply, parseLeaseReply, parsePeekReply, parseStepReply } from './replies';
import { functionNames } from './schema';
import { createPostgresTransactional } from './transaction';
import { createWaitHub } from './waitHub';

/**
 * Both modes: a plain store (`claim` ... `wait`), and the transactional capability (`idempotent({ transactional:
 * true })` runs the procedure in a transaction of this pool, `ctx.idempotency.client` its connection).
 */
export interface PostgresStore extends TransactionalStore<PoolClient> {
  /**
   * Deletes expired rows, `sweepBatchSize` per statement, until none is left; returns how many went. Runs on its
   * own every `sweepIntervalMs`; call it yourself (e.g. from a cron job) with `sweepIntervalMs: 0`.
   */
  sweep(): Promise<number>;
  /**
   * Stops the sweep timer, ends pending waits (as `timeout`) and closes the listening connection if `wait()`
   * opened one. Never ends your pool.
   */
  close(): Promise<void>;
}

/**
 * The PostgreSQL store: one row per record in one table, each decision one call of a PL/pgSQL function created
 * with the table (sql/*.sql), so every call is one statement and one round trip, atomic, on the database clock.
 * Round trips: a fresh call costs 2 (claim, complete), a replay 1, a concurrent duplicate 1; a durable step 1
 * when recorded, none when replayed (the steps come back with the claim). Statements are
 * prepared once per connection (named), so later calls skip parsing.
 *
 * @example
 * const pool = new Pool({ connectionString: process.env.DATABASE_URL });
 * pool.on('error', (error) => console.error(error)); // node-postgres asks for it
 * await createPostgresTable(pool); // or postgresTableSql() in a migration
 * const store = createPostgresStore({ pool });
 */
export const createPostgresStore = (options: PostgresStoreOptions): PostgresStore => {
  // config time: options checked once, statements named once
  const resolved = resolvePostgresStoreOptions(options);
  const { pool, table, operationTimeoutMs, leaseGraceMs, releasedTtlMs, waitPollIntervalMs } = resolved;
  const fn = functionNames(table);
  // Prepared statement names are per connection, shared by everything using the pool: the table is part of them,
  // as a hash, since PostgreSQL keeps 63 bytes of a name and two long table names could share those.
  const tableHash = createHash('sha256').update(table.table).digest('base64url').slice(0, 22);
  const statement = (op: string, text: string) => ({ name: `trpc_idem_v1_${op}_${tableHash}`, text });
  const claimStatement = statement('claim', `SELECT ${fn.claim}($1, $2, $3, $4, $5, $6) AS r`);
  const renewStatement = statement('renew', `SELECT ${fn.renew}($1, $2, $3, $4) AS r`);
  const completeStatement = statement('complete', `SELECT ${fn.complete}($1, $2, $3, $4) AS r`);
  const releaseStatement = statement('release', `SELECT ${fn.release}($1, $2, $3) AS r`);
  const stepStatement = statement('step', `SELECT ${fn.step}($1, $2, $3, $4, $5) AS r`);
  const peekStatement = statement('peek', `SELECT ${fn.peek}($1) AS r`);
  const sweepStatement = statement('sweep', `SELECT ${fn.sweep}($1)::text AS r`);
  const call = (op: string, query: { name: string; text: string }, values: unknown[]): Promise<string> =>
    boundedQuery(pool, { ...query, values }, { op, timeoutMs: operationTimeoutMs });
  const where = (id: string): string => `row ${JSON.stringify(id)} of table ${table.table}`;
  const lockTtl = millisOf('lockTtlMs');
  const ttl = millisOf('ttlMs');
  const keep = millisOf('keepMs');

  const hub = createWaitHub({
    pool,
    channel: table.channel,
    peek: async (id) => parsePeekReply(await call('peek', peekStatement, [id]), where(id)),
    pollIntervalMs: waitPollIntervalMs,
    operationTimeoutMs,
  });

  const sweep = async (): Promise<number> => {
    let total = 0;
    for (;;) {
      const deleted = Number(await call('sweep', sweepStatement, [resolved.sweepBatchSize]));
      total += deleted;
      if (!(deleted >= resolved.sweepBatchSize)) return total;
    }
  };
  // app time: the periodic sweep, unref'd (it never keeps the process alive); a failed sweep waits for the next.
  const sweeper =
    resolved.sweepIntervalMs > 0
      ? setInterval(() => {
          sweep().catch(() => {});
        }, resolved.sweepIntervalMs)
      : undefined;
  sweeper?.unref?.();
  const transactional = createPostgresTransactional(resolved, fn);

  return {
    // A bad duration rejects that call only (never thrown synchronously).
    claim: async (request) => {
      const { id, partition, token, fingerprint, lockTtlMs } = request;
      const reply = await call('claim', claimStatement, [
        id,
        partition,
        token,
        fingerprint,
        lockTtl(lockTtlMs),
        leaseGraceMs,
      ]);
      return parseClaimReply(reply, where(id));
    },
    renew: async ({ id, token, lockTtlMs }) =>
      parseLeaseReply(await call('renew', renewStatement, [id, token, lockTtl(lockTtlMs), leaseGraceMs]), where(id)),
    complete: async ({ id, token, result, ttlMs }) =>
      parseLeaseReply(await call('complete', completeStatement, [id, token, result, ttl(ttlMs)]), where(id)),
    release: async ({ id, token }) =>
      parseLeaseReply(await call('release', releaseStatement, [id, token, releasedTtlMs]), where(id)),
    recordStep: async ({ id, token, name, text, keepMs }) =>
      parseStepReply(await call('step', stepStatement, [id, token, name, text, keep(keepMs)]), where(id)),
    wait: (request) => hub.wait(request),
    transactional: { begin: transactional.begin, wait: transactional.wait },
    sweep,
    close: async () => {
      clearInterval(sweeper);
      await Promise.all([hub.close(), transactional.close()]);
    },
  };
};

// ---- internal helpers ----

/** Durations go to SQL as whole milliseconds >= 1. */
const millisOf = (name: string): ((value: number) => number) => (value) => {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new IdempotencyError('INVALID_OPTION', `postgres store: ${name} must be a positive number of ms, got ${String(value)}`);
  }
  return Math.ceil(value);
};
