/**
 * Fetch adapter (`@trpc/server/adapters/fetch`): a `Request -> Response` function. This is what a Next.js App
 * Router route handler is (`app/api/trpc/[trpc]/route.ts`: `export { handler as GET, handler as POST }`), and what
 * Bun, Deno, Cloudflare Workers and Hono take.
 */
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { idempotencyResponseMeta } from 'trpc-idempotency';
import type { OrderAppOptions } from '../shared/orders';
import { createOrderApp, userIdFrom } from '../shared/orders';

/** Where the tRPC router is mounted; it must match the request path prefix. */
export const ENDPOINT = '/api/trpc';

export const createFetchHandler = (options: OrderAppOptions = {}) => {
  const { router, orders } = createOrderApp(options);
  const handler = (req: Request): Promise<Response> =>
    fetchRequestHandler({
      endpoint: ENDPOINT,
      req,
      router,
      // The wiring: the Fetch Request goes into ctx (keys are read from req.headers) and responseMeta reports replays.
      createContext: ({ req }) => ({ req, userId: userIdFrom(req.headers.get('x-user-id')) }),
      responseMeta: idempotencyResponseMeta(),
    });
  return { handler, orders };
};
