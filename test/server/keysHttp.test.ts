import type { AddressInfo } from 'node:net';
import { createTRPCClient, httpBatchLink, httpLink } from '@trpc/client';
import type { TRPCLink } from '@trpc/client';
import type { AnyRouter } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import superjson from 'superjson';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { idempotencyHeaders, idempotencyLink } from '../../src/client/index';
import type { IdempotencyWarning } from '../../src/client/index';
import { createIdempotency, createMemoryStore, idempotencyResponseMeta } from '../../src/index';
import type { IdempotencyEvent } from '../../src/index';
import { createT } from './helpers';
import type { TestServer } from './helpers';

// Keys over real HTTP, with the real client links: the syntax both key headers share, the batch header parsed
// once per request, and the warning and events for a ctx that can never carry a key.

const buildRouter = () => {
  const t = createT();
  const events: IdempotencyEvent[] = [];
  const { idempotent } = createIdempotency({ store: createMemoryStore(), onEvent: (e) => events.push(e) });
  const runs = { create: 0, other: 0 };
  const router = t.router({
    create: t.procedure
      .use(idempotent())
      .input(z.object({ n: z.number() }))
      .mutation(({ input }) => ({ n: input.n, run: ++runs.create })),
    other: t.procedure.use(idempotent()).mutation(() => ++runs.other),
  });
  return { router, runs, events };
};

type AppRouter = ReturnType<typeof buildRouter>['router'];

let servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  vi.restoreAllMocks();
});

/** A standalone server on loopback with the given createContext (the helpers' server always puts req in ctx). */
const serve = async (router: AnyRouter, createContext: (opts: { req: unknown }) => object): Promise<TestServer> => {
  const server = createHTTPServer({ router, createContext, responseMeta: idempotencyResponseMeta() });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const handle: TestServer = {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
  servers.push(handle);
  return handle;
};

/** The documented client: idempotencyLink, then an HTTP link sending the keys with idempotencyHeaders. */
const client = (url: string, kind: 'single' | 'batch', headers = idempotencyHeaders as never) => {
  const warnings: IdempotencyWarning[] = [];
  const common = { url, transformer: superjson, headers };
  const http: TRPCLink<AppRouter> = kind === 'single' ? httpLink(common) : httpBatchLink(common);
  const api = createTRPCClient<AppRouter>({ links: [idempotencyLink({ onWarning: (w) => void warnings.push(w) }), http] });
  return { api, warnings };
};

describe('createIdempotency over HTTP', () => {
  describe('one key syntax for httpLink and httpBatchLink', () => {
    it('runs a quoted key once whether it came alone (Idempotency-Key) or in a batch (Idempotency-Keys)', async () => {
      const app = buildRouter();
      const { url } = await serve(app.router, ({ req }) => ({ req }));
      const single = client(url, 'single').api;
      const batch = client(url, 'batch').api;
      const first = await single.create.mutate({ n: 1 }, { context: { idempotencyKey: '"order-1"' } });
      const [again, other] = await Promise.all([
        batch.create.mutate({ n: 1 }, { context: { idempotencyKey: '"order-1"' } }),
        batch.create.mutate({ n: 2 }, { context: { idempotencyKey: 'order-2' } }),
      ]);
      const bare = await single.create.mutate({ n: 1 }, { context: { idempotencyKey: 'order-1' } });
      expect(app.runs.create).toBe(2);
      expect(again).toEqual(first);
      expect(bare).toEqual(first);
      expect(other).toEqual({ n: 2, run: 2 });
    });

    it('runs a call unguarded, with an unguarded event, when Idempotency-Keys is shorter than the batch', async () => {
      const app = buildRouter();
      const { url } = await serve(app.router, ({ req }) => ({ req }));
      const { api } = client(url, 'batch', (() => ({ 'Idempotency-Keys': '["short-0"]' })) as never);
      for (let i = 0; i < 2; i++) {
        await Promise.all([api.create.mutate({ n: 1 }), api.other.mutate()]);
      }
      // Position 0 carried a key (ran once), position 1 did not (ran every time).
      expect(app.runs).toEqual({ create: 1, other: 2 });
      const unguarded = app.events.filter((e) => e.type === 'unguarded');
      expect(unguarded).toEqual([
        { type: 'unguarded', reason: 'no_key', path: 'other' },
        { type: 'unguarded', reason: 'no_key', path: 'other' },
      ]);
    });

    it('applies Idempotency-Key to batch position 0 only when a batch has no Idempotency-Keys', async () => {
      const app = buildRouter();
      const { url } = await serve(app.router, ({ req }) => ({ req }));
      const { api } = client(url, 'batch', (() => ({ 'Idempotency-Key': 'only-0' })) as never);
      for (let i = 0; i < 2; i++) {
        await Promise.all([api.create.mutate({ n: 1 }), api.other.mutate()]);
      }
      expect(app.runs).toEqual({ create: 1, other: 2 });
    });

    it('parses Idempotency-Keys once per request, not once per call of the batch', async () => {
      const app = buildRouter();
      const { url } = await serve(app.router, ({ req }) => ({ req }));
      const { api } = client(url, 'batch');
      const keys = ['p-0', 'p-1', 'p-2', 'p-3'];
      const sentText = JSON.stringify(keys);
      const parse = vi.spyOn(JSON, 'parse');
      await Promise.all(keys.map((key, n) => api.create.mutate({ n }, { context: { idempotencyKey: key } })));
      expect(parse.mock.calls.filter(([text]) => text === sentText)).toHaveLength(1);
      expect(app.runs.create).toBe(4);
    });

    it('lists the names of a plain ctx.headers record once per request, not once per call of the batch', async () => {
      // `createContext: ({ req }) => ({ headers: req.headers })` (the documented "headers object at ctx.headers"):
      // a record read case-insensitively. Scanning its names on every read cost calls x headers per request.
      const app = buildRouter();
      let listings = 0;
      const { url } = await serve(app.router, ({ req }) => ({
        headers: new Proxy((req as { headers: Record<string, unknown> }).headers, {
          ownKeys: (target) => {
            listings++;
            return Reflect.ownKeys(target);
          },
        }),
      }));
      // No Idempotency-Keys: every call of the batch looks for it, and for Idempotency-Key, and finds neither.
      const { api } = client(url, 'batch', (() => ({})) as never);
      const calls = 50;
      await Promise.all(Array.from({ length: calls }, () => api.other.mutate()));
      expect(app.runs.other).toBe(calls);
      expect(listings).toBeLessThanOrEqual(1);
    });
  });

  describe('a ctx without the request', () => {
    // The most common way to write createContext: the user is there, the request is not.
    const withoutReq = () => ({ user: 1 });

    it('warns once per procedure with the fix, and reports every call that ran unguarded', async () => {
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
      const app = buildRouter();
      const { url } = await serve(app.router, withoutReq);
      const { api } = client(url, 'single');
      await api.create.mutate({ n: 1 }, { context: { idempotencyKey: 'lost-1' } });
      await api.create.mutate({ n: 1 }, { context: { idempotencyKey: 'lost-1' } });
      await api.other.mutate(undefined, { context: { idempotencyKey: 'lost-2' } });
      // Still runs twice (nothing can guard it), but no longer silently.
      expect(app.runs).toEqual({ create: 2, other: 1 });
      const ours = warn.mock.calls.map(([message]) => String(message)).filter((m) => m.startsWith('trpc-idempotency:'));
      expect(ours).toHaveLength(2);
      expect(ours[0]).toMatch(/mutation "create" runs unguarded: its ctx holds no request headers/);
      expect(ours[0]).toMatch(/createContext: \(\{ req \}\) => \(\{ req, \.\.\. \}\)\) or set getKey or inputKey/);
      expect(ours[1]).toMatch(/mutation "other"/);
      expect(app.events).toEqual([
        { type: 'unguarded', reason: 'no_headers', path: 'create' },
        { type: 'unguarded', reason: 'no_headers', path: 'create' },
        { type: 'unguarded', reason: 'no_headers', path: 'other' },
      ]);
    });

    it('does not warn when ctx holds the request and a call simply came without a key', async () => {
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
      const app = buildRouter();
      const { url } = await serve(app.router, ({ req }) => ({ req, user: 1 }));
      const raw = createTRPCClient<AppRouter>({ links: [httpLink({ url, transformer: superjson })] });
      await raw.create.mutate({ n: 1 });
      expect(warn.mock.calls.filter(([m]) => String(m).startsWith('trpc-idempotency:'))).toEqual([]);
      expect(app.events).toEqual([{ type: 'unguarded', reason: 'no_key', path: 'create' }]);
    });
  });
});
