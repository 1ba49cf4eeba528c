/**
 * Express adapter (`@trpc/server/adapters/express`, Express 5).
 * Run: `npx tsx examples/express/server.ts` (tRPC at http://127.0.0.1:3000/trpc).
 */
import { once } from 'node:events';
import { createExpressMiddleware } from '@trpc/server/adapters/express';
import express from 'express';
import { idempotencyResponseMeta } from 'trpc-idempotency';
import type { OrderAppOptions } from '../shared/orders';
import { createOrderApp, isMain, urlOf, userIdFrom } from '../shared/orders';

export const start = async (port = 3000, options: OrderAppOptions = {}) => {
  const { router, orders } = createOrderApp(options);
  const app = express();
  app.use(
    '/trpc',
    createExpressMiddleware({
      router,
      // The wiring: the Express request goes into ctx (keys are read from its headers) and responseMeta reports replays.
      createContext: ({ req }) => ({ req, userId: userIdFrom(req.headers['x-user-id']) }),
      responseMeta: idempotencyResponseMeta(),
    }),
  );
  const server = app.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `${urlOf(server.address())}/trpc`,
    orders,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
};

if (isMain(import.meta.url)) {
  const { url } = await start(Number(process.env.PORT ?? 3000));
  console.log(`express example listening on ${url}`);
}
