import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { initTRPC, TRPCError } from '@trpc/server';
import pg from 'pg';
import type { PoolConfig } from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency, createMemoryStore, idempotencyErrorData } from '../../src/index';
import type { IdempotencyEvent, IdempotencyOptions, TransactionalExecution, TransactionalStore } from '../../src/index';
import { isIdempotencyError } from '../../src/errors';
import type { ClaimRequest, TransactionalClaim } from '../../src/store';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import type { PostgresStore, PostgresStoreOptions } from '../../src/stores/postgres';
import { createManualClock } from '../helpers/manualClock';
import { connectPool, dropTable, postgresTarget, randomTable } from '../helpers/postgresClients';
import type { PostgresServer } from '../helpers/postgresServer';
import { startPostgresServer } from '../helpers/postgresServer';
import { deferred, rejectionOf, startServer, trpcErrorOf } from '../server/helpers';

// What the transactional mode promises beyond its happy paths (transactional.test.ts): the store's capability
// (begin, wait, commit, rollback) on its own, then the middleware's answers, events and reports, all on real
// PostgreSQL.

/** A claim request for `id` (a fresh one by default). */
const claimOf = (id: string = randomUUID()): ClaimRequest => ({ id, partition: 'p', token: randomUUID(), fingerprint: '', lockTtlMs: 10_000 });

type Acquired = Extract<TransactionalClaim<pg.PoolClient>, { status: 'acquired' }>;

/** `begin`, expecting the key to be acquired. */
const acquire = async (store: PostgresStore, request: ClaimRequest = claimOf()): Promise<Acquired> => {
  const claim = await store.transactional.begin(request);
  if (claim.status !== 'acquired') throw new Error(`expected acquired, got ${JSON.stringify(claim)}`);
  return claim;
};

/** A store on a fresh table of the shared server (its own pool), dropped at close. */
const storeOn = async (options: Partial<PostgresStoreOptions> = {}, poolConfig: PoolConfig = {}) => {
  const pool = connectPool(poolConfig);
  const table = randomTable();
  await createPostgresTable(pool, table);
  const store = createPostgresStore({ pool, table, sweepIntervalMs: 0, ...options });
  return {
    pool,
    table,
    store,
    close: async () => {
      await store.close();
      await dropTable(pool, table);
      await pool.end();
    },
  };
};

/** Resolves once a backend of this database waits on a lock in a statement that contains `text`. */
const lockWaitIn = async (pool: pg.Pool, text: string): Promise<void> => {
  for (;;) {
    const { rows } = await pool.query(
      "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND strpos(query, $1) > 0 AND datname = current_database()",
      [text],
    );
    if (rows.length > 0) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
};

const backendPid = async (client: pg.PoolClient): Promise<number> =>
  (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;

/** A deferred unique constraint: inserting one value twice fails at COMMIT (23505), not at the INSERT. */
const deferredUniqueSql = (name: string): string =>
  `CREATE TABLE ${name} (v int NOT NULL, CONSTRAINT ${name.split('.').pop()}_v UNIQUE (v) DEFERRABLE INITIALLY DEFERRED)`;

describe('the transactional capability of the PostgreSQL store', () => {
  it('answers in_progress, not an error, when a transaction commits the key between its snapshot and its lock (40001)', async () => {
    const { pool, table, store, close } = await storeOn({ isolationLevel: 'repeatable read' });
    const admin = await pool.connect();
    try {
      // A released store-mode record of the key: the claim locks its row.
      const id = randomUUID();
      const token = randomUUID();
      expect((await store.claim({ ...claimOf(id), token })).status).toBe('acquired');
      expect(await store.release({ id, token })).toEqual({ status: 'ok' });
      // Another transaction holds the row: the claim takes its snapshot, then waits for the row lock...
      await admin.query('BEGIN');
      await admin.query(`UPDATE ${table} SET expires_at = expires_at WHERE id = $1`, [id]);
      const beginning = store.transactional.begin(claimOf(id));
      await lockWaitIn(pool, `${table.split('.').pop()}_tx_claim`);
      // ...and that transaction commits a new version of the row: its snapshot is too old to claim.
      await admin.query('COMMIT');
      expect(await beginning).toEqual({ status: 'in_progress', retryAfterMs: 100 });
      // Nothing of that attempt is left: the next one claims the key.
      const next = await acquire(store, claimOf(id));
      await next.transaction.rollback();
    } finally {
      admin.release();
      await close();
    }
  });

  it('rejects STORE_UNAVAILABLE saying to create the table when its functions are missing, and leaves the pool clean', async () => {
    // Two connections: a waiter listens on one of them.
    const pool = connectPool({ max: 2 });
    const store = createPostgresStore({ pool, table: randomTable(), sweepIntervalMs: 0 });
    try {
      const error = await rejectionOf(store.transactional.begin(claimOf()));
      expect(isIdempotencyError(error) && error.code, String(error)).toBe('STORE_UNAVAILABLE');
      expect((error as Error).message).toMatch(/^trpc-idempotency: postgres begin failed: .*create the table first: createPostgresTable/);
      // The aborted transaction did not go back to the pool: the next statement runs.
      expect((await pool.query<{ n: number }>('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
      // A waiter's read says the same.
      const waitError = await rejectionOf(store.transactional.wait({ id: randomUUID(), timeoutMs: 5000 }));
      expect(isIdempotencyError(waitError) && waitError.code, String(waitError)).toBe('STORE_UNAVAILABLE');
      expect((waitError as Error).message).toMatch(/^trpc-idempotency: postgres peek failed: .*create the table first: createPostgresTable/);
    } finally {
      await store.close();
      await pool.end();
    }
  });

  it('answers RECORD_CORRUPT naming the row and table for a row it did not write, and gives its connection back', async () => {
    const { pool, table, store, close } = await storeOn({}, { max: 1 });
    try {
      const id = randomUUID();
      await pool.query(
        `INSERT INTO ${table} (id, v, state, token, fingerprint, fence, lease_until, expires_at, result)
         VALUES ($1, 2, 'p', 'tok', '', 1, clock_timestamp() + interval '1 hour', clock_timestamp() + interval '1 hour', NULL)`,
        [id],
      );
      const error = await rejectionOf(store.transactional.begin(claimOf(id)));
      expect(isIdempotencyError(error) && error.code, String(error)).toBe('RECORD_CORRUPT');
      expect((error as Error).message).toContain(`row ${JSON.stringify(id)} of table ${table}`);
      // The pool has one connection: it came back, rolled back.
      const next = await acquire(store);
      await next.transaction.rollback();
    } finally {
      await close();
    }
  });

  it('wait: times out while a transaction holds the key, and settles when it commits', async () => {
    const { store, close } = await storeOn();
    try {
      const id = randomUUID();
      const holder = await acquire(store, claimOf(id));
      expect(await store.transactional.wait({ id, timeoutMs: 150 })).toEqual({ status: 'timeout' });
      const waiting = store.transactional.wait({ id, timeoutMs: 10_000 });
      expect(await holder.transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false })).toEqual({ status: 'committed' });
      expect(await waiting).toEqual({ status: 'settled' });
      expect(await store.transactional.begin(claimOf(id))).toEqual({ status: 'completed', result: 'r' });
    } finally {
      await close();
    }
  });

  it('refuses a second commit or rollback of one transaction: its connection may serve another call by then', async () => {
    const { store, close } = await storeOn();
    try {
      const committed = await acquire(store);
      expect(await committed.transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false })).toEqual({ status: 'committed' });
      await expect(committed.transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false })).rejects.toThrow(
        'trpc-idempotency: a transaction was committed or rolled back twice',
      );
      await expect(committed.transaction.rollback()).rejects.toThrow(/committed or rolled back twice/);
      const rolledBack = await acquire(store);
      await rolledBack.transaction.rollback();
      await expect(rolledBack.transaction.rollback()).rejects.toThrow(/committed or rolled back twice/);
    } finally {
      await close();
    }
  });

  it("sets the options' statement and idle timeouts for the transaction only; 0 keeps the session's own", async () => {
    const pool = connectPool({ max: 1, options: '-c statement_timeout=4321 -c idle_in_transaction_session_timeout=8765' });
    const table = randomTable();
    await createPostgresTable(pool, table);
    const settingsIn = async (options: Partial<PostgresStoreOptions>): Promise<string[]> => {
      const store = createPostgresStore({ pool, table, sweepIntervalMs: 0, ...options });
      try {
        const { transaction } = await acquire(store);
        const { rows } = await transaction.client.query<{ s: string; i: string }>(
          "SELECT current_setting('statement_timeout') AS s, current_setting('idle_in_transaction_session_timeout') AS i",
        );
        await transaction.rollback();
        return [rows[0]?.s ?? '', rows[0]?.i ?? ''];
      } finally {
        await store.close();
      }
    };
    try {
      expect(await settingsIn({ transactionStatementTimeoutMs: 1500, transactionIdleTimeoutMs: 2500 })).toEqual(['1500ms', '2500ms']);
      // The defaults: the session's statement_timeout, and a minute idle.
      expect(await settingsIn({})).toEqual(['4321ms', '1min']);
      expect(await settingsIn({ transactionIdleTimeoutMs: 0 })).toEqual(['4321ms', '8765ms']);
      // The pooled connection's next user gets the session's settings back.
      const { rows } = await pool.query<{ s: string; i: string }>(
        "SELECT current_setting('statement_timeout') AS s, current_setting('idle_in_transaction_session_timeout') AS i",
      );
      expect(rows).toEqual([{ s: '4321ms', i: '8765ms' }]);
    } finally {
      await dropTable(pool, table);
      await pool.end();
    }
  });

  it('gives each connection back without listeners of its own: a connection used by many calls carries none of them', async () => {
    const { pool, store, close } = await storeOn({}, { max: 1 });
    let client: pg.PoolClient | undefined;
    pool.on('acquire', (acquired: pg.PoolClient) => {
      client = acquired;
    });
    const listeners = () => [client?.listenerCount('error'), client?.listenerCount('end')];
    try {
      const id = randomUUID();
      const first = await acquire(store, claimOf(id));
      await first.transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false });
      const after1 = listeners();
      for (let i = 0; i < 5; i++) {
        const { transaction } = await acquire(store);
        if (i % 2 === 0) await transaction.rollback();
        else await transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false });
        // A replay, whose ROLLBACK goes out after the answer.
        expect(await store.transactional.begin(claimOf(id))).toEqual({ status: 'completed', result: 'r' });
      }
      // The replay's ROLLBACK is on its way: the next checkout waits for it.
      await (await pool.connect()).release();
      expect(listeners()).toEqual(after1);
    } finally {
      await close();
    }
  });

  it('aborts the signal with the server’s error when the backend is terminated; commit then rolls back without sending COMMIT', async () => {
    const { pool, store, close } = await storeOn();
    try {
      const { transaction } = await acquire(store);
      const pid = await backendPid(transaction.client);
      const aborted = once(transaction.signal, 'abort');
      const ended = new Promise((resolve) => transaction.client.once('end', resolve));
      await pool.query('SELECT pg_terminate_backend($1)', [pid]);
      await aborted;
      expect(transaction.signal.reason).toMatchObject({ code: '57P01' });
      // The socket's close follows (node-postgres reports it as an error too): the server's reason is kept.
      await ended;
      const outcome = await transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false });
      expect(outcome).toEqual({ status: 'rolled_back', reason: 'connection_lost', error: transaction.signal.reason });
    } finally {
      await close();
    }
  });

  it('commit answers rolled_back (aborted) when COMMIT itself fails on a deferred constraint: nothing of it is kept', async () => {
    const { pool, table, store, close } = await storeOn();
    const checked = `${table}_checked`;
    await pool.query(deferredUniqueSql(checked));
    try {
      const id = randomUUID();
      const { transaction } = await acquire(store, claimOf(id));
      await transaction.client.query(`INSERT INTO ${checked} (v) VALUES (1), (1)`);
      const outcome = await transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false });
      expect(outcome).toMatchObject({ status: 'rolled_back', reason: 'aborted', error: { code: '23505' } });
      expect((await pool.query(`SELECT * FROM ${checked}`)).rows).toEqual([]);
      const next = await acquire(store, claimOf(id));
      await next.transaction.rollback();
    } finally {
      await pool.query(`DROP TABLE IF EXISTS ${checked}`);
      await close();
    }
  });

  it('commit answers unknown when COMMIT gets no answer in time, and a late error of that connection is ignored', async () => {
    const { pool, table, store, close } = await storeOn({ operationTimeoutMs: 300 });
    const slow = `${table}_slow`;
    await pool.query(`
      CREATE TABLE ${slow} (v int);
      CREATE FUNCTION ${slow}_sleep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER sleep AFTER INSERT ON ${slow} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${slow}_sleep();`);
    try {
      const { transaction } = await acquire(store);
      const { client } = transaction;
      await client.query(`INSERT INTO ${slow} (v) VALUES (1)`);
      const outcome = await transaction.commit({ result: 'r', ttlMs: 60_000, discardWrites: false });
      expect(outcome).toMatchObject({ status: 'unknown' });
      expect(String((outcome as { error: unknown }).error)).toMatch(/postgres got no answer within 300 ms \(operationTimeoutMs\)/);
      // The connection was closed; a socket error it reports now must not crash the process.
      expect(() => client.emit('error', new Error('late socket error'))).not.toThrow();
    } finally {
      await pool.query(`DROP TABLE IF EXISTS ${slow}; DROP FUNCTION IF EXISTS ${slow}_sleep`);
      await close();
    }
  });

  it('closes a connection that breaks as its ROLLBACK is sent, instead of keeping its pool slot', async () => {
    const { pool, store, close } = await storeOn({}, { max: 1 });
    try {
      const { transaction } = await acquire(store);
      // node-postgres' socket, cut under it: the ROLLBACK goes out on a dead connection.
      (transaction.client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      await transaction.rollback();
      expect(pool.totalCount).toBe(0);
      const next = await acquire(store);
      await next.transaction.rollback();
    } finally {
      await close();
    }
  });
});

type AppContext = { req?: unknown; headers?: Record<string, string> };

interface BodyArgs {
  tx: TransactionalExecution<pg.PoolClient>;
  item: string;
  /** 1 for the first run of the procedure in this app, then 2, ... */
  run: number;
  pool: pg.Pool;
  /** A business table of this app (`item text`). */
  items: string;
}

interface AppSetup {
  store?: Partial<PostgresStoreOptions>;
  idempotency?: Omit<IdempotencyOptions<AppContext>, 'store'>;
  /** `false`: no `onEvent` listener (the default configuration). */
  events?: false;
  /** The app's pool (the store's and the procedure's). */
  pool?: PoolConfig;
}

/**
 * A tRPC app whose `order` mutation runs `body` in the transactional mode, on a fresh table of the shared server,
 * called directly (`call`) or over HTTP (`post`, with the status report). Inside the idempotent middleware sits one
 * that forgets `return next()` for the item 'forgetful'. `begins` counts the claims sent.
 */
const appOf = async (body: (args: BodyArgs) => Promise<unknown>, setup: AppSetup = {}) => {
  const pool = connectPool(setup.pool);
  const table = randomTable();
  const items = `${table}_items`;
  await createPostgresTable(pool, table);
  await pool.query(`CREATE TABLE ${items} (id bigserial PRIMARY KEY, item text NOT NULL)`);
  const store = createPostgresStore({ pool, table, sweepIntervalMs: 0, ...setup.store });
  const events: IdempotencyEvent[] = [];
  let runs = 0;
  const t = initTRPC.context<AppContext>().create();
  let begins = 0;
  const counted: PostgresStore = {
    ...store,
    transactional: {
      begin: (request) => {
        begins++;
        return store.transactional.begin(request);
      },
      wait: (request) => store.transactional.wait(request),
    },
  };
  const onEvent = setup.events === false ? undefined : (event: IdempotencyEvent) => void events.push(event);
  const { idempotent } = createIdempotency<AppContext, PostgresStore>({ store: counted, onEvent, ...setup.idempotency });
  const inner = t.middleware(async ({ next, input }) => {
    if ((input as { item?: unknown }).item === 'forgetful') {
      await next();
      return undefined as never;
    }
    return next();
  });
  const router = t.router({
    order: t.procedure
      .input(z.object({ item: z.string() }))
      .use(idempotent({ transactional: true, required: true }))
      .use(inner)
      .mutation(({ ctx, input }) =>
        body({ tx: ctx.idempotency as TransactionalExecution<pg.PoolClient>, item: input.item, run: ++runs, pool, items }),
      ),
  });
  const server = await startServer(router);
  return {
    pool,
    table,
    items,
    store,
    events,
    runs: () => runs,
    begins: () => begins,
    call: (key: string, item = 'x') => router.createCaller({ headers: { 'idempotency-key': key } }).order({ item }),
    /** The call over HTTP: its status code and what Idempotency-Status says of its key. */
    post: async (key: string, item = 'x'): Promise<{ status: number; report: unknown }> => {
      const response = await fetch(`${server.url}/order`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ item }),
      });
      await response.arrayBuffer();
      return { status: response.status, report: JSON.parse(response.headers.get('idempotency-status') ?? 'null') };
    },
    count: async (of: string = items): Promise<number> => Number((await pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${of}`)).rows[0]?.n),
    close: async () => {
      await server.close();
      await store.close();
      await pool.query(`DROP TABLE IF EXISTS ${items}`);
      await dropTable(pool, table);
      await pool.end();
    },
  };
};

const insertItem = async ({ tx, item, items }: BodyArgs): Promise<{ item: string }> => {
  await tx.client.query(`INSERT INTO ${items} (item) VALUES ($1)`, [item]);
  return { item };
};

/** A one-row counter table, for write conflicts. */
const counterOf = async (pool: pg.Pool, name: string): Promise<string> => {
  await pool.query(`CREATE TABLE ${name} (id int PRIMARY KEY, n int NOT NULL DEFAULT 0); INSERT INTO ${name} (id) VALUES (1), (2)`);
  return name;
};

/** Resolves once `n` parties have arrived. */
const barrier = (n: number) => {
  let arrived = 0;
  const all = deferred();
  return async (): Promise<void> => {
    if (++arrived === n) all.resolve();
    await all.promise;
  };
};

const retryAfterOf = (error: TRPCError): number | undefined => idempotencyErrorData(error)?.retryAfterMs;

describe('idempotent({ transactional: true }): answers', () => {
  it('answers UNPROCESSABLE_CONTENT to a key reused with another input, without running', async () => {
    const app = await appOf(insertItem);
    try {
      const key = randomUUID();
      await app.call(key, 'book');
      const error = await trpcErrorOf(app.call(key, 'lamp'));
      expect(error.code).toBe('UNPROCESSABLE_CONTENT');
      expect(app.runs()).toBe(1);
      expect(app.events.filter((e) => e.type === 'mismatch')).toHaveLength(1);
    } finally {
      await app.close();
    }
  });

  it('answers a serialization failure in the procedure (40001) SERVICE_UNAVAILABLE, retry in 100 ms, nothing kept', async () => {
    const app = await appOf(
      async (args) => {
        // Another transaction updates the row after this one's snapshot: this one's update cannot serialize.
        if (args.run === 1) await args.pool.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`);
        await args.tx.client.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`);
        return insertItem(args);
      },
      { store: { isolationLevel: 'repeatable read' } },
    );
    const counter = await counterOf(app.pool, `${app.table}_counter`);
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toBe(`trpc-idempotency: mutation "order" hit a serialization failure or deadlock in its transaction; nothing was committed, retry the call`);
      expect(retryAfterOf(error)).toBe(100);
      expect(await app.count()).toBe(0);
      expect(await app.count(app.table)).toBe(0);
      expect(await app.call(key)).toEqual({ item: 'x' });
      expect(app.runs()).toBe(2);
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${counter}`);
      await app.close();
    }
  });

  it('keeps a serialization failure retryable even when the procedure turns it into a final client error', async () => {
    const app = await appOf(
      async (args) => {
        if (args.run === 1) await args.pool.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`);
        try {
          await args.tx.client.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`);
        } catch (error) {
          throw new TRPCError({ code: 'BAD_REQUEST', message: 'no stock', cause: new Error('reservation failed', { cause: error }) });
        }
        return insertItem(args);
      },
      { store: { isolationLevel: 'repeatable read' } },
    );
    const counter = await counterOf(app.pool, `${app.table}_counter`);
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toMatch(/serialization failure or deadlock/);
      expect(await app.count(app.table)).toBe(0);
      // The retry runs: the BAD_REQUEST was not stored.
      expect(await app.call(key)).toEqual({ item: 'x' });
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${counter}`);
      await app.close();
    }
  });

  it('answers a deadlock in the procedure (40P01) SERVICE_UNAVAILABLE; the other call commits, the retry runs', async () => {
    const bothLocked = barrier(2);
    const app = await appOf(async (args) => {
      const [mine, theirs] = args.item === 'a' ? [1, 2] : [2, 1];
      await args.tx.client.query(`UPDATE ${counter} SET n = n + 1 WHERE id = $1`, [mine]);
      if (args.run <= 2) await bothLocked();
      await args.tx.client.query(`UPDATE ${counter} SET n = n + 1 WHERE id = $1`, [theirs]);
      return insertItem(args);
    });
    const counter = await counterOf(app.pool, `${app.table}_counter`);
    try {
      const results = await Promise.allSettled([app.call('dl-a', 'a'), app.call('dl-b', 'b')]);
      const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ key: i === 0 ? 'dl-a' : 'dl-b', error: r.reason as TRPCError }] : []));
      expect(failed).toHaveLength(1);
      const [{ key, error }] = failed as [{ key: string; error: TRPCError }];
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toMatch(/serialization failure or deadlock/);
      expect(retryAfterOf(error)).toBe(100);
      expect(await app.count()).toBe(1);
      expect(await app.call(key, key.slice(-1))).toEqual({ item: key.slice(-1) });
      expect(await app.count()).toBe(2);
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${counter}`);
      await app.close();
    }
  });

  it('answers a deadlock at COMMIT (40P01) SERVICE_UNAVAILABLE with nothing of it kept; the retry runs', async () => {
    const bothWrote = barrier(2);
    const app = await appOf(async (args) => {
      await args.tx.client.query(`UPDATE ${counter} SET n = n + 1 WHERE id = $1`, [args.item === 'a' ? 1 : 2]);
      await insertItem(args);
      if (args.run <= 2) await bothWrote();
      return { item: args.item };
    });
    const counter = await counterOf(app.pool, `${app.table}_counter`);
    // At COMMIT, each call's deferred trigger updates the row the other one holds.
    await app.pool.query(`
      CREATE FUNCTION ${counter}_cross() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE ${counter} SET n = n + 1 WHERE id = CASE NEW.item WHEN 'a' THEN 2 ELSE 1 END;
        RETURN NULL;
      END $$;
      CREATE CONSTRAINT TRIGGER cross_lock AFTER INSERT ON ${app.items} DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ${counter}_cross();`);
    try {
      const results = await Promise.allSettled([app.call('cd-a', 'a'), app.call('cd-b', 'b')]);
      const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ key: i === 0 ? 'cd-a' : 'cd-b', error: r.reason as TRPCError }] : []));
      expect(failed).toHaveLength(1);
      const [{ key, error }] = failed as [{ key: string; error: TRPCError }];
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toMatch(/serialization failure or deadlock/);
      expect(retryAfterOf(error)).toBe(100);
      expect(await app.count()).toBe(1);
      expect(await app.count(app.table)).toBe(1);
      expect(await app.call(key, key.slice(-1))).toEqual({ item: key.slice(-1) });
      expect(await app.count()).toBe(2);
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${app.items}, ${counter}; DROP FUNCTION IF EXISTS ${counter}_cross`);
      await app.close();
    }
  });

  it.each([
    ['a numeric code (MongoDB’s duplicate key, 11000)', () => Object.assign(new Error('E11000 duplicate key error'), { code: 11000 })],
    ['a null cause', () => new Error('upstream', { cause: null })],
    [
      'a cause that loops back',
      () => {
        const error = new Error('upstream') as Error & { cause?: unknown };
        error.cause = error;
        return error;
      },
    ],
  ])('answers a procedure error whose cause has %s as the procedure’s own, and frees the key at once', async (_name, cause) => {
    const app = await appOf(async (args) => {
      await insertItem(args);
      throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'upstream failed', cause: cause() });
    });
    try {
      const key = randomUUID();
      for (const run of [1, 2]) {
        const error = await trpcErrorOf(app.call(key));
        expect({ code: error.code, message: error.message }).toEqual({ code: 'INTERNAL_SERVER_ERROR', message: 'upstream failed' });
        expect(app.runs()).toBe(run);
      }
      expect(await app.count()).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('refuses durable steps in the procedure with INVALID_OPTION: the step never runs and nothing is kept', async () => {
    let charged = 0;
    const app = await appOf(async (args) => {
      await insertItem(args);
      return args.tx.step('charge', () => ++charged);
    });
    try {
      const error = await trpcErrorOf(app.call(randomUUID()));
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).toBe(
        'trpc-idempotency: durable steps are not available in a transactional procedure: a step recorded inside the transaction would ' +
          'roll back with the attempt it has to outlive (see docs/steps.md)',
      );
      expect(isIdempotencyError(error.cause) && error.cause.code).toBe('INVALID_OPTION');
      expect(charged).toBe(0);
      expect(await app.count()).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('does not store an error when shouldStoreError throws: the key is free at once', async () => {
    const app = await appOf(
      async (args) => {
        await insertItem(args);
        throw new TRPCError({ code: 'BAD_REQUEST', message: 'no stock' });
      },
      {
        idempotency: {
          shouldStoreError: () => {
            throw new Error('policy broke');
          },
        },
      },
    );
    try {
      const key = randomUUID();
      expect((await trpcErrorOf(app.call(key))).code).toBe('BAD_REQUEST');
      expect((await trpcErrorOf(app.call(key))).code).toBe('BAD_REQUEST');
      expect(app.runs()).toBe(2);
      expect(await app.count(app.table)).toBe(0);
    } finally {
      await app.close();
    }
  });

  it("gives a waiting duplicate up with CONFLICT once waitTimeoutMs has passed while the key is still held", async () => {
    const hold = deferred();
    const inside = deferred();
    const app = await appOf(
      async (args) => {
        if (args.run === 1) {
          inside.resolve();
          await hold.promise;
        }
        return insertItem(args);
      },
      { idempotency: { onInProgress: 'wait', waitTimeoutMs: 300 } },
    );
    try {
      const key = randomUUID();
      const first = app.call(key);
      await inside.promise;
      const before = app.begins();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('CONFLICT');
      // It claimed on arrival and once more when its wait ended: waiting sends no claims in between.
      expect(app.begins() - before).toBe(2);
      hold.resolve();
      expect(await first).toEqual({ item: 'x' });
      expect(app.runs()).toBe(1);
    } finally {
      hold.resolve();
      await app.close();
    }
  });

  it('answers SERVICE_UNAVAILABLE (retry in 1 s) when the connection is lost while the procedure waits on something else', async () => {
    const app = await appOf(async (args) => {
      if (args.run === 1) {
        const aborted = once(args.tx.signal, 'abort');
        await args.pool.query('SELECT pg_terminate_backend($1)', [await backendPid(args.tx.client)]);
        await aborted;
        throw new Error('the payment service call was abandoned');
      }
      return insertItem(args);
    });
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toBe(`trpc-idempotency: the database connection of mutation "order" was lost before COMMIT; nothing was committed, retry the call`);
      expect(retryAfterOf(error)).toBe(1000);
      expect(await app.count(app.table)).toBe(0);
      expect(await app.call(key)).toEqual({ item: 'x' });
    } finally {
      await app.close();
    }
  });

  it("answers the procedure's own error when another connection it used was terminated: its transaction's was not", async () => {
    const app = await appOf(async (args) => {
      await insertItem(args);
      if (args.run === 1) {
        const other = await args.pool.connect();
        other.on('error', () => {});
        try {
          // An audit write on a connection of the procedure's own, outside the transaction, dies with 57P01.
          await other.query('SELECT pg_terminate_backend(pg_backend_pid())');
        } finally {
          other.release(true);
        }
      }
      return { item: args.item };
    });
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).toMatch(/terminating connection due to administrator command/);
      expect(error.cause).toMatchObject({ code: '57P01' });
      expect(app.events.filter((e) => e.type === 'released')).toMatchObject([{ code: 'INTERNAL_SERVER_ERROR' }]);
      expect(await app.count()).toBe(0);
      expect(await app.call(key)).toEqual({ item: 'x' });
      expect(await app.count()).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('answers INTERNAL_SERVER_ERROR when its COMMIT fails on a deferred constraint: nothing kept, the key free', async () => {
    const app = await appOf(async (args) => {
      await args.tx.client.query(`INSERT INTO ${checked} (v) VALUES (1)${args.run === 1 ? ', (1)' : ''}`);
      return insertItem(args);
    });
    const checked = `${app.table}_checked`;
    await app.pool.query(deferredUniqueSql(checked));
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).toBe(
        'the transaction of mutation "order" was aborted by a failed statement (or its COMMIT failed); nothing was committed',
      );
      expect(error.cause).toMatchObject({ code: '23505' });
      expect(await app.count()).toBe(0);
      expect(await app.call(key)).toEqual({ item: 'x' });
      expect(await app.count(checked)).toBe(1);
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${checked}`);
      await app.close();
    }
  });

  it('frees the key and keeps nothing when a middleware inside it forgets `return next()`', async () => {
    const app = await appOf(insertItem);
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key, 'forgetful'));
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).toMatch(/did you forget to `return next\(\)`/);
      expect(await app.count()).toBe(0);
      expect(app.events.filter((e) => e.type === 'released')).toMatchObject([{ code: 'INTERNAL_SERVER_ERROR' }]);
      await trpcErrorOf(app.call(key, 'forgetful'));
      expect(app.runs()).toBe(2);
    } finally {
      await app.close();
    }
  });

  it('refuses release() on ctx.idempotency.client: the call fails, nothing is committed, the connection stays clean', async () => {
    const app = await appOf(async (args) => {
      await insertItem(args);
      if (args.run === 1) args.tx.client.release();
      return { item: args.item };
    }, { pool: { max: 1 } });
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).toMatch(/^trpc-idempotency: ctx\.idempotency\.client belongs to the transaction of this call.*do not call release\(\) on it$/);
      expect(await app.count()).toBe(0);
      expect(app.events.filter((e) => e.type === 'released')).toHaveLength(1);
      // The pool's one connection came back with no transaction open, and the key is free: the retry runs once.
      const { rows } = await app.pool.query<{ open: string | null }>('SELECT txid_current_if_assigned()::text AS open');
      expect(rows).toEqual([{ open: null }]);
      expect(await app.call(key)).toEqual({ item: 'x' });
      expect(await app.count()).toBe(1);
      expect(app.runs()).toBe(2);
    } finally {
      await app.close();
    }
  });

  it('commits the rows and a not-stored marker for a result over maxResultBytes: the retry gets CONFLICT, never a second run', async () => {
    const app = await appOf(async (args) => ({ ...(await insertItem(args)), blob: 'y'.repeat(500) }), { idempotency: { maxResultBytes: 100 } });
    try {
      const key = randomUUID();
      expect(await app.call(key)).toMatchObject({ item: 'x' });
      expect(app.events.filter((e) => e.type === 'not_stored')).toMatchObject([{ reason: 'too_large', limitBytes: 100, path: 'order' }]);
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('CONFLICT');
      expect(isIdempotencyError(error.cause) && error.cause.code).toBe('NOT_STORED');
      expect(app.runs()).toBe(1);
      expect(await app.count()).toBe(1);
    } finally {
      await app.close();
    }
  });
});

describe('idempotent({ transactional: true }) without an onEvent listener (the default)', () => {
  it('answers every outcome as with one: released, not stored, a failed COMMIT, a forgotten next()', async () => {
    const app = await appOf(
      async (args) => {
        if (args.item === 'transient') throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'try later' });
        if (args.item === 'deferred') await args.tx.client.query(`INSERT INTO ${checked} (v) VALUES (1), (1)`);
        return { ...(await insertItem(args)), blob: args.item === 'big' ? 'y'.repeat(500) : '' };
      },
      { events: false, idempotency: { maxResultBytes: 100 } },
    );
    const checked = `${app.table}_checked`;
    await app.pool.query(deferredUniqueSql(checked));
    try {
      expect(await app.call(randomUUID(), 'ok')).toEqual({ item: 'ok', blob: '' });
      expect((await trpcErrorOf(app.call(randomUUID(), 'transient'))).message).toBe('try later');
      expect(await app.call(randomUUID(), 'big')).toMatchObject({ item: 'big' });
      expect((await trpcErrorOf(app.call(randomUUID(), 'deferred'))).message).toMatch(/was aborted by a failed statement/);
      expect((await trpcErrorOf(app.call(randomUUID(), 'forgetful'))).message).toMatch(/did you forget to `return next\(\)`/);
      expect(await app.count()).toBe(2);
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${checked}`);
      await app.close();
    }
  });
});

describe('idempotent({ transactional: true }) on a store of your own', () => {
  it('answers a claim outcome outside the contract INTERNAL_SERVER_ERROR (RECORD_CORRUPT) without running or claiming again', async () => {
    const inner = createMemoryStore();
    let begins = 0;
    const store: TransactionalStore = {
      ...inner,
      transactional: {
        begin: async () => {
          begins++;
          return { status: 'paused' } as never;
        },
        wait: (request) => inner.wait(request),
      },
    };
    const t = initTRPC.context<AppContext>().create();
    const { idempotent } = createIdempotency<AppContext>({ store });
    let ran = 0;
    const router = t.router({ order: t.procedure.use(idempotent({ transactional: true })).mutation(() => ++ran) });
    const error = await trpcErrorOf(router.createCaller({ headers: { 'idempotency-key': 'k' } }).order());
    expect(error.code).toBe('INTERNAL_SERVER_ERROR');
    expect(isIdempotencyError(error.cause) && error.cause.code).toBe('RECORD_CORRUPT');
    expect(error.cause).toHaveProperty('message', 'trpc-idempotency: the store returned an unknown claim outcome "paused"');
    expect({ ran, begins }).toEqual({ ran: 0, begins: 1 });
  });
});

describe('idempotent({ transactional: true }): events and reports', () => {
  it('reports claimed, completed and released with the durations of the injected clock', async () => {
    const clock = createManualClock();
    const app = await appOf(
      async (args) => {
        await clock.advance(250);
        if (args.item === 'final') throw new TRPCError({ code: 'BAD_REQUEST', message: 'no stock' });
        if (args.item === 'transient') throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'try later' });
        if (args.item === 'deferred') await args.tx.client.query(`INSERT INTO ${checked} (v) VALUES (1), (1)`);
        return insertItem(args);
      },
      { idempotency: { clock } },
    );
    const checked = `${app.table}_checked`;
    await app.pool.query(deferredUniqueSql(checked));
    const eventsOf = async (item: string) => {
      app.events.length = 0;
      const key = randomUUID();
      await app.call(key, item).catch(() => {});
      return app.events.map(({ keyHash: _keyHash, ...event }) => event);
    };
    const stored = async (): Promise<number> =>
      Number((await app.pool.query<{ n: number }>(`SELECT max(octet_length(result)) AS n FROM ${app.table}`)).rows[0]?.n);
    try {
      const ok = await eventsOf('ok');
      const fence = (ok[0] as { fence: number }).fence;
      expect(ok).toEqual([
        { type: 'claimed', fence, takeover: false, durationMs: 0, path: 'order' },
        { type: 'completed', bytes: await stored(), outcome: 'ok', durationMs: 250, path: 'order' },
      ]);
      await app.pool.query(`DELETE FROM ${app.table}`);
      expect((await eventsOf('final'))[1]).toEqual({ type: 'completed', bytes: await stored(), outcome: 'error', durationMs: 250, path: 'order' });
      expect((await eventsOf('transient'))[1]).toEqual({ type: 'released', code: 'INTERNAL_SERVER_ERROR', durationMs: 250, path: 'order' });
      const deferredEvents = await eventsOf('deferred');
      expect(deferredEvents.slice(1)).toEqual([
        { type: 'store_error', operation: 'complete', error: expect.objectContaining({ code: '23505' }), failedOpen: false, path: 'order' },
        { type: 'released', code: 'INTERNAL_SERVER_ERROR', durationMs: 250, path: 'order' },
      ]);
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${checked}`);
      await app.close();
    }
  });

  it("reports each key's fate in Idempotency-Status: executed, released, store_unavailable", async () => {
    const app = await appOf(
      async (args) => {
        if (args.item === 'transient') throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'try later' });
        if (args.item === 'deferred') await args.tx.client.query(`INSERT INTO ${checked} (v) VALUES (1), (1)`);
        if (args.item === 'conflict') {
          await args.pool.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`);
          await args.tx.client.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`);
        }
        return insertItem(args);
      },
      { store: { isolationLevel: 'repeatable read' } },
    );
    const checked = `${app.table}_checked`;
    await app.pool.query(deferredUniqueSql(checked));
    const counter = await counterOf(app.pool, `${app.table}_counter`);
    const fate = async (item: string) => {
      const key = randomUUID();
      const { status, report } = await app.post(key, item);
      return { status, report: (report as Record<string, string>)[key] };
    };
    try {
      expect(await fate('ok')).toEqual({ status: 200, report: 'executed' });
      expect(await fate('transient')).toEqual({ status: 500, report: 'released' });
      expect(await fate('deferred')).toEqual({ status: 500, report: 'released' });
      expect(await fate('forgetful')).toEqual({ status: 500, report: 'released' });
      expect(await fate('conflict')).toEqual({ status: 503, report: 'store_unavailable' });
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${checked}, ${counter}`);
      await app.close();
    }
  });

  it('reports an unreachable database as a store_error of the claim and store_unavailable, the driver’s error kept', async () => {
    const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/none', max: 2 });
    pool.on('error', () => {});
    // Long enough that only an error of the connection itself can answer in time.
    const store = createPostgresStore({ pool, operationTimeoutMs: 20_000, sweepIntervalMs: 0 });
    const events: IdempotencyEvent[] = [];
    const t = initTRPC.context<AppContext>().create();
    const { idempotent } = createIdempotency<AppContext, PostgresStore>({ store, onEvent: (event) => events.push(event) });
    let ran = 0;
    const router = t.router({
      order: t.procedure.use(idempotent({ transactional: true })).mutation(() => ++ran),
    });
    const server = await startServer(router);
    try {
      const response = await fetch(`${server.url}/order`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'k1' } });
      expect(response.status).toBe(503);
      expect(JSON.parse(response.headers.get('idempotency-status') ?? 'null')).toEqual({ k1: 'store_unavailable' });
      expect(events.map(({ keyHash: _keyHash, ...event }) => event)).toEqual([
        { type: 'store_error', operation: 'claim', error: expect.any(Error), failedOpen: false, path: 'order' },
      ]);
      const { error } = events[0] as { error: Error };
      expect(error.message).toMatch(/^trpc-idempotency: postgres connection failed: .*ECONNREFUSED.*; the procedure was not run$/);
      expect(ran).toBe(0);
    } finally {
      await server.close();
      await store.close();
      await pool.end();
    }
  });
});

// Each test here stalls its own PostgreSQL server: never the shared one.
describe.runIf(postgresTarget().canSpawn)('transactional mode when PostgreSQL stalls', () => {
  const operationTimeoutMs = 300;
  let server: PostgresServer;
  let pool: pg.Pool;
  let store: PostgresStore;

  beforeAll(async () => {
    server = await startPostgresServer();
    pool = new pg.Pool({ connectionString: server.url, max: 4 });
    pool.on('error', () => {});
    await createPostgresTable(pool, 'stall');
    store = createPostgresStore({ pool, table: 'stall', operationTimeoutMs, sweepIntervalMs: 0 });
  });
  afterEach(() => {
    server.resume();
  });
  afterAll(async () => {
    await store?.close();
    await pool?.end().catch(() => {});
    await server?.stop();
  });

  it('bounds begin by operationTimeoutMs from its start: the wait for a pooled connection counts', async () => {
    // One connection, busy for 70% of the bound when begin asks for it; the server stalls as it is given back.
    const busyPool = new pg.Pool({ connectionString: server.url, max: 1 });
    busyPool.on('error', () => {});
    const busyStore = createPostgresStore({ pool: busyPool, table: 'stall', operationTimeoutMs: 1000, sweepIntervalMs: 0 });
    const busy = await busyPool.connect();
    try {
      const started = performance.now();
      const beginning = rejectionOf(busyStore.transactional.begin(claimOf()));
      await new Promise((resolve) => setTimeout(resolve, 700));
      server.pause();
      busy.release();
      const error = await beginning;
      const elapsed = performance.now() - started;
      expect(isIdempotencyError(error) && error.code, String(error)).toBe('STORE_UNAVAILABLE');
      expect(String((error as Error).message)).toMatch(/no answer within 1000 ms \(operationTimeoutMs\)/);
      // 1000 ms from the start, not 1000 from the checkout (1700).
      expect(elapsed).toBeGreaterThanOrEqual(990);
      expect(elapsed).toBeLessThan(1450);
    } finally {
      server.resume();
      await busyStore.close();
      await busyPool.end();
    }
  });

  it('fails a waiter with STORE_UNAVAILABLE within operationTimeoutMs when its read of the key gets no answer', async () => {
    const holder = await acquire(store);
    try {
      const id = (await holder.transaction.client.query<{ id: string }>('SELECT id FROM stall')).rows[0]?.id as string;
      // The waiter's first read (a connection of its own, given back after) finds the key held; then everything stops.
      const firstRead = once(pool, 'release');
      const waiting = store.transactional.wait({ id, timeoutMs: 20_000 });
      await firstRead;
      server.pause();
      const started = performance.now();
      const error = await rejectionOf(waiting);
      const elapsed = performance.now() - started;
      expect(isIdempotencyError(error) && error.code, String(error)).toBe('STORE_UNAVAILABLE');
      expect(String((error as Error).message)).toMatch(/no answer within 300 ms \(operationTimeoutMs\)/);
      // The next read is due within 101 ms (the key's retry hint), then bounded by operationTimeoutMs.
      expect(elapsed).toBeLessThan(101 + operationTimeoutMs + 700);
    } finally {
      server.resume();
      await holder.transaction.rollback();
    }
  });
});
