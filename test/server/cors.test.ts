import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTRPCClient, httpBatchLink } from '@trpc/client';
import { initTRPC } from '@trpc/server';
import { createExpressMiddleware } from '@trpc/server/adapters/express';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { idempotencyHeaders, idempotencyLink } from '../../src/client/index';
import { createIdempotency, createMemoryStore, idempotencyResponseMeta } from '../../src/index';

const ORIGIN = 'http://app.example';

const buildRouter = () => {
  const t = initTRPC.context<{ req: IncomingMessage }>().create();
  const { idempotent } = createIdempotency({ store: createMemoryStore() });
  return t.router({ make: t.procedure.use(idempotent()).mutation(() => 'made') });
};

/** What the `cors` package does with `{ origin, exposedHeaders }`: set on the Node response before tRPC runs. */
const corsLike = (res: ServerResponse): void => {
  res.setHeader('Access-Control-Allow-Origin', ORIGIN);
  res.setHeader('Access-Control-Expose-Headers', 'X-Request-Id, X-App');
};

const exposedBy = (response: Response): string[] =>
  (response.headers.get('access-control-expose-headers') ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .sort();

const OURS = ['idempotency-status', 'idempotency-statuses', 'idempotent-replayed', 'retry-after'];
const EXPECTED = [...OURS, 'x-app', 'x-request-id'].sort();

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

const listen = async (server: ReturnType<typeof createServer>): Promise<string> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

describe('Access-Control-Expose-Headers on keyed cross-origin responses', () => {
  it("keeps the app's exposed headers set by an earlier express middleware (ctx without res: found on req.res)", async () => {
    const app = express();
    app.use((_req, res, next) => {
      corsLike(res);
      next();
    });
    app.use('/trpc', createExpressMiddleware({ router: buildRouter(), createContext: ({ req }) => ({ req }), responseMeta: idempotencyResponseMeta() }));
    const url = await listen(createServer(app));
    const keyed = await fetch(`${url}/trpc/make`, { method: 'POST', headers: { origin: ORIGIN, 'idempotency-key': 'cors-1', 'content-type': 'application/json' } });
    expect(keyed.status).toBe(200);
    expect(exposedBy(keyed)).toEqual(EXPECTED);
    // The same app without a key: tRPC leaves the app's header alone, as before.
    const unkeyed = await fetch(`${url}/trpc/make`, { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'application/json' } });
    expect(exposedBy(unkeyed)).toEqual(['x-app', 'x-request-id']);
  });

  it('merges the Node response header, the responseMeta headers and ours, each name once (standalone, ctx with res)', async () => {
    const handler = createHTTPHandler({
      router: buildRouter(),
      createContext: ({ req, res }) => ({ req, res }),
      responseMeta: idempotencyResponseMeta(() => ({ headers: { 'access-control-expose-headers': 'X-Trace, retry-after' } })),
    });
    const url = await listen(
      createServer((req, res) => {
        corsLike(res);
        void handler(req, res);
      }),
    );
    const response = await fetch(`${url}/make`, { method: 'POST', headers: { origin: ORIGIN, 'idempotency-key': 'cors-2', 'content-type': 'application/json' } });
    expect(exposedBy(response)).toEqual([...EXPECTED, 'x-trace'].sort());
  });

  it('keeps them for the real @trpc/client batch too (idempotencyLink + httpBatchLink)', async () => {
    const app = express();
    const seen: string[][] = [];
    app.use((_req, res, next) => {
      corsLike(res);
      next();
    });
    app.use('/trpc', createExpressMiddleware({ router: buildRouter(), createContext: ({ req, res }) => ({ req, res }), responseMeta: idempotencyResponseMeta() }));
    const url = await listen(createServer(app));
    const client = createTRPCClient<ReturnType<typeof buildRouter>>({
      links: [
        idempotencyLink({ onWarning: () => {} }),
        httpBatchLink({
          url: `${url}/trpc`,
          headers: (opts) => ({ origin: ORIGIN, ...idempotencyHeaders(opts) }),
          fetch: async (input, init) => {
            const response = await fetch(input, init as RequestInit);
            seen.push(exposedBy(response));
            return response;
          },
        }),
      ],
    });
    await Promise.all([client.make.mutate(), client.make.mutate()]);
    expect(seen).toEqual([EXPECTED]);
  });
});
