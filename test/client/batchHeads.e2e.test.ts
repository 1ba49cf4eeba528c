import { createTRPCClient, httpBatchLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import { afterEach, describe, expect, it } from 'vitest';
import type { IdempotencyCallInfo, IdempotencyWarning } from '../../src/client/index';
import { idempotencyHeaders, idempotencyLink } from '../../src/client/index';
import { MAX_KEYS_HEADER_LENGTH, RESPONSE_HEADERS_BUDGET } from '../../src/wire';
import type { AppRouter } from './testServer';
import { startTestServer } from './testServer';

const OUR_RESPONSE_HEADERS = ['idempotency-status', 'idempotency-statuses', 'idempotent-replayed', 'retry-after', 'access-control-expose-headers'];

/** Bytes our header lines take in a response head (`name: value\r\n` each). */
const ourHeadBytes = (headers: Headers): number =>
  OUR_RESPONSE_HEADERS.reduce((sum, name) => {
    const value = headers.get(name);
    return value === null ? sum : sum + `${name}: ${value}\r\n`.length;
  }, 0);

/** Bytes of a request head as the server saw it: request line, header lines, blank line. */
const requestHeadBytes = ({ url, headers }: { url: string; headers: Record<string, unknown> }): number =>
  `POST ${url} HTTP/1.1\r\n`.length +
  Object.entries(headers).reduce((sum, [name, value]) => sum + `${name}: ${String(value)}\r\n`.length, 0) +
  2;

const CALLS = 1000;

describe('a 1,000-call keyed batch (real standalone server with Node default limits, real @trpc/client on undici)', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((close) => close()));
  });

  const setup = async (maxItems?: number) => {
    const server = await startTestServer();
    closers.push(server.close);
    const responses: Headers[] = [];
    const warnings: IdempotencyWarning[] = [];
    const client = createTRPCClient<AppRouter>({
      links: [
        idempotencyLink({ onWarning: (warning) => void warnings.push(warning) }),
        httpBatchLink({
          url: server.url,
          transformer: superjson,
          headers: idempotencyHeaders,
          ...(maxItems === undefined ? {} : { maxItems }),
          fetch: async (url, init) => {
            const response = await fetch(url, init as RequestInit);
            responses.push(response.headers);
            return response;
          },
        }),
      ],
    });
    return { server, client, responses, warnings };
  };

  it('runs every call once and reports each one, split by maxItems: 100 into heads within both budgets', async () => {
    const { server, client, responses, warnings } = await setup(100);
    const infos: IdempotencyCallInfo[] = Array.from({ length: CALLS }, () => ({}));
    const results = await Promise.all(infos.map((info, n) => client.create.mutate({ n }, { context: { idempotency: info } })));
    expect(results.map((r) => r.n)).toEqual(infos.map((_, n) => n));
    expect(server.runs.create).toBe(CALLS);
    expect(infos.every((info) => info.status === 'executed' && info.replayed === false)).toBe(true);
    // The same calls again, with the same keys: all replayed, each call reading its own position.
    const again: IdempotencyCallInfo[] = Array.from({ length: CALLS }, () => ({}));
    await Promise.all(
      again.map((info, n) => client.create.mutate({ n }, { context: { idempotencyKey: infos[n]?.key as string, idempotency: info } })),
    );
    expect(server.runs.create).toBe(CALLS);
    expect(again.every((info) => info.status === 'replayed' && info.replayed === true)).toBe(true);
    expect(warnings).toEqual([]);

    const requests = server.headersFor('create');
    expect(requests).toHaveLength(20);
    const keyHeaders = requests.map((headers) => String(headers['idempotency-keys']).length);
    expect(Math.max(...keyHeaders)).toBeLessThanOrEqual(MAX_KEYS_HEADER_LENGTH);
    expect(Math.max(...server.requests.map(requestHeadBytes))).toBeLessThan(8 * 1024);
    expect(responses).toHaveLength(20);
    expect(Math.max(...responses.map(ourHeadBytes))).toBeLessThanOrEqual(RESPONSE_HEADERS_BUDGET);
    expect(responses.every((headers) => headers.get('idempotency-status') === null)).toBe(true);
    expect(responses[0]?.get('idempotency-statuses')).toBe('e'.repeat(100));
  });

  it('refuses the whole batch without maxItems before sending anything, with the fix in the error and one warning', async () => {
    const { server, client, warnings } = await setup();
    const outcomes = await Promise.allSettled(Array.from({ length: CALLS }, (_, n) => client.create.mutate({ n })));
    expect(server.requests).toHaveLength(0);
    expect(server.runs.create).toBe(0);
    expect(outcomes.every((outcome) => outcome.status === 'rejected')).toBe(true);
    const reason = (outcomes[0] as PromiseRejectedResult).reason as TRPCClientError<AppRouter>;
    expect(reason).toBeInstanceOf(TRPCClientError);
    expect(reason.message).toMatch(/batch of 1000 calls needs a 39001-byte Idempotency-Keys .*maxItems/);
    expect(warnings.map((warning) => warning.code)).toEqual(['batch_too_large']);
  });
});

describe('a batch the server did not report on (Idempotency-Statuses: omitted)', () => {
  it('gives replayed: null and status: null to every call and warns statuses_omitted once', async () => {
    const warnings: IdempotencyWarning[] = [];
    const client = createTRPCClient<AppRouter>({
      links: [
        idempotencyLink({ onWarning: (warning) => void warnings.push(warning) }),
        httpBatchLink({
          url: 'http://127.0.0.1:9',
          transformer: superjson,
          headers: idempotencyHeaders,
          // What the server answers a batch past MAX_REPORTED_CALLS (test/server/responseHeads.test.ts shows it).
          fetch: async () =>
            new Response(JSON.stringify([0, 1, 2].map((n) => ({ result: { data: superjson.serialize({ n, run: n + 1, at: new Date(0) }) } }))), {
              headers: { 'content-type': 'application/json', 'idempotency-statuses': 'omitted' },
            }),
        }),
      ],
    });
    const infos: IdempotencyCallInfo[] = [{}, {}, {}];
    const results = await Promise.all(infos.map((info, n) => client.create.mutate({ n }, { context: { idempotency: info } })));
    expect(results.map((r) => r.n)).toEqual([0, 1, 2]);
    expect(infos.map(({ replayed, status }) => ({ replayed, status }))).toEqual(Array(3).fill({ replayed: null, status: null }));
    expect(warnings.map((warning) => warning.code)).toEqual(['statuses_omitted']);
  });
});
