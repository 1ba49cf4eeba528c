import { randomUUID } from 'node:crypto';
import { createTRPCClient, httpBatchLink, httpBatchStreamLink, httpLink, TRPCClientError } from '@trpc/client';
import type { TRPCLink } from '@trpc/client';
import { TRPCError } from '@trpc/server';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import superjson from 'superjson';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency, createMemoryStore, idempotencyResponseMeta, idempotent } from '../../src/index';
import type { IdempotencyOptions, IdempotencyStore } from '../../src/index';
import type { Deferred, TestServer } from './helpers';
import { createT, deferred, rejectionOf, startServer } from './helpers';

declare module '@trpc/client' {
  interface OperationContext {
    /** The Idempotency-Key this test sends for the operation. */
    key?: string | null;
  }
}

const buildRouter = (store: IdempotencyStore = createMemoryStore(), options: IdempotencyOptions = {}) => {
  const t = createT();
  const { idempotent: guard } = createIdempotency({ store, ...options });
  const runs = { create: 0, slow: 0, ping: 0, zero: 0 };
  const gate: Deferred = deferred();
  const started: Deferred = deferred();
  const router = t.router({
    create: t.procedure
      .use(guard())
      .input(z.object({ n: z.number() }))
      .mutation(({ input }) => ({ n: input.n, run: ++runs.create, at: new Date(input.n), big: BigInt(input.n) })),
    slow: t.procedure.use(guard()).mutation(async () => {
      const run = ++runs.slow;
      started.resolve();
      await gate.promise;
      return { run };
    }),
    missing: t.procedure.use(guard()).mutation(() => {
      throw new TRPCError({ code: 'NOT_FOUND', message: 'no such order' });
    }),
    ping: t.procedure.use(guard()).query(() => ++runs.ping),
    zero: t.procedure.use(idempotent()).mutation(() => ++runs.zero),
  });
  return {
    router,
    runs,
    get started() {
      return started.promise;
    },
    open: () => gate.resolve(),
  };
};

type AppRouter = ReturnType<typeof buildRouter>['router'];

const keyHeaders = (key: string | null | undefined): Record<string, string> => (key ? { 'Idempotency-Key': key } : {});

/** A fetch that remembers every response, so tests can read the headers the real links received. */
const recordingFetch = () => {
  const responses: Response[] = [];
  const fetchFn = async (input: RequestInfo | URL, init?: RequestInit) => {
    const response = await fetch(input, init);
    responses.push(response);
    return response;
  };
  return { responses, fetch: fetchFn, last: () => responses[responses.length - 1] as Response };
};

let servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

const serve = async (app = buildRouter(), responseMeta?: Parameters<typeof startServer>[1]) => {
  const server = await startServer(app.router, responseMeta);
  servers.push(server);
  const recorder = recordingFetch();
  const link = (kind: 'single' | 'batch' | 'stream'): TRPCLink<AppRouter> => {
    const common = { url: server.url, transformer: superjson, fetch: recorder.fetch };
    if (kind === 'single') return httpLink({ ...common, headers: ({ op }) => keyHeaders(op.context.key) });
    const headers = ({ opList }: { opList: readonly { context: { key?: string | null } }[] }) => ({
      'Idempotency-Keys': JSON.stringify(opList.map((op) => op.context.key ?? null)),
    });
    return kind === 'batch' ? httpBatchLink({ ...common, headers }) : httpBatchStreamLink({ ...common, headers });
  };
  const client = (kind: 'single' | 'batch' | 'stream' = 'single') => createTRPCClient<AppRouter>({ links: [link(kind)] });
  return { app, server, client, recorder };
};

const statusHeader = (response: Response): unknown => JSON.parse(response.headers.get('idempotency-status') ?? 'null');

const clientError = async (promise: Promise<unknown>): Promise<TRPCClientError<AppRouter>> => {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(TRPCClientError);
  return error as TRPCClientError<AppRouter>;
};

describe('createIdempotency', () => {
  describe('over HTTP with httpLink', () => {
    it('runs once and replays the superjson value, reporting executed then replayed', async () => {
      const { client, app, recorder } = await serve();
      const api = client();
      const first = await api.create.mutate({ n: 7 }, { context: { key: 'h1' } });
      const firstResponse = recorder.last();
      const again = await api.create.mutate({ n: 7 }, { context: { key: 'h1' } });
      const replayResponse = recorder.last();
      expect(app.runs.create).toBe(1);
      expect(again).toEqual(first);
      expect(again.at).toBeInstanceOf(Date);
      expect(again.big).toBe(7n);
      expect(statusHeader(firstResponse)).toEqual({ h1: 'executed' });
      expect(firstResponse.headers.get('idempotent-replayed')).toBeNull();
      expect(statusHeader(replayResponse)).toEqual({ h1: 'replayed' });
      expect(replayResponse.headers.get('idempotent-replayed')).toBe('true');
    });

    it('passes a query with a key straight through and reports that no idempotent procedure saw the key', async () => {
      const { client, app, recorder } = await serve();
      const api = client();
      await api.ping.query(undefined, { context: { key: 'q' } });
      await api.ping.query(undefined, { context: { key: 'q' } });
      expect(app.runs.ping).toBe(2);
      expect(recorder.last().headers.get('idempotency-status')).toBe('{}');
    });

    it('runs a mutation without a key every time and reports nothing', async () => {
      const { client, app, recorder } = await serve();
      await client().create.mutate({ n: 1 });
      await client().create.mutate({ n: 1 });
      expect(app.runs.create).toBe(2);
      expect(recorder.last().headers.get('idempotency-status')).toBeNull();
    });

    it('accepts the IETF quoted form of the key', async () => {
      const { client, app } = await serve();
      await client().create.mutate({ n: 1 }, { context: { key: '"quoted"' } });
      await client().create.mutate({ n: 1 }, { context: { key: 'quoted' } });
      expect(app.runs.create).toBe(1);
    });

    it('answers 409 CONFLICT with retryAfterMs and Retry-After while the key is in progress', async () => {
      const { client, app, recorder } = await serve();
      const first = client().slow.mutate(undefined, { context: { key: 'busy' } });
      await app.started;
      const error = await clientError(client().slow.mutate(undefined, { context: { key: 'busy' } }));
      const response = recorder.last();
      expect(error.data?.code).toBe('CONFLICT');
      expect(error.data?.httpStatus).toBe(409);
      expect(error.data?.idempotency).toEqual({ reason: 'in_progress', retryAfterMs: 1_000 });
      expect(response.status).toBe(409);
      expect(response.headers.get('retry-after')).toBe('1');
      expect(statusHeader(response)).toEqual({ busy: 'in_progress' });
      app.open();
      expect(await first).toEqual({ run: 1 });
      expect(app.runs.slow).toBe(1);
    });

    it('runs once for 60 concurrent HTTP calls with one key; the rest get 409 or the replay', async () => {
      const { client, app } = await serve();
      app.open();
      const results = await Promise.allSettled(
        Array.from({ length: 60 }, () => client().create.mutate({ n: 3 }, { context: { key: 'herd' } })),
      );
      expect(app.runs.create).toBe(1);
      let replays = 0;
      for (const result of results) {
        if (result.status === 'fulfilled') {
          expect(result.value).toEqual({ n: 3, run: 1, at: new Date(3), big: 3n });
          replays++;
        } else {
          const error = result.reason as TRPCClientError<AppRouter>;
          expect(error.data?.code).toBe('CONFLICT');
          expect(error.data?.idempotency?.retryAfterMs).toBeGreaterThan(0);
        }
      }
      expect(replays).toBeGreaterThanOrEqual(1);
    });

    it('answers 422 UNPROCESSABLE_CONTENT when the key comes back with another input', async () => {
      const { client, recorder } = await serve();
      await client().create.mutate({ n: 1 }, { context: { key: 'fp' } });
      const error = await clientError(client().create.mutate({ n: 2 }, { context: { key: 'fp' } }));
      expect(error.data?.code).toBe('UNPROCESSABLE_CONTENT');
      expect(error.data?.idempotency?.reason).toBe('mismatch');
      expect(recorder.last().status).toBe(422);
      expect(statusHeader(recorder.last())).toEqual({ fp: 'mismatch' });
    });

    it('answers 400 BAD_REQUEST with key_invalid for a key that breaks the rules', async () => {
      const { client, app, recorder } = await serve();
      const error = await clientError(client().create.mutate({ n: 1 }, { context: { key: 'x'.repeat(256) } }));
      expect(error.data?.code).toBe('BAD_REQUEST');
      expect(error.data?.idempotency?.reason).toBe('key_invalid');
      expect(error.message).toMatch(/256 characters/);
      expect(recorder.last().status).toBe(400);
      expect(app.runs.create).toBe(0);
    });

    it('replays a stored NOT_FOUND with its code and message', async () => {
      const { client, recorder } = await serve();
      const first = await clientError(client().missing.mutate(undefined, { context: { key: 'nf' } }));
      const again = await clientError(client().missing.mutate(undefined, { context: { key: 'nf' } }));
      expect(first.data?.code).toBe('NOT_FOUND');
      expect(again.data?.code).toBe('NOT_FOUND');
      expect(again.message).toBe('no such order');
      expect(recorder.last().status).toBe(404);
      expect(recorder.last().headers.get('idempotent-replayed')).toBe('true');
    });
  });

  describe('over HTTP with httpBatchLink', () => {
    it('gives each call of a batch its own key, in batch order', async () => {
      const { client, app } = await serve();
      const api = client('batch');
      const [a, b] = await Promise.all([
        api.create.mutate({ n: 10 }, { context: { key: 'bx' } }),
        api.create.mutate({ n: 20 }, { context: { key: 'by' } }),
      ]);
      const [b2, a2] = await Promise.all([
        api.create.mutate({ n: 20 }, { context: { key: 'by' } }),
        api.create.mutate({ n: 10 }, { context: { key: 'bx' } }),
      ]);
      expect(app.runs.create).toBe(2);
      expect(a2).toEqual(a);
      expect(b2).toEqual(b);
    });

    it('reports each call of a batch of three where one is a replay', async () => {
      const { client, app, recorder } = await serve();
      const api = client('batch');
      await api.create.mutate({ n: 1 }, { context: { key: 'seen' } });
      const results = await Promise.all([
        api.create.mutate({ n: 1 }, { context: { key: 'seen' } }),
        api.create.mutate({ n: 2 }, { context: { key: 'fresh' } }),
        api.create.mutate({ n: 3 }, { context: { key: null } }),
      ]);
      const response = recorder.last();
      expect(results.map((r) => r.run)).toEqual([1, expect.any(Number), expect.any(Number)]);
      expect(app.runs.create).toBe(3);
      // One letter per position (replayed, executed, no key) and no per-key map on a batch.
      expect(response.headers.get('idempotency-statuses')).toBe('re-');
      expect(response.headers.get('idempotency-status')).toBeNull();
      expect(response.headers.get('idempotent-replayed')).toBeNull();
    });

    it('applies a single Idempotency-Key header to batch index 0 only', async () => {
      const app = buildRouter();
      const server = await startServer(app.router);
      servers.push(server);
      const api = createTRPCClient<AppRouter>({
        links: [httpBatchLink({ url: server.url, transformer: superjson, headers: () => ({ 'Idempotency-Key': 'only-first' }) })],
      });
      const batch = () => Promise.all([api.create.mutate({ n: 1 }), api.create.mutate({ n: 2 })]);
      const [a1, b1] = await batch();
      const [a2, b2] = await batch();
      expect(a2).toEqual(a1);
      expect(b2.run).not.toBe(b1.run);
      expect(app.runs.create).toBe(3);
    });

    it('reads a custom headerName and its batch form <name>s', async () => {
      const app = buildRouter(createMemoryStore(), { headerName: 'X-Request-Id' });
      const server = await startServer(app.router);
      servers.push(server);
      const batched = createTRPCClient<AppRouter>({
        links: [
          httpBatchLink({
            url: server.url,
            transformer: superjson,
            headers: ({ opList }) => ({ 'X-Request-Ids': JSON.stringify(opList.map((op) => op.context.key ?? null)) }),
          }),
        ],
      });
      const single = createTRPCClient<AppRouter>({
        links: [httpLink({ url: server.url, transformer: superjson, headers: ({ op }) => (op.context.key ? { 'X-Request-Id': op.context.key } : {}) })],
      });
      const [a, b] = await Promise.all([
        batched.create.mutate({ n: 1 }, { context: { key: 'rid-a' } }),
        batched.create.mutate({ n: 2 }, { context: { key: 'rid-b' } }),
      ]);
      expect(await single.create.mutate({ n: 2 }, { context: { key: 'rid-b' } })).toEqual(b);
      expect(await single.create.mutate({ n: 1 }, { context: { key: 'rid-a' } })).toEqual(a);
      expect(app.runs.create).toBe(2);
    });

    it('answers BAD_REQUEST for every call when Idempotency-Keys is not a JSON array', async () => {
      const app = buildRouter();
      const server = await startServer(app.router);
      servers.push(server);
      const api = createTRPCClient<AppRouter>({
        links: [httpBatchLink({ url: server.url, transformer: superjson, headers: () => ({ 'Idempotency-Keys': '{"0":"k"}' }) })],
      });
      const error = await clientError(api.create.mutate({ n: 1 }));
      expect(error.data?.code).toBe('BAD_REQUEST');
      expect(error.message).toMatch(/must be a JSON array/);
      expect(app.runs.create).toBe(0);
    });
  });

  describe('over HTTP with httpBatchStreamLink', () => {
    it('reports Idempotency-Status: deferred and still dedupes', async () => {
      const { client, app, recorder } = await serve();
      const api = client('stream');
      const first = await api.create.mutate({ n: 5 }, { context: { key: 'st' } });
      const again = await api.create.mutate({ n: 5 }, { context: { key: 'st' } });
      expect(again).toEqual(first);
      expect(app.runs.create).toBe(1);
      expect(recorder.last().headers.get('idempotency-status')).toBe('deferred');
    });

    it('reports nothing on a streamed request without keys', async () => {
      const app = buildRouter();
      const server = await startServer(app.router);
      servers.push(server);
      const recorder = recordingFetch();
      const api = createTRPCClient<AppRouter>({ links: [httpBatchStreamLink({ url: server.url, transformer: superjson, fetch: recorder.fetch })] });
      await api.create.mutate({ n: 1 });
      expect(recorder.last().headers.get('idempotency-status')).toBeNull();
    });
  });

  describe('idempotencyResponseMeta(inner)', () => {
    it("keeps the user's own headers and status and adds ours", async () => {
      const { client, recorder } = await serve(
        buildRouter(),
        idempotencyResponseMeta(() => ({ status: 201, headers: { 'x-app': 'mine' } })),
      );
      await client().create.mutate({ n: 1 }, { context: { key: 'inner' } });
      await client().create.mutate({ n: 1 }, { context: { key: 'inner' } });
      const response = recorder.last();
      expect(response.status).toBe(201);
      expect(response.headers.get('x-app')).toBe('mine');
      expect(statusHeader(response)).toEqual({ inner: 'replayed' });
      expect(response.headers.get('idempotent-replayed')).toBe('true');
    });

    it("keeps the user's headers given as a Headers object", async () => {
      const { client, recorder } = await serve(
        buildRouter(),
        idempotencyResponseMeta(() => ({ headers: new Headers({ 'x-app': 'headers-object' }) })),
      );
      await client().create.mutate({ n: 1 }, { context: { key: 'inner2' } });
      expect(recorder.last().headers.get('x-app')).toBe('headers-object');
      expect(statusHeader(recorder.last())).toEqual({ inner2: 'executed' });
    });
  });

  describe('through the fetch adapter', () => {
    const call = async (router: AppRouter, body: unknown, headers: Record<string, string>) =>
      fetchRequestHandler({
        endpoint: '/trpc',
        router,
        req: new Request('http://localhost/trpc/create', {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify(superjson.serialize(body)),
        }),
        createContext: ({ req }) => ({ req }),
        responseMeta: idempotencyResponseMeta(),
      });

    it('reads the key from the Fetch Request and reports the replay', async () => {
      const app = buildRouter();
      const first = await call(app.router, { n: 4 }, { 'Idempotency-Key': 'fetch-k' });
      const again = await call(app.router, { n: 4 }, { 'idempotency-key': 'fetch-k' });
      expect(app.runs.create).toBe(1);
      expect(first.status).toBe(200);
      expect(statusHeader(first)).toEqual({ 'fetch-k': 'executed' });
      expect(statusHeader(again)).toEqual({ 'fetch-k': 'replayed' });
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      const body = (await again.json()) as { result: { data: Parameters<typeof superjson.deserialize>[0] } };
      expect(superjson.deserialize(body.result.data)).toEqual({ n: 4, run: 1, at: new Date(4), big: 4n });
    });

    it('answers 422 through the fetch adapter on a mismatch', async () => {
      const app = buildRouter();
      await call(app.router, { n: 4 }, { 'Idempotency-Key': 'fetch-m' });
      const response = await call(app.router, { n: 5 }, { 'Idempotency-Key': 'fetch-m' });
      expect(response.status).toBe(422);
      const body = (await response.json()) as { error: { json: { data: { idempotency: unknown } } } };
      expect(body.error.json.data.idempotency).toEqual({ reason: 'mismatch' });
    });
  });

  describe('the zero-config idempotent export', () => {
    it('dedupes by the Idempotency-Key header on a process-wide memory store', async () => {
      const { client, app, recorder } = await serve();
      const key = randomUUID();
      const first = await client().zero.mutate(undefined, { context: { key } });
      const again = await client().zero.mutate(undefined, { context: { key } });
      expect(again).toBe(first);
      expect(app.runs.zero).toBe(1);
      expect(recorder.last().headers.get('idempotent-replayed')).toBe('true');
      // A second router sharing the export shares its store.
      const other = await serve();
      expect(await other.client().zero.mutate(undefined, { context: { key } })).toBe(first);
      expect(other.app.runs.zero).toBe(0);
    });
  });
});
