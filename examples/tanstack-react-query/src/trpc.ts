/**
 * The client: idempotencyLink first (one key per mutation), retryLink (retries reuse it), then the HTTP link
 * that sends the key headers. `TRPCProvider` and `useTRPC` come from @trpc/tanstack-react-query.
 */
import { createTRPCClient, httpLink, retryLink } from '@trpc/client';
import { createTRPCContext } from '@trpc/tanstack-react-query';
import superjson from 'superjson';
import { idempotencyHeaders, idempotencyLink, idempotentRetry } from 'trpc-idempotency/client';
import type { AppRouter } from './server.js';

export const { TRPCProvider, useTRPC } = createTRPCContext<AppRouter>();

export const createClient = (url: string) =>
  createTRPCClient<AppRouter>({
    links: [
      idempotencyLink(),
      retryLink(idempotentRetry()),
      httpLink({ url, transformer: superjson, headers: idempotencyHeaders }),
    ],
  });
