import type { AddressInfo } from 'node:net';
import type { AnyRouter } from '@trpc/server';
import { initTRPC, TRPCError } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import type { ResponseMetaFn } from '@trpc/server/http';
import superjson from 'superjson';
import { idempotencyErrorData, idempotencyResponseMeta } from '../../src/index';
import type { IdempotencyEvent, IdempotencyStore } from '../../src/index';

/** The ctx every server test uses: the adapter's request, or plain headers, plus a user for scoping. */
export interface TestContext {
  req?: unknown;
  headers?: Record<string, unknown>;
  user?: string;
  key?: unknown;
  /** What a test's `scope` option returns. */
  scope?: string | number | bigint | null;
}

/** tRPC with superjson and the error formatter the README asks users to install. */
export const createT = () =>
  initTRPC.context<TestContext>().create({
    transformer: superjson,
    errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, idempotency: idempotencyErrorData(error) } }),
  });

export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

export const deferred = <T = void>(): Deferred<T> => {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

/** What `make` throws, or undefined when it returns. */
export const thrownBy = (make: () => unknown): unknown => {
  try {
    make();
  } catch (error) {
    return error;
  }
  return undefined;
};

/** Resolves to the rejection of `promise`; fails the test when it resolves. */
export const rejectionOf = async (promise: Promise<unknown>): Promise<any> => {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection, got a value');
};

/** Collects `onEvent` events. */
export const eventLog = () => {
  const events: IdempotencyEvent[] = [];
  return {
    events,
    onEvent: (event: IdempotencyEvent) => {
      events.push(event);
    },
    ofType: <TType extends IdempotencyEvent['type']>(type: TType) =>
      events.filter((e): e is Extract<IdempotencyEvent, { type: TType }> => e.type === type),
  };
};

type StoreMethod = keyof IdempotencyStore;

/** Wraps a store: records every call, and lets a test replace any method. */
export const spyStore = (inner: IdempotencyStore, overrides: Partial<IdempotencyStore> = {}) => {
  const calls: { method: StoreMethod; request: any }[] = [];
  const wrap =
    <TMethod extends StoreMethod>(method: TMethod) =>
    (request: any): any => {
      calls.push({ method, request });
      const override = overrides[method] as ((r: any) => Promise<unknown>) | undefined;
      return override ? override(request) : (inner[method] as (r: any) => Promise<unknown>)(request);
    };
  const store: IdempotencyStore = {
    claim: wrap('claim'),
    renew: wrap('renew'),
    complete: wrap('complete'),
    release: wrap('release'),
    recordStep: wrap('recordStep'),
    wait: wrap('wait'),
  };
  return {
    store,
    inner,
    calls,
    callsOf: (method: StoreMethod) => calls.filter((c) => c.method === method).map((c) => c.request),
    /** Replaces one method from now on. */
    override: (method: StoreMethod, fn: (request: any) => Promise<any>) => {
      overrides[method] = fn as never;
    },
  };
};

export interface TestServer {
  url: string;
  close: () => Promise<void>;
}

/** A real standalone server on 127.0.0.1, port 0, wired as the README says. */
export const startServer = async (
  router: AnyRouter,
  responseMeta: ResponseMetaFn<AnyRouter> = idempotencyResponseMeta(),
): Promise<TestServer> => {
  const server = createHTTPServer({ router, createContext: ({ req }) => ({ req }), responseMeta });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
};

/** The TRPCError a createCaller call rejected with. */
export const trpcErrorOf = async (promise: Promise<unknown>): Promise<TRPCError> => {
  const error = await rejectionOf(promise);
  if (!(error instanceof TRPCError)) throw new Error(`expected a TRPCError, got ${String(error)}`);
  return error;
};
