import type { TRPCLink } from '@trpc/client';
import { createTRPCClient, httpBatchLink, httpLink, retryLink } from '@trpc/client';
import superjson from 'superjson';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { IdempotencyCallInfo } from '../../src/client/index';
import { idempotencyHeaders, idempotencyLink } from '../../src/client/index';
import type { AppRouter } from './testServer';
import { startLossyProxy, startTestServer } from './testServer';

const closers: (() => Promise<void>)[] = [];
const serve = async (options?: Parameters<typeof startTestServer>[0]) => {
  const server = await startTestServer(options);
  closers.push(server.close);
  return server;
};

describe('misconfiguration warnings', () => {
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((close) => close()));
    vi.restoreAllMocks();
  });

  it('warns once when the HTTP link lacks `headers: idempotencyHeaders`', async () => {
    const server = await serve();
    const onWarning = vi.fn();
    const client = createTRPCClient<AppRouter>({
      links: [idempotencyLink({ onWarning }), httpBatchLink({ url: server.url, transformer: superjson })],
    });
    await client.create.mutate({ n: 1 });
    await client.create.mutate({ n: 2 });
    expect(onWarning).toHaveBeenCalledTimes(1);
    expect(onWarning.mock.calls[0]?.[0]).toMatchObject({ code: 'headers_missing', path: 'create' });
    expect(onWarning.mock.calls[0]?.[0].message).toMatch(/headers: idempotencyHeaders/);
    expect(server.headersFor('create').every((h) => h['idempotency-keys'] === undefined)).toBe(true);
  });

  it('warns once through console.warn by default', async () => {
    const server = await serve();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const client = createTRPCClient<AppRouter>({ links: [idempotencyLink(), httpLink({ url: server.url, transformer: superjson })] });
    await client.create.mutate({ n: 1 });
    await client.create.mutate({ n: 2 });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/\[headers_missing\]$/);
  });

  it('warns once when the server sends no Idempotency-Status (responseMeta missing); replayed stays unknown', async () => {
    const server = await serve({ responseMeta: false });
    const onWarning = vi.fn();
    const client = createTRPCClient<AppRouter>({
      links: [idempotencyLink({ onWarning }), httpLink({ url: server.url, headers: idempotencyHeaders, transformer: superjson })],
    });
    const infos: IdempotencyCallInfo[] = [{}, {}];
    for (const info of infos) await client.create.mutate({ n: 1 }, { context: { idempotencyKey: 'same', idempotency: info } });
    expect(server.runs.create).toBe(1); // the server still deduplicates
    expect(infos.map((i) => i.replayed)).toEqual([null, null]);
    expect(onWarning).toHaveBeenCalledTimes(1);
    expect(onWarning.mock.calls[0]?.[0]).toMatchObject({ code: 'status_missing' });
    expect(onWarning.mock.calls[0]?.[0].message).toMatch(/idempotencyResponseMeta\(\)/);
  });

  it('warns when a keyed mutation ran on a procedure without the idempotent() middleware', async () => {
    const server = await serve();
    const onWarning = vi.fn();
    const client = createTRPCClient<AppRouter>({
      links: [idempotencyLink({ onWarning }), httpBatchLink({ url: server.url, headers: idempotencyHeaders, transformer: superjson })],
    });
    const infos: IdempotencyCallInfo[] = [{}, {}];
    await Promise.all([
      client.create.mutate({ n: 1 }, { context: { idempotency: infos[0] } }),
      client.plain.mutate({ n: 1 }, { context: { idempotency: infos[1] } }),
    ]);
    expect(infos.map((i) => [i.replayed, i.status])).toEqual([[false, 'executed'], [false, null]]);
    expect(onWarning).toHaveBeenCalledTimes(1);
    expect(onWarning.mock.calls[0]?.[0]).toMatchObject({ code: 'key_not_seen', path: 'plain' });
  });

  it('leaves out mutations excluded with `enabled`: no key, no warning', async () => {
    const server = await serve();
    const onWarning = vi.fn();
    const client = createTRPCClient<AppRouter>({
      links: [
        idempotencyLink({ onWarning, enabled: (op) => op.path !== 'plain' }),
        httpLink({ url: server.url, headers: idempotencyHeaders, transformer: superjson }),
      ],
    });
    const info: IdempotencyCallInfo = {};
    await client.plain.mutate({ n: 1 }, { context: { idempotency: info } });
    expect(info).toEqual({});
    expect(server.headersFor('plain')[0]?.['idempotency-key']).toBeUndefined();
    expect(onWarning).not.toHaveBeenCalled();
  });

  it('detects a link placed after retryLink (same operation seen twice), warns once and keeps the key', async () => {
    const server = await serve();
    const proxy = await startLossyProxy(server.url);
    closers.push(proxy.close);
    const onWarning = vi.fn();
    const retryEverythingOnce: TRPCLink<AppRouter> = retryLink({ retry: ({ attempts }) => attempts < 2 });
    const client = createTRPCClient<AppRouter>({
      links: [retryEverythingOnce, idempotencyLink({ onWarning }), httpLink({ url: proxy.url, headers: idempotencyHeaders, transformer: superjson })],
    });
    proxy.state.dropResponses = 1;
    const info: IdempotencyCallInfo = {};
    const result = await client.create.mutate({ n: 3 }, { context: { idempotency: info } });
    expect(result.run).toBe(1);
    expect(server.runs.create).toBe(1);
    expect(info).toMatchObject({ replayed: true });
    const keys = server.headersFor('create').map((h) => h['idempotency-key']);
    expect(keys).toEqual([info.key, info.key]);
    expect(onWarning).toHaveBeenCalledTimes(1);
    expect(onWarning.mock.calls[0]?.[0]).toMatchObject({ code: 'behind_retry', path: 'create' });
    expect(onWarning.mock.calls[0]?.[0].message).toMatch(/before retryLink/);
  });

  it('fails the call when onWarning throws (strict mode), and ignores what onReplay throws', async () => {
    const server = await serve();
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    const strict = createTRPCClient<AppRouter>({
      links: [
        idempotencyLink({
          onWarning: (warning) => {
            throw new Error(`misconfigured: ${warning.code}`);
          },
        }),
        httpLink({ url: server.url, transformer: superjson }),
      ],
    });
    await expect(strict.create.mutate({ n: 1 })).rejects.toThrow('misconfigured: headers_missing');
    expect(server.runs.create).toBe(1);

    const client = createTRPCClient<AppRouter>({
      links: [
        idempotencyLink({
          onReplay: () => {
            throw new Error('bug in onReplay');
          },
        }),
        httpLink({ url: server.url, headers: idempotencyHeaders, transformer: superjson }),
      ],
    });
    await client.create.mutate({ n: 1 }, { context: { idempotencyKey: 'r' } });
    const info: IdempotencyCallInfo = {};
    const replay = await client.create.mutate({ n: 1 }, { context: { idempotencyKey: 'r', idempotency: info } });
    expect(replay.run).toBe(2);
    expect(info.replayed).toBe(true);
    expect(error).toHaveBeenCalledTimes(1);
  });
});
