import { randomUUID } from 'node:crypto';
import { initTRPC } from '@trpc/server';
import type { TRPCError } from '@trpc/server';
import type pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { createIdempotency, createMemoryStore, isIdempotencyError } from '../../src/index';
import type { IdempotencyEvent, IdempotencyExecution, TransactionalExecution } from '../../src/index';
import { createRedisStore } from '../../src/redis/index';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import type { PostgresStore, PostgresStoreOptions } from '../../src/stores/postgres';
import { connectPool, dropTable, randomTable } from '../helpers/postgresClients';
import { deferred, trpcErrorOf } from '../server/helpers';
import type { AppOptions } from './fixtures/transactionalApp';
import { appTablesSql, makeAppRouter } from './fixtures/transactionalApp';

/** A store on a fresh table, the app's tables beside it, and a caller per key. */
const setup = async (storeOptions: Partial<PostgresStoreOptions> = {}, app: Partial<AppOptions> = {}) => {
  const pool = connectPool();
  const table = randomTable();
  const orders = `${table}_orders`;
  const runs = `${table}_runs`;
  await createPostgresTable(pool, table);
  await pool.query(appTablesSql({ orders, runs }));
  const store = createPostgresStore({ pool, table, ...storeOptions });
  const events: IdempotencyEvent[] = [];
  const router = makeAppRouter({ store, pool, orders, runs, onEvent: (event) => events.push(event), ...app });
  const caller = (key: string) => router.createCaller({ key });
  const count = async (of: string, where = 'true'): Promise<number> =>
    Number((await pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${of} WHERE ${where}`)).rows[0]?.n);
  const records = async () =>
    (await pool.query<{ state: string; result: string | null }>(`SELECT state, result FROM ${table}`)).rows;
  return {
    pool,
    store,
    table,
    events,
    caller,
    orders: () => count(orders),
    runs: () => count(runs),
    records,
    close: async () => {
      await store.close();
      await pool.query(`DROP TABLE IF EXISTS ${orders}, ${runs}`);
      await dropTable(pool, table);
      await pool.end();
    },
  };
};
type Setup = Awaited<ReturnType<typeof setup>>;

describe('idempotent({ transactional: true }) on the PostgreSQL store', () => {
  let app: Setup;
  beforeAll(async () => {
    app = await setup();
  });
  afterAll(async () => {
    await app?.close();
  });

  it('commits the business row and the completed record together, then replays without running', async () => {
    const key = randomUUID();
    const first = await app.caller(key).order({ item: 'book' });
    expect(first).toMatchObject({ item: 'book', takeover: false });
    expect(await app.orders()).toBe(1);
    const replay = await app.caller(key).order({ item: 'book' });
    expect(replay).toEqual(first);
    expect(await app.orders()).toBe(1);
    expect(await app.runs()).toBe(1);
    expect((await app.records()).map((r) => r.state)).toEqual(['c']);
  });

  it('stores a final client error and replays it, with the business writes rolled back', async () => {
    const before = await app.orders();
    const key = randomUUID();
    const error = await trpcErrorOf(app.caller(key).order({ item: 'rare', outcome: 'final' }));
    expect(error.code).toBe('BAD_REQUEST');
    expect(await app.orders()).toBe(before);
    const runs = await app.runs();
    const again = await trpcErrorOf(app.caller(key).order({ item: 'rare', outcome: 'final' }));
    expect({ code: again.code, message: again.message }).toEqual({ code: 'BAD_REQUEST', message: 'no stock for rare' });
    expect(await app.runs()).toBe(runs); // replayed, not run
    expect(await app.orders()).toBe(before);
  });

  it('rolls everything back on a transient error: no row, no record, and the retry runs at once', async () => {
    const before = await app.orders();
    const records = (await app.records()).length;
    const key = randomUUID();
    const error = await trpcErrorOf(app.caller(key).order({ item: 'pen', outcome: 'transient' }));
    expect(error.code).toBe('INTERNAL_SERVER_ERROR');
    expect(await app.orders()).toBe(before);
    expect((await app.records()).length).toBe(records);
    const retry = await app.caller(key).order({ item: 'pen' });
    expect(retry).toMatchObject({ item: 'pen', takeover: false });
    expect(await app.orders()).toBe(before + 1);
  });

  it('answers a concurrent duplicate CONFLICT at once, while the first still holds its transaction', async () => {
    const hold = deferred();
    const inserted = deferred();
    const held = await setup({}, { afterInsert: async () => (inserted.resolve(), hold.promise) });
    try {
      const key = randomUUID();
      const first = held.caller(key).order({ item: 'lamp' });
      await inserted.promise;
      // The first call's uncommitted row lock would block a plain INSERT of the same id until it ends: the
      // duplicate must come back while `hold` is still pending (else this test times out).
      const error = await trpcErrorOf(held.caller(key).order({ item: 'lamp' }));
      expect(error.code).toBe('CONFLICT');
      expect(isIdempotencyError(error.cause) && error.cause.code).toBe('IN_PROGRESS');
      expect(await held.orders()).toBe(0); // the first one's row is not visible yet
      hold.resolve();
      expect(await first).toMatchObject({ item: 'lamp' });
      expect(await held.orders()).toBe(1);
      expect(await held.runs()).toBe(1);
    } finally {
      hold.resolve();
      await held.close();
    }
  });

  it("lets a duplicate wait with onInProgress 'wait' and replays the first one's result when it commits", async () => {
    const hold = deferred();
    const inserted = deferred();
    const held = await setup({}, { onInProgress: 'wait', afterInsert: async () => (inserted.resolve(), hold.promise) });
    try {
      const key = randomUUID();
      const first = held.caller(key).order({ item: 'desk' });
      await inserted.promise;
      const second = held.caller(key).order({ item: 'desk' });
      hold.resolve();
      const [a, b] = await Promise.all([first, second]);
      expect(b).toEqual(a);
      expect(await held.runs()).toBe(1);
      expect(await held.orders()).toBe(1);
    } finally {
      hold.resolve();
      await held.close();
    }
  });

  it('answers INTERNAL_SERVER_ERROR and keeps nothing when the procedure ignores a failed statement', async () => {
    const before = await app.orders();
    const key = randomUUID();
    const error = await trpcErrorOf(app.caller(key).order({ item: 'cup', outcome: 'swallow' }));
    expect(error.code).toBe('INTERNAL_SERVER_ERROR');
    expect(await app.orders()).toBe(before);
    expect(await app.caller(key).order({ item: 'cup' })).toMatchObject({ item: 'cup' });
  });

  it('refuses to store a result for a transaction the procedure committed itself', async () => {
    const key = randomUUID();
    const error = await trpcErrorOf(app.caller(key).order({ item: 'mug', outcome: 'commit' }));
    expect(error.code).toBe('INTERNAL_SERVER_ERROR');
    expect(error.message).toMatch(/ended its transaction itself/);
    // Its COMMIT made the claim visible as a plain in-progress lease: retries are refused until it runs out.
    expect((await trpcErrorOf(app.caller(key).order({ item: 'mug', outcome: 'commit' }))).code).toBe('CONFLICT');
  });

  it('types ctx.idempotency.client as the pool client, and leaves other procedures as they were', () => {
    const t = initTRPC.context<{ key?: string }>().create();
    const { idempotent } = createIdempotency<{ key?: string }, PostgresStore>({ store: app.store });
    t.router({
      transactional: t.procedure.use(idempotent({ transactional: true })).mutation(({ ctx }) => {
        expectTypeOf(ctx.idempotency).toEqualTypeOf<TransactionalExecution<pg.PoolClient> | null>();
        expectTypeOf(ctx.key).toEqualTypeOf<string | undefined>();
        return ctx.idempotency?.client.query('SELECT 1');
      }),
      plain: t.procedure.use(idempotent()).mutation(({ ctx }) => {
        expectTypeOf(ctx.idempotency).toEqualTypeOf<IdempotencyExecution | null>();
        return null;
      }),
    });
    // Without the store's type, the client is unknown: no method can be called on it by mistake.
    const untyped = createIdempotency<{ key?: string }>({ store: app.store });
    t.procedure.use(untyped.idempotent({ transactional: true })).mutation(({ ctx }) => {
      expectTypeOf(ctx.idempotency).toEqualTypeOf<TransactionalExecution | null>();
      return null;
    });
  });
});

describe('transactional: failures', () => {
  it('answers a serialization failure SERVICE_UNAVAILABLE with nothing committed, and the retry runs once', async () => {
    const bothRead = deferred();
    let reads = 0;
    const app = await setup(
      { isolationLevel: 'serializable' },
      {
        afterInsert: async () => {
          if (++reads === 2) bothRead.resolve();
          await bothRead.promise;
        },
      },
    );
    try {
      const [a, b] = await Promise.allSettled([
        app.caller('skew-a').order({ item: 'a', outcome: 'read_then_insert' }),
        app.caller('skew-b').order({ item: 'b', outcome: 'read_then_insert' }),
      ]);
      const failed = [a, b].filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(failed).toHaveLength(1);
      const error = failed[0]?.reason as TRPCError;
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toMatch(/serialization failure/);
      expect(await app.orders()).toBe(1);
      const key = a.status === 'rejected' ? 'skew-a' : 'skew-b';
      await expect(app.caller(key).order({ item: key.slice(-1), outcome: 'read_then_insert' })).resolves.toBeDefined();
      expect(await app.orders()).toBe(2);
    } finally {
      bothRead.resolve();
      await app.close();
    }
  });

  it('answers a terminated backend mid-procedure with a retryable error; the retry runs once and leaves 1 row', async () => {
    const admin = connectPool();
    let terminate = true;
    const app = await setup(
      {},
      {
        afterInsert: async ({ pid }) => {
          if (!terminate) return;
          terminate = false;
          await admin.query('SELECT pg_terminate_backend($1)', [pid]);
        },
      },
    );
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.caller(key).order({ item: 'chair' }));
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toMatch(/lost before COMMIT; nothing was committed/);
      expect(await app.orders()).toBe(0);
      expect(await app.records()).toEqual([]);
      const retry = await app.caller(key).order({ item: 'chair' });
      expect(retry).toMatchObject({ item: 'chair', takeover: false });
      expect(await app.orders()).toBe(1);
      expect(await app.caller(key).order({ item: 'chair' })).toEqual(retry);
      expect(await app.runs()).toBe(2);
    } finally {
      await app.close();
      await admin.end();
    }
  });

  it('answers SERVICE_UNAVAILABLE within operationTimeoutMs when the pool is exhausted, and runs nothing', async () => {
    const app = await setup({ operationTimeoutMs: 300 });
    const pool = connectPool({ max: 1 });
    const store = createPostgresStore({ pool, table: app.table, operationTimeoutMs: 300 });
    const busy = await pool.connect();
    try {
      const router = makeAppRouter({ store, pool, orders: `${app.table}_orders`, runs: `${app.table}_runs` });
      const started = performance.now();
      const error = await trpcErrorOf(router.createCaller({ key: randomUUID() }).order({ item: 'x' }));
      const elapsed = performance.now() - started;
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      // Clients get the plain message; the store's own text stays on the cause, for the server's logs.
      expect(error.message).toMatch(/the procedure was not run/);
      expect((error.cause as Error).message).toMatch(/no connection within 300 ms/);
      expect(elapsed).toBeLessThan(300 + 1500);
      expect(await app.runs()).toBe(0);
    } finally {
      busy.release();
      await store.close();
      await pool.end();
      await app.close();
    }
  });

  it('answers SERVICE_UNAVAILABLE when the database is unreachable, and runs nothing', async () => {
    const pg = await import('pg');
    const pool = new pg.default.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/none', max: 2 });
    pool.on('error', () => {});
    const store = createPostgresStore({ pool, operationTimeoutMs: 500 });
    let ran = 0;
    try {
      const router = makeAppRouter({ store, pool, orders: 'unused', runs: 'unused', afterInsert: () => void ran++ });
      const error = await trpcErrorOf(router.createCaller({ key: randomUUID() }).order({ item: 'x' }));
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(ran).toBe(0);
    } finally {
      await store.close();
      await pool.end();
    }
  });
});

describe('transactional: a COMMIT whose outcome the caller cannot know', () => {
  /** An app whose COMMIT of item 'slow' sleeps `ms` once (a deferred trigger; the sequence is not rolled back). */
  const slowCommitApp = async (ms: number, storeOptions: Partial<PostgresStoreOptions> = {}) => {
    const pids: number[] = [];
    const app = await setup(storeOptions, { onInProgress: 'wait', afterInsert: ({ pid }) => void pids.push(pid) });
    const orders = `${app.table}_orders`;
    await app.pool.query(`
      CREATE SEQUENCE ${app.table}_once;
      CREATE FUNCTION ${app.table}_slow() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('${app.table}_once') = 1 THEN PERFORM pg_sleep(${ms / 1000}); END IF;
        RETURN NULL;
      END $$;
      CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON ${orders} DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW WHEN (NEW.item = 'slow') EXECUTE FUNCTION ${app.table}_slow();`);
    /** Resolves once the COMMIT of the first call is sleeping in the trigger. */
    const committing = async (): Promise<number> => {
      for (;;) {
        const pid = pids[0];
        if (pid !== undefined) {
          const { rows } = await app.pool.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'", [pid]);
          if (rows.length > 0) return pid;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const close = async () => {
      await app.close().catch(() => {});
    };
    return { ...app, committing, close };
  };

  it('answers SERVICE_UNAVAILABLE when the connection dies during COMMIT; the retry runs, once, when it did not land', async () => {
    const app = await slowCommitApp(30_000);
    const admin = connectPool();
    try {
      const key = randomUUID();
      const first = trpcErrorOf(app.caller(key).order({ item: 'slow' }));
      const pid = await app.committing();
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      const error = await first;
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toMatch(/lost during COMMIT/);
      expect(await app.orders()).toBe(0);
      const retry = await app.caller(key).order({ item: 'slow' });
      expect(retry).toMatchObject({ item: 'slow', takeover: false });
      expect(await app.orders()).toBe(1);
      expect(await app.runs()).toBe(2);
    } finally {
      await admin.end();
      await app.close();
    }
  });

  it('answers SERVICE_UNAVAILABLE when COMMIT gets no answer in time; the retry replays when it did land', async () => {
    const app = await slowCommitApp(1500, { operationTimeoutMs: 500 });
    try {
      const key = randomUUID();
      const first = trpcErrorOf(app.caller(key).order({ item: 'slow' }));
      await app.committing();
      const error = await first;
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toMatch(/lost during COMMIT/);
      // The backend finishes its COMMIT after the client gave up: the retry waits for it and replays.
      const retry = await app.caller(key).order({ item: 'slow' });
      expect(retry).toMatchObject({ item: 'slow' });
      expect(await app.orders()).toBe(1);
      expect(await app.runs()).toBe(1);
    } finally {
      await app.close();
    }
  });
});

describe('transactional: option checks', () => {
  it.each([
    ['the default memory store', () => createIdempotency()],
    ['a memory store', () => createIdempotency({ store: createMemoryStore() })],
    ['a Redis store', () => createIdempotency({ store: createRedisStore({ redis: new Redis({ lazyConnect: true }) }) })],
  ])('refuses transactional: true on %s with INVALID_OPTION when idempotent() is called', (_name, make) => {
    const { idempotent } = make();
    let error: unknown;
    try {
      idempotent({ transactional: true });
    } catch (e) {
      error = e;
    }
    expect(isIdempotencyError(error) && error.code).toBe('INVALID_OPTION');
    expect(String(error)).toMatch(/option "transactional" needs a store with the transactional capability/);
  });

  it('refuses transactional with fail-open, and at createIdempotency on a store without the capability', () => {
    const pool = connectPool();
    try {
      const store = createPostgresStore({ pool });
      const { idempotent } = createIdempotency({ store, onStoreError: 'fail-open' });
      expect(() => idempotent({ transactional: true })).toThrow(/fail-open/);
      expect(() => idempotent({ transactional: true, onStoreError: 'fail-closed' })).not.toThrow();
      expect(() => createIdempotency({ store: createMemoryStore(), transactional: true })).toThrow(/createIdempotency: option "transactional"/);
      void store.close();
    } finally {
      void pool.end();
    }
  });
});

