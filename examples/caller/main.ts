/**
 * Server-side calls with `createCaller`: no HTTP request, so no key header. The key comes from ctx (a queue job id,
 * for a job that may be delivered twice) or from the input (a webhook's event id, for events sent more than once).
 * Run: `npx tsx examples/caller/main.ts`.
 */
import { initTRPC } from '@trpc/server';
import superjson from 'superjson';
import { z } from 'zod';
import { createIdempotency, idempotencyErrorData } from 'trpc-idempotency';
import { isMain } from '../shared/orders';

interface JobContext {
  userId: string;
  /** Set by whoever calls the procedure, e.g. the id of the queue job being processed. */
  idempotencyKey?: string;
}

const t = initTRPC.context<JobContext>().create({
  transformer: superjson,
  errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, idempotency: idempotencyErrorData(error) } }),
});

export const createCallerApp = () => {
  const { idempotent } = createIdempotency<JobContext>({ scope: ({ ctx }) => ctx.userId });
  const charges: { invoiceId: string; amountCents: number }[] = [];
  const credits: { eventId: string; amountCents: number }[] = [];

  const router = t.router({
    // Key in ctx: getKey is then the only key source.
    chargeInvoice: t.procedure
      .input(z.object({ invoiceId: z.string(), amountCents: z.number().int().positive() }))
      .use(idempotent({ getKey: ({ ctx }) => ctx.idempotencyKey, required: true }))
      .mutation(({ input }) => {
        charges.push(input);
        return { chargeId: charges.length, ...input };
      }),
    // Key in the input: the field named by inputKey (HTTP callers may still send the header instead).
    applyCredit: t.procedure
      .input(z.object({ eventId: z.string(), amountCents: z.number().int().positive() }))
      .use(idempotent({ inputKey: 'eventId', required: true }))
      .mutation(({ input }) => {
        credits.push(input);
        return { creditId: credits.length, ...input };
      }),
  });
  const createCaller = t.createCallerFactory(router);
  return { router, createCaller, charges, credits };
};

/** Processes one job delivery and one webhook delivery twice each, as an at-least-once queue may. */
export const run = async () => {
  const { createCaller, charges, credits } = createCallerApp();
  const deliveries = [];
  for (let delivery = 1; delivery <= 2; delivery++) {
    const job = createCaller({ userId: 'user-1', idempotencyKey: 'job-42' });
    const charge = await job.chargeInvoice({ invoiceId: 'inv-7', amountCents: 1999 });
    const webhook = createCaller({ userId: 'user-1' });
    const credit = await webhook.applyCredit({ eventId: 'evt-9', amountCents: 500 });
    deliveries.push({ delivery, charge, credit });
  }
  return { deliveries, charges, credits };
};

if (isMain(import.meta.url)) {
  const { deliveries, charges, credits } = await run();
  console.log(JSON.stringify(deliveries, null, 2));
  console.log(`charges made: ${charges.length}, credits applied: ${credits.length} (each delivered twice)`);
}
