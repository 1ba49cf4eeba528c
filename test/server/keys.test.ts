import { createHash } from 'node:crypto';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { TRPCError } from '@trpc/server';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { createIdempotency, createMemoryStore } from '../../src/index';
import type { IdempotencyExecution, IdempotencyOptions } from '../../src/index';
import { recordId, scopeText } from '../../src/server/scope';
import { createManualClock } from '../helpers/manualClock';
import type { TestContext } from './helpers';
import { createT, eventLog, spyStore, trpcErrorOf } from './helpers';

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
    bare: t.procedure.use(idempotent()).mutation(({ ctx }) => {
      seen.push(ctx.idempotency);
      return ++runs.create;
    }),
    anything: t.procedure
      .use(idempotent())
      .input(z.unknown())
      .mutation(({ ctx }) => {
        seen.push(ctx.idempotency);
        return ++runs.create;
      }),
    text: t.procedure
      .use(idempotent())
      .input(z.string())
      .mutation(({ ctx }) => {
        seen.push(ctx.idempotency);
        return ++runs.create;
      }),
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

    it('reads the header with inputKey set on a mutation that takes no input', async () => {
      const { caller, runs, seen } = setup({ inputKey: 'idempotencyKey' });
      expect(await caller({ headers: { 'idempotency-key': 'no-input' } }).bare()).toBe(1);
      expect(await caller({ headers: { 'idempotency-key': 'no-input' } }).bare()).toBe(1);
      expect(runs.create).toBe(1);
      expect(seen.map((s) => s?.key)).toEqual(['no-input']);
    });

    it('runs unguarded, without an error, with inputKey set on a mutation without input or header', async () => {
      const { caller, runs, seen } = setup({ inputKey: 'idempotencyKey' });
      expect(await caller({}).bare()).toBe(1);
      expect(seen).toEqual([null]);
      expect(runs.create).toBe(1);
    });

    it('reads the header with inputKey set on a mutation whose input is a string', async () => {
      const { caller, seen } = setup({ inputKey: 'length' });
      await caller({ headers: { 'idempotency-key': 'str-input' } }).text('idempotencyKey');
      expect(seen.map((s) => s?.key)).toEqual(['str-input']);
    });

    it('reads the header with inputKey set on a mutation whose input is null', async () => {
      const { caller, seen } = setup({ inputKey: 'idempotencyKey' });
      await caller({ headers: { 'idempotency-key': 'null-input' } }).anything(null);
      expect(seen.map((s) => s?.key)).toEqual(['null-input']);
    });

    it('treats an input key field that is present but undefined as no key', async () => {
      const { caller, seen } = setup({ inputKey: 'idempotencyKey' });
      await caller({ headers: { 'idempotency-key': 'hdr-undef' } }).anything({ idempotencyKey: undefined });
      expect(seen.map((s) => s?.key)).toEqual(['hdr-undef']);
    });

    it('treats a null input key as no key and falls back to the header', async () => {
      const { caller, seen } = setup({ inputKey: 'idempotencyKey' });
      await caller({ headers: { 'idempotency-key': 'hdr-null' } }).create({ n: 1, idempotencyKey: null });
      await caller({}).create({ n: 2, idempotencyKey: null });
      expect(seen.map((s) => s?.key ?? null)).toEqual(['hdr-null', null]);
    });

    it('prefers the input field over the header when both carry a key', async () => {
      const { caller, seen } = setup({ inputKey: 'idempotencyKey' });
      await caller({ headers: { 'idempotency-key': 'from-header' } }).create({ n: 1, idempotencyKey: 'from-input' });
      expect(seen.map((s) => s?.key)).toEqual(['from-input']);
    });

    it('runs unguarded when getKey returns null, without reading the header', async () => {
      const { caller, runs, seen, spy } = setup({ getKey: () => null });
      await caller({ headers: { 'idempotency-key': 'ignored' } }).create({ n: 1 });
      await caller({ headers: { 'idempotency-key': 'ignored' } }).create({ n: 1 });
      expect(runs.create).toBe(2);
      expect(seen).toEqual([null, null]);
      expect(spy.calls).toHaveLength(0);
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

    it("passes on the app's own error from getKey as it is (UNAUTHORIZED stays UNAUTHORIZED), and runs nothing", async () => {
      const { caller, runs, spy } = setup({
        getKey: () => {
          throw new TRPCError({ code: 'UNAUTHORIZED', message: 'sign in to pay' });
        },
      });
      const error = await trpcErrorOf(caller({ headers: { 'idempotency-key': 'k1' } }).create({ n: 1 }));
      expect(error.code).toBe('UNAUTHORIZED');
      expect(error.message).toBe('sign in to pay');
      expect(runs.create).toBe(0);
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

  describe('one syntax for Idempotency-Key and each element of Idempotency-Keys', () => {
    const viaSingle = (value: string) => ({ headers: { 'idempotency-key': value } });
    const viaList = (value: string) => ({ headers: { 'idempotency-keys': JSON.stringify([value]) } });

    for (const [name, via] of [
      ['Idempotency-Key', viaSingle],
      ['an Idempotency-Keys element', viaList],
    ] as const) {
      for (const [sent, key] of [
        ['"order-1"', 'order-1'],
        ['"a\\"b"', 'a"b'],
        ['"a\\\\b"', 'a\\b'],
        ['  order-2\t ', 'order-2'],
        [' "order-3" ', 'order-3'],
        ['in"side', 'in"side'],
      ] as const) {
        it(`reads ${JSON.stringify(sent)} in ${name} as the key ${JSON.stringify(key)}`, async () => {
          const { caller, seen } = setup();
          await caller(via(sent)).create({ n: 1 });
          expect(seen.map((s) => s?.key)).toEqual([key]);
        });
      }

      for (const [sent, why] of [
        ['"unterminated', 'no closing quote'],
        ['"a"b"', 'a quote inside'],
        ['"a\\x"', 'an escape other than \\" and \\\\'],
        ['"trailing\\"', 'an escaped closing quote'],
        ['"', 'a lone quote'],
      ] as const) {
        it(`answers BAD_REQUEST for a quoted key with ${why} in ${name}, and runs nothing`, async () => {
          const { caller, runs } = setup();
          const error = await trpcErrorOf(caller(via(sent)).create({ n: 1 }));
          expect(error.code).toBe('BAD_REQUEST');
          expect(error.message).toMatch(/opens with a double quote but is not a quoted string/);
          expect(runs.create).toBe(0);
        });
      }

      it(`answers BAD_REQUEST for "" (an empty quoted key) in ${name}`, async () => {
        const { caller, runs } = setup();
        const error = await trpcErrorOf(caller(via('""')).create({ n: 1 }));
        expect(error.message).toMatch(/is invalid \(it is empty\)/);
        expect(runs.create).toBe(0);
      });

      it(`trims only spaces and tabs in ${name}: a newline stays and is refused`, async () => {
        const { caller, runs } = setup();
        const error = await trpcErrorOf(caller(via('k\n')).create({ n: 1 }));
        expect(error.message).toMatch(/outside 0x21-0x7E/);
        expect(runs.create).toBe(0);
      });
    }

    it('gives "order-1" and order-1 one record whichever header carries them', async () => {
      const { caller, runs, spy } = setup();
      await caller(viaList('"order-1"')).create({ n: 1 });
      await caller(viaSingle('"order-1"')).create({ n: 1 });
      await caller(viaSingle('order-1')).create({ n: 1 });
      await caller(viaList('order-1')).create({ n: 1 });
      expect(runs.create).toBe(1);
      expect(new Set(spy.callsOf('claim').map((r: { id: string }) => r.id)).size).toBe(1);
    });

    it('checks only the element of its own call: other elements may be anything', async () => {
      const { caller, seen } = setup();
      await caller({ headers: { 'idempotency-keys': '["k0",[[["deep"]]],{"a":1},5,true]' } }).create({ n: 1 });
      expect(seen.map((s) => s?.key)).toEqual(['k0']);
    });
  });

  describe('Idempotency-Keys parsed once per request', () => {
    const parsesOf = (text: string, run: () => Promise<unknown>) => async () => {
      const parse = vi.spyOn(JSON, 'parse');
      try {
        await run();
        return parse.mock.calls.filter(([arg]) => arg === text).length;
      } finally {
        parse.mockRestore();
      }
    };

    it('parses the header once for every call of one request', async () => {
      const { caller, seen, spy } = setup();
      const text = '["same"]';
      const headers = { 'idempotency-keys': text };
      const count = await parsesOf(text, async () => {
        for (let i = 0; i < 3; i++) await caller({ headers }).create({ n: 1 });
      })();
      expect(count).toBe(1);
      // Every call found its key: one ran, two replayed.
      expect(seen.map((s) => s?.key)).toEqual(['same']);
      expect(spy.callsOf('claim')).toHaveLength(3);
    });

    it('parses once on a frozen headers object too', async () => {
      const { caller, seen, spy } = setup();
      const text = '["frozen"]';
      const headers = Object.freeze({ 'idempotency-keys': text });
      const count = await parsesOf(text, async () => {
        await caller({ headers }).create({ n: 1 });
        await caller({ headers }).create({ n: 1 });
      })();
      expect(count).toBe(1);
      expect(seen.map((s) => s?.key)).toEqual(['frozen']);
      expect(spy.callsOf('claim')).toHaveLength(2);
    });

    it('parses again when the header of the same request changed', async () => {
      const { caller, seen } = setup();
      const headers: Record<string, string> = { 'idempotency-keys': '["first"]' };
      await caller({ headers }).create({ n: 1 });
      headers['idempotency-keys'] = '["second"]';
      await caller({ headers }).create({ n: 1 });
      const frozen = Object.freeze({ 'idempotency-keys': '["third"]' });
      await caller({ headers: frozen }).create({ n: 1 });
      expect(seen.map((s) => s?.key)).toEqual(['first', 'second', 'third']);
    });

    it('refuses a malformed header on every call of the request, parsing it once', async () => {
      const { caller, runs } = setup();
      const text = '["k"';
      const headers = { 'idempotency-keys': text };
      const count = await parsesOf(text, async () => {
        for (let i = 0; i < 2; i++) {
          const error = await trpcErrorOf(caller({ headers }).create({ n: 1 }));
          expect(error.message).toMatch(/must be a JSON array/);
        }
      })();
      expect(count).toBe(1);
      expect(runs.create).toBe(0);
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
      expect(error.message).toMatch(/^trpc-idempotency: the idempotency-key header is invalid \(it is empty\)/);
      expect(runs.create).toBe(0);
    });

    it('names the bad character, not the length, for a 255-character key with a space', async () => {
      const { caller } = setup();
      const error = await trpcErrorOf(caller({ headers: { 'idempotency-key': `${'a'.repeat(127)} ${'a'.repeat(127)}` } }).create({ n: 1 }));
      expect(error.message).toMatch(/invalid \(it has a character outside 0x21-0x7E\)/);
    });

    it('answers BAD_REQUEST for a header of blanks only, as for an empty one', async () => {
      const { caller } = setup();
      const error = await trpcErrorOf(caller({ headers: { 'idempotency-key': ' \t ' } }).create({ n: 1 }));
      expect(error.message).toMatch(/invalid \(it is empty\)/);
    });

    it('refuses a control character inside a quoted key', async () => {
      const { caller, runs } = setup();
      const error = await trpcErrorOf(caller({ headers: { 'idempotency-key': '"a\tb"' } }).create({ n: 1 }));
      expect(error.message).toMatch(/outside 0x21-0x7E/);
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
      expect(error.message).toMatch(/input field "idempotencyKey" must be a string/);
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

    it('says the server cannot read the header when ctx holds no request headers', async () => {
      const { caller } = setup({ required: true });
      const noHeaders = await trpcErrorOf(caller({ user: 'u' }).create({ n: 1 }));
      expect(noHeaders.message).toMatch(/idempotency-key header \(the server cannot read it: its ctx holds no request headers; put the request in ctx\)$/);
      const emptyHeaders = await trpcErrorOf(caller({ headers: {} }).create({ n: 1 }));
      expect(emptyHeaders.message).toMatch(/requires an idempotency key in the idempotency-key header$/);
      // getKey reads no header: nothing to say about them.
      const withGetKey = setup({ required: true, getKey: () => undefined });
      const fromGetKey = await trpcErrorOf(withGetKey.caller({ user: 'u' }).create({ n: 1 }));
      expect(fromGetKey.message).toMatch(/requires an idempotency key from getKey$/);
    });

    it('names the header and the input field when both are sources', async () => {
      const { caller } = setup({ required: true, inputKey: 'idempotencyKey' });
      const error = await trpcErrorOf(caller({}).create({ n: 1 }));
      expect(error.message).toMatch(/the idempotency-key header or input field "idempotencyKey"/);
    });
  });

  describe('unguarded calls', () => {
    const ourWarnings = (warn: { mock: { calls: unknown[][] } }) =>
      warn.mock.calls.map(([m]) => String(m)).filter((m) => m.startsWith('trpc-idempotency:'));

    it('emits no_headers for every call and warns once per procedure when ctx has no headers', async () => {
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
      try {
        const log = eventLog();
        const { caller, runs } = setup({ onEvent: log.onEvent });
        await caller({ user: 'u' }).create({ n: 1 });
        await caller({ user: 'u' }).create({ n: 1 });
        await caller({ user: 'u' }).bare();
        expect(runs.create).toBe(3);
        expect(log.ofType('unguarded')).toEqual([
          { type: 'unguarded', reason: 'no_headers', path: 'create' },
          { type: 'unguarded', reason: 'no_headers', path: 'create' },
          { type: 'unguarded', reason: 'no_headers', path: 'bare' },
        ]);
        expect(ourWarnings(warn)).toEqual([expect.stringMatching(/"create" runs unguarded/), expect.stringMatching(/"bare" runs unguarded/)]);
        expect(ourWarnings(warn)[0]).toBe(
          'trpc-idempotency: mutation "create" runs unguarded: its ctx holds no request headers (ctx.req, ctx.request or ' +
            'ctx.headers) and neither getKey nor inputKey is set, so it can never see an idempotency key and a retry runs it ' +
            'again. Put the request in ctx (createContext: ({ req }) => ({ req, ... })) or set getKey or inputKey. ' +
            'Each such call emits an `unguarded` event.',
        );
      } finally {
        warn.mockRestore();
      }
    });

    for (const [name, options] of [
      ['getKey', { getKey: () => undefined }],
      ['inputKey', { inputKey: 'idempotencyKey' }],
    ] as const) {
      it(`emits no_key, and does not warn, without headers when ${name} could still give a key`, async () => {
        const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
        try {
          const log = eventLog();
          const { caller } = setup({ ...options, onEvent: log.onEvent });
          await caller({}).create({ n: 1 });
          expect(log.ofType('unguarded')).toEqual([{ type: 'unguarded', reason: 'no_key', path: 'create' }]);
          expect(ourWarnings(warn)).toEqual([]);
        } finally {
          warn.mockRestore();
        }
      });
    }

    it('emits nothing unguarded for a keyed call, nor for a keyless one refused under required', async () => {
      const log = eventLog();
      const { caller } = setup({ onEvent: log.onEvent, required: true });
      await caller({ headers: { 'idempotency-key': 'k' } }).create({ n: 1 });
      await trpcErrorOf(caller({ headers: {} }).create({ n: 1 }));
      expect(log.ofType('unguarded')).toEqual([]);
    });

    it("emits fail_open with the record id when onStoreError: 'fail-open' runs a call whose claim failed", async () => {
      const log = eventLog();
      const { caller, spy, runs } = setup({ onEvent: log.onEvent, onStoreError: 'fail-open' });
      spy.override('claim', () => Promise.reject(new Error('down')));
      await caller({ headers: { 'idempotency-key': 'k' } }).create({ n: 1 });
      expect(runs.create).toBe(1);
      const keyHash = log.ofType('store_error')[0]?.keyHash;
      expect(keyHash).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(log.ofType('unguarded')).toEqual([{ type: 'unguarded', reason: 'fail_open', path: 'create', keyHash }]);
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
      expect(error.message).toMatch(/scope\(\) must return a string, number, bigint, null or undefined, got object/);
      expect(runs.create).toBe(0);
    });

    it('refuses a boolean scope with INTERNAL_SERVER_ERROR and runs nothing', async () => {
      const { caller, runs, spy } = setup({ scope: (() => true) as never });
      const error = await trpcErrorOf(caller({ headers: { 'idempotency-key': 'k' } }).create({ n: 1 }));
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).toMatch(/got boolean/);
      expect(runs.create).toBe(0);
      expect(spy.calls).toHaveLength(0);
    });

    // A number and its string spelling are two scopes: `1` and `"1"` may be two different users' ids (a numeric id
    // in one table, a string id in another), and NaN or 1e21 come from bugs that must not merge with a real id.
    for (const [a, b] of [
      [1, '1'],
      [Number.NaN, 'NaN'],
      [1e21, '1e+21'],
      [Number.POSITIVE_INFINITY, 'Infinity'],
      [0.5, '0.5'],
      [1n, 1],
      [1n, '1'],
      [10n ** 30n, '1000000000000000000000000000000'],
    ] as const) {
      it(`keeps scope ${typeof a} ${String(a)} apart from ${typeof b} ${JSON.stringify(String(b))}: the same key runs once in each`, async () => {
        const { caller, runs, spy } = setup({ scope: ({ ctx }) => ctx.scope });
        const first = await caller({ scope: a, headers: { 'idempotency-key': 'same' } }).create({ n: 1 });
        const second = await caller({ scope: b, headers: { 'idempotency-key': 'same' } }).create({ n: 1 });
        expect([first.run, second.run]).toEqual([1, 2]);
        expect(runs.create).toBe(2);
        const [idA, idB] = spy.callsOf('claim').map((r: { id: string }) => r.id);
        expect(idA).not.toBe(idB);
      });
    }

    it('guards and replays under a bigint scope (it used to fail every keyed call with a 500)', async () => {
      const { caller, runs } = setup({ scope: ({ ctx }) => ctx.scope });
      const api = caller({ scope: 2n ** 64n, headers: { 'idempotency-key': 'big' } });
      expect(await api.create({ n: 1 })).toEqual({ n: 1, run: 1 });
      expect(await api.create({ n: 1 })).toEqual({ n: 1, run: 1 });
      expect(runs.create).toBe(1);
    });

    it('replays for the same number scope', async () => {
      const { caller, runs } = setup({ scope: ({ ctx }) => ctx.scope });
      await caller({ scope: 42, headers: { 'idempotency-key': 'mine' } }).create({ n: 1 });
      await caller({ scope: 42, headers: { 'idempotency-key': 'mine' } }).create({ n: 1 });
      expect(runs.create).toBe(1);
    });

    it('puts undefined, null and "" in the one global scope (anonymous callers share it)', async () => {
      const { caller, runs } = setup({ scope: ({ ctx }) => ctx.scope });
      await caller({ scope: undefined, headers: { 'idempotency-key': 'anon' } }).create({ n: 1 });
      await caller({ scope: null, headers: { 'idempotency-key': 'anon' } }).create({ n: 1 });
      await caller({ scope: '', headers: { 'idempotency-key': 'anon' } }).create({ n: 1 });
      expect(runs.create).toBe(1);
    });
  });

  describe('scopeText and record ids', () => {
    it('encodes strings as JSON and numbers and bigints as tagged objects no string can equal', () => {
      expect(scopeText('alice')).toBe('"alice"');
      expect(scopeText('{"n":"1"}')).toBe('"{\\"n\\":\\"1\\"}"');
      expect(scopeText(undefined)).toBe('""');
      expect(scopeText(null)).toBe('""');
      expect(scopeText(1)).toBe('{"n":"1"}');
      expect(scopeText(-0)).toBe('{"n":"0"}');
      expect(scopeText(Number.NaN)).toBe('{"n":"NaN"}');
      expect(scopeText(-Infinity)).toBe('{"n":"-Infinity"}');
      expect(scopeText(1e21)).toBe('{"n":"1e+21"}');
      expect(scopeText(-5n)).toBe('{"b":"-5"}');
      expect(() => scopeText(Symbol('s'))).toThrow(/got symbol/);
      expect(() => scopeText(() => 1)).toThrow(/got function/);
    });

    it('keeps the 0.1.0 record id of a string scope and of the global scope byte for byte', async () => {
      const { caller, spy } = setup({ scope: ({ ctx }) => ctx.scope });
      await caller({ scope: 'alice', headers: { 'idempotency-key': 'k-1' } }).create({ n: 1 });
      await caller({ headers: { 'idempotency-key': 'k-1' } }).create({ n: 1 });
      await caller({ scope: 7, headers: { 'idempotency-key': 'k-1' } }).create({ n: 1 });
      const ids = spy.callsOf('claim').map((r: { id: string }) => r.id);
      const hash = (text: string) => createHash('sha256').update(text).digest('base64url');
      expect(ids).toEqual([
        hash(JSON.stringify(['alice', 'create', 'k-1'])),
        hash(JSON.stringify(['', 'create', 'k-1'])),
        hash('[{"n":"7"},"create","k-1"]'),
      ]);
      expect(recordId(scopeText('alice'), 'create', 'k-1')).toBe(ids[0]);
    });
  });
});
