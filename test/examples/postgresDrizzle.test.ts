import { randomUUID } from 'node:crypto';
import superjson from 'superjson';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { start } from '../../examples/postgres-drizzle/server';
import type pg from 'pg';
import { connectPool, inRunSchema } from '../helpers/postgresClients';

/** POSTs `order.create` as httpLink does. */
const createOrder = async (url: string, key: string, item = 'book') => {
  const response = await fetch(`${url}/order.create`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key, 'x-user-id': 'user-1' },
    body: superjson.stringify({ item, quantity: 1 }),
  });
  const body = (await response.json()) as { result?: { data: Parameters<typeof superjson.deserialize>[0] } };
  return {
    status: response.status,
    replayed: response.headers.get('idempotent-replayed'),
    order: body.result && superjson.deserialize<{ id: number; item: string; createdAt: Date }>(body.result.data),
  };
};

describe('examples/postgres-drizzle', () => {
  let pool: pg.Pool;
  let server: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    // Unqualified names (the store's table, drizzle_orders) land in this run's schema.
    pool = connectPool(inRunSchema());
    server = await start({ port: 0, pool });
  });
  afterAll(async () => {
    await server?.close();
    await pool?.end();
  });

  it('writes the order through Drizzle in the idempotency transaction: once, then replayed', async () => {
    const key = randomUUID();
    const [first, concurrent] = await Promise.all([createOrder(server.url, key), createOrder(server.url, key)]);
    // One of two concurrent calls ran; the other got CONFLICT (409) or, if it came later, the replay.
    const ran = [first, concurrent].find((r) => r.status === 200 && r.replayed === null);
    expect(ran?.order).toMatchObject({ item: 'book' });
    expect(ran?.order?.createdAt).toBeInstanceOf(Date);
    const replay = await createOrder(server.url, key);
    expect(replay).toMatchObject({ status: 200, replayed: 'true', order: ran?.order });
    expect((await server.orders()).filter((order) => order.id === ran?.order?.id)).toHaveLength(1);
    expect(await server.orders()).toHaveLength(1);
  });

  it('refuses a call without a key (required), writing nothing', async () => {
    const before = (await server.orders()).length;
    const response = await fetch(`${server.url}/order.create`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: superjson.stringify({ item: 'pen', quantity: 1 }),
    });
    expect(response.status).toBe(400);
    expect(await server.orders()).toHaveLength(before);
  });
});
