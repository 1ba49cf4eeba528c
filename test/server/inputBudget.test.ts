import { Readable } from 'node:stream';
import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { fingerprintInput } from '../../src/server/fingerprint';
import type { InputBudget } from '../../src/server/inputBudget';
import { checkInputBudget, MAX_INPUT_DEPTH_LIMIT } from '../../src/server/inputBudget';

class Tagged {
  constructor(readonly label: string) {}
}
// Enumerable and inherited: superjson copies a registered instance's own properties only (`{ ...instance }`).
(Tagged.prototype as unknown as { kind: string }).kind = 'x'.repeat(500);
superjson.registerClass(Tagged, { identifier: 'inputBudget.Tagged' });

const roomy: InputBudget = { maxInputDepth: MAX_INPUT_DEPTH_LIMIT, maxInputNodes: 1e9, maxInputChars: 1e9 };

const fits = (input: unknown, limit: Partial<InputBudget>): boolean => {
  try {
    checkInputBudget(input, { ...roomy, ...limit });
    return true;
  } catch (error) {
    if ((error as { code?: string }).code === 'INPUT_TOO_LARGE') return false;
    throw error;
  }
};

/** The smallest value of one budget that accepts `input` (the others unlimited), by bisection. */
const smallest = (input: unknown, name: keyof InputBudget, high: number): number => {
  let low = 0;
  while (low < high) {
    const mid = Math.floor((low + high) / 2);
    if (fits(input, { [name]: mid })) high = mid;
    else low = mid + 1;
  }
  return low;
};

/** What the budget counts of `input`: objects on its longest path, values, characters of strings and keys. */
const measure = (input: unknown) => ({
  depth: smallest(input, 'maxInputDepth', MAX_INPUT_DEPTH_LIMIT),
  nodes: smallest(input, 'maxInputNodes', 1e7),
  chars: smallest(input, 'maxInputChars', 1e7),
});

const nested = (levels: number, leaf: unknown = 1): unknown => {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = { d: value };
  return value;
};

/** 301 values, walked first, so that the objects after it are remembered rather than walked again. */
const past256Values = () => Array.from({ length: 300 }, () => 0);

describe('checkInputBudget counts', () => {
  it('one value per primitive and per object, the characters of strings and keys, and the objects on the longest path', () => {
    expect(measure({ ab: 'cd', list: [1, 'x', null] })).toEqual({ depth: 2, nodes: 6, chars: 9 });
    expect(measure('abc')).toEqual({ depth: 0, nodes: 1, chars: 3 });
  });

  it.each([
    ['a Map, keys and values alike', () => new Map<unknown, unknown>([['k', { v: 1 }]]), { depth: 2, nodes: 4, chars: 2 }],
    ['a Set', () => new Set(['ab', { v: 1 }]), { depth: 2, nodes: 4, chars: 3 }],
    ['an object without a prototype', () => Object.assign(Object.create(null) as object, { ab: 'cd' }), { depth: 1, nodes: 2, chars: 4 }],
    ['a RegExp, by its source', () => /abc/g, { depth: 1, nodes: 1, chars: 3 }],
    ['a URL, by its href', () => new URL('https://x.test/a'), { depth: 1, nodes: 1, chars: 16 }],
    ['an Error, by its name and message', () => new TypeError('boom'), { depth: 1, nodes: 1, chars: 13 }],
    ['FormData, by its names and values', () => {
      const form = new FormData();
      form.append('name', 'value');
      form.append('n', 'v');
      return form;
    }, { depth: 1, nodes: 5, chars: 11 }],
    ['a typed array as a list of numbers: one value per element, no characters', () => new Uint8Array(1000), { depth: 1, nodes: 1001, chars: 0 }],
    ['an Array subclass as a list (its indexes are not characters)', () => {
      class List<T> extends Array<T> {}
      return List.from(['a', 'b']);
    }, { depth: 1, nodes: 3, chars: 2 }],
    ['a Date as one value', () => new Date(0), { depth: 1, nodes: 1, chars: 0 }],
    ['a Date subclass as one value, whatever else it holds (superjson reads its time only)', () => {
      class Stamp extends Date {
        readonly note = 'x'.repeat(50);
      }
      return new Stamp(0);
    }, { depth: 1, nodes: 1, chars: 0 }],
    ['a class instance by its own properties, as superjson copies it, not inherited ones', () => new Tagged('ab'), { depth: 1, nodes: 2, chars: 7 }],
    ['a stream as one value, never walking into its state (the encoders refuse it)', () => Readable.from(['a']), { depth: 1, nodes: 1, chars: 0 }],
  ])('%s', (_, make, counts) => {
    expect(measure(make())).toEqual(counts);
  });
});

describe('checkInputBudget on an object reached by several paths', () => {
  // Objects are remembered once the walk is past its first 256 values: what is counted must not change with that.
  const where = [
    ['in a small input', (rest: Record<string, unknown>) => rest],
    ['past the first 256 values', (rest: Record<string, unknown>) => ({ filler: past256Values(), ...rest })],
  ] as const;

  it.each(where)('counts it once per path, like copies of it, %s', (_, around) => {
    const part = () => ({ ab: ['cd', { e: 'f' }] }); // 5 values, 6 characters
    const shared = part();
    const counts = measure(around({ x: shared, y: shared, z: [shared] }));
    expect(counts).toEqual(measure(around({ x: part(), y: part(), z: [part()] })));
    const empty = measure(around({}));
    expect(counts.nodes - empty.nodes).toBe(3 * 5 + 1); // and the array under `z`
    expect(counts.chars - empty.chars).toBe(3 * 6 + 3); // and the keys x, y, z
  });

  const deepThenFlat = [
    ['an object', () => ({ deep: nested(3), flat: 0 })],
    ['an array', () => [nested(3), 0]],
    ['a Map', () => new Map<string, unknown>([['deep', nested(3)], ['flat', 0]])],
  ] as const;

  for (const [placeName, around] of where) {
    it.each(deepThenFlat)(
      `measures the depth along its longest path when it is met again deeper, %s ${placeName}`,
      (_, make) => {
        const part = make(); // 4 levels: itself and the 3 nested below its first child
        const input = around({ first: part, later: { a: { b: part } } }); // `part` starts 3 levels down
        expect(fits(input, { maxInputDepth: 7 })).toBe(true);
        expect(fits(input, { maxInputDepth: 6 })).toBe(false);
      },
    );
  }

  it('refuses a cycle as too deep, however far into the input it closes', () => {
    const loop: Record<string, unknown> = { name: 'loop' };
    loop.self = { back: loop };
    expect(fits(loop, {})).toBe(false);
    expect(fits({ filler: past256Values(), loop }, {})).toBe(false);
  });
});

describe('fingerprintInput past the budget', () => {
  it('tells the client, in the message, that nothing ran', () => {
    expect(() => fingerprintInput(nested(101))).toThrow(/refuses it before anything runs$/);
  });

  it('refuses a stream with the error that names the fix, not as too large, however much state it holds', () => {
    expect(() => fingerprintInput(Readable.from(['a']), { maxInputDepth: 100, maxInputNodes: 5, maxInputChars: 5 })).toThrow(
      /holds a Readable.*set fingerprint to your own function/,
    );
  });
});
