/**
 * Runs the recipe without a browser: the same `mutationOptions` as OrderForm.tsx, driven by TanStack's
 * MutationObserver (what `useMutation` uses), pressed twice at once. `npm run check` prints `orders created: 1`.
 */
import { MutationObserver, QueryClient } from '@tanstack/react-query';
import { createTRPCOptionsProxy } from '@trpc/tanstack-react-query';
import { createSubmitIntent } from 'trpc-idempotency/client';
import { startServer } from './server.js';
import type { AppRouter } from './server.js';
import { createClient } from './trpc.js';

const server = await startServer(0);
const queryClient = new QueryClient();
const trpc = createTRPCOptionsProxy<AppRouter>({ client: createClient(server.url), queryClient });
const intent = createSubmitIntent();
const placeOrder = new MutationObserver(
  queryClient,
  trpc.order.create.mutationOptions({ trpc: { context: intent.context }, onSuccess: intent.renew }),
);
const [first, second] = await Promise.all([placeOrder.mutate({ item: 'book' }), placeOrder.mutate({ item: 'book' })]);
console.log(`double click: order #${first.id} and order #${second.id}; orders created: ${server.orders.length}`);
await server.close();
