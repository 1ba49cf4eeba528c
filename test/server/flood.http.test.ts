import type { IncomingMessage } from 'node:http';
import { createTRPCClient, httpBatchLink, httpLink } from '@trpc/client';
import superjson from 'superjson';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency, createMemoryStore } from '../../src/index';
import type { TestServer } from './helpers';
import { createT, startServer } from './helpers';

declare module '@trpc/client' {
  interface OperationContext {
    /** The Idempotency-Key this test sends for the operation. */
    key?: string | null;
    /** The x-user header this test sends for the operation. */
    user?: string;
  }
}

/** One user id per request, from a header, as an auth layer would put it in ctx. */
const userOf = (ctx: { req?: unknown }): string => String((ctx.req as IncomingMessage).headers['x-user'] ?? '');

const buildApp = (maxEntries: number) => {
  const t = createT();
  const { idempotent } = createIdempotency({
    store: createMemoryStore({ maxEntries }),
    scope: ({ ctx }) => userOf(ctx),
  });
  const runs = new Map<string, number>();
  const router = t.router({
    pay: t.procedure
      .use(idempotent())
      .input(z.object({ id: z.string() }))
      .mutation(({ input }) => {
        runs.set(input.id, (runs.get(input.id) ?? 0) + 1);
        return { id: input.id };
      }),
  });
  return { router, runs };
};

let servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

describe('memory store over HTTP: one user flooding', () => {
  it("never runs another user's key twice: the victim's retry after 11 full batches replays", async () => {
    // The shape, scaled down 10 times: a store of 1,000 records and 11 batches of 100 calls (1.1 stores).
    const maxEntries = 1_000;
    const batches = 11;
    const batchSize = 100;
    const app = buildApp(maxEntries);
    const server = await startServer(app.router);
    servers.push(server);
    type Router = typeof app.router;

    const victim = createTRPCClient<Router>({
      links: [
        httpLink({
          url: server.url,
          transformer: superjson,
          headers: ({ op }) => ({ 'x-user': 'victim', 'Idempotency-Key': op.context.key ?? '' }),
        }),
      ],
    });
    const attacker = createTRPCClient<Router>({
      links: [
        httpBatchLink({
          url: server.url,
          transformer: superjson,
          maxItems: batchSize,
          headers: ({ opList }) => ({
            'x-user': 'attacker',
            'Idempotency-Keys': JSON.stringify(opList.map((op) => op.context.key ?? null)),
          }),
        }),
      ],
    });

    await victim.pay.mutate({ id: 'K' }, { context: { key: 'K' } });
    for (let b = 0; b < batches; b++) {
      await Promise.all(
        Array.from({ length: batchSize }, (_, i) => attacker.pay.mutate({ id: `a${b}.${i}` }, { context: { key: `a${b}.${i}` } })),
      );
    }
    await victim.pay.mutate({ id: 'K' }, { context: { key: 'K' } });

    expect(app.runs.get('K')).toBe(1);
    // The flood itself ran once per call: nothing was refused, the attacker only churned its own records.
    expect([...app.runs.keys()].filter((id) => id.startsWith('a'))).toHaveLength(batches * batchSize);
  });
});

describe('memory store over HTTP: one user filling the store', () => {
  it('still serves a user who holds nothing yet: the newcomer runs once and its retry replays', async () => {
    const maxEntries = 100;
    const app = buildApp(maxEntries);
    const server = await startServer(app.router);
    servers.push(server);
    const api = createTRPCClient<typeof app.router>({
      links: [
        httpBatchLink({
          url: server.url,
          transformer: superjson,
          maxItems: 50,
          headers: ({ opList }) => ({
            'x-user': opList[0]?.context.user ?? '',
            'Idempotency-Keys': JSON.stringify(opList.map((op) => op.context.key ?? null)),
          }),
        }),
      ],
    });
    const pay = (user: string, id: string) => api.pay.mutate({ id }, { context: { user, key: id } });
    // Three batches of 50 from one user: the store (100 records) holds nothing else.
    for (let b = 0; b < 3; b++) await Promise.all(Array.from({ length: 50 }, (_, i) => pay('flooder', `f${b}.${i}`)));

    await pay('newcomer', 'N');
    await pay('newcomer', 'N');

    expect(app.runs.get('N')).toBe(1);
  });
});

describe('memory store over HTTP: one client minting scopes', () => {
  // A client mints partitions whenever the scope comes from something it sends. With the store full of one-record
  // scopes, the fair share of each is 1/N: a victim holding two completed records is "over its share". Its records
  // are under the reserve (reservedEntriesPerPartition) that no other partition's traffic may evict, so the flood
  // gets 503 once the store is full and the victim's retry replays. (Two runs before the reserve.)
  it("keeps a victim's completed record through a flood of one-record scopes (it runs once)", async () => {
    const maxEntries = 100;
    const app = buildApp(maxEntries);
    const server = await startServer(app.router);
    servers.push(server);
    const api = createTRPCClient<typeof app.router>({
      links: [
        httpLink({
          url: server.url,
          transformer: superjson,
          headers: ({ op }) => ({ 'x-user': op.context.user ?? '', 'Idempotency-Key': op.context.key ?? '' }),
        }),
      ],
    });
    const pay = (user: string, id: string) => api.pay.mutate({ id }, { context: { user, key: id } });

    await pay('victim', 'K1');
    await pay('victim', 'K2');
    // One request per made-up user: each is a new scope holding one record. Past the store's size the store
    // refuses (503); the victim's record is gone before that.
    for (let i = 0; i < maxEntries; i++) await pay(`sybil-${i}`, `s${i}`).catch(() => undefined);
    await pay('victim', 'K1').catch(() => undefined);

    expect(app.runs.get('K1')).toBe(1);
  });
});

