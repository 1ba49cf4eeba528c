import type { TRPCLink } from '@trpc/client';
import { createTRPCClient, httpBatchStreamLink } from '@trpc/client';
import { observable } from '@trpc/server/observable';
import superjson from 'superjson';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { IdempotencyCallInfo } from '../../src/client/index';
import { idempotencyHeaders, idempotencyLink } from '../../src/client/index';
import type { AppRouter } from './testServer';
import { startTestServer } from './testServer';

/** Records the Idempotency-Status header of each response the terminating link returns. */
const statusRecorder = (seen: (string | null)[]): TRPCLink<AppRouter> => () => ({ op, next }) =>
  observable((observer) =>
    next(op).subscribe({
      next(envelope) {
        const response = (envelope.context as { response?: Response } | undefined)?.response;
        seen.push(response?.headers.get('idempotency-status') ?? null);
        observer.next(envelope);
      },
      error: (error) => observer.error(error),
      complete: () => observer.complete(),
    }),
  );

describe('httpBatchStreamLink', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(async () => {
    await server.close();
  });

  it('sends the keys and the server deduplicates, but replayed is null (unknown): the head is written before the calls run', async () => {
    const onReplay = vi.fn();
    const onWarning = vi.fn();
    const statuses: (string | null)[] = [];
    const client = createTRPCClient<AppRouter>({
      links: [
        idempotencyLink({ onReplay, onWarning }),
        statusRecorder(statuses),
        httpBatchStreamLink({ url: server.url, headers: idempotencyHeaders, transformer: superjson }),
      ],
    });
    const first: IdempotencyCallInfo[] = [{}, {}];
    const batch1 = await Promise.all([
      client.create.mutate({ n: 1 }, { context: { idempotencyKey: 'stream-a', idempotency: first[0] } }),
      client.create.mutate({ n: 2 }, { context: { idempotencyKey: 'stream-b', idempotency: first[1] } }),
    ]);
    const second: IdempotencyCallInfo[] = [{}, {}];
    const batch2 = await Promise.all([
      client.create.mutate({ n: 1 }, { context: { idempotencyKey: 'stream-a', idempotency: second[0] } }),
      client.create.mutate({ n: 3 }, { context: { idempotencyKey: 'stream-c', idempotency: second[1] } }),
    ]);

    expect(server.runs.create).toBe(3); // stream-a ran once, its second call was a replay
    expect(batch2[0]).toEqual(batch1[0]);
    expect(batch2[0]?.at).toBeInstanceOf(Date);
    expect([...first, ...second]).toEqual([
      { key: 'stream-a', replayed: null, status: null },
      { key: 'stream-b', replayed: null, status: null },
      { key: 'stream-a', replayed: null, status: null },
      { key: 'stream-c', replayed: null, status: null },
    ]);
    expect(statuses).toEqual(['deferred', 'deferred', 'deferred', 'deferred']);
    expect(onReplay).not.toHaveBeenCalled();
    expect(onWarning).not.toHaveBeenCalled();
    expect(server.headersFor('create,create').map((h) => h['idempotency-keys'])).toEqual([
      '["stream-a","stream-b"]',
      '["stream-a","stream-c"]',
    ]);
  });
});
