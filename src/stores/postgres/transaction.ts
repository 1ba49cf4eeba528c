import type { Pool, PoolClient, QueryResult } from 'pg';
import { systemClock } from '../../clock';
import { delayQueue } from '../../delayQueue';
import { isIdempotencyError } from '../../errors';
import type { ClaimRequest, CommitOutcome, OpenTransaction, TransactionalCapability, TransactionalClaim } from '../../store';
import { explain, unavailable } from './boundedQuery';
import type { ResolvedPostgresStoreOptions } from './options';
import { parseClaimReply, parsePeekReply } from './replies';
import type { functionNames } from './schema';
import { createWaitHub } from './waitHub';

export interface PostgresTransactional extends TransactionalCapability<PoolClient> {
  /** Ends the transactional waits and closes their listening connection. */
  close(): Promise<void>;
}

/**
 * The transactional mode of the PostgreSQL store (see `TransactionalStore`). Per call, on one pooled connection:
 *
 *   begin   BEGIN ISOLATION LEVEL ..; SELECT tx_claim(..), txid_current(); SAVEPOINT     1 round trip
 *   (the procedure's own queries on the same connection)
 *   commit  [ROLLBACK TO SAVEPOINT;] SELECT tx_complete(..); COMMIT                     1 round trip
 *   or      ROLLBACK; SELECT pg_notify(..)                                               1 round trip
 *
 * so a fresh call costs what the procedure's own BEGIN .. COMMIT costs, and a replay one round trip on the
 * caller's path (its ROLLBACK is sent after the answer). Values go into the query text as escaped literals:
 * several statements in one round trip need the simple protocol, which takes no parameters.
 */
export const createPostgresTransactional = (
  options: ResolvedPostgresStoreOptions,
  fn: ReturnType<typeof functionNames>,
): PostgresTransactional => {
  // config time
  const { pool, operationTimeoutMs, leaseGraceMs, waitPollIntervalMs, table } = options;
  const beginStatement = `BEGIN ISOLATION LEVEL ${ISOLATION[options.isolationLevel]}`;
  const statementTimeout = options.transactionStatementTimeoutMs || -1;
  const idleTimeout = options.transactionIdleTimeoutMs || -1;
  const channel = table.channel;
  const where = (id: string): string => `row ${JSON.stringify(id)} of table ${table.table}`;

  const hub = createWaitHub({
    pool,
    channel,
    peek: async (id) => {
      const row = await queryOnce(pool, operationTimeoutMs, (client) => `SELECT ${fn.txPeek}(${client.escapeLiteral(id)}, ${BUSY_RETRY_MS}) AS r`);
      return parsePeekReply(String(row?.r), where(id));
    },
    pollIntervalMs: waitPollIntervalMs,
    operationTimeoutMs,
  });

  const begin = async (request: ClaimRequest): Promise<TransactionalClaim<PoolClient>> => {
    // One bound for the checkout and the statement together (operationTimeoutMs bounds the whole store call).
    const deadline = deadlineIn(operationTimeoutMs);
    const client = await checkout(pool, operationTimeoutMs, deadline);
    const tx = track(client);
    const { id, partition, token, fingerprint, lockTtlMs } = request;
    const text = [
      beginStatement,
      `SELECT r, CASE WHEN r LIKE 'A%' THEN txid_current()::text END AS x FROM ${fn.txClaim}(${[
        client.escapeLiteral(id),
        client.escapeLiteral(partition),
        client.escapeLiteral(token),
        client.escapeLiteral(fingerprint),
        Math.max(1, Math.ceil(lockTtlMs)),
        leaseGraceMs,
        BUSY_RETRY_MS,
        statementTimeout,
        idleTimeout,
      ].join(', ')}) AS r`,
      `SAVEPOINT ${SAVEPOINT}`,
    ].join(';\n');
    let row: Row | undefined;
    try {
      row = rowOf(await tx.query(text, operationTimeoutMs, deadline));
    } catch (error) {
      if (!tx.lost && isSerializationFailure(error)) {
        // A transaction committed the key between this snapshot and the lock (see tx_claim.sql): ask again.
        void tx.end(ROLLBACK);
        return { status: 'in_progress', retryAfterMs: BUSY_RETRY_MS };
      }
      tx.destroy(error);
      throw isIdempotencyError(error) ? error : unavailable(`postgres begin failed: ${explain(error)}`, error, operationTimeoutMs);
    }
    let outcome;
    try {
      outcome = parseClaimReply(String(row?.r), where(id));
    } catch (error) {
      void tx.end(ROLLBACK);
      throw error;
    }
    if (outcome.status !== 'acquired') {
      // Nothing was written: end the transaction after the caller has its answer.
      void tx.end(ROLLBACK);
      return outcome;
    }
    const xid = String(row?.x);
    if (!/^\d+$/.test(xid)) {
      tx.destroy(new Error('no transaction id'));
      throw new Error(`trpc-idempotency: unexpected reply from the transactional claim for ${where(id)}: ${JSON.stringify(row)}`);
    }
    return { ...outcome, transaction: openTransaction(tx, { id, token, xid, fn, channel, timeoutMs: operationTimeoutMs }) };
  };

  return { begin, wait: (request) => hub.wait(request), close: () => hub.close() };
};

/** `isolationLevel` option values, as SQL. */
export const ISOLATION = {
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
} as const;

export type IsolationLevel = keyof typeof ISOLATION;

// ---- internal helpers ----

/** Retry hint while another transaction holds the key (its end is unknown), and the waiters' poll then, ms. */
const BUSY_RETRY_MS = 100;
const SAVEPOINT = 'trpc_idempotency';
const ROLLBACK = 'ROLLBACK';

interface OpenTransactionOptions {
  id: string;
  token: string;
  xid: string;
  fn: ReturnType<typeof functionNames>;
  channel: string;
  timeoutMs: number;
}

const openTransaction = (tx: Tracked, options: OpenTransactionOptions): OpenTransaction<PoolClient> => {
  const { id, token, xid, fn, channel, timeoutMs } = options;
  let settled = false;
  const once = (): void => {
    if (settled) throw new Error('trpc-idempotency: a transaction was committed or rolled back twice');
    settled = true;
  };
  return {
    client: tx.client,
    signal: tx.signal,
    commit: async ({ result, ttlMs, discardWrites }): Promise<CommitOutcome> => {
      once();
      if (tx.lost) {
        tx.destroy(tx.lostWith);
        return { status: 'rolled_back', reason: 'connection_lost', error: tx.lostWith };
      }
      const { client } = tx;
      const text = [
        ...(discardWrites ? [`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`] : []),
        `SELECT ${fn.txComplete}(${client.escapeLiteral(id)}, ${client.escapeLiteral(token)}, ${client.escapeLiteral(result)}, ${Math.max(1, Math.ceil(ttlMs))}, ${xid}) AS r`,
        'COMMIT',
      ].join(';\n');
      try {
        await tx.query(text, timeoutMs);
      } catch (error) {
        if (tx.lost || !isServerError(error) || isConnectionFatal(error)) {
          // COMMIT was sent and no answer came back: it may have landed. The record tells a retry which.
          tx.destroy(error);
          return { status: 'unknown', error };
        }
        // The server refused a statement, so the transaction is aborted and COMMIT did not run (or itself failed).
        await tx.end(ROLLBACK);
        const code = (error as { code: string }).code;
        const reason = isSerializationFailure(error) ? 'serialization' : code === 'TRPCE' ? 'ended' : 'aborted';
        return { status: 'rolled_back', reason, error };
      }
      tx.release();
      return { status: 'committed' };
    },
    rollback: async () => {
      once();
      // Waiters are told at once (a NOTIFY after the ROLLBACK, outside it): the key is free.
      await tx.end(`${ROLLBACK};\nSELECT pg_notify(${tx.client.escapeLiteral(channel)}, ${tx.client.escapeLiteral(id)})`);
    },
  };
};

/** A checked-out connection whose loss is noticed (and never crashes the process) until it is given back. */
interface Tracked {
  client: PoolClient;
  signal: AbortSignal;
  readonly lost: boolean;
  readonly lostWith: unknown;
  /**
   * One query, bounded by `timeoutMs` from now, or by `deadline` (started before the checkout) when given: on
   * timeout the connection is closed (which ends its transaction) and this rejects.
   */
  query(text: string, timeoutMs: number, deadline?: Deadline): Promise<QueryResult | QueryResult[]>;
  /** Sends `text` (a ROLLBACK), then gives the connection back; closes it when that fails. Never rejects. */
  end(text: string): Promise<void>;
  /** Gives the connection back for reuse. */
  release(): void;
  /** Closes the connection (the server rolls back what is open on it). */
  destroy(error: unknown): void;
}

const track = (client: PoolClient): Tracked => {
  const controller = new AbortController();
  let lostWith: unknown;
  let released = false;
  const lose = (error: unknown): void => {
    if (lostWith !== undefined) return;
    lostWith = error ?? new Error('connection lost');
    controller.abort(lostWith);
  };
  const onError = (error: Error): void => lose(error);
  const onEnd = (): void => lose(new Error('connection ended'));
  client.on('error', onError);
  client.on('end', onEnd);
  // The procedure gets this client as ctx.idempotency.client. Its own release() (pg-pool sets one per checkout)
  // would hand back a connection with the transaction still open, for another caller's queries to run in and for
  // this call's COMMIT to end: only giveBack may call it.
  const releaseToPool = client.release;
  client.release = refuseRelease;
  const giveBack = (error?: Error): void => {
    if (released) return;
    released = true;
    client.off('error', onError);
    client.off('end', onEnd);
    // A late socket error of a connection given up must not crash the process.
    if (error) client.on('error', ignore);
    client.release = releaseToPool;
    client.release(error);
  };
  const tracked: Tracked = {
    client,
    signal: controller.signal,
    get lost() {
      return lostWith !== undefined;
    },
    get lostWith() {
      return lostWith;
    },
    query: (text, timeoutMs, deadline = deadlineIn(timeoutMs)) =>
      new Promise((resolve, reject) => {
        const timeOut = (): void => {
          const timeout = unavailable(`postgres got no answer within ${timeoutMs} ms (operationTimeoutMs)`, undefined, timeoutMs);
          lose(timeout);
          giveBack(timeout);
          reject(timeout);
        };
        if (deadline.passed) return timeOut();
        deadline.onPass(timeOut);
        client.query(text).then(
          (result: QueryResult | QueryResult[]) => {
            deadline.cancel();
            resolve(result);
          },
          (error: unknown) => {
            deadline.cancel();
            if (!isServerError(error) || isConnectionFatal(error)) lose(error);
            reject(error);
          },
        );
      }),
    end: async (text) => {
      if (released) return;
      if (lostWith !== undefined) return giveBack(asError(lostWith));
      try {
        await tracked.query(text, DEFAULT_END_TIMEOUT_MS);
        giveBack();
      } catch (error) {
        giveBack(asError(error));
      }
    },
    release: () => giveBack(),
    destroy: (error) => giveBack(asError(error)),
  };
  return tracked;
};

/** A ROLLBACK is quick or the connection is broken: closing it rolls back just the same. */
const DEFAULT_END_TIMEOUT_MS = 2000;

/**
 * A time limit that outlives one step: started before a checkout, it goes on bounding the statement sent on the
 * connection checked out. Deadlines of one length share one timer (see delayQueue).
 */
interface Deadline {
  readonly passed: boolean;
  /** What to do when the limit passes (replaces what was set before). */
  onPass(action: () => void): void;
  cancel(): void;
}

const deadlineIn = (timeoutMs: number): Deadline => {
  let action: (() => void) | undefined;
  let passed = false;
  const cancel = delayQueue(systemClock, timeoutMs).add(() => {
    passed = true;
    action?.();
  });
  return {
    get passed() {
      return passed;
    },
    onPass: (next) => {
      action = next;
    },
    cancel,
  };
};

/** A pooled connection within `deadline`, which goes on running for the statement sent on it. */
const checkout = (pool: Pool, timeoutMs: number, deadline: Deadline): Promise<PoolClient> =>
  new Promise((resolve, reject) => {
    let done = false;
    deadline.onPass(() => {
      done = true;
      reject(unavailable(`postgres pool gave no connection within ${timeoutMs} ms (operationTimeoutMs); the procedure was not run`, undefined, timeoutMs));
    });
    pool.connect().then(
      (client) => {
        if (done) return client.release();
        done = true;
        deadline.onPass(ignore);
        resolve(client);
      },
      (error: unknown) => {
        if (done) return;
        done = true;
        deadline.cancel();
        reject(unavailable(`postgres connection failed: ${explain(error)}; the procedure was not run`, error, timeoutMs));
      },
    );
  });

/**
 * One statement on a connection of its own, for the waiters' reads: the checkout and the query together are bounded
 * by `timeoutMs`, and a connection whose query got no answer in time is closed, never handed back still busy.
 */
const queryOnce = async (pool: Pool, timeoutMs: number, text: (client: PoolClient) => string): Promise<Row | undefined> => {
  const deadline = deadlineIn(timeoutMs);
  const tx = track(await checkout(pool, timeoutMs, deadline));
  try {
    const row = rowOf(await tx.query(text(tx.client), timeoutMs, deadline));
    tx.release();
    return row;
  } catch (error) {
    tx.destroy(error);
    throw isIdempotencyError(error) ? error : unavailable(`postgres peek failed: ${explain(error)}`, error, timeoutMs);
  }
};

/** The one row the transactional statements answer with: `r` the function's reply, `x` the transaction id. */
interface Row {
  r?: unknown;
  x?: unknown;
}

const rowOf = (result: QueryResult | QueryResult[]): Row | undefined =>
  (Array.isArray(result) ? result : [result]).find((one) => one.rows?.length === 1 && 'r' in (one.rows[0] as object))
    ?.rows[0] as Row | undefined;

/** An error the server sent (it has a SQLSTATE and a severity), as opposed to a broken or closed socket. */
const isServerError = (error: unknown): boolean =>
  typeof (error as { code?: unknown } | null)?.code === 'string' &&
  typeof (error as { severity?: unknown }).severity === 'string';

/** Server errors that end the session: terminated by an administrator, crash or shutdown, idle timeout. */
const isConnectionFatal = (error: unknown): boolean => {
  const code = (error as { code?: string }).code ?? '';
  return code.startsWith('08') || code.startsWith('57P') || code === '25P03';
};

/** 40001 serialization_failure, 40P01 deadlock_detected: nothing committed, the same call may succeed again. */
export const isSerializationFailure = (error: unknown): boolean => {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40001' || code === '40P01';
};

const refuseRelease = (): never => {
  throw new Error(
    'trpc-idempotency: ctx.idempotency.client belongs to the transaction of this call; the middleware commits or rolls it back and gives it back to the pool; do not call release() on it',
  );
};

const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)));
const ignore = (): void => {};
