import type { OperationContext } from '@trpc/client';
import { createTRPCClient, createTRPCUntypedClient, httpBatchLink, httpLink, splitLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import type { IdempotencyCallInfo, IdempotencyLinkOptions } from '../../src/client/index';
import { idempotencyHeaders, idempotencyLink } from '../../src/client/index';
import type { AppRouter } from './testServer';
import { startTestServer } from './testServer';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('idempotencyLink end to end (real server, real @trpc/client)', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  const onWarning = vi.fn();
  beforeEach(async () => {
    server = await startTestServer();
    onWarning.mockClear();
  });
  afterEach(async () => {
    await server.close();
    expect(onWarning).not.toHaveBeenCalled();
  });

  const batchClient = (onReplay?: IdempotencyLinkOptions['onReplay']) =>
    createTRPCClient<AppRouter>({
      links: [idempotencyLink({ onReplay, onWarning }), httpBatchLink({ url: server.url, headers: idempotencyHeaders, transformer: superjson })],
    });

  it('sends a caller-supplied key and reports a replay of the stored result (httpLink)', async () => {
    const client = createTRPCClient<AppRouter>({
      links: [idempotencyLink({ onWarning }), httpLink({ url: server.url, headers: idempotencyHeaders, transformer: superjson })],
    });
    const first: IdempotencyCallInfo = {};
    const second: IdempotencyCallInfo = {};
    const a = await client.create.mutate({ n: 1 }, { context: { idempotencyKey: 'order-42', idempotency: first } });
    const b = await client.create.mutate({ n: 1 }, { context: { idempotencyKey: 'order-42', idempotency: second } });
    expect(first).toEqual({ key: 'order-42', replayed: false, status: 'executed' });
    expect(second).toEqual({ key: 'order-42', replayed: true, status: 'replayed' });
    expect(b).toEqual(a);
    expect(b.at).toBeInstanceOf(Date);
    expect(server.runs.create).toBe(1);
    expect(server.headersFor('create').map((h) => h['idempotency-key'])).toEqual(['order-42', 'order-42']);
  });

  it('gives each call its own generated UUID v4 key and leaves a reused context object untouched', async () => {
    const client = batchClient();
    const shared = { note: 'reused by both calls' };
    const infos: IdempotencyCallInfo[] = [{}, {}];
    await client.create.mutate({ n: 1 }, { context: { ...shared, idempotency: infos[0] } });
    await client.create.mutate({ n: 1 }, { context: { ...shared, idempotency: infos[1] } });
    const reused = {};
    await client.create.mutate({ n: 1 }, { context: reused });
    await client.create.mutate({ n: 1 }, { context: reused });
    expect(reused).toEqual({});
    const sent = server.headersFor('create').map((h) => JSON.parse(String(h['idempotency-keys'])) as string[]);
    const keys = sent.map(([key]) => key);
    expect(keys).toHaveLength(4);
    expect(new Set(keys).size).toBe(4);
    for (const key of keys) expect(key).toMatch(UUID_V4);
    expect(infos.map((i) => i.key)).toEqual(keys.slice(0, 2));
    expect(server.runs.create).toBe(4);
  });

  it('flags only the replayed call in a batch of three mutations (httpBatchLink)', async () => {
    const onReplay = vi.fn();
    const client = batchClient(onReplay);
    await client.create.mutate({ n: 2 }, { context: { idempotencyKey: 'k-two' } });
    const infos: IdempotencyCallInfo[] = [{}, {}, {}];
    const results = await Promise.all([
      client.create.mutate({ n: 1 }, { context: { idempotency: infos[0] } }),
      client.create.mutate({ n: 2 }, { context: { idempotencyKey: 'k-two', idempotency: infos[1] } }),
      client.create.mutate({ n: 3 }, { context: { idempotency: infos[2] } }),
    ]);
    expect(infos.map((i) => i.replayed)).toEqual([false, true, false]);
    expect(infos.map((i) => i.status)).toEqual(['executed', 'replayed', 'executed']);
    expect(results.map((r) => r.run)).toEqual([2, 1, 3]);
    expect(server.runs.create).toBe(3);
    expect(onReplay).toHaveBeenCalledTimes(1);
    expect(onReplay.mock.calls[0]?.[0]).toMatchObject({ key: 'k-two', error: undefined, op: { path: 'create' } });
    // the three calls went in one request, keys indexed by batch position
    const batch = server.headersFor('create,create,create');
    expect(batch).toHaveLength(1);
    expect(JSON.parse(String(batch[0]?.['idempotency-keys']))).toEqual([infos[0]?.key, 'k-two', infos[2]?.key]);
  });

  it('tells apart two calls that share one key inside one batch (Idempotency-Statuses by position)', async () => {
    const client = batchClient();
    await client.create.mutate({ n: 7 }, { context: { idempotencyKey: 'k-done' } });
    const infos: IdempotencyCallInfo[] = [{}, {}, {}];
    const results = await Promise.allSettled([
      client.create.mutate({ n: 8 }, { context: { idempotencyKey: 'k-twice', idempotency: infos[0] } }),
      client.create.mutate({ n: 7 }, { context: { idempotencyKey: 'k-done', idempotency: infos[1] } }),
      client.create.mutate({ n: 8 }, { context: { idempotencyKey: 'k-twice', idempotency: infos[2] } }),
    ]);
    expect(server.headersFor('create,create,create')).toHaveLength(1);
    // The batch's calls run concurrently: the first 'k-twice' runs, the second finds it in progress.
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect(infos.map((i) => i.status)).toEqual(['executed', 'replayed', 'in_progress']);
    expect(infos.map((i) => i.replayed)).toEqual([false, true, false]);
    expect(server.runs.create).toBe(2);
  });

  it('reports a replayed error, per call, through TRPCClientError meta', async () => {
    const onReplay = vi.fn();
    const client = batchClient(onReplay);
    const infos: IdempotencyCallInfo[] = [{}, {}];
    for (const info of infos) {
      const error = await client.forbidden.mutate({ n: 1 }, { context: { idempotencyKey: 'deny-1', idempotency: info } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TRPCClientError);
      expect((error as TRPCClientError<AppRouter>).data?.code).toBe('FORBIDDEN');
    }
    expect(infos).toEqual([
      { key: 'deny-1', replayed: false, status: 'executed' },
      { key: 'deny-1', replayed: true, status: 'replayed' },
    ]);
    expect(server.runs.forbidden).toBe(1);
    expect(onReplay).toHaveBeenCalledTimes(1);
    expect(onReplay.mock.calls[0]?.[0].error).toBeInstanceOf(TRPCClientError);
  });

  it('never puts a key on queries', async () => {
    const client = batchClient();
    const info: IdempotencyCallInfo = {};
    await Promise.all([client.ping.query(undefined, { context: { idempotency: info } }), client.ping.query()]);
    const [headers] = server.headersFor('ping');
    expect(headers).toBeDefined();
    expect(headers?.['idempotency-key']).toBeUndefined();
    expect(headers?.['idempotency-keys']).toBeUndefined();
    expect(info).toEqual({});
  });

  it('works through splitLink, and composes with your own headers', async () => {
    const client = createTRPCClient<AppRouter>({
      links: [
        idempotencyLink({ onWarning }),
        splitLink({
          condition: (op) => op.type === 'mutation',
          true: httpLink({ url: server.url, transformer: superjson, headers: (opts) => ({ 'x-app': 'mine', ...idempotencyHeaders(opts) }) }),
          false: httpBatchLink({ url: server.url, transformer: superjson }),
        }),
      ],
    });
    const info: IdempotencyCallInfo = {};
    await client.create.mutate({ n: 5 }, { context: { idempotency: info } });
    const [headers] = server.headersFor('create');
    expect(headers?.['x-app']).toBe('mine');
    expect(headers?.['idempotency-key']).toBe(info.key);
    expect(info.replayed).toBe(false);
  });

  it('types the context fields on OperationContext (links, untyped client)', () => {
    expectTypeOf<OperationContext['idempotencyKey']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<OperationContext['idempotency']>().toEqualTypeOf<IdempotencyCallInfo | undefined>();
    const untyped = createTRPCUntypedClient<AppRouter>({ links: [idempotencyLink(), httpLink({ url: server.url, transformer: superjson })] });
    // @ts-expect-error a key is a string
    void (() => untyped.mutation('create', { n: 1 }, { context: { idempotencyKey: 42 } }));
  });

  it('fails the call loudly on a key or info object of the wrong type (the typed client cannot check them)', async () => {
    const client = batchClient();
    // tRPC 11 types the proxy client's `context` as Record<string, unknown>, so these compile
    await expect(client.create.mutate({ n: 1 }, { context: { idempotencyKey: 42 } })).rejects.toThrow(/invalid idempotency key/);
    await expect(client.create.mutate({ n: 1 }, { context: { idempotencyKey: 'has space' } })).rejects.toThrow(/invalid idempotency key/);
    await expect(client.create.mutate({ n: 1 }, { context: { idempotency: true } })).rejects.toThrow(/context.idempotency/);
    expect(server.runs.create).toBe(0);
  });
});
