import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import type { TRPCError } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import { Redis } from 'ioredis';
import superjson from 'superjson';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdempotency, idempotencyResponseMeta, isIdempotencyError } from '../../src/index';
import type { IdempotencyEvent } from '../../src/index';
import { createRedisStore } from '../../src/redis';
import type { RedisStore } from '../../src/redis';
import { recordId, scopeText } from '../../src/server/scope';
import { createT, rejectionOf } from '../server/helpers';
import { connectRedis, randomPrefix } from '../helpers/redisClients';
import type { RedisServer } from '../helpers/redisServer';
import { startRedisServer } from '../helpers/redisServer';

// What a client is told when the Redis store fails, over real HTTP with the real client: a plain message and the
// reason, never the record key or Redis' own error text (with its script SHA). The server keeps both: on the
// TRPCError's cause (what onError logs) and on the store_error event.

interface Harness {
  store: RedisStore;
  prefix: string;
  events: IdempotencyEvent[];
  serverErrors: TRPCError[];
  bodies: string[];
  charge: (key: string) => Promise<unknown>;
  close: () => Promise<void>;
}

const harness = async (redis: Redis): Promise<Harness> => {
  // Shaped like a real deployment's prefix (`shop:idem:`), unique per test file.
  const prefix = `${randomPrefix()}shop:idem:`;
  const store = createRedisStore({ redis, prefix });
  const events: IdempotencyEvent[] = [];
  const serverErrors: TRPCError[] = [];
  const bodies: string[] = [];
  const t = createT();
  const { idempotent } = createIdempotency({ store, onEvent: (e) => events.push(e) });
  const router = t.router({ charge: t.procedure.use(idempotent()).mutation(() => 'charged') });
  const server = createHTTPServer({
    router,
    createContext: ({ req }) => ({ req }),
    responseMeta: idempotencyResponseMeta(),
    onError: ({ error }) => serverErrors.push(error),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = (key: string) =>
    createTRPCClient<typeof router>({
      links: [
        httpLink({
          url: `http://127.0.0.1:${port}`,
          transformer: superjson,
          headers: { 'Idempotency-Key': key },
          // Keeps the raw body: the test checks every byte the client got, not only the parsed message.
          fetch: async (input, init) => {
            const response = await fetch(input, init);
            bodies.push(await response.clone().text());
            return response;
          },
        }),
      ],
    });
  return {
    store,
    prefix,
    events,
    serverErrors,
    bodies,
    charge: (key) => client(key).charge.mutate(),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
    },
  };
};

const clientError = async (promise: Promise<unknown>): Promise<TRPCClientError<any>> => {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(TRPCClientError);
  return error as TRPCClientError<any>;
};

/** The whole chain of causes' messages, as the server's logs would print them. */
const causeMessages = (error: unknown): string => {
  const messages: string[] = [];
  for (let e = error; e instanceof Error; e = e.cause) messages.push(e.message);
  return messages.join(' <- ');
};

describe('store failures over HTTP with the Redis store', () => {
  describe('a record key holding a string', () => {
    let redis: Redis;
    let h: Harness;
    beforeAll(async () => {
      redis = connectRedis();
      h = await harness(redis);
    });
    afterAll(async () => {
      await h.close();
      await redis.quit();
    });

    it('tells the client record_corrupt in plain words; the record key stays on the cause and the event', async () => {
      const key = `k-${randomUUID()}`;
      const recordKey = `${h.prefix}{${recordId(scopeText(undefined), 'charge', key)}}`;
      await redis.set(recordKey, 'foreign');

      const error = await clientError(h.charge(key));
      expect(error.data?.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.data?.idempotency).toEqual({ reason: 'record_corrupt' });
      expect(error.message).toBe("trpc-idempotency: this idempotency key's stored record cannot be read; the procedure was not run");
      const body = h.bodies.at(-1) ?? '';
      expect(body).toContain('record_corrupt');
      for (const secret of ['idem:', recordKey, 'holds a string', 'foreign']) expect(body).not.toContain(secret);

      const logged = h.serverErrors.at(-1);
      expect(isIdempotencyError(logged?.cause) && logged.cause.code).toBe('RECORD_CORRUPT');
      expect(causeMessages(logged)).toContain(`record ${recordKey} holds a string`);
      const event = h.events.find((e) => e.type === 'store_error');
      expect(event?.type === 'store_error' && causeMessages(event.error)).toContain(`record ${recordKey} holds a string`);
      expect(await redis.get(recordKey)).toBe('foreign');
    });
  });

  describe("Redis' own error", () => {
    let server: RedisServer;
    let redis: Redis;
    let h: Harness;
    beforeAll(async () => {
      // Its own server: the test makes it refuse writes.
      server = await startRedisServer();
      redis = new Redis(server.url);
      h = await harness(redis);
    });
    afterAll(async () => {
      await h.close();
      await redis.quit();
      await server.stop();
    });

    it('tells the client store_unavailable in plain words; the Redis error and script SHA stay on the cause and the event', async () => {
      expect(await h.charge(`k-${randomUUID()}`)).toBe('charged'); // the scripts are loaded, the store works
      await redis.config('SET', 'maxmemory-policy', 'noeviction');
      await redis.config('SET', 'maxmemory', '1');

      const error = await clientError(h.charge(`k-${randomUUID()}`));
      expect(error.data?.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.data?.idempotency).toMatchObject({ reason: 'store_unavailable' });
      expect(error.message).toBe('trpc-idempotency: the idempotency store cannot be reached; the procedure was not run; retry later');
      const body = h.bodies.at(-1) ?? '';
      expect(body).not.toMatch(/OOM|maxmemory|script|[0-9a-f]{40}|idem:/);

      // Redis' reply names the script by its SHA: the server's log and the event still have it.
      const logged = causeMessages(h.serverErrors.at(-1));
      expect(logged).toMatch(/OOM command not allowed.*script: [0-9a-f]{40}/);
      const event = h.events.find((e) => e.type === 'store_error');
      expect(event?.type === 'store_error' && causeMessages(event.error)).toMatch(/OOM command not allowed.*script: [0-9a-f]{40}/);
    });
  });
});
