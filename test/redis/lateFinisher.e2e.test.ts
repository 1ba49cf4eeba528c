import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import { initTRPC } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { IdempotencyStore } from '../../src/index';
import { createIdempotency, createMemoryStore, idempotencyErrorData, idempotencyResponseMeta } from '../../src/index';
import { createRedisStore } from '../../src/redis';
import { createManualClock } from '../helpers/manualClock';
import { randomPrefix, redisTarget, sleep } from '../helpers/redisClients';
import { startRedisServer } from '../helpers/redisServer';

/**
 * A late finisher: the owner's lease runs out while its procedure runs, a retry on another instance takes the key
 * over and completes with another result, then the old owner finishes. Its caller must not get `executed` with
 * its own result while the key replays the other one. Real HTTP, real @trpc/client.
 */

const lockTtlMs = 600;

const gate = () => {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
};

/** One app instance over HTTP: `charge` answers with the instance's name and waits for `hold` when it is set. */
const startInstance = async (name: string, store: IdempotencyStore, options: { clock?: ReturnType<typeof createManualClock> } = {}) => {
  const t = initTRPC.context<{ req: IncomingMessage }>().create({
    errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, idempotency: idempotencyErrorData(error) } }),
  });
  const { idempotent } = createIdempotency({ store, lockTtlMs, ...options });
  const state = { runs: 0, hold: undefined as Promise<void> | undefined, started: undefined as (() => void) | undefined };
  const router = t.router({
    charge: t.procedure.use(idempotent()).mutation(async () => {
      state.runs++;
      state.started?.();
      await state.hold;
      return { chargedBy: name };
    }),
  });
  const server = createHTTPServer({ router, createContext: ({ req }) => ({ req }), responseMeta: idempotencyResponseMeta() });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  /** Calls `charge` with `key`; resolves to the outcome and the Idempotency-Status header. */
  const charge = async (key: string) => {
    let status: string | null = null;
    const client = createTRPCClient<typeof router>({
      links: [
        httpLink({
          url,
          headers: { 'idempotency-key': key },
          fetch: async (input, init) => {
            const response = await fetch(input, init);
            status = response.headers.get('idempotency-status');
            return response;
          },
        }),
      ],
    });
    try {
      return { ok: true as const, data: await client.charge.mutate(), status };
    } catch (error) {
      if (!(error instanceof TRPCClientError)) throw error;
      return { ok: false as const, code: error.data?.code as string, data: error.data as { idempotency?: unknown }, message: error.message, status };
    }
  };
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return { state, charge, close };
};

type Instance = Awaited<ReturnType<typeof startInstance>>;

/** A's call blocks in the procedure; `loseLease` makes A's lease run out; B then takes over and completes. */
const lateFinisher = async (a: Instance, b: Instance, loseLease: () => Promise<void>) => {
  const key = 'late-finisher-key';
  const finish = gate();
  const started = new Promise<void>((resolve) => (a.state.started = resolve));
  a.state.hold = finish.opened;
  const first = a.charge(key);
  await started;
  await loseLease();

  const second = await b.charge(key);
  expect(second).toEqual({ ok: true, data: { chargedBy: 'B' }, status: JSON.stringify({ [key]: 'executed' }) });

  finish.open();
  const late = await first;
  // Never `executed` with A's own result: the key replays B's.
  expect(late).toMatchObject({
    ok: false,
    code: 'CONFLICT',
    data: { idempotency: { reason: 'lease_lost' } },
    status: JSON.stringify({ [key]: 'lease_lost' }),
  });
  expect(late.ok === false && late.message).toMatch(/retry with the same key to get the final result/);

  // The retry the error invites gets the key's one answer, on either instance.
  for (const instance of [a, b]) {
    expect(await instance.charge(key)).toEqual({ ok: true, data: { chargedBy: 'B' }, status: JSON.stringify({ [key]: 'replayed' }) });
  }
  expect(a.state.runs + b.state.runs).toBe(2);
};

describe('a late finisher whose lease was taken over', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it.runIf(redisTarget().canSpawn)('on Redis (stalled past the lease): gets a retryable LEASE_LOST, and the retry replays the new owner', async () => {
    const server = await startRedisServer();
    cleanup.push(async () => {
      server.resume();
      await server.stop();
    });
    const prefix = randomPrefix();
    const instances: Instance[] = [];
    for (const name of ['A', 'B']) {
      const redis = new Redis(server.url);
      redis.on('error', () => {});
      const store = createRedisStore({ redis, prefix, operationTimeoutMs: 200 });
      const instance = await startInstance(name, store);
      instances.push(instance);
      cleanup.push(async () => {
        await instance.close();
        await store.close();
        redis.disconnect();
      });
    }
    const [a, b] = instances as [Instance, Instance];
    await lateFinisher(a, b, async () => {
      server.pause();
      await sleep(lockTtlMs + 300); // Redis' clock runs on while it is stopped: A's lease ends
      server.resume();
    });
  });

  it('on the memory store (renewals fail past the lease): gets a retryable LEASE_LOST, and the retry replays the new owner', async () => {
    const clock = createManualClock();
    const memory = createMemoryStore({ clock });
    let renewDown = false;
    const flaky: IdempotencyStore = {
      ...memory,
      claim: (r) => memory.claim(r),
      complete: (r) => memory.complete(r),
      release: (r) => memory.release(r),
      wait: (r) => memory.wait(r),
      renew: (r) => (renewDown ? Promise.reject(new Error('store unreachable')) : memory.renew(r)),
    };
    const a = await startInstance('A', flaky, { clock });
    const b = await startInstance('B', memory, { clock });
    cleanup.push(a.close, b.close);
    await lateFinisher(a, b, async () => {
      renewDown = true;
      await clock.advance(lockTtlMs + 1);
      renewDown = false;
    });
  });
});
