/**
 * app/api/trpc/[trpc]/route.ts: the tRPC API as a Next.js App Router route handler. Next calls `GET` and `POST`
 * with a Fetch `Request`; the Fetch adapter answers with a `Response`.
 */
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { idempotencyResponseMeta } from 'trpc-idempotency';
import { userIdFrom } from '../../../../../shared/orders';
import { router } from '../../../../server/router';

// The server entry needs Node (node:crypto) and ioredis needs TCP sockets: not the Edge runtime.
export const runtime = 'nodejs';
// Never cache: every mutation must reach the handler.
export const dynamic = 'force-dynamic';

const handler = (req: Request): Promise<Response> =>
  fetchRequestHandler({
    endpoint: '/api/trpc',
    req,
    router,
    // The request goes into ctx (keys are read from its headers); the user comes from your session check.
    createContext: () => ({ req, userId: userIdFrom(req.headers.get('x-user-id')) }),
    responseMeta: idempotencyResponseMeta(),
  });

export { handler as GET, handler as POST };
