import type { IncomingMessage } from 'node:http';
import { initTRPC } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import superjson from 'superjson';
import { z } from 'zod';
import type { IdempotencyEvent, IdempotencyStore, IdempotentMiddleware } from 'trpc-idempotency';
import { createIdempotency, idempotencyErrorData, idempotencyResponseMeta } from 'trpc-idempotency';
import { listenLocal } from '../shared/listen';

interface Context {
  req: IncomingMessage;
}

export interface ShopStats {
  /** Procedure executions per order (each order the demo places is a distinct customer and amount). */
  executionsByOrder: Map<string, number>;
  executions: number;
  replays: number;
  conflicts: number;
}

const t = initTRPC.context<Context>().create({
  transformer: superjson,
  errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, idempotency: idempotencyErrorData(error) } }),
});

const createShopRouter = (idempotent: () => IdempotentMiddleware, stats: ShopStats) => {
  let nextOrder = 1;
  return t.router({
    placeOrder: t.procedure
      .input(z.object({ customer: z.string(), cents: z.number().int().positive() }))
      .use(idempotent())
      .mutation(async ({ input }) => {
        const order = `${input.customer}:${input.cents}`;
        stats.executions++;
        stats.executionsByOrder.set(order, (stats.executionsByOrder.get(order) ?? 0) + 1);
        await new Promise((resolve) => setTimeout(resolve, 2 + Math.random() * 8)); // the card network
        return { orderId: nextOrder++, customer: input.customer, cents: BigInt(input.cents), placedAt: new Date() };
      }),
  });
};

export type ShopRouter = ReturnType<typeof createShopRouter>;

/** What `--without-idempotency` puts in the middleware's place: nothing. */
const unguarded: IdempotentMiddleware = (opts) => opts.next({ ctx: { idempotency: null } });

/**
 * The demo's server: one idempotent mutation that "charges a card" and creates an order. `guarded: false`
 * drops the middleware, to show what the same traffic does without it.
 */
export const startShop = async (store: IdempotencyStore, { onInProgress, guarded }: { onInProgress: 'wait' | 'reject'; guarded: boolean }) => {
  const stats: ShopStats = { executionsByOrder: new Map(), executions: 0, replays: 0, conflicts: 0 };
  const onEvent = (event: IdempotencyEvent): void => {
    if (event.type === 'replayed') stats.replays++;
    if (event.type === 'conflict') stats.conflicts++;
  };
  const { idempotent } = createIdempotency<Context>({ store, onInProgress, onEvent, waitTimeoutMs: 5_000 });
  const router = createShopRouter(() => (guarded ? idempotent() : unguarded), stats);
  const server = createHTTPServer({ router, createContext: ({ req }) => ({ req }), responseMeta: idempotencyResponseMeta() });
  return { ...(await listenLocal(server, 0)), stats };
};
