import { initTRPC, TRPCError } from '@trpc/server';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import superjson from 'superjson';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createIdempotency, createMemoryStore, idempotencyResponseMeta } from '../../src/index';

const setup = (inner?: Parameters<typeof idempotencyResponseMeta>[0]) => {
  const t = initTRPC.context<{ req: Request }>().create({ transformer: superjson });
  const { idempotent } = createIdempotency({ store: createMemoryStore() });
  let runs = 0;
  const router = t.router({
    busy: t.procedure.use(idempotent()).mutation(() => {
      runs++;
      throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'try later' });
    }),
    plain: t.procedure.mutation(() => 'unguarded'),
  });
  const call = (path: string, headers: Record<string, string>) =>
    fetchRequestHandler({
      endpoint: '/trpc',
      router,
      req: new Request(`http://localhost/trpc/${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ json: null }) }),
      createContext: ({ req }) => ({ req }),
      responseMeta: idempotencyResponseMeta(inner),
    });
  return { call, runs: () => runs };
};

describe('idempotencyResponseMeta', () => {
  it("reports 'released' for an error that was not stored, so the client knows a retry runs again", async () => {
    const { call, runs } = setup();
    const first = await call('busy', { 'idempotency-key': 'k1' });
    expect(first.status).toBe(503);
    expect(JSON.parse(first.headers.get('idempotency-status') ?? 'null')).toEqual({ k1: 'released' });
    await call('busy', { 'idempotency-key': 'k1' });
    expect(runs()).toBe(2);
  });

  it("answers '{}' when keys came but no idempotent procedure saw them", async () => {
    const { call } = setup();
    const response = await call('plain', { 'idempotency-key': 'k2' });
    expect(response.status).toBe(200);
    expect(response.headers.get('idempotency-status')).toBe('{}');
  });

  it('adds nothing to a request without keys', async () => {
    const { call } = setup();
    const response = await call('plain', { origin: 'http://app.example' });
    expect(response.headers.get('idempotency-status')).toBeNull();
    expect(response.headers.get('access-control-expose-headers')).toBeNull();
  });

  it('exposes its headers to cross-origin browsers, keeping the ones already exposed', async () => {
    const { call } = setup();
    const response = await call('busy', { 'idempotency-key': 'k3', origin: 'http://app.example' });
    const exposed = (response.headers.get('access-control-expose-headers') ?? '').split(',').map((h) => h.trim());
    expect(exposed).toEqual(expect.arrayContaining(['idempotency-status', 'idempotent-replayed', 'retry-after']));
  });

  it("merges into the user's own expose list, whatever case its record spells the name in", async () => {
    const { call } = setup(() => ({ headers: { 'Access-Control-Expose-Headers': 'X-App, Retry-After', 'x-app': 'mine' } }));
    const response = await call('busy', { 'idempotency-key': 'k4', origin: 'http://app.example' });
    const exposed = (response.headers.get('access-control-expose-headers') ?? '').split(',').map((h) => h.trim().toLowerCase());
    expect(exposed.sort()).toEqual(['idempotency-status', 'idempotency-statuses', 'idempotent-replayed', 'retry-after', 'x-app']);
    expect(response.headers.get('x-app')).toBe('mine');
  });

  it("merges into the user's expose list given as a Headers object", async () => {
    const { call } = setup(() => ({ headers: new Headers({ 'access-control-expose-headers': 'x-app' }) }));
    const response = await call('busy', { 'idempotency-key': 'k5', origin: 'http://app.example' });
    const exposed = (response.headers.get('access-control-expose-headers') ?? '').split(',').map((h) => h.trim());
    expect(exposed.sort()).toEqual(['idempotency-status', 'idempotency-statuses', 'idempotent-replayed', 'retry-after', 'x-app']);
  });

  it('quotes keys with JSON escapes in the status header', async () => {
    const { call } = setup();
    const key = 'a"b\\c';
    const response = await call('busy', { 'idempotency-key': key });
    expect(JSON.parse(response.headers.get('idempotency-status') ?? 'null')).toEqual({ [key]: 'released' });
  });

  it('reports for a frozen headers object too (kept aside, since it cannot carry the report)', async () => {
    const t = initTRPC.context<{ headers: Record<string, string> }>().create({ transformer: superjson });
    const { idempotent } = createIdempotency({ store: createMemoryStore() });
    const router = t.router({ make: t.procedure.use(idempotent()).mutation(() => 'made') });
    const headers = Object.freeze({ 'idempotency-key': 'frozen-k' });
    const caller = t.createCallerFactory(router);
    await caller({ headers }).make();
    const ctx = { headers };
    await caller(ctx).make();
    const meta = idempotencyResponseMeta()({ ctx, info: { isBatchCall: false }, eagerGeneration: false } as unknown as Parameters<ReturnType<typeof idempotencyResponseMeta>>[0]);
    expect(meta.headers).toMatchObject({ 'idempotency-status': '{"frozen-k":"replayed"}', 'idempotent-replayed': 'true' });
  });

  it('adds idempotency-status even when the user already exposes idempotency-statuses (names, not substrings)', async () => {
    const { call } = setup(() => ({ headers: { 'access-control-expose-headers': 'Idempotency-Statuses' } }));
    const response = await call('busy', { 'idempotency-key': 'k6', origin: 'http://app.example' });
    const exposed = (response.headers.get('access-control-expose-headers') ?? '').split(',').map((h) => h.trim().toLowerCase());
    expect(exposed).toContain('idempotency-status');
    expect(exposed.filter((h) => h === 'idempotency-statuses')).toHaveLength(1);
  });

  it("never writes into the user's Headers object, which may be shared between requests", async () => {
    const shared = new Headers({ 'x-app': 'shared' });
    const { call } = setup(() => ({ headers: shared }));
    const keyed = await call('busy', { 'idempotency-key': 'k7' });
    expect(keyed.headers.get('idempotency-status')).not.toBeNull();
    expect([...shared.keys()]).toEqual(['x-app']);
    const unkeyed = await call('plain', {});
    expect(unkeyed.headers.get('idempotency-status')).toBeNull();
    expect(unkeyed.headers.get('x-app')).toBe('shared');
  });

  it('compares names, not substrings, in a Headers object too', async () => {
    const { call } = setup(() => ({ headers: new Headers({ 'access-control-expose-headers': 'Idempotency-Statuses' }) }));
    const response = await call('busy', { 'idempotency-key': 'k8', origin: 'http://app.example' });
    const exposed = (response.headers.get('access-control-expose-headers') ?? '').split(',').map((h) => h.trim().toLowerCase());
    expect(exposed).toContain('idempotency-status');
    expect(exposed.filter((h) => h === 'idempotency-statuses')).toHaveLength(1);
  });
});

describe('reports on a request object that outlives one request', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const usedBytes = async (): Promise<number> => {
    for (let i = 0; i < 2; i++) {
      gc();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return process.memoryUsage().heapUsed;
  };

  // A heap measurement: under Stryker (STRYKER_MUTATOR_WORKER is set in its workers) the instrumented sources and
  // their coverage counters grow the heap by themselves, past the bound, so the mutation runs leave it out.
  it.skipIf(process.env.STRYKER_MUTATOR_WORKER !== undefined)('keeps no more keys than its per-key map can report, however many calls share the request', async () => {
    // Over tRPC's WebSocket adapter every call of a connection gets the upgrade request in ctx; with inputKey each
    // brings its own key. The report kept every one of them for the life of the connection.
    const t = initTRPC.context<{ req: object }>().create({ transformer: superjson });
    const { idempotent } = createIdempotency({ store: createMemoryStore({ maxEntries: 100 }), inputKey: 'key' });
    const router = t.router({ pay: t.procedure.use(idempotent()).mutation(() => 'paid') });
    const connection = { headers: {}, rawHeaders: [] };
    const caller = t.createCallerFactory(router)({ req: connection });
    const key = (i: number) => String(i).padEnd(255, 'k');
    await caller.pay({ key: key(-1) } as never);
    const before = await usedBytes();
    for (let i = 0; i < 8_000; i++) await caller.pay({ key: key(i) } as never);
    const grown = (await usedBytes()) - before;
    // The connection is still open: one more call on it (this also keeps it alive through the measurement).
    expect(await caller.pay({ key: key(-2) } as never)).toBe('paid');
    // 8,000 keys of 255 characters are 2 MB at the least.
    expect(grown).toBeLessThan(1024 * 1024);
  });
});

