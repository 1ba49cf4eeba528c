import { createTRPCClient, httpBatchLink, httpLink, retryLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { IdempotencyCallInfo } from '../../src/client/index';
import { idempotencyHeaders, idempotencyLink, idempotentRetry } from '../../src/client/index';
import type { AppRouter } from './testServer';
import { startLossyProxy, startTestServer } from './testServer';

describe('idempotentRetry with retryLink, end to end', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let proxy: Awaited<ReturnType<typeof startLossyProxy>>;
  const onWarning = vi.fn();
  beforeEach(async () => {
    server = await startTestServer({ lockTtlMs: 3_000 });
    proxy = await startLossyProxy(server.url);
    onWarning.mockClear();
  });
  afterEach(async () => {
    await proxy.close();
    await server.close();
    expect(onWarning).not.toHaveBeenCalled();
  });

  it('recovers a lost response: the retry gets the stored result, flagged replayed, and the mutation ran once', async () => {
    const onReplay = vi.fn();
    const retry = idempotentRetry({ baseDelayMs: 1, onWarning });
    const retrySpy = vi.fn(retry.retry);
    const client = createTRPCClient<AppRouter>({
      links: [
        idempotencyLink({ onReplay, onWarning }),
        retryLink({ retry: retrySpy, retryDelayMs: retry.retryDelayMs }),
        httpLink({ url: proxy.url, headers: idempotencyHeaders, transformer: superjson }),
      ],
    });
    proxy.state.dropResponses = 1;
    const info: IdempotencyCallInfo = {};
    const result = await client.create.mutate({ n: 7 }, { context: { idempotency: info } });

    expect(proxy.state.dropped).toBe(1);
    expect(retrySpy).toHaveBeenCalledTimes(1);
    expect(retrySpy.mock.results[0]?.value).toBe(true);
    expect(retrySpy.mock.calls[0]?.[0].error.meta?.response).toBeUndefined(); // a network error: no response
    expect(result).toEqual({ n: 7, run: 1, at: new Date(0) });
    expect(info).toMatchObject({ replayed: true, status: 'replayed' });
    expect(server.runs.create).toBe(1);
    const keys = server.headersFor('create').map((h) => h['idempotency-key']);
    expect(keys).toEqual([info.key, info.key]);
    expect(onReplay).toHaveBeenCalledTimes(1);
  });

  it('recovers a lost batch response with httpBatchLink, each call flagged', async () => {
    const client = createTRPCClient<AppRouter>({
      links: [
        idempotencyLink({ onWarning }),
        retryLink(idempotentRetry({ baseDelayMs: 1, onWarning })),
        httpBatchLink({ url: proxy.url, headers: idempotencyHeaders, transformer: superjson }),
      ],
    });
    proxy.state.dropResponses = 1;
    const infos: IdempotencyCallInfo[] = [{}, {}];
    const results = await Promise.all(infos.map((info, n) => client.create.mutate({ n }, { context: { idempotency: info } })));
    expect(results.map((r) => r.n)).toEqual([0, 1]);
    expect(infos.map((i) => i.replayed)).toEqual([true, true]);
    expect(server.runs.create).toBe(2);
  });

  it('retries a 5xx (SERVICE_UNAVAILABLE the server did not store) with the same key; the second run succeeds', async () => {
    const client = createTRPCClient<AppRouter>({
      links: [
        idempotencyLink({ onWarning }),
        retryLink(idempotentRetry({ baseDelayMs: 1, onWarning })),
        httpLink({ url: server.url, headers: idempotencyHeaders, transformer: superjson }),
      ],
    });
    const info: IdempotencyCallInfo = {};
    const result = await client.flaky.mutate({ n: 1 }, { context: { idempotency: info } });
    expect(result).toEqual({ n: 1, run: 2 });
    expect(info).toMatchObject({ replayed: false, status: 'executed' });
    expect(server.runs.flaky).toBe(2);
    expect(new Set(server.headersFor('flaky').map((h) => h['idempotency-key']))).toEqual(new Set([info.key]));
  });

  it('retries an in-progress CONFLICT after the delay the server asked for, then gets the replay', async () => {
    const plain = createTRPCClient<AppRouter>({
      links: [idempotencyLink({ onWarning }), httpLink({ url: server.url, headers: idempotencyHeaders, transformer: superjson })],
    });
    const first = plain.slow.mutate({ n: 1 }, { context: { idempotencyKey: 'slow-1' } });
    await server.slowStarted;

    const policy = idempotentRetry({ baseDelayMs: 1, onWarning });
    const seen: { retried: boolean; hintMs: unknown; retryAfter: string | null; delayMs?: number }[] = [];
    const retrier = createTRPCClient<AppRouter>({
      links: [
        idempotencyLink({ onWarning }),
        retryLink({
          retry: (opts) => {
            const retried = policy.retry(opts);
            const response = opts.error.meta?.response as Response | undefined;
            seen.push({ retried, hintMs: (opts.error.data as any)?.idempotency?.retryAfterMs, retryAfter: response?.headers.get('retry-after') ?? null });
            server.releaseSlow(); // the first call may finish now; the retry must wait for the hint anyway
            return retried;
          },
          retryDelayMs: (attempts) => {
            const delayMs = policy.retryDelayMs(attempts);
            seen[seen.length - 1]!.delayMs = delayMs;
            return delayMs;
          },
        }),
        httpLink({ url: server.url, headers: idempotencyHeaders, transformer: superjson }),
      ],
    });
    const info: IdempotencyCallInfo = {};
    const second = await retrier.slow.mutate({ n: 1 }, { context: { idempotencyKey: 'slow-1', idempotency: info } });

    expect(seen).toHaveLength(1);
    const [decision] = seen;
    expect(decision?.retried).toBe(true);
    expect(typeof decision?.hintMs).toBe('number');
    expect(decision?.retryAfter).not.toBeNull();
    expect(decision?.delayMs).toBeGreaterThanOrEqual(decision?.hintMs as number);
    expect(second).toEqual(await first);
    expect(info).toMatchObject({ replayed: true });
    expect(server.runs.slow).toBe(1);
  });

  it('does not retry a payload mismatch (UNPROCESSABLE_CONTENT), nor another client error', async () => {
    const retrySpy = vi.fn(idempotentRetry({ baseDelayMs: 1, onWarning }).retry);
    const client = createTRPCClient<AppRouter>({
      links: [idempotencyLink({ onWarning }), retryLink({ retry: retrySpy }), httpLink({ url: server.url, headers: idempotencyHeaders, transformer: superjson })],
    });
    await client.create.mutate({ n: 1 }, { context: { idempotencyKey: 'mm' } });
    const mismatch = await client.create.mutate({ n: 2 }, { context: { idempotencyKey: 'mm' } }).catch((e: unknown) => e);
    expect((mismatch as TRPCClientError<AppRouter>).data?.code).toBe('UNPROCESSABLE_CONTENT');
    const forbidden = await client.forbidden.mutate({ n: 1 }).catch((e: unknown) => e);
    expect((forbidden as TRPCClientError<AppRouter>).data?.code).toBe('FORBIDDEN');
    expect(retrySpy.mock.results.map((r) => r.value)).toEqual([false, false]);
    expect(server.runs).toMatchObject({ create: 1, forbidden: 1 });
  });

  it('never retries an unkeyed mutation (idempotencyLink missing) and warns once with the fix', async () => {
    const client = createTRPCClient<AppRouter>({
      links: [
        retryLink(idempotentRetry({ baseDelayMs: 1, onWarning })),
        httpLink({ url: proxy.url, headers: idempotencyHeaders, transformer: superjson }),
      ],
    });
    proxy.state.dropResponses = 2;
    await expect(client.plain.mutate({ n: 1 })).rejects.toBeInstanceOf(TRPCClientError);
    await expect(client.plain.mutate({ n: 2 })).rejects.toBeInstanceOf(TRPCClientError);
    expect(server.runs.plain).toBe(2); // each ran once; the lost responses were not retried
    expect(onWarning).toHaveBeenCalledTimes(1);
    expect(onWarning.mock.calls[0]?.[0]).toMatchObject({ code: 'unkeyed_mutation' });
    expect(onWarning.mock.calls[0]?.[0].message).toMatch(/before retryLink/);
    onWarning.mockClear();
  });
});
