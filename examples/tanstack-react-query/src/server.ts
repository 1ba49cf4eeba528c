/** The API: one idempotent mutation on the zero-config memory store (one process; use Redis for more). */
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import { initTRPC } from '@trpc/server';
import type { AddressInfo } from 'node:net';
import superjson from 'superjson';
import { idempotencyErrorData, idempotencyResponseMeta, idempotent } from 'trpc-idempotency';
import { z } from 'zod';

const t = initTRPC.context<{ req: unknown }>().create({
  transformer: superjson,
  errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, idempotency: idempotencyErrorData(error) } }),
});

export interface Order {
  id: number;
  item: string;
}

export const createAppRouter = (orders: Order[]) =>
  t.router({
    order: t.router({
      create: t.procedure
        .input(z.object({ item: z.string().min(1) }))
        .use(idempotent())
        .mutation(({ input }) => {
          const order = { id: orders.length + 1, item: input.item };
          orders.push(order);
          return order;
        }),
    }),
  });

export type AppRouter = ReturnType<typeof createAppRouter>;

export const startServer = async (port = 3000) => {
  const orders: Order[] = [];
  const server = createHTTPServer({
    router: createAppRouter(orders),
    createContext: ({ req }) => ({ req }),
    responseMeta: idempotencyResponseMeta(),
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, orders, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
};
