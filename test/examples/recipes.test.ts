import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import superjson from 'superjson';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createFetchHandler } from '../../examples/fetch/handler';
import type { Order } from '../../examples/shared/orders';
import { randomPrefix, redisTarget } from '../helpers/redisClients';

const input = { item: 'book', quantity: 1 };

/** A `POST /api/trpc/order.create` as httpLink sends it, with the key in `Idempotency-Key`. */
const createOrderRequest = (key: string) =>
  new Request('http://localhost/api/trpc/order.create', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key, 'x-user-id': 'user-1' },
    body: superjson.stringify(input),
  });

const orderOf = async (response: Response): Promise<Order> => {
  const body = (await response.json()) as { result: { data: Parameters<typeof superjson.deserialize>[0] } };
  return superjson.deserialize<Order>(body.result.data);
};

describe('examples/nextjs (App Router route handler, called as Next calls it)', () => {
  const quits: (() => Promise<unknown>)[] = [];
  const saved = { REDIS_URL: process.env.REDIS_URL, IDEMPOTENCY_PREFIX: process.env.IDEMPOTENCY_PREFIX };
  afterEach(async () => {
    await Promise.all(quits.splice(0).map((quit) => quit()));
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  /** One serverless instance: a fresh load of the route module (its own router, orders and Redis connection). */
  const startInstance = async () => {
    vi.resetModules();
    const route = await import('../../examples/nextjs/app/api/trpc/[trpc]/route');
    const { orders } = await import('../../examples/nextjs/server/router');
    const { redis } = await import('../../examples/nextjs/server/idempotency');
    quits.push(() => redis.quit());
    return { route, orders };
  };

  it('exports GET and POST on the Node runtime; a retry on another instance replays through Redis', async () => {
    process.env.REDIS_URL = redisTarget().url;
    process.env.IDEMPOTENCY_PREFIX = randomPrefix();
    const a = await startInstance();
    const b = await startInstance();
    expect(a.route.runtime).toBe('nodejs');
    expect(a.route.GET).toBe(a.route.POST);

    const key = `next-${randomUUID()}`;
    const first = await a.route.POST(createOrderRequest(key));
    expect(first.headers.get('idempotency-status')).toBe(JSON.stringify({ [key]: 'executed' }));
    const retry = await b.route.POST(createOrderRequest(key));
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(await orderOf(retry)).toEqual(await orderOf(first));
    expect([a.orders.length, b.orders.length]).toEqual([1, 0]);
  });

  it('refuses to start without REDIS_URL', async () => {
    delete process.env.REDIS_URL;
    vi.resetModules();
    await expect(import('../../examples/nextjs/server/idempotency')).rejects.toThrow(/Set REDIS_URL/);
  });

  it('why: with a memory store per instance, the same retry on another instance runs again', async () => {
    const a = createFetchHandler();
    const b = createFetchHandler();
    const key = `memory-${randomUUID()}`;
    await a.handler(createOrderRequest(key));
    const retry = await b.handler(createOrderRequest(key));
    expect(retry.headers.get('idempotency-status')).toBe(JSON.stringify({ [key]: 'executed' }));
    expect([a.orders.length, b.orders.length]).toEqual([1, 1]);
  });
});

describe('examples/tanstack-react-query', () => {
  const recipe = JSON.parse(readFileSync('examples/tanstack-react-query/package.json', 'utf8')) as {
    dependencies: Record<string, string>;
  };

  it('pins @trpc/client and @trpc/server to the exact version @trpc/tanstack-react-query pins as peers (plain npm install)', () => {
    const pinned = recipe.dependencies['@trpc/tanstack-react-query'];
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    expect([recipe.dependencies['@trpc/client'], recipe.dependencies['@trpc/server']]).toEqual([pinned, pinned]);
  });
});
