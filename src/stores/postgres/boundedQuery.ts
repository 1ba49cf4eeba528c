import type { Pool, PoolClient, QueryConfig } from 'pg';
import { systemClock } from '../../clock';
import { delayQueue } from '../../delayQueue';
import { IdempotencyError, isIdempotencyError } from '../../errors';

export interface BoundedQueryOptions {
  /** Names the call in errors, e.g. `claim`. */
  op: string;
  timeoutMs: number;
}

/**
 * Runs one statement that returns one text column `r` in one row, and bounds it: pool checkout and query
 * together settle within `timeoutMs`, and any failure becomes `IdempotencyError('STORE_UNAVAILABLE')`. A
 * connection whose query failed or timed out is closed (`release(error)`), never handed to the next caller with
 * a statement still running on it. Never retried: a claim that timed out here may still commit later, which is
 * safe (it is a lease that expires).
 */
export const boundedQuery = (
  pool: Pool,
  query: QueryConfig<unknown[]>,
  options: BoundedQueryOptions,
): Promise<string> => {
  const { op, timeoutMs } = options;
  return new Promise<string>((resolve, reject) => {
    let client: PoolClient | undefined;
    let settled = false;
    const settle = (error: unknown, value?: string): void => {
      if (settled) return;
      settled = true;
      cancel();
      if (error === undefined) resolve(value as string);
      else reject(isIdempotencyError(error) ? error : unavailable(`postgres ${op} failed: ${explain(error)}`, error, timeoutMs));
    };
    // Deadlines of one length share one timer (see delayQueue): a timer per call costs more than the call.
    const cancel = delayQueue(systemClock, timeoutMs).add(() => {
      const stuck = client;
      client = undefined;
      const timeout = unavailable(`postgres ${op} got no answer within ${timeoutMs} ms (operationTimeoutMs)`, undefined, timeoutMs);
      stuck?.release(timeout);
      settle(timeout);
    });
    pool.connect().then(
      (connected) => {
        if (settled) {
          // Checked out after the deadline: nobody waits for it any more.
          connected.release();
          return;
        }
        client = connected;
        // A connection that breaks mid-query also emits 'error' on the client, which would crash the process
        // without a listener (pool.query does the same).
        const onError = (error: Error): void => {
          if (client !== connected) return;
          client = undefined;
          connected.release(error);
          settle(error);
        };
        connected.on('error', onError);
        connected.query<{ r: string }>(query).then(
          (result) => {
            connected.off('error', onError);
            if (client !== connected) return; // timed out meanwhile, connection already closed
            client = undefined;
            connected.release();
            const r = result.rows[0]?.r;
            if (typeof r === 'string') return settle(undefined, r);
            // A reply the functions cannot give: a broken invariant, not an outage.
            settled = true;
            cancel();
            reject(new Error(`trpc-idempotency: unexpected reply to the ${op} statement: ${JSON.stringify(result.rows)}`));
          },
          (error: unknown) => {
            connected.off('error', onError);
            if (client !== connected) return;
            client = undefined;
            connected.release(error instanceof Error ? error : new Error(String(error)));
            settle(error);
          },
        );
      },
      (error: unknown) => settle(error),
    );
  });
};

/** STORE_UNAVAILABLE, for failures around the query (e.g. the listening connection). */
export const unavailable = (message: string, cause: unknown, retryAfterMs: number): IdempotencyError =>
  new IdempotencyError('STORE_UNAVAILABLE', message, { cause, retryAfterMs });

/** An error's message, with the hint PostgreSQL errors deserve when the table was never created. */
export const explain = (error: unknown): string => {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  // 42P01 undefined_table, 42883 undefined_function
  if (code === '42P01' || code === '42883') {
    return `${message} (create the table first: createPostgresTable(pool, table), or postgresTableSql(table) in a migration)`;
  }
  return message;
};
