/**
 * Standalone adapter (`@trpc/server/adapters/standalone`, a plain Node HTTP server).
 * Run: `npx tsx examples/standalone/server.ts`, then
 *   curl -i -X POST -H 'content-type: application/json' -H 'idempotency-key: order-1' \
 *     -d '{"json":{"item":"book","quantity":1}}' http://127.0.0.1:3000/order.create
 * twice: the second answer carries `Idempotent-Replayed: true` and the same order.
 */
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import { idempotencyResponseMeta } from 'trpc-idempotency';
import type { OrderAppOptions } from '../shared/orders';
import { listenLocal } from '../shared/listen';
import { createOrderApp, isMain, userIdFrom } from '../shared/orders';

export const start = async (port = 3000, options: OrderAppOptions = {}) => {
  const { router, orders } = createOrderApp(options);
  const server = createHTTPServer({
    router,
    // The wiring: the request goes into ctx (keys are read from its headers) and responseMeta reports replays.
    createContext: ({ req }) => ({ req, userId: userIdFrom(req.headers['x-user-id']) }),
    responseMeta: idempotencyResponseMeta(),
  });
  return { ...(await listenLocal(server, port)), orders };
};

if (isMain(import.meta.url)) {
  const { url } = await start(Number(process.env.PORT ?? 3000));
  console.log(`standalone example listening on ${url}`);
}
