import type { AddressInfo } from 'node:net';
import { createTRPCClient, httpBatchLink, httpLink } from '@trpc/client';
import type { IncomingMessage } from 'node:http';
import { initTRPC } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import superjson from 'superjson';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IdempotencyCallInfo, IdempotencyWarning } from '../../src/client/index';
import { createIdempotencyHeaders, idempotencyHeaders, idempotencyLink } from '../../src/client/index';
import { createIdempotency, idempotencyResponseMeta } from '../../src/index';
import { makeOp } from './fixtures';

/** A server whose key header is `x-request-key` (and `x-request-keys` on batches). */
const startServer = async () => {
  const t = initTRPC.context<{ req: IncomingMessage }>().create({ transformer: superjson });
  const { idempotent } = createIdempotency({ headerName: 'X-Request-Key' });
  let runs = 0;
  const router = t.router({
    create: t.procedure
      .input((raw: unknown) => raw as { n: number })
      .use(idempotent())
      .mutation(({ input }) => ({ n: input.n, run: ++runs })),
  });
  const seen: string[][] = [];
  const server = createHTTPServer({
    router,
    createContext: ({ req }) => {
      seen.push(Object.keys(req.headers).filter((name) => name.includes('key')));
      return { req };
    },
    responseMeta: idempotencyResponseMeta(),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return { url, runs: () => runs, seen, close, router };
};
type Server = Awaited<ReturnType<typeof startServer>>;

describe('createIdempotencyHeaders({ headerName })', () => {
  let server: Server;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server.close();
  });

  const client = (headers: ReturnType<typeof createIdempotencyHeaders>, batch: boolean, warnings: IdempotencyWarning[] = []) =>
    createTRPCClient<Server['router']>({
      links: [
        idempotencyLink({ onWarning: (warning) => warnings.push(warning) }),
        batch ? httpBatchLink({ url: server.url, transformer: superjson, headers }) : httpLink({ url: server.url, transformer: superjson, headers }),
      ],
    });

  it("sends the key in the server's headerName, so a retry is replayed (httpLink)", async () => {
    const warnings: IdempotencyWarning[] = [];
    const api = client(createIdempotencyHeaders({ headerName: 'X-Request-Key' }), false, warnings);
    const before = server.runs();
    const infos: IdempotencyCallInfo[] = [{}, {}];
    const results = [];
    for (const info of infos) results.push(await api.create.mutate({ n: 1 }, { context: { idempotencyKey: 'name-1', idempotency: info } }));
    expect(results[1]).toEqual(results[0]);
    expect(infos.map((info) => info.status)).toEqual(['executed', 'replayed']);
    expect(server.runs() - before).toBe(1);
    expect(server.seen.at(-1)).toEqual(['x-request-key']);
    expect(warnings).toEqual([]);
  });

  it('sends <headerName>s on a batch, by position', async () => {
    const warnings: IdempotencyWarning[] = [];
    const api = client(createIdempotencyHeaders({ headerName: 'x-request-key' }), true, warnings);
    const before = server.runs();
    const batchOf = (infos: IdempotencyCallInfo[]) =>
      Promise.all(infos.map((info, i) => api.create.mutate({ n: i }, { context: { idempotencyKey: `name-2-${i}`, idempotency: info } })));
    const first: IdempotencyCallInfo[] = [{}, {}];
    const again: IdempotencyCallInfo[] = [{}, {}];
    const results = await batchOf(first);
    expect(await batchOf(again)).toEqual(results);
    expect(server.seen.at(-1)).toEqual(['x-request-keys']);
    expect([...first, ...again].map((info) => info.status)).toEqual(['executed', 'executed', 'replayed', 'replayed']);
    expect(server.runs() - before).toBe(2);
    expect(warnings).toEqual([]);
  });

  it('with the default idempotencyHeaders the server sees no key: the call runs twice and the link warns', async () => {
    const warnings: IdempotencyWarning[] = [];
    const api = client(idempotencyHeaders, false, warnings);
    const before = server.runs();
    await api.create.mutate({ n: 3 }, { context: { idempotencyKey: 'name-3' } });
    await api.create.mutate({ n: 3 }, { context: { idempotencyKey: 'name-3' } });
    expect(server.runs() - before).toBe(2);
    expect(warnings).not.toEqual([]);
  });

  it('refuses a headerName that is not an HTTP header name', () => {
    expect(() => createIdempotencyHeaders({ headerName: 'request key' })).toThrow(/headerName` must be a valid HTTP header name/);
    expect(() => createIdempotencyHeaders({ headerName: '' })).toThrow(/headerName/);
  });

  it('lower-cases the name and names the batch header in its budget error', () => {
    const headers = createIdempotencyHeaders({ headerName: 'X-Request-Key' });
    expect(headers({ op: makeOp() })).toEqual({ 'x-request-key': 'k1' });
    const opList = Array.from({ length: 106 }, (_, i) => makeOp({ context: { idempotencyKey: String(i).padStart(36, '0') } }));
    expect(() => headers({ opList })).toThrow(/needs a 4135-byte x-request-keys request header/);
  });
});
