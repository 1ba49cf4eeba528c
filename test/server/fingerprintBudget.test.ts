import superjson from 'superjson';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createIdempotency, createMemoryStore, DEFAULTS, idempotencyErrorData } from '../../src/index';
import type { IdempotencyErrorCode } from '../../src/index';
import { fingerprintInput } from '../../src/server/fingerprint';
import type { InputBudget } from '../../src/server/inputBudget';
import { createT, spyStore, trpcErrorOf } from './helpers';

class Money {
  constructor(
    readonly cents: number,
    readonly currency: string,
  ) {}
}
superjson.registerClass(Money, { identifier: 'budget.Money' });

/** The IdempotencyError code `fn` threw, or the message of anything else it threw. */
const failure = (fn: () => unknown): IdempotencyErrorCode | string => {
  try {
    fn();
  } catch (error) {
    const { code, message } = error as { code?: IdempotencyErrorCode; message?: string };
    return code ?? `${(error as Error).name}: ${message}`;
  }
  return 'no error';
};

/**
 * `levels` objects, each holding the next one under both `a` and `b`, around `leaf`: 2^levels paths to the
 * leaf, built from levels + 1 objects. `shared: false` builds the same value as a tree (2^levels objects).
 */
const doubled = (levels: number, leaf: () => unknown, shared = true): unknown => {
  if (!shared) {
    const build = (n: number): unknown => (n === 0 ? leaf() : { a: build(n - 1), b: build(n - 1) });
    return build(levels);
  }
  let value = leaf();
  for (let i = 0; i < levels; i++) value = { a: value, b: value };
  return value;
};

/** Like `doubled` (shared), but each object counts how often its keys are listed, and throws past `limit`. */
const countedDoubled = (levels: number, limit: number) => {
  const reads = { count: 0 };
  let value: unknown = { at: new Date(0) };
  for (let i = 0; i < levels; i++) {
    value = new Proxy(
      { a: value, b: value },
      {
        ownKeys: (target) => {
          if (++reads.count > limit) throw new Error(`listed keys ${reads.count} times: the input is walked as a tree`);
          return Reflect.ownKeys(target);
        },
      },
    );
  }
  return { value, reads };
};

const nested = (levels: number, leaf: unknown = 1): unknown => {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = { d: value };
  return value;
};

const budget = (overrides: Partial<InputBudget>): InputBudget => ({ ...DEFAULTS, ...overrides });

afterEach(() => {
  vi.restoreAllMocks();
});

describe('fingerprintInput on shared references', () => {
  it('refuses a 40-level doubly shared input after listing keys a few hundred times at most, not 2^40', () => {
    const { value, reads } = countedDoubled(40, 1_000);
    expect(failure(() => fingerprintInput(value))).toBe('INPUT_TOO_LARGE');
    // Objects are remembered once the walk is past its first 256 values; before that, walking one again is cheap.
    expect(reads.count).toBeLessThanOrEqual(300);
  });

  it('never hands superjson a shared input past the budget (its annotations grow with every path)', () => {
    const serialize = vi.spyOn(superjson, 'serialize').mockImplementation(() => {
      throw new Error('superjson.serialize was called');
    });
    const input = { price: new Money(1, 'EUR'), tree: doubled(40, () => new Map([['at', new Date(0)]])) };
    expect(failure(() => fingerprintInput(input))).toBe('INPUT_TOO_LARGE');
    expect(serialize).not.toHaveBeenCalled();
  });

  it.each([
    ['plain data', () => ({ at: new Date(3), tags: new Set(['x']), n: 2n })],
    ['a Map (plain path)', () => new Map<string, unknown>([['at', new Date(3)]])],
    ['a registered class (superjson path)', () => new Money(100, 'EUR')],
    ['a Map beside a registered class (superjson path)', () => ({ m: new Map([['k', 1n]]), price: new Money(1, 'USD') })],
  ])('hashes 6 shared levels of %s like the same value built as a tree', (_, leaf) => {
    const shared = fingerprintInput(doubled(6, leaf));
    expect(shared).toBe(fingerprintInput(doubled(6, leaf, false)));
    expect(shared).not.toBe(fingerprintInput(doubled(6, () => 'other leaf', false)));
  });

  it('hashes an input whose shared references came over the wire like the tree the client meant', () => {
    const price = new Money(5, 'EUR');
    const sent = superjson.serialize({ first: price, second: price, at: new Date(1) });
    expect(sent.meta?.referentialEqualities).toBeDefined();
    const received = superjson.deserialize(sent) as { first: Money; second: Money };
    expect(received.first).toBe(received.second);
    expect(fingerprintInput(received)).toBe(
      fingerprintInput({ first: new Money(5, 'EUR'), second: new Money(5, 'EUR'), at: new Date(1) }),
    );
  });

  it('still tells apart shared inputs whose shared part differs', () => {
    const one = new Money(1, 'EUR');
    const two = new Money(2, 'EUR');
    expect(fingerprintInput({ a: one, b: one })).not.toBe(fingerprintInput({ a: two, b: two }));
    expect(fingerprintInput({ a: one, b: one })).not.toBe(fingerprintInput({ a: one, b: two }));
  });
});

describe('fingerprintInput budget', () => {
  it('refuses 9,000 levels of plain nesting with INPUT_TOO_LARGE, not a stack overflow', () => {
    expect(failure(() => fingerprintInput(nested(9_000)))).toBe('INPUT_TOO_LARGE');
    expect(failure(() => fingerprintInput([nested(9_000, new Money(1, 'EUR'))]))).toBe('INPUT_TOO_LARGE');
  });

  it('names the budget it refused in the message', () => {
    expect(() => fingerprintInput(nested(101))).toThrow(/nested deeper than maxInputDepth = 100 levels/);
    expect(() => fingerprintInput(Array.from({ length: 100_001 }, () => 0))).toThrow(/more than maxInputNodes = 100000 values/);
    expect(() => fingerprintInput('x'.repeat(1024 * 1024 + 1))).toThrow(/more than maxInputChars = 1048576 characters/);
  });

  it('accepts maxInputDepth levels and refuses one more, on both encoders', () => {
    expect(fingerprintInput(nested(100))).toMatch(/^[\w-]{43}$/);
    expect(failure(() => fingerprintInput(nested(101)))).toBe('INPUT_TOO_LARGE');
    expect(fingerprintInput(nested(3), budget({ maxInputDepth: 3 }))).toMatch(/^[\w-]{43}$/);
    expect(failure(() => fingerprintInput(nested(4), budget({ maxInputDepth: 3 })))).toBe('INPUT_TOO_LARGE');
    // A class instance is one level, as superjson walks it.
    expect(fingerprintInput(nested(2, new Money(1, 'EUR')), budget({ maxInputDepth: 3 }))).toMatch(/^[\w-]{43}$/);
    expect(failure(() => fingerprintInput(nested(3, new Money(1, 'EUR')), budget({ maxInputDepth: 3 })))).toBe('INPUT_TOO_LARGE');
    // Map and Set levels count like objects.
    expect(failure(() => fingerprintInput(new Map([[1, new Set([[{}]])]]), budget({ maxInputDepth: 3 })))).toBe('INPUT_TOO_LARGE');
  });

  it('fingerprints 1000 levels of Maps around a class instance without overflowing the stack (the highest maxInputDepth)', () => {
    let value: unknown = new Money(1, 'EUR');
    for (let i = 1; i < 1_000; i++) value = new Map([['k', value]]);
    expect(fingerprintInput(value, budget({ maxInputDepth: 1_000 }))).toMatch(/^[\w-]{43}$/);
  });

  it('measures depth along the longest path, also through an object met first on a shorter one', () => {
    const deep = nested(2); // 2 levels
    const input = { short: deep, long: { x: { y: deep } } }; // 1 + 2 + 2 = 5 levels through `long`
    expect(fingerprintInput(input, budget({ maxInputDepth: 5 }))).toMatch(/^[\w-]{43}$/);
    expect(failure(() => fingerprintInput(input, budget({ maxInputDepth: 4 })))).toBe('INPUT_TOO_LARGE');
  });

  it('accepts maxInputNodes values and refuses one more, counting a shared object once per path', () => {
    // [ 'a', 'b' ] is 3 values; { x, y } around it twice is 1 + 3 + 3.
    const pair = ['a', 'b'];
    expect(fingerprintInput(pair, budget({ maxInputNodes: 3 }))).toMatch(/^[\w-]{43}$/);
    expect(failure(() => fingerprintInput(pair, budget({ maxInputNodes: 2 })))).toBe('INPUT_TOO_LARGE');
    expect(fingerprintInput({ x: pair, y: pair }, budget({ maxInputNodes: 7 }))).toMatch(/^[\w-]{43}$/);
    expect(failure(() => fingerprintInput({ x: pair, y: pair }, budget({ maxInputNodes: 6 })))).toBe('INPUT_TOO_LARGE');
    expect(failure(() => fingerprintInput(new Map([['k', 'v']]), budget({ maxInputNodes: 2 })))).toBe('INPUT_TOO_LARGE');
    expect(failure(() => fingerprintInput(new Uint8Array(10), budget({ maxInputNodes: 10 })))).toBe('INPUT_TOO_LARGE');
  });

  it('accepts maxInputChars of strings and keys and refuses one more, counting a shared object once per path', () => {
    const note = { ab: 'cd' }; // 4 characters
    expect(fingerprintInput(note, budget({ maxInputChars: 4 }))).toMatch(/^[\w-]{43}$/);
    expect(failure(() => fingerprintInput(note, budget({ maxInputChars: 3 })))).toBe('INPUT_TOO_LARGE');
    expect(fingerprintInput([note, note], budget({ maxInputChars: 8 }))).toMatch(/^[\w-]{43}$/);
    expect(failure(() => fingerprintInput([note, note], budget({ maxInputChars: 7 })))).toBe('INPUT_TOO_LARGE');
    expect(failure(() => fingerprintInput(new URL('https://x.test/abc'), budget({ maxInputChars: 10 })))).toBe('INPUT_TOO_LARGE');
  });
});

describe('the middleware with an input past the fingerprint budget', () => {
  const build = (options: { maxInputDepth?: number } = {}) => {
    const t = createT();
    const store = spyStore(createMemoryStore());
    const { idempotent } = createIdempotency({ store: store.store });
    let runs = 0;
    const anyInput = t.procedure.input((value: unknown) => value);
    const router = t.router({
      strict: anyInput.use(idempotent()).mutation(() => ++runs),
      roomy: anyInput.use(idempotent(options)).mutation(() => ++runs),
      unchecked: anyInput.use(idempotent({ fingerprint: false })).mutation(() => ++runs),
    });
    const caller = t.createCallerFactory(router)({ headers: { 'idempotency-key': 'deep-1' } });
    return { caller, store, runs: () => runs };
  };

  it('answers PAYLOAD_TOO_LARGE (reason input_too_large) before claiming or running anything', async () => {
    const { caller, store, runs } = build();
    const { value, reads } = countedDoubled(40, 1_000);
    const error = await trpcErrorOf(caller.strict(value));
    expect(reads.count).toBeLessThanOrEqual(300);
    expect(error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(error.message).toMatch(/maxInputNodes = 100000/);
    expect(idempotencyErrorData(error)).toEqual({ reason: 'input_too_large' });
    expect(store.calls).toEqual([]);
    expect(runs()).toBe(0);
  });

  it('takes a larger budget per procedure, and none applies with fingerprint: false', async () => {
    const { caller, runs } = build({ maxInputDepth: 200 });
    expect((await trpcErrorOf(caller.strict(nested(150)))).code).toBe('PAYLOAD_TOO_LARGE');
    expect(await caller.roomy(nested(150))).toBe(1);
    expect(await caller.unchecked(nested(150))).toBe(2);
    expect(runs()).toBe(2);
  });
});
