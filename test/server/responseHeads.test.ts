import type { AddressInfo } from 'node:net';
import { initTRPC } from '@trpc/server';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import { afterEach, describe, expect, it } from 'vitest';
import { createIdempotency, createMemoryStore, idempotencyResponseMeta } from '../../src/index';
import { MAX_KEY_LENGTH, MAX_REPORTED_CALLS, RESPONSE_HEADERS_BUDGET } from '../../src/wire';

const OUR_HEADERS = ['idempotency-status', 'idempotency-statuses', 'idempotent-replayed', 'retry-after', 'access-control-expose-headers'];

/** Bytes our header lines take in a response head (`name: value\r\n` each). */
const ourHeadBytes = (headers: Headers): number =>
  OUR_HEADERS.reduce((sum, name) => {
    const value = headers.get(name);
    return value === null ? sum : sum + `${name}: ${value}\r\n`.length;
  }, 0);

const buildRouter = () => {
  const t = initTRPC.context<{ req: unknown }>().create();
  // More running claims than one partition's default (1,000): a 1,025-call batch claims all its keys before any
  // call finishes, and this file is about response heads, not quotas.
  const { idempotent } = createIdempotency({ store: createMemoryStore({ maxRunningPerPartition: 2_000 }) });
  const runs = { c: 0 };
  let open: () => void = () => {};
  let started: () => void = () => {};
  const holding = new Promise<void>((resolve) => (started = resolve));
  const router = t.router({
    // A one-letter path keeps a 1,000-call batch's URL (the paths, comma-separated) at 2 KB.
    c: t.procedure.use(idempotent()).mutation(() => ++runs.c),
    hold: t.procedure.use(idempotent()).mutation(async () => {
      started();
      await new Promise<void>((resolve) => (open = resolve));
      return 'held';
    }),
  });
  return { router, runs, holding, open: () => open() };
};

/** A batch of one call per key to `${base}/${path}`, keys by position, as httpBatchLink sends it. */
const batchRequest = (target: { base: string; path: string }, keys: (string | null)[], extra: Record<string, string> = {}) =>
  new Request(`${target.base}/${Array(keys.length).fill(target.path).join(',')}?batch=1`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-keys': JSON.stringify(keys), ...extra },
    body: JSON.stringify(Object.fromEntries(keys.map((_, i) => [i, null]))),
  });

describe('idempotency response heads stay within a fixed budget whatever the batch size', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  it('answers a 1,000-call batch over HTTP with one letter per call and no per-key map, readable by undici', async () => {
    const { router, runs } = buildRouter();
    const server = createHTTPServer({ router, createContext: ({ req }) => ({ req }), responseMeta: idempotencyResponseMeta() });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => server.close());
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const keys = Array.from({ length: 1000 }, (_, i) => (i % 10 === 9 ? null : `k${i}`));
    const response = await fetch(batchRequest({ base, path: 'c' }, keys, { origin: 'http://app.example' }));
    expect(response.status).toBe(200);
    expect(runs.c).toBe(1000);
    expect(response.headers.get('idempotency-statuses')).toBe('eeeeeeeee-'.repeat(100));
    expect(response.headers.get('idempotency-status')).toBeNull();
    expect(ourHeadBytes(response.headers)).toBeLessThanOrEqual(RESPONSE_HEADERS_BUDGET);
    const replay = await fetch(batchRequest({ base, path: 'c' }, keys));
    expect(replay.headers.get('idempotency-statuses')).toBe('rrrrrrrrr-'.repeat(100));
    expect(runs.c).toBe(1100); // the 100 calls without a key ran again
  });

  const call = (router: ReturnType<typeof buildRouter>['router'], request: Request) =>
    fetchRequestHandler({ endpoint: '', router, req: request, createContext: ({ req }) => ({ req }), responseMeta: idempotencyResponseMeta() });

  it(`stays under ${RESPONSE_HEADERS_BUDGET} bytes in the worst case: ${MAX_REPORTED_CALLS} calls in progress, with Retry-After and CORS`, async () => {
    const app = buildRouter();
    const first = call(app.router, batchRequest({ base: 'http://localhost', path: 'hold' }, ['busy']));
    await app.holding;
    const keys = Array<string>(MAX_REPORTED_CALLS).fill('busy');
    const response = await call(app.router, batchRequest({ base: 'http://localhost', path: 'hold' }, keys, { origin: 'http://app.example' }));
    app.open();
    await first;
    expect(response.headers.get('idempotency-statuses')).toBe('p'.repeat(MAX_REPORTED_CALLS));
    expect(response.headers.get('retry-after')).not.toBeNull();
    expect(response.headers.get('access-control-expose-headers')).not.toBeNull();
    expect(ourHeadBytes(response.headers)).toBeLessThanOrEqual(RESPONSE_HEADERS_BUDGET);
  });

  it(`says omitted for a batch of more than ${MAX_REPORTED_CALLS} calls, and still runs each call once`, async () => {
    const app = buildRouter();
    const keys = Array.from({ length: MAX_REPORTED_CALLS + 1 }, (_, i) => `k${i}`);
    const response = await call(app.router, batchRequest({ base: 'http://localhost', path: 'c' }, keys));
    expect(response.status).toBe(200);
    expect(app.runs.c).toBe(MAX_REPORTED_CALLS + 1);
    expect(response.headers.get('idempotency-statuses')).toBe('omitted');
    expect(response.headers.get('idempotency-status')).toBeNull();
  });

  it('keeps the readable one-call format within the budget for the longest key', async () => {
    const app = buildRouter();
    const key = 'k'.repeat(MAX_KEY_LENGTH);
    const single = (origin: Record<string, string> = {}) =>
      new Request('http://localhost/hold', { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key, ...origin } });
    const first = call(app.router, single());
    await app.holding;
    const response = await call(app.router, single({ origin: 'http://app.example' }));
    app.open();
    await first;
    expect(response.headers.get('idempotency-status')).toBe(JSON.stringify({ [key]: 'in_progress' }));
    expect(response.headers.get('idempotency-statuses')).toBeNull();
    expect(ourHeadBytes(response.headers)).toBeLessThanOrEqual(RESPONSE_HEADERS_BUDGET);
    const replay = await call(app.router, single());
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
  });

  it("answers '-' at every position of a batch whose keys no idempotent procedure saw", async () => {
    const t = initTRPC.context<{ req: unknown }>().create();
    const router = t.router({ plain: t.procedure.mutation(() => 'unguarded') });
    const response = await fetchRequestHandler({
      endpoint: '',
      router,
      req: batchRequest({ base: 'http://localhost', path: 'plain' }, ['a', null]),
      createContext: ({ req }) => ({ req }),
      responseMeta: idempotencyResponseMeta(),
    });
    expect(response.headers.get('idempotency-statuses')).toBe('--');
  });
});
