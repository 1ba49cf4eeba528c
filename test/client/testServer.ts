import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { connect, createServer as createTcpServer } from 'node:net';
import { initTRPC, TRPCError } from '@trpc/server';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import superjson from 'superjson';
import { z } from 'zod';
import { createIdempotency, createMemoryStore, idempotencyErrorData, idempotencyResponseMeta } from '../../src/index';

export interface TestServerOptions {
  /** Pass `idempotencyResponseMeta()` to the handler. */
  responseMeta?: boolean;
  lockTtlMs?: number;
}

const buildApp = ({ lockTtlMs }: TestServerOptions) => {
  const t = initTRPC.context<{ req: IncomingMessage }>().create({
    transformer: superjson,
    errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, idempotency: idempotencyErrorData(error) } }),
  });
  const { idempotent } = createIdempotency({ store: createMemoryStore(), ...(lockTtlMs ? { lockTtlMs } : {}) });
  const runs = { create: 0, plain: 0, forbidden: 0, flaky: 0, slow: 0 };
  let releaseSlow: () => void = () => {};
  let markSlowStarted: () => void = () => {};
  const slowStarted = new Promise<void>((resolve) => (markSlowStarted = resolve));
  const input = z.object({ n: z.number() });

  const router = t.router({
    create: t.procedure
      .input(input)
      .use(idempotent())
      .mutation(({ input }) => ({ n: input.n, run: ++runs.create, at: new Date(0) })),
    plain: t.procedure.input(input).mutation(({ input }) => ({ n: input.n, run: ++runs.plain })),
    forbidden: t.procedure
      .input(input)
      .use(idempotent())
      .mutation(() => {
        runs.forbidden++;
        throw new TRPCError({ code: 'FORBIDDEN', message: 'no' });
      }),
    flaky: t.procedure
      .input(input)
      .use(idempotent())
      .mutation(({ input }) => {
        if (++runs.flaky === 1) throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'try again' });
        return { n: input.n, run: runs.flaky };
      }),
    slow: t.procedure
      .input(input)
      .use(idempotent())
      .mutation(async ({ input }) => {
        runs.slow++;
        const released = new Promise<void>((resolve) => (releaseSlow = resolve));
        markSlowStarted();
        await released;
        return { n: input.n, run: runs.slow };
      }),
    ping: t.procedure.query(() => 'pong'),
  });
  return { router, runs, slowStarted, releaseSlow: () => releaseSlow() };
};

export type AppRouter = ReturnType<typeof buildApp>['router'];

/** A real tRPC HTTP server on loopback with idempotent procedures, counting executions and recording request headers. */
export const startTestServer = async (options: TestServerOptions = {}) => {
  const { router, runs, slowStarted, releaseSlow } = buildApp(options);
  const { responseMeta = true } = options;
  const handler = createHTTPHandler({
    router,
    createContext: ({ req }) => ({ req }),
    ...(responseMeta ? { responseMeta: idempotencyResponseMeta() } : {}),
  });
  const requests: { url: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    requests.push({ url: req.url ?? '', headers: req.headers });
    void handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    runs,
    requests,
    /** Resolves when `slow` has started; `releaseSlow()` lets it finish. */
    slowStarted,
    releaseSlow,
    /** Headers of the requests that reached the server, for one procedure path. */
    headersFor: (path: string) => requests.filter((r) => r.url.startsWith(`/${path}`)).map((r) => r.headers),
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};

/**
 * A TCP proxy in front of `target` that forwards requests and, while `dropResponses` is above zero, destroys the
 * client connection as soon as a response starts arriving: the server ran the call, the client never hears back.
 */
export const startLossyProxy = async (target: string) => {
  const { port, hostname } = new URL(target);
  const state = { dropResponses: 0, dropped: 0 };
  const sockets = new Set<Socket>();
  const proxy = createTcpServer((client) => {
    const upstream = connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('data', (chunk) => upstream.write(chunk));
    client.on('end', () => upstream.end());
    upstream.on('data', (chunk) => {
      if (state.dropResponses > 0) {
        state.dropResponses--;
        state.dropped++;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    state,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
};
