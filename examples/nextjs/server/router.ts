/** The app's router: examples/shared/orders.ts (`order.create`, idempotent, scoped per user) on the shared store. */
import { createOrderApp } from '../../shared/orders';
import { store } from './idempotency';

export const { router, orders } = createOrderApp({ store });
export type AppRouter = typeof router;
