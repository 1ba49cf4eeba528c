import superjson from 'superjson';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fingerprintInput } from '../../src/server/fingerprint';

const same = (a: unknown, b: unknown) => expect(fingerprintInput(a)).toBe(fingerprintInput(b));
const differ = (a: unknown, b: unknown) => expect(fingerprintInput(a)).not.toBe(fingerprintInput(b));

class Money {
  constructor(
    readonly cents: number,
    readonly currency: string,
  ) {}
}
superjson.registerClass(Money, { identifier: 'test.Money' });

describe('fingerprintInput', () => {
  it('ignores object key order, at every depth', () => {
    same({ a: 1, b: { c: [1, { d: 2, e: 3 }] } }, { b: { c: [1, { e: 3, d: 2 }] }, a: 1 });
  });

  it('keeps array, Map and Set order', () => {
    differ([1, 2], [2, 1]);
    differ(new Map([['a', 1], ['b', 2]]), new Map([['b', 2], ['a', 1]]));
    differ(new Set([1, 2]), new Set([2, 1]));
  });

  it.each([
    ['a Date and its ISO string', new Date(0), new Date(0).toISOString()],
    ['a Date and its epoch number', new Date(5), 5],
    ['1n and 1', 1n, 1],
    ['1n and "1"', 1n, '1'],
    ['-0 and 0', -0, 0],
    ['NaN and null', Number.NaN, null],
    ['Infinity and null', Number.POSITIVE_INFINITY, null],
    ['undefined and a missing key', { a: undefined }, {}],
    ['undefined and null', { a: undefined }, { a: null }],
    ['a Map and an object', new Map([['a', 1]]), { a: 1 }],
    ['a Set and an array', new Set([1]), [1]],
    ['a RegExp and its source', /a+/g, '/a+/g'],
    ['a URL and its href', new URL('https://x.test/a'), 'https://x.test/a'],
    ['true and "t"', true, 't'],
    ['a string with a quote and a split string', ['a",b'], ['a', 'b']],
    ['nested objects and flat keys', { a: { b: 1 } }, { 'a.b': 1 }],
  ])('tells apart %s', (_, a, b) => differ(a, b));

  it('is the same for equal values built separately, Dates and BigInts included', () => {
    same(
      { at: new Date(7), n: 2n ** 70n, m: new Map([[1, new Set(['x'])]]), u: undefined, r: /x/i },
      { r: /x/i, u: undefined, m: new Map([[1, new Set(['x'])]]), n: 2n ** 70n, at: new Date(7) },
    );
  });

  it('uses superjson for registered classes, so their fields count', () => {
    same(new Money(100, 'EUR'), new Money(100, 'EUR'));
    differ(new Money(100, 'EUR'), new Money(100, 'USD'));
    differ(new Money(100, 'EUR'), { cents: 100, currency: 'EUR' });
  });

  it.each([
    ['Dates', new Date(1), new Date(2)],
    ['bigints', 1n, 2n],
    ['large bigints', 2n ** 70n, 2n ** 70n + 1n],
    ['RegExp sources', /a/, /b/],
    ['RegExp flags', /a/g, /a/i],
    ['URLs', new URL('https://x.test/a'), new URL('https://x.test/b')],
  ])('tells apart different %s, alone and nested', (_, a, b) => {
    differ(a, b);
    differ({ v: a }, { v: b });
    differ([a], [b]);
    differ(new Map([['k', a]]), new Map([['k', b]]));
  });

  it('tells apart false, true and a missing field', () => {
    differ({ flag: false }, { flag: true });
    differ({ flag: false }, {});
    differ({ flag: true }, {});
    differ(false, true);
    differ(false, undefined);
  });

  it('counts the fields of a nested registered class instance', () => {
    differ({ m: new Money(1, 'EUR') }, { m: new Money(1, 'USD') });
    differ({ m: new Money(1, 'EUR') }, { m: new Money(2, 'EUR') });
    differ([new Money(1, 'EUR')], [new Money(1, 'USD')]);
    differ(new Map([['k', new Money(1, 'EUR')]]), new Map([['k', new Money(1, 'USD')]]));
    differ(new Map([[new Money(1, 'EUR'), 'v']]), new Map([[new Money(1, 'USD'), 'v']]));
    same({ m: new Money(1, 'EUR') }, { m: new Money(1, 'EUR') });
  });

  it('ignores key order on the superjson path too', () => {
    same(
      { price: new Money(1, 'EUR'), a: 1, b: { x: 1, y: [{ p: 1, q: 2 }] } },
      { b: { y: [{ q: 2, p: 1 }], x: 1 }, a: 1, price: new Money(1, 'EUR') },
    );
  });

  describe('which encoder', () => {
    afterEach(() => {
      vi.restoreAllMocks();
    });

    it('keeps Dates, Maps, Sets, RegExps, URLs and bigints off superjson', () => {
      const serialize = vi.spyOn(superjson, 'serialize');
      fingerprintInput({ at: new Date(1), m: new Map([[1, new Set([2n])]]), r: /x/, u: new URL('https://x.test') });
      expect(serialize).not.toHaveBeenCalled();
      fingerprintInput({ price: new Money(1, 'EUR') });
      expect(serialize).toHaveBeenCalledTimes(1);
    });
  });

  it('refuses a cycle with INPUT_TOO_LARGE instead of looping (as a tree it never ends)', () => {
    const a: Record<string, unknown> = { x: 1 };
    a.self = a;
    expect(() => fingerprintInput(a)).toThrow(expect.objectContaining({ code: 'INPUT_TOO_LARGE', message: expect.stringMatching(/a cycle/) }));
    const viaMap = new Map<string, unknown>();
    viaMap.set('again', [viaMap]);
    expect(() => fingerprintInput({ viaMap })).toThrow(expect.objectContaining({ code: 'INPUT_TOO_LARGE' }));
  });

  it('compares FormData fields, in order', () => {
    const form = (amount: string) => {
      const data = new FormData();
      data.append('account', 'a1');
      data.append('amount', amount);
      return data;
    };
    same(form('1'), form('1'));
    differ(form('1'), form('1000000'));
    differ(form('1'), { account: 'a1', amount: '1' });
  });

  it.each([
    ['a Blob', () => new Blob(['x']), 'a Blob'],
    ['a File', () => new File(['x'], 'x.txt'), 'a File'],
    ['a FormData with a file', () => {
      const data = new FormData();
      data.append('upload', new Blob(['x']), 'x.txt');
      return data;
    }, 'a FormData with files'],
    ['a ReadableStream', () => new ReadableStream(), 'a ReadableStream'],
    ['an async iterable', () => ({ async *[Symbol.asyncIterator]() {} }), 'an async iterable or stream'],
    ['an async iterable without a prototype', () => Object.assign(Object.create(null) as object, { async *[Symbol.asyncIterator]() {} }), 'an async iterable or stream'],
    ['a hand-rolled stream (an object with a pipe method)', () => ({ pipe: (destination: unknown) => destination }), 'an async iterable or stream'],
    ['an unregistered class instance', () => new (class Secret { private readonly pin = 1; })(), 'a Secret'],
    ['a nested Blob', () => ({ file: new Blob(['x']) }), 'a Blob'],
  ])('refuses %s with INVALID_OPTION, naming what it holds and the fix, instead of hashing it like {}', (_, make, what) => {
    expect(() => fingerprintInput(make())).toThrow(
      expect.objectContaining({
        code: 'INVALID_OPTION',
        message: `trpc-idempotency: the input holds ${what}, which the default fingerprint cannot compare; set fingerprint to your own function (or false) on this procedure so a changed input cannot replay another result`,
      }),
    );
  });

  it('is a 43-character URL-safe hash that never contains the input', () => {
    const fp = fingerprintInput({ password: 'hunter2' });
    expect(fp).toMatch(/^[\w-]{43}$/);
    expect(fp).not.toContain('hunter2');
  });
});

describe('the middleware with inputs the fingerprint cannot compare', () => {
  it('refuses a Blob input (the procedure does not run) and runs it with fingerprint: false', async () => {
    const { initTRPC } = await import('@trpc/server');
    const { createIdempotency, createMemoryStore } = await import('../../src/index');
    const t = initTRPC.context<{ headers: Record<string, string> }>().create();
    const { idempotent } = createIdempotency({ store: createMemoryStore() });
    let runs = 0;
    const blobInput = t.procedure.input((value: unknown) => value as Blob);
    const router = t.router({
      strict: blobInput.use(idempotent()).mutation(() => ++runs),
      relaxed: blobInput.use(idempotent({ fingerprint: false })).mutation(() => ++runs),
    });
    const caller = t.createCallerFactory(router)({ headers: { 'idempotency-key': 'upload-1' } });
    await expect(caller.strict(new Blob(['a']))).rejects.toMatchObject({
      code: 'INTERNAL_SERVER_ERROR',
      message: expect.stringMatching(/holds a Blob.*set fingerprint/),
    });
    expect(runs).toBe(0);
    expect(await caller.relaxed(new Blob(['a']))).toBe(1);
    expect(await caller.relaxed(new Blob(['b']))).toBe(1); // the documented cost of fingerprint: false
  });
});

// Fingerprints are stored: a new version must compute the same ones, or every in-flight key would turn into a
// mismatch on upgrade. These values were computed by 0.1.0 (8500c22).
describe('fingerprintInput stability', () => {
  const many = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${(i * 7) % 20}`, i]));
  it.each([
    ['simple', { sku: 'sku-123', quantity: 2 }, '5huZMwgZdR9e3CYKKOXiVQ1rY6UTvp18xv7NyUZsk-I'],
    ['escapes', { 'a"b': 'line\nbreak', 'back\\slash': 'tab\t', é: 'ünïcode', '': 'empty key', z: ['x', { b: 1, a: 2 }] }, 'fjSiFpv9HHaFYKbOFjkMhIEwh2aSkj4XjFEngXGChDQ'],
    ['key order', { b: 1, a: 2, B: 3, _: 4, '10': 5, '9': 6 }, 'ICPWqil0blVYC0vhAV1E3sOlab47oqKDcIzxt8-7uP0'],
    ['20 keys', many, 'P6Q4aACMl89Fhn4cNFt7gMGSVsf9890KZOZ6h8QLa70'],
    ['string', 'plain', 'xoXgfLshzn0vjqJb8Zr8DjUXN9SGfpRHyjIQpD3P0PU'],
    ['control characters', '\u0001\u007f', 'I5h4XghmQZghDPlh1LJZ6KLHovFbKHPJGK4sQfMsyrs'],
  ])('%s', (_name, input, expected) => {
    expect(fingerprintInput(input)).toBe(expected);
  });
});
