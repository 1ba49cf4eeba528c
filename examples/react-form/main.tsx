/** Mounts the form. Served by `server.ts` (bundled with esbuild); in your app this is your usual entry. */
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import type { OrderClientOptions } from './client';
import { createOrderClient } from './client';
import { OrderForm } from './OrderForm';

export const mount = (element: HTMLElement, options: OrderClientOptions) => {
  const queryClient = new QueryClient();
  const client = createOrderClient(options);
  const root = createRoot(element);
  root.render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <h1>Place an order</h1>
        <OrderForm client={client} />
      </QueryClientProvider>
    </StrictMode>,
  );
  return root;
};
