/**
 * Durable steps: an order charges a payment API and then sends a confirmation email, each a step. When the email
 * fails (the mail server is down), the procedure fails with a transient error, the key is released with its steps
 * kept, and the client's retry resumes: the charge is replayed from its record (the payment API is not called
 * again), only the email is sent. Each step passes its `stepKey` to the service as the service's own idempotency
 * key, so even a crash between a call and its record performs it once.
 * Run: `npx tsx examples/steps/server.ts`, then
 *   curl -i -X POST -H 'content-type: application/json' -H 'idempotency-key: order-1' \
 *     -d '{"json":{"email":"ada@example.com","amountCents":1200}}' http://127.0.0.1:3000/order.place
 * twice: the first answer fails (the fake mailer is down once), the second places the order with one charge.
 */
import { initTRPC, TRPCError } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import superjson from 'superjson';
import { createIdempotency, idempotencyErrorData, idempotencyResponseMeta, stepsOf } from 'trpc-idempotency';
import { z } from 'zod';
import { listenLocal } from '../shared/listen';
import { isMain } from '../shared/orders';
import { createFakeMailer, createFakePayments } from './fakeServices';

export const start = async (port = 3000) => {
  const payments = createFakePayments();
  const mailer = createFakeMailer();
  const t = initTRPC.context<{ req: unknown }>().create({
    transformer: superjson,
    errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, idempotency: idempotencyErrorData(error) } }),
  });
  const { idempotent } = createIdempotency();

  const router = t.router({
    order: t.router({
      place: t.procedure
        .input(z.object({ email: z.string().email(), amountCents: z.number().int().positive() }))
        .use(idempotent())
        .mutation(async ({ ctx, input }) => {
          // stepsOf(...) also runs the steps of a call without a key (directly, once): no branch needed.
          const steps = stepsOf(ctx.idempotency);
          const charge = await steps.step('charge', ({ stepKey }) =>
            payments.charge(input.amountCents, { idempotencyKey: stepKey }),
          );
          const email = await steps.step('confirmation-email', async ({ stepKey }) => {
            try {
              return await mailer.send(input.email, { idempotencyKey: stepKey });
            } catch (cause) {
              // A transient error: the key is released, the charge step stays recorded, a retry resumes here.
              throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'the confirmation email could not be sent; retry', cause });
            }
          });
          return { chargeId: charge.id, messageId: email.messageId, placedAt: new Date() };
        }),
    }),
  });

  const server = createHTTPServer({ router, createContext: ({ req }) => ({ req }), responseMeta: idempotencyResponseMeta() });
  return { ...(await listenLocal(server, port)), router, payments, mailer };
};

export type StepsRouter = Awaited<ReturnType<typeof start>>['router'];

if (isMain(import.meta.url)) {
  const app = await start(Number(process.env.PORT ?? 3000));
  app.mailer.failNext(1);
  console.log(`steps example listening on ${app.url} (the first email fails once)`);
}
