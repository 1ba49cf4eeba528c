import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createIdempotency, DEFAULTS, IdempotencyError } from '../../src/index';
import type { IdempotencyOptions } from '../../src/index';

const thrown = (fn: () => unknown): IdempotencyError => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(IdempotencyError);
    return error as IdempotencyError;
  }
  throw new Error('expected the call to throw');
};

const noop = () => undefined;

const BAD: [keyof IdempotencyOptions, unknown][] = [
  ['getKey', 'header'],
  ['inputKey', ''],
  ['inputKey', true],
  ['required', 'yes'],
  ['scope', 'user'],
  ['fingerprint', 'sha256'],
  ['maxInputDepth', 0],
  ['maxInputDepth', 1001],
  ['maxInputNodes', 1.5],
  ['maxInputChars', -1],
  ['onInProgress', 'queue'],
  ['waitTimeoutMs', 0],
  ['waitTimeoutMs', Infinity],
  ['ttlMs', -1],
  ['ttlMs', 1.5],
  ['ttlMs', '60000'],
  ['lockTtlMs', 2],
  ['maxResultBytes', Number.NaN],
  ['shouldStoreError', true],
  ['onStoreError', 'open'],
  ['store', { claim: noop }],
  // A store written against the contract before durable steps: refused at once, not when a step first runs.
  ['store', { claim: noop, renew: noop, complete: noop, release: noop, wait: noop }],
  ['maxRetryAfterMs', 0],
  ['headerName', 'idempotency key'],
  ['headerName', ''],
  ['serializer', { serialize: noop }],
  ['onEvent', 'console'],
  ['clock', { now: noop }],
];

describe('createIdempotency', () => {
  describe('option validation', () => {
    for (const [name, value] of BAD) {
      it(`throws an IdempotencyError naming ${name} when it is ${String(value) || "''"}`, () => {
        const error = thrown(() => createIdempotency({ [name]: value } as IdempotencyOptions));
        expect(error.code).toBe('INVALID_OPTION');
        expect(error.message).toMatch(new RegExp(`createIdempotency: option "${name}"`));
      });
    }

    it('throws /ttlMs/ for ttlMs: -1', () => {
      expect(() => createIdempotency({ ttlMs: -1 })).toThrow(/ttlMs/);
    });

    it('throws for an unknown option name, naming it', () => {
      const error = thrown(() => createIdempotency({ ttl: 5 } as IdempotencyOptions));
      expect(error.message).toMatch(/option "ttl" is not an option here/);
    });

    it('accepts every option at a valid value', () => {
      expect(() =>
        createIdempotency({
          getKey: noop,
          inputKey: 'idempotencyKey',
          required: true,
          scope: () => 'u',
          fingerprint: false,
          maxInputDepth: 1000,
          maxInputNodes: 1,
          maxInputChars: 1,
          onInProgress: 'wait',
          waitTimeoutMs: 1,
          ttlMs: 1,
          lockTtlMs: 3,
          maxResultBytes: 1,
          shouldStoreError: () => true,
          onStoreError: 'fail-open',
          headerName: 'X-Request-Id',
          onEvent: noop,
        }),
      ).not.toThrow();
    });

    it('checks procedure options when idempotent() is called, not when the procedure runs', () => {
      const { idempotent } = createIdempotency();
      const error = thrown(() => idempotent({ lockTtlMs: 0 }));
      expect(error.message).toMatch(/idempotent: option "lockTtlMs" must be an integer of at least 3/);
    });

    for (const name of ['store', 'headerName', 'serializer', 'onEvent', 'clock'] as const) {
      it(`refuses the instance-wide option ${name} per procedure`, () => {
        const { idempotent } = createIdempotency();
        const error = thrown(() => idempotent({ [name]: name === 'headerName' ? 'x-key' : noop } as never));
        expect(error.message).toMatch(new RegExp(`idempotent: option "${name}" is not an option here`));
      });
    }

    it('throws for an unknown procedure option name', () => {
      const { idempotent } = createIdempotency();
      expect(() => idempotent({ retries: 3 } as never)).toThrow(/option "retries" is not an option here/);
    });

    it('ignores options set to undefined', () => {
      expect(() => createIdempotency({ ttlMs: undefined, store: undefined })).not.toThrow();
    });
  });

  describe('@default tags', () => {
    /** Every `@default` of an option interface in `file`, by field name. */
    const defaultTags = (file: string): Map<string, string[]> => {
      const text = readFileSync(fileURLToPath(new URL(`../../src/${file}`, import.meta.url)), 'utf8');
      const tags = new Map<string, string[]>();
      for (const match of text.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*(\w+)\?:/g)) {
        const [, doc, name] = match as unknown as [string, string, string];
        tags.set(name, [...doc.matchAll(/@default\s+(.+)/g)].map((m) => (m[1] as string).trim()));
      }
      return tags;
    };
    /** The literal a tag starts with: `86400000 (24 h)` -> 86400000, `'reject'` -> 'reject'. */
    const literal = (tag: string): unknown => {
      const match = /^('[^']*'|-?\d[\d_]*|true|false)/.exec(tag);
      if (!match) return Symbol('not a literal');
      const text = match[1] as string;
      if (text.startsWith("'")) return text.slice(1, -1);
      if (text === 'true' || text === 'false') return text === 'true';
      return Number(text.replace(/_/g, ''));
    };

    const options = defaultTags('server/options.ts');
    const memory = defaultTags('stores/memoryStore.ts');

    it('finds one @default on every documented option', () => {
      expect(options.size).toBeGreaterThanOrEqual(17);
      for (const [name, tags] of [...options, ...memory]) expect({ name, count: tags.length }).toEqual({ name, count: 1 });
    });

    const keys = Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[];
    for (const key of keys) {
      const tags = options.get(key) ?? memory.get(key);
      if (!tags) continue;
      it(`agrees with DEFAULTS.${key}`, () => {
        expect(literal(tags[0] as string)).toEqual(DEFAULTS[key]);
      });
    }

    const localCache = defaultTags('stores/localCache.ts');
    for (const [name, tags] of localCache) {
      it(`agrees with DEFAULTS.localCacheLimits.${name}`, () => {
        expect(tags).toHaveLength(1);
        expect(literal(tags[0] as string)).toEqual(DEFAULTS.localCacheLimits[name as keyof typeof DEFAULTS.localCacheLimits]);
      });
    }

    it('backs every literal @default with a DEFAULTS entry', () => {
      const literalTags = [...options, ...memory].filter(([, tags]) => typeof literal(tags[0] as string) !== 'symbol');
      expect(literalTags.length).toBeGreaterThanOrEqual(10);
      for (const [name] of literalTags) expect({ name, inDefaults: name in DEFAULTS }).toEqual({ name, inDefaults: true });
    });
  });
});
