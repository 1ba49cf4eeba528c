import { createTRPCClient, httpLink } from '@trpc/client';
import superjson, { SuperJSON } from 'superjson';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency, createMemoryStore } from '../../src/index';
import type { TestServer } from './helpers';
import { createT, startServer } from './helpers';

/** `levels` objects, each holding the next one under both `a` and `b`: 2^levels paths from levels + 1 objects. */
const doubled = (levels: number, shared = true): unknown => {
  if (!shared) return levels === 0 ? { leaf: 'x' } : { a: doubled(levels - 1, false), b: doubled(levels - 1, false) };
  let value: unknown = { leaf: 'x' };
  for (let i = 0; i < levels; i++) value = { a: value, b: value };
  return value;
};

const buildRouter = () => {
  const t = createT();
  const { idempotent } = createIdempotency({ store: createMemoryStore() });
  const runs = { create: 0 };
  const router = t.router({
    // The extra field sits outside the schema: zod drops it, the fingerprint reads the raw input.
    create: t.procedure
      .input(z.object({ n: z.number() }))
      .use(idempotent())
      .mutation(({ input }) => ({ n: input.n, run: ++runs.create })),
    ping: t.procedure.query(() => 'pong'),
  });
  return { router, runs };
};

/**
 * Sends each shared object once and its other paths in `meta.referentialEqualities` (superjson's own encoding of
 * shared references, which the server's superjson turns back into one object): a few KB for 2^40 paths. Without
 * `dedupe` the JSON would spell the whole tree out.
 */
const compact = new SuperJSON({ dedupe: true });

/** POSTs a superjson body as a client would, without a tRPC client in between. */
const post = (server: TestServer, key: string, input: unknown) => {
  const body = compact.serialize(input);
  return {
    body,
    response: fetch(`${server.url}/create`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body),
    }),
  };
};

describe('a keyed request whose input shares objects along 40 levels, over HTTP', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('is refused with 413 input_too_large while a concurrent query still answers promptly', async () => {
    const app = buildRouter();
    server = await startServer(app.router);
    const client = createTRPCClient<typeof app.router>({ links: [httpLink({ url: server.url, transformer: superjson })] });
    await client.ping.query(); // warm up the connection and the handler

    const { body, response } = post(server, 'deep-40', { n: 1, extra: doubled(40) });
    expect(body.meta?.referentialEqualities).toBeDefined();
    expect(JSON.stringify(body).length).toBeLessThan(6_000);
    const sentPing = performance.now();
    const pong = client.ping.query().then((value) => ({ value, ms: performance.now() - sentPing }));

    const answer = await response;
    expect(answer.status).toBe(413);
    const error = (await answer.json()) as { error: { json: { message: string; data: { idempotency: unknown } } } };
    expect(error.error.json.data.idempotency).toEqual({ reason: 'input_too_large' });
    expect(error.error.json.message).toMatch(/maxInputNodes/);
    const { value, ms } = await pong;
    expect(value).toBe('pong');
    expect(ms).toBeLessThan(1_000);
    expect(app.runs.create).toBe(0);
  });

  it('runs a shared input within the budget once, and replays it to the same input sent as a tree', async () => {
    const app = buildRouter();
    server = await startServer(app.router);
    const first = post(server, 'deep-10', { n: 2, extra: doubled(10) });
    expect(first.body.meta?.referentialEqualities).toBeDefined();
    expect((await first.response).status).toBe(200);

    const again = post(server, 'deep-10', { n: 2, extra: doubled(10, false) });
    expect(again.body.meta?.referentialEqualities).toBeUndefined();
    const replay = await again.response;
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotency-status')).toMatch(/replayed/);
    expect(app.runs.create).toBe(1);

    const changed = post(server, 'deep-10', { n: 2, extra: doubled(9) });
    expect((await changed.response).status).toBe(422);
    expect(app.runs.create).toBe(1);
  });
});
