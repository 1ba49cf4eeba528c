import { randomUUID } from 'node:crypto';
import { initTRPC } from '@trpc/server';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency } from '../../src/index';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import type { PostgresStore } from '../../src/stores/postgres';
import { postgresTarget } from '../helpers/postgresClients';
import type { PostgresServer } from '../helpers/postgresServer';
import { startPostgresServer } from '../helpers/postgresServer';

// What the transactional mode adds to a procedure that writes one row in its own transaction, counted on both
// sides: queries node-postgres sends (each one exchange, a round trip: the mode's statements go several to a
// query string) and statements PostgreSQL runs (pg_stat_statements, utility statements included).
describe.runIf(postgresTarget().canSpawn)('transactional mode: round trips and statements per call', () => {
  let server: PostgresServer;
  let pool: pg.Pool;
  let stats: pg.Client;
  let store: PostgresStore;
  let caller: typeof makeCaller;

  const makeCaller = (key: string) => {
    const t = initTRPC.context<{ key: string }>().create();
    const { idempotent } = createIdempotency<{ key: string }, PostgresStore>({ store, getKey: ({ ctx }) => ctx.key });
    const input = z.object({ item: z.string() });
    return t
      .router({
        // The procedure with the middleware: its one INSERT on the transaction's client.
        guarded: t.procedure
          .input(input)
          .use(idempotent({ transactional: true }))
          .mutation(async ({ ctx, input: { item } }) => {
            await ctx.idempotency?.client.query('INSERT INTO rt_orders (item) VALUES ($1)', [item]);
            return { item };
          }),
        // The same work without it: BEGIN, INSERT, COMMIT on a pooled connection.
        plain: t.procedure.input(input).mutation(async ({ input: { item } }) => {
          const client = await pool.connect();
          try {
            await client.query('BEGIN');
            await client.query('INSERT INTO rt_orders (item) VALUES ($1)', [item]);
            await client.query('COMMIT');
          } finally {
            client.release();
          }
          return { item };
        }),
      })
      .createCaller({ key });
  };

  beforeAll(async () => {
    server = await startPostgresServer({
      settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'top' },
    });
    stats = new pg.Client({ connectionString: server.url });
    await stats.connect();
    await stats.query('CREATE EXTENSION pg_stat_statements');
    pool = new pg.Pool({ connectionString: server.url, max: 4 });
    pool.on('error', () => {});
    await createPostgresTable(pool, 'rt_store');
    await pool.query('CREATE TABLE rt_orders (id bigserial PRIMARY KEY, item text NOT NULL)');
    store = createPostgresStore({ pool, table: 'rt_store' });
    caller = makeCaller;
    await caller(randomUUID()).guarded({ item: 'warm-up' });
    await caller(randomUUID()).plain({ item: 'warm-up' });
  });
  afterAll(async () => {
    await store?.close();
    await pool?.end();
    await stats?.end();
    await server?.stop();
  });

  /** Queries sent through the pool's connections, and statements the server ran for them, while `action` runs. */
  const measure = async (action: () => Promise<unknown>) => {
    let queries = 0;
    const counted = new WeakSet<object>();
    const count = (client: pg.PoolClient): void => {
      if (counted.has(client)) return;
      counted.add(client);
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      client.query = ((...args: unknown[]) => {
        if (active) queries++;
        return query(...args);
      }) as typeof client.query;
    };
    let active = true;
    pool.on('acquire', count);
    const before = await statements();
    try {
      await action();
      // The replay's ROLLBACK goes out after the answer: count once every connection is back in the pool.
      while (pool.idleCount < pool.totalCount) await new Promise((resolve) => setImmediate(resolve));
    } finally {
      active = false;
      pool.off('acquire', count);
    }
    const after = await statements();
    const ran: string[] = [];
    for (const [text, n] of after) for (let i = 0; i < n - (before.get(text) ?? 0); i++) ran.push(text);
    return { queries, statements: ran.sort() };
  };
  const statements = async (): Promise<Map<string, number>> => {
    const { rows } = await stats.query<{ query: string; calls: string }>(
      "SELECT query, calls::text FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    const byText = new Map<string, number>();
    for (const { query, calls } of rows) {
      const text = /rt_store_(\w+)_v1/.exec(query)?.[1] ?? query.split(/\s+/).slice(0, 2).join(' ').toUpperCase();
      byText.set(text, (byText.get(text) ?? 0) + Number(calls));
    }
    return byText;
  };

  it('adds no round trip to the procedure’s own BEGIN .. COMMIT, and a replay costs one on the caller’s path', async () => {
    // Each call gets its own connection: none is in the pool's idle list twice with a wrapped query.
    const plain = await measure(() => caller(randomUUID()).plain({ item: 'p' }));
    const key = randomUUID();
    const fresh = await measure(() => caller(key).guarded({ item: 'g' }));
    const replay = await measure(() => caller(key).guarded({ item: 'g' }));
    console.info(
      `transactional mode, per call: plain BEGIN/INSERT/COMMIT ${plain.queries} round trips (${plain.statements.join(', ')}); ` +
        `fresh ${fresh.queries} round trips (${fresh.statements.join(', ')}); ` +
        `replay ${replay.queries} round trips, 1 before the answer (${replay.statements.join(', ')})`,
    );
    expect(plain.queries).toBe(3);
    expect(fresh.queries).toBe(plain.queries);
    expect(fresh.statements).toEqual(['BEGIN ISOLATION', 'COMMIT', 'INSERT INTO', 'SAVEPOINT TRPC_IDEMPOTENCY', 'tx_claim', 'tx_complete']);
    expect(replay.queries).toBe(2);
    expect(replay.statements).toEqual(['BEGIN ISOLATION', 'ROLLBACK', 'SAVEPOINT TRPC_IDEMPOTENCY', 'tx_claim']);
  });
});
