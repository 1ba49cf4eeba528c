import { randomUUID } from 'node:crypto';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import { afterEach, describe, expect, it } from 'vitest';
import type { StepsRouter } from '../../examples/steps/server';
import { start } from '../../examples/steps/server';

let app: Awaited<ReturnType<typeof start>> | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

const place = (url: string, key: string) =>
  createTRPCClient<StepsRouter>({ links: [httpLink({ url, transformer: superjson, headers: { 'idempotency-key': key } })] }).order.place.mutate({
    email: 'ada@example.com',
    amountCents: 1200,
  });

describe('examples/steps', () => {
  it('resumes an order after a failed email: one charge, one email, then replays', async () => {
    app = await start(0);
    app.mailer.failNext(1);
    const key = randomUUID();
    const failed = await place(app.url, key).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(TRPCClientError);
    expect((failed as TRPCClientError<any>).data?.code).toBe('SERVICE_UNAVAILABLE');
    expect(app.payments.charges.size).toBe(1);
    expect(app.mailer.sent.size).toBe(0);

    const placed = await place(app.url, key);
    expect(placed.chargeId).toBe('ch_1');
    expect(placed.placedAt).toBeInstanceOf(Date);
    expect(app.payments.charges.size).toBe(1);
    expect(app.mailer.sent.size).toBe(1);

    expect(await place(app.url, key)).toEqual(placed);
    expect(app.payments.charges.size).toBe(1);
  });

  it('charges each new key once', async () => {
    app = await start(0);
    await place(app.url, randomUUID());
    await place(app.url, randomUUID());
    expect(app.payments.charges.size).toBe(2);
    expect(app.mailer.sent.size).toBe(2);
  });
});
