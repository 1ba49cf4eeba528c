/**
 * createSubmitIntent with TanStack Query, wired as `@trpc/tanstack-react-query`'s `mutationOptions` does it: the
 * options' `trpc` object is passed as-is to the client's `mutation(path, input, opts.trpc)`. The mutations run
 * through TanStack's MutationObserver (what `useMutation` uses) against a real tRPC server on loopback.
 */
import type { TRPCLink } from '@trpc/client';
import { createTRPCClient, httpLink, retryLink } from '@trpc/client';
import { MutationObserver, QueryClient } from '@tanstack/react-query';
import superjson from 'superjson';
import { afterEach, describe, expect, it } from 'vitest';
import type { OrderRouter } from '../../examples/shared/orders';
import { start } from '../../examples/standalone/server';
import type { SubmitIntent } from '../../src/client/index';
import { createSubmitIntent, idempotencyHeaders, idempotencyLink, idempotentRetry } from '../../src/client/index';

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

const input = { item: 'book', quantity: 1 };

/** The client and a TanStack mutation of `order.create` whose options carry `intent.context`. */
const setup = async (intent: SubmitIntent, { retry = true, dropResponses = 0 } = {}) => {
  const server = await start(0);
  servers.push(server);
  let drops = dropResponses;
  const links: TRPCLink<OrderRouter>[] = [
    idempotencyLink({ onWarning: (warning) => expect.fail(warning.message) }),
    ...(retry ? [retryLink<OrderRouter>(idempotentRetry({ baseDelayMs: 5 }))] : []),
    httpLink({
      url: server.url,
      transformer: superjson,
      headers: idempotencyHeaders,
      // A response lost on the way back: the server ran the call, the client never hears of it.
      fetch: async (url, init) => {
        const response = await fetch(url, init);
        if (drops-- > 0) throw new TypeError('fetch failed: connection reset');
        return response;
      },
    }),
  ];
  const client = createTRPCClient<OrderRouter>({ links });
  // What `trpc.order.create.mutationOptions({ trpc: { context: intent.context }, onSuccess: intent.renew })` returns.
  const opts = { trpc: { context: intent.context }, onSuccess: intent.renew };
  const observer = new MutationObserver(new QueryClient(), {
    ...opts,
    mutationKey: [['order', 'create']],
    mutationFn: (variables: typeof input) => client.order.create.mutate(variables, opts.trpc),
  });
  const submit = () => observer.mutate(input);
  return { server, submit };
};

describe('createSubmitIntent with TanStack Query mutation options', () => {
  it('sends one key for a double click: one order, both presses get it', async () => {
    const intent = createSubmitIntent();
    const { server, submit } = await setup(intent);
    const key = intent.key;
    const [first, second] = await Promise.all([submit(), submit()]);
    expect(second).toEqual(first);
    expect(server.orders).toHaveLength(1);
    // The intent succeeded: the next press is a new order with a new key.
    expect(intent.key).not.toBe(key);
    await submit();
    expect(server.orders).toHaveLength(2);
  });

  it('keeps the key after a lost response, so pressing again replays instead of ordering twice', async () => {
    const intent = createSubmitIntent();
    const { server, submit } = await setup(intent, { retry: false, dropResponses: 1 });
    const key = intent.key;
    await expect(submit()).rejects.toThrow(/connection reset/);
    expect(server.orders).toHaveLength(1);
    expect(intent.key).toBe(key);
    const order = await submit();
    expect(order).toEqual(server.orders[0]);
    expect(server.orders).toHaveLength(1);
  });

  it('renews the key in the same context object, so options built once send the new key', () => {
    let n = 0;
    const intent = createSubmitIntent({ generateKey: () => `k-${++n}` });
    const { context } = intent;
    expect(context.idempotencyKey).toBe('k-1');
    intent.renew();
    expect([intent.context, context.idempotencyKey, intent.key]).toEqual([context, 'k-2', 'k-2']);
  });

  it('refuses an invalid generated key', () => {
    expect(() => createSubmitIntent({ generateKey: () => 'has space' })).toThrow(/invalid key "has space"/);
  });
});
