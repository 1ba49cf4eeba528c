/**
 * Express adapter (`@trpc/server/adapters/express`, Express 5).
 * Run: `npx tsx examples/express/server.ts` (tRPC at http://127.0.0.1:3000/trpc).
 */
import { createServer } from 'node:http';
import { createExpressMiddleware } from '@trpc/server/adapters/express';
import express from 'express';
import { idempotencyResponseMeta } from 'trpc-idempotency';
import type { OrderAppOptions } from '../shared/orders';
import { listenLocal } from '../shared/listen';
import { createOrderApp, isMain, userIdFrom } from '../shared/orders';

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
  const { url, close } = await listenLocal(createServer(app), port);
  return { url: `${url}/trpc`, orders, close };
};

if (isMain(import.meta.url)) {
  const { url } = await start(Number(process.env.PORT ?? 3000));
  console.log(`express example listening on ${url}`);
}
