/**
 * A tRPC app on a real HTTP server on loopback, observed by `createOtelObserver`. Each request runs inside its
 * own active span, as `@opentelemetry/instrumentation-http` does in an app, so the observer finds it.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import type { Tracer } from '@opentelemetry/api';
import { initTRPC, TRPCError } from '@trpc/server';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import superjson from 'superjson';
import { z } from 'zod';
import type { IdempotencyOptions, IdempotencyStore } from '../../src/index';
import { createIdempotency, createMemoryStore, idempotencyErrorData, idempotencyResponseMeta } from '../../src/index';
import type { ManualClock } from '../helpers/manualClock';

export interface ObservedServerOptions {
  onEvent: NonNullable<IdempotencyOptions['onEvent']>;
  tracer: Tracer;
  clock: ManualClock;
  /** Replaces the store's claim (e.g. one that throws). */
  claim?: IdempotencyStore['claim'];
  onStoreError?: IdempotencyOptions['onStoreError'];
}

/** How long a claim and a procedure take on the manual clock. */
export const CLAIM_MS = 2;
export const PROCEDURE_MS = 250;

export const startObservedServer = async (options: ObservedServerOptions) => {
  const { clock } = options;
  const memory = createMemoryStore({ clock });
  const store: IdempotencyStore = {
    ...memory,
    claim: options.claim ?? (async (request) => {
      const outcome = await memory.claim(request);
      await clock.advance(CLAIM_MS);
      return outcome;
    }),
  };
  const { idempotent } = createIdempotency({ store, clock, onEvent: options.onEvent, onStoreError: options.onStoreError });
  const t = initTRPC.create({
    transformer: superjson,
    errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, idempotency: idempotencyErrorData(error) } }),
  });
  const runs = { create: 0, slow: 0, fail: 0 };
  let openGate: () => void = () => {};
  let markSlowStarted: () => void = () => {};
  const slowStarted = new Promise<void>((resolve) => (markSlowStarted = resolve));
  const input = z.object({ n: z.number() });

  const router = t.router({
    create: t.procedure
      .input(input)
      .use(idempotent())
      .mutation(async ({ input }) => {
        await clock.advance(PROCEDURE_MS);
        return { n: input.n, run: ++runs.create };
      }),
    slow: t.procedure
      .input(input)
      .use(idempotent())
      .mutation(async ({ input }) => {
        runs.slow++;
        const gate = new Promise<void>((resolve) => (openGate = resolve));
        markSlowStarted();
        await gate;
        return { n: input.n };
      }),
    fail: t.procedure
      .input(input)
      .use(idempotent())
      .mutation(() => {
        runs.fail++;
        throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'boom' });
      }),
  });

  const handler = createHTTPHandler({ router, createContext: ({ req }) => ({ req }), responseMeta: idempotencyResponseMeta() });
  const server = createServer((req, res) => {
    // What the HTTP instrumentation does: one span per request, active while the request is handled.
    options.tracer.startActiveSpan(`POST ${req.url}`, (span) => {
      // Ended (and exported) just before the response is: once the client has its answer, the span is readable.
      const end = res.end.bind(res) as (...args: unknown[]) => typeof res;
      res.end = ((...args: unknown[]) => {
        span.end();
        return end(...args);
      }) as typeof res.end;
      void handler(req, res);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    router,
    runs,
    slowStarted,
    openGate: () => openGate(),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

export type ObservedRouter = Awaited<ReturnType<typeof startObservedServer>>['router'];
