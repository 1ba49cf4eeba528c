/**
 * Transactional mode with Drizzle: the order row and the idempotency record commit in one PostgreSQL transaction.
 * `order.create` wraps the open transaction's connection (`ctx.idempotency.client`, a node-postgres PoolClient)
 * in Drizzle's node-postgres driver, so its insert is part of that transaction: if the process dies before COMMIT
 * there is no order and no claim, and a retry runs at once; once it commits, every retry replays the same order.
 * Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx examples/postgres-drizzle/server.ts`.
 */
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import { initTRPC, TRPCError } from '@trpc/server';
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgTable, serial, text, timestamp } from 'drizzle-orm/pg-core';
import pg from 'pg';
import superjson from 'superjson';
import { createIdempotency, idempotencyErrorData, idempotencyResponseMeta } from 'trpc-idempotency';
import type { PostgresStore } from 'trpc-idempotency/postgres';
import { createPostgresStore, createPostgresTable } from 'trpc-idempotency/postgres';
import { listenLocal } from '../shared/listen';
import { isMain, orderInput, userIdFrom } from '../shared/orders';

/** The business table, as Drizzle sees it. */
export const orders = pgTable('drizzle_orders', {
  id: serial('id').primaryKey(),
  userId: text('user_id').notNull(),
  item: text('item').notNull(),
  quantity: integer('quantity').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Your migration would create it; the example does it at start. */
const ORDERS_SQL = `CREATE TABLE IF NOT EXISTS drizzle_orders (
  id serial PRIMARY KEY, user_id text NOT NULL, item text NOT NULL, quantity integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now())`;

interface Context {
  req: unknown;
  userId: string;
}

export const createDrizzleOrderApp = (pool: pg.Pool) => {
  const t = initTRPC.context<Context>().create({
    transformer: superjson,
    errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, idempotency: idempotencyErrorData(error) } }),
  });
  // The store's type as the second type argument types ctx.idempotency.client as pg's PoolClient.
  const { idempotent } = createIdempotency<Context, PostgresStore>({
    store: createPostgresStore({ pool }),
    scope: ({ ctx }) => ctx.userId,
  });
  // Reads outside any transaction go through the pool.
  const db = drizzle(pool);

  const router = t.router({
    order: t.router({
      create: t.procedure
        .input(orderInput)
        .use(idempotent({ transactional: true, required: true }))
        .mutation(async ({ input, ctx }) => {
          if (!ctx.idempotency) throw new TRPCError({ code: 'BAD_REQUEST', message: 'send an Idempotency-Key' });
          // Drizzle over the transaction's connection: this insert commits with the stored result, or not at all.
          // Never call tx.transaction() or send COMMIT here: the middleware owns the transaction.
          const tx = drizzle(ctx.idempotency.client);
          const [order] = await tx
            .insert(orders)
            .values({ userId: ctx.userId, item: input.item, quantity: input.quantity })
            .returning();
          if (!order) throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'insert returned no row' });
          return order;
        }),
      list: t.procedure.query(({ ctx }) => db.select().from(orders).where(eq(orders.userId, ctx.userId))),
    }),
  });
  return { router, db };
};

export type DrizzleOrderRouter = ReturnType<typeof createDrizzleOrderApp>['router'];

export interface DrizzleExampleOptions {
  port?: number;
  /** Your pool; one on `DATABASE_URL` when omitted (and ended by `close`). */
  pool?: pg.Pool;
}

export const start = async ({ port = 3000, pool: given }: DrizzleExampleOptions = {}) => {
  const pool = given ?? new pg.Pool({ connectionString: process.env.DATABASE_URL });
  pool.on('error', (error) => console.error('postgres pool error', error)); // node-postgres asks for a listener
  await createPostgresTable(pool); // or postgresTableSql() in a migration
  await pool.query(ORDERS_SQL);
  const { router, db } = createDrizzleOrderApp(pool);
  const server = createHTTPServer({
    router,
    createContext: ({ req }) => ({ req, userId: userIdFrom(req.headers['x-user-id']) }),
    responseMeta: idempotencyResponseMeta(),
  });
  const listening = await listenLocal(server, port);
  return {
    ...listening,
    /** Every order in the table. */
    orders: () => db.select().from(orders),
    close: async () => {
      await listening.close();
      if (!given) await pool.end();
    },
  };
};

if (isMain(import.meta.url)) {
  if (!process.env.DATABASE_URL) throw new Error('Set DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test');
  const { url } = await start({ port: Number(process.env.PORT ?? 3000) });
  console.log(`postgres-drizzle example listening on ${url}`);
}
