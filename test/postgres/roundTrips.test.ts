import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import { initTRPC } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency } from '../../src/index';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import type { PostgresStore } from '../../src/stores/postgres';
import { postgresTarget } from '../helpers/postgresClients';
import type { PostgresServer } from '../helpers/postgresServer';
import { startPostgresServer } from '../helpers/postgresServer';

/** `pay` holds its caller until the test calls the resolver handed to `onSlow`. */
const makeRouter = (store: PostgresStore, onSlow: (resolve: () => void) => void) => {
  const t = initTRPC.context<{ req: unknown }>().create();
  const { idempotent } = createIdempotency({ store });
  return t.router({
    pay: t.procedure
      .input(z.object({ amount: z.number(), slow: z.boolean().optional() }))
      .use(idempotent())
      .mutation(async ({ input }) => {
        if (input.slow) await new Promise<void>((resolve) => onSlow(resolve));
        return { paid: input.amount };
      }),
  });
};
type PayRouter = ReturnType<typeof makeRouter>;

// Statements as PostgreSQL counts them (pg_stat_statements, top-level statements only), through the real
// middleware and a real HTTP server. Each store statement is one extended-protocol exchange: one round trip.
// The private server is needed to preload pg_stat_statements; the test database's server is left alone.
describe.runIf(postgresTarget().canSpawn)('createPostgresStore behind createIdempotency: statements per call', () => {
  let server: PostgresServer;
  let pool: pg.Pool;
  let stats: pg.Client;
  let store: PostgresStore;
  let url: string;
  let close: () => Promise<void>;
  let release: () => void = () => {};
  const table = 'round_trips';

  beforeAll(async () => {
    server = await startPostgresServer({
      settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'top' },
    });
    stats = new pg.Client({ connectionString: server.url });
    await stats.connect();
    await stats.query('CREATE EXTENSION pg_stat_statements');
    pool = new pg.Pool({ connectionString: server.url, max: 4 });
    pool.on('error', () => {});
    await createPostgresTable(pool, table);
    store = createPostgresStore({ pool, table });
    const router = makeRouter(store, (resolve) => (release = resolve));
    const http = createHTTPServer({ router, createContext: ({ req }) => ({ req }) });
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    close = () => new Promise<void>((resolve) => http.close(() => resolve()));
    await pay(randomUUID(), 1); // warm up: connections opened and statements prepared
  });
  afterAll(async () => {
    await close?.();
    await store?.close();
    await pool?.end();
    await stats?.end();
    await server?.stop();
  });

  const pay = (key: string, amount: number, slow = false) =>
    createTRPCClient<PayRouter>({ links: [httpLink({ url, headers: { 'idempotency-key': key } })] }).pay.mutate({
      amount,
      slow,
    });

  /** Statements run by the store's pool meanwhile, by function name (claim, complete, ...). */
  const record = async (action: () => Promise<unknown>): Promise<string[]> => {
    const before = await calls();
    await action();
    const after = await calls();
    const ran: string[] = [];
    for (const [fn, n] of after) for (let i = 0; i < n - (before.get(fn) ?? 0); i++) ran.push(fn);
    return ran.sort();
  };
  const calls = async (): Promise<Map<string, number>> => {
    const { rows } = await stats.query<{ query: string; calls: string }>(
      "SELECT query, calls::text FROM pg_stat_statements WHERE query LIKE '%round_trips_%'",
    );
    const byFunction = new Map<string, number>();
    for (const { query, calls: n } of rows) {
      const fn = /round_trips_(\w+)_v1/.exec(query)?.[1] ?? query;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + Number(n));
    }
    return byFunction;
  };

  it('a fresh call costs 2 statements (claim, complete) and a replay 1 (claim)', async () => {
    const key = randomUUID();
    const fresh = await record(async () => expect(await pay(key, 5)).toEqual({ paid: 5 }));
    expect(fresh).toEqual(['claim', 'complete']);
    const replay = await record(async () => expect(await pay(key, 5)).toEqual({ paid: 5 }));
    expect(replay).toEqual(['claim']);
    console.info(`statements per call on PostgreSQL: fresh ${fresh.length} (${fresh.join(', ')}), replay ${replay.length}`);
  });

  it('a concurrent duplicate costs 1 (its claim answers in_progress)', async () => {
    const key = randomUUID();
    const first = pay(key, 7, true);
    await new Promise((resolve) => setTimeout(resolve, 100)); // the first call holds the claim
    const duplicate = await record(async () => {
      const error = await pay(key, 7, true).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TRPCClientError);
      expect((error as TRPCClientError<any>).data?.code).toBe('CONFLICT');
    });
    expect(duplicate).toEqual(['claim']);
    release();
    expect(await first).toEqual({ paid: 7 });
  });

  it('sends each store call as one query on one pooled connection (client side)', async () => {
    let queries = 0;
    let checkouts = 0;
    const counted = new WeakSet<object>();
    // Count what node-postgres is asked to send: each query() is one Parse/Bind/Execute/Sync exchange.
    const count = (client: pg.PoolClient): void => {
      checkouts++;
      if (counted.has(client)) return; // the pool hands the same connections out again
      counted.add(client);
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      client.query = ((...args: unknown[]) => {
        queries++;
        return query(...args);
      }) as typeof client.query;
    };
    pool.on('acquire', count);
    try {
      const key = randomUUID();
      await pay(key, 3);
      expect({ queries, checkouts }).toEqual({ queries: 2, checkouts: 2 });
      await pay(key, 3);
      expect({ queries, checkouts }).toEqual({ queries: 3, checkouts: 3 });
    } finally {
      pool.off('acquire', count);
    }
  });
});
