import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createIdempotency, createMemoryStore } from '../../src/index';
import type { IdempotencyExecution, IdempotencyOptions } from '../../src/index';
import { createManualClock } from '../helpers/manualClock';
import type { TestContext } from './helpers';
import { createT, spyStore, trpcErrorOf } from './helpers';

/** A router with one guarded mutation and one guarded query that count their runs and expose ctx.idempotency. */
const setup = (options: IdempotencyOptions<TestContext> = {}) => {
  const t = createT();
  const clock = createManualClock();
  const spy = spyStore(createMemoryStore({ clock }));
  const { idempotent } = createIdempotency<TestContext>({ store: spy.store, clock, ...options });
  const runs = { create: 0, list: 0 };
  const seen: (IdempotencyExecution | null)[] = [];
  const router = t.router({
    create: t.procedure
      .use(idempotent())
      .input(z.object({ n: z.number(), idempotencyKey: z.unknown().optional() }))
      .mutation(({ input, ctx }) => {
        seen.push(ctx.idempotency);
        return { n: input.n, run: ++runs.create };
      }),
    other: t.procedure
      .use(idempotent())
      .input(z.object({ n: z.number() }))
      .mutation(({ input }) => ({ n: input.n, run: ++runs.create })),
    list: t.procedure
      .use(idempotent())
      .input(z.object({ n: z.number() }))
      .query(({ input }) => ({ n: input.n, run: ++runs.list })),
  });
  const caller = (ctx: TestContext) => t.createCallerFactory(router)(ctx);
  return { caller, runs, seen, spy };
};

const nodeRequest = (headers: Record<string, string>): IncomingMessage => {
  const req = new IncomingMessage(new Socket());
  req.headers = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return req;
};

describe('createIdempotency', () => {
  describe('procedure types', () => {
    it('passes queries straight through even when they carry a key', async () => {
      const { caller, runs, spy } = setup();
      const api = caller({ headers: { 'idempotency-key': 'q1' } });
      await api.list({ n: 1 });
      await api.list({ n: 1 });
      expect(runs.list).toBe(2);
      expect(spy.calls).toHaveLength(0);
    });

    it('passes queries through even when a key is required', async () => {
      const { caller, runs } = setup({ required: true });
      expect(await caller({}).list({ n: 1 })).toEqual({ n: 1, run: 1 });
      expect(runs.list).toBe(1);
    });

    it('guards a mutation that carries a key', async () => {
      const { caller, runs, spy } = setup();
      const api = caller({ headers: { 'idempotency-key': 'm1' } });
      expect(await api.create({ n: 1 })).toEqual({ n: 1, run: 1 });
      expect(await api.create({ n: 1 })).toEqual({ n: 1, run: 1 });
      expect(runs.create).toBe(1);
      expect(spy.callsOf('claim')).toHaveLength(2);
    });
  });

  describe('key sources', () => {
    it('reads the key from a Node IncomingMessage in ctx.req', async () => {
      const { caller, runs } = setup();
      const req = nodeRequest({ 'Idempotency-Key': 'node-1' });
      await caller({ req }).create({ n: 1 });
      await caller({ req: nodeRequest({ 'Idempotency-Key': 'node-1' }) }).create({ n: 1 });
      expect(runs.create).toBe(1);
    });

    it('reads the key from a Fetch Request in ctx.req', async () => {
      const { caller, runs, seen } = setup();
      const request = () => new Request('http://x/', { method: 'POST', headers: { 'Idempotency-Key': 'fetch-1' } });
      await caller({ req: request() }).create({ n: 1 });
      await caller({ req: request() }).create({ n: 1 });
      expect(runs.create).toBe(1);
      expect(seen[0]?.key).toBe('fetch-1');
    });

    it('reads the key from a plain headers object whatever the case of its name', async () => {
      const { caller, seen } = setup();
      await caller({ headers: { 'IDEMPOTENCY-KEY': 'upper' } }).create({ n: 1 });
      await caller({ headers: { 'Idempotency-Key': 'mixed' } }).create({ n: 1 });
      expect(seen.map((s) => s?.key)).toEqual(['upper', 'mixed']);
    });

    it('reads the key from a Fetch Headers object in ctx.headers', async () => {
      const { caller, runs, seen } = setup();
      const headers = () => new Headers({ 'Idempotency-Key': 'bag-1' }) as unknown as Record<string, unknown>;
      await caller({ headers: headers() }).create({ n: 1 });
      await caller({ headers: headers() }).create({ n: 1 });
      expect(runs.create).toBe(1);
      expect(seen[0]?.key).toBe('bag-1');
    });

    it('unquotes the IETF sf-string form, so "abc" and abc are the same key', async () => {
      const { caller, runs, seen } = setup();
      await caller({ headers: { 'idempotency-key': '"abc"' } }).create({ n: 1 });
      expect(seen[0]?.key).toBe('abc');
      await caller({ headers: { 'idempotency-key': 'abc' } }).create({ n: 1 });
      expect(runs.create).toBe(1);
    });

    it('reads the key from the input field named by inputKey', async () => {
      const { caller, runs, seen } = setup({ inputKey: 'idempotencyKey' });
      await caller({}).create({ n: 1, idempotencyKey: 'in-1' });
      await caller({}).create({ n: 1, idempotencyKey: 'in-1' });
      expect(runs.create).toBe(1);
      expect(seen[0]?.key).toBe('in-1');
    });

    it('falls back to the header when the inputKey field is absent', async () => {
      const { caller, seen } = setup({ inputKey: 'idempotencyKey' });
      await caller({ headers: { 'idempotency-key': 'hdr' } }).create({ n: 1 });
      expect(seen[0]?.key).toBe('hdr');
    });

    it('uses getKey alone when given, with ctx, rawInput, path and batchIndex', async () => {
      const calls: unknown[] = [];
      const { caller, runs, seen } = setup({
        getKey: (opts) => {
          calls.push(opts);
          return opts.ctx.key;
        },
      });
      await caller({ key: 'gk-1', headers: { 'idempotency-key': 'ignored' } }).create({ n: 7 });
      await caller({ key: 'gk-1' }).create({ n: 7 });
      expect(runs.create).toBe(1);
      expect(seen[0]?.key).toBe('gk-1');
      expect(calls[0]).toEqual({ ctx: expect.objectContaining({ key: 'gk-1' }), rawInput: { n: 7 }, path: 'create', batchIndex: 0 });
    });

    it('runs unguarded when getKey returns undefined', async () => {
      const { caller, runs, seen, spy } = setup({ getKey: () => undefined });
      await caller({ headers: { 'idempotency-key': 'ignored' } }).create({ n: 1 });
      await caller({ headers: { 'idempotency-key': 'ignored' } }).create({ n: 1 });
      expect(runs.create).toBe(2);
      expect(seen).toEqual([null, null]);
      expect(spy.calls).toHaveLength(0);
    });

    it('reads a custom headerName and ignores the default one', async () => {
      const { caller, seen } = setup({ headerName: 'X-Request-Id' });
      await caller({ headers: { 'x-request-id': 'custom-1' } }).create({ n: 1 });
      await caller({ headers: { 'idempotency-key': 'default-1' } }).create({ n: 1 });
      expect(seen.map((s) => s?.key ?? null)).toEqual(['custom-1', null]);
    });

    it('reads the batch header <name>s by batch index, null meaning no key', async () => {
      const { caller, seen } = setup();
      // createCaller always has batchIndex 0: the JSON array wins over the single header.
      await caller({ headers: { 'idempotency-keys': '["b0",null]', 'idempotency-key': 'single' } }).create({ n: 1 });
      await caller({ headers: { 'idempotency-keys': '[null,"b1"]' } }).create({ n: 1 });
      expect(seen.map((s) => s?.key ?? null)).toEqual(['b0', null]);
    });
  });

  describe('key rules', () => {
    const badKeys: [string, string, RegExp][] = [
      ['empty', '', /empty/],
      ['256 characters', 'a'.repeat(256), /256 characters/],
      ['a space', 'has space', /outside 0x21-0x7E/],
      ['a control character', 'tab\there', /outside 0x21-0x7E/],
      ['a non-ASCII character', 'clé', /outside 0x21-0x7E/],
      ['a DEL character', 'del\x7f', /outside 0x21-0x7E/],
    ];
    for (const [name, key, rule] of badKeys) {
      it(`answers BAD_REQUEST naming the rule when the key has ${name}`, async () => {
        const { caller, runs } = setup({ inputKey: 'idempotencyKey' });
        const error = await trpcErrorOf(caller({}).create({ n: 1, idempotencyKey: key }));
        expect(error.code).toBe('BAD_REQUEST');
        expect(error.message).toMatch(rule);
        expect(error.message).toMatch(/1 to 255 characters of visible ASCII/);
        expect(runs.create).toBe(0);
      });
    }

    it('answers BAD_REQUEST for an empty header value', async () => {
      const { caller, runs } = setup();
      const error = await trpcErrorOf(caller({ headers: { 'idempotency-key': '' } }).create({ n: 1 }));
      expect(error.code).toBe('BAD_REQUEST');
      expect(error.message).toMatch(/empty/);
      expect(runs.create).toBe(0);
    });

    it('accepts 255 visible ASCII characters', async () => {
      const { caller, seen } = setup();
      const key = Array.from({ length: 255 }, (_, i) => String.fromCharCode(0x21 + (i % 94))).join('');
      await caller({ headers: { 'idempotency-key': key } }).create({ n: 1 });
      expect(seen[0]?.key).toBe(key);
    });

    it('answers BAD_REQUEST when the input field holds a number', async () => {
      const { caller, runs } = setup({ inputKey: 'idempotencyKey' });
      const error = await trpcErrorOf(caller({}).create({ n: 1, idempotencyKey: 42 }));
      expect(error.code).toBe('BAD_REQUEST');
      expect(error.message).toMatch(/must be a string/);
      expect(runs.create).toBe(0);
    });

    it('answers BAD_REQUEST when getKey returns a non-string', async () => {
      const { caller } = setup({ getKey: () => 12 });
      const error = await trpcErrorOf(caller({}).create({ n: 1 }));
      expect(error.code).toBe('BAD_REQUEST');
      expect(error.message).toMatch(/getKey must be a string/);
    });

    for (const [name, value] of [
      ['a JSON object', '{"0":"k"}'],
      ['a JSON string', '"k"'],
      ['malformed JSON', '["k"'],
    ] as const) {
      it(`answers BAD_REQUEST when idempotency-keys is ${name}`, async () => {
        const { caller, runs } = setup();
        const error = await trpcErrorOf(caller({ headers: { 'idempotency-keys': value } }).create({ n: 1 }));
        expect(error.code).toBe('BAD_REQUEST');
        expect(error.message).toMatch(/must be a JSON array/);
        expect(runs.create).toBe(0);
      });
    }

    it('answers BAD_REQUEST when an idempotency-keys entry is not a string', async () => {
      const { caller } = setup();
      const error = await trpcErrorOf(caller({ headers: { 'idempotency-keys': '[5]' } }).create({ n: 1 }));
      expect(error.code).toBe('BAD_REQUEST');
      expect(error.message).toMatch(/idempotency-keys\[0\] must be a string/);
    });

    it('runs unguarded with ctx.idempotency null when there is no key', async () => {
      const { caller, runs, seen, spy } = setup();
      await caller({}).create({ n: 1 });
      await caller({}).create({ n: 1 });
      expect(runs.create).toBe(2);
      expect(seen).toEqual([null, null]);
      expect(spy.calls).toHaveLength(0);
    });

    it('answers BAD_REQUEST naming the header when required and the key is missing', async () => {
      const { caller, runs } = setup({ required: true });
      const error = await trpcErrorOf(caller({}).create({ n: 1 }));
      expect(error.code).toBe('BAD_REQUEST');
      expect(error.message).toMatch(/requires an idempotency key in the idempotency-key header/);
      expect(runs.create).toBe(0);
    });
  });

  describe('required keys', () => {
    it('names getKey, not the header, when getKey finds no key and one is required', async () => {
      const { caller, runs } = setup({ required: true, getKey: ({ ctx }) => ctx.key });
      const error = await trpcErrorOf(caller({ headers: { 'idempotency-key': 'ignored' } }).create({ n: 1 }));
      expect(error.code).toBe('BAD_REQUEST');
      expect(error.message).toMatch(/requires an idempotency key from getKey/);
      expect(runs.create).toBe(0);
    });

    it('names the header and the input field when both are sources', async () => {
      const { caller } = setup({ required: true, inputKey: 'idempotencyKey' });
      const error = await trpcErrorOf(caller({}).create({ n: 1 }));
      expect(error.message).toMatch(/the idempotency-key header or input field "idempotencyKey"/);
    });
  });

  describe('record ids', () => {
    it('never passes the raw key to the store, and derives different ids per scope and path', async () => {
      const { caller, spy } = setup({ scope: ({ ctx }) => ctx.user });
      await caller({ user: 'alice', headers: { 'idempotency-key': 'raw-key-1' } }).create({ n: 1 });
      await caller({ user: 'bob', headers: { 'idempotency-key': 'raw-key-1' } }).create({ n: 1 });
      await caller({ user: 'alice', headers: { 'idempotency-key': 'raw-key-1' } }).other({ n: 1 });
      const ids = spy.callsOf('claim').map((r: { id: string }) => r.id);
      expect(ids).toHaveLength(3);
      expect(new Set(ids).size).toBe(3);
      for (const id of ids) {
        expect(id).not.toContain('raw-key-1');
        expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
      }
      const everyRequest = JSON.stringify(spy.calls.map((c) => c.request));
      expect(everyRequest).not.toContain('raw-key-1');
    });
  });

  describe('scope', () => {
    it('runs twice for the same key from two users and never replays across them', async () => {
      const { caller, runs } = setup({ scope: ({ ctx }) => ctx.user });
      const alice = await caller({ user: 'alice', headers: { 'idempotency-key': 'shared' } }).create({ n: 1 });
      const bob = await caller({ user: 'bob', headers: { 'idempotency-key': 'shared' } }).create({ n: 1 });
      expect(runs.create).toBe(2);
      expect(alice.run).toBe(1);
      expect(bob.run).toBe(2);
    });

    it('replays for the same user', async () => {
      const { caller, runs } = setup({ scope: ({ ctx }) => ctx.user });
      await caller({ user: 'alice', headers: { 'idempotency-key': 'mine' } }).create({ n: 1 });
      const again = await caller({ user: 'alice', headers: { 'idempotency-key': 'mine' } }).create({ n: 1 });
      expect(runs.create).toBe(1);
      expect(again.run).toBe(1);
    });

    it('refuses a scope that is not a string or number instead of putting every caller in one scope', async () => {
      const { caller, runs } = setup({ scope: (({ ctx }: { ctx: TestContext }) => ({ id: ctx.user })) as never });
      const error = await trpcErrorOf(caller({ user: 'alice', headers: { 'idempotency-key': 'k' } }).create({ n: 1 }));
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).toMatch(/scope\(\) must return a string or number, got object/);
      expect(runs.create).toBe(0);
    });
  });
});
