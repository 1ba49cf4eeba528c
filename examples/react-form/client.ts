/**
 * The tRPC client of the React example. Order of links matters: idempotencyLink first (one key per mutation),
 * then retryLink (every retry reuses that key), then the HTTP link that sends the key headers.
 */
import { createTRPCClient, httpLink, retryLink } from '@trpc/client';
import superjson from 'superjson';
import { idempotencyHeaders, idempotencyLink, idempotentRetry } from 'trpc-idempotency/client';
import type { OrderRouter } from '../shared/orders';

export interface OrderClientOptions {
  /** The tRPC endpoint, e.g. `/trpc`. */
  url: string;
  /**
   * Retry mutations whose response was lost (or that got 5xx / in-progress CONFLICT) with the same key.
   * @default true
   */
  retry?: boolean;
}

export const createOrderClient = ({ url, retry = true }: OrderClientOptions) =>
  createTRPCClient<OrderRouter>({
    links: [
      idempotencyLink(),
      ...(retry ? [retryLink<OrderRouter>(idempotentRetry({ maxAttempts: 3, baseDelayMs: 100 }))] : []),
      // httpLink, one request per call: the replay flag in the response headers is then per call.
      httpLink({ url, transformer: superjson, headers: idempotencyHeaders }),
    ],
  });

export type OrderClient = ReturnType<typeof createOrderClient>;
