/**
 * The app every server example serves: one idempotent mutation, `order.create`, plus a query listing the orders.
 * Only the adapter wiring differs between the examples; it lives in each `examples/<adapter>/server.ts`.
 *
 * In your app, import from 'trpc-idempotency' (and 'trpc-idempotency/redis', 'trpc-idempotency/client'); the
 * examples import the sources so that they typecheck and run without a build.
 */
import { pathToFileURL } from 'node:url';
import { initTRPC } from '@trpc/server';
import superjson from 'superjson';
import { z } from 'zod';
import type { IdempotencyOptions, IdempotencyStore } from 'trpc-idempotency';
import { createIdempotency, idempotencyErrorData } from 'trpc-idempotency';

/** What every adapter's createContext returns: the request (the middleware reads the key headers from it) and the user. */
export interface OrderContext {
  /** The adapter's request object (Node `IncomingMessage`, Express `Request` or Fetch `Request`). */
  req: unknown;
  userId: string;
}

export interface Order {
  id: number;
  userId: string;
  item: string;
  quantity: number;
  createdAt: Date;
}

export const orderInput = z.object({ item: z.string().min(1), quantity: z.number().int().positive() });

const t = initTRPC.context<OrderContext>().create({
  transformer: superjson,
  // Puts `{ reason, retryAfterMs }` into error.data.idempotency, where clients (and idempotentRetry) read it.
  errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, idempotency: idempotencyErrorData(error) } }),
});

export interface OrderAppOptions {
  /** Where keys and results live; the memory store when omitted (fine for one process). */
  store?: IdempotencyStore;
  /** How a duplicate that arrives while the first call runs is answered. */
  onInProgress?: 'reject' | 'wait';
  /** Receives every idempotency event, for logs and metrics (see examples/observability). */
  onEvent?: IdempotencyOptions['onEvent'];
  /** Called after an order is written, before the response is sent (tests hook in here). */
  onOrderCreated?: (order: Order) => void | Promise<void>;
}

/** Builds the router and its in-memory order table (a stand-in for your database). */
export const createOrderApp = (options: OrderAppOptions = {}) => {
  const { idempotent } = createIdempotency<OrderContext>({
    store: options.store,
    onInProgress: options.onInProgress,
    onEvent: options.onEvent,
    // One user's key can never replay another user's order.
    scope: ({ ctx }) => ctx.userId,
  });
  const orders: Order[] = [];

  const router = t.router({
    order: t.router({
      create: t.procedure
        .input(orderInput)
        .use(idempotent())
        .mutation(async ({ input, ctx }) => {
          const order: Order = { id: orders.length + 1, userId: ctx.userId, ...input, createdAt: new Date() };
          orders.push(order);
          await options.onOrderCreated?.(order);
          return order;
        }),
      list: t.procedure.query(({ ctx }) => orders.filter((order) => order.userId === ctx.userId)),
    }),
  });
  return { router, orders };
};

export type OrderRouter = ReturnType<typeof createOrderApp>['router'];

/** Demo authentication: the user id from an `x-user-id` header. Use your session or token check instead. */
export const userIdFrom = (header: string | string[] | null | undefined): string =>
  (Array.isArray(header) ? header[0] : header) || 'demo-user';

/** `true` when this module is the script node/tsx was started with. */
export const isMain = (moduleUrl: string): boolean =>
  process.argv[1] !== undefined && moduleUrl === pathToFileURL(process.argv[1]).href;
